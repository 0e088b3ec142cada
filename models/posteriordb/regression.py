r"""posteriordb's regressions and GLMs, each exactly its Stan program: the same priors
(a parameter without a prior statement gets an improper flat prior on its support, as
in Stan), the same constraints and the same data transformations.

``kidiq-kidscore_interaction`` (Gelman and Hill 2007, ch. 3): a child's test score on
the mother's high-school completion, IQ and their product; flat prior on the
coefficients, :math:`\sigma \sim \mathrm{HalfCauchy}(2.5)`.

.. math:: \text{kid\_score}_i \sim \mathcal N(\beta_1 + \beta_2 h_i + \beta_3 q_i
    + \beta_4 h_i q_i,\ \sigma^2).

``mesquite-logmesquite_logva`` (Gelman and Hill 2007, ch. 4): log weight of mesquite
bushes on log canopy volume, log canopy area and group; flat priors on the
coefficients and on :math:`\sigma > 0`.

``kilpisjarvi_mod-kilpisjarvi``: summer temperatures at Kilpisjarvi against the year,
shifted by 2,000 years in posteriordb's version so that intercept and slope are
correlated (about -0.9999): :math:`\alpha \sim \mathcal N(m_\alpha, s_\alpha^2)`,
:math:`\beta \sim \mathcal N(m_\beta, s_\beta^2)` from the data, flat :math:`\sigma > 0`.

``GLM_Poisson_Data-GLM_Poisson_model`` (Kery and Schaub 2012, ch. 3): counts on a
cubic in the standardized year, :math:`C_i \sim \mathrm{Poisson}(e^{\eta_i})`,
uniform priors on bounded coefficients.

``dogs-dogs`` (the BUGS dogs example, Lindley 1979): 30 dogs over 25 trials each
learn to avoid a shock; the log-odds of a shock at trial t grows with the number of
earlier avoidances and shocks, :math:`y_{jt} \sim \mathrm{Bernoulli}(
\mathrm{logit}^{-1}(\beta_1 + \beta_2 A_{jt} + \beta_3 S_{jt}))`, :math:`\beta \sim
\mathcal N(0, 100^2)`.

References:
    Gelman and Hill (2007). Data Analysis Using Regression and Multilevel/Hierarchical
    Models. Cambridge University Press.

    Kery and Schaub (2012). Bayesian Population Analysis using WinBUGS. Academic Press.

    Magnusson et al. (2022). posteriordb: a set of posteriors for Bayesian inference
    and probabilistic programming.
"""

from __future__ import annotations

from pyroapi import distributions as dist
from pyroapi import ops, pyro

__all__ = [
    "dogs",
    "glm_poisson",
    "kidscore_interaction",
    "kilpisjarvi",
    "logmesquite_logva",
]


def _flat(shape=()):
    """Stan's implicit prior on an unbounded real parameter of ``shape``."""
    support = dist.constraints.real_vector if shape else dist.constraints.real
    return dist.ImproperUniform(support, (), tuple(shape))


def _flat_positive():
    return dist.ImproperUniform(dist.constraints.positive, (), ())


def _linear(beta, columns):
    """beta[..., 0] + sum_k beta[..., k] * columns[k]. beta's batch dims (particles,
    with a placeholder for the data's plate) broadcast against the columns as they
    are: every global site is used so here, which keeps the models vectorizable."""
    out = beta[..., 0]
    for k, column in enumerate(columns, start=1):
        out = out + beta[..., k] * column
    return out


def kidscore_interaction(kid_score, mom_iq, mom_hs):
    """``kid_score``, ``mom_iq``, ``mom_hs`` (N,). Sites ``beta`` (4,), ``sigma``."""
    beta = pyro.sample("beta", _flat([4]))
    sigma = pyro.sample("sigma", dist.HalfCauchy(2.5))
    hs, iq = mom_hs * 1.0, mom_iq * 1.0
    with pyro.plate("children", kid_score.shape[0]):
        mean = _linear(beta, [hs, iq, hs * iq])
        pyro.sample("kid_score", dist.Normal(mean, sigma), obs=kid_score * 1.0)


def logmesquite_logva(weight, diam1, diam2, canopy_height, group):
    """The mesquite data's columns (N,). Sites ``beta`` (4,), ``sigma``."""
    beta = pyro.sample("beta", _flat([4]))
    sigma = pyro.sample("sigma", _flat_positive())
    log_volume = ops.log(diam1 * diam2 * canopy_height)
    log_area = ops.log(diam1 * diam2)
    with pyro.plate("bushes", weight.shape[0]):
        mean = _linear(beta, [log_volume, log_area, group * 1.0])
        pyro.sample("log_weight", dist.Normal(mean, sigma), obs=ops.log(weight))


def kilpisjarvi(x, y, pmualpha, psalpha, pmubeta, psbeta):
    """Years ``x`` and temperatures ``y`` (N,), the priors' means and sds. Sites
    ``alpha``, ``beta``, ``sigma``."""
    alpha = pyro.sample("alpha", dist.Normal(pmualpha, psalpha))
    beta = pyro.sample("beta", dist.Normal(pmubeta, psbeta))
    sigma = pyro.sample("sigma", _flat_positive())
    with pyro.plate("years", y.shape[0]):
        pyro.sample("y", dist.Normal(alpha + beta * x, sigma), obs=y * 1.0)


def glm_poisson(C, year):
    """Counts ``C`` and standardized years ``year`` (n,). Sites ``alpha`` in (-20, 20),
    ``beta1``, ``beta2``, ``beta3`` in (-10, 10), all uniform."""
    alpha = pyro.sample("alpha", dist.Uniform(-20.0, 20.0))
    beta1 = pyro.sample("beta1", dist.Uniform(-10.0, 10.0))
    beta2 = pyro.sample("beta2", dist.Uniform(-10.0, 10.0))
    beta3 = pyro.sample("beta3", dist.Uniform(-10.0, 10.0))
    with pyro.plate("years", C.shape[0]):
        log_lambda = alpha + beta1 * year + beta2 * year**2 + beta3 * year**3
        pyro.sample("C", dist.Poisson(ops.exp(log_lambda)), obs=C * 1.0)


def dogs(y):
    """``y`` (dogs, trials): 1 where the dog was shocked. Site ``beta`` (3,)."""
    shocked = y * 1.0
    earlier_shocks = ops.cumsum(shocked, -1) - shocked  # before trial t
    trial = ops.cumsum(ops.ones_like(shocked), -1)
    earlier_avoidances = trial - 1.0 - earlier_shocks
    beta = pyro.sample("beta", dist.Normal(0.0, 100.0).expand([3]).to_event(1))
    logits = _linear(beta, [earlier_avoidances, earlier_shocks])
    with pyro.plate("dogs", y.shape[0], dim=-2), pyro.plate("trials", y.shape[1], dim=-1):
        pyro.sample("y", dist.Bernoulli(logits=logits), obs=shocked)
