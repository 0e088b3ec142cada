"""Distributions pyrogen adds to Pyro's."""

from pyrogen.distributions.fourier import FourierSeriesDensity, autocorrelation

__all__ = ["FourierSeriesDensity", "autocorrelation"]
