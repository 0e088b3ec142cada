"""PixelCNN (van den Oord et al. 2016a, b), gated or masked convolutions over binary
images in raster order. See :mod:`pyrogen.models.autoregressive`."""

from __future__ import annotations

import torch
from pyrogen.models.autoregressive.base import (
    _Autoregressive,
)
from torch import nn

from pyrogen.nn.autoregressive import (
    GatedPixelCNNLayer,
    MaskedConv2d,
)
from pyrogen.validation import (
    check_data_shape,
    check_positive_int,
)
from pyrogen.zoo import register

__all__ = ["PixelCNN"]


@register("pixelcnn")
class PixelCNN(_Autoregressive):
    """PixelCNN for binary images (H, W). ``gated=True`` (default): a first gated
    two-stack layer with ``first_kernel`` that excludes the current pixel, ``layers`` - 1
    gated layers with ``kernel``, then ReLU, 1x1 convolution, ReLU, 1x1 convolution to
    the logits (van den Oord et al. 2016b). ``gated=False``: a ``first_kernel`` mask-A
    convolution to ``channels`` channels, ``layers`` - 1 residual mask-B ``kernel``
    convolutions with ReLUs, and a 1x1 convolution to the logits (2016a)."""

    @classmethod
    def cli_config(cls, options, data, method: str) -> dict:
        """The images' own (height, width)."""
        return {"data_shape": list(data.image_shape)}

    def __init__(
        self,
        data_shape,
        channels: int = 64,
        layers: int = 7,
        first_kernel: int = 7,
        kernel: int = 3,
        gated: bool = True,
    ):
        super().__init__()
        shape = check_data_shape(data_shape)
        if len(shape) != 2:
            raise ValueError(f"data_shape: PixelCNN needs (height, width), got {tuple(shape)}")
        for value, name in ((channels, "channels"), (layers, "layers")):
            check_positive_int(value, name)
        for value, name in ((first_kernel, "first_kernel"), (kernel, "kernel")):
            check_positive_int(value, name)
            if value % 2 == 0:
                raise ValueError(f"{name}: must be odd, got {value}")
        self._setup(data_shape=shape, gated=bool(gated))
        if gated:
            self.stack = nn.ModuleList(
                [GatedPixelCNNLayer(1, channels, first_kernel, first=True)]
                + [GatedPixelCNNLayer(channels, channels, kernel) for _ in range(layers - 1)]
            )
            self.out = nn.Sequential(
                nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 1, 1)
            )
            return
        self.first = MaskedConv2d(1, channels, first_kernel, "A")
        self.blocks = nn.ModuleList(
            MaskedConv2d(channels, channels, kernel, "B") for _ in range(layers - 1)
        )
        self.out = nn.Conv2d(channels, 1, 1)

    def logits(self, x):
        return self.image_logits(x.reshape(len(x), *self.config.data_shape)).reshape(len(x), -1)

    def image_logits(self, image: torch.Tensor) -> torch.Tensor:
        """The logits of images (N, h, W) of any number of rows h: every layer is causal
        in rows (a pixel's logit reads only the rows above and its own row's left
        part), so the first h rows' logits need only the first h rows."""
        height, width = self.config.data_shape
        if image.dim() != 3 or image.shape[2] != width or not 1 <= image.shape[1] <= height:
            raise ValueError(
                f"image: expected shape (N, h, {width}) with 1 <= h <= {height}, "
                f"got {tuple(image.shape)}"
            )
        image = image[:, None]  # (N, 1, h, W)
        if self.config.gated:
            v = h = image
            for layer in self.stack:
                v, h = layer(v, h)
            return self.out(h)[:, 0]
        h = self.first(image)
        for block in self.blocks:
            h = h + block(torch.relu(h))
        return self.out(torch.relu(h))[:, 0]

    def _numbers_per_example(self) -> int:
        return 4 * self.config.channels * self.dim  # both stacks' gate pre-activations

    def _logit(self, x, d):
        """Pixel (i, j) = divmod(d, W) from a pass over rows 0..i only (see
        :meth:`image_logits`): the sampler does about half the work of a pass over the
        whole image per pixel, and draws the same."""
        height, width = self.config.data_shape
        i, j = divmod(d, width)
        return self.image_logits(x.reshape(len(x), height, width)[:, : i + 1])[:, i, j]
