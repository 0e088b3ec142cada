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

import numpy as np
import pyro as pyro_torch  # the Pyro module itself, for the torch-only HiddenMarkov.model
import pyro.distributions as pyro_dist
import torch
from pyroapi import distributions as dist
from pyroapi import ops, pyro

from pyrogen.validation import as_data_tensor, check_positive_int, check_positive_number
from pyrogen.zoo import ZooModel, register

__all__ = ["AutoRegressive", "HiddenMarkov", "ar_model", "hmm_model", "simulate_ar"]


def _lags(y, order: int, stack=torch.stack):
    """The design of an AR(order): row t - order holds y[t - 1], ..., y[t - order] for
    t = order..T-1, shape (T - order, order); ``stack`` is torch's or pyro-api's."""
    T = y.shape[0]
    return stack([y[order - k : T - k] for k in range(1, order + 1)], -1)


def ar_model(y, order: int, alpha_scale=10.0, beta_scale=10.0, sigma_scale=2.5):
    """Bayesian AR(``order``) on the series ``y`` (T,), conditioning on its first values.

    Sites: ``alpha`` (), ``beta`` (order,), ``sigma`` (), observed ``y`` (T - order,)."""
    alpha = pyro.sample("alpha", dist.Normal(0.0, alpha_scale))
    zeros = ops.zeros_like(y[:order])  # on y's device and of its dtype
    beta = pyro.sample("beta", dist.Normal(zeros, beta_scale).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfCauchy(sigma_scale))
    lags = _lags(y, order, ops.stack)
    mu = alpha + (lags * beta[..., None, :]).sum(-1)
    with pyro.plate("time", lags.shape[0]):
        pyro.sample("y", dist.Normal(mu, sigma[..., None]), obs=y[order:])


def simulate_ar(alpha, beta, sigma, length: int, burn_in: int = 50) -> torch.Tensor:
    """A series of ``length`` values from the AR(p) process with these parameters
    (p = len(beta)), started at zeros and run ``burn_in`` steps first, in float64.
    :func:`ar_model` conditions on the series itself, so it cannot simulate one: this
    is what simulation-based calibration uses as its simulator."""
    check_positive_int(length, "length")
    check_positive_int(burn_in, "burn_in", minimum=0)
    alpha, beta, sigma = (torch.as_tensor(v, dtype=torch.float64) for v in (alpha, beta, sigma))
    if beta.dim() != 1 or alpha.dim() or sigma.dim():
        raise ValueError(
            f"beta: expected a vector of lag coefficients beside scalar alpha and sigma, got "
            f"shapes {tuple(alpha.shape)}, {tuple(beta.shape)}, {tuple(sigma.shape)}"
        )
    history = [torch.tensor(0.0, dtype=torch.float64)] * beta.shape[-1]  # y_{t-1}, y_{t-2}, ...
    values = []
    for _ in range(length + burn_in):
        mean = alpha + sum(b * h for b, h in zip(beta, history))
        value = mean + sigma * torch.randn((), dtype=torch.float64)
        history = [value, *history[:-1]]
        values.append(value)
    return torch.stack(values[burn_in:])


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
    # pyrogen fit ar: posteriordb's arK series (or sunspots, a CSV column), AR(5)
    cli_data, cli_report, cli_defaults = "series", "series", {"order": 5}

    def __init__(self, order: int, alpha_scale=10.0, beta_scale=10.0, sigma_scale=2.5):
        super().__init__()
        check_positive_int(order, "order")
        self.normalize(
            alpha_scale=check_positive_number(alpha_scale, "alpha_scale"),
            beta_scale=check_positive_number(beta_scale, "beta_scale"),
            sigma_scale=check_positive_number(sigma_scale, "sigma_scale"),
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
        p, lags = self.config.order, _lags(y, self.config.order)
        design = torch.cat([lags.new_ones(len(lags), 1), lags], -1)
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
    def _step_log_probs(self, y, alpha, beta, sigma) -> torch.Tensor:
        """log N(y_t; alpha_s + sum_k beta_sk y_{t-k}, sigma_s) for every draw s and
        t = p+1..T: shape (S, T - p), given alpha (S,), beta (S, p), sigma (S,)."""
        p = self.config.order
        mean = alpha[:, None] + beta @ _lags(y, p).T
        return torch.distributions.Normal(mean, sigma[:, None]).log_prob(y[p:])

    def log_prob(self, y) -> torch.Tensor:
        """log p(y_t | y_{t-p..t-1}) for t = p+1..T, averaged over the posterior draws
        (the one-step-ahead posterior predictive), shape (T - p,)."""
        (y,) = self.prepare(y)
        with torch.no_grad():
            log_p = self._step_log_probs(y, self.alpha, self.beta, self.sigma)
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
        which = torch.randint(len(self.alpha), (num_samples,), device=y.device)
        alpha, beta, sigma = self.alpha[which], self.beta[which], self.sigma[which]
        history = y[-p:].flip(0).expand(num_samples, p).clone()  # y_{t-1}, ..., y_{t-p}
        paths = []
        with torch.no_grad():
            for _ in range(horizon):
                mean = alpha + (history * beta).sum(-1)
                value = mean + sigma * torch.randn(num_samples, dtype=y.dtype, device=y.device)
                paths.append(value)
                history = torch.cat([value[:, None], history[:, :-1]], -1)
        return torch.stack(paths, -1)

    def sample(self, n: int, burn_in: int = 200) -> torch.Tensor:
        """A simulated series of length n (after ``burn_in`` steps from zeros)."""
        check_positive_int(n, "n")
        start = self.alpha.new_zeros(self.config.order)
        return self.forecast(start, burn_in + n, num_samples=1)[0, burn_in:]

    def pointwise_log_likelihood(self, draws: dict, y: torch.Tensor) -> dict[str, np.ndarray]:
        """log p(y_t | past, draw s) for ArviZ, shape (S, T - p)."""
        like = dict(dtype=y.dtype, device=y.device)
        alpha = torch.as_tensor(np.array(draws["alpha"]), **like).reshape(-1)
        beta = torch.as_tensor(np.array(draws["beta"]), **like).reshape(len(alpha), -1)
        sigma = torch.as_tensor(np.array(draws["sigma"]), **like).reshape(-1)
        return {"y": self._step_log_probs(y, alpha, beta, sigma).cpu().numpy()}


# -- hidden Markov models ---------------------------------------------------------------------


def _forward(log_emission, log_transition, xp):
    """The forward algorithm's messages log p(y_1..t, z_t), shape (T, K), started as
    Stan's ``hmm_example`` does (gamma_1 = log p(y_1 | z_1), no initial distribution);
    ``xp`` is torch or pyro-api's ops."""
    alphas = [log_emission[0]]
    for t in range(1, log_emission.shape[0]):
        alphas.append(xp.logsumexp(alphas[-1][:, None] + log_transition, 0) + log_emission[t])
    return xp.stack(alphas, 0)


def _log_evidence(log_emission, log_transition, xp):
    """log sum_z p(y_1..T, z) started as :func:`_forward` is, by a parallel scan: the
    T - 1 transition-emission matrices are multiplied pairwise in the log semiring
    (log T rounds of batched operations instead of T sequential ones), so a gradient
    under Pyro costs a handful of tensor operations (Pyro's DiscreteHMM does the same).
    ``xp`` is torch or pyro-api's ops."""
    steps = log_transition + log_emission[1:, None, :]  # (T - 1, K, K): from, to
    while steps.shape[0] > 1:
        even = steps.shape[0] // 2 * 2
        pairs = xp.logsumexp(steps[0:even:2, :, :, None] + steps[1:even:2, None, :, :], 2)
        steps = pairs if even == steps.shape[0] else xp.cat([pairs, steps[even:]], 0)
    if steps.shape[0] == 0:
        return xp.logsumexp(log_emission[0], 0)
    return xp.logsumexp(xp.logsumexp(log_emission[0][:, None] + steps[0], 1), 0)


def hmm_model(
    y, num_states: int = 2, mu_loc=(3.0, 10.0), mu_scale: float = 1.0, scale: float = 1.0
):
    """posteriordb's ``hmm_example`` in pyro-api: K-state HMM with N(mu_k, scale) emissions.

    ``theta`` (K, K): rows are simplex transition probabilities (flat Dirichlet prior);
    ``mu`` (K,): positive and ordered, mu_k ~ N(mu_loc[k], mu_scale) as a factor; the
    chain is summed out by the forward algorithm (a factor ``y``), exactly as the Stan
    model does, so Pyro NUTS, NumPyro NUTS and Stan target the same density."""
    K = num_states
    theta = pyro.sample("theta", dist.Dirichlet(ops.ones(K, K)).to_event(1))
    mu = pyro.sample("mu", dist.ImproperUniform(dist.constraints.positive_ordered_vector, (), (K,)))
    loc = ops.tensor(list(mu_loc)) * 1.0
    pyro.factor("mu_prior", dist.Normal(loc, mu_scale).log_prob(mu).sum())
    log_emission = dist.Normal(mu, scale).log_prob(y[:, None])  # (T, K)
    pyro.factor("y", _log_evidence(log_emission, ops.log(theta), ops))


@register("hmm")
class HiddenMarkov(ZooModel):
    """A hidden Markov model with K states and Gaussian emissions N(mu_z, scale^2).

    The Pyro ``model`` draws the chain with ``pyro.markov`` and marks every state for
    parallel enumeration, so ``TraceEnum_ELBO`` (MAP, SVI) and NUTS sum it out exactly;
    ``method="em"`` is Baum-Welch (forward-backward E-step, closed-form M-step); the
    states are kept ordered by their means. :meth:`viterbi` decodes the most probable
    path. :func:`hmm_model` is the same posterior in pyro-api with the forward algorithm
    written out (posteriordb ``hmm_example``).

    Arguments:
        num_states: K.
        scale: the known emission sd.
        mu_loc: prior means of the (ordered) state means, or None for a flat prior
            (maximum likelihood: Baum-Welch and MAP find the same point).
        mu_scale, concentration: the other prior scales.

    Sites: ``theta`` (K, K), ``mu`` (K,), ``z_t`` enumerated, ``y_t`` observed.
    """

    jit_safe = True  # one site per time step: the trace depends only on T, fixed in a fit
    default_method = "em"
    # pyrogen fit hmm: posteriordb's hmm_example series, two states
    cli_data, cli_report, cli_defaults = "series", "series", {"num_states": 2}
    cli_default_data = "hmm_example"

    @classmethod
    def cli_config(cls, options, data, method: str) -> dict:
        """NUTS needs a proper prior on the state means: spread over the data's range."""
        if method != "nuts":
            return {}
        y = np.asarray(data.train)
        states = int(options.config.get("num_states", 2))
        spread = np.quantile(y, np.linspace(0.25, 0.75, states))
        return {"mu_loc": spread.tolist(), "mu_scale": float(y.std())}

    def __init__(
        self,
        num_states: int,
        scale: float = 1.0,
        mu_loc=None,
        mu_scale: float = 1.0,
        concentration: float = 1.0,
        n_init: int = 1,
    ):
        super().__init__()
        check_positive_int(num_states, "num_states", minimum=2)
        check_positive_int(n_init, "n_init")
        for name, value in (
            ("scale", scale),
            ("mu_scale", mu_scale),
            ("concentration", concentration),
        ):
            check_positive_number(value, name)
        if mu_loc is not None:
            mu_loc = [float(v) for v in mu_loc]
            if len(mu_loc) != num_states:
                raise ValueError(f"mu_loc: expected {num_states} prior means, got {len(mu_loc)}")
        self.normalize(
            scale=float(scale),
            mu_loc=mu_loc,
            mu_scale=float(mu_scale),
            concentration=float(concentration),
        )
        K, dtype = num_states, torch.float64
        self.register_buffer("fitted", torch.tensor(False))
        self.register_buffer("theta", torch.full((K, K), 1.0 / K, dtype=dtype))
        self.register_buffer("mu", torch.arange(1, K + 1, dtype=dtype))

    def prepare(self, *data) -> tuple:
        if len(data) != 1:
            raise TypeError(f"HiddenMarkov takes one series y, got {len(data)} arguments")
        y = as_data_tensor(data[0], "y", ndim=1, dtype=self.mu.dtype).to(self.mu.device)
        if y.shape[0] < 2:
            raise ValueError(f"y: a hidden Markov model needs at least 2 values, got {len(y)}")
        return (y,)

    # -- the Pyro model -----------------------------------------------------------------
    def _mu_prior(self, mu):
        if self.config.mu_loc is None:
            return mu.new_zeros(())
        loc = torch.tensor(self.config.mu_loc, dtype=mu.dtype, device=mu.device)
        return torch.distributions.Normal(loc, self.config.mu_scale).log_prob(mu).sum(-1)

    def model(self, y) -> None:
        _pyro, _dist = pyro_torch, pyro_dist
        K = self.config.num_states
        concentration = y.new_full((K, K), self.config.concentration)
        theta = _pyro.sample("theta", _dist.Dirichlet(concentration).to_event(1))
        mu = _pyro.sample("mu", _dist.ImproperUniform(_dist.constraints.ordered_vector, (), (K,)))
        _pyro.factor("mu_prior", self._mu_prior(mu))
        z = None
        for t in _pyro.markov(range(y.shape[0])):
            probs = y.new_full((K,), 1.0 / K) if z is None else theta[z]
            z = _pyro.sample(f"z_{t}", _dist.Categorical(probs), infer={"enumerate": "parallel"})
            _pyro.sample(f"y_{t}", _dist.Normal(mu[z], self.config.scale), obs=y[t])

    def point_values(self) -> dict[str, torch.Tensor]:
        return {"theta": self.theta.clone(), "mu": self.mu.clone()}

    def absorb(self, values: dict[str, torch.Tensor]) -> None:
        """Keep a point estimate; given draws, their means (the draws are ordered by mu)."""
        theta = torch.as_tensor(values["theta"], dtype=self.mu.dtype)
        mu = torch.as_tensor(values["mu"], dtype=self.mu.dtype)
        if mu.dim() == 2:
            theta, mu = theta.mean(0), mu.mean(0)
        self.theta.copy_(theta)
        self.mu.copy_(mu)
        self.fitted.fill_(True)

    def initialize(self, y) -> None:
        """States at evenly spaced quantiles of y, sticky transitions."""
        K = self.config.num_states
        with torch.no_grad():
            q = torch.linspace(0.5 / K, 1 - 0.5 / K, K, dtype=y.dtype, device=y.device)
            self.mu.copy_(torch.quantile(y, q))
            self.theta.fill_(0.2 / max(K - 1, 1))
            self.theta.fill_diagonal_(0.8)

    # -- exact computations ---------------------------------------------------------------
    def _log_emission(self, y, mu=None):
        mu = self.mu if mu is None else mu
        return torch.distributions.Normal(mu, self.config.scale).log_prob(y[:, None])

    def _filter(self, y, theta=None, mu=None):
        """Forward messages log p(y_1..t, z_t) with a uniform initial state, shape (T, K),
        for the fitted parameters or the given ones."""
        theta = self.theta if theta is None else theta
        log_emission = self._log_emission(y, mu)
        return _forward(log_emission, theta.log(), torch) - math.log(self.config.num_states)

    def _step_log_probs(self, y, theta=None, mu=None) -> torch.Tensor:
        """log p(y_t | y_<t) for every t, shape (T,)."""
        totals = self._filter(y, theta, mu).logsumexp(-1)
        return torch.cat([totals[:1], totals.diff()])

    def log_prob(self, y) -> torch.Tensor:
        """log p(y_t | y_<t) for every t (the one-step-ahead predictive), shape (T,);
        their sum is log p(y) with a uniform initial state."""
        (y,) = self.prepare(y)
        with torch.no_grad():
            return self._step_log_probs(y)

    def viterbi(self, y) -> torch.Tensor:
        """The most probable state path argmax_z p(z | y), shape (T,)."""
        (y,) = self.prepare(y)
        with torch.no_grad():
            log_emission, log_theta = self._log_emission(y), self.theta.log()
            best, pointers = log_emission[0], []
            for t in range(1, len(y)):
                scores = best[:, None] + log_theta  # (from, to)
                pointers.append(scores.argmax(0))
                best = scores.max(0).values + log_emission[t]
            path = [int(best.argmax())]
            for pointer in reversed(pointers):
                path.append(int(pointer[path[-1]]))
            return torch.tensor(path[::-1], device=y.device)

    def em_init(self, y) -> None:
        self.initialize(y)

    def em_step(self, y) -> float:
        """Baum-Welch: forward-backward, then closed-form transitions and means (MAP
        under the priors when given); returns the mean log-likelihood per step before."""
        K, T = self.config.num_states, len(y)
        log_emission, log_theta = self._log_emission(y), self.theta.log()
        log_alpha = _forward(log_emission, log_theta, torch) - math.log(K)
        log_beta = [y.new_zeros(K)]
        for t in range(T - 1, 0, -1):
            log_beta.append((log_theta + log_emission[t] + log_beta[-1]).logsumexp(-1))
        log_beta = torch.stack(log_beta[::-1])
        log_evidence = log_alpha[-1].logsumexp(0)
        gamma = (log_alpha + log_beta - log_evidence).exp()  # (T, K)
        xi = (
            (
                log_alpha[:-1, :, None]
                + log_theta
                + (log_emission + log_beta)[1:, None, :]
                - log_evidence
            )
            .exp()
            .sum(0)
        )  # (K, K) expected transition counts
        counts = xi + (self.config.concentration - 1.0)
        self.theta.copy_(counts.clamp_min(1e-300) / counts.sum(-1, keepdim=True))
        weight = gamma.sum(0)
        precision = weight / self.config.scale**2
        total = gamma.T @ y / self.config.scale**2
        if self.config.mu_loc is not None:  # conjugate normal prior: the MAP mean
            loc = torch.tensor(self.config.mu_loc, dtype=y.dtype, device=y.device)
            precision = precision + 1 / self.config.mu_scale**2
            total = total + loc / self.config.mu_scale**2
        mu = total / precision
        order = mu.argsort()
        self.mu.copy_(mu[order])
        self.theta.copy_(self.theta[order][:, order])
        self.fitted.fill_(True)
        return float(log_evidence) / T

    def sample(self, n: int) -> torch.Tensor:
        """A simulated series of length n from the fitted chain."""
        check_positive_int(n, "n")
        K = self.config.num_states
        z = int(torch.randint(K, ()))  # a Python int: indexes on any device
        values = []
        for _ in range(n):
            values.append(self.mu[z] + self.config.scale * self.mu.new_empty(()).normal_())
            z = int(torch.multinomial(self.theta[z], 1))
        return torch.stack(values)

    def pointwise_log_likelihood(self, draws: dict, y: torch.Tensor) -> dict[str, np.ndarray]:
        """log p(y_t | y_<t, draw s) (one-step-ahead), shape (S, T): the chain couples
        the observations, so these are the sequential terms whose sum is log p(y)."""
        theta = torch.as_tensor(np.array(draws["theta"]), dtype=y.dtype, device=y.device)
        mu = torch.as_tensor(np.array(draws["mu"]), dtype=y.dtype, device=y.device)
        theta, mu = theta.reshape(-1, *theta.shape[-2:]), mu.reshape(-1, mu.shape[-1])
        with torch.no_grad():
            out = [self._step_log_probs(y, th, m) for th, m in zip(theta, mu)]
        return {"y": torch.stack(out).cpu().numpy()}
