"""pyrogen: classic generative models as Pyro model/guide pairs, fitted by generic engines."""

from pyrogen import compat as compat  # registers the NumPyro pyro-api backend
from pyrogen import data, metrics, toy
from pyrogen.diagnostics import Comparison, compare_draws, compare_to_reference, crosscheck
from pyrogen.fit import METHODS, Fit, fit
from pyrogen.infer.mcmc import set_host_devices
from pyrogen.report import InferenceReport, compare_inference
from pyrogen.sbc import SBCResult, sbc
from pyrogen.zoo import ZOO, ZooModel

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "ZOO",
    "Comparison",
    "Fit",
    "InferenceReport",
    "SBCResult",
    "ZooModel",
    "compare_draws",
    "compare_inference",
    "compare_to_reference",
    "crosscheck",
    "data",
    "fit",
    "metrics",
    "toy",
    "sbc",
    "set_host_devices",
]
