"""The distribution of an implicit model's output: a value a network made from noise.

A GAN's generator defines p(x) only through a sampler, x = G(z) with z ~ p(z); there
is no density to evaluate (Mohamed and Lakshminarayanan 2016, "Learning in implicit
generative models"). :class:`Implicit` lets such a site be written as a Pyro sample
site, ``pyro.sample("x", Implicit(G(z), event_dim=1), obs=x)``: drawing from it returns
the generated value (differentiably: ``rsample``), and scoring it raises an error that
says which engine fits such a model. ``poutine.uncondition`` of the model therefore
generates data, and Pyro's ELBOs refuse it, as they must.
"""

from __future__ import annotations

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

__all__ = ["Implicit", "ImplicitDensityError"]


class ImplicitDensityError(NotImplementedError):
    """An implicit model was asked for a density it does not have."""


class Implicit(TorchDistribution):
    """A point mass at ``value`` that refuses to be scored.

    Arguments:
        value: the generated value, batch dimensions first, then ``event_dim`` event
            dimensions (one example).
        event_dim: how many of value's rightmost dimensions are one example.
        name: what to call the model in the error (e.g. ``"GAN"``).
    """

    arg_constraints: dict = {}
    support = constraints.real
    has_rsample = True

    def __init__(self, value: torch.Tensor, event_dim: int = 0, name: str = "an implicit model"):
        if event_dim > value.dim():
            raise ValueError(f"event_dim: {event_dim} exceeds value's {value.dim()} dimensions")
        self.value, self.name = value, name
        split = value.dim() - event_dim
        super().__init__(value.shape[:split], value.shape[split:], validate_args=False)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        value = self.value.expand(batch_shape + self.event_shape)
        return Implicit(value, len(self.event_shape), self.name)

    def rsample(self, sample_shape=()):
        return self.value.expand(torch.Size(sample_shape) + self.value.shape)

    def sample(self, sample_shape=()):
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value):
        raise ImplicitDensityError(
            f"{self.name} is implicit: it defines samples (x = G(z)), not a density, so "
            "there is no log_prob or ELBO to evaluate; fit it with "
            "method='adversarial' and measure it by its samples"
        )

    @property
    def mean(self):
        return self.value

    @property
    def variance(self):
        return torch.zeros_like(self.value)
