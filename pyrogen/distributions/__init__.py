"""Distributions pyrogen adds to Pyro's."""

from pyrogen.distributions.fourier import (
    FourierSeriesDensity,
    autocorrelation,
    relative_coefficients,
)

__all__ = ["FourierSeriesDensity", "autocorrelation", "relative_coefficients"]
