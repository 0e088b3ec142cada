"""The SVI convergence rule: iterate averaging, its Monte Carlo error, the halved
learning rate, vectorized particles, and what a fit says when the rule is not met."""

import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.distributions import constraints
from pyro.infer.autoguide import AutoMultivariateNormal, AutoNormal
from pyroapi import distributions as api_dist
from pyroapi import pyro as api_pyro
from scipy.signal import lfilter

import pyrogen
from pyrogen.infer.convergence import IterateAveraging, mean_and_mcse, parameter_units
from pyrogen.infer.svi import SharedAdam, vectorizes_particles

# a correlated 4-D Gaussian posterior with a known answer: the mean-field optimum's
# standard deviations are 1 / sqrt(diag(precision)), the full-rank one's the marginals
_A = np.random.default_rng(0).normal(size=(4, 4))
_C = _A @ _A.T + 0.5 * np.eye(4)
_C = _C / np.sqrt(np.outer(np.diag(_C), np.diag(_C))) * np.outer([1, 2, 0.5, 3], [1, 2, 0.5, 3])
COV = torch.tensor(_C)
MEAN = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64)


def gaussian(mean, cov):
    pyro.sample("z", dist.MultivariateNormal(mean, cov))


def test_mcse_of_an_ar1_series_matches_its_closed_form():
    # an AR(1) series x_t = phi x_{t-1} + e_t: the variance of its mean over n steps
    # is sigma^2 / (1 - phi^2) * (1 + phi) / (1 - phi) / n asymptotically
    rng = np.random.default_rng(1)
    phi, n, reps = 0.9, 20_000, 3
    e = rng.normal(size=(n, reps))
    x = lfilter([1.0], [1.0, -phi], e, axis=0)
    mean, mcse = mean_and_mcse(x)
    expected = np.sqrt(1 / (1 - phi**2) * (1 + phi) / (1 - phi) / n)
    np.testing.assert_allclose(mcse, expected, rtol=0.2)
    assert np.all(np.abs(mean) < 4 * expected)
    # a white-noise series' MCSE is sd / sqrt(n), not the autocorrelated one
    _, white = mean_and_mcse(e)
    np.testing.assert_allclose(white, 1 / np.sqrt(n), rtol=0.1)


def test_units_are_the_guide_scales_and_relative_sizes():
    pyro.clear_param_store()
    guide = AutoNormal(lambda: gaussian(MEAN, COV), init_scale=0.3)
    guide()
    units = parameter_units(guide)
    names = sorted(pyro.get_param_store()._params)
    assert names == ["AutoNormal.locs.z", "AutoNormal.scales.z"]
    np.testing.assert_allclose(units[:4], 0.3)  # locations in the guide's sd
    # a scale s = softplus(u) moves by its own size when u moves by s / sigmoid(u)
    u = pyro.get_param_store()._params["AutoNormal.scales.z"].detach()
    np.testing.assert_allclose(units[4:], (0.3 / torch.sigmoid(u)).numpy(), rtol=1e-6)

    pyro.clear_param_store()
    full = AutoMultivariateNormal(lambda: gaussian(MEAN, COV), init_scale=0.2)
    full()
    units = parameter_units(full)
    np.testing.assert_allclose(units[:4], 0.2, rtol=1e-6)  # loc: the marginal sds


def _exact(guide: str) -> torch.Tensor:
    if guide == "mean_field":
        return 1 / torch.linalg.inv(COV).diag().sqrt()
    return COV.diag().sqrt()


@pytest.mark.parametrize("guide", ["mean_field", "full_rank"])
def test_default_svi_reaches_the_exact_answer_on_a_correlated_gaussian(guide):
    # with default options: the rule, 16 vectorized particles, averaged iterates
    result = pyrogen.fit(gaussian, MEAN, COV, guide=guide, seed=0, progress=False)
    assert result.converged is True
    assert result.diagnostics["num_particles"] == 16
    assert len(result.diagnostics["levels"]) >= 2  # the rate was halved at least once
    draws = result.to_arviz(num_samples=40_000, log_likelihood=False).posterior["z"]
    draws = draws.values.reshape(-1, 4)
    sd = torch.as_tensor(draws.std(0))
    # within 3% of the exact answer (the draws' own error is about 0.4%)
    np.testing.assert_allclose((sd / _exact(guide)).numpy(), 1.0, atol=0.03)
    assert np.all(np.abs(draws.mean(0) - MEAN.numpy()) < 0.03 * _exact(guide).numpy())


def test_the_last_iterate_of_constant_rate_adam_is_further_off():
    # the reason for the rule: the same fit stopped after a fixed number of steps
    result = pyrogen.fit(
        gaussian, MEAN, COV, num_steps=6000, convergence="none", seed=0, progress=False
    )
    assert result.converged is None and result.diagnostics["num_particles"] == 1
    sd = pyro.param("AutoNormal.scales.z").detach()
    assert np.max(np.abs((sd / _exact("mean_field")).numpy() - 1)) > 0.03


def test_a_budget_too_small_says_so_and_names_the_remedies():
    with pytest.warns(UserWarning, match="not converged in 400 steps.*num_steps"):
        result = pyrogen.fit(
            gaussian, MEAN, COV, convergence="rule", num_steps=400, seed=0, progress=False
        )
    assert result.converged is False and result.num_steps == 400


def test_steps_or_tol_given_keep_the_fixed_run():
    result = pyrogen.fit(gaussian, MEAN, COV, num_steps=50, seed=0, progress=False)
    assert result.num_steps == 50 and result.converged is None
    assert "levels" not in result.diagnostics
    result = pyrogen.fit(gaussian, MEAN, COV, num_steps=3000, tol=1e9, window=10, progress=False)
    assert result.converged is True and result.num_steps == 20


def test_map_converges_to_the_closed_form_mode():
    # x_i ~ N(mu, 1), mu ~ N(0, 10^2): the posterior mode is sum(x) / (n + 1/100)
    x = torch.tensor([0.3, 1.9, 2.2, 0.8, 1.1], dtype=torch.float64)

    def model(x):
        mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=x)

    result = pyrogen.fit(model, x, method="map", seed=0, progress=False)
    assert result.converged is True
    mode = x.sum() / (len(x) + 0.01)
    assert abs(float(result.params["mu"]) - float(mode)) < 0.02


def test_a_model_that_mixes_particles_is_not_vectorized():
    x = torch.linspace(-1, 1, 10, dtype=torch.float64)

    def mixes(x):  # w.sum() sums over the particles too when vectorized
        w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
        with pyro.plate("data", len(x)):
            pyro.sample("y", dist.Normal(w.sum() * x, 1.0), obs=x)

    def respects(x):
        w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
        with pyro.plate("data", len(x)):
            pyro.sample("y", dist.Normal(w.sum(-1) * x, 1.0), obs=x)

    for model, expected in ((mixes, False), (respects, True)):
        pyro.clear_param_store()
        guide = AutoNormal(model)
        guide(x)
        assert vectorizes_particles(model, guide, (x,), nesting=1) is expected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = pyrogen.fit(mixes, x, convergence="rule", num_steps=300, progress=False)
    assert result.diagnostics["num_particles"] == 1  # fell back to one particle


def test_the_rule_halves_the_rate_and_resumes_from_a_checkpoint(tmp_path):
    path = tmp_path / "run.ckpt"
    options = dict(guide="full_rank", convergence="rule", seed=3, progress=False)
    with warnings.catch_warnings():  # whether or not it converges, the runs agree
        warnings.simplefilter("ignore", UserWarning)
        whole = pyrogen.fit(gaussian, MEAN, COV, num_steps=4000, **options)
        whole_loc = pyro.param("AutoMultivariateNormal.loc").detach().clone()
        pyrogen.fit(gaussian, MEAN, COV, num_steps=1500, checkpoint=path, **options)
        resumed = pyrogen.fit(gaussian, MEAN, COV, num_steps=4000, checkpoint=path, **options)
    assert resumed.num_steps == whole.num_steps
    assert resumed.diagnostics["levels"] == whole.diagnostics["levels"]
    torch.testing.assert_close(pyro.param("AutoMultivariateNormal.loc").detach(), whole_loc)


def test_the_rule_sets_the_optimizer_rate():
    pyro.clear_param_store()
    optim = SharedAdam(0.01)
    guide = AutoNormal(lambda: gaussian(MEAN, COV))
    svi = pyro.infer.SVI(lambda: gaussian(MEAN, COV), guide, optim, pyro.infer.Trace_ELBO())
    svi.step()
    rule = IterateAveraging(optim, guide)
    rule._end_level(*rule_state(), parameter_units(guide))
    assert optim.optimizer.param_groups[0]["lr"] == pytest.approx(0.005)
    assert rule.level == 1 and rule.converged is False


def rule_state():
    from pyrogen.infer.convergence import _store_vector

    _, x = _store_vector()
    return x, np.zeros_like(x)


def _uncentred_regression(x, y=None):
    a = api_pyro.sample("a", api_dist.Normal(0.0, 10.0))
    b = api_pyro.sample("b", api_dist.Normal(0.0, 10.0))
    s = api_pyro.sample("s", api_dist.HalfNormal(5.0))
    with api_pyro.plate("data", x.shape[0]):
        api_pyro.sample("y", api_dist.Normal(a + b * x, s), obs=y)


@pytest.mark.slow
def test_default_svi_reaches_the_nuts_means_of_an_uncentred_regression():
    # x around 50: intercept and slope correlate at -0.99, where a 1,000-step run of
    # constant-rate Adam ended tens of posterior sds away
    rng = np.random.default_rng(0)
    x = 50 + 10 * rng.normal(size=100)
    y = 2.0 + 0.3 * x + 1.5 * rng.normal(size=100)
    nuts = pyrogen.fit(
        _uncentred_regression, x, y, method="nuts", backend="numpyro", num_samples=2000
    )
    reference = {k: np.asarray(v) for k, v in nuts.samples.items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = pyrogen.fit(_uncentred_regression, x, y, seed=0, progress=False)
    draws = result.to_arviz(num_samples=20_000, log_likelihood=False).posterior
    for site in ("a", "b", "s"):
        z = (float(draws[site].mean()) - reference[site].mean()) / reference[site].std()
        assert abs(z) < 0.1, (site, z)
    # from the Laplace start the rule converges (without it: not in 20,000 steps)
    assert result.diagnostics["laplace_start"] is True
    assert result.converged is True
    assert not any("not converged" in str(w.message) for w in caught)


def _conjugate_regression(X, y):
    # beta ~ N(0, 10^2 I), y ~ N(X beta, 1): a Gaussian posterior in closed form
    beta = pyro.sample("beta", dist.Normal(0.0, 10.0).expand([X.shape[1]]).to_event(1))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


def _uncentred_design():
    g = torch.Generator().manual_seed(0)
    x = 50 + 10 * torch.randn(60, generator=g, dtype=torch.float64)
    X = torch.stack([torch.ones_like(x), x], 1)
    y = X @ torch.tensor([2.0, 0.3], dtype=torch.float64) + torch.randn(60, generator=g)
    precision = X.T @ X + torch.eye(2, dtype=torch.float64) / 100
    return X, y, torch.linalg.solve(precision, X.T @ y), precision


@pytest.mark.parametrize("kind", [AutoNormal, AutoMultivariateNormal])
def test_the_laplace_start_is_the_closed_form_on_a_gaussian_posterior(kind):
    from pyrogen.infer.init import laplace_start
    from pyrogen.infer.svi import make_elbo

    X, y, mean, precision = _uncentred_design()  # intercept and slope correlate at -0.99
    pyro.clear_param_store()
    guide = kind(_conjugate_regression)
    elbo = make_elbo(None, enumerated=False, nesting=1)
    assert laplace_start(_conjugate_regression, guide, elbo, (X, y)) is True
    if kind is AutoNormal:  # the mean-field optimum: conditional sds
        loc, sd = pyro.param("AutoNormal.locs.beta"), pyro.param("AutoNormal.scales.beta")
        torch.testing.assert_close(sd.detach(), precision.diag().rsqrt(), rtol=1e-6, atol=0)
    else:
        posterior = guide.get_posterior()
        loc = posterior.loc
        torch.testing.assert_close(
            posterior.covariance_matrix.detach(), torch.linalg.inv(precision), rtol=1e-6, atol=0
        )
    torch.testing.assert_close(loc.detach(), mean, rtol=1e-6, atol=1e-8)


def test_the_laplace_start_takes_a_flat_prior():
    """A flat prior (Stan's default, ImproperUniform here) cannot be sampled, and Pyro's
    own start and plate-nesting guess both sample it: the Laplace start used to give up
    silently on every such model (posteriordb's regressions). The posterior of a
    regression with a flat prior and unit noise is N(OLS, (X'X)^-1)."""
    from pyrogen.infer.init import init_to_uniform_improper, laplace_start
    from pyrogen.infer.svi import make_elbo

    X, y, _, _ = _uncentred_design()

    def flat_regression(X, y):
        beta = pyro.sample("beta", dist.ImproperUniform(constraints.real_vector, (), (2,)))
        with pyro.plate("data", X.shape[0]):
            pyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)

    pyro.clear_param_store()
    guide = AutoMultivariateNormal(flat_regression, init_loc_fn=init_to_uniform_improper)
    elbo = make_elbo(None, enumerated=False, nesting=1)
    assert laplace_start(flat_regression, guide, elbo, (X, y)) is True
    posterior = guide.get_posterior()
    precision = X.T @ X
    torch.testing.assert_close(
        posterior.loc.detach(), torch.linalg.solve(precision, X.T @ y), rtol=1e-6, atol=1e-8
    )
    torch.testing.assert_close(
        posterior.covariance_matrix.detach(), torch.linalg.inv(precision), rtol=1e-6, atol=0
    )


def test_a_funnel_keeps_its_own_start():
    # a centred hierarchy: the density grows without bound as tau -> 0, so there is no
    # mode to start from, and the guide is left as it was
    from pyrogen.infer.init import laplace_start
    from pyrogen.infer.svi import make_elbo

    y = torch.tensor([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0], dtype=torch.float64)
    sigma = torch.tensor([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0], dtype=torch.float64)

    def schools(y, sigma):
        mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = pyro.sample("tau", dist.HalfCauchy(5.0))
        with pyro.plate("school", 8):
            theta = pyro.sample("theta", dist.Normal(mu, tau))
            pyro.sample("y", dist.Normal(theta, sigma), obs=y)

    pyro.clear_param_store()
    guide = AutoNormal(schools)
    guide(y, sigma)
    before = {k: v.detach().clone() for k, v in pyro.get_param_store()._params.items()}
    taken = laplace_start(schools, guide, make_elbo(None, enumerated=False, nesting=1), (y, sigma))
    after = pyro.get_param_store()._params
    assert taken is False
    assert all(torch.equal(before[k], after[k].detach()) for k in before)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(convergence="sometimes"), "convergence: must be one of"),
        (dict(tolerance=float("nan")), "tolerance: must be a positive number"),
        (dict(tolerance=float("inf")), "tolerance: must be a positive number"),
        (dict(tolerance=-0.1), "tolerance: must be a positive number"),
        (dict(num_particles=0), "num_particles: must be at least 1"),
    ],
)
def test_bad_rule_options_are_refused_by_name(options, message):
    with pytest.raises(ValueError, match=message):
        pyrogen.fit(gaussian, MEAN, COV, progress=False, **options)


def test_svi_stops_naming_the_cause_when_a_draw_makes_the_model_fail():
    """A guide draw that made the model's Cholesky fail ended the fit with torch's bare
    LinAlgError (posteriordb's latent GP under SVI); the fit now says what happened and
    what to do. The model is evaluated fine at first (pyrogen's probes), then fails."""
    calls = {"n": 0}

    def fails_later(y):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        calls["n"] += 1
        if calls["n"] > 6:
            torch.linalg.cholesky(torch.tensor([[1.0, 2.0], [2.0, 1.0]]) + 0 * z)
        pyro.sample("y", dist.Normal(z, 1.0), obs=y)

    with pytest.raises(RuntimeError, match="a draw of the guide made the model fail"):
        pyrogen.fit(fails_later, torch.tensor(0.0), num_steps=50, progress=False)
