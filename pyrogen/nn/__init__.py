"""Neural building blocks for pyrogen's models."""

from pyrogen.nn.fourier_head import FourierHead
from pyrogen.nn.vae_nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder

__all__ = ["ConvDecoder", "ConvEncoder", "FourierHead", "MLPDecoder", "MLPEncoder"]
