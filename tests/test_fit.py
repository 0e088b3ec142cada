import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyroapi import distributions as api_dist
from pyroapi import pyro as api_pyro

import pyrogen
from pyrogen.checkpoint import CheckpointError
from pyrogen.infer.mcmc import run_nuts

PRIOR_SD = 2.0


def conjugate_normal(x):
    """mu ~ N(0, 2^2), x_i ~ N(mu, 1): the posterior of mu is normal in closed form."""
    mu = api_pyro.sample("mu", api_dist.Normal(0.0, PRIOR_SD))
    with api_pyro.plate("data", x.shape[0]):
        api_pyro.sample("x", api_dist.Normal(mu, 1.0), obs=x)


def plain_pyro_normal(x):
    mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(mu, 1.0), obs=x)


@pytest.fixture
def data():
    return np.random.default_rng(1).normal(1.5, 1.0, size=40)


def posterior(x):
    precision = 1 / PRIOR_SD**2 + len(x)
    return x.sum() / precision, math.sqrt(1 / precision)


def test_svi_mean_field_recovers_the_conjugate_posterior(data):
    mean, sd = posterior(data)
    # many particles and a small final step keep the optimizer's jitter below the check
    result = pyrogen.fit(
        conjugate_normal,
        data,
        method="svi",
        loss="mean_field",
        num_steps=2000,
        lr=0.01,
        num_particles=32,
        vectorize_particles=True,
        progress=False,
    )
    loc = pyro.param("AutoNormal.locs.mu").item()
    scale = pyro.param("AutoNormal.scales.mu").item()
    assert abs(loc - mean) < 0.1 * sd
    assert abs(scale / sd - 1) < 0.1
    assert result.losses.shape == (2000,) and np.isfinite(result.losses).all()


def test_map_finds_the_posterior_mode(data):
    mean, _ = posterior(data)
    result = pyrogen.fit(
        plain_pyro_normal, data, method="map", num_steps=1500, lr=0.05, progress=False
    )
    assert abs(result.params["mu"].item() - mean) < 1e-4


@pytest.mark.parametrize(
    "backend, chain_method",
    [("pyro", "auto"), ("numpyro", "sequential"), ("numpyro", "vectorized")],
)
def test_nuts_matches_the_conjugate_posterior(data, backend, chain_method):
    mean, sd = posterior(data)
    result = pyrogen.fit(
        conjugate_normal,
        data,
        method="nuts",
        backend=backend,
        chain_method=chain_method,
        num_warmup=300,
        num_samples=600,
        num_chains=2,
        progress=False,
    )
    draws = result.samples["mu"]
    assert draws.shape == (2, 600)
    import arviz as az

    mcse = float(az.mcse(draws))
    assert abs(draws.mean() - mean) < 4 * mcse
    assert abs(draws.std() / sd - 1) < 0.1
    assert not np.allclose(draws[0], draws[1])  # the chains are not copies of each other
    assert result.backend == backend
    assert set(result.sample_stats) >= {"diverging", "acceptance_rate", "step_size"}
    assert result.sample_stats["acceptance_rate"].shape == (2, 600)
    assert 0.5 < result.sample_stats["acceptance_rate"].mean() <= 1.0
    with pytest.raises(ValueError, match="chain_method"):
        pyrogen.fit(conjugate_normal, data, method="nuts", chain_method="threads")
    with pytest.raises(ValueError, match="chain_method"):  # the engine itself checks too
        run_nuts(conjugate_normal, (data,), backend=backend, chain_method="threads")


def test_auto_backend_prefers_numpyro_for_pyroapi_models(data):
    result = pyrogen.fit(
        conjugate_normal,
        data,
        method="nuts",
        num_warmup=50,
        num_samples=50,
        num_chains=1,
        progress=False,
    )
    assert result.backend == "numpyro"
    result = pyrogen.fit(
        plain_pyro_normal,
        data,
        method="nuts",
        num_warmup=50,
        num_samples=50,
        num_chains=1,
        progress=False,
        jit=False,
    )
    assert result.backend == "pyro"


def normal_with_a_deterministic_site(x):
    mu = api_pyro.sample("mu", api_dist.Normal(0.0, PRIOR_SD))
    api_pyro.deterministic("shifted", 2 * mu + 1)
    with api_pyro.plate("data", x.shape[0]):
        api_pyro.sample("x", api_dist.Normal(mu, 1.0), obs=x)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_nuts_keeps_deterministic_sites_under_both_backends(data, backend):
    """NumPyro's MCMC returns deterministic sites with the draws; pyrogen's Pyro path
    replays the model at each draw so that both give the same sites."""
    result = pyrogen.fit(
        normal_with_a_deterministic_site,
        data,
        method="nuts",
        backend=backend,
        num_warmup=50,
        num_samples=30,
        num_chains=2,
        progress=False,
    )
    assert set(result.samples) == {"mu", "shifted"}
    shifted = np.asarray(result.samples["shifted"])
    assert shifted.shape == (2, 30)
    np.testing.assert_allclose(shifted, 2 * np.asarray(result.samples["mu"]) + 1, rtol=1e-6)
    idata = result.to_arviz()
    assert set(idata.posterior.data_vars) == {"mu", "shifted"}
    assert set(idata.observed_data.data_vars) == set(idata.log_likelihood.data_vars) == {"x"}


@pytest.mark.parametrize("method", ["nuts", "svi", "map"])
def test_init_of_a_site_the_model_lacks_is_refused(data, method):
    with pytest.raises(
        ValueError, match="init: 'sigma' is not a latent site of the model; its latent sites: mu"
    ):
        pyrogen.fit(conjugate_normal, data, method=method, init={"sigma": 1.0, "mu": 0.0})
    with pytest.raises(ValueError, match="init: 'shifted', 'x' are not latent sites"):
        pyrogen.fit(
            normal_with_a_deterministic_site, data, method=method, init={"shifted": 1.0, "x": 0.0}
        )


def ridge(x):
    """x_i ~ N(a + b, 1) with broad priors on a and b: the data fix a + b, not a - b, so
    the posterior is a narrow ridge (correlation about -1)."""
    a = api_pyro.sample("a", api_dist.Normal(0.0, 10.0))
    b = api_pyro.sample("b", api_dist.Normal(0.0, 10.0))
    with api_pyro.plate("data", x.shape[0]):
        api_pyro.sample("x", api_dist.Normal(a + b, 1.0), obs=x)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_dense_mass_takes_longer_steps_along_a_correlated_posterior(data, backend):
    """With a diagonal mass matrix the step size is bound by the ridge's narrow width;
    a dense one rescales along it, so its adapted step is several times longer."""
    steps = {}
    for dense in (False, True):
        result = pyrogen.fit(
            ridge,
            data,
            method="nuts",
            backend=backend,
            dense_mass=dense,
            num_warmup=300,
            num_samples=100,
            num_chains=1,
            progress=False,
        )
        steps[dense] = float(np.mean(result.sample_stats["step_size"]))
        total = np.asarray(result.samples["a"]) + np.asarray(result.samples["b"])
        assert abs(total.mean() - data.mean()) < 0.5  # the ridge's position is right
    assert steps[True] > 3 * steps[False], steps


def test_nuts_checkpoint_resumes_and_refuses_another_sampler(data, tmp_path):
    path = tmp_path / "nuts.ckpt"
    options = dict(method="nuts", backend="pyro", num_warmup=30, num_samples=20, progress=False)
    first = pyrogen.fit(conjugate_normal, data, num_chains=2, checkpoint=path, **options)
    again = pyrogen.fit(conjugate_normal, data, num_chains=2, checkpoint=path, **options)
    np.testing.assert_array_equal(again.samples["mu"], first.samples["mu"])  # read back
    assert again.diagnostics["sampling_seconds"] == first.diagnostics["sampling_seconds"]
    with pytest.raises(CheckpointError, match="dense_mass: checkpoint has False"):
        pyrogen.fit(
            conjugate_normal, data, num_chains=3, checkpoint=path, dense_mass=True, **options
        )
    with pytest.raises(CheckpointError, match="sampler"):
        pyrogen.fit(
            conjugate_normal, data, num_chains=3, checkpoint=path, target_accept=0.9, **options
        )


def test_numpyro_backend_needs_a_pyroapi_model(data):
    with pytest.raises(
        ValueError, match="backend: 'numpyro' needs a model written against pyroapi"
    ):
        pyrogen.fit(plain_pyro_normal, data, method="nuts", backend="numpyro")


class KeepBest:
    """A stateful callback: the best loss so far, the step it came at, every call."""

    def __init__(self, interrupt_at=None):
        self.best, self.best_step, self.steps = float("inf"), 0, []
        self.interrupt_at = interrupt_at

    def __call__(self, step, loss):
        if step == self.interrupt_at:
            raise KeyboardInterrupt
        self.steps.append(step)
        if loss < self.best:
            self.best, self.best_step = loss, step
        return False

    def state_dict(self):
        return {"best": self.best, "best_step": self.best_step, "steps": list(self.steps)}

    def load_state_dict(self, state):
        self.best, self.best_step = state["best"], state["best_step"]
        self.steps = list(state["steps"])


def test_svi_resumes_from_a_checkpoint_exactly(data, tmp_path):
    """Parameters, losses and a stateful callback's state resume as if uninterrupted."""
    path = tmp_path / "svi.ckpt"
    options = dict(method="svi", num_steps=60, lr=0.05, progress=False, seed=3)
    full = KeepBest()
    whole = pyrogen.fit(conjugate_normal, data, callback=full, **options)
    full_loc = pyro.param("AutoNormal.locs.mu").item()
    with pytest.raises(KeyboardInterrupt):
        pyrogen.fit(
            conjugate_normal,
            data,
            checkpoint=path,
            checkpoint_every=10,
            callback=KeepBest(interrupt_at=35),
            **options,
        )
    kept = KeepBest()
    resumed = pyrogen.fit(
        conjugate_normal, data, checkpoint=path, checkpoint_every=10, callback=kept, **options
    )
    assert resumed.diagnostics["resumed_from"] == 30
    np.testing.assert_allclose(resumed.losses, whole.losses, rtol=1e-12)
    assert pyro.param("AutoNormal.locs.mu").item() == pytest.approx(full_loc, rel=1e-12)
    assert kept.steps == full.steps == list(range(1, 61))  # restored at step 30, not 35
    assert (kept.best, kept.best_step) == (full.best, full.best_step)
    assert full.best_step > 30  # the best came after the resume: the restored state counts


def test_checkpoint_from_other_data_is_refused(data, tmp_path):
    path = tmp_path / "svi.ckpt"
    pyrogen.fit(conjugate_normal, data, num_steps=5, checkpoint=path, progress=False)
    with pytest.raises(CheckpointError, match="belongs to another run"):
        pyrogen.fit(conjugate_normal, data + 1, num_steps=5, checkpoint=path, progress=False)


@pytest.mark.parametrize(
    "change",
    [
        dict(lr=0.02),
        dict(optim="sgd"),
        dict(optim=pyro.optim.Adam({"lr": 0.02})),
        dict(num_particles=2),
        dict(loss="mean_field"),
    ],
    ids=["lr", "optim", "optim-arguments", "num_particles", "loss"],
)
def test_checkpoint_under_other_training_options_is_refused(data, tmp_path, change):
    """Resuming under another optimizer, step size, batch or ELBO would quietly continue
    a different run: the checkpoint says which options it was written under."""
    path = tmp_path / "svi.ckpt"
    options = dict(num_steps=5, checkpoint=path, progress=False)
    first = dict(lr=0.01, optim="adam")
    if "optim" in change and not isinstance(change["optim"], str):
        first = dict(optim=pyro.optim.Adam({"lr": 0.01}))
    pyrogen.fit(conjugate_normal, data, **first, **options)
    if not isinstance(first["optim"], str):  # another object with the same settings resumes
        same = dict(optim=pyro.optim.Adam({"lr": 0.01}), lr=0.5)  # lr is the object's
        assert (
            pyrogen.fit(conjugate_normal, data, **same, **options).diagnostics["resumed_from"] == 5
        )
    with pytest.raises(CheckpointError, match="belongs to another run.*training"):
        pyrogen.fit(conjugate_normal, data, **{**first, **change}, **options)


def test_checkpoint_under_another_batch_size_is_refused(tmp_path):
    from pyrogen.models import FVSBN

    x = (torch.rand(20, 4, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    options = dict(method="mle", num_steps=4, checkpoint=tmp_path / "m.ckpt", progress=False)
    pyrogen.fit(FVSBN((4,)), x, batch_size=5, **options)
    assert pyrogen.fit(FVSBN((4,)), x, batch_size=5, **options).diagnostics["resumed_from"] == 4
    with pytest.raises(CheckpointError, match="training"):
        pyrogen.fit(FVSBN((4,)), x, batch_size=10, **options)


def test_checkpoint_written_before_training_options_were_recorded_resumes(data, tmp_path):
    path = tmp_path / "svi.ckpt"
    options = dict(num_steps=5, checkpoint=path, progress=False)
    pyrogen.fit(conjugate_normal, data, **options)
    payload = torch.load(path, weights_only=False)
    del payload["fingerprint"]["training"]  # as earlier versions wrote it
    torch.save(payload, path)
    assert pyrogen.fit(conjugate_normal, data, **options).diagnostics["resumed_from"] == 5
    payload["fingerprint"]["seed"] = repr(1)  # the keys it does record are still checked
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="seed"):
        pyrogen.fit(conjugate_normal, data, **options)


def test_early_stopping_by_tol(data):
    result = pyrogen.fit(
        plain_pyro_normal,
        data,
        method="map",
        num_steps=5000,
        lr=0.05,
        tol=1e-6,
        window=20,
        progress=False,
    )
    assert result.converged and result.num_steps < 5000


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(method="gibbs"), "method: must be one of"),
        (dict(num_steps=0), "num_steps: must be at least 1"),
        (dict(num_steps=5, max_steps=6), "num_steps: give num_steps or max_steps"),
        (dict(lr=-1.0), "lr: must be a positive number"),
        (dict(tol=float("nan")), "tol: must be a non-negative number"),
        (dict(backend="stan"), "backend: must be one of"),
        (dict(method="em"), "method: conjugate_normal cannot be fitted with method='em'"),
        (dict(pack=2), "pack: only method='adversarial' takes pack"),
        (dict(method="map", instance_noise=0.5), "instance_noise: only method='adversarial'"),
        (dict(method="nuts", critic_steps=5), "critic_steps: only method='adversarial'"),
    ],
)
def test_bad_options_are_refused_by_name(data, options, message):
    with pytest.raises(ValueError, match=message):
        pyrogen.fit(conjugate_normal, data, progress=False, **options)


@pytest.mark.parametrize("bad", [np.array([1.0, np.nan]), np.array([1.0, np.inf]), np.array([])])
def test_bad_data_to_a_plain_model_is_refused(bad):
    with pytest.raises(ValueError, match=r"args\[0\]"):
        pyrogen.fit(conjugate_normal, bad, progress=False)


def test_a_diverging_loss_stops_with_a_clear_error():
    def model():
        scale = pyro.param("scale", torch.tensor(1.0))
        pyro.factor("f", scale * 1e308 * 10)

    with (
        pytest.warns(UserWarning, match="Encountered"),
        pytest.raises(FloatingPointError, match="loss became"),
    ):
        pyrogen.fit(model, method="mle", num_steps=3, progress=False)


def test_mle_fits_parameters_without_a_guide():
    x = torch.tensor([1.0, 2.0, 4.0])

    def model(x):
        loc = pyro.param("loc", torch.tensor(0.0))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(loc, 1.0), obs=x)

    pyrogen.fit(model, x, method="mle", num_steps=800, lr=0.05, progress=False)
    assert pyro.param("loc").item() == pytest.approx(x.mean().item(), abs=1e-3)
