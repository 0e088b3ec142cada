"""Initial values for latent sites, improper priors included."""

from __future__ import annotations

import functools

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.distributions import ImproperUniform
from pyro.distributions.torch_distribution import MaskedDistribution
from pyro.infer.autoguide.initialization import InitMessenger, init_to_uniform, init_to_value
from torch.distributions import Independent, transform_to

__all__ = ["init_to_uniform_improper", "init_from", "laplace_start", "trace_structure"]


def init_to_uniform_improper(site=None, radius: float = 2.0):
    """Pyro's ``init_to_uniform`` that also starts ``ImproperUniform`` sites.

    Pyro's initializers draw a sample to learn a site's shape, which an improper
    prior cannot give; here the shape comes from the distribution itself. A site whose
    support has no bijection to the reals (a mixture's) starts at a draw.
    """
    if site is None:
        return functools.partial(init_to_uniform_improper, radius=radius)  # pickles
    if site["fn"].support.is_discrete:
        return site["fn"].sample().detach()
    base = site["fn"]
    while isinstance(base, (Independent, MaskedDistribution)):
        base = base.base_dist
    if not isinstance(base, ImproperUniform):
        try:
            return init_to_uniform(site, radius)
        except NotImplementedError:  # a support with no bijection (e.g. a mixture's)
            return site["fn"].sample().detach()
    fn = site["fn"]
    transform = transform_to(fn.support)
    shape = transform.inverse_shape(fn.shape())
    value = transform(torch.rand(shape, dtype=torch.get_default_dtype()) * (2 * radius) - radius)
    value._pyro_custom_init = False
    return value


def init_from(values: dict[str, torch.Tensor] | None):
    """Start the named sites at ``values``; every other site as ``init_to_uniform_improper``."""
    if not values:
        return init_to_uniform_improper()
    return init_to_value(values=values, fallback=init_to_uniform_improper())


def trace_structure(model, args=(), kwargs=None, values: dict | None = None):
    """One trace of ``model`` for its structure (sites, plates), without side effects.
    An error the model raises keeps its type and gains a note that says where it came
    from (pyrogen reading the model's structure, before any fitting)."""
    try:
        with poutine.block(), torch.no_grad():
            return poutine.trace(InitMessenger(init_from(values))(model)).get_trace(
                *args, **(kwargs or {})
            )
    except Exception as error:
        name = getattr(model, "__qualname__", type(model).__name__)
        if hasattr(error, "add_note") and not getattr(error, "_pyrogen_noted", False):
            error.add_note(
                f"pyrogen: raised by the model {name} when pyrogen ran it once to read its "
                "sites and plates, before any fitting: the model fails on these arguments"
            )
            error._pyrogen_noted = True
        raise


LAPLACE_MAX_DIM = 200  # the Hessian is dense: D x D


def laplace_start(model, guide, elbo, args=(), kwargs=None, *, checks: int = 8) -> bool:
    r"""Start a Gaussian autoguide (``AutoNormal``, ``AutoMultivariateNormal``) at the
    Laplace approximation of the posterior in the guide's unconstrained space: the
    mode found by L-BFGS from the guide's own start, the covariance the inverse
    Hessian of the potential there (mean-field: :math:`1/\sqrt{H_{dd}}`, the
    mean-field optimum of a Gaussian posterior; full-rank: :math:`H^{-1}`).

    On a posterior with strongly correlated coordinates (a regression with an
    uncentred predictor) Adam's coordinate-wise steps cross the ridge slowly from an
    arbitrary start; from the Laplace start a full-rank guide is near its optimum at
    once. The start is kept only if it is a proper one (a finite mode, a positive
    definite Hessian, at most ``LAPLACE_MAX_DIM`` coordinates) and its ELBO, averaged
    over ``checks`` evaluations of ``elbo``, beats the guide's own start's (a funnel's
    mode sits at its neck and loses); else the guide is left as it was. Returns
    whether the Laplace start was taken."""
    from pyro.infer.autoguide import AutoMultivariateNormal, AutoNormal
    from pyro.infer.mcmc.util import initialize_model

    kwargs = kwargs or {}
    if type(guide) not in (AutoNormal, AutoMultivariateNormal):
        return False
    store = pyro.get_param_store()
    prefix = guide._pyro_name
    try:
        with torch.random.fork_rng(), poutine.block():
            with torch.no_grad():
                guide(*args, **kwargs)  # its parameters, if it has none yet
            _, potential, _, _ = initialize_model(
                model,
                model_args=args,
                model_kwargs=kwargs,
                # Pyro's own start and its nesting guess sample every site, which a flat
                # prior (ImproperUniform) cannot
                init_strategy=init_to_uniform_improper,
                max_plate_nesting=_plate_nesting(guide.prototype_trace),
            )
            names, shapes, start = _guide_locations(guide, store, prefix)
            size = sum(int(torch.Size(s).numel()) for s in shapes)
            if size == 0 or size > LAPLACE_MAX_DIM:
                return False

            def energy(flat):
                values, offset = {}, 0
                for name, shape in zip(names, shapes):
                    n = int(torch.Size(shape).numel())
                    values[name] = flat[offset : offset + n].reshape(shape)
                    offset += n
                return potential(values)

            mode = _minimize(energy, start)
            if mode is None:
                return False
            hessian = torch.autograd.functional.hessian(energy, mode)
            hessian = 0.5 * (hessian + hessian.T)
            if not torch.isfinite(hessian).all() or torch.linalg.eigvalsh(hessian)[0] <= 0:
                return False
            before = _mean_elbo(elbo, model, guide, args, kwargs, checks)
            saved = {n: v.detach().clone() for n, v in store._params.items()}
            _set_laplace(guide, store, prefix, names, shapes, mode, hessian)
            after = _mean_elbo(elbo, model, guide, args, kwargs, checks)
            if not (np.isfinite(after) and after > before):
                with torch.no_grad():
                    for name, value in saved.items():
                        store._params[name].copy_(value)
                return False
    except (RuntimeError, ValueError, NotImplementedError, KeyError, torch.linalg.LinAlgError):
        return False
    return True


def _plate_nesting(trace) -> int:
    """How many plates deep the model's sample sites (observed ones too) sit."""
    dims = [
        -frame.dim
        for site in trace.nodes.values()
        if site["type"] == "sample"
        for frame in site["cond_indep_stack"]
        if frame.vectorized and frame.dim is not None
    ]
    return max(dims, default=0)


def _guide_locations(guide, store, prefix):
    """The guide's latent sites, their unconstrained shapes and its locations, flat."""
    from pyro.infer.autoguide import AutoNormal

    if isinstance(guide, AutoNormal):
        names = [n for n, _ in guide.prototype_trace.iter_stochastic_nodes()]
        locs = [store[f"{prefix}.locs.{n}"].detach() for n in names]
        return names, [loc.shape for loc in locs], torch.cat([loc.reshape(-1) for loc in locs])
    names = list(guide._unconstrained_shapes)
    shapes = [guide._unconstrained_shapes[n] for n in names]
    return names, shapes, store[f"{prefix}.loc"].detach().clone()


def _minimize(energy, start):
    flat = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [flat], line_search_fn="strong_wolfe", max_iter=500, tolerance_grad=1e-9
    )

    def closure():
        optimizer.zero_grad()
        value = energy(flat)
        value.backward()
        return value

    optimizer.step(closure)
    mode = flat.detach()
    with torch.no_grad():
        if not torch.isfinite(mode).all() or not torch.isfinite(energy(mode)):
            return None
    return mode


def _mean_elbo(elbo, model, guide, args, kwargs, checks: int) -> float:
    with torch.no_grad():
        losses = [float(elbo.loss(model, guide, *args, **kwargs)) for _ in range(checks)]
    return -float(np.mean(losses))


def _set_laplace(guide, store, prefix, names, shapes, mode, hessian) -> None:
    """Overwrite the guide's parameters in place (the guide may hold them itself)."""
    from pyro.infer.autoguide import AutoNormal

    def put(name, value):
        constraint = store._constraints[name]
        store._params[name].copy_(transform_to(constraint).inv(value).to(store._params[name]))

    with torch.no_grad():
        if isinstance(guide, AutoNormal):
            scales = hessian.diagonal().rsqrt()
            offset = 0
            for name, shape in zip(names, shapes):
                n = int(torch.Size(shape).numel())
                put(f"{prefix}.locs.{name}", mode[offset : offset + n].reshape(shape))
                put(f"{prefix}.scales.{name}", scales[offset : offset + n].reshape(shape))
                offset += n
            return
        factor = torch.linalg.cholesky(torch.linalg.inv(hessian))
        diagonal = factor.diagonal()
        put(f"{prefix}.loc", mode)
        put(f"{prefix}.scale", diagonal)
        put(f"{prefix}.scale_tril", factor / diagonal[:, None])
