"""FourierDensity and DeepFactorizedDensity: known answers, a second implementation,
Pyro NUTS against NumPyro NUTS, and bad input."""

import math

import numpy as np
import pyro
import pytest
import torch
from pyrogen.models import (
    DeepFactorizedDensity,
    FourierDensity,
    FourierPrior,
    fourier_density_bayes,
    normalized_autocorrelation,
)
from pyrogen.models.fourier import (
    coefficients_to_a,
    coefficients_to_reflection,
    reflection_to_coefficients,
)

import pyrogen
from pyrogen.distributions import FourierSeriesDensity
from pyrogen.nn import FourierHead

TRUE_B = torch.tensor([[0.6, -0.3], [0.2, 0.1], [0.0, 0.15]], dtype=torch.float64)


def _truth(domain="interval", loc=0.0, scale=1.0):
    return FourierSeriesDensity(coefficients_to_a(TRUE_B), loc, scale, domain=domain)


def _draws(n, seed=0, **options):
    torch.manual_seed(seed)
    return _truth(**options).sample((n,))


def test_mle_recovers_a_fourier_density():
    """Data from a degree-3 series: the fitted model beats the truth in-sample (it is the
    maximum) and is close to it out of sample (KL by Monte Carlo on fresh draws)."""
    x, fresh = _draws(4000), _draws(20000, seed=1)
    model = FourierDensity(3, domain="interval")
    fit = pyrogen.fit(model, x, method="mle", num_steps=1500, lr=0.03, progress=False)
    truth = _truth()
    assert model.log_prob(x).mean() >= truth.log_prob(x).mean() - 1e-6
    kl = (truth.log_prob(fresh) - model.log_prob(fresh)).mean().item()
    assert 0 <= kl < 3e-3
    assert fit.converged is None and len(fit.losses) == 1500  # a fixed run: not assessed
    # the identified summary matches the truth's
    c_fit = normalized_autocorrelation(model.coefficients.detach())
    torch.testing.assert_close(c_fit, normalized_autocorrelation(TRUE_B), atol=0.05, rtol=0)


def test_mle_equals_a_hand_written_torch_loop():
    """The engine changes nothing: same start, same Adam, same losses to 1e-10 (the
    compiled ELBO rounds differently, so it agrees to 1e-6)."""
    x = _draws(500, loc=0.5, scale=2.0, domain="real")
    model = FourierDensity(4)
    fit = pyrogen.fit(model, x, method="mle", num_steps=200, lr=0.02, progress=False, jit=False)
    compiled = pyrogen.fit(
        FourierDensity(4), x, method="mle", num_steps=200, lr=0.02, progress=False, jit=True
    )
    reference = FourierDensity(4)
    reference.initialize(x)
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.02)
    losses = []
    for _ in range(200):
        optimizer.zero_grad()
        loss = -reference.distribution().log_prob(x).sum()  # the ELBO of N points
        loss.backward()
        optimizer.step()
        losses.append(loss.item() / len(x))
    np.testing.assert_allclose(fit.losses, losses, rtol=0, atol=1e-10)
    np.testing.assert_allclose(compiled.losses, losses, rtol=0, atol=1e-6)
    torch.testing.assert_close(model.coefficients, reference.coefficients)


def test_smoothness_penalty_trades_likelihood_for_smoothness():
    x = _draws(1000)
    rough = []
    for weight in (0.0, 1e-3, 1e-2):
        model = FourierDensity(12, domain="interval", smoothness=weight)
        pyrogen.fit(model, x, method="mle", num_steps=800, lr=0.03, progress=False)
        rough.append(model.distribution().roughness().item())
    assert rough[0] > rough[1] > rough[2]


@pytest.mark.parametrize("parametrization", ["reflection", "coefficients"])
def test_map_with_a_tight_prior_is_nearly_uniform(parametrization):
    x = _draws(300)
    tight = FourierPrior(scale=1e-3, parametrization=parametrization)
    model = FourierDensity(3, domain="interval", prior=tight)
    fit = pyrogen.fit(model, x, method="map", num_steps=500, lr=0.01, progress=False)
    assert set(fit.params) == {parametrization}
    assert model.coefficient_draws.abs().max() < 1e-2
    loose = FourierPrior(scale=10.0, parametrization=parametrization)
    loose = FourierDensity(3, domain="interval", prior=loose)
    pyrogen.fit(loose, x, method="map", num_steps=1500, lr=0.03, progress=False)
    assert loose.log_prob(x).mean() > model.log_prob(x).mean() + 0.05


def test_reflection_parameters_identify_the_density():
    """v -> b is one-to-one onto the minimum-phase coefficients: b's that differ by
    root reflections (the same density) map back to one v, and v -> b -> v is the
    identity; the same function on jax arrays (NumPyro) gives the same b."""
    g = torch.Generator().manual_seed(0)
    v = torch.randn(5, 4, 2, generator=g, dtype=torch.float64)
    b = reflection_to_coefficients(v)
    for row in coefficients_to_a(b):
        assert np.abs(np.roots(row.numpy()[::-1])).min() > 1
    torch.testing.assert_close(coefficients_to_reflection(b), v)
    roots = np.roots(coefficients_to_a(b[0]).numpy()[::-1])
    roots[1] = 1 / roots[1].conj()  # another b of the same density
    a = np.poly(roots)[::-1] / np.poly(roots)[-1]
    other = torch.from_numpy(np.stack([a.real, a.imag], -1)[1:].copy())
    u = torch.linspace(-1, 1, 51, dtype=torch.float64)
    torch.testing.assert_close(
        FourierDensity(4, domain="interval").distribution(other).log_prob(u),
        FourierDensity(4, domain="interval").distribution(b[0]).log_prob(u),
    )
    torch.testing.assert_close(coefficients_to_reflection(other), v[0])
    import jax.numpy as jnp

    from pyrogen.compat import backend

    jax_v = jnp.asarray(v.numpy())
    with backend("numpyro"):
        jax_b = np.asarray(reflection_to_coefficients(jax_v))
    np.testing.assert_allclose(jax_b, b.numpy(), rtol=1e-5, atol=1e-6)


def test_checkpoint_resume_equals_an_uninterrupted_run(tmp_path):
    x = _draws(400, domain="real")
    path = tmp_path / "fourier.ckpt"
    whole = FourierDensity(3)
    full = pyrogen.fit(whole, x, method="mle", num_steps=60, lr=0.05, progress=False)
    first = FourierDensity(3)
    pyrogen.fit(
        first,
        x,
        method="mle",
        num_steps=30,
        lr=0.05,
        progress=False,
        checkpoint=path,
        checkpoint_every=10,
    )
    resumed = FourierDensity(3)
    again = pyrogen.fit(
        resumed,
        x,
        method="mle",
        num_steps=60,
        lr=0.05,
        progress=False,
        checkpoint=path,
        checkpoint_every=10,
    )
    assert again.diagnostics["resumed_from"] == 30
    np.testing.assert_allclose(again.losses, full.losses, rtol=0, atol=1e-12)
    torch.testing.assert_close(resumed.coefficients, whole.coefficients)


def test_nuts_pyro_and_numpyro_agree_on_the_identified_parameters():
    """The pyro-api model under both NUTS backends. Its reflection parameters are
    identified, so the raw draws themselves are compared (and b, a deterministic
    site, and c_n / c_0); the posterior mean of c_n / c_0 is near the truth."""
    x = _draws(300)
    comparison = pyrogen.crosscheck(
        fourier_density_bayes,
        x,
        num_frequencies=2,
        num_warmup=300,
        num_samples=400,
        num_chains=4,
        init={"reflection": torch.zeros(2, 2)},
        transform=lambda d: {
            "reflection": d["reflection"],
            "coefficients": d["coefficients"],
            "c": normalized_autocorrelation(d["coefficients"]),
        },
    )
    assert comparison.passed, str(comparison)
    for backend in ("pyro", "numpyro"):
        samples = comparison.fits[backend].samples
        np.testing.assert_allclose(
            np.asarray(samples["coefficients"]),
            reflection_to_coefficients(torch.as_tensor(np.asarray(samples["reflection"]))),
            rtol=1e-5,
            atol=1e-6,
        )
        # one mode: every chain has the same mean within a few of its standard errors
        v = np.asarray(samples["reflection"], dtype=np.float64)
        chain_means, sd = v.mean(1), v.std((0, 1))
        assert np.all(np.ptp(chain_means, 0) < 0.5 * sd), backend
    draws = normalized_autocorrelation(comparison.fits["numpyro"].samples["coefficients"])
    truth = normalized_autocorrelation(TRUE_B.numpy())[:2]
    mean, sd = draws.mean((0, 1)), draws.std((0, 1))
    # a degree-2 model of a degree-3 truth: the two low frequencies are close to true
    assert np.all(np.abs(mean - truth) < 4 * sd + 0.05)
    idata = comparison.fits["numpyro"].to_arviz()
    assert idata.log_likelihood["obs"].shape[-1] == len(x)


def test_zoo_nuts_keeps_every_draw_as_a_posterior_predictive():
    x = _draws(200)
    model = FourierDensity(2, domain="interval", prior=FourierPrior())
    fit = pyrogen.fit(
        model, x, method="nuts", num_warmup=100, num_samples=100, num_chains=1, progress=False
    )
    # Pyro's NUTS: the sampled site, and b as its deterministic site, for every draw
    assert fit.samples["reflection"].shape == fit.samples["coefficients"].shape == (1, 100, 2, 2)
    b = reflection_to_coefficients(torch.as_tensor(fit.samples["reflection"][0]))
    torch.testing.assert_close(torch.as_tensor(fit.samples["coefficients"][0]), b)
    torch.testing.assert_close(model.coefficient_draws, b)
    grid = torch.linspace(-1, 1, 20001)
    assert torch.trapezoid(model.log_prob(grid).exp(), grid).item() == pytest.approx(1, abs=1e-6)
    idata = fit.to_arviz()
    assert idata.log_likelihood["obs"].shape == (1, 100, 200)
    assert set(idata.posterior.data_vars) >= {"reflection", "coefficients"}


def test_deep_factorized_density_is_a_normalized_monotone_cdf():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 0.5, 1000), rng.normal(1.5, 1.0, 1000)])
    model = DeepFactorizedDensity((3, 3, 3))
    assert model.num_parameters == 43  # the paper's (1, 3, 3, 3, 1) network
    pyrogen.fit(model, x, method="mle", num_steps=1500, lr=0.02, progress=False)
    grid = torch.linspace(-30, 30, 300001)
    cdf = model.cdf(grid)
    assert bool((cdf.diff() >= 0).all())
    assert torch.trapezoid(model.log_prob(grid).exp(), grid).item() == pytest.approx(1, abs=1e-4)
    # the density is the derivative of the CDF (finite differences)
    mid = torch.linspace(-3, 3, 61)
    h = 1e-5
    slope = (model.cdf(mid + h) - model.cdf(mid - h)) / (2 * h)
    torch.testing.assert_close(model.log_prob(mid).exp(), slope, rtol=1e-6, atol=1e-9)
    entropy = 0.5 * np.log(2 * np.pi * np.e * 0.5**2) / 2 + 0.5 * np.log(2 * np.pi * np.e) / 2
    assert -model.log_prob(x).mean().item() < entropy + np.log(2) + 0.1


def test_fourier_head_learns_a_conditional_density():
    """y | s is bimodal at +-s: a Fourier head fits it far better than a Gaussian can."""
    g = torch.Generator().manual_seed(0)
    s = torch.rand(3000, 1, generator=g) * 2 + 1
    sign = torch.randint(0, 2, (3000,), generator=g) * 2 - 1
    y = sign * s[:, 0] + 0.2 * torch.randn(3000, generator=g)
    head = FourierHead(1, num_frequencies=10, hidden=(32,), scale=3.0)

    def model(s, y):
        pyro.module("head", head)
        with pyro.plate("data", len(y)):
            pyro.sample("y", head(s), obs=y)

    fit = pyrogen.fit(model, s, y, method="mle", num_steps=1500, lr=0.01, progress=False)
    with torch.no_grad():
        nll = -head(s).log_prob(y).mean().item()
    true_nll = (
        -torch.log(
            0.5 * torch.exp(torch.distributions.Normal(s[:, 0], 0.2).log_prob(y))
            + 0.5 * torch.exp(torch.distributions.Normal(-s[:, 0], 0.2).log_prob(y))
        )
        .mean()
        .item()
    )
    gaussian_nll = 0.5 * math.log(2 * math.pi * math.e * y.var().item())
    assert nll < true_nll + 0.15 < gaussian_nll
    assert fit.losses[-1] < fit.losses[0]


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="x: value 1.5 at index 1 lies outside bounds"):
        pyrogen.fit(FourierDensity(2, domain="interval"), [0.1, 1.5], method="mle")
    with pytest.raises(ValueError, match="x: contains NaN"):
        pyrogen.fit(FourierDensity(2), [0.1, float("nan")], method="mle")
    with pytest.raises(ValueError, match="x: expected one column"):
        pyrogen.fit(FourierDensity(2), np.zeros((5, 2)), method="mle")
    with pytest.raises(ValueError, match="num_frequencies"):
        FourierDensity(0)
    with pytest.raises(ValueError, match="bounds"):
        FourierDensity(2, domain="interval", bounds=(1.0, -1.0))
    with pytest.raises(ValueError, match="smoothness"):
        FourierDensity(2, smoothness=-1.0)
    with pytest.raises(ValueError, match="prior.scale"):
        FourierDensity(2, prior=FourierPrior(scale=0.0))
    with pytest.raises(ValueError, match="prior.parametrization: must be one of"):
        FourierDensity(2, prior={"parametrization": "roots"})
    with pytest.raises(ValueError, match="parametrization: must be one of"):
        pyrogen.fit(fourier_density_bayes, torch.zeros(1), method="nuts", parametrization="b")
    with pytest.raises(ValueError, match="init: 'coefficients' is not a latent site.*reflection"):
        pyrogen.fit(
            fourier_density_bayes,
            torch.zeros(1),
            method="nuts",
            init={"coefficients": torch.zeros(4, 2)},
        )
    with pytest.raises(ValueError, match="prior: method='nuts' needs a prior"):
        pyrogen.fit(FourierDensity(2), [0.1, 0.2], method="nuts")
    with pytest.raises(ValueError, match="num_units"):
        DeepFactorizedDensity((3, 0))
    with pytest.raises(TypeError, match="init"):
        pyrogen.fit(FourierDensity(2), [0.1, 0.2], method="mle", init=[1.0])


def test_save_and_load_keep_nuts_draws(tmp_path):
    model = FourierDensity(2, domain="interval", prior=FourierPrior())
    model.absorb({"coefficients": torch.randn(7, 2, 2)})
    model.save(tmp_path / "m.pt")
    loaded = FourierDensity.load(tmp_path / "m.pt")
    x = torch.linspace(-1, 1, 11)
    torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x))
