r"""A mixture of diagonal Gaussians whose log-density is one matrix product.

For K components in :math:`\mathbb{R}^d` with weights :math:`w_k`, means
:math:`\mu_k` and standard deviations :math:`s_k`,

.. math::

    \log p(z) = \operatorname{logsumexp}_k \Big( \log w_k
        - \sum_j \log s_{kj} - \tfrac{d}{2} \log 2\pi
        - \tfrac12 \sum_j \frac{(z_j - \mu_{kj})^2}{s_{kj}^2} \Big),

and the quadratic form expands as

.. math::

    \sum_j \frac{(z_j - \mu_{kj})^2}{s_{kj}^2}
    = \sum_j z_j^2 \, s_{kj}^{-2} - 2 \sum_j z_j \, \mu_{kj} s_{kj}^{-2}
      + \sum_j \mu_{kj}^2 s_{kj}^{-2},

so the (M, K) table of component log-densities at M points is
:math:`[z^2, z] \, W^\top + b` with :math:`W = [-\tfrac12 s^{-2}, \mu s^{-2}]`, a
(K, 2d) matrix: one GEMM of 2d M K multiply-adds instead of the
:class:`~torch.distributions.MixtureSameFamily` route, which builds several
(M, K, d) tensors. The expansion cancels terms of size :math:`(\mu / s)^2`, so it runs
in float64 (float32 would lose about 1e-3 nats per component when a posterior's sd
is 1% of its mean); the product is small beside the networks around it. This is the
VampPrior's density (Tomczak and Welling 2018), K pseudo-inputs' posteriors, which
under ``MixtureSameFamily`` took most of a VAE's evaluation time.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution, constraints

__all__ = ["DiagonalNormalMixture"]


class DiagonalNormalMixture(TorchDistribution):
    """p(z) = sum_k w_k N(z; loc_k, diag(scale_k^2)), the same components for every
    batch element (see the module notes for how ``log_prob`` is computed).

    Arguments:
        loc: the components' means, shape (K, d).
        scale: their standard deviations, positive, broadcastable to (K, d).
        logits: unnormalized log-weights, shape (K,); None gives equal weights 1/K.

    The event is a d-vector; the batch shape is () until a plate expands it (which
    copies nothing). ``sample`` draws a component, then the Gaussian; there is no
    reparameterized sampler (the component is discrete).

    Example:
        >>> d = DiagonalNormalMixture(torch.zeros(3, 2), torch.ones(3, 2))
        >>> round(d.log_prob(torch.zeros(2)).item(), 6) == round(-math.log(2 * math.pi), 6)
        True
    """

    arg_constraints = {
        "loc": constraints.independent(constraints.real, 2),
        "scale": constraints.independent(constraints.positive, 2),
        "logits": constraints.real_vector,
    }
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, loc, scale, logits=None, validate_args=None):
        loc = torch.as_tensor(loc)
        if not loc.is_floating_point() or loc.dim() != 2 or 0 in loc.shape:
            raise ValueError(f"loc: expected a float tensor of shape (K, d), got {loc.shape}")
        scale = torch.as_tensor(scale, dtype=loc.dtype, device=loc.device)
        try:
            scale = scale.expand(loc.shape)
        except RuntimeError:
            raise ValueError(
                f"scale: must broadcast to loc's shape {tuple(loc.shape)}, got {tuple(scale.shape)}"
            ) from None
        if logits is None:
            logits = loc.new_zeros(loc.shape[0])
        logits = torch.as_tensor(logits, dtype=loc.dtype, device=loc.device)
        if logits.shape != loc.shape[:1]:
            raise ValueError(
                f"logits: expected shape ({loc.shape[0]},) (one per component), got "
                f"{tuple(logits.shape)}"
            )
        self.loc, self.scale, self.logits = loc, scale, logits
        super().__init__(torch.Size(), loc.shape[1:], validate_args=validate_args)

    @property
    def num_components(self) -> int:
        return self.loc.shape[0]

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DiagonalNormalMixture, _instance)
        new.loc, new.scale, new.logits = self.loc, self.scale, self.logits
        super(DiagonalNormalMixture, new).__init__(
            torch.Size(batch_shape), self.event_shape, validate_args=False
        )
        new._validate_args = self._validate_args
        return new

    def _work_dtype(self, device) -> torch.dtype:
        # float64 for the expanded quadratic form (see the module notes); Apple's MPS
        # has no float64
        return self.loc.dtype if device.type == "mps" else torch.float64

    def component_log_probs(self, value) -> torch.Tensor:
        """log w_k + log N(value; loc_k, scale_k), shape (*value.shape[:-1], K)."""
        work = self._work_dtype(value.device)
        loc, scale = self.loc.to(work), self.scale.to(work)
        precision = scale.pow(-2)
        shift = loc * precision
        bias = (
            torch.log_softmax(self.logits.to(work), -1)
            - scale.log().sum(-1)
            - 0.5 * (loc * shift).sum(-1)
            - 0.5 * loc.shape[-1] * math.log(2 * math.pi)
        )
        weight = torch.cat([-0.5 * precision, shift], -1)  # (K, 2d)
        flat = value.to(work).reshape(-1, loc.shape[-1])
        table = torch.addmm(bias, torch.cat([flat.square(), flat], -1), weight.T)
        return table.reshape(*value.shape[:-1], -1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        out = self.component_log_probs(value).logsumexp(-1).to(value.dtype)
        shape = torch.broadcast_shapes(value.shape[:-1], self.batch_shape)
        return out.expand(shape)

    def sample(self, sample_shape=()):
        shape = self._extended_shape(torch.Size(sample_shape))
        count = math.prod(shape[:-1])
        with torch.no_grad():
            k = torch.multinomial(torch.softmax(self.logits, -1), count, replacement=True)
            noise = torch.randn(count, shape[-1], dtype=self.loc.dtype, device=self.loc.device)
            return (self.loc[k] + self.scale[k] * noise).reshape(shape)

    @property
    def mean(self):
        w = torch.softmax(self.logits, -1)
        return (w @ self.loc).expand(self._extended_shape())

    @property
    def variance(self):
        w = torch.softmax(self.logits, -1)
        second = w @ (self.scale.square() + self.loc.square())
        return (second - (w @ self.loc).square()).expand(self._extended_shape())
