r"""The discretized Gaussian of Ho et al. (2020), the decoder p(x_0 | x_1) of a DDPM for
8-bit images, as a density of dequantized pixels.

A pixel of L grey levels, k in {0, ..., L - 1}, sits at :math:`y = 2k / (L - 1) - 1`
in [-1, 1]; the decoder gives it the mass of a Gaussian :math:`\mathcal{N}(\mu,
\sigma^2)` over its bin, :math:`[y - \frac{1}{L - 1}, y + \frac{1}{L - 1}]`, the first
and last bins reaching to minus and plus infinity, so the masses sum to one. pyrogen
gives image densities dequantized pixels u = (k + U) / L in [0, 1) (see
:func:`pyrogen.data.dequantize`): the density of u is that mass times L, constant on
the bin, so its log-density is the discrete log-likelihood plus D log L exactly, and
bits per dimension read the same as the flows'.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution, constraints

__all__ = ["DiscretizedNormal", "bin_index", "bin_centre"]


def bin_index(u: torch.Tensor, levels: int) -> torch.Tensor:
    """The grey level k of dequantized pixels u in [0, 1)."""
    return (u * levels).floor().clamp(0, levels - 1)


def bin_centre(y: torch.Tensor, levels: int) -> torch.Tensor:
    """Values y in [-1, 1] rounded to the nearest level, as dequantized pixels (the
    bin's centre, (k + 1/2) / L)."""
    k = ((y.clamp(-1, 1) + 1) / 2 * (levels - 1)).round()
    return (k + 0.5) / levels


def _log_diff_ndtr(upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """log(Phi(upper) - Phi(lower)) for upper > lower, accurate in both tails."""
    flip = lower > 0  # by symmetry, work where the CDF is small
    hi = torch.where(flip, -lower, upper)
    lo = torch.where(flip, -upper, lower)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return log_hi + torch.log1p(-torch.exp((log_lo - log_hi).clamp(max=0)).clamp(max=1 - 1e-12))


class DiscretizedNormal(TorchDistribution):
    """A Gaussian :math:`\\mathcal{N}(\\mu, \\sigma^2)` over [-1, 1] discretized to
    ``levels`` bins, read as a density of dequantized pixels in [0, 1) (one pixel per
    batch element; ``.to_event`` for images).

    Arguments:
        loc: mu on the [-1, 1] scale.
        scale: sigma on the same scale.
        levels: L, the number of grey levels.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.interval(0.0, 1.0)
    has_rsample = False

    def __init__(self, loc, scale, levels: int = 256, validate_args=None):
        self.loc, self.scale = torch.broadcast_tensors(
            torch.as_tensor(loc), torch.as_tensor(scale, dtype=torch.as_tensor(loc).dtype)
        )
        self.levels = int(levels)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape)
        return DiscretizedNormal(self.loc.expand(shape), self.scale.expand(shape), self.levels)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        k = bin_index(value, self.levels)
        y = 2 * k / (self.levels - 1) - 1
        half = 1.0 / (self.levels - 1)
        upper = (y + half - self.loc) / self.scale
        lower = (y - half - self.loc) / self.scale
        inf = torch.full_like(upper, math.inf)
        upper = torch.where(k >= self.levels - 1, inf, upper)
        lower = torch.where(k <= 0, -inf, lower)
        return _log_diff_ndtr(upper, lower) + math.log(self.levels)

    def sample(self, sample_shape=()):
        with torch.no_grad():
            shape = self._extended_shape(torch.Size(sample_shape))
            y = self.loc.expand(shape) + self.scale.expand(shape) * torch.randn(
                shape, dtype=self.loc.dtype, device=self.loc.device
            )
            return bin_centre(y, self.levels)
