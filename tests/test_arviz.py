"""pyrogen.arviz: the InferenceData of any fit, as NUTS and guides give it."""

import arviz as az
import numpy as np
import pytest
import torch
from pyroapi import distributions as dist
from pyroapi import pyro

import pyrogen


def penalized_regression(x, y=None):
    """A regression with a deterministic site and a ``pyro.factor`` term."""
    a = pyro.sample("a", dist.Normal(0.0, 10.0))
    b = pyro.sample("b", dist.Normal(0.0, 10.0))
    s = pyro.sample("s", dist.HalfNormal(5.0))
    mu = pyro.deterministic("mu", a + b * x)
    pyro.factor("penalty", -0.5 * b**2)  # a ridge term: part of the density, not data
    with pyro.plate("n", x.shape[0]):
        pyro.sample("y", dist.Normal(mu, s), obs=y)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    return x, 1.0 + 2.0 * x + rng.normal(size=40)


@pytest.mark.parametrize("method", ["nuts", "svi"])
def test_factor_terms_are_neither_data_nor_likelihood(data, method):
    """``pyro.factor`` adds to the log-density; it is no observation, so ArviZ's loo
    sees one log-likelihood array (it refuses several)."""
    x, y = data
    options = dict(num_warmup=100, num_samples=100, num_chains=2) if method == "nuts" else {}
    fit = pyrogen.fit(penalized_regression, x, y, method=method, progress=False, **options)
    idata = fit.to_arviz(num_samples=200)
    assert list(idata.log_likelihood.data_vars) == ["y"]
    assert list(idata.observed_data.data_vars) == ["y"]
    assert np.isfinite(az.loo(idata).elpd_loo)


def test_guide_draws_carry_the_deterministic_sites(data):
    """SVI's posterior group has the model's deterministic sites, as NUTS's has, each
    computed from the same draw."""
    x, y = data
    fit = pyrogen.fit(penalized_regression, x, y, num_steps=300, progress=False)
    posterior = fit.to_arviz(num_samples=50, log_likelihood=False).posterior
    assert set(posterior.data_vars) == {"a", "b", "s", "mu"}
    expected = posterior["a"].values[..., None] + posterior["b"].values[..., None] * x
    np.testing.assert_allclose(posterior["mu"].values, expected, rtol=1e-6)


def matrix_regression(X, y=None):
    beta = pyro.sample("beta", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
    with pyro.plate("n", X.shape[0]):
        pyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


def test_float64_keyword_data_under_a_float32_default():
    """Data given by keyword set the precision as positional data do: the guide's
    parameters and ArviZ's draws meet float64 data in float64 (``X @ beta`` refused
    mixed dtypes before)."""
    rng = np.random.default_rng(1)
    X = torch.tensor(rng.normal(size=(30, 3)))
    y = X @ torch.ones(3, dtype=torch.float64) + torch.tensor(rng.normal(size=30))
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        fit = pyrogen.fit(matrix_regression, X=X, y=y, num_steps=200, progress=False)
        idata = fit.to_arviz(num_samples=20)
    finally:
        torch.set_default_dtype(old)
    assert fit.precision == "float64"
    assert idata.posterior["beta"].dtype == np.float64
    assert idata.log_likelihood["y"].shape == (1, 20, 30)


def test_numpyro_fit_of_jax_arrays_gives_inference_data(data):
    """JAX arrays as data (a NumPyro user's habit): the NumPyro run and its ArviZ groups
    (read by tracing the model under Pyro) both work."""
    import jax.numpy as jnp

    x, y = data
    fit = pyrogen.fit(
        penalized_regression,
        jnp.asarray(x),
        jnp.asarray(y),
        method="nuts",
        backend="numpyro",
        num_warmup=100,
        num_samples=100,
        num_chains=1,
        progress=False,
    )
    idata = fit.to_arviz()
    assert set(idata.posterior.data_vars) == {"a", "b", "s", "mu"}
    np.testing.assert_allclose(idata.observed_data["y"].values, y, rtol=1e-6)
    assert idata.log_likelihood["y"].shape == (1, 100, 40)
