"""Time-conditioned networks of diffusion models: an MLP for vectors and a small U-Net
for images, each mapping (x_t, t) to a tensor of x_t's shape times ``outputs``.

The step t enters through the sinusoidal embedding of the Transformer (Vaswani et al.
2017), as in Ho et al. (2020), of t scaled to 0..1000 whatever the chain's length,
followed by a two-layer MLP; the U-Net adds it to every residual block (Ho et al.'s
architecture without attention, with group normalization, SiLU and one down-sampling
per level).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["TimeMLP", "UNet", "timestep_embedding"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) steps (floats allowed) -> (B, dim) sines and cosines of geometric
    frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    angles = t.to(freqs.dtype)[:, None] * freqs[None]
    embedding = torch.cat([angles.cos(), angles.sin()], -1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], -1)
    return embedding


class _TimeEmbedding(nn.Module):
    """The step's embedding, computed once per distinct step of the batch (a sampler's
    or a bound's batch shares one step: the embedding network costs more per row than
    a small denoiser) and returned with the index of each row's step."""

    def __init__(self, dim: int, num_steps: int):
        super().__init__()
        self.dim, self.scale = dim, 1000.0 / num_steps
        self.net = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, 4 * dim))

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        steps, index = torch.unique(t, return_inverse=True)
        angles = timestep_embedding(steps * self.scale, self.dim).to(self.net[0].weight.dtype)
        return self.net(angles), index


class TimeMLP(nn.Module):
    """(x_t (B, D), t (B,)) -> (B, outputs * D): residual SiLU layers of width
    ``hidden[0]`` with the step's embedding added to each (Analytic-DPM's and most 2-D
    diffusion experiments' network)."""

    def __init__(self, dim: int, hidden: list[int], num_steps: int, outputs: int = 1):
        super().__init__()
        width = hidden[0]
        self.embed = _TimeEmbedding(width, num_steps)
        self.input = nn.Linear(dim, width)
        self.layers = nn.ModuleList(nn.Linear(width, w) for w in hidden)
        self.times = nn.ModuleList(nn.Linear(4 * width, w) for w in hidden)
        self.output = nn.Linear(hidden[-1], outputs * dim)
        self.outputs = outputs

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e, index = self.embed(t)
        h = self.input(x)
        for layer, time in zip(self.layers, self.times):
            update = layer(nn.functional.silu(h)) + time(e)[index]
            h = h + update if update.shape == h.shape else update
        return self.output(nn.functional.silu(h))


class _ResBlock(nn.Module):
    def __init__(self, channels_in: int, channels: int, time_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, channels_in), channels_in)
        self.conv1 = nn.Conv2d(channels_in, channels, 3, padding=1)
        self.time = nn.Linear(time_dim, channels)
        self.norm2 = nn.GroupNorm(min(groups, channels), channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.skip = nn.Conv2d(channels_in, channels, 1) if channels_in != channels else None

    def forward(self, x: torch.Tensor, e: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = h + self.time(e)[index][:, :, None, None]
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return h + (x if self.skip is None else self.skip(x))


class UNet(nn.Module):
    """(x_t (B, C, H, W), t (B,)) -> (B, outputs * C, H, W): a small U-Net (Ronneberger
    et al. 2015; Ho et al. 2020) with ``len(mults)`` levels of ``channels * mult``
    channels, one residual block per level on the way down and two on the way up
    (skip connections), average-pool down-sampling and nearest up-sampling. For 28x28
    images, mults (1, 2, 2) works on 28, 14 and 7 pixels."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        num_steps: int,
        mults: tuple[int, ...] = (1, 2, 2),
        outputs: int = 1,
        groups: int = 8,
    ):
        super().__init__()
        time_dim = 4 * channels
        self.embed = _TimeEmbedding(channels, num_steps)
        self.input = nn.Conv2d(in_channels, channels, 3, padding=1)
        widths = [channels * m for m in mults]
        self.down = nn.ModuleList()
        previous = channels
        for width in widths:
            self.down.append(_ResBlock(previous, width, time_dim, groups))
            previous = width
        self.middle = _ResBlock(previous, previous, time_dim, groups)
        self.up = nn.ModuleList()
        for width in reversed(widths):
            self.up.append(_ResBlock(previous + width, width, time_dim, groups))
            previous = width
        self.norm = nn.GroupNorm(min(groups, previous), previous)
        self.output = nn.Conv2d(previous, outputs * in_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e, index = self.embed(t)
        h = self.input(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, e, index)
            skips.append(h)
            if i < len(self.down) - 1:
                h = nn.functional.avg_pool2d(h, 2)
        h = self.middle(h, e, index)
        for block in self.up:
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:
                h = nn.functional.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], 1), e, index)
        return self.output(nn.functional.silu(self.norm(h)))
