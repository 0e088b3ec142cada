"""``pyrogen.fit``: one entry point for every model and every engine."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyro
import torch

from pyrogen.checkpoint import fingerprint as make_fingerprint
from pyrogen.infer.em import fit_em
from pyrogen.infer.mcmc import fit_nuts
from pyrogen.infer.options import split_options
from pyrogen.infer.svi import empty_guide, fit_svi
from pyrogen.validation import as_data_tensor, check_choice
from pyrogen.zoo import (
    ALL_METHODS,
    SupportsMinibatches,
    SupportsPointwiseLogLikelihood,
    ZooModel,
    as_target,
    check_method,
)

__all__ = ["fit", "Fit", "METHODS"]

METHODS = ALL_METHODS
Method = Literal["svi", "map", "mle", "em", "nuts", "adversarial"]


def _fixed_guide(model) -> bool:
    """A model whose guide has no parameters (a DDPM's forward process): its fit is a
    point estimate of its networks, not a posterior over its per-example latents."""
    return bool(getattr(model, "fixed_guide", False))


@dataclass
class Fit:
    """The result of ``pyrogen.fit``.

    Attributes:
        method: the engine that ran ("svi", "map", "mle", "em", "nuts" or
            "adversarial").
        model: the zoo object or model function that was fitted.
        losses: the loss after every step (SVI, MAP, MLE: the negative ELBO per
            example; EM: the negative mean log-likelihood; adversarial: the players'
            loss, the critic's in ``diagnostics["critic_losses"]``), or None for NUTS.
        samples: NUTS draws, site -> array of shape (chain, draw, *site_shape).
        sample_stats: NUTS per-draw statistics (diverging, acceptance_rate, ...).
        params: the fitted point, site or parameter name -> tensor: the global
            latent sites' point estimates (EM and MAP: the optimum; SVI: the guide's
            median; NUTS: the posterior mean), or, for a model with no global latent
            site (networks fitted by maximum likelihood, an amortized VAE, a function
            with no latent site), its parameters by name.
        guide: the fitted guide (SVI, MAP, MLE).
        converged: whether the fit met its convergence rule: SVI's and MAP's iterate
            averaging (``convergence``, by default where no step count is given), or
            the ``tol`` rule where ``tol`` is given; None where nothing was assessed
            (NUTS, a fixed number of steps).
        precision: the floating type the engine computed in ("float64" or "float32").
        critic: the adversarial engine's trained critic (``method="adversarial"``).
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
    precision: str | None = None
    num_steps: int | None = None
    elapsed: float = 0.0
    diagnostics: dict = field(default_factory=dict)
    critic: Any = None

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
        precision = self.precision if self.method == "nuts" else None
        with data_dtype(self.args, self.kwargs, precision):
            return self._to_arviz(num_samples, log_likelihood)

    def _to_arviz(self, num_samples: int, log_likelihood: bool):
        from pyrogen import arviz as bridge

        fn, args, kwargs = self.model_fn, self.args, self.kwargs
        if self.method == "nuts":
            posterior = self.samples
        elif (
            self.method in ("em", "adversarial")
            or self.guide is empty_guide
            or _fixed_guide(self.model)
        ):
            # a point estimate (EM, maximum likelihood, the networks under a guide
            # without parameters) is one draw of one chain
            posterior = {k: v.detach().cpu().numpy()[None, None] for k, v in self.params.items()}
        else:  # the guide's draws, and the model's deterministic sites at each (as NUTS)
            draws = bridge.draws_from_guide(fn, self.guide, args, kwargs, num_samples)
            draws.update(bridge.deterministic_sites(fn, draws, args, kwargs))
            posterior = {k: v[None] for k, v in draws.items()}
        if hasattr(self.model, "observed_data"):  # a model that names its data itself
            observed, factors = self.model.observed_data(*args), set()
        else:
            trace = bridge.model_trace(fn, args, kwargs)
            observed = bridge.observed_sites(fn, trace=trace)
            factors = bridge.global_factor_sites(fn, trace=trace)
        log_lik = None
        if self.method == "adversarial":  # the networks' fit: a density only where one exists
            log_lik = (
                None
                if not log_likelihood or _implicit(self.model)
                else {"x": self.model.log_prob(*args).detach().cpu().numpy()[None, None]}
            )
        elif log_likelihood:
            flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in posterior.items()}
            chains, draws_per_chain = next(iter(posterior.values())).shape[:2]
            if isinstance(self.model, SupportsPointwiseLogLikelihood):
                pointwise = self.model.pointwise_log_likelihood(flat, *args)
            elif self.backend == "numpyro":
                pointwise = bridge.pointwise_log_likelihood_numpyro(fn, flat, args, kwargs)
            else:
                pointwise = bridge.pointwise_log_likelihood(fn, flat, args, kwargs)
            log_lik = {  # the observations' terms (not a global pyro.factor's)
                k: v.reshape((chains, draws_per_chain) + v.shape[1:])
                for k, v in pointwise.items()
                if k not in factors
            }
        return bridge.build_inference_data(
            posterior,
            sample_stats=self.sample_stats,
            log_likelihood=log_lik,
            observed_data=observed,
            losses=self.losses,
            attrs={
                "inference_library": "pyrogen",
                "method": self.method,
                "backend": self.backend or "pyro",
                "precision": self.precision or "",
                "model": as_target(self.model).name,
            },
        )

    def summary(self, **kwargs):
        """``arviz.summary`` of the posterior (NUTS) or of the guide's draws."""
        import arviz as az

        return az.summary(self.to_arviz(log_likelihood=False), **kwargs)


def fit(
    model: ZooModel | Callable,
    *args,
    method: Method = "svi",
    guide: str | Callable | None = None,
    loss: str | pyro.infer.ELBO | None = None,
    optim: str | pyro.optim.PyroOptim = "adam",
    lr: float | None = None,
    num_particles: int | None = None,
    vectorize_particles: bool = False,
    convergence: Literal["auto", "rule", "none"] = "auto",
    tolerance: float = 0.02,
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
    precision: Literal["float64", "float32"] = "float64",
    jit: bool | None = None,
    fast_elbo: bool = True,
    init: dict | None = None,
    progress: bool | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    trust_checkpoint: bool = False,
    callback: Callable[[int, float], bool | None] | None = None,
    device: str | torch.device | None = None,
    strategy: str | Any | None = None,
    devices: int | str | list | None = None,
    num_nodes: int = 1,
    critic_steps: int = 1,
    critic_lr: float | None = None,
    betas: tuple = (0.5, 0.999),
    gradient_penalty: float = 10.0,
    pack: int = 1,
    instance_noise: float = 0.0,
    noise_steps: int | None = None,
    **kwargs,
) -> Fit:
    """Fit ``model`` (a zoo object, or a Pyro model function called as ``model(*args,
    **kwargs)``) with the engine ``method``: ``"svi"`` (the model's guide, else AutoNormal),
    ``"map"`` (AutoDelta; enumerated sites summed out), ``"mle"``, ``"em"``, ``"nuts"`` or
    ``"adversarial"`` (GAN, AAE, ALI); a method the model cannot run is refused, naming those it
    can. Options by group, in :mod:`pyrogen.infer.options`: ``RunOptions`` (seed, steps,
    ``tol``, ``init``, progress, checkpoint, callback, device), ``SVIOptions`` (guide, loss,
    optimizer, ``lr`` 0.01, particles, minibatches, ``convergence``: without a step count SVI
    and MAP run until :mod:`pyrogen.infer.convergence`'s rule is met), ``NUTSOptions``,
    ``ScaleOptions`` (Lightning), :class:`~pyrogen.infer.adversarial.AdversarialOptions`. EM
    starts from ``em_init``; SVI, MAP and NUTS from the model's fit, else ``initialize``.

    Example:
        >>> import pyrogen
        >>> from pyrogen.models import GaussianMixture
        >>> x = pyrogen.data.load("old_faithful")
        >>> result = pyrogen.fit(GaussianMixture(2), x, method="em", progress=False)
        >>> round(result.model.log_prob(x).mean().item(), 3)
        -4.155
    """
    run, svi, nuts, scale = split_options(_collect(locals()), method)
    target, args, kwargs = _prepare(model, args, kwargs, method, (svi, run, nuts))
    pyro.set_rng_seed(seed)
    result = Fit(method=method, model=model, args=args, kwargs=kwargs)
    # what a checkpoint must match to be resumed (hashing the data costs time)
    run_id = _fingerprint(model, target, method, seed, args) if checkpoint is not None else None
    began = time.perf_counter()
    # what Pyro makes (autoguide parameters, ...) matches the data; NUTS's precision rules
    with data_dtype(args, kwargs, nuts.precision if method == "nuts" else None):
        _run_engine(target, args, kwargs, method, (run, svi, nuts, scale), result, run_id)
    result.elapsed = time.perf_counter() - began
    result.precision = nuts.precision if method == "nuts" else _floating_name(args, kwargs)
    return result


def as_precision(data, precision: str):
    """``data`` (a tuple or a dict of arguments) with its floating tensors and arrays in
    ``precision``; everything else as it is."""
    dtype = getattr(torch, precision)

    def cast(value):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.to(dtype)
        if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
            return value.astype(precision)
        return value

    if isinstance(data, dict):
        return {k: cast(v) for k, v in data.items()}
    return tuple(cast(v) for v in data)


def _floating_name(args: tuple, kwargs: dict) -> str:
    floating = _floating_dtypes(args, kwargs)
    return str(floating[0] if floating else torch.get_default_dtype()).replace("torch.", "")


def _floating_dtypes(args: tuple, kwargs: dict | None = None) -> list:
    values = list(args) + list((kwargs or {}).values())
    return [v.dtype for v in values if isinstance(v, torch.Tensor) and v.is_floating_point()]


def _implicit(model) -> bool:
    """A model with samples but no density (a GAN, ALI)."""
    return bool(getattr(model, "implicit", False))


def _run_engine(target, args, kwargs, method: str, groups, result, run_id) -> None:
    run, svi, nuts, scale = groups
    if method == "em":
        return fit_em(target, args, run, result, run_id)
    if method == "adversarial":  # svi is the adversarial engine's group here
        from pyrogen.infer.adversarial import fit_adversarial

        return fit_adversarial(target, args[0], svi, run, result, run_id)
    init_values = _start(target, run.init, args, kwargs)
    if method == "nuts":
        return fit_nuts(target, args, kwargs, nuts, run, result, init_values, run_id)
    if scale.strategy is not None:
        from pyrogen.lightning import fit_lightning

        return fit_lightning(
            target, args, kwargs, method, svi, run, scale, result, init_values, run_id
        )
    return fit_svi(target, args, kwargs, method, svi, run, result, init_values, run_id)


@contextlib.contextmanager
def data_dtype(args: tuple, kwargs: dict | None = None, precision: str | None = None):
    """torch's default dtype set to the data's floating dtype (positional arguments
    first, then keyword arguments) while an engine runs, so the tensors Pyro creates
    itself (improper priors' zeros, autoguides' parameters, enumeration's
    probabilities, draws turned into tensors) are of the data's precision whatever the
    user's default: float64 data under a float32 default would otherwise meet float32
    terms. ``precision`` (NUTS's) overrides the data: integer data made real inside the
    model (``y * 1.0``) are then of the sampler's precision too."""
    floating = [getattr(torch, precision)] if precision else _floating_dtypes(args, kwargs)
    old = torch.get_default_dtype()
    if floating and floating[0] in (torch.float32, torch.float64):
        torch.set_default_dtype(floating[0])
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _collect(given: dict) -> dict:
    """``fit``'s keywords as one dict of options, ``method`` and ``max_steps`` checked."""
    check_choice(given["method"], "method", METHODS)
    num_steps, max_steps = given["num_steps"], given["max_steps"]
    if num_steps is not None and max_steps is not None and num_steps != max_steps:
        raise ValueError("num_steps: give num_steps or max_steps (an alias), not both")
    options = {k: v for k, v in given.items() if k not in ("model", "args", "kwargs")}
    options["num_steps"] = num_steps if num_steps is not None else max_steps
    return options


def _prepare(model, args, kwargs, method: str, groups) -> tuple[Any, tuple, dict]:
    """The engines' view of the model, its checks against the method, and its data (in
    the sampler's precision for NUTS, under either backend)."""
    svi, run, nuts = groups
    target = as_target(model, run.device)
    check_method(target, method)
    _check_batches(target, method, svi, run)
    if run.device is not None and isinstance(target, torch.nn.Module):
        target.to(run.device)
    args = target.prepare(*args)
    if run.device is not None:
        args = tuple(a.to(run.device) if isinstance(a, torch.Tensor) else a for a in args)
    if method == "nuts":
        args, kwargs = as_precision(args, nuts.precision), as_precision(kwargs, nuts.precision)
    return target, args, kwargs


def _fingerprint(model, target, method: str, seed: int, args: tuple) -> dict:
    return make_fingerprint(
        model=type(model).__name__ if isinstance(model, ZooModel) else target.identity,
        config=target.config,
        method=method,
        seed=seed,
        data=tuple(a for a in args if isinstance(a, torch.Tensor)),
    )


def _check_batches(target, method: str, svi, run) -> None:
    """``batch_size`` for engines and models that take minibatches (the adversarial
    engine always does), and ``num_epochs`` or ``num_steps``, not both."""
    if (
        method != "adversarial"
        and svi.batch_size is not None
        and (method not in ("svi", "map", "mle") or not isinstance(target, SupportsMinibatches))
    ):
        raise ValueError(
            f"batch_size: minibatches need method 'svi', 'map' or 'mle' and a model that "
            f"supports them ({target.name} with method={method!r} does not)"
        )
    if svi.num_epochs is not None and run.num_steps is not None:
        raise ValueError("num_epochs: give num_steps or num_epochs, not both")


def _start(target, init, args, kwargs) -> dict | None:
    """The start of SVI, MAP and NUTS: the model's current fit, else its ``initialize``;
    then the user's ``init`` entries, each checked against the model's latent sites."""
    if not target.is_fitted:
        target.initialize(*args)
    values = target.point_values() or None
    if init is None:
        return values
    start = {k: as_data_tensor(v, f"init[{k!r}]", allow_empty=True) for k, v in init.items()}
    _check_init_sites(start, target.model, args, kwargs)
    return {**(values or {}), **start}


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
