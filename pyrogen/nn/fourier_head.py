"""A network head that outputs a Fourier basis density: a conditional p(y | context)."""

from __future__ import annotations

import math

import torch
from torch import nn

from pyrogen.distributions import FourierSeriesDensity, relative_coefficients
from pyrogen.validation import check_choice, check_positive_int, check_positive_number

__all__ = ["FourierHead"]


class FourierHead(nn.Module):
    """Map a context vector to a :class:`~pyrogen.distributions.FourierSeriesDensity`.

    The last layer emits, per example, the 2N real numbers of the coefficients
    a_1..a_N relative to a_0 = 1, an offset and a log-scale (on the real line), so the
    head can serve as the per-dimension conditional p(x_d | x_<d) of an autoregressive
    model or as the output of a regression network with a multimodal noise model.

    Arguments:
        in_features: the context's width.
        num_frequencies: N, the degree of the series.
        hidden: widths of the hidden layers (ReLU) before the output layer.
        domain: ``"real"`` or ``"interval"`` (then ``loc`` and ``scale`` are fixed).
        loc, scale: the offset and scale the learned ones start from (or keep).

    Example:
        >>> head = FourierHead(3, num_frequencies=5)
        >>> head(torch.randn(8, 3)).log_prob(torch.randn(8)).shape
        torch.Size([8])
    """

    def __init__(
        self,
        in_features: int,
        num_frequencies: int,
        hidden: tuple[int, ...] = (64,),
        *,
        domain: str = "real",
        loc: float = 0.0,
        scale: float = 1.0,
    ):
        super().__init__()
        check_positive_int(in_features, "in_features")
        check_positive_int(num_frequencies, "num_frequencies")
        check_positive_number(scale, "scale")
        check_choice(domain, "domain", ("real", "interval"))
        self.in_features, self.num_frequencies, self.domain = in_features, num_frequencies, domain
        outputs = 2 * num_frequencies + (2 if domain == "real" else 0)
        layers, width = [], in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.trunk = nn.Sequential(*layers)
        self.out = nn.Linear(width, outputs)
        nn.init.zeros_(self.out.weight)  # start at the base density for every context
        nn.init.zeros_(self.out.bias)
        self.register_buffer("base_loc", torch.tensor(float(loc)))
        self.register_buffer("base_log_scale", torch.tensor(math.log(scale)))

    def forward(self, context: torch.Tensor) -> FourierSeriesDensity:
        if context.shape[-1] != self.in_features:
            raise ValueError(
                f"context: expected last dimension {self.in_features}, "
                f"got shape {tuple(context.shape)}"
            )
        h = self.out(self.trunk(context))
        N = self.num_frequencies
        a = relative_coefficients(h[..., :N], h[..., N : 2 * N])
        loc = self.base_loc.to(h.dtype)
        scale = self.base_log_scale.to(h.dtype).exp()
        if self.domain == "real":
            loc = loc + h[..., 2 * N] * scale
            scale = scale * h[..., 2 * N + 1].exp()
        return FourierSeriesDensity(a, loc, scale, domain=self.domain, validate_args=False)
