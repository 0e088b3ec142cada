r"""Conditional coupling transforms Pyro lacks: NICE's additive coupling, the bounded
affine coupling and the spline coupling with a context c. Pyro has the affine ones
(``ConditionalAffineCoupling``, ``ConditionalAffineAutoregressive``) and the
autoregressive spline (``ConditionalSplineAutoregressive``); these follow them:
``condition(c)`` returns the plain transform whose network reads (x_1, c), so a
``TransformedDistribution`` of the conditioned transforms is p(x | c).
"""

from __future__ import annotations

from functools import partial

import torch
from pyro.distributions import constraints
from pyro.distributions.conditional import ConditionalTransformModule
from pyro.distributions.transforms import SplineCoupling
from pyro.distributions.transforms.spline import ConditionalSpline, Spline

from pyrogen.transforms.coupling import AdditiveCoupling, BoundedAffineCoupling
from pyrogen.transforms.spline import SPLINE_ORDERS, ConditionalRQSpline, RQSpline
from pyrogen.validation import check_choice

__all__ = [
    "ConditionalAdditiveCoupling",
    "ConditionalBoundedAffineCoupling",
    "ConditionalSplineCoupling",
]


class ConditionalAdditiveCoupling(ConditionalTransformModule):
    """y = (x_1, x_2 + m(x_1, c)) given a context c: ``hypernet(x_1, context=c)``
    gives m (Pyro's ``ConditionalDenseNN`` does)."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, split_dim: int, hypernet: torch.nn.Module):
        super().__init__()
        self.split_dim, self.nn = int(split_dim), hypernet

    def condition(self, context) -> AdditiveCoupling:
        return AdditiveCoupling(self.split_dim, partial(self.nn, context=context))


class ConditionalBoundedAffineCoupling(ConditionalTransformModule):
    """:class:`~pyrogen.transforms.BoundedAffineCoupling` given a context c:
    ``hypernet(x_1, context=c)`` gives (t, a) (Pyro's ``ConditionalDenseNN`` does)."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, split_dim: int, hypernet: torch.nn.Module, scale_bound: float = 5.0):
        super().__init__()
        self.split_dim, self.nn, self.scale_bound = int(split_dim), hypernet, float(scale_bound)

    def condition(self, context) -> BoundedAffineCoupling:
        return BoundedAffineCoupling(
            self.split_dim, partial(self.nn, context=context), self.scale_bound
        )


class _ConditionedSplineCoupling(SplineCoupling):
    """A ``SplineCoupling`` whose lower spline is shared with its conditional parent
    and whose upper spline's network also reads the context."""

    def __init__(self, parent: ConditionalSplineCoupling, context):
        super(SplineCoupling, self).__init__(cache_size=1)
        self.lower_spline = parent.lower_spline
        upper = (
            partial(parent.nn, context=context),
            parent.input_dim - parent.split_dim,
            parent.count_bins,
            parent.bound,
        )
        if parent.order == "quadratic":
            self.upper_spline = ConditionalRQSpline(*upper)
        else:
            self.upper_spline = ConditionalSpline(*upper)
        self.split_dim, self.identity = parent.split_dim, False


class ConditionalSplineCoupling(ConditionalTransformModule):
    """Pyro's ``SplineCoupling`` given a context c: an elementwise spline on x_1 and a
    spline on x_2 whose knots ``hypernet(x_1, context=c)`` gives, per coordinate of
    x_2, parameter groups of sizes bins, bins, bins - 1 (``order="quadratic"``, the
    default: rational-quadratic splines by
    :func:`~pyrogen.transforms.spline.rational_quadratic_spline`) or bins, bins,
    bins - 1, bins (``order="linear"``: Pyro's linear rational splines)."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(
        self,
        input_dim: int,
        split_dim: int,
        hypernet,
        count_bins: int = 8,
        bound=3.0,
        order: str = "quadratic",
    ):
        super().__init__()
        check_choice(order, "order", SPLINE_ORDERS)
        self.input_dim, self.split_dim, self.nn = int(input_dim), int(split_dim), hypernet
        self.count_bins, self.bound, self.order = int(count_bins), float(bound), order
        if order == "quadratic":
            self.lower_spline = RQSpline(split_dim, count_bins, bound)
        else:
            self.lower_spline = Spline(split_dim, count_bins, bound)

    def condition(self, context) -> SplineCoupling:
        return _ConditionedSplineCoupling(self, context)
