r"""Pyro's affine autoregressive layers with a softly bounded log-scale.

Pyro's ``AffineAutoregressive`` computes :math:`y = x e^{s} + m` with
:math:`(m, s)` from a MADE of x and clips s to [-5, 3], passing the gradient straight
through the clip. :class:`BoundedAffineAutoregressive` is that layer with
:math:`s = a / (1 + |a| / b)` for the MADE's raw output a (zuko's
``MonotonicAffineTransform``, the bound of
:class:`~pyrogen.transforms.BoundedAffineCoupling`): s lies in (-b, b), is a near 0
and has its gradient everywhere. The rest is Pyro's: one pass in the direction it
maps, D passes back (one dimension per pass, in the MADE's order), its cache, and
``condition`` in :class:`ConditionalBoundedAffineAutoregressive`.

Why: a MADE of the same size and initial weights, trained on the same minibatches,
gives zuko's MAF to the last digit with this bound (b = log 1000, zuko's), and with
Pyro's clip it does not; on the 2-D checkerboard over 20 seeds the clipped MAF's
test NLL was behind zuko's on 16 seeds (``bench/flows.py --flows maf --seeds 20``).
"""

from __future__ import annotations

from functools import partial

import pyro.distributions.transforms as T
import torch

from pyrogen.transforms.coupling import soft_bound
from pyrogen.validation import check_positive_number

__all__ = ["BoundedAffineAutoregressive", "ConditionalBoundedAffineAutoregressive"]


class BoundedAffineAutoregressive(T.AffineAutoregressive):
    """y = x exp(s) + m, (m, a) = ``autoregressive_nn(x)`` (a MADE, Pyro's
    ``AutoRegressiveNN``), s = a / (1 + |a| / ``scale_bound``); Pyro's
    ``AffineAutoregressive`` with that bound where it clips a to [-5, 3]."""

    def __init__(self, autoregressive_nn, scale_bound: float = 5.0):
        super().__init__(autoregressive_nn)
        self.scale_bound = check_positive_number(scale_bound, "scale_bound")

    def _mean_and_log_scale(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, a = self.arn(x)
        log_scale = soft_bound(a, self.scale_bound)
        self._cached_log_scale = log_scale
        return mean, log_scale

    def _call(self, x):
        mean, log_scale = self._mean_and_log_scale(x)
        return x * log_scale.exp() + mean

    def _inverse(self, y):
        """D passes: each fills one dimension, in the MADE's order, from those before
        it; the last pass's log-scales are every dimension's."""
        x = [torch.zeros_like(y[..., 0])] * y.size(-1)
        for idx in self.arn.permutation.tolist():
            mean, log_scale = self._mean_and_log_scale(torch.stack(x, dim=-1))
            x[idx] = (y[..., idx] - mean[..., idx]) * (-log_scale[..., idx]).exp()
        return torch.stack(x, dim=-1)

    def log_abs_det_jacobian(self, x, y):
        x_old, y_old = self._cached_x_y
        if self._cached_log_scale is None or x is not x_old or y is not y_old:
            self._mean_and_log_scale(x)
        return self._cached_log_scale.sum(-1)


class ConditionalBoundedAffineAutoregressive(T.ConditionalAffineAutoregressive):
    """:class:`BoundedAffineAutoregressive` given a context: ``condition(c)`` returns
    it on the MADE (Pyro's ``ConditionalAutoRegressiveNN``) with c fixed."""

    def __init__(self, autoregressive_nn, scale_bound: float = 5.0):
        super().__init__(autoregressive_nn)
        self.scale_bound = check_positive_number(scale_bound, "scale_bound")

    def condition(self, context):
        net = partial(self.nn, context=context)
        net.permutation = self.nn.permutation
        net.get_permutation = self.nn.get_permutation
        return BoundedAffineAutoregressive(net, self.scale_bound)
