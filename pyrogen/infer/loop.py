"""The one training loop: seed, progress bar, checkpoint/resume and early stopping.

Engines (SVI, EM, adversarial, ...) only say how to take one step; everything
around the step is written once, here. An engine is any object with

- ``update() -> float``: take one step and return the loss (lower is better),
- ``state_dict() -> dict`` and ``load_state_dict(state)``: what a checkpoint holds.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyro
from tqdm.auto import tqdm

from pyrogen.checkpoint import load_checkpoint, save_checkpoint

__all__ = [
    "Engine",
    "LoopResult",
    "run_loop",
    "run_options_loop",
    "default_progress",
    "tol_reached",
]


class Engine(Protocol):
    def update(self) -> float: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class LoopResult:
    losses: np.ndarray  # the loss after every step, resumed steps included
    num_steps: int  # steps taken in total
    converged: bool  # stopped because the loss changed less than ``tol``
    resumed_from: int | None  # the step a checkpoint resumed from, if any
    elapsed: float  # seconds spent in this call
    extra: dict = field(default_factory=dict)


def default_progress() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def run_loop(
    engine: Engine,
    *,
    num_steps: int,
    tol: float | None = None,
    window: int = 1,
    min_steps: int = 0,
    progress: bool | None = None,
    desc: str = "fit",
    loss_name: str = "loss",
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    fingerprint: dict | None = None,
    callback: Callable[[int, float], bool | None] | None = None,
    trust_checkpoint: bool = False,
) -> LoopResult:
    """Run ``engine.update()`` until ``num_steps`` or convergence.

    Arguments:
        num_steps: the most steps to take (a resumed run counts the steps it resumed).
        tol: stop when the mean loss over the last ``window`` steps differs from the
            mean over the ``window`` steps before by less than ``tol``.
        checkpoint: a path; if it exists the run resumes from it, and the state is
            saved there every ``checkpoint_every`` steps and at the end. Random
            number generator states are saved too, so a resumed run reproduces an
            uninterrupted one step for step.
        callback: called as ``callback(step, loss)`` after every step; returning
            True stops the run. A callback object with ``state_dict()`` and
            ``load_state_dict(state)`` (an early-stopping rule that keeps its best
            validation score, say) is saved with each checkpoint, after its call at
            that step, and restored before a resumed run's first step.
    """
    if progress is None:
        progress = default_progress()
    fingerprint = fingerprint or {}
    losses, resumed_from, converged = _resume(
        engine, checkpoint, fingerprint, callback, trust_checkpoint
    )
    start = resumed_from or 0
    _warn_if_longer(start, num_steps, checkpoint, desc)

    def save(step: int) -> None:
        if checkpoint is not None:
            _save(engine, checkpoint, fingerprint, callback, losses, step, converged)

    began = time.perf_counter()
    step = start
    bar = tqdm(total=num_steps, initial=start, desc=desc, disable=not progress, leave=False)
    try:
        while step < num_steps and not converged:
            loss = float(engine.update())
            if not np.isfinite(loss):
                raise FloatingPointError(
                    f"{desc}: the {loss_name} became {loss} at step {step + 1}; "
                    "lower the learning rate or check the data"
                )
            losses.append(loss)
            step += 1
            bar.update(1)
            if step % max(1, num_steps // 200) == 0 or step == num_steps:
                others = engine.postfix() if hasattr(engine, "postfix") else {}  # a critic's
                bar.set_postfix({loss_name: f"{loss:.4g}", **others}, refresh=False)
            if step >= min_steps:
                converged = tol_reached(losses, tol, window)
            if callback is not None and callback(step, loss):
                break
            if checkpoint is not None and step % checkpoint_every == 0:
                save(step)
    finally:
        bar.close()
    if checkpoint is not None and step != resumed_from:
        save(step)
    return LoopResult(
        losses=np.asarray(losses, dtype=float),
        num_steps=step,
        converged=converged,
        resumed_from=resumed_from,
        elapsed=time.perf_counter() - began,
    )


def run_options_loop(
    engine,
    run,
    *,
    num_steps: int,
    desc: str,
    loss_name: str = "loss",
    fingerprint: dict | None = None,
    callback=None,
) -> LoopResult:
    """:func:`run_loop` with a fit's :class:`~pyrogen.infer.options.RunOptions` (tol,
    window, progress, checkpoint, callback) as every engine passes them; ``callback``
    replaces the run's (an engine's rule wrapped around it)."""
    return run_loop(
        engine,
        num_steps=num_steps,
        tol=run.tol,
        window=run.window or 50,
        progress=run.progress,
        desc=desc,
        loss_name=loss_name,
        checkpoint=run.checkpoint,
        checkpoint_every=run.checkpoint_every,
        fingerprint=fingerprint,
        callback=run.callback if callback is None else callback,
        trust_checkpoint=run.trust_checkpoint,
    )


def tol_reached(losses, tol: float | None, window: int) -> bool:
    """The ``tol`` rule: the mean loss over the last ``window`` steps differs from the
    mean over the ``window`` steps before by less than ``tol``."""
    if tol is None or len(losses) < 2 * window:
        return False
    recent = np.mean(losses[-window:])
    before = np.mean(losses[-2 * window : -window])
    return bool(abs(before - recent) < tol)


def _resume(engine, checkpoint, fingerprint: dict, callback, trust: bool = False):
    """(losses, step, converged) of the run a checkpoint holds, its engine, random
    number generators and callback restored; ([], None, False) where there is none."""
    if checkpoint is None or not os.path.exists(checkpoint):
        return [], None, False
    state = load_checkpoint(checkpoint, fingerprint, trust)
    engine.load_state_dict(state["engine"])
    pyro.util.set_rng_state(state["rng"])
    if "callback" in state and hasattr(callback, "load_state_dict"):
        callback.load_state_dict(state["callback"])
    return list(state["losses"]), state["step"], state["converged"]


def _save(engine, checkpoint, fingerprint, callback, losses, step: int, converged: bool) -> None:
    state = {
        "engine": engine.state_dict(),
        "rng": pyro.util.get_rng_state(),
        "losses": np.asarray(losses),
        "step": step,
        "converged": converged,
    }
    if hasattr(callback, "state_dict"):
        state["callback"] = callback.state_dict()
    save_checkpoint(checkpoint, state, fingerprint)


def _warn_if_longer(start: int, num_steps: int, checkpoint, desc: str) -> None:
    """A checkpoint longer than the run asked for is returned as it is: say so."""
    if start > num_steps:
        warnings.warn(
            f"{desc}: the checkpoint {str(checkpoint)!r} holds {start} steps, more than "
            f"num_steps={num_steps}; the fit is that longer run, not a shorter one (use "
            "another checkpoint path for a fresh run)",
            UserWarning,
            stacklevel=4,
        )
