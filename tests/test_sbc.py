"""Simulation-based calibration: exact inference passes, mean-field VI on a correlated
posterior is flagged as over-confident."""

import numpy as np
import pytest
from pyrogen.models import ar_model, bayesian_linear_regression, correlated_design, simulate_ar

import pyrogen


def test_nuts_is_calibrated_on_a_conjugate_model():
    X, _, _ = correlated_design(n=20, dim=2, rho=0.5, seed=2)
    result = pyrogen.sbc(
        bayesian_linear_regression,
        X,
        observed="y",
        method="nuts",
        num_simulations=20,
        num_draws=39,
        fit_options=dict(num_warmup=100, backend="numpyro"),
    )
    assert result.passed(), str(result)
    assert set(result.ranks) == {"beta[0]", "beta[1]"}
    assert all(0 < s < 1 for s in result.shrinkage.values())  # the data taught something
    assert not result.over_confident()


def test_mean_field_vi_on_a_correlated_posterior_is_over_confident():
    X, _, _ = correlated_design(n=20, dim=2, rho=0.97, seed=2)
    result = pyrogen.sbc(
        bayesian_linear_regression,
        X,
        observed="y",
        method="svi",
        num_simulations=30,
        num_draws=39,
        fit_options=dict(
            guide="mean_field",
            loss="mean_field",
            lr=0.05,
            num_steps=400,
            num_particles=4,
            vectorize_particles=True,
        ),
    )
    assert not result.passed()
    assert set(result.over_confident()) == {"beta[0]", "beta[1]"}, str(result)


def _ar1_simulator(latents, y):
    """A series from the prior draw (the AR likelihood conditions on the series itself,
    so the model cannot simulate it with the data left out)."""
    series = simulate_ar(latents["alpha"], latents["beta"], latents["sigma"], len(y))
    return (series,), {}


@pytest.mark.slow
def test_nuts_is_calibrated_on_the_ar_model():
    y = np.zeros(60)
    result = pyrogen.sbc(
        ar_model,
        y,
        order=1,
        alpha_scale=1.0,
        beta_scale=0.3,
        sigma_scale=1.0,
        simulator=_ar1_simulator,
        method="nuts",
        num_simulations=30,
        num_draws=39,
        fit_options=dict(num_warmup=100, backend="numpyro"),
    )
    assert result.passed(), str(result)
    assert set(result.ranks) == {"alpha", "beta[0]", "sigma"}


def test_sbc_plot_and_bad_arguments():
    X, _, _ = correlated_design(n=10)
    result = pyrogen.sbc(
        bayesian_linear_regression,
        X,
        method="map",
        num_simulations=5,
        num_draws=9,
        fit_options=dict(num_steps=50),
    )
    axes = result.plot()
    assert len(axes) == 2
    assert "p-value" in str(result)
    with pytest.raises(ValueError, match="num_simulations"):
        pyrogen.sbc(bayesian_linear_regression, X, num_simulations=0)
