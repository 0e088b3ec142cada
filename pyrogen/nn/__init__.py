"""Neural building blocks for pyrogen's models."""

from pyrogen.nn.fourier_head import FourierHead

__all__ = ["FourierHead"]
