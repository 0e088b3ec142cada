"""Engines: the shared loop, SVI, closed-form EM and NUTS under Pyro or NumPyro."""

from pyrogen.infer.em import EMEngine
from pyrogen.infer.guides import AutoFlow, AutoSplineNormal
from pyrogen.infer.loop import LoopResult, run_loop
from pyrogen.infer.mcmc import MCMCResult, run_nuts
from pyrogen.infer.svi import SVIEngine

__all__ = [
    "AutoFlow",
    "AutoSplineNormal",
    "EMEngine",
    "LoopResult",
    "MCMCResult",
    "SVIEngine",
    "run_loop",
    "run_nuts",
]
