r"""posteriordb's ``eight_schools-eight_schools_noncentered``: the eight schools of
Rubin (1981) with the school effects written as shifted and scaled standard normals.

.. math::

    \mu \sim \mathcal N(0, 5^2), \quad \tau \sim \mathrm{HalfCauchy}(5), \quad
    \tilde\theta_j \sim \mathcal N(0, 1), \quad \theta_j = \mu + \tau \tilde\theta_j,
    \quad y_j \sim \mathcal N(\theta_j, \sigma_j^2), \quad j = 1, \dots, 8.

The non-centred form removes the funnel between ``tau`` and the effects that the
centred form has; NUTS mixes on it without divergences and mean-field VI meets it
where the funnel is gone, though it still cannot hold the dependence between ``tau``
and ``theta``.

References:
    Rubin (1981). Estimation in parallel randomized experiments. J. Educ. Stat. 6(4).

    Gelman et al. (2013). Bayesian Data Analysis, 3rd ed., section 5.5.
"""

from __future__ import annotations

from pyroapi import distributions as dist
from pyroapi import pyro

__all__ = ["eight_schools_noncentered"]


def eight_schools_noncentered(y, sigma):
    """``y`` (J,) estimated effects, ``sigma`` (J,) their standard errors. Sites
    ``mu``, ``tau``, ``theta_trans`` (J,); deterministic ``theta`` (J,).

    Global sites broadcast against the plate as they are (no ``[..., None]``), so the
    model vectorizes over particles (Pyro puts them left of every plate)."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("schools", y.shape[0]):
        theta_trans = pyro.sample("theta_trans", dist.Normal(0.0, 1.0))
        theta = pyro.deterministic("theta", theta_trans * tau + mu)
        pyro.sample("y", dist.Normal(theta, sigma * 1.0), obs=y * 1.0)
