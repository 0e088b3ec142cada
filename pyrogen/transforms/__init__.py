"""Transforms pyrogen adds to Pyro's (``pyro.distributions.transforms``): only what
Pyro does not have as such."""

from pyrogen.transforms.coupling import AdditiveCoupling, Scaling

__all__ = ["AdditiveCoupling", "Scaling"]
