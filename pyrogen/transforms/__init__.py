"""Transforms pyrogen adds to Pyro's (``pyro.distributions.transforms``): only what
Pyro does not have as such."""

from pyrogen.transforms.caches import clear_caches
from pyrogen.transforms.conditional import ConditionalAdditiveCoupling, ConditionalSplineCoupling
from pyrogen.transforms.coupling import AdditiveCoupling, Interleave, Reverse, Scaling
from pyrogen.transforms.image import GlowCoupling, InvertibleConv1x1, MultiscaleFlow, Squeeze
from pyrogen.transforms.norm import ActNorm

__all__ = [
    "ActNorm",
    "AdditiveCoupling",
    "ConditionalAdditiveCoupling",
    "ConditionalSplineCoupling",
    "GlowCoupling",
    "Interleave",
    "InvertibleConv1x1",
    "MultiscaleFlow",
    "Reverse",
    "Scaling",
    "Squeeze",
    "clear_caches",
]
