"""Bayesian AR(p): posteriordb arK under both NUTS backends, closed-form forecasts."""

import numpy as np
import pytest
import torch
from pyrogen.models import AutoRegressive, ar_model
from scipy import stats

import pyrogen


@pytest.fixture
def ark(reference_data):
    reference = pyrogen.data.load_posteriordb("arK")
    assert reference.data["K"] == 5
    return reference


def _y(ark):
    return np.asarray(ark.data["y"], dtype=np.float64)


def test_ark_under_numpyro_matches_stan(ark):
    fit = pyrogen.fit(
        ar_model,
        _y(ark),
        order=5,
        method="nuts",
        backend="numpyro",
        num_warmup=500,
        num_samples=1000,
        num_chains=4,
    )
    comparison = pyrogen.compare_to_reference(fit.samples, ark, label="numpyro")
    assert comparison.passed, str(comparison)
    assert {r["parameter"] for r in comparison.rows} == {
        "alpha",
        "beta[0]",
        "beta[1]",
        "beta[2]",
        "beta[3]",
        "beta[4]",
        "sigma",
    }


@pytest.mark.slow
def test_ark_under_pyro_matches_stan(ark):
    model = AutoRegressive(5)
    fit = pyrogen.fit(
        model,
        _y(ark),
        method="nuts",
        backend="pyro",
        num_warmup=500,
        num_samples=1000,
        num_chains=4,
    )
    comparison = pyrogen.compare_to_reference(fit.samples, ark, label="pyro")
    assert comparison.passed, str(comparison)


def test_zoo_model_runs_numpyro_nuts_and_keeps_draws(ark):
    model = AutoRegressive(5)
    fit = pyrogen.fit(model, _y(ark), method="nuts", num_warmup=300, num_samples=300, num_chains=2)
    assert fit.backend == "numpyro"  # the pyro-api model picks the faster backend
    assert model.alpha.shape == (600,) and model.beta.shape == (600, 5)
    idata = fit.to_arviz()
    assert idata.log_likelihood["y"].shape == (2, 300, 195)
    assert model.log_prob(_y(ark)).shape == (195,)


def test_svi_lands_near_the_stan_posterior(ark):
    model = AutoRegressive(5)
    pyrogen.fit(
        model,
        _y(ark),
        method="svi",
        guide="full_rank",
        num_steps=2000,
        lr=0.01,
        num_particles=8,
        vectorize_particles=True,
        progress=False,
    )
    for name, value in model.point_values().items():
        value = np.atleast_1d(value.numpy())
        for i, v in enumerate(value):
            key = name if name != "beta" else f"beta[{i + 1}]"
            draws = ark.reference_draws[key].ravel()
            assert abs(v - np.median(draws)) < 0.5 * draws.std(), key


def test_forecast_matches_the_closed_form_of_an_ar1():
    """With known parameters, an AR(1) h steps ahead is normal with mean
    phi^h y_T + alpha (1 - phi^h) / (1 - phi) and variance
    sigma^2 (1 - phi^(2h)) / (1 - phi^2)."""
    alpha, phi, sigma, last = 0.5, 0.8, 0.3, 2.0
    model = AutoRegressive(1)
    model.absorb(
        {"alpha": torch.tensor(alpha), "beta": torch.tensor([phi]), "sigma": torch.tensor(sigma)}
    )
    torch.manual_seed(0)
    paths = model.forecast(torch.tensor([0.0, last]), horizon=5, num_samples=200000)
    h = np.arange(1, 6)
    mean = phi**h * last + alpha * (1 - phi**h) / (1 - phi)
    sd = sigma * np.sqrt((1 - phi ** (2 * h)) / (1 - phi**2))
    np.testing.assert_allclose(paths.mean(0).numpy(), mean, atol=4 * sd.max() / np.sqrt(2e5))
    np.testing.assert_allclose(paths.std(0).numpy(), sd, rtol=0.01)


def test_log_prob_is_the_one_step_normal():
    model = AutoRegressive(2)
    model.absorb(
        {"alpha": torch.tensor(0.1), "beta": torch.tensor([0.5, -0.2]), "sigma": torch.tensor(0.7)}
    )
    y = np.random.default_rng(0).normal(size=30)
    mean = 0.1 + 0.5 * y[1:-1] - 0.2 * y[:-2]
    expected = stats.norm(mean, 0.7).logpdf(y[2:])
    np.testing.assert_allclose(model.log_prob(y).numpy(), expected, rtol=1e-12)
    assert model.sample(50).shape == (50,)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="y: an AR\\(3\\) model needs more than 3"):
        pyrogen.fit(AutoRegressive(3), [1.0, 2.0, 3.0], method="svi")
    with pytest.raises(ValueError, match="y: expected an array with 1 dimension"):
        pyrogen.fit(AutoRegressive(1), np.zeros((5, 2)), method="svi")
    with pytest.raises(ValueError, match="y: contains NaN"):
        pyrogen.fit(AutoRegressive(1), [1.0, np.nan, 2.0], method="svi")
    with pytest.raises(ValueError, match="order"):
        AutoRegressive(0)
    with pytest.raises(ValueError, match="sigma_scale"):
        AutoRegressive(1, sigma_scale=-1.0)
