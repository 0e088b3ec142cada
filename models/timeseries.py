r"""Latent-chain and autoregressive time-series models.

**Bayesian AR(p)**, exactly posteriordb's ``arK``:

.. math::

    \alpha \sim \mathcal{N}(0, 10^2), \quad \beta_k \sim \mathcal{N}(0, 10^2), \quad
    \sigma \sim \mathrm{HalfCauchy}(2.5), \qquad
    y_t \mid y_{<t} \sim \mathcal{N}\Big(\alpha + \sum_{k=1}^{p} \beta_k y_{t-k},
    \sigma^2\Big), \quad t = p+1, \dots, T,

conditioning on the first p values (the Stan model's likelihood). The sites are named
as in the Stan model (``alpha``, ``beta`` with shape (p,), ``sigma``), so its posterior
is compared with Stan's reference draws directly. :func:`ar_model` is written against
pyro-api and runs under Pyro and NumPyro; :class:`AutoRegressive` wraps it as a zoo
model with forecasting by posterior-predictive simulation.

References:
    Magnusson et al. posteriordb, ``arK-arK``.

    Box, Jenkins, Reinsel (2008). Time Series Analysis, chapter 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from pyroapi import distributions as dist
from pyroapi import ops, pyro

from pyrogen.validation import as_data_tensor, check_positive_int
from pyrogen.zoo import ZooModel, register

__all__ = ["AutoRegressive", "ar_model"]


def ar_model(y, order: int, alpha_scale=10.0, beta_scale=10.0, sigma_scale=2.5):
    """Bayesian AR(``order``) on the series ``y`` (T,), conditioning on its first values.

    Sites: ``alpha`` (), ``beta`` (order,), ``sigma`` (), observed ``y`` (T - order,)."""
    alpha = pyro.sample("alpha", dist.Normal(0.0, alpha_scale))
    beta = pyro.sample("beta", dist.Normal(0.0, beta_scale).expand([order]).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfCauchy(sigma_scale))
    T = y.shape[0]
    lags = ops.stack([y[order - k : T - k] for k in range(1, order + 1)], -1)  # y[t - k]
    mu = alpha + (lags * beta[..., None, :]).sum(-1)
    with pyro.plate("time", T - order):
        pyro.sample("y", dist.Normal(mu, sigma[..., None]), obs=y[order:])


@dataclass
class AutoRegressiveConfig:
    order: int  # p, the number of lags
    alpha_scale: float = 10.0  # prior sd of the intercept
    beta_scale: float = 10.0  # prior sd of each lag coefficient
    sigma_scale: float = 2.5  # HalfCauchy scale of the noise sd


@register("ar")
class AutoRegressive(ZooModel):
    """Bayesian AR(p) (posteriordb ``arK`` priors by default).

    Arguments:
        order: p, the number of lags.
        alpha_scale, beta_scale, sigma_scale: the prior scales (see :func:`ar_model`).

    After ``fit`` the model keeps its point estimate (SVI, MAP) or every NUTS draw;
    ``log_prob(y)`` is then the one-step-ahead predictive log density of each
    y_t (t > p), ``forecast(y, horizon)`` simulates future paths from the posterior
    predictive and ``sample(n)`` simulates a series of length n.

    Example:
        >>> import pyrogen
        >>> y = pyrogen.data.load_posteriordb("arK").data["y"]  # doctest: +SKIP
        >>> fit = pyrogen.fit(AutoRegressive(5), y, method="nuts")  # doctest: +SKIP
    """

    jit_safe = True
    portable = True  # model() is the pyro-api ar_model: NUTS may run it under NumPyro
    default_method = "svi"

    def __init__(self, order: int, alpha_scale=10.0, beta_scale=10.0, sigma_scale=2.5):
        super().__init__()
        check_positive_int(order, "order")
        for name, value in (
            ("alpha_scale", alpha_scale),
            ("beta_scale", beta_scale),
            ("sigma_scale", sigma_scale),
        ):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: must be a positive number, got {value!r}")
        self.config = AutoRegressiveConfig(
            order, float(alpha_scale), float(beta_scale), float(sigma_scale)
        )
        dtype = torch.float64
        self.register_buffer("fitted", torch.tensor(False))
        self.register_buffer("alpha", torch.zeros(1, dtype=dtype))
        self.register_buffer("beta", torch.zeros(1, order, dtype=dtype))
        self.register_buffer("sigma", torch.ones(1, dtype=dtype))

    def prepare(self, *data) -> tuple:
        if len(data) != 1:
            raise TypeError(f"AutoRegressive takes one series y, got {len(data)} arguments")
        y = as_data_tensor(data[0], "y", ndim=1, dtype=self.alpha.dtype).to(self.alpha.device)
        if y.shape[0] <= self.config.order:
            raise ValueError(
                f"y: an AR({self.config.order}) model needs more than {self.config.order} "
                f"values, got {y.shape[0]}"
            )
        return (y,)

    def num_examples(self, y) -> int:
        return int(y.shape[0]) - self.config.order

    def model(self, y) -> None:
        c = self.config
        ar_model(y, c.order, c.alpha_scale, c.beta_scale, c.sigma_scale)

    @torch.no_grad()
    def initialize(self, y) -> None:
        """Least squares (conditional maximum likelihood): a start for SVI, MAP, NUTS."""
        p, T = self.config.order, y.shape[0]
        lags = torch.stack([y[p - k : T - k] for k in range(1, p + 1)], -1)
        design = torch.cat([torch.ones(T - p, 1, dtype=y.dtype), lags], -1)
        solution = torch.linalg.lstsq(design, y[p:, None]).solution[:, 0]
        residual = y[p:] - design @ solution
        self.alpha = solution[:1].clone()
        self.beta = solution[None, 1:].clone()
        self.sigma = residual.std().clamp_min(1e-6)[None]

    def point_values(self) -> dict[str, torch.Tensor]:
        return {"alpha": self.alpha[0], "beta": self.beta[0], "sigma": self.sigma[0]}

    def absorb(self, values: dict[str, torch.Tensor]) -> None:
        """Keep a point estimate, or every posterior draw (leading sample dimension)."""
        dtype = self.alpha.dtype
        alpha = torch.as_tensor(values["alpha"], dtype=dtype).reshape(-1)
        self.alpha = alpha.clone()
        self.beta = torch.as_tensor(values["beta"], dtype=dtype).reshape(len(alpha), -1).clone()
        self.sigma = torch.as_tensor(values["sigma"], dtype=dtype).reshape(-1).clone()
        self.fitted.fill_(True)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        for name in ("alpha", "beta", "sigma"):
            if name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[name]))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # -- predictive quantities -----------------------------------------------------------
    def _means(self, y: torch.Tensor) -> torch.Tensor:
        """One-step-ahead means, (draws, T - p)."""
        p, T = self.config.order, y.shape[0]
        lags = torch.stack([y[p - k : T - k] for k in range(1, p + 1)], -1)
        return self.alpha[:, None] + self.beta @ lags.T

    def log_prob(self, y) -> torch.Tensor:
        """log p(y_t | y_{t-p..t-1}) for t = p+1..T, averaged over the posterior draws
        (the one-step-ahead posterior predictive), shape (T - p,)."""
        (y,) = self.prepare(y)
        with torch.no_grad():
            normal = torch.distributions.Normal(self._means(y), self.sigma[:, None])
            log_p = normal.log_prob(y[None, self.config.order :])
            return log_p.logsumexp(0) - math.log(len(self.alpha))

    def forecast(self, y, horizon: int, num_samples: int = 1000) -> torch.Tensor:
        """Posterior-predictive paths continuing ``y``, shape (num_samples, horizon):
        each path takes one parameter draw and simulates with its noise."""
        y = as_data_tensor(y, "y", ndim=1, dtype=self.alpha.dtype).to(self.alpha.device)
        if y.shape[0] < self.config.order:
            raise ValueError(f"y: a forecast needs the last {self.config.order} values")
        check_positive_int(horizon, "horizon")
        check_positive_int(num_samples, "num_samples")
        p = self.config.order
        which = torch.randint(len(self.alpha), (num_samples,))
        alpha, beta, sigma = self.alpha[which], self.beta[which], self.sigma[which]
        history = y[-p:].flip(0).expand(num_samples, p).clone()  # y_{t-1}, ..., y_{t-p}
        paths = []
        with torch.no_grad():
            for _ in range(horizon):
                mean = alpha + (history * beta).sum(-1)
                value = mean + sigma * torch.randn(num_samples, dtype=y.dtype)
                paths.append(value)
                history = torch.cat([value[:, None], history[:, :-1]], -1)
        return torch.stack(paths, -1)

    def sample(self, n: int, burn_in: int = 200) -> torch.Tensor:
        """A simulated series of length n (after ``burn_in`` steps from zeros)."""
        check_positive_int(n, "n")
        start = torch.zeros(self.config.order, dtype=self.alpha.dtype)
        return self.forecast(start, burn_in + n, num_samples=1)[0, burn_in:]

    def pointwise_log_likelihood(self, draws: dict, y: torch.Tensor) -> dict[str, np.ndarray]:
        """log p(y_t | past, draw s) for ArviZ, shape (S, T - p)."""
        p, T = self.config.order, y.shape[0]
        alpha = torch.as_tensor(np.array(draws["alpha"]), dtype=y.dtype).reshape(-1, 1)
        beta = torch.as_tensor(np.array(draws["beta"]), dtype=y.dtype).reshape(len(alpha), p)
        sigma = torch.as_tensor(np.array(draws["sigma"]), dtype=y.dtype).reshape(-1, 1)
        lags = torch.stack([y[p - k : T - k] for k in range(1, p + 1)], -1)
        mean = alpha + beta @ lags.T
        return {"y": torch.distributions.Normal(mean, sigma).log_prob(y[p:]).numpy()}
