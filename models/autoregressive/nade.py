"""NADE (Larochelle and Murray 2011) for binary vectors and RNADE (Uria, Murray and
Larochelle 2013) for real ones: one hidden layer shared by every conditional, its
pre-activations a running sum. See :mod:`pyrogen.models.autoregressive`."""

from __future__ import annotations

import math

import torch
from pyrogen.models.autoregressive.base import (
    _Autoregressive,
    _running_hidden,
    _sample_running,
)
from torch import nn

from pyrogen.distributions import NormalMixture
from pyrogen.nn.autoregressive import (
    normal_mixture,
    sample_normal_mixture,
)
from pyrogen.validation import (
    check_data_shape,
    check_positive_int,
)
from pyrogen.zoo import register

__all__ = ["NADE", "RNADE"]


@register("nade")
class NADE(_Autoregressive):
    """Neural autoregressive distribution estimator with ``hidden`` sigmoid units shared
    by every conditional (default 500, as in Larochelle and Murray 2011)."""

    def __init__(self, data_shape, hidden: int = 500):
        super().__init__()
        check_positive_int(hidden, "hidden")
        self._setup(data_shape=check_data_shape(data_shape), hidden=int(hidden))
        scale = 1.0 / math.sqrt(self.dim)
        self.W = nn.Parameter(torch.randn(hidden, self.dim) * scale)
        self.c = nn.Parameter(torch.zeros(hidden))
        self.V = nn.Parameter(torch.randn(self.dim, hidden) * 1.0 / math.sqrt(hidden))
        self.b = nn.Parameter(torch.zeros(self.dim))

    def logits(self, x):
        return (_running_hidden(x, self.W, self.c) * self.V).sum(-1) + self.b

    def _numbers_per_example(self) -> int:
        return self.dim * self.config.hidden  # the (D, H) hidden states

    def sample(self, n: int) -> torch.Tensor:
        """n exact draws in O(DH) each (the pre-activation carried along)."""
        check_positive_int(n, "n")

        def draw(h, d):
            return torch.bernoulli(torch.sigmoid(h @ self.V[d] + self.b[d]))

        return _sample_running(self.W, self.c, n, draw).reshape(n, *self.config.data_shape)


@register("rnade")
class RNADE(_Autoregressive):
    """Real-valued NADE: ``hidden`` shared sigmoid units (default 100) and a mixture of
    ``components`` Gaussians (default 10) per conditional."""

    cli_data = "digits"  # pyrogen fit rnade: dequantized 8x8 digits
    binary_data = False

    def __init__(self, data_shape, hidden: int = 100, components: int = 10):
        super().__init__()
        check_positive_int(hidden, "hidden")
        check_positive_int(components, "components")
        self._setup(
            data_shape=check_data_shape(data_shape), hidden=int(hidden), components=int(components)
        )
        d = self.dim
        self.W = nn.Parameter(torch.randn(hidden, d) / math.sqrt(d))
        self.c = nn.Parameter(torch.zeros(hidden))
        # per dimension: K weights, K means, K log-sds, each linear in h_d
        self.V = nn.Parameter(torch.randn(d, 3 * components, hidden) * 0.1 / math.sqrt(hidden))
        self.b = nn.Parameter(torch.zeros(d, 3 * components))
        with torch.no_grad():  # means spread over [-2, 2] (standardized data)
            self.b[:, components : 2 * components] = torch.linspace(-2, 2, components)

    def _mixture(self, h: torch.Tensor, d=slice(None)) -> NormalMixture:
        """The conditionals' mixtures from hidden states h (..., H) of dimensions d."""
        out = torch.einsum("...dh,dkh->...dk", h, self.V[d]) + self.b[d]
        return normal_mixture(out, self.config.components)

    def _numbers_per_example(self) -> int:
        config = self.config
        return self.dim * (config.hidden + 3 * config.components)

    def conditionals(self, x: torch.Tensor) -> NormalMixture:
        """p(x_d | x_<d) for every d of flat x (N, D): batch shape (N, D)."""
        return self._mixture(_running_hidden(x, self.W, self.c))

    def sample(self, n: int) -> torch.Tensor:
        """n exact draws, the pre-activation carried from dimension to dimension."""
        check_positive_int(n, "n")

        def draw(h, d):
            return sample_normal_mixture(
                torch.addmm(self.b[d], h, self.V[d].T), self.config.components
            )

        return _sample_running(self.W, self.c, n, draw).reshape(n, *self.config.data_shape)
