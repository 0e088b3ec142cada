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

from pyrogen.distributions.shapes import broadcast_shapes

__all__ = ["DiagonalNormalMixture", "NormalMixture"]


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
        shape = broadcast_shapes(value.shape[:-1], self.batch_shape)
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


class NormalMixture(TorchDistribution):
    r"""A univariate mixture of K Gaussians per batch element:
    :math:`p(x) = \sum_k w_k \mathcal{N}(x; \mu_k, s_k^2)` with
    :math:`w = \operatorname{softmax}(\text{logits})`.

    The same distribution as ``MixtureSameFamily(Categorical(logits=logits),
    Normal(loc, scale))``, with a fused ``log_prob``,
    :math:`\operatorname{logsumexp}_k(\log w_k - \tfrac12 u_k^2 - \log s_k)
    - \tfrac12 \log 2\pi` with :math:`u_k = (x - \mu_k) / s_k`, in about half the
    elementwise passes over the (…, K) tensors (the conditionals of an autoregressive
    model: RNADE, WaveNet, recurrent and transformer decoders), and a ``sample`` of a
    few tensor operations (a component, then one normal draw), which the
    autoregressive samplers call once per position.

    Arguments:
        logits: unnormalized log-weights, shape (..., K).
        loc: the components' means, (..., K).
        scale: their standard deviations, positive, (..., K).
    """

    arg_constraints = {
        "logits": constraints.real_vector,
        "loc": constraints.independent(constraints.real, 1),
        "scale": constraints.independent(constraints.positive, 1),
    }
    support = constraints.real
    has_rsample = False

    def __init__(self, logits, loc, scale, validate_args=None):
        shape = broadcast_shapes(logits.shape, loc.shape, scale.shape)
        if len(shape) == 0:
            raise ValueError("logits: expected components along the last dimension, (..., K)")
        self.logits, self.loc, self.scale = logits, loc, scale
        super().__init__(shape[:-1], validate_args=validate_args)

    @property
    def num_components(self) -> int:
        return max(self.logits.shape[-1], self.loc.shape[-1], self.scale.shape[-1])

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(NormalMixture, _instance)
        batch_shape = torch.Size(batch_shape)
        shape = batch_shape + (self.num_components,)
        new.logits = self.logits.expand(shape)
        new.loc, new.scale = self.loc.expand(shape), self.scale.expand(shape)
        super(NormalMixture, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        u = (value.unsqueeze(-1) - self.loc) / self.scale
        # logits - logsumexp rather than log_softmax: over a last dimension of a few
        # components torch's log_softmax kernel is about 4x slower on CPU
        log_weights = self.logits - self.logits.logsumexp(-1, keepdim=True)
        terms = log_weights - 0.5 * u.square() - self.scale.log()
        return terms.logsumexp(-1) - 0.5 * math.log(2 * math.pi)

    def cdf(self, value):
        u = (value.unsqueeze(-1) - self.loc) / self.scale
        phi = 0.5 * (1 + torch.erf(u / math.sqrt(2)))
        return (torch.softmax(self.logits, -1) * phi).sum(-1)

    def sample(self, sample_shape=()):
        with torch.no_grad():
            return draw_normal_mixture(self.logits, self.loc, self.scale, sample_shape)

    @property
    def mean(self):
        w = torch.softmax(self.logits, -1)
        return (w * self.loc).sum(-1).expand(self.batch_shape)

    @property
    def variance(self):
        w = torch.softmax(self.logits, -1)
        mean = (w * self.loc).sum(-1, keepdim=True)
        second = (w * (self.scale.square() + (self.loc - mean).square())).sum(-1)
        return second.expand(self.batch_shape)


def draw_normal_mixture(logits, loc, scale, sample_shape=()) -> torch.Tensor:
    """Draws of ``NormalMixture(logits, loc, scale)``, shape sample_shape + batch shape:
    a component for every draw (one ``torch.multinomial``), then one normal draw at
    the chosen component's mean and scale. Autoregressive samplers call this once per
    position, so it is kept to a few tensor operations."""
    sample_shape = torch.Size(sample_shape)
    shape = broadcast_shapes(logits.shape, loc.shape, scale.shape)
    K = shape[-1]
    probs = torch.softmax(logits, -1)
    if probs.shape != shape:
        probs = probs.expand(shape)
    which = torch.multinomial(probs.reshape(-1, K), max(1, sample_shape.numel()), True)
    which = which.T.reshape(sample_shape + shape[:-1] + (1,))
    full = sample_shape + shape
    mean = loc.expand(full).gather(-1, which)
    sd = scale.expand(full).gather(-1, which)
    return (mean + sd * torch.randn_like(mean))[..., 0]
