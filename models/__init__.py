"""The pyrogen zoo: one file per family of generative models."""

from pyrogen.models.fourier import (
    DeepFactorizedDensity,
    FourierDensity,
    FourierPrior,
    fourier_density_bayes,
    normalized_autocorrelation,
)
from pyrogen.models.mixture import GaussianMixture, GaussianMixturePrior, normal_mixture_1d

__all__ = [
    "DeepFactorizedDensity",
    "FourierDensity",
    "FourierPrior",
    "GaussianMixture",
    "GaussianMixturePrior",
    "fourier_density_bayes",
    "normal_mixture_1d",
    "normalized_autocorrelation",
]
