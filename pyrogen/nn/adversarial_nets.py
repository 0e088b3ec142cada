"""Generators and critics for adversarial models: MLPs for vectors, DCGAN-style
convolutions for images (Radford, Metz and Chintala 2016, without batch normalization,
which the gradient penalty of WGAN-GP forbids in the critic and which would make a
generator's samples depend on the rest of its batch).

A critic reads one example as several named parts (a GAN's x; an adversarial
autoencoder's z; ALI's pair (x, z)) and returns one real number per example: a logit
for the non-saturating loss, a score for the Wasserstein and hinge losses.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pyrogen.nn.vae_nets import _image_shape
from pyrogen.nn.vae_nets import _mlp as mlp

__all__ = ["MLPGenerator", "ConvGenerator", "Critic", "pack", "packed_shape"]


def packed_shape(shape, pack: int) -> tuple[int, ...]:
    """One packed example's shape: m examples of ``shape`` side by side along its first
    dimension (vectors end to end, images channel-stacked), as PacGAN's critic reads
    them (Lin, Khetan, Fanti and Oh 2018)."""
    shape = tuple(shape)
    return (shape[0] * pack, *shape[1:])


def pack(value, m: int):
    """(B, s0, s1, ...) -> (B / m, m s0, s1, ...): m consecutive examples as one."""
    if m == 1:
        return value
    return value.reshape(value.shape[0] // m, m * value.shape[1], *value.shape[2:])


_OUTPUTS = {"linear": nn.Identity, "sigmoid": nn.Sigmoid}


class MLPGenerator(nn.Module):
    """z (B, latent_dim) -> x (B, *data_shape): ReLU hidden layers, then ``output``
    (``"linear"`` for real data, ``"sigmoid"`` for data in (0, 1))."""

    def __init__(self, data_shape, latent_dim: int, hidden=(256, 256), output="linear"):
        super().__init__()
        self.data_shape = tuple(data_shape)
        sizes = [latent_dim, *hidden, math.prod(self.data_shape)]
        self.net = nn.Sequential(mlp(sizes, nn.ReLU), _OUTPUTS[output]())

    def forward(self, z):
        return self.net(z).reshape(*z.shape[:-1], *self.data_shape)


class ConvGenerator(nn.Module):
    """DCGAN's generator for images with sides divisible by 4: a linear map to
    2C x H/4 x W/4 features, then two stride-2 transposed convolutions (2C -> C ->
    channels), ReLU between, ``output`` at the end."""

    def __init__(self, data_shape, latent_dim: int, channels: int = 64, output="sigmoid"):
        super().__init__()
        self.data_shape = tuple(data_shape)
        c, h, w = _image_shape(data_shape)
        self.features = (2 * channels, h // 4, w // 4)
        self.head = nn.Sequential(nn.Linear(latent_dim, math.prod(self.features)), nn.ReLU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(channels, c, 4, stride=2, padding=1),
            _OUTPUTS[output](),
        )

    def forward(self, z):
        batch = z.shape[:-1]
        out = self.deconv(self.head(z.reshape(-1, z.shape[-1])).reshape(-1, *self.features))
        return out.reshape(*batch, *self.data_shape)


class _ConvFeatures(nn.Module):
    """DCGAN's discriminator trunk: two stride-2 convolutions (C, 2C channels) with
    leaky ReLUs, flattened."""

    def __init__(self, data_shape, channels: int):
        super().__init__()
        self.data_shape = tuple(data_shape)
        c, h, w = _image_shape(data_shape)
        self.image = (c, h, w)
        self.size = 2 * channels * (h // 4) * (w // 4)
        self.net = nn.Sequential(
            nn.Conv2d(c, channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )

    def forward(self, x):
        return self.net(x.reshape(-1, *self.image))


class Critic(nn.Module):
    """D(part_1, ..., part_k) -> (B,): each part flattened (an image part through the
    convolutional trunk when ``channels`` is given), concatenated, then an MLP with
    leaky ReLUs (slope 0.2) to one output.

    Arguments:
        shapes: one example's shape for each part, in the order the parts are given.
        hidden: the MLP's hidden widths.
        channels: the convolutional trunk's width for parts that are images (2-D or
            3-D shapes); None flattens every part.
    """

    def __init__(self, shapes, hidden=(256, 256), channels: int | None = None):
        super().__init__()
        self.shapes = [tuple(s) for s in shapes]
        self.trunks = nn.ModuleList()
        width = 0
        for shape in self.shapes:
            if channels is not None and len(shape) >= 2:
                trunk = _ConvFeatures(shape, channels)
                width += trunk.size
            else:
                trunk = nn.Flatten()
                width += math.prod(shape)
            self.trunks.append(trunk)
        self.head = mlp([width, *hidden, 1], lambda: nn.LeakyReLU(0.2))

    def forward(self, *parts):
        if len(parts) != len(self.trunks):
            raise TypeError(f"Critic: expected {len(self.trunks)} parts, got {len(parts)}")
        if len(parts) == 1 and isinstance(self.trunks[0], nn.Flatten):  # one vector part
            return self.head(parts[0].reshape(parts[0].shape[0], -1)).squeeze(-1)
        features = [
            trunk(p.reshape(p.shape[0], *s)) for trunk, p, s in zip(self.trunks, parts, self.shapes)
        ]
        return self.head(torch.cat(features, -1)).squeeze(-1)
