"""``pyrogen.fit``: one entry point for every model and every engine."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyro
import torch

from pyrogen.checkpoint import describe
from pyrogen.checkpoint import fingerprint as make_fingerprint
from pyrogen.compat import uses_pyroapi
from pyrogen.infer.em import EMEngine
from pyrogen.infer.loop import run_loop
from pyrogen.infer.mcmc import CHAIN_METHODS, MCMCResult, run_nuts
from pyrogen.infer.svi import (
    SVIEngine,
    make_elbo,
    make_guide,
    make_optim,
    model_structure,
    point_values,
    select_examples,
)
from pyrogen.validation import (
    as_data_tensor,
    check_bool,
    check_choice,
    check_positive_int,
    check_positive_number,
)
from pyrogen.zoo import ZooModel

__all__ = ["fit", "Fit", "METHODS"]

METHODS = ("svi", "map", "mle", "em", "nuts")
Method = Literal["svi", "map", "mle", "em", "nuts"]


@dataclass
class Fit:
    """The result of ``pyrogen.fit``.

    Attributes:
        method: the engine that ran ("svi", "map", "mle", "em" or "nuts").
        model: the zoo object or model function that was fitted.
        losses: the loss after every step (SVI, MAP, MLE: the negative ELBO per
            example; EM: the negative mean log-likelihood), or None for NUTS.
        samples: NUTS draws, site -> array of shape (chain, draw, *site_shape).
        sample_stats: NUTS per-draw statistics (diverging, acceptance_rate, ...).
        params: point estimates of the global latent sites (MAP, EM, SVI median).
        guide: the fitted guide (SVI, MAP, MLE).
    """

    method: str
    model: Any
    args: tuple
    kwargs: dict
    losses: np.ndarray | None = None
    samples: dict[str, np.ndarray] | None = None
    sample_stats: dict[str, np.ndarray] | None = None
    params: dict[str, torch.Tensor] | None = None
    guide: Any = None
    backend: str | None = None
    converged: bool | None = None
    num_steps: int | None = None
    elapsed: float = 0.0
    diagnostics: dict = field(default_factory=dict)

    @property
    def model_fn(self) -> Callable:
        return self.model.model if isinstance(self.model, ZooModel) else self.model

    @property
    def loss(self) -> float | None:
        return None if self.losses is None or not len(self.losses) else float(self.losses[-1])

    def to_arviz(self, num_samples: int = 1000, log_likelihood: bool = True):
        """An ``arviz.InferenceData`` with posterior, sample_stats, log_likelihood and
        observed_data. For SVI/MAP the posterior holds ``num_samples`` draws from the
        fitted guide (one chain); for EM, the point estimate as a single draw."""
        from pyrogen import arviz as bridge

        fn, args, kwargs = self.model_fn, self.args, self.kwargs
        if self.method == "nuts":
            posterior = self.samples
        elif self.method == "em" or self.guide is _empty_guide:
            # a point estimate (EM, maximum likelihood) is one draw of one chain
            posterior = {k: v.detach().cpu().numpy()[None, None] for k, v in self.params.items()}
        else:
            draws = bridge.draws_from_guide(fn, self.guide, args, kwargs, num_samples)
            posterior = {k: v[None] for k, v in draws.items()}
        log_lik = None
        if log_likelihood:
            flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in posterior.items()}
            chains, draws_per_chain = next(iter(posterior.values())).shape[:2]
            if hasattr(self.model, "pointwise_log_likelihood"):
                pointwise = self.model.pointwise_log_likelihood(flat, *args)
            elif self.backend == "numpyro":
                pointwise = bridge.pointwise_log_likelihood_numpyro(fn, flat, args, kwargs)
            else:
                pointwise = bridge.pointwise_log_likelihood(fn, flat, args, kwargs)
            log_lik = {
                k: v.reshape((chains, draws_per_chain) + v.shape[1:]) for k, v in pointwise.items()
            }
        return bridge.build_inference_data(
            posterior,
            sample_stats=self.sample_stats,
            log_likelihood=log_lik,
            observed_data=bridge.observed_sites(fn, args, kwargs),
            losses=self.losses,
            attrs={
                "inference_library": "pyrogen",
                "method": self.method,
                "backend": self.backend or "pyro",
                "model": getattr(self.model, "zoo_name", None)
                or getattr(self.model, "__name__", type(self.model).__name__),
            },
        )

    def summary(self, **kwargs):
        """``arviz.summary`` of the posterior (NUTS) or of the guide's draws."""
        import arviz as az

        return az.summary(self.to_arviz(log_likelihood=False), **kwargs)


def _to_tensors(args, device) -> tuple:
    converted = []
    for i, arg in enumerate(args):
        if isinstance(arg, np.ndarray) or (
            isinstance(arg, torch.Tensor) and arg.dtype != torch.bool
        ):
            converted.append(as_data_tensor(arg, f"args[{i}]", device=device))
        else:
            converted.append(arg)
    return tuple(converted)


def fit(
    model: ZooModel | Callable,
    *args,
    method: Method = "svi",
    guide: str | Callable | None = None,
    loss: str | pyro.infer.ELBO | None = None,
    optim: str | pyro.optim.PyroOptim = "adam",
    lr: float = 0.01,
    num_particles: int = 1,
    vectorize_particles: bool = False,
    seed: int = 0,
    num_steps: int | None = None,
    max_steps: int | None = None,
    batch_size: int | None = None,
    num_epochs: int | None = None,
    tol: float | None = None,
    window: int | None = None,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 4,
    backend: Literal["auto", "pyro", "numpyro"] = "auto",
    target_accept: float = 0.8,
    dense_mass: bool = False,
    chain_method: Literal["auto", "parallel", "sequential", "vectorized"] = "auto",
    jit: bool | None = None,
    fast_elbo: bool = True,
    init: dict | None = None,
    progress: bool | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    callback: Callable[[int, float], bool | None] | None = None,
    device: str | torch.device | None = None,
    **kwargs,
) -> Fit:
    """Fit ``model`` to data with the engine named by ``method``.

    Arguments:
        model: a zoo object (its ``model``/``guide`` are used) or a Pyro model
            function called as ``model(*args, **kwargs)``.
        method: ``"svi"`` (the model's guide, else ``AutoNormal``), ``"map"``
            (``AutoDelta``; enumerated discrete sites summed out by
            ``TraceEnum_ELBO``), ``"mle"`` (no latent guide), ``"em"`` (closed-form
            EM, for models that define it) or ``"nuts"``.
        guide: for SVI: ``"mean_field"`` (AutoNormal), ``"full_rank"``
            (AutoMultivariateNormal), ``"low_rank"`` (AutoLowRankMultivariateNormal),
            ``"flow"`` (AutoIAFNormal), ``"spline"`` (AutoSplineNormal: neural spline
            flows), ``"delta"`` or a guide callable.
        loss: the ELBO: ``"trace"``, ``"mean_field"`` (analytic KL), ``"enum"``,
            ``"iwae"`` (importance-weighted over ``num_particles``) or a
            ``pyro.infer.ELBO``.
        num_particles: samples per ELBO estimate; ``vectorize_particles`` draws them
            in one vectorized pass (the model must respect its plates).
        num_steps: the most steps (SVI default 1000, EM default 100);
            ``max_steps`` is an alias.
        batch_size: SVI/MAP/MLE on minibatches of this many examples (zoo models
            that declare ``supports_batches``: their data plate is told N and scales
            each batch up to it); ``num_epochs`` then sets the number of steps to
            that many passes over the data.
        tol: stop early when the windowed mean loss changes by less than ``tol``
            (EM default 1e-3 on the mean log-likelihood, as scikit-learn).
        jit: compile the ELBO or the NUTS potential with ``torch.jit``. Default: on
            for NUTS, and for SVI on zoo models that declare ``jit_safe``.
        fast_elbo: evaluate Pyro's ``Trace_ELBO`` / ``TraceMeanField_ELBO`` (one
            particle) without building traces (:mod:`pyrogen.infer.fast_elbo`: the same
            number, checked against Pyro's at the first step, else Pyro's is kept).
            ``False`` keeps Pyro's own evaluation throughout.
        init: starting values of latent sites (site -> value) for NUTS chains and
            autoguides, over the model's own start.
        backend: NUTS under ``"pyro"`` or ``"numpyro"``; ``"auto"`` picks NumPyro for
            models written against ``pyroapi`` (faster for small models), else Pyro.
        dense_mass: NUTS adapts a dense mass matrix (the posterior's covariance)
            rather than a diagonal one: fewer leapfrog steps a draw where the
            posterior's coordinates are correlated, at O(d^2) a step.
        chain_method: how NumPyro runs several chains: ``"parallel"`` (one per
            device), ``"sequential"`` or ``"vectorized"`` (all in one pass);
            ``"auto"`` is parallel where there is a device per chain, else vectorized.
            Pyro's chains run one after another.
        checkpoint: a file path; an existing checkpoint resumes the run. It is refused
            (``CheckpointError``, naming what differs) by a run of another model, config,
            data or seed, or, for SVI, MAP and MLE, another optimizer, ``lr``,
            ``batch_size``, ``loss``, ``num_particles`` or guide; ``num_steps`` and
            ``num_epochs`` may change, to extend a run.
        callback: ``callback(step, loss)`` after every step of SVI, MAP, MLE or EM;
            returning True stops the run. An object with ``state_dict`` and
            ``load_state_dict`` (an early-stopping rule keeping its best validation
            score, say) is checkpointed and resumed with the run.

    A zoo model's EM starts from its ``init`` every time; SVI, MAP and NUTS start
    from the model's current fit when it has one (so ``em`` then ``map`` refines),
    else from its ``initialize``.

    Returns:
        A :class:`Fit`.

    Example:
        >>> import pyrogen
        >>> from pyrogen.models import GaussianMixture
        >>> x = pyrogen.data.load("old_faithful")
        >>> result = pyrogen.fit(GaussianMixture(2), x, method="em", progress=False)
        >>> round(result.model.log_prob(x).mean().item(), 3)
        -4.155
    """
    check_choice(method, "method", METHODS)
    check_choice(backend, "backend", ("auto", "pyro", "numpyro"))
    check_choice(chain_method, "chain_method", CHAIN_METHODS)
    if num_steps is not None and max_steps is not None and num_steps != max_steps:
        raise ValueError("num_steps: give num_steps or max_steps (an alias), not both")
    num_steps = num_steps if num_steps is not None else max_steps
    for name, value in (("num_samples", num_samples), ("num_chains", num_chains)):
        check_positive_int(value, name)
    check_positive_int(num_warmup, "num_warmup", minimum=0)
    check_positive_int(num_particles, "num_particles")
    if num_steps is not None:
        check_positive_int(num_steps, "num_steps")
    if tol is not None and not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol: must be a non-negative number, got {tol}")
    check_positive_number(lr, "lr")
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
        if method not in ("svi", "map", "mle") or not getattr(model, "supports_batches", False):
            raise ValueError(
                "batch_size: minibatches need method 'svi', 'map' or 'mle' and a zoo model "
                "that supports them (supports_batches = True)"
            )
    if num_epochs is not None:
        check_positive_int(num_epochs, "num_epochs")
        if batch_size is None:
            raise ValueError("num_epochs: give batch_size too (an epoch is N / batch_size steps)")
        if num_steps is not None:
            raise ValueError("num_epochs: give num_steps or num_epochs, not both")

    check_bool(fast_elbo, "fast_elbo")
    check_bool(dense_mass, "dense_mass")
    is_zoo = isinstance(model, ZooModel)
    if is_zoo:
        if device is not None:
            model.to(device)
        args = model.prepare(*args)
        if device is not None:
            args = tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)
        model_fn = model.model
    elif callable(model):
        args = _to_tensors(args, device)
        model_fn = model
    else:
        raise TypeError(f"model: expected a zoo model or a callable, got {type(model).__name__}")

    pyro.set_rng_seed(seed)
    run_id = None  # what a checkpoint must match to be resumed; hashing data costs time
    if checkpoint is not None:
        run_id = make_fingerprint(
            model=type(model).__name__ if is_zoo else getattr(model, "__qualname__", repr(model)),
            config=getattr(model, "config", None),
            method=method,
            seed=seed,
            data=tuple(a for a in args if isinstance(a, torch.Tensor)),
        )
    result = Fit(method=method, model=model, args=args, kwargs=kwargs)
    began = time.perf_counter()
    if method == "nuts" and is_zoo and hasattr(model, "check_nuts"):
        model.check_nuts()
    init_values = None
    if is_zoo and method in ("svi", "map", "mle", "nuts") and hasattr(model, "initialize"):
        if not bool(getattr(model, "fitted", False)):
            model.initialize(*args)
        init_values = model.point_values()
    if init is not None:
        if not isinstance(init, dict):
            raise TypeError(f"init: expected a dict of site -> value, got {type(init).__name__}")
        start = {k: as_data_tensor(v, f"init[{k!r}]", allow_empty=True) for k, v in init.items()}
        _check_init_sites(start, model_fn, args, kwargs)
        init_values = {**(init_values or {}), **start}

    if method == "nuts":
        portable = uses_pyroapi(model_fn)
        if backend == "auto":
            backend = "numpyro" if portable else "pyro"
        if backend == "numpyro" and not portable:
            raise ValueError(
                "backend: 'numpyro' needs a model written against pyroapi "
                "(from pyroapi import pyro, distributions as dist)"
            )
        mcmc: MCMCResult = run_nuts(
            model_fn,
            args,
            kwargs,
            backend=backend,
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            seed=seed,
            target_accept=target_accept,
            dense_mass=dense_mass,
            chain_method=chain_method,
            jit=True if jit is None else jit,
            init_values=init_values,
            progress=bool(progress),
            checkpoint=checkpoint,
            fingerprint=run_id,
        )
        samples = mcmc.samples
        if is_zoo and hasattr(model, "relabel"):
            samples = model.relabel(samples)
        result.samples, result.sample_stats, result.backend = samples, mcmc.sample_stats, backend
        result.diagnostics["sampling_seconds"] = mcmc.elapsed
        if is_zoo:
            model.absorb(
                {k: torch.as_tensor(np.array(v)).flatten(0, 1) for k, v in samples.items()}
            )
    elif method == "em":
        if not is_zoo:
            raise ValueError("method='em' needs a zoo model that defines closed-form EM")
        result.backend = "torch"
        result = _fit_em(
            model,
            args,
            result,
            num_steps,
            tol,
            progress,
            checkpoint,
            checkpoint_every,
            callback,
            run_id,
        )
    else:
        pyro.clear_param_store()
        # a minibatch model's structure shows on a couple of examples (no trace over all N)
        probe = (
            select_examples(args, slice(0, min(batch_size, 2))) if batch_size is not None else args
        )
        structure = model_structure(model_fn, probe, kwargs)
        if method == "mle" or (not structure.continuous and guide is None):
            # nothing latent to approximate: MAP and SVI reduce to maximum likelihood
            guide_fn = _empty_guide
        elif method == "svi" and guide is None and is_zoo and model.guide is not None:
            guide_fn = model.guide
        else:
            guide_fn = make_guide(
                guide, model_fn, structure, method=method, init_values=init_values
            )
        elbo = make_elbo(
            loss,
            enumerated=structure.enumerated,
            nesting=structure.nesting,
            num_particles=num_particles,
            vectorize_particles=vectorize_particles,
            jit=getattr(model, "jit_safe", False) if jit is None else jit,
        )
        if run_id is not None:  # resuming under another optimizer would change the run
            run_id["training"] = repr(
                (
                    describe(optim),
                    lr if isinstance(optim, str) else None,
                    batch_size,
                    describe(loss),
                    num_particles,
                    describe(guide),
                )
            )
        engine = SVIEngine(
            model_fn,
            guide_fn,
            make_optim(optim, lr),
            elbo,
            args,
            kwargs,
            loss_scale=model.num_examples(*args) if is_zoo else 1.0,
            batch_size=batch_size,
            fast=fast_elbo,
        )
        if num_epochs is not None:
            num_steps = num_epochs * math.ceil(model.num_examples(*args) / batch_size)
        looped = run_loop(
            engine,
            num_steps=num_steps or 1000,
            tol=tol,
            window=window or 50,
            progress=progress,
            desc=f"{method} {getattr(model, 'zoo_name', '') or getattr(model, '__name__', '')}",
            loss_name="loss",
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            fingerprint=run_id,
            callback=callback,
        )
        result.losses, result.num_steps = looped.losses, looped.num_steps
        result.converged, result.guide, result.backend = looped.converged, guide_fn, "pyro"
        result.diagnostics["resumed_from"] = looped.resumed_from
        if batch_size is not None:
            # an amortized guide's latents are per example: the fit is the networks
            if is_zoo:
                model.absorb({})
            result.params = _parameter_values(model)
        elif guide_fn is not _empty_guide:
            result.params = point_values(guide_fn, args, kwargs)
            if is_zoo:
                model.absorb(result.params)
        elif is_zoo:
            model.absorb({})
            result.params = _parameter_values(model)
        else:
            result.params = {
                name: value.detach().clone() for name, value in pyro.get_param_store().items()
            }
    result.elapsed = time.perf_counter() - began
    return result


def _check_init_sites(start: dict, model_fn, args, kwargs) -> None:
    """Refuse ``init`` entries that name no latent site of the model (the initializers
    would ignore them silently), naming the sites there are."""
    from pyrogen.compat import backend
    from pyrogen.infer.init import trace_structure

    with backend("pyro"):
        trace = trace_structure(model_fn, args, kwargs)
    latent = [
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"]
    ]
    unknown = [name for name in start if name not in latent]
    if unknown:
        raise ValueError(
            f"init: {', '.join(map(repr, unknown))} "
            f"{'is not a latent site' if len(unknown) == 1 else 'are not latent sites'} "
            f"of the model; its latent sites: {', '.join(latent) or 'none'}"
        )


def _empty_guide(*args, **kwargs) -> None:
    return None


def _parameter_values(model: ZooModel) -> dict[str, torch.Tensor]:
    """A maximum-likelihood fit's point: the model's sites, else its parameters."""
    values = model.point_values()
    if values:
        return values
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _fit_em(
    model, args, result, num_steps, tol, progress, checkpoint, checkpoint_every, callback, run_id
) -> Fit:
    (x,) = args[:1]
    n_init = getattr(model.config, "n_init", 1)
    best = None
    for attempt in range(n_init):
        path = checkpoint
        if checkpoint is not None and n_init > 1:
            path = f"{os.fspath(checkpoint)}.init{attempt}"
        if path is None or not os.path.exists(path):
            model.em_init(x)
        looped = run_loop(
            EMEngine(model, x),
            num_steps=num_steps or 100,
            tol=1e-3 if tol is None else tol,
            window=1,
            progress=progress,
            desc=f"em {model.zoo_name}" + (f" init {attempt + 1}/{n_init}" if n_init > 1 else ""),
            loss_name="-loglik",
            checkpoint=path,
            checkpoint_every=checkpoint_every,
            fingerprint={**(run_id or {}), "attempt": str(attempt)},
            callback=callback,
        )
        with torch.no_grad():
            final = float(model.log_prob(x).mean())
        if best is None or final > best[0]:
            best = (final, looped, {k: v.clone() for k, v in model.state_dict().items()})
    final, looped, state = best
    model.load_state_dict(state)
    result.losses, result.num_steps, result.converged = (
        looped.losses,
        looped.num_steps,
        looped.converged,
    )
    result.params = model.point_values()
    result.diagnostics.update(log_likelihood=final, resumed_from=looped.resumed_from)
    return result
