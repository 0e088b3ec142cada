"""Initial values for latent sites, improper priors included."""

from __future__ import annotations

import functools

import torch
from pyro import poutine
from pyro.distributions import ImproperUniform
from pyro.distributions.torch_distribution import MaskedDistribution
from pyro.infer.autoguide.initialization import InitMessenger, init_to_uniform, init_to_value
from torch.distributions import Independent, transform_to

__all__ = ["init_to_uniform_improper", "init_from", "trace_structure"]


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
