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


# -- hidden Markov models -------------------------------------------------------------------


def _simulate_hmm(T, seed=0):
    rng = np.random.default_rng(seed)
    theta = np.array([[0.9, 0.1], [0.2, 0.8]])
    mu = np.array([0.0, 3.0])
    z, ys, zs = 0, [], []
    for _ in range(T):
        zs.append(z)
        ys.append(rng.normal(mu[z], 1.0))
        z = rng.choice(2, p=theta[z])
    return np.array(ys), np.array(zs), theta, mu


def _to_stan_names(samples):
    theta = np.asarray(samples["theta"])
    return {"theta1": theta[..., 0, :], "theta2": theta[..., 1, :], "mu": samples["mu"]}


@pytest.fixture
def hmm_example(reference_data):
    return pyrogen.data.load_posteriordb("hmm_example")


def test_enumeration_equals_the_forward_algorithm():
    """Pyro's enumeration of the pyro.markov chain and the hand-written forward algorithm
    give the same log p(y | theta, mu)."""
    import pyro
    from pyro.infer import TraceEnum_ELBO
    from pyrogen.models import HiddenMarkov

    y, _, theta, mu = _simulate_hmm(40)
    model = HiddenMarkov(2)
    model.absorb({"theta": torch.tensor(theta), "mu": torch.tensor(mu)})
    (yt,) = model.prepare(y)

    def guide(y):
        pyro.sample("theta", pyro.distributions.Delta(model.theta, event_dim=2))
        pyro.sample("mu", pyro.distributions.Delta(model.mu, event_dim=1))

    elbo = -TraceEnum_ELBO(max_plate_nesting=0).loss(model.model, guide, yt)
    dirichlet = 2 * torch.distributions.Dirichlet(torch.ones(2)).log_prob(torch.tensor([0.5, 0.5]))
    assert elbo - float(dirichlet) == pytest.approx(float(model.log_prob(yt).sum()), abs=1e-9)


@pytest.mark.parametrize("T", [1, 2, 3, 7, 8, 100])
def test_parallel_scan_equals_the_forward_algorithm(T):
    """hmm_model's log evidence (pairwise log-semiring products) equals the sequential
    forward recursion, under torch and under jax."""
    import jax
    import jax.numpy as jnp
    from pyrogen.models.timeseries import _forward, _log_evidence

    from pyrogen.compat import numpyro_ops

    gen = torch.Generator().manual_seed(T)
    log_emission = torch.randn(T, 3, generator=gen, dtype=torch.float64)
    log_theta = torch.randn(3, 3, generator=gen, dtype=torch.float64).log_softmax(-1)
    expected = float(_forward(log_emission, log_theta, torch)[-1].logsumexp(0))
    got = _log_evidence(log_emission, log_theta, torch)
    assert float(got) == pytest.approx(expected, abs=1e-12)
    with jax.enable_x64(True):
        got = _log_evidence(
            jnp.asarray(log_emission.numpy()), jnp.asarray(log_theta.numpy()), numpyro_ops
        )
        assert float(got) == pytest.approx(expected, abs=1e-10)


def test_viterbi_is_the_brute_force_argmax():
    from itertools import product

    from pyrogen.models import HiddenMarkov

    y, _, theta, mu = _simulate_hmm(8, seed=3)
    model = HiddenMarkov(2)
    model.absorb({"theta": torch.tensor(theta), "mu": torch.tensor(mu)})
    best, best_path = -np.inf, None
    for path in product(range(2), repeat=8):
        score = stats.norm(mu[list(path)], 1).logpdf(y).sum() + sum(
            np.log(theta[a, b]) for a, b in zip(path[:-1], path[1:])
        )
        if score > best:
            best, best_path = score, path
    assert model.viterbi(y).tolist() == list(best_path)


def test_baum_welch_is_monotone_and_recovers_the_chain():
    from pyrogen.models import HiddenMarkov

    y, z, theta, mu = _simulate_hmm(3000, seed=1)
    model = HiddenMarkov(2)
    fit = pyrogen.fit(model, y, method="em", num_steps=200, tol=1e-10, progress=False)
    assert np.all(np.diff(-fit.losses) >= -1e-10)
    np.testing.assert_allclose(model.mu.numpy(), mu, atol=0.1)
    np.testing.assert_allclose(model.theta.numpy(), theta, atol=0.04)
    assert np.mean(model.viterbi(y).numpy() == z) > 0.9


def test_map_by_enumeration_reaches_the_baum_welch_optimum():
    from pyrogen.models import HiddenMarkov

    y, _, _, _ = _simulate_hmm(40, seed=2)
    em = HiddenMarkov(2)
    pyrogen.fit(em, y, method="em", num_steps=500, tol=1e-12, progress=False)
    map_model = HiddenMarkov(2)
    pyrogen.fit(map_model, y, method="map", num_steps=300, lr=0.05, progress=False)
    np.testing.assert_allclose(map_model.mu.numpy(), em.mu.numpy(), atol=5e-3)
    np.testing.assert_allclose(map_model.theta.numpy(), em.theta.numpy(), atol=5e-3)


def test_hmm_example_under_numpyro_matches_stan(hmm_example):
    from pyrogen.models import hmm_model

    y = np.asarray(hmm_example.data["y"], dtype=np.float64)
    fit = pyrogen.fit(
        hmm_model,
        y,
        method="nuts",
        backend="numpyro",
        num_warmup=500,
        num_samples=1000,
        num_chains=4,
    )
    comparison = pyrogen.compare_to_reference(
        _to_stan_names(fit.samples), hmm_example, label="numpyro"
    )
    assert comparison.passed, str(comparison)
    assert len(comparison.rows) == 6


@pytest.mark.slow
def test_hmm_example_under_pyro_matches_stan(hmm_example):
    from pyrogen.models import hmm_model

    y = np.asarray(hmm_example.data["y"], dtype=np.float64)
    fit = pyrogen.fit(
        hmm_model, y, method="nuts", backend="pyro", num_warmup=500, num_samples=1000, num_chains=4
    )
    comparison = pyrogen.compare_to_reference(
        _to_stan_names(fit.samples), hmm_example, label="pyro"
    )
    assert comparison.passed, str(comparison)


def test_hmm_bad_input():
    from pyrogen.models import HiddenMarkov

    with pytest.raises(ValueError, match="num_states"):
        HiddenMarkov(1)
    with pytest.raises(ValueError, match="mu_loc: expected 3"):
        HiddenMarkov(3, mu_loc=[0.0, 1.0])
    with pytest.raises(ValueError, match="y: a hidden Markov model needs at least 2"):
        pyrogen.fit(HiddenMarkov(2), [1.0], method="em")
    with pytest.raises(ValueError, match="y: contains infinite"):
        pyrogen.fit(HiddenMarkov(2), [1.0, np.inf, 0.0], method="em")


@pytest.mark.slow  # about 6 minutes: Pyro NUTS re-enumerates the whole chain per gradient
def test_zoo_hmm_nuts_by_enumeration_matches_the_forward_algorithm():
    """Pyro NUTS on the enumerated pyro.markov chain and NumPyro NUTS on the forward
    algorithm target the same posterior (same priors; mu far from 0, so the positivity
    constraint of hmm_model has no mass to remove)."""
    from pyrogen.models import HiddenMarkov, hmm_model

    y, _, _, _ = _simulate_hmm(25, seed=4)
    y = y * 3 + 3.0  # states near 3 and 12
    enumerated = pyrogen.fit(
        HiddenMarkov(2, mu_loc=[3.0, 10.0]),
        y,
        method="nuts",
        num_warmup=200,
        num_samples=300,
        num_chains=2,
    )
    forward = pyrogen.fit(
        hmm_model,
        y,
        method="nuts",
        backend="numpyro",
        num_warmup=500,
        num_samples=1000,
        num_chains=2,
    )
    comparison = pyrogen.compare_draws(
        enumerated.samples,
        forward.samples,
        labels=("enum", "forward"),
        sites=["mu", "theta"],
        min_ess=50,
    )
    assert comparison.passed, str(comparison)


def test_simulate_ar_has_the_process_mean_and_autocorrelation():
    """AR(2) with alpha 1, beta (0.5, -0.3): mean alpha / (1 - b1 - b2) = 1.25 and lag-1
    autocorrelation b1 / (1 - b2) = 0.385 (Yule-Walker)."""
    from pyrogen.models import simulate_ar

    torch.manual_seed(0)
    y = simulate_ar(torch.tensor(1.0), torch.tensor([0.5, -0.3]), torch.tensor(0.5), 20000)
    assert y.dtype == torch.float64 and y.shape == (20000,)
    assert float(y.mean()) == pytest.approx(1.25, abs=0.02)
    centred = y - y.mean()
    lag1 = float((centred[1:] * centred[:-1]).mean() / centred.var())
    assert lag1 == pytest.approx(0.5 / 1.3, abs=0.02)
    with pytest.raises(ValueError, match="length"):
        simulate_ar(0.0, [0.5], 1.0, 0)
    with pytest.raises(ValueError, match="beta: expected a vector"):
        simulate_ar(0.0, 0.5, 1.0, 10)
