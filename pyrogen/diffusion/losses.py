r"""A DDPM's training losses as Pyro ELBO estimators, so that the SVI engine's one loop
trains the model with any of them (``pyrogen.fit(ddpm, x, loss=...)``).

The variational bound of the latent chain (what Pyro's ``Trace_ELBO`` and
``TraceMeanField_ELBO`` estimate on the model/guide pair) is a sum over the steps,

.. math::

    -\mathcal{L}(x_0) = \mathrm{KL}(q(x_T \mid x_0) \,\|\, p(x_T))
    + \sum_{t=2}^{T} \mathbb{E}_q\, \mathrm{KL}(q(x_{t-1} \mid x_t, x_0) \,\|\,
    p_\theta(x_{t-1} \mid x_t)) - \mathbb{E}_q \log p_\theta(x_0 \mid x_1),

each term needing only the marginal :math:`q(x_t \mid x_0)`. One step t drawn
uniformly per example and T times its term is an unbiased estimate of the bound at
the cost of one network evaluation instead of T: ``loss="elbo"``. Ho et al.'s
simplified loss (Algorithm 1), ``loss="simple"``, is the mean squared error of the
network's prediction (of the noise, of x_0 or of v) at that step: for the noise,
each KL term is :math:`w_t \lVert \epsilon - \epsilon_\theta \rVert^2` with
:math:`w_t = a_t^2 (1 - \bar\alpha_t) / (2 \sigma_t^2 \bar\alpha_t)`, so the simple
loss is the bound reweighted to :math:`w_t \propto 1` (and its first term's likelihood
replaced by the same squared error). ``loss="sn"`` and ``loss="npr"`` train
Extended-Analytic-DPM's second network, an estimate m(x_t) of the conditional mean of
the squared noise or of the first network's squared residual (the first network held
fixed; only the second's parameters are registered, so only they move). Bao et al.
fit m by mean squared error; pyrogen minimizes the Gaussian scoring rule
:math:`r / m + \log m` per dimension (r the squared target) with :math:`m = e^{h}`
positive by construction. Both are minimized by the same m, E[r | x_t]; the scoring
rule's errors are relative rather than absolute, which matters because the reverse
variance is :math:`\lambda^2 + c^2 m`: where c^2 is much larger than
:math:`\lambda^2` (the first steps of a short trajectory) an underestimate of m by a
few hundredths, common under squared error and clipped at :math:`\lambda^2`, costs
the bound more than its whole gain (the 10-step KL bound on the ring of Gaussians went
from 15.4 nats to the analytic variance's 2.7 and below with this change).
"""

from __future__ import annotations

import pyro
import torch
from pyro.infer import ELBO

__all__ = ["LOSSES", "DiffusionLoss"]

LOSSES = ("simple", "elbo", "sn", "npr")


class DiffusionLoss(ELBO):
    """The ``kind`` loss of a DDPM ``diffusion`` (a :class:`pyrogen.models.DDPM`): the
    model's per-example terms (``diffusion.loss_terms(x, kind)``) summed over the
    batch and scaled to ``num_examples``, as a Pyro ELBO's loss is."""

    def __init__(self, diffusion, kind: str = "simple"):
        if kind not in LOSSES:
            raise ValueError(f"loss: must be one of {', '.join(map(repr, LOSSES))}, got {kind!r}")
        super().__init__(num_particles=1)
        self.diffusion, self.kind = diffusion, kind

    def differentiable_loss(self, model, guide, x, num_examples: int | None = None, **kwargs):
        trained = self.diffusion.trained_module(self.kind)
        pyro.module(f"{self.diffusion.module_name}_{self.kind}", trained)
        terms = self.diffusion.loss_terms(x, self.kind)
        return terms.sum() * ((num_examples or len(x)) / len(x))

    def _get_trace(self, model, guide, args, kwargs):  # no traces: the terms are closed form
        raise NotImplementedError("DiffusionLoss computes its terms without traces")

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return float(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return float(loss.detach())
