r"""posteriordb's ARMA(1,1) and GARCH(1,1), exactly their Stan programs, with each
recursion computed as one matrix product instead of a loop over time.

``arma-arma11``:

.. math::

    \mu \sim \mathcal N(0, 10^2), \quad \phi, \theta \sim \mathcal N(0, 2^2), \quad
    \sigma \sim \mathrm{HalfCauchy}(2.5), \\
    \epsilon_1 = y_1 - \mu - \phi\mu, \quad
    \epsilon_t = y_t - \mu - \phi y_{t-1} - \theta \epsilon_{t-1}, \quad
    \epsilon_t \sim \mathcal N(0, \sigma^2).

``garch-garch11``: flat priors on :math:`\mu`, :math:`\alpha_0 > 0`,
:math:`\alpha_1 \in (0, 1)` and :math:`\beta_1 \in (0, 1 - \alpha_1)`,

.. math::

    \sigma_1 = \text{sigma1}, \quad
    \sigma_t^2 = \alpha_0 + \alpha_1 (y_{t-1} - \mu)^2 + \beta_1 \sigma_{t-1}^2, \quad
    y_t \sim \mathcal N(\mu, \sigma_t^2).

:math:`\beta_1`'s upper bound depends on :math:`\alpha_1`. Pyro's NUTS and autoguides
fix each site's support from one trace, so :math:`\beta_1` is sampled as the share
:math:`r = \beta_1 / (1 - \alpha_1) \in (0, 1)` with the Jacobian
:math:`\log(1 - \alpha_1)` added: the density over
:math:`(\mu, \alpha_0, \alpha_1, \beta_1)` is Stan's, and ``beta1`` is a deterministic
site for the comparison.

Both recursions are linear, :math:`x_t = a x_{t-1} + c_t`, so
:math:`x = L c` with :math:`L_{ts} = a^{t-s}` for :math:`s \le t`
(:func:`linear_recursion`): T^2 multiplications where a loop makes T dependent steps,
which is what Pyro's SVI and JAX's compiler pay for.

References:
    Box, Jenkins, Reinsel (2008). Time Series Analysis, chapter 3.

    Bollerslev (1986). Generalized autoregressive conditional heteroskedasticity.
    J. Econometrics 31(3).
"""

from __future__ import annotations

from pyroapi import distributions as dist
from pyroapi import ops, pyro
from pyrogen.models.timeseries import ar_model

__all__ = ["arK", "arma11", "garch11", "linear_recursion"]


def linear_recursion(a, c):
    """x with x_0 = c_0 and x_t = a x_{t-1} + c_t, for c (..., T) and ``a`` that
    broadcasts against c (a scalar, or (..., 1)) (either backend): x = L c with
    L[t, s] = a^(t - s) for s <= t, else 0."""
    T = c.shape[-1]
    ones = ops.ones_like(c[..., :1])
    powers = ops.cumprod(ops.concatenate([ones, a * ops.ones_like(c[..., 1:])], -1), -1)
    steps = ops.arange(T)
    lag = steps[:, None] - steps[None, :]  # t - s
    lower = lag >= 0
    lag = ops.where(lower, lag, 0 * lag)
    matrix = ops.where(lower, powers[..., lag], 0.0 * powers[..., lag])
    return (matrix * c[..., None, :]).sum(-1)


def arma11(y):
    """The series ``y`` (T,). Sites ``mu``, ``phi``, ``theta``, ``sigma``."""
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    phi = pyro.sample("phi", dist.Normal(0.0, 2.0))
    theta = pyro.sample("theta", dist.Normal(0.0, 2.0))
    sigma = pyro.sample("sigma", dist.HalfCauchy(2.5))
    y = y * 1.0
    first = y[:1] - mu - phi * mu
    rest = y[1:] - mu - phi * y[:-1]
    first = first * ops.ones_like(rest[..., :1])  # the batch shape of rest
    errors = linear_recursion(-theta, ops.concatenate([first, rest], -1))
    with pyro.plate("time", y.shape[0]):
        pyro.sample("err", dist.Normal(0.0, sigma), obs=errors)


def garch11(y, sigma1):
    """The series ``y`` (T,) and the first volatility ``sigma1``. Sites ``mu``,
    ``alpha0``, ``alpha1``, ``beta1_share``; deterministic ``beta1``."""
    mu = pyro.sample("mu", dist.ImproperUniform(dist.constraints.real, (), ()))
    alpha0 = pyro.sample("alpha0", dist.ImproperUniform(dist.constraints.positive, (), ()))
    alpha1 = pyro.sample("alpha1", dist.Uniform(0.0, 1.0))
    share = pyro.sample("beta1_share", dist.Uniform(0.0, 1.0))
    pyro.factor("beta1_jacobian", ops.log1p(-alpha1))
    beta1 = pyro.deterministic("beta1", (1.0 - alpha1) * share)
    y = y * 1.0
    shocks = alpha0 + alpha1 * (y[:-1] - mu) ** 2
    first = ops.ones_like(shocks[..., :1]) * sigma1**2
    variance = linear_recursion(beta1, ops.concatenate([first, shocks], -1))
    with pyro.plate("time", y.shape[0]):
        pyro.sample("y", dist.Normal(mu, ops.sqrt(variance)), obs=y)


def arK(y, K):
    """posteriordb's ``arK-arK``, the zoo's :func:`~pyrogen.models.ar_model` with the
    Stan program's data names (``K`` lags)."""
    ar_model(y, order=int(K))
