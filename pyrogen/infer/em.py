"""Closed-form expectation-maximization as a loop engine.

A model that supports EM defines ``em_step(x) -> float``: one E-step and one M-step,
returning the mean log-likelihood of ``x`` under the parameters *before* the
M-step (the quantity EM never decreases). The engine reports its negative as the
loss, so the shared loop's ``tol`` rule is sklearn's: stop when the mean
log-likelihood changes by less than ``tol``.
"""

from __future__ import annotations

import os

import torch

from pyrogen.infer.loop import run_loop

__all__ = ["EMEngine", "fit_em"]


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


def fit_em(target, args, run, result, fingerprint: dict | None = None):
    """``fit(method="em")``: ``config.n_init`` runs of EM from fresh starts (each with a
    checkpoint of its own, matched against ``fingerprint``), the one with the highest
    final log-likelihood kept."""
    x = args[0]
    n_init = getattr(target.config, "n_init", 1)
    fingerprint = fingerprint or {}
    best = None
    for attempt in range(n_init):
        path = run.checkpoint
        if path is not None and n_init > 1:
            path = f"{os.fspath(path)}.init{attempt}"
        if path is None or not os.path.exists(path):
            target.em_init(x)
        looped = run_loop(
            EMEngine(target, x),
            num_steps=run.num_steps or 100,
            tol=1e-3 if run.tol is None else run.tol,
            window=1,
            progress=run.progress,
            desc=f"em {target.name}" + (f" init {attempt + 1}/{n_init}" if n_init > 1 else ""),
            loss_name="-loglik",
            checkpoint=path,
            checkpoint_every=run.checkpoint_every,
            fingerprint={**fingerprint, "attempt": str(attempt)},
            callback=run.callback,
            trust_checkpoint=run.trust_checkpoint,
        )
        with torch.no_grad():
            final = float(target.log_prob(x).mean())
        if best is None or final > best[0]:
            best = (final, looped, {k: v.clone() for k, v in target.state_dict().items()})
    final, looped, state = best
    target.load_state_dict(state)
    result.losses, result.num_steps = looped.losses, looped.num_steps
    result.converged, result.backend = looped.converged, "torch"
    result.params = target.point_values()
    result.diagnostics.update(log_likelihood=final, resumed_from=looped.resumed_from)
    return result
