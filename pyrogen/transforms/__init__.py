"""Transforms pyrogen adds to Pyro's (``pyro.distributions.transforms``): only what
Pyro does not have as such."""

from pyrogen.transforms.autoregressive import (
    BoundedAffineAutoregressive,
    ConditionalBoundedAffineAutoregressive,
)
from pyrogen.transforms.caches import clear_caches
from pyrogen.transforms.conditional import (
    ConditionalAdditiveCoupling,
    ConditionalBoundedAffineCoupling,
    ConditionalSplineCoupling,
)
from pyrogen.transforms.coupling import (
    AdditiveCoupling,
    BoundedAffineCoupling,
    Interleave,
    Reverse,
    Scaling,
    soft_bound,
)
from pyrogen.transforms.image import GlowCoupling, InvertibleConv1x1, MultiscaleFlow, Squeeze
from pyrogen.transforms.norm import ActNorm
from pyrogen.transforms.spline import (
    ConditionalRQSpline,
    ConditionalRQSplineAutoregressive,
    RQSpline,
    RQSplineAutoregressive,
    RQSplineCoupling,
    knot_derivatives,
    rational_quadratic_spline,
)

__all__ = [
    "ActNorm",
    "AdditiveCoupling",
    "BoundedAffineAutoregressive",
    "BoundedAffineCoupling",
    "ConditionalAdditiveCoupling",
    "ConditionalBoundedAffineAutoregressive",
    "ConditionalBoundedAffineCoupling",
    "ConditionalRQSpline",
    "ConditionalRQSplineAutoregressive",
    "ConditionalSplineCoupling",
    "GlowCoupling",
    "Interleave",
    "InvertibleConv1x1",
    "MultiscaleFlow",
    "RQSpline",
    "RQSplineAutoregressive",
    "RQSplineCoupling",
    "Reverse",
    "Scaling",
    "Squeeze",
    "clear_caches",
    "knot_derivatives",
    "rational_quadratic_spline",
    "soft_bound",
]
