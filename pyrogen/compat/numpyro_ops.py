"""``pyroapi.ops`` for NumPyro: jax.numpy with torch's spellings where they differ."""

import jax.numpy as jnp
from jax.nn import softplus  # noqa: F401
from jax.numpy import *  # noqa: F401, F403
from jax.scipy.special import expit as sigmoid  # noqa: F401
from jax.scipy.special import logsumexp as _logsumexp

tensor = jnp.asarray


def _sizes(sizes):
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        return tuple(sizes[0])
    return tuple(sizes)


def zeros(*sizes, **kwargs):
    return jnp.zeros(_sizes(sizes), **kwargs)


def ones(*sizes, **kwargs):
    return jnp.ones(_sizes(sizes), **kwargs)


def logsumexp(x, dim, keepdim=False):
    return _logsumexp(x, axis=dim, keepdims=keepdim)


def cat(tensors, dim=0):
    return jnp.concatenate(tensors, axis=dim)
