r"""The pieces of a Glow-style multiscale image flow (Kingma and Dhariwal 2018; the
multiscale architecture of Dinh, Sohl-Dickstein and Bengio 2017), as Pyro transforms
on images (..., C, H, W) (``event_dim = 3``), following Pyro's convention: ``_call``
maps base to data (decodes), ``_inverse`` data to base (encodes). Each piece also
has ``encode(x) -> (z, log|det dz/dx|)``, the density direction a flow is trained in,
and ``decode(z)``.

- :class:`Squeeze`: the space-to-depth reshape (C, H, W) -> (4C, H/2, W/2) in the
  encoding direction, a permutation (log-determinant 0).
- :class:`InvertibleConv1x1`: a learned channel mixing z = W x at every pixel, W in
  the LU form W = P L (U + diag(sign * exp(log_s))), log|det| = H W sum(log_s); W
  starts as a random rotation.
- :class:`GlowCoupling`: the affine coupling of Glow, z_b = (x_b + t) * sigmoid(r + 2),
  with (t, r) from a small convolutional network (3x3, 1x1, 3x3, the last started at
  zero so the layer starts as the identity) of x_a, the first half of the channels.
- :class:`ActNorm` (:mod:`pyrogen.transforms.norm`) with ``event_dim=3``.
- :class:`MultiscaleFlow`: levels of squeeze, K steps (actnorm, 1x1 convolution,
  coupling) and a factor-out: after each level but the last, half of the channels are
  final latents and only the other half goes on. The factored-out half keeps its
  place (the level un-squeezes what it squeezed), so the latent has the image's
  shape and a standard normal base over it is Glow's (with an unconditional prior on
  the factored-out parts, as Real NVP's).
"""

from __future__ import annotations

import torch
from pyro.distributions import constraints
from pyro.distributions.torch_transform import TransformModule
from torch import nn
from torch.nn import functional as F

from pyrogen.transforms.norm import ActNorm

__all__ = ["GlowCoupling", "InvertibleConv1x1", "MultiscaleFlow", "Squeeze"]


class _ImageStep(TransformModule):
    """A Pyro transform on images defined by ``encode`` and ``decode``; the last
    encoding's log-determinant is kept, so ``log_prob`` encodes once."""

    domain = constraints.independent(constraints.real, 3)
    codomain = constraints.independent(constraints.real, 3)
    bijective = True

    def __init__(self):
        super().__init__(cache_size=1)
        self._last = None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _call(self, z):
        return self.decode(z)

    def _inverse(self, x):
        z, logdet = self.encode(x)
        self._last = (x, logdet)
        return z

    def log_abs_det_jacobian(self, z, x):
        if self._last is not None and self._last[0] is x:
            logdet = self._last[1]
        else:
            logdet = self.encode(x)[1]
        return -logdet


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) -> (..., 4C, H/2, W/2): each 2x2 block becomes 4 channels."""
    *batch, c, h, w = x.shape
    n = len(batch)
    x = x.reshape(*batch, c, h // 2, 2, w // 2, 2)
    x = x.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)  # (..., c, 2, 2, h/2, w/2)
    return x.reshape(*batch, 4 * c, h // 2, w // 2)


def unsqueeze(z: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`squeeze`."""
    *batch, c4, h, w = z.shape
    n = len(batch)
    z = z.reshape(*batch, c4 // 4, 2, 2, h, w)
    z = z.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)  # (..., c, h, 2, w, 2)
    return z.reshape(*batch, c4 // 4, 2 * h, 2 * w)


class Squeeze(_ImageStep):
    """Space to depth in the encoding direction (H and W even)."""

    def encode(self, x):
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(f"Squeeze: height and width must be even, got {tuple(x.shape[-2:])}")
        return squeeze(x), x.new_zeros(x.shape[:-3])

    def decode(self, z):
        return unsqueeze(z)


class InvertibleConv1x1(_ImageStep):
    """z = W x at each pixel, W = P L (U + diag(sign * exp(log_s))) (LU-decomposed)."""

    def __init__(self, channels: int, generator: torch.Generator | None = None):
        super().__init__()
        rotation = torch.linalg.qr(torch.randn(channels, channels, generator=generator))[0]
        p, lower, upper = torch.linalg.lu(rotation)
        diagonal = upper.diagonal()
        self.register_buffer("p", p)
        self.register_buffer("diag_sign", diagonal.sign())
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(lower * self.lower_mask)
        self.upper = nn.Parameter(upper.triu(1))
        self.log_s = nn.Parameter(diagonal.abs().log())

    def weight(self) -> torch.Tensor:
        eye = torch.eye(len(self.log_s), dtype=self.log_s.dtype, device=self.log_s.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper.triu(1) + torch.diag(self.diag_sign * self.log_s.exp())
        return self.p @ lower @ upper

    def _mix(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ij,...jhw->...ihw", weight, x)

    def encode(self, x):
        pixels = x.shape[-1] * x.shape[-2]
        logdet = (pixels * self.log_s.sum()).expand(x.shape[:-3])
        return self._mix(x, self.weight()), logdet

    def decode(self, z):
        return self._mix(z, torch.linalg.inv(self.weight()))


class GlowCoupling(_ImageStep):
    """z_a = x_a, z_b = (x_b + t(x_a)) * sigmoid(r(x_a) + 2), x_a the first
    ``channels // 2`` channels."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        if channels < 2:
            raise ValueError(f"GlowCoupling: needs at least 2 channels, got {channels}")
        self.split = channels // 2
        last = nn.Conv2d(hidden, 2 * (channels - self.split), 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(
            nn.Conv2d(self.split, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            last,
        )

    def _shift_scale(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = a.shape[:-3]
        out = self.net(a.reshape(-1, *a.shape[-3:]))
        shift, raw = out.reshape(*batch, *out.shape[-3:]).chunk(2, dim=-3)
        return shift, F.logsigmoid(raw + 2.0)

    def encode(self, x):
        a, b = x[..., : self.split, :, :], x[..., self.split :, :, :]
        shift, log_scale = self._shift_scale(a)
        z = torch.cat([a, (b + shift) * log_scale.exp()], dim=-3)
        return z, log_scale.sum((-3, -2, -1))

    def decode(self, z):
        a, b = z[..., : self.split, :, :], z[..., self.split :, :, :]
        shift, log_scale = self._shift_scale(a)
        return torch.cat([a, b * (-log_scale).exp() - shift], dim=-3)


class _ActNormStep(_ImageStep):
    """:class:`ActNorm` over channels seen as an encode/decode step."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = ActNorm(channels, event_dim=3)

    def encode(self, x):
        z = self.norm._inverse(x)
        return z, -self.norm.log_abs_det_jacobian(z, x)

    def decode(self, z):
        return self.norm._call(z)


class MultiscaleFlow(_ImageStep):
    """Glow's multiscale architecture on images of ``shape`` (C, H, W).

    Arguments:
        shape: (C, H, W); H and W divisible by 2 ** levels.
        levels: how many squeeze levels (each but the last factors out half).
        steps: flow steps (actnorm, 1x1 convolution, coupling) per level.
        hidden: the coupling networks' channels.
    """

    def __init__(self, shape, levels: int = 2, steps: int = 8, hidden: int = 128, seed: int = 0):
        super().__init__()
        channels, height, width = shape
        if height % 2**levels or width % 2**levels:
            raise ValueError(
                f"data_shape: height and width {height}x{width} must be divisible by "
                f"2 ** levels = {2**levels}"
            )
        generator = torch.Generator().manual_seed(seed)
        self.hidden = hidden
        self.levels = nn.ModuleList()
        for _ in range(levels):
            channels *= 4
            self.levels.append(
                nn.ModuleList(
                    module
                    for _ in range(steps)
                    for module in (
                        _ActNormStep(channels),
                        InvertibleConv1x1(channels, generator),
                        GlowCoupling(channels, hidden),
                    )
                )
            )
            channels //= 2  # the other half is factored out

    def encode(self, x):
        return self._encode(x, 0)

    def _encode(self, x, level: int):
        h, logdet = squeeze(x), x.new_zeros(x.shape[:-3])
        for step in self.levels[level]:
            h, part = step.encode(h)
            logdet = logdet + part
        if level + 1 < len(self.levels):
            half = h.shape[-3] // 2
            inner, part = self._encode(h[..., :half, :, :], level + 1)
            h, logdet = torch.cat([inner, h[..., half:, :, :]], dim=-3), logdet + part
        return unsqueeze(h), logdet

    def decode(self, z):
        return self._decode(z, 0)

    def _decode(self, z, level: int):
        h = squeeze(z)
        if level + 1 < len(self.levels):
            half = h.shape[-3] // 2
            inner = self._decode(h[..., :half, :, :], level + 1)
            h = torch.cat([inner, h[..., half:, :, :]], dim=-3)
        for step in reversed(self.levels[level]):
            h = step.decode(h)
        return unsqueeze(h)

    def numbers_per_pixel(self) -> int:
        """About how many numbers per input pixel the largest temporaries hold."""
        return self.hidden + 32
