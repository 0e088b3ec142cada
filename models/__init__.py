"""The pyrogen zoo: one file per family of generative models."""

from pyrogen.models.adversarial import ALI, GAN, AdversarialAutoencoder
from pyrogen.models.autoregressive import (
    FVSBN,
    MADE,
    NADE,
    RNADE,
    DeepNADE,
    PixelCNN,
    RNNDecoder,
    TransformerDecoder,
    WaveNet,
)
from pyrogen.models.diffusion import DDPM
from pyrogen.models.flows import IAF, MAF, NICE, NSF, Glow, RealNVP
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
from pyrogen.models.timeseries import (
    AutoRegressive,
    HiddenMarkov,
    ar_model,
    hmm_model,
    simulate_ar,
)
from pyrogen.models.vae import VAE, Autoencoder, HierarchicalVAE

__all__ = [
    "ALI",
    "AdversarialAutoencoder",
    "GAN",
    "DDPM",
    "Glow",
    "IAF",
    "MAF",
    "NICE",
    "NSF",
    "RealNVP",
    "FVSBN",
    "DeepNADE",
    "MADE",
    "NADE",
    "PixelCNN",
    "RNADE",
    "RNNDecoder",
    "TransformerDecoder",
    "WaveNet",
    "Autoencoder",
    "AutoRegressive",
    "DeepFactorizedDensity",
    "FourierDensity",
    "FourierPrior",
    "GaussianMixture",
    "GaussianMixturePrior",
    "HiddenMarkov",
    "HierarchicalVAE",
    "VAE",
    "ar_model",
    "bayesian_linear_regression",
    "correlated_design",
    "exact_posterior",
    "hmm_model",
    "simulate_ar",
    "fourier_density_bayes",
    "normal_mixture_1d",
    "normalized_autocorrelation",
]
