"""posteriordb's models in pyro-api: each log joint, under Pyro and under NumPyro, equals
its Stan program's written out again with scipy (a second implementation), at random
points of the support; the recursions equal their loops."""

import numpy as np
import pytest
import torch
from pyrogen.models import posteriordb as pdb
from scipy import stats
from scipy.special import expit, log1p

RNG = np.random.default_rng(0)


def half_cauchy(x, scale):
    return np.log(2.0) + stats.cauchy.logpdf(x, 0.0, scale)


def arma_errors(y, mu, phi, theta):
    errors = [y[0] - (mu + phi * mu)]
    for t in range(1, len(y)):
        errors.append(y[t] - (mu + phi * y[t - 1] + theta * errors[-1]))
    return np.array(errors)


def garch_sigma(y, sigma1, mu, alpha0, alpha1, beta1):
    sigma = [sigma1]
    for t in range(1, len(y)):
        sigma.append(np.sqrt(alpha0 + alpha1 * (y[t - 1] - mu) ** 2 + beta1 * sigma[-1] ** 2))
    return np.array(sigma)


def dogs_counts(y):
    """Stan's transformed parameters, loop for loop: avoidances and shocks before t."""
    avoid, shock = np.zeros(y.shape), np.zeros(y.shape)
    for j in range(y.shape[0]):
        for t in range(1, y.shape[1]):
            avoid[j, t] = avoid[j, t - 1] + 1 - y[j, t - 1]
            shock[j, t] = shock[j, t - 1] + y[j, t - 1]
    return avoid, shock


def _case(name):
    """(model, data, point, Stan's log density at the point written with scipy)."""
    n = 30
    if name == "eight_schools":
        data = {
            "y": np.array([28, 8, -3, 7, -1, 1, 18, 12]),
            "sigma": np.array([15, 10, 16, 11, 9, 11, 10, 18]),
        }
        point = {"theta_trans": RNG.normal(size=8), "mu": 1.3, "tau": 2.7}
        theta = point["mu"] + point["tau"] * point["theta_trans"]
        value = (
            stats.norm.logpdf(point["theta_trans"]).sum()
            + stats.norm.logpdf(point["mu"], 0, 5)
            + half_cauchy(point["tau"], 5.0)
            + stats.norm.logpdf(data["y"], theta, data["sigma"]).sum()
        )
        return pdb.eight_schools_noncentered, data, point, value
    if name == "kidscore_interaction":
        hs = RNG.integers(0, 2, n)
        iq = RNG.normal(100, 15, n)
        data = {"kid_score": RNG.integers(40, 140, n), "mom_iq": iq, "mom_hs": hs}
        point = {"beta": np.array([20.0, 30.0, 0.8, -0.4]), "sigma": 18.0}
        b = point["beta"]
        mean = b[0] + b[1] * hs + b[2] * iq + b[3] * hs * iq
        value = half_cauchy(18.0, 2.5) + stats.norm.logpdf(data["kid_score"], mean, 18.0).sum()
        return pdb.kidscore_interaction, data, point, value
    if name == "logmesquite_logva":
        cols = {k: RNG.uniform(0.5, 3.0, n) for k in ("diam1", "diam2", "canopy_height")}
        data = {"weight": RNG.uniform(50, 2000, n), "group": RNG.integers(0, 2, n), **cols}
        point = {"beta": np.array([5.0, 0.6, 0.3, -0.5]), "sigma": 0.35}
        b = point["beta"]
        volume = np.log(cols["diam1"] * cols["diam2"] * cols["canopy_height"])
        area = np.log(cols["diam1"] * cols["diam2"])
        mean = b[0] + b[1] * volume + b[2] * area + b[3] * data["group"]
        value = stats.norm.logpdf(np.log(data["weight"]), mean, 0.35).sum()  # flat priors
        return pdb.logmesquite_logva, data, point, value
    if name == "kilpisjarvi":
        x = np.arange(3952.0, 3952.0 + n)
        data = {"x": x, "y": RNG.normal(9, 1, n), "pmualpha": 9.3, "psalpha": 100.0,
                "pmubeta": 0.0, "psbeta": 1 / 30}  # fmt: skip
        point = {"alpha": -30.0, "beta": 0.01, "sigma": 1.2}
        value = (
            stats.norm.logpdf(-30.0, 9.3, 100.0)
            + stats.norm.logpdf(0.01, 0.0, 1 / 30)
            + stats.norm.logpdf(data["y"], -30.0 + 0.01 * x, 1.2).sum()
        )
        return pdb.kilpisjarvi, data, point, value
    if name == "glm_poisson":
        year = np.linspace(-1.7, 1.7, n)
        data = {"C": RNG.poisson(100, n), "year": year}
        point = {"alpha": 4.3, "beta1": 1.2, "beta2": 0.07, "beta3": -0.23}
        eta = 4.3 + 1.2 * year + 0.07 * year**2 - 0.23 * year**3
        uniform_priors = -np.log(40.0) - 3 * np.log(20.0)
        value = uniform_priors + stats.poisson.logpmf(data["C"], np.exp(eta)).sum()
        return pdb.glm_poisson, data, point, value
    if name == "dogs":
        y = (RNG.uniform(size=(6, 9)) < 0.5).astype(np.int64)
        data = {"y": y}
        point = {"beta": np.array([1.8, -0.35, -0.2])}
        b = point["beta"]
        avoid, shock = dogs_counts(y)
        p = expit(b[0] + b[1] * avoid + b[2] * shock)
        value = stats.norm.logpdf(b, 0, 100).sum() + stats.bernoulli.logpmf(y, p).sum()
        return pdb.dogs, data, point, value
    if name == "arma11":
        data = {"y": np.cumsum(RNG.normal(0, 0.2, n))}
        point = {"mu": 0.05, "phi": 0.9, "theta": -0.6, "sigma": 0.2}
        errors = arma_errors(data["y"], 0.05, 0.9, -0.6)
        value = (
            stats.norm.logpdf(0.05, 0, 10)
            + stats.norm.logpdf([0.9, -0.6], 0, 2).sum()
            + half_cauchy(0.2, 2.5)
            + stats.norm.logpdf(errors, 0, 0.2).sum()
        )
        return pdb.arma11, data, point, value
    if name == "garch11":
        data = {"y": RNG.normal(5, 2, n), "sigma1": 0.5}
        alpha1, share = 0.4, 0.3
        beta1 = (1 - alpha1) * share
        point = {"mu": 5.1, "alpha0": 1.5, "alpha1": alpha1, "beta1_share": share}
        sigma = garch_sigma(data["y"], 0.5, 5.1, 1.5, alpha1, beta1)
        # Stan's density is flat in (mu, alpha0, alpha1, beta1); in (alpha1, share) it
        # carries d beta1 / d share = 1 - alpha1
        value = stats.norm.logpdf(data["y"], 5.1, sigma).sum() + log1p(-alpha1)
        return pdb.garch11, data, point, value
    raise KeyError(name)


CASES = ["eight_schools", "kidscore_interaction", "logmesquite_logva", "kilpisjarvi",
         "glm_poisson", "dogs", "arma11", "garch11"]  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_log_joint_is_the_stan_programs_under_pyro(name):
    import pyro
    from pyro import poutine

    from pyrogen.diagnostics import posteriordb_arguments

    model, data, point, expected = _case(name)
    kwargs = posteriordb_arguments(model, {k: np.asarray(v).tolist() for k, v in data.items()})
    values = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in point.items()}
    pyro.clear_param_store()
    with torch.random.fork_rng():
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            trace = poutine.trace(poutine.condition(model, values)).get_trace(**kwargs)
            log_joint = float(trace.log_prob_sum())
        finally:
            torch.set_default_dtype(previous)
    assert log_joint == pytest.approx(expected, rel=1e-9, abs=1e-8)


@pytest.mark.parametrize("name", CASES)
def test_log_joint_is_the_stan_programs_under_numpyro(name):
    import jax
    import jax.numpy as jnp
    from numpyro.infer.util import log_density

    from pyrogen.compat import backend

    model, data, point, expected = _case(name)
    with jax.enable_x64(True), backend("numpyro"):
        kwargs = {k: jnp.asarray(v) for k, v in data.items()}
        values = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in point.items()}
        log_joint, _ = log_density(model, (), kwargs, values)
    assert float(log_joint) == pytest.approx(expected, rel=1e-9, abs=1e-8)


@pytest.mark.parametrize("a", [0.7, -0.95, 1.3, 0.0])
def test_linear_recursion_is_its_loop_under_both_backends(a):
    """x_t = a x_{t-1} + c_t, batched over a leading dimension (vectorized particles)."""
    import jax
    import jax.numpy as jnp

    from pyrogen.compat import backend

    c = RNG.normal(size=(3, 25))
    a_batch = np.array([[a], [0.5 * a], [-a]])  # broadcasts against c
    expected = np.zeros_like(c)
    for b in range(3):
        expected[b, 0] = c[b, 0]
        for t in range(1, c.shape[1]):
            expected[b, t] = a_batch[b, 0] * expected[b, t - 1] + c[b, t]
    ours = pdb.linear_recursion(torch.as_tensor(a_batch), torch.as_tensor(c))
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10, atol=1e-10)
    with jax.enable_x64(True), backend("numpyro"):
        theirs = pdb.linear_recursion(jnp.asarray(a_batch), jnp.asarray(c))
    np.testing.assert_allclose(np.asarray(theirs), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", CASES)
def test_models_vectorize_over_particles(name):
    """Global sites broadcast against the plates as they are, so under the SVI
    convergence rule each model draws its vectorized particles (an extra ``[..., None]``
    on a global site mixes particles and the exact check refuses it)."""
    from pyrogen.compat import backend
    from pyrogen.diagnostics import posteriordb_arguments
    from pyrogen.infer.svi import make_guide, model_structure, vectorizes_particles

    model, data, _, _ = _case(name)
    kwargs = posteriordb_arguments(model, {k: np.asarray(v).tolist() for k, v in data.items()})
    with backend("pyro"):
        structure = model_structure(model, (), kwargs)
        for guide_name in ("mean_field", "full_rank"):
            guide = make_guide(guide_name, model, structure, method="svi")
            with torch.no_grad():
                guide(**kwargs)
            assert vectorizes_particles(model, guide, (), kwargs, nesting=structure.nesting)


GP_PROGRAM = """
data {
  int<lower=1> N;
  array[N] real x;  // inputs
  array[N] int k;
  /* old syntax too */ int<lower=0> C[N];
  matrix[N, 2] X;
}
parameters { real<lower=0> rho; }
"""


def test_stan_data_types_read_both_array_syntaxes():
    from pyrogen.diagnostics import stan_data_types

    assert stan_data_types(GP_PROGRAM) == {
        "N": "int", "x": "real", "k": "int", "C": "int", "X": "real",
    }  # fmt: skip


def test_whole_numbers_declared_real_become_float64():
    """The GP's inputs -10, -8, ..., 10 are whole numbers but Stan's ``real``: as int64
    (what the values alone suggest) they left an SVI fit of the GP in float32, where
    its 1e-10 jitter is nothing and the Cholesky failed."""
    from pyrogen.diagnostics import posteriordb_arguments

    data = {"N": 11, "x": list(range(-10, 11, 2)), "k": [4] * 11}
    guessed = posteriordb_arguments(pdb.gp_pois_regr, data)
    typed = posteriordb_arguments(pdb.gp_pois_regr, data, GP_PROGRAM)
    assert guessed["x"].dtype == torch.int64  # the values alone
    assert typed["x"].dtype == torch.float64 and typed["k"].dtype == torch.int64
