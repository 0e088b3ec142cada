r"""Monotone rational-quadratic splines (Durkan, Bekasov, Murray and Papamakarios 2019),
the neural spline flows' elementwise map, computed in one pass over the bins.

On :math:`[-B, B]` the spline has K bins with knots :math:`(x_k, y_k)`, widths
:math:`w_k`, heights :math:`h_k`, slopes :math:`s_k = h_k / w_k` and derivatives
:math:`d_k` at the knots (1 at both ends, so it meets the identity it is outside the
interval with a continuous slope). In bin k, with :math:`\theta = (x - x_k) / w_k`,

.. math::

    y = y_k + \frac{h_k [s_k \theta^2 + d_k \theta (1 - \theta)]}
        {s_k + (d_{k+1} + d_k - 2 s_k) \theta (1 - \theta)},
    \qquad
    \frac{dy}{dx} = \frac{s_k^2 [d_{k+1} \theta^2 + 2 s_k \theta (1 - \theta)
        + d_k (1 - \theta)^2]}{[s_k + (d_{k+1} + d_k - 2 s_k) \theta (1 - \theta)]^2},

and the inverse solves a quadratic in :math:`\theta` (Durkan et al., Eqs. 6-8).

Pyro's transforms (``Spline``, ``SplineCoupling``, ``SplineAutoregressive`` and their
conditional forms) compute the same map (``order="quadratic"``) with a gather per bin
quantity, a masked assignment for the tails and torch's softmax, which on the CPU is
slow for the few bins of a spline (a last dimension of 8). :func:`rational_quadratic_spline`
gathers all of a bin's quantities at once, keeps the tails by ``torch.where`` and
normalizes by exp / sum: a neural spline flow's training step is about a fifth
faster (``bench/flows.py``). The transforms here are Pyro's classes with that kernel,
so they are used wherever Pyro's are (``TransformedDistribution``, ``condition``,
caches). Two changes from Pyro: the end derivatives are exactly 1 (Durkan et al.'s
construction), where Pyro pads them with ``1 - min_derivative``; the inner knots'
derivatives are the exponential of a softly bounded log-derivative
(:func:`knot_derivatives`, zuko's form), where Pyro takes ``min_derivative +
softplus``, so a spline whose network outputs 0 is the identity.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from pyro.distributions.transforms import (
    ConditionalSplineAutoregressive as _PyroConditionalSplineAutoregressive,
)
from pyro.distributions.transforms import SplineAutoregressive as _PyroSplineAutoregressive
from pyro.distributions.transforms import SplineCoupling as _PyroSplineCoupling
from pyro.distributions.transforms.spline import (
    ConditionalSpline as _PyroConditionalSpline,
)
from pyro.distributions.transforms.spline import ConditionedSpline
from pyro.distributions.transforms.spline import Spline as _PyroSpline
from torch.nn import functional as F

from pyrogen.transforms.coupling import soft_bound

__all__ = [
    "ConditionalRQSpline",
    "ConditionalRQSplineAutoregressive",
    "RQSpline",
    "RQSplineAutoregressive",
    "RQSplineCoupling",
    "knot_derivatives",
    "rational_quadratic_spline",
]


# the spline orders the flows offer: this module's, and Pyro's linear rational splines
SPLINE_ORDERS = ("quadratic", "linear")


def _softmax(u: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension as exp / sum: torch's CPU kernel is an order of
    magnitude slower on a last dimension of a few bins. The shift by the maximum only
    guards against overflow and does not change the value, so it is held constant."""
    e = (u - u.detach().amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def knot_derivatives(u: torch.Tensor, min_derivative: float = 1e-3) -> torch.Tensor:
    r"""The inner knots' derivatives from unnormalized ones u: :math:`d = e^{a}` with
    the log-derivative softly bounded, :math:`a = u / (1 + |u| / L)`,
    :math:`L = -\log` ``min_derivative`` (zuko's form), so d lies in
    (``min_derivative``, 1 / ``min_derivative``) and is 1 where u = 0: a network whose
    outputs start near 0 starts near the identity (with equal bins). Pyro's and
    Durkan et al.'s ``min_derivative + softplus(u)`` start every knot at a slope of
    0.69 and move it linearly near 0; on 5-layer autoregressive splines fitted to
    the 2-D toy densities the exponential form reached a lower test NLL
    (``bench/flows.py --flows nsf --seeds 5``)."""
    if not 0 <= min_derivative < 1:
        raise ValueError(f"min_derivative: must be in [0, 1), got {min_derivative}")
    if min_derivative == 0:
        return u.exp()
    return soft_bound(u, -math.log(min_derivative)).exp()


def _knots(lengths: torch.Tensor, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin lengths that sum to 1 -> (knots on [-B, B], exact at both ends; the lengths
    between them)."""
    inner = 2 * bound * lengths[..., :-1].cumsum(-1) - bound
    ends = inner.new_full(inner.shape[:-1] + (1,), bound)
    knots = torch.cat([-ends, inner, ends], dim=-1)
    return knots, knots.diff(dim=-1)


def rational_quadratic_spline(
    inputs: torch.Tensor,
    widths: torch.Tensor,
    heights: torch.Tensor,
    derivatives: torch.Tensor,
    bound: float = 3.0,
    inverse: bool = False,
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The spline elementwise, or its inverse: (outputs, log |dy/dx| elementwise; of
    the inverse for ``inverse=True``), the identity outside [-bound, bound].

    Arguments:
        inputs: (..., D).
        widths, heights: unnormalized bin widths and heights, (..., D, K), broadcasting
            against the inputs (softmax, then at least ``min_bin_width`` each).
        derivatives: unnormalized log-derivatives at the K - 1 inner knots (see
            :func:`knot_derivatives`), (..., D, K - 1).
        min_derivative: the knots' derivatives lie in (min_derivative,
            1 / min_derivative); 0 leaves them unbounded.
    """
    num_bins = widths.shape[-1]
    for name, minimum in (("min_bin_width", min_bin_width), ("min_bin_height", min_bin_height)):
        if minimum * num_bins > 1:
            raise ValueError(f"{name}: {minimum} is too large for {num_bins} bins")
    w = min_bin_width + (1 - min_bin_width * num_bins) * _softmax(widths)
    h = min_bin_height + (1 - min_bin_height * num_bins) * _softmax(heights)
    d = F.pad(knot_derivatives(derivatives, min_derivative), (1, 1), value=1.0)
    knots_x, w = _knots(w, bound)
    knots_y, h = _knots(h, bound)

    inside = (inputs >= -bound) & (inputs <= bound)
    clamped = inputs.clamp(-bound, bound)  # finite arithmetic in the tails too
    inner = (knots_y if inverse else knots_x)[..., 1:-1]
    index = (clamped.unsqueeze(-1) >= inner).sum(-1, keepdim=True)  # the bin, (..., D, 1)
    table = torch.stack([knots_x[..., :-1], w, knots_y[..., :-1], h, d[..., :-1], d[..., 1:]], -1)
    shape = torch.broadcast_shapes(table.shape[:-2], index.shape[:-1])
    table = table.expand(shape + table.shape[-2:])
    index = index.expand(shape + (1,)).unsqueeze(-1).expand(shape + (1, 6))
    x_k, w_k, y_k, h_k, d_k, d_k1 = table.gather(-2, index).squeeze(-2).unbind(-1)
    s_k = h_k / w_k
    curvature = d_k + d_k1 - 2 * s_k

    if inverse:
        dy = clamped - y_k
        a = dy * curvature + h_k * (s_k - d_k)
        b = h_k * d_k - dy * curvature
        c = -s_k * dy
        root = (b * b - 4 * a * c).clamp_min(0).sqrt()
        theta = (2 * c) / (-b - root)
        outputs = theta * w_k + x_k
    else:
        theta = (clamped - x_k) / w_k
    between = theta * (1 - theta)
    denominator = s_k + curvature * between
    slope = (
        2 * s_k.log()
        + (d_k1 * theta.square() + 2 * s_k * between + d_k * (1 - theta).square()).log()
        - 2 * denominator.log()
    )
    if inverse:
        slope = -slope
    else:
        outputs = y_k + h_k * (s_k * theta.square() + d_k * between) / denominator
    outputs = torch.where(inside, outputs, inputs)
    return outputs, torch.where(inside, slope, torch.zeros_like(slope))


class _FastSpline:
    """``spline_op`` on unnormalized parameters through :func:`rational_quadratic_spline`."""

    def spline_op(self, x, inverse: bool = False, **kwargs):
        w, h, d = self._params()
        return rational_quadratic_spline(x, w, h, d, bound=self.bound, inverse=inverse, **kwargs)


class _ConditionedRQSpline(_FastSpline, ConditionedSpline):
    def __init__(self, params, bound: float = 3.0):
        super().__init__(params, bound=bound, order="quadratic")


class RQSpline(_FastSpline, _PyroSpline):
    """Pyro's elementwise ``Spline`` (quadratic order), its own parameters per
    dimension, computed by :func:`rational_quadratic_spline`. It starts as the
    identity (equal bins, derivatives 1), where Pyro's starts at a random spline."""

    def __init__(self, input_dim: int, count_bins: int = 8, bound: float = 3.0):
        super().__init__(input_dim, count_bins, bound, order="quadratic")
        with torch.no_grad():
            self.unnormalized_widths.zero_()
            self.unnormalized_heights.zero_()
            self.unnormalized_derivatives.zero_()

    def _params(self):
        return self.unnormalized_widths, self.unnormalized_heights, self.unnormalized_derivatives


class ConditionalRQSpline(_PyroConditionalSpline):
    """Pyro's ``ConditionalSpline`` (quadratic order): ``nn(context)`` gives the
    unnormalized widths, heights and inner derivatives (Pyro's ``DenseNN`` or
    ``AutoRegressiveNN`` with ``param_dims`` [K, K, K - 1], per dimension)."""

    def __init__(self, nn, input_dim: int, count_bins: int, bound: float = 3.0):
        super().__init__(nn, input_dim, count_bins, bound, order="quadratic")

    def _params(self, context):
        w, h, d = self.nn(context)
        if w.shape[-1] == self.input_dim:  # AutoRegressiveNN: (..., K, D)
            return w.transpose(-1, -2), h.transpose(-1, -2), d.transpose(-1, -2)
        dim, bins = self.input_dim, self.count_bins  # DenseNN: (..., D K)
        return (
            w.reshape(w.shape[:-1] + (dim, bins)),
            h.reshape(h.shape[:-1] + (dim, bins)),
            d.reshape(d.shape[:-1] + (dim, bins - 1)),
        )

    def condition(self, context):
        return _ConditionedRQSpline(partial(self._params, context), bound=self.bound)


class RQSplineAutoregressive(_PyroSplineAutoregressive):
    """Pyro's ``SplineAutoregressive`` (quadratic order; the density direction scores
    in one pass of the MADE ``autoregressive_nn``, whose ``param_dims`` are [K, K,
    K - 1]) computed by :func:`rational_quadratic_spline`."""

    def __init__(self, input_dim: int, autoregressive_nn, count_bins: int = 8, bound=3.0):
        super().__init__(input_dim, autoregressive_nn, count_bins, bound, order="quadratic")
        self.spline = ConditionalRQSpline(autoregressive_nn, input_dim, count_bins, bound)


class RQSplineCoupling(_PyroSplineCoupling):
    """Pyro's ``SplineCoupling`` (quadratic order): an elementwise spline on x_1 and a
    spline on x_2 whose knots ``hypernet(x_1)`` gives ([K, K, K - 1] groups of D - split
    each), computed by :func:`rational_quadratic_spline`."""

    def __init__(self, input_dim: int, split_dim: int, hypernet, count_bins: int = 8, bound=3.0):
        super().__init__(input_dim, split_dim, hypernet, count_bins, bound, order="quadratic")
        self.lower_spline = RQSpline(split_dim, count_bins, bound)
        self.upper_spline = ConditionalRQSpline(hypernet, input_dim - split_dim, count_bins, bound)


class ConditionalRQSplineAutoregressive(_PyroConditionalSplineAutoregressive):
    """Pyro's ``ConditionalSplineAutoregressive`` (quadratic order): ``condition(c)``
    gives an :class:`RQSplineAutoregressive` whose MADE also reads the context."""

    def __init__(self, input_dim: int, autoregressive_nn, count_bins: int = 8, bound=3.0):
        super().__init__(input_dim, autoregressive_nn, count_bins=count_bins, bound=bound)

    def condition(self, context) -> RQSplineAutoregressive:
        return RQSplineAutoregressive(
            self.input_dim, partial(self.nn, context=context), **self.kwargs
        )
