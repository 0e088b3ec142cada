"""Stochastic variational inference as a loop engine.

``SVIEngine`` mirrors NumPyro's ``SVI`` split: ``init`` builds the parameters,
``update`` takes one gradient step, ``evaluate`` computes the loss without a step.
The loop around it (progress, checkpoints, early stopping) is ``run_loop``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import pyro
import pyro.optim
import torch
from pyro import poutine
from pyro.infer import (
    SVI,
    JitTrace_ELBO,
    JitTraceEnum_ELBO,
    JitTraceMeanField_ELBO,
    RenyiELBO,
    Trace_ELBO,
    TraceEnum_ELBO,
    TraceMeanField_ELBO,
)
from pyro.infer.autoguide import (
    AutoDelta,
    AutoIAFNormal,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)

from pyrogen.infer.init import init_from, trace_structure

__all__ = [
    "ModelStructure",
    "SVIEngine",
    "make_elbo",
    "make_guide",
    "make_optim",
    "max_plate_nesting",
    "model_structure",
    "point_values",
]


@contextmanager
def quiet_jit_tracing():
    """Pyro's jit ELBOs and NUTS trace with torch.jit.trace, which torch now flags as
    deprecated; the flag says nothing a pyrogen user can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.trace.*is deprecated")
        yield


@dataclass
class ModelStructure:
    """What the engines need to know about a model, read from one trace of it."""

    enumerated: bool  # some discrete site is marked for enumeration
    nesting: int  # max_plate_nesting
    continuous: list[str]  # latent sites a continuous guide must cover


def model_structure(model, args=(), kwargs=None) -> ModelStructure:
    trace = trace_structure(model, args, kwargs or {})
    sites = [s for s in trace.nodes.values() if s["type"] == "sample"]
    dims = [f.dim for s in sites for f in s["cond_indep_stack"] if f.vectorized]
    return ModelStructure(
        enumerated=any(s["infer"].get("enumerate") for s in sites),
        nesting=-min(dims) if dims else 0,
        continuous=[
            s["name"]
            for s in sites
            if not s["is_observed"]
            and not s["infer"].get("enumerate")
            and not getattr(s["fn"], "has_enumerate_support", False)
        ],
    )


def max_plate_nesting(model, args=(), kwargs=None) -> int:
    return model_structure(model, args, kwargs).nesting


def make_elbo(
    loss: str | pyro.infer.ELBO | None,
    *,
    enumerated: bool,
    nesting: int,
    num_particles: int = 1,
    vectorize_particles: bool = False,
    jit: bool = False,
) -> pyro.infer.ELBO:
    """Pick the ELBO estimator: ``"trace"``, ``"mean_field"`` (analytic KL), ``"enum"``,
    or ``"iwae"`` (the importance-weighted bound, Renyi alpha = 0, over
    ``num_particles`` samples); with ``jit`` its compiled (``torch.jit``) twin, for
    models without data-dependent Python control flow."""
    if isinstance(loss, pyro.infer.ELBO):
        return loss
    if loss == "iwae":
        if enumerated:
            raise ValueError("loss: 'iwae' cannot sum out enumerated discrete sites")
        return RenyiELBO(
            alpha=0.0,
            num_particles=num_particles,
            vectorize_particles=vectorize_particles,
            max_plate_nesting=nesting + (1 if vectorize_particles else 0),
        )
    options = dict(
        num_particles=num_particles,
        vectorize_particles=vectorize_particles,
        max_plate_nesting=nesting + (1 if vectorize_particles else 0),
    )
    if loss is None:
        loss = "enum" if enumerated else "trace"
    if enumerated:
        loss = "enum"
    classes = {
        "trace": (Trace_ELBO, JitTrace_ELBO),
        "mean_field": (TraceMeanField_ELBO, JitTraceMeanField_ELBO),
        "enum": (TraceEnum_ELBO, JitTraceEnum_ELBO),
    }
    if loss in classes:
        if jit:
            return classes[loss][1](ignore_jit_warnings=True, **options)
        return classes[loss][0](**options)
    raise ValueError(
        f"loss: must be 'trace', 'mean_field', 'enum', 'iwae' or a pyro ELBO, got {loss!r}"
    )


def make_optim(optim: str | pyro.optim.PyroOptim, lr: float) -> pyro.optim.PyroOptim:
    if isinstance(optim, pyro.optim.PyroOptim):
        return optim
    if optim == "adam":
        return pyro.optim.Adam({"lr": lr})
    if optim == "clipped_adam":
        return pyro.optim.ClippedAdam({"lr": lr, "clip_norm": 10.0})
    if optim == "sgd":
        return pyro.optim.SGD({"lr": lr})
    raise ValueError(f"optim: must be 'adam', 'clipped_adam', 'sgd' or a PyroOptim, got {optim!r}")


def make_guide(
    guide, model, structure: ModelStructure, *, method: str, init_values=None
) -> Callable:
    """The guide for ``method``: the one given, AutoDelta for MAP, else by name:

    - ``"mean_field"``: AutoNormal, independent normals in the unconstrained space;
    - ``"full_rank"``: AutoMultivariateNormal, one dense Gaussian over all sites;
    - ``"low_rank"``: AutoLowRankMultivariateNormal, diagonal plus a low-rank factor;
    - ``"flow"``: AutoIAFNormal, a normal pushed through inverse autoregressive flows;
    - ``"spline"``: AutoSplineNormal, rational-quadratic spline flows then an affine map
      started at the initial point;
    - ``"delta"``: AutoDelta, a point mass (MAP).

    Autoguides start at ``init_values`` where given (e.g. a model's k-means start)."""
    if guide is not None and not isinstance(guide, str):
        return guide
    if guide is None:
        guide = "delta" if method == "map" else "mean_field"
    # enumerated discrete sites are summed out by the ELBO, so the guide leaves them alone
    exposed = poutine.block(model, expose=structure.continuous)
    if guide == "delta":
        return AutoDelta(exposed, init_loc_fn=init_from(init_values))
    start = init_from(init_values)
    if guide == "mean_field":
        return AutoNormal(exposed, init_loc_fn=start)
    if guide == "full_rank":
        return AutoMultivariateNormal(exposed, init_loc_fn=start)
    if guide == "low_rank":
        return AutoLowRankMultivariateNormal(exposed, init_loc_fn=start)
    if guide == "flow":
        return AutoIAFNormal(exposed, num_transforms=2)
    if guide == "spline":
        from pyrogen.infer.guides import AutoSplineNormal

        return AutoSplineNormal(exposed, init_loc_fn=start)
    raise ValueError(
        "guide: must be 'mean_field', 'full_rank', 'low_rank', 'flow', 'spline', 'delta' or a "
        "callable, "
        f"got {guide!r}"
    )


def point_values(guide, args=(), kwargs=None) -> dict[str, torch.Tensor]:
    """Point estimates of the guide's sites: its median, or the values of a Delta guide."""
    kwargs = kwargs or {}
    with torch.no_grad():
        if hasattr(guide, "median"):
            try:
                return {k: v.detach() for k, v in guide.median(*args, **kwargs).items()}
            except NotImplementedError:  # flow guides: the median of draws instead
                draws = [poutine.trace(guide).get_trace(*args, **kwargs) for _ in range(500)]
                names = [n for n, s in draws[0].nodes.items() if s["type"] == "sample"]
                return {
                    n: torch.stack([t.nodes[n]["value"] for t in draws]).median(0).values
                    for n in names
                    if not draws[0].nodes[n]["is_observed"]
                }
        trace = poutine.trace(guide).get_trace(*args, **kwargs)
    return {
        name: site["value"].detach()
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"]
    }


class SVIEngine:
    """One SVI step per ``update``; the loss is divided by ``loss_scale`` (e.g. N)."""

    def __init__(self, model, guide, optim, elbo, args=(), kwargs=None, loss_scale: float = 1.0):
        self.model, self.guide, self.optim, self.elbo = model, guide, optim, elbo
        self.args, self.kwargs = args, kwargs or {}
        self.loss_scale = loss_scale
        self.svi = SVI(model, guide, optim, elbo)
        self.traced = False  # a jit ELBO compiles on its first step

    def update(self) -> float:
        if self.traced:
            return self.svi.step(*self.args, **self.kwargs) / self.loss_scale
        with quiet_jit_tracing():
            loss = self.svi.step(*self.args, **self.kwargs) / self.loss_scale
        self.traced = True
        return loss

    def evaluate(self) -> float:
        with torch.no_grad():
            return self.svi.evaluate_loss(*self.args, **self.kwargs) / self.loss_scale

    def state_dict(self) -> dict:
        return {"params": pyro.get_param_store().get_state(), "optim": self.optim.get_state()}

    def load_state_dict(self, state: dict) -> None:
        # Build the guide's parameters first: an autoguide that sets itself up later
        # would overwrite the restored values with its initial ones.
        with poutine.block(), torch.no_grad():
            self.guide(*self.args, **self.kwargs)
        pyro.get_param_store().set_state(state["params"])
        self.optim.set_state(state["optim"])
