"""What the autoregressive models share: the teacher-forced density, the sequential
sampler, NADE's running hidden states and the ensembles of orderings."""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch

from pyrogen.distributions import NetworkDistribution
from pyrogen.validation import check_positive_int
from pyrogen.zoo import DensityModel

__all__ = []


class _Autoregressive(DensityModel):
    """What the autoregressive models share: data checks, the Pyro model with one
    vectorized observed site (every conditional at once, teacher forcing), exact
    log-likelihood in bounded memory, sequential sampling. Binary unless a subclass
    says otherwise; a subclass gives ``logits`` (or ``conditionals``) and ``_logit``
    (or its own ``sample``)."""

    binary_data = True
    cli_data = "binary_images"  # pyrogen fit NAME: binarized MNIST

    def _setup(self, **normalized) -> None:
        """Keep the checked constructor arguments and the flat dimension D."""
        self.normalize(**normalized)
        self.dim = math.prod(self.config.data_shape)

    # -- the model ---------------------------------------------------------------------
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """All D conditional logits of flat binary x (N, D), in data order."""
        raise NotImplementedError

    def conditionals(self, x: torch.Tensor) -> dist.TorchDistribution:
        """p(x_d | x_<d) for every d of flat x (N, D): batch shape (N, D)."""
        return dist.Bernoulli(logits=self.logits(x))

    def _observed(self, flat: torch.Tensor) -> torch.Tensor:
        return flat

    def _log_density(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) of examples x (..., *data_shape): the D conditionals summed."""
        batch = x.shape[: x.dim() - len(self.config.data_shape)]
        flat = x.reshape(-1, self.dim)
        log_p = self.conditionals(flat).log_prob(self._observed(flat)).sum(-1)
        return log_p.reshape(batch)

    def distribution(self, context=None) -> NetworkDistribution:
        """p(x) as a Pyro distribution: ``log_prob`` teacher-forced, ``sample`` exact."""
        if context is not None:
            raise ValueError(f"context: {type(self).__name__} is unconditional")
        return NetworkDistribution(self._log_density, self.sample, self.config.data_shape)

    def _numbers_per_example(self) -> int:
        """About how many numbers one example holds in the teacher-forced pass's largest
        tensors, for :meth:`log_prob`'s chunking."""
        return 4 * self.dim

    def _order(self) -> torch.Tensor:
        return torch.arange(self.dim)

    def sample(self, n: int) -> torch.Tensor:
        """n exact draws, one dimension at a time in the model's order."""
        check_positive_int(n, "n")
        reference = next(self.parameters())
        x = reference.new_zeros(n, self.dim)
        with torch.no_grad():
            for d in self._order().tolist():
                x[:, d] = torch.bernoulli(torch.sigmoid(self._logit(x, d)))
        return x.reshape(n, *self.config.data_shape)

    def _logit(self, x: torch.Tensor, d: int) -> torch.Tensor:
        """The logit of p(x_d = 1 | x's earlier dimensions) (the later ones are 0 in x),
        (N,); drawn as ``Bernoulli(logits=...).sample()`` draws it."""
        return self.logits(x)[:, d]


def _running_hidden(x: torch.Tensor, W: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """NADE's hidden states h_d = sigmoid(c + W[:, <d] x_<d) for every d of flat x (N, D)
    at once, (N, D, H): the pre-activations are an exclusive running sum over d."""
    contributions = x[:, :, None] * W.T
    return torch.sigmoid(c + contributions.cumsum(1) - contributions)


def _sample_running(W: torch.Tensor, c: torch.Tensor, n: int, draw) -> torch.Tensor:
    """n draws (n, D), dimension by dimension: x_d = draw(h_d, d) with h_d (n, H), the
    pre-activation carried from one dimension to the next, a_{d+1} = a_d + W_d x_d, so
    each draw costs O(DH)."""
    with torch.no_grad():
        a = c.expand(n, -1).clone()
        x = a.new_empty(n, W.shape[1])
        for d in range(W.shape[1]):
            x[:, d] = draw(torch.sigmoid(a), d)
            a += x[:, d : d + 1] * W[:, d]
    return x


def _member_log_probs(model, x, members, use) -> torch.Tensor:
    """Each ensemble member's exact log p_m(x), (len(members), N): ``use(m)`` switches to
    member m, whose teacher-forced log-likelihood is the generic one; the current member
    is restored."""
    current = model.current
    try:
        each = []
        for m in members:
            use(m)
            each.append(DensityModel.log_prob(model, x))
    finally:
        use(current)
    return torch.stack(each)


def _sample_members(model, n: int, members: int, use) -> torch.Tensor:
    """n exact flat draws of an ensemble (1/M) sum_m p_m: a member per draw, uniformly,
    then ``model._sample_current`` under it (``use(m)`` switches to member m; the
    current member is restored)."""
    if members == 1:
        with torch.no_grad():
            return model._sample_current(n)
    current = model.current
    reference = next(model.parameters())
    which = torch.randint(members, (n,), device=reference.device)
    out = reference.new_empty(n, model.dim)
    try:
        with torch.no_grad():
            for m in which.unique().tolist():
                use(m)
                chosen = which == m
                out[chosen] = model._sample_current(int(chosen.sum()))
    finally:
        use(current)
    return out
