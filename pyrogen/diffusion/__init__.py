"""Diffusion models' parts: noise schedules, the reverse step's variances and the
training losses (see :mod:`pyrogen.models.diffusion` for the model)."""

from pyrogen.diffusion.losses import LOSSES, DiffusionLoss
from pyrogen.diffusion.reverse import VARIANCES, gaussian_kl, reverse_variance
from pyrogen.diffusion.schedules import SCHEDULES, NoiseSchedule, Pair

__all__ = [
    "LOSSES",
    "SCHEDULES",
    "VARIANCES",
    "DiffusionLoss",
    "NoiseSchedule",
    "Pair",
    "gaussian_kl",
    "reverse_variance",
]
