"""The pyrogen zoo: one file per family of generative models."""

from pyrogen.models.fourier import (
    DeepFactorizedDensity,
    FourierDensity,
    FourierPrior,
    fourier_density_bayes,
    normalized_autocorrelation,
)
from pyrogen.models.mixture import GaussianMixture, GaussianMixturePrior, normal_mixture_1d
from pyrogen.models.regression import (
    bayesian_linear_regression,
    correlated_design,
    exact_posterior,
)
from pyrogen.models.timeseries import AutoRegressive, ar_model

__all__ = [
    "AutoRegressive",
    "DeepFactorizedDensity",
    "FourierDensity",
    "FourierPrior",
    "GaussianMixture",
    "GaussianMixturePrior",
    "ar_model",
    "bayesian_linear_regression",
    "correlated_design",
    "exact_posterior",
    "fourier_density_bayes",
    "normal_mixture_1d",
    "normalized_autocorrelation",
]
