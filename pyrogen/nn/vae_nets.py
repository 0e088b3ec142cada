"""Encoders and decoders for variational autoencoders: MLP and convolutional.

An encoder maps a batch of data (any leading dimensions, then the data shape) to the
location and scale of a diagonal Gaussian over the latent space (and, with
``context_dim``, a context vector h beside them, which inverse autoregressive flows on
the posterior read: Kingma et al. 2016); a decoder maps
latents (any leading dimensions) to the parameter of the likelihood with the data
shape (Bernoulli logits or Gaussian means). The convolutional pair follows the
common two-stride-2-layer design (Kingma and Welling 2014 used MLPs; the convolutional
variant is the one of most later work) and needs images whose sides divide by 4.
"""

from __future__ import annotations

import math

from torch import nn
from torch.nn import functional as F

__all__ = ["MLPEncoder", "MLPDecoder", "ConvEncoder", "ConvDecoder"]


def _mlp(sizes: list[int], activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """x (..., *data_shape) -> (loc, scale), each (..., latent_dim)."""

    def __init__(
        self, data_shape, latent_dim: int, hidden=(400,), activation=nn.Softplus, context_dim=0
    ):
        super().__init__()
        self.data_shape, self.latent_dim = tuple(data_shape), latent_dim
        outputs = 2 * latent_dim + context_dim
        self.net = _mlp([math.prod(self.data_shape), *hidden, outputs], activation)

    def forward(self, x):
        flat = x.reshape(*x.shape[: x.dim() - len(self.data_shape)], -1)
        return self._from_first_layer(self.net[0](flat))

    def forward_pair(self, shared, varying):
        """The encoder of the flat input [shared, varying] (sizes summing to the data
        size), with ``shared`` broadcast against ``varying``'s leading dimensions: the
        first layer is W_s shared + W_v varying + b, so the shared part is computed once,
        not once per row of ``varying`` (e.g. x beside many draws of a latent)."""
        first, size = self.net[0], shared.shape[-1]
        pre = F.linear(shared, first.weight[:, :size], first.bias)
        return self._from_first_layer(pre + F.linear(varying, first.weight[:, size:]))

    def _from_first_layer(self, pre):
        return _split_outputs(self.net[1:](pre), self.latent_dim)


def _split_outputs(out, latent_dim: int) -> tuple:
    """(loc, scale), or (loc, scale, h) where the encoder also gives a context h."""
    loc, raw_scale = out[..., :latent_dim], out[..., latent_dim : 2 * latent_dim]
    scale = F.softplus(raw_scale) + 1e-6
    if out.shape[-1] == 2 * latent_dim:
        return loc, scale
    return loc, scale, out[..., 2 * latent_dim :]


class MLPDecoder(nn.Module):
    """z (..., latent_dim) -> (..., *data_shape)."""

    def __init__(self, data_shape, latent_dim: int, hidden=(400,), activation=nn.Softplus):
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.net = _mlp([latent_dim, *reversed(hidden), math.prod(self.data_shape)], activation)

    def forward(self, z):
        return self.net(z).reshape(*z.shape[:-1], *self.data_shape)


def _image_shape(data_shape) -> tuple[int, int, int]:
    """(channels, height, width) of an image given as (H, W) or (C, H, W)."""
    shape = tuple(data_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or shape[1] % 4 or shape[2] % 4:
        raise ValueError(
            f"data_shape: the convolutional networks need images (H, W) or (C, H, W) with "
            f"H and W divisible by 4, got {tuple(data_shape)}"
        )
    return shape


class ConvEncoder(nn.Module):
    """Two stride-2 convolutions (32, 64 channels), then a linear map to (loc, scale)."""

    def __init__(
        self, data_shape, latent_dim: int, hidden=(256,), activation=nn.ReLU, context_dim=0
    ):
        super().__init__()
        self.data_shape, self.latent_dim = tuple(data_shape), latent_dim
        c, h, w = _image_shape(data_shape)
        self.image = (c, h, w)
        self.conv = nn.Sequential(
            nn.Conv2d(c, 32, 4, stride=2, padding=1),
            activation(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),
            activation(),
        )
        outputs = 2 * latent_dim + context_dim
        self.head = _mlp([64 * (h // 4) * (w // 4), *hidden, outputs], activation)

    def forward(self, x):
        batch = x.shape[: x.dim() - len(self.data_shape)]
        features = self.conv(x.reshape(-1, *self.image)).flatten(1)
        out = self.head(features)
        return _split_outputs(out.reshape(*batch, out.shape[-1]), self.latent_dim)


class ConvDecoder(nn.Module):
    """A linear map to 64 x H/4 x W/4 features, then two stride-2 transposed convolutions."""

    def __init__(self, data_shape, latent_dim: int, hidden=(256,), activation=nn.ReLU):
        super().__init__()
        self.data_shape = tuple(data_shape)
        c, h, w = _image_shape(data_shape)
        self.features = (64, h // 4, w // 4)
        self.head = nn.Sequential(
            _mlp([latent_dim, *hidden, math.prod(self.features)], activation), activation()
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),
            activation(),
            nn.ConvTranspose2d(32, c, 4, stride=2, padding=1),
        )

    def forward(self, z):
        batch = z.shape[:-1]
        out = self.deconv(self.head(z.reshape(-1, z.shape[-1])).reshape(-1, *self.features))
        return out.reshape(*batch, *self.data_shape)
