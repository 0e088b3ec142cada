"""Guides and ELBOs against closed forms: the Gaussian posterior of Bayesian linear
regression, where mean-field VI's answer is known exactly (variances 1/Lambda_dd)."""

import numpy as np
import pytest
import torch
from pyrogen.models.regression import (
    bayesian_linear_regression,
    correlated_design,
    exact_posterior,
)

import pyrogen
from pyrogen.arviz import draws_from_guide


def _decaying():
    """Adam with the step size decaying from 0.05 to about 0.002 over 1500 steps: the last
    iterate then sits at the optimum instead of jittering around it."""
    import pyro.optim

    return pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.998})


@pytest.fixture(scope="module")
def problem():
    X, y, _ = correlated_design(n=50, dim=2, rho=0.95, seed=1)
    return X, y, exact_posterior(X, y)


def _guide_moments(fit, X, y, num_samples=20000):
    draws = draws_from_guide(
        bayesian_linear_regression,
        fit.guide,
        (torch.as_tensor(X), torch.as_tensor(y)),
        {},
        num_samples,
    )["beta"]
    return draws.mean(0), np.cov(draws.T)


def test_mean_field_lands_on_the_known_underestimate(problem):
    X, y, (mean, covariance, precision) = problem
    fit = pyrogen.fit(
        bayesian_linear_regression,
        X,
        y,
        method="svi",
        guide="mean_field",
        loss="mean_field",
        num_particles=16,
        vectorize_particles=True,
        num_steps=1500,
        optim=_decaying(),
        progress=False,
    )
    m, c = _guide_moments(fit, X, y)
    np.testing.assert_allclose(m, mean, atol=0.03)
    np.testing.assert_allclose(np.diag(c), 1 / np.diag(precision), rtol=0.1)
    # and that is far below the truth: the test could not pass with the true variances
    assert np.all(np.diag(c) < 0.3 * np.diag(covariance))
    assert abs(c[0, 1]) < 0.1 * abs(covariance[0, 1])


@pytest.mark.parametrize(
    "guide", ["full_rank", "low_rank", "flow", pytest.param("spline", marks=pytest.mark.slow)]
)
def test_richer_guides_recover_the_true_covariance(problem, guide):
    X, y, (mean, covariance, _) = problem
    fit = pyrogen.fit(
        bayesian_linear_regression,
        X,
        y,
        method="svi",
        guide=guide,
        num_particles=16,
        vectorize_particles=True,
        num_steps=1500,
        optim=_decaying(),
        progress=False,
    )
    m, c = _guide_moments(fit, X, y)
    np.testing.assert_allclose(m, mean, atol=0.05)
    np.testing.assert_allclose(c, covariance, rtol=0.2, atol=0.1 * np.abs(covariance).max())


def test_every_elbo_bounds_the_evidence_and_iwae_tightens(problem):
    """log p(y) in closed form: y ~ N(0, sigma^2 I + tau^2 X X^T)."""
    X, y, _ = problem
    from scipy import stats

    evidence = stats.multivariate_normal(np.zeros(len(y)), np.eye(len(y)) + X @ X.T).logpdf(y)
    fit = pyrogen.fit(
        bayesian_linear_regression,
        X,
        y,
        method="svi",
        guide="mean_field",
        num_steps=2000,
        lr=0.02,
        progress=False,
    )
    import pyro
    from pyro.infer import RenyiELBO, Trace_ELBO, TraceMeanField_ELBO

    args = (torch.as_tensor(X), torch.as_tensor(y))
    estimates = {}
    with torch.no_grad():
        for name, elbo in {
            "trace": Trace_ELBO(num_particles=4000, vectorize_particles=True, max_plate_nesting=1),
            "mean_field": TraceMeanField_ELBO(
                num_particles=4000, vectorize_particles=True, max_plate_nesting=1
            ),
        }.items():
            estimates[name] = -elbo.loss(bayesian_linear_regression, fit.guide, *args)
        iwae = {}
        for k in (1, 10, 100):
            values = [
                -RenyiELBO(
                    alpha=0, num_particles=k, vectorize_particles=True, max_plate_nesting=1
                ).loss(bayesian_linear_regression, fit.guide, *args)
                for _ in range(200)
            ]
            iwae[k] = np.mean(values)
    for name, value in estimates.items():
        assert value <= evidence + 0.01, name
    assert iwae[1] < iwae[10] < iwae[100] <= evidence + 0.01
    assert evidence - iwae[100] < 0.5 * (evidence - iwae[1])
    pyro.clear_param_store()


def test_iwae_loss_trains(problem):
    X, y, (mean, _, _) = problem
    fit = pyrogen.fit(
        bayesian_linear_regression,
        X,
        y,
        method="svi",
        guide="mean_field",
        loss="iwae",
        num_particles=10,
        vectorize_particles=True,
        num_steps=1500,
        lr=0.02,
        progress=False,
    )
    m, _ = _guide_moments(fit, X, y)
    np.testing.assert_allclose(m, mean, atol=0.1)


def test_unknown_guide_and_loss_are_named():
    X, y, _ = correlated_design(n=10)
    with pytest.raises(ValueError, match="guide: must be"):
        pyrogen.fit(bayesian_linear_regression, X, y, guide="gaussian", progress=False)
    with pytest.raises(ValueError, match="loss: must be"):
        pyrogen.fit(bayesian_linear_regression, X, y, loss="elbo2", progress=False)


def _skewed_model(y):
    """p ~ Beta(1, 1), y ~ Binomial(5, p), y = 0: the posterior is Beta(1, 6), strongly
    skewed on the logit scale the guides work in; log p(y) = log(1/6) exactly."""
    import pyro
    import pyro.distributions as dist

    p = pyro.sample("p", dist.Beta(1.0, 1.0))
    pyro.sample("y", dist.Binomial(5, p), obs=y)


def test_spline_guide_fits_a_skewed_posterior_that_mean_field_cannot():
    import pyro
    from scipy import stats

    from pyrogen.infer import AutoSplineNormal

    y = torch.tensor(0.0)
    guides = {
        "mean_field": "mean_field",
        # one wide spline layer: the posterior's logit has an exponential left tail
        "spline": AutoSplineNormal(_skewed_model, num_transforms=1, count_bins=16, bound=5.0),
    }
    gaps, distances = {}, {}
    for name, guide in guides.items():
        pyro.clear_param_store()
        fit = pyrogen.fit(
            _skewed_model,
            y,
            method="svi",
            guide=guide,
            num_particles=32,
            vectorize_particles=True,
            num_steps=1000,
            optim=pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.997}),
            progress=False,
        )
        pyro.set_rng_seed(1)
        elbo = -pyro.infer.Trace_ELBO(num_particles=20000, vectorize_particles=True).loss(
            _skewed_model, fit.guide, y
        )
        # the ELBO gap is KL(q || posterior), exactly: the measure that matters
        gaps[name] = np.log(1 / 6) - elbo
        draws = draws_from_guide(_skewed_model, fit.guide, (y,), {}, 20000)["p"]
        distances[name] = stats.kstest(draws, stats.beta(1, 6).cdf).statistic
    # ELBO <= log p(y) up to the Monte Carlo error of 20,000 particles (sd about 1e-3)
    assert min(gaps.values()) > -5e-3
    # measured: mean-field 0.044-0.047, spline 0.004-0.007 over seeds 0-2
    assert gaps["spline"] < 0.3 * gaps["mean_field"], gaps
    assert distances["spline"] < distances["mean_field"], distances


@pytest.mark.parametrize("flow", ["iaf", "nsf", "realnvp", "nice"])
def test_flow_guides_are_built_from_the_zoo_flows_and_score_their_own_draws(flow):
    """AutoFlow's layers are the zoo flow's, in the sampling direction; its density of
    its own draws is the change of variables of base -> layers -> affine map."""
    import pyro
    import pyro.distributions as dist

    from pyrogen.infer import AutoFlow
    from pyrogen.infer.svi import make_guide

    def model():
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        pyro.sample("y", dist.Normal(x**2, 0.3))

    guide = AutoFlow(model, flow, layers=2, hidden=(8,))
    guide()  # builds the transform
    parts = list(guide.transform.parts)
    # layer, reversal, layer (NICE: and its scaling; couplings: the interleaving of
    # alternate entries), then the affine map
    assert type(parts[-1]).__name__ == "LocScale"
    assert len(parts) == {"iaf": 4, "nsf": 4, "realnvp": 5, "nice": 6}[flow]
    with torch.no_grad():
        for p in guide.parameters():
            p.add_(0.2 * torch.randn_like(p))
    z = torch.randn(6, 2)
    x = guide.transform(z)
    jacobian = [torch.autograd.functional.jacobian(guide.transform, row) for row in z]
    logdet = torch.stack([torch.linalg.slogdet(j).logabsdet for j in jacobian])
    base = dist.Normal(0.0, 1.0).expand([2]).to_event(1)
    expected = base.log_prob(z) - logdet
    got = dist.TransformedDistribution(base, [guide.transform]).log_prob(x)
    torch.testing.assert_close(got, expected)
    structure = pyrogen.infer.svi.model_structure(model, ())
    assert isinstance(make_guide("spline", model, structure, method="svi"), AutoFlow)
    with pytest.raises(ValueError, match="flow: must be one of"):
        AutoFlow(model, "glow")


def test_a_one_dimensional_flow_guide_integrates_to_one():
    """One latent dimension: AutoFlow's elementwise splines and affine map give a
    density on the line; quadrature of it is 1."""
    import pyro
    import pyro.distributions as dist

    from pyrogen.infer import AutoFlow

    def model():
        pyro.sample("x", dist.Normal(0.0, 1.0))

    guide = AutoFlow(model, "nsf", layers=2, init_scale=1.0)
    guide()
    with torch.no_grad():
        for p in guide.parameters():
            p.add_(0.3 * torch.randn_like(p))
    grid = torch.linspace(-15, 15, 300001)[:, None]  # fine: the splines' knots are kinks
    base = dist.Normal(0.0, 1.0).expand([1]).to_event(1)
    with torch.no_grad():
        density = dist.TransformedDistribution(base, [guide.transform]).log_prob(grid).exp()
    assert float(torch.trapezoid(density, grid[:, 0])) == pytest.approx(1.0, abs=5e-4)
