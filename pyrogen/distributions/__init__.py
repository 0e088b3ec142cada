"""Distributions pyrogen adds to Pyro's."""

from pyrogen.distributions.fourier import (
    FourierSeriesDensity,
    autocorrelation,
    relative_coefficients,
)
from pyrogen.distributions.mixture import DiagonalNormalMixture

__all__ = [
    "DiagonalNormalMixture",
    "FourierSeriesDensity",
    "autocorrelation",
    "relative_coefficients",
]
