"""The pyrogen zoo: one file per family of generative models."""

from pyrogen.models.mixture import GaussianMixture, GaussianMixturePrior, normal_mixture_1d

__all__ = ["GaussianMixture", "GaussianMixturePrior", "normal_mixture_1d"]
