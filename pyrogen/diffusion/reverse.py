r"""The reverse step's variance: fixed (Ho et al.), analytic (Analytic-DPM) or predicted
per dimension (Extended-Analytic-DPM).

For a reverse step s < t with mean :math:`\mu_\theta(x_t) = a\,\hat x_0 + b\,x_t`
(the forward posterior's mean with the network's :math:`\hat x_0`), the variance
:math:`\sigma^2` is one of

- ``"beta_tilde"``: :math:`\lambda^2`, the forward process's own
  (:math:`\tilde\beta_{t|s}` for DDPM, 0 for DDIM); at the last step, where it is 0,
  the next step's, as Ho et al.'s clipped log-variance;
- ``"beta"``: :math:`\beta_{t|s} = 1 - \bar\alpha_t / \bar\alpha_s`;
- ``"analytic"``: the optimal isotropic variance of Bao et al. (ICLR 2022, Theorem 1),

  .. math::

      \sigma^{*2} = \lambda^2 + c^2 \big(1 - \Gamma_t\big), \qquad
      \Gamma_t = \mathbb{E}_{q(x_t)} \frac{\lVert \epsilon_\theta(x_t, t) \rVert^2}{d},

  with c the coefficient of :math:`\epsilon` in the mean (:attr:`Pair.eps_coefficient`)
  and :math:`\Gamma_t` a Monte Carlo average over the training data, clipped to its
  bounds (Theorem 2): :math:`\lambda^2 \le \sigma^{*2} \le \lambda^2 + c^2`, and for
  data in [-1, 1] also :math:`\le \lambda^2 + a^2`;
- ``"sn"`` / ``"npr"``: the diagonal covariance of Bao et al. (ICML 2022),
  :math:`\lambda^2 + c^2 (h(x_t) - \epsilon_\theta(x_t)^2)` with h a second network
  trained on the squared noise (SN-DDPM), or :math:`\lambda^2 + c^2 g(x_t)` with g
  trained on the squared residual :math:`(\epsilon - \epsilon_\theta(x_t))^2`
  (NPR-DDPM, which also corrects for an imperfect mean), clipped to the same bounds.

Every variance is at least ``FLOOR`` so that a degenerate step keeps a finite
log-density.
"""

from __future__ import annotations

import torch

from pyrogen.diffusion.schedules import Pair

__all__ = ["FIXED", "FLOOR", "VARIANCES", "gaussian_kl", "reverse_variance"]

FIXED = ("beta", "beta_tilde")
VARIANCES = ("beta", "beta_tilde", "analytic", "sn", "npr")
FLOOR = 1e-12


def gaussian_kl(mean_q, var_q, mean_p, var_p) -> torch.Tensor:
    """KL(N(mean_q, var_q) || N(mean_p, var_p)) elementwise."""
    return 0.5 * (torch.log(var_p / var_q) + (var_q + (mean_q - mean_p) ** 2) / var_p - 1)


def _bounds(pair: Pair, bounded: bool) -> tuple[torch.Tensor, torch.Tensor]:
    c2 = pair.eps_coefficient**2
    upper = pair.lambda2 + c2
    if bounded:  # x_0 in [-1, 1]: its error's variance is at most 1
        upper = torch.minimum(upper, pair.lambda2 + pair.a**2)
    return pair.lambda2, upper


def reverse_variance(
    kind: str,
    pair: Pair,
    *,
    next_pair: Pair | None = None,
    gamma: torch.Tensor | None = None,
    head: torch.Tensor | None = None,
    eps_hat: torch.Tensor | None = None,
    bounded: bool = False,
) -> torch.Tensor:
    """sigma^2 of the step ``pair`` (float64 scalars for the fixed and analytic
    variances, per dimension for ``"sn"``/``"npr"``, where ``head`` is the second
    network's output and ``eps_hat`` the first's). ``next_pair`` is the step after
    (for ``"beta_tilde"`` at the last step), ``gamma`` Gamma_t."""
    if kind == "beta":
        return pair.beta.clamp_min(FLOOR)
    if kind == "beta_tilde":  # lambda^2: beta-tilde for DDPM, 0 for DDIM
        # the last step's beta-tilde is 0 (alpha_bar_s = 1): Ho et al. take the next's
        fallback = pair.beta if next_pair is None else next_pair.beta_tilde
        last = pair.alpha_bar_s >= 1
        return torch.where(last, fallback, pair.lambda2).clamp_min(FLOOR)
    lower, upper = _bounds(pair, bounded)
    c2 = pair.eps_coefficient**2
    if kind == "analytic":
        if gamma is None or not torch.isfinite(gamma).all():
            raise ValueError("variance: 'analytic' needs Gamma_t (estimate_moments)")
        variance = pair.lambda2 + c2 * (1 - gamma)
    elif kind in ("sn", "npr"):
        residual = head if kind == "npr" else head - eps_hat**2
        variance = pair.lambda2.to(head) + c2.to(head) * residual
        lower, upper = lower.to(head), upper.to(head)
    else:
        raise ValueError(
            f"variance: must be one of {', '.join(map(repr, VARIANCES))}, got {kind!r}"
        )
    return torch.maximum(torch.minimum(variance, upper), lower).clamp_min(FLOOR)
