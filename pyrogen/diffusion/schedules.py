r"""Noise schedules of diffusion models and the Gaussian algebra of the forward process.

The forward process adds noise in T steps, :math:`q(x_t \mid x_{t-1}) =
\mathcal{N}(\sqrt{1 - \beta_t}\, x_{t-1}, \beta_t I)`, so that
:math:`q(x_t \mid x_0) = \mathcal{N}(\sqrt{\bar\alpha_t}\, x_0, (1 - \bar\alpha_t) I)`
with :math:`\bar\alpha_t = \prod_{i \le t} (1 - \beta_i)` (:math:`\bar\alpha_0 = 1`).

For a sub-trajectory :math:`0 = \tau_0 < \tau_1 < \dots < \tau_K = T` and a pair
:math:`s = \tau_{k-1} < t = \tau_k`, the family of forward processes of DDIM (Song,
Meng and Ermon 2021) and Analytic-DPM (Bao et al. 2022) keeps the marginals
:math:`q(x_t \mid x_0)` and sets

.. math::

    q_\lambda(x_s \mid x_t, x_0) = \mathcal{N}\Big(\sqrt{\bar\alpha_s}\, x_0
    + \sqrt{1 - \bar\alpha_s - \lambda^2}\; \frac{x_t - \sqrt{\bar\alpha_t}\, x_0}
    {\sqrt{1 - \bar\alpha_t}},\ \lambda^2 I\Big),

whose mean is :math:`a\, x_0 + b\, x_t`. :math:`\lambda^2 = \tilde\beta_{t|s} =
\frac{1 - \bar\alpha_s}{1 - \bar\alpha_t} \beta_{t|s}` with
:math:`\beta_{t|s} = 1 - \bar\alpha_t / \bar\alpha_s` is the Markov (DDPM) forward
process on the sub-trajectory, :math:`\lambda = 0` DDIM's deterministic one;
:math:`\lambda^2 = \eta^2 \tilde\beta_{t|s}` in between.

References:
    Ho, Jain and Abbeel (2020). Denoising Diffusion Probabilistic Models. NeurIPS.
    Nichol and Dhariwal (2021). Improved Denoising Diffusion Probabilistic Models. ICML.
    Song, Meng and Ermon (2021). Denoising Diffusion Implicit Models. ICLR.
    Bao, Li, Zhu and Zhang (2022). Analytic-DPM. ICLR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pyrogen.validation import check_choice, check_positive_int

__all__ = ["SCHEDULES", "NoiseSchedule", "Pair"]

SCHEDULES = ("linear", "cosine")


@dataclass
class Pair:
    """The coefficients of one reverse step s < t (each a float64 tensor broadcast over
    the steps given): ``a``, ``b`` the posterior mean's :math:`a x_0 + b x_t`,
    ``lambda2`` the forward process's variance :math:`\\lambda^2`, ``beta``
    :math:`\\beta_{t|s}`, ``beta_tilde`` :math:`\\tilde\\beta_{t|s}`,
    ``alpha_bar_s``/``alpha_bar_t`` the marginals' :math:`\\bar\\alpha`."""

    a: torch.Tensor
    b: torch.Tensor
    lambda2: torch.Tensor
    beta: torch.Tensor
    beta_tilde: torch.Tensor
    alpha_bar_s: torch.Tensor
    alpha_bar_t: torch.Tensor

    @property
    def eps_coefficient(self) -> torch.Tensor:
        r"""c in mean = x_t / sqrt(alpha_{t|s}) - c * eps: with
        :math:`x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\epsilon) / \sqrt{\bar\alpha_t}`,
        :math:`c = \sqrt{(1 - \bar\alpha_t) / \alpha_{t|s}} - \sqrt{1 - \bar\alpha_s -
        \lambda^2}` (Analytic-DPM's coefficient of the optimal variance)."""
        alpha = self.alpha_bar_t / self.alpha_bar_s
        return ((1 - self.alpha_bar_t) / alpha).sqrt() - (
            (1 - self.alpha_bar_s - self.lambda2).clamp_min(0).sqrt()
        )


class NoiseSchedule:
    """The betas of a T-step forward process and what follows from them (float64).

    Arguments:
        num_steps: T.
        kind: ``"linear"`` (Ho et al.: beta from 1e-4 to 0.02 at T = 1000, both scaled
            by 1000 / T for another T, as Nichol and Dhariwal) or ``"cosine"``
            (Nichol and Dhariwal: :math:`\\bar\\alpha_t \\propto \\cos^2(\\frac{t/T +
            s}{1 + s} \\frac\\pi2)`, s = 0.008, betas clipped at 0.999).

    Indices run over 0..T; step 0 is the data (``alpha_bar[0] == 1``)."""

    def __init__(self, num_steps: int = 1000, kind: str = "linear"):
        self.num_steps = check_positive_int(num_steps, "num_steps")
        self.kind = check_choice(kind, "schedule", SCHEDULES)
        self.betas = _linear(num_steps) if kind == "linear" else _cosine(num_steps)
        alpha_bar = torch.cumprod(1 - self.betas, 0)
        self.alpha_bar = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar])

    def trajectory(self, steps=None) -> torch.Tensor:
        """A sub-trajectory as step indices 0 = tau_0 < tau_1 < ... < tau_K = T.

        ``steps``: None (all T steps), an int K (K steps evenly spaced from 1 to T,
        tau_k = round(1 + (k - 1)(T - 1) / (K - 1)), Analytic-DPM's "linear"
        trajectory: the first step from x_1 keeps the decoder sharp; K = 1 is the one
        step from x_T), or the increasing steps themselves, ending at T (DDIM's
        uniform ones, for instance)."""
        T = self.num_steps
        if steps is None:
            return torch.arange(T + 1)
        if isinstance(steps, int | np.integer) and not isinstance(steps, bool):
            num = check_positive_int(int(steps), "steps")
            if num > T:
                raise ValueError(f"steps: at most the chain's {T} steps, got {num}")
            if num == 1:
                return torch.tensor([0, T])
            inner = torch.round(1 + torch.arange(num, dtype=torch.float64) * (T - 1) / (num - 1))
            return torch.cat([torch.zeros(1), inner]).long()
        path = torch.as_tensor(list(steps))
        if path.dim() != 1 or len(path) == 0 or path.is_floating_point():
            raise ValueError(
                f"steps: an int K or increasing integer steps ending at {T}, got {steps!r}"
            )
        if not (path[0] >= 1 and path[-1] == T and (path[1:] > path[:-1]).all()):
            raise ValueError(f"steps: must increase from 1 or more to {T}, got {path.tolist()}")
        return torch.cat([torch.zeros(1, dtype=torch.long), path.long()])

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t): q(x_t | x_0)'s mean coefficient
        and sd."""
        alpha_bar = self.alpha_bar[t]
        return alpha_bar.sqrt(), (1 - alpha_bar).sqrt()

    def pair(self, s: torch.Tensor, t: torch.Tensor, eta: float = 1.0) -> Pair:
        """The reverse step s < t with :math:`\\lambda^2 = \\eta^2 \\tilde\\beta_{t|s}`."""
        alpha_bar_s, alpha_bar_t = self.alpha_bar[s], self.alpha_bar[t]
        beta = 1 - alpha_bar_t / alpha_bar_s
        beta_tilde = (1 - alpha_bar_s) / (1 - alpha_bar_t) * beta
        lambda2 = eta**2 * beta_tilde
        b = (1 - alpha_bar_s - lambda2).clamp_min(0).sqrt() / (1 - alpha_bar_t).sqrt()
        a = alpha_bar_s.sqrt() - b * alpha_bar_t.sqrt()
        return Pair(a, b, lambda2, beta, beta_tilde, alpha_bar_s, alpha_bar_t)

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """The signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t)."""
        alpha_bar = self.alpha_bar[t]
        return alpha_bar / (1 - alpha_bar)


def _linear(num_steps: int) -> torch.Tensor:
    scale = 1000.0 / num_steps
    return torch.linspace(1e-4 * scale, min(0.02 * scale, 0.999), num_steps, dtype=torch.float64)


def _cosine(num_steps: int, s: float = 0.008) -> torch.Tensor:
    t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
