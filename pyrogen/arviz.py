"""The one place that builds ``arviz.InferenceData``.

Pyro's own converter (``az.from_pyro``) needs an ``MCMC`` object; pyrogen builds the
same groups from any fit: NUTS draws under either backend, or draws from a fitted
guide (SVI, MAP), with pointwise log-likelihoods so that ``az.loo`` and ``az.waic``
work, and the loss trace of optimization fits.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import torch
import xarray as xr
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from pyrogen.compat import backend as use_backend

__all__ = [
    "build_inference_data",
    "deterministic_sites",
    "draws_from_guide",
    "global_factor_sites",
    "is_factor",
    "model_trace",
    "observed_sites",
    "pointwise_log_likelihood",
    "pointwise_log_likelihood_numpyro",
]


def _numpy(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def model_trace(model, args=(), kwargs=None):
    """One trace of ``model`` (latents started, enumerated sites enumerated), blocked."""
    with poutine.block(), torch.no_grad():
        return poutine.trace(_enumerated(model, args, kwargs)[0]).get_trace(*args, **(kwargs or {}))


def global_factor_sites(model, args=(), kwargs=None, trace=None) -> set[str]:
    """The names of the model's ``pyro.factor`` sites outside every plate: terms of the
    joint density (a penalty, a prior written as a factor), not of any observation. A
    factor inside a data plate is a per-observation log-likelihood (a density that is
    not a Pyro distribution) and stays in ArviZ's log-likelihood group. ``trace``: one
    already made by :func:`model_trace`."""
    trace = trace if trace is not None else model_trace(model, args, kwargs)
    return {
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample"
        and is_factor(site)
        and not any(frame.vectorized for frame in site["cond_indep_stack"])
    }


def observed_sites(model, args=(), kwargs=None, trace=None) -> dict[str, np.ndarray]:
    """The observed values of ``model``, by site name (``trace``: as above)."""
    trace = trace if trace is not None else model_trace(model, args, kwargs)
    return {
        name: _numpy(site["value"])
        for name, site in trace.nodes.items()
        if site["type"] == "sample"
        and site["is_observed"]
        and not site_is_subsample(site)
        and not site["infer"].get("_deterministic")  # pyro.deterministic: not data
        and not is_factor(site)  # pyro.factor: a term of the density, not data
    }


def is_factor(site: dict) -> bool:
    """A ``pyro.factor`` site (an observed ``Unit`` marked auxiliary): a term added to
    the log-density, which is neither data nor a likelihood term for ArviZ."""
    from pyro.distributions import Unit

    return bool(site["infer"].get("is_auxiliary")) or isinstance(site["fn"], Unit)


def _enumerated(model, args, kwargs):
    from pyro.infer.autoguide.initialization import InitMessenger

    from pyrogen.infer.init import init_from
    from pyrogen.infer.svi import max_plate_nesting

    initialized = poutine.block(InitMessenger(init_from(None))(model), hide_types=["param"])
    nesting = max_plate_nesting(initialized, args, kwargs)
    return poutine.enum(initialized, first_available_dim=-1 - nesting), nesting


def pointwise_log_likelihood(
    model, draws: dict[str, np.ndarray], args=(), kwargs=None
) -> dict[str, np.ndarray]:
    """log p(y_i | theta_s) for every observed site and every draw (flattened).

    Discrete latent sites that the model marks for enumeration are summed out per
    observation, which is exact when each observation has its own discrete latents
    (mixtures); models whose discrete latents are shared across observations (an
    HMM chain) must define their own ``pointwise_log_likelihood``.
    """
    kwargs = kwargs or {}
    names = list(draws)
    num_draws = len(draws[names[0]]) if names else 1
    wrapped, nesting = _enumerated(model, args, kwargs)
    observed = set(observed_sites(model, args, kwargs))  # conditioning marks latents observed
    out: dict[str, list[np.ndarray]] = {}
    with torch.no_grad(), use_backend("pyro"):
        for s in range(num_draws):
            values = {
                k: torch.as_tensor(v[s], dtype=torch.get_default_dtype()) for k, v in draws.items()
            }
            trace = poutine.trace(poutine.condition(wrapped, values)).get_trace(*args, **kwargs)
            trace.compute_log_prob()
            enumerated = [
                site
                for site in trace.nodes.values()
                if site["type"] == "sample" and site["infer"].get("_enumerate_dim") is not None
            ]
            for name, site in trace.nodes.items():
                if name not in observed:
                    continue
                log_lik = site["log_prob"]
                for latent in enumerated:
                    _check_local(latent, site)
                    log_lik = log_lik + latent["log_prob"]
                enum_dims = log_lik.dim() - nesting
                if enum_dims > 0:
                    log_lik = log_lik.logsumexp(dim=tuple(range(enum_dims)))
                log_lik = _plate_shaped(log_lik, site, nesting)
                out.setdefault(name, []).append(log_lik.cpu().numpy())
    return {k: np.stack(v) for k, v in out.items()}


def _check_local(latent: dict, observed: dict) -> None:
    observed_plates = {f.name for f in observed["cond_indep_stack"]}
    latent_plates = {f.name for f in latent["cond_indep_stack"]}
    if not observed_plates <= latent_plates:
        raise NotImplementedError(
            f"pointwise log-likelihood: the enumerated site {latent['name']!r} is shared by "
            f"observations of {observed['name']!r}; define the model's own "
            "pointwise_log_likelihood"
        )


def _plate_shaped(log_lik: torch.Tensor, site: dict, nesting: int) -> torch.Tensor:
    """Drop the broadcast dimensions that belong to no plate of the observed site."""
    log_lik = log_lik.reshape((1,) * (nesting - log_lik.dim()) + tuple(log_lik.shape))
    plate_dims = {f.dim for f in site["cond_indep_stack"] if f.vectorized}
    return log_lik.reshape([log_lik.shape[d] for d in range(-nesting, 0) if d in plate_dims])


def pointwise_log_likelihood_numpyro(model, draws: dict[str, np.ndarray], args=(), kwargs=None):
    import jax.numpy as jnp
    from numpyro.infer import log_likelihood

    from pyrogen.infer.mcmc import to_jax

    with use_backend("numpyro"):
        result = log_likelihood(
            model,
            {k: jnp.asarray(v) for k, v in draws.items()},
            *[to_jax(a) for a in args],
            **{k: to_jax(v) for k, v in (kwargs or {}).items()},
        )
    return {k: np.asarray(v) for k, v in result.items()}


def draws_from_guide(model, guide, args=(), kwargs=None, num_samples: int = 1000) -> dict:
    """Draws of the model's latent sites from a fitted guide, shape (num_samples, ...)."""
    from pyrogen.infer.init import trace_structure
    from pyrogen.infer.svi import guide_draws

    kwargs = kwargs or {}
    structure = trace_structure(model, args, kwargs)
    latent = [
        name
        for name, site in structure.nodes.items()
        if site["type"] == "sample" and not site["is_observed"]
    ]
    draws = guide_draws(guide, args, kwargs, num_samples)
    return {k: _numpy(v) for k, v in draws.items() if k in latent}


def deterministic_sites(model, draws: dict, args=(), kwargs=None) -> dict[str, np.ndarray]:
    """The model's ``deterministic`` sites at every draw (NumPyro's MCMC returns them
    with the draws; Pyro's MCMC and guides do not): the model replayed under Pyro once
    per draw, only when it has such sites. ``draws``: site -> (num_draws, ...)."""
    kwargs = kwargs or {}

    def replay(i: int) -> dict:
        values = {k: torch.as_tensor(np.asarray(v[i])) for k, v in draws.items()}
        values = {
            k: v.to(torch.get_default_dtype()) if v.is_floating_point() else v
            for k, v in values.items()
        }
        trace = poutine.trace(poutine.condition(model, values)).get_trace(*args, **kwargs)
        return {
            name: _numpy(site["value"])
            for name, site in trace.nodes.items()
            if site["type"] == "sample" and site["infer"].get("_deterministic")
        }

    if not draws:
        return {}
    num_draws = len(next(iter(draws.values())))
    with torch.no_grad(), poutine.block(), use_backend("pyro"):
        first = replay(0)
        if not first:
            return {}
        values = [first] + [replay(i) for i in range(1, num_draws)]
    return {name: np.stack([v[name] for v in values]) for name in first}


def build_inference_data(
    posterior: dict[str, np.ndarray],
    *,
    sample_stats: dict[str, np.ndarray] | None = None,
    log_likelihood: dict[str, np.ndarray] | None = None,
    observed_data: dict[str, np.ndarray] | None = None,
    losses: np.ndarray | None = None,
    attrs: dict | None = None,
) -> az.InferenceData:
    """Arrays with leading (chain, draw) dimensions -> ``InferenceData``.

    ``losses`` (an optimization trace) goes into ``sample_stats`` as ``loss`` over
    a ``step`` dimension, beside any per-draw statistics.
    """
    attrs = {k: str(v) for k, v in (attrs or {}).items()}
    idata = az.from_dict(
        posterior=posterior,
        sample_stats=sample_stats or None,
        log_likelihood=log_likelihood or None,
        observed_data=observed_data or None,
        attrs=attrs,
    )
    if losses is not None:
        trace = xr.Dataset(
            {"loss": (("step",), np.asarray(losses))}, coords={"step": np.arange(len(losses))}
        )
        if "sample_stats" in idata.groups():
            merged = xr.merge([idata.sample_stats, trace])
            merged.attrs = idata.sample_stats.attrs
            idata.sample_stats = merged
        else:
            idata.add_groups(sample_stats=trace)
            idata.sample_stats.attrs.update(attrs)
    return idata
