"""Distributions pyrogen adds to Pyro's."""

from pyrogen.distributions.fourier import (
    FourierSeriesDensity,
    autocorrelation,
    levinson_step_up,
    minimum_phase,
    reflection_coefficients,
    relative_coefficients,
)
from pyrogen.distributions.implicit import Implicit, ImplicitDensityError
from pyrogen.distributions.mixture import DiagonalNormalMixture, NormalMixture
from pyrogen.distributions.network import NetworkDistribution

__all__ = [
    "DiagonalNormalMixture",
    "FourierSeriesDensity",
    "Implicit",
    "ImplicitDensityError",
    "NetworkDistribution",
    "NormalMixture",
    "autocorrelation",
    "levinson_step_up",
    "minimum_phase",
    "reflection_coefficients",
    "relative_coefficients",
]
