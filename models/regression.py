r"""Bayesian linear regression: the Gaussian posterior every VI guide can be judged by.

.. math::

    \beta \sim \mathcal{N}(0, \tau^2 I_D), \qquad
    y_n \mid \beta \sim \mathcal{N}(x_n^\top \beta, \sigma^2),

with known :math:`\tau` (``prior_scale``) and :math:`\sigma` (``noise_scale``). The
posterior is Gaussian with precision :math:`\Lambda = X^\top X / \sigma^2 + I / \tau^2`
and mean :math:`\Lambda^{-1} X^\top y / \sigma^2` (:func:`exact_posterior`). With
correlated predictors :math:`\Lambda` is far from diagonal, which makes the failure of
mean-field VI exact and known: the optimal fully factorized Gaussian
:math:`q(\beta) = \prod_d \mathcal{N}(\beta_d; m_d, s_d^2)` has the true means and
variances :math:`s_d^2 = 1 / \Lambda_{dd}`, smaller than the true marginal variances
:math:`(\Lambda^{-1})_{dd}` (Bishop, PRML, section 10.1.2; MacKay 2003, section 33.5).
A full-rank Gaussian guide recovers :math:`\Lambda^{-1}` exactly.

References:
    Bishop (2006). Pattern Recognition and Machine Learning, 10.1.2.
"""

from __future__ import annotations

import numpy as np
from pyroapi import distributions as dist
from pyroapi import pyro

__all__ = ["bayesian_linear_regression", "correlated_design", "exact_posterior"]


def bayesian_linear_regression(X, y=None, prior_scale: float = 1.0, noise_scale: float = 1.0):
    """The model, in pyro-api (runs under Pyro and NumPyro). ``X`` (N, D), ``y`` (N,).

    Site ``beta`` (D,) and observed ``y``."""
    D = X.shape[-1]
    beta = pyro.sample("beta", dist.Normal(0.0, prior_scale).expand([D]).to_event(1))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Normal((X * beta).sum(-1), noise_scale), obs=y)


def exact_posterior(X, y, prior_scale: float = 1.0, noise_scale: float = 1.0):
    """(mean, covariance, precision) of the Gaussian posterior of ``beta``, in float64."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    precision = X.T @ X / noise_scale**2 + np.eye(X.shape[1]) / prior_scale**2
    covariance = np.linalg.inv(precision)
    mean = covariance @ X.T @ y / noise_scale**2
    return mean, covariance, precision


def correlated_design(n: int = 100, dim: int = 2, rho: float = 0.95, seed: int = 0):
    """Predictors with pairwise correlation ``rho``, a true beta, and y: (X, y, beta)."""
    rng = np.random.default_rng(seed)
    cov = np.full((dim, dim), rho) + (1 - rho) * np.eye(dim)
    X = rng.multivariate_normal(np.zeros(dim), cov, size=n)
    beta = rng.normal(size=dim)
    y = X @ beta + rng.normal(size=n)
    return X, y, beta
