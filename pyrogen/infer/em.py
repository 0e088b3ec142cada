"""Closed-form expectation-maximization as a loop engine.

A model that supports EM defines ``em_step(x) -> float``: one E-step and one M-step,
returning the mean log-likelihood of ``x`` under the parameters *before* the
M-step (the quantity EM never decreases). The engine reports its negative as the
loss, so the shared loop's ``tol`` rule is sklearn's: stop when the mean
log-likelihood changes by less than ``tol``.
"""

from __future__ import annotations

import torch

__all__ = ["EMEngine"]


class EMEngine:
    def __init__(self, model, x: torch.Tensor):
        if not hasattr(model, "em_step"):
            raise ValueError(
                f"method='em': {type(model).__name__} has no closed-form EM; "
                "use method='map' or method='svi'"
            )
        self.model, self.x = model, x

    @torch.no_grad()
    def update(self) -> float:
        return -float(self.model.em_step(self.x))

    def state_dict(self) -> dict:
        return {"model": {k: v.clone() for k, v in self.model.state_dict().items()}}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
