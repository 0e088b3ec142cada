"""A distribution given by a network's log-density and sampler: how a density model
(an autoregressive network, a monotone-CDF network) appears at a Pyro site."""

from __future__ import annotations

from collections.abc import Callable

import pyro.distributions as dist
import torch
from pyro.distributions import constraints

__all__ = ["NetworkDistribution"]


class NetworkDistribution(dist.TorchDistribution):
    """p(x) with ``log_prob = log_density(x)`` (differentiable in the network's
    parameters, one value per example) and ``sample = sampler(n)`` (n examples).

    Arguments:
        log_density: maps values of shape (*batch, *event_shape) to (*batch,).
        sampler: maps a count n to n draws of shape (n, *event_shape).
        event_shape: one example's shape.
        batch_shape: usually () (a plate broadcasts it).
        support: the values' support (real by default).
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(
        self,
        log_density: Callable[[torch.Tensor], torch.Tensor],
        sampler: Callable[[int], torch.Tensor],
        event_shape=(),
        batch_shape=(),
        support=constraints.real,
    ):
        self.log_density, self.sampler, self._support = log_density, sampler, support
        super().__init__(torch.Size(batch_shape), torch.Size(event_shape), validate_args=False)

    @constraints.dependent_property
    def support(self):
        return constraints.independent(self._support, len(self.event_shape))

    def expand(self, batch_shape, _instance=None):
        return NetworkDistribution(
            self.log_density, self.sampler, self.event_shape, batch_shape, self._support
        )

    def log_prob(self, value):
        return self.log_density(value)

    def sample(self, sample_shape=()):
        shape = self._extended_shape(torch.Size(sample_shape))
        count = max(1, shape[: len(shape) - len(self.event_shape)].numel())
        return self.sampler(count).reshape(shape)
