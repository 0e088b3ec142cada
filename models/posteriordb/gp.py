r"""posteriordb's ``gp_pois_regr``: a latent Gaussian process under Poisson counts.

.. math::

    \rho \sim \mathrm{Gamma}(25, 4), \quad \alpha \sim \mathcal N^+(0, 2), \quad
    \tilde f \sim \mathcal N(0, I_N), \quad f = L \tilde f, \quad
    L L^\top = \alpha^2 \exp\!\Big(-\frac{(x_i - x_j)^2}{2 \rho^2}\Big) + 10^{-10} I,
    \quad k_i \sim \mathrm{Poisson}(e^{f_i}).

The non-centred parametrization and the 1e-10 jitter are the Stan program's. The
jitter is below float32's resolution relative to the kernel's diagonal, so the
Cholesky factor of a smooth kernel is computed from a numerically singular matrix in
float32: NumPyro's NUTS in JAX's default float32 leaves its chains stuck (R-hat above
3, most transitions divergent), in float64 they agree (pyrogen's default precision).
"""

from __future__ import annotations

from pyroapi import distributions as dist
from pyroapi import ops, pyro

__all__ = ["gp_pois_regr"]


def gp_pois_regr(x, k=None):
    """``x`` (N,) inputs, ``k`` (N,) counts. Sites ``rho``, ``alpha``, ``f_tilde``;
    deterministic ``f`` (the latent log-rates)."""
    n = x.shape[0]
    rho = pyro.sample("rho", dist.Gamma(25.0, 4.0))
    alpha = pyro.sample("alpha", dist.HalfNormal(2.0))
    f_tilde = pyro.sample("f_tilde", dist.Normal(0.0, 1.0).expand([n]).to_event(1))
    distance = x[:, None] - x[None, :]
    cov = alpha**2 * ops.exp(-(distance**2) / (2 * rho**2)) + 1e-10 * ops.eye(n)
    f = pyro.deterministic("f", ops.linalg.cholesky(cov) @ f_tilde)
    with pyro.plate("obs", n):
        pyro.sample("k", dist.Poisson(ops.exp(f)), obs=k)
