"""NUTS chains spread over devices (NumPyro) and processes (Pyro)."""

import subprocess
import sys
import textwrap

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyroapi import distributions as api_dist
from pyroapi import ops as api_ops
from pyroapi import pyro as api_pyro
from pyrogen.models import bayesian_linear_regression, correlated_design

import pyrogen


def normal_model(x):
    """A Pyro-only model (no pyro-api), defined at the top of a module so it pickles."""
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(5.0))
    with pyro.plate("n", len(x)):
        pyro.sample("x", dist.Normal(mu, sigma), obs=x)


def test_pyro_chains_in_worker_processes_are_the_sequential_chains(tmp_path):
    """Each chain is seeded on its own, so chains run in spawned workers give the same
    draws as chains run one after another, and the checkpoint holds them all."""
    x = torch.randn(40, generator=torch.Generator().manual_seed(0)) + 3.0
    options = dict(method="nuts", num_warmup=100, num_samples=100, num_chains=2, progress=False)
    sequential = pyrogen.fit(normal_model, x, chain_method="sequential", **options)
    parallel = pyrogen.fit(
        normal_model, x, chain_method="parallel", checkpoint=tmp_path / "c.ckpt", **options
    )
    assert sequential.diagnostics["chain_method"] == "sequential"
    assert parallel.diagnostics["chain_method"] == "parallel"
    for name in ("mu", "sigma"):
        assert parallel.samples[name].shape == (2, 100)
        np.testing.assert_allclose(parallel.samples[name], sequential.samples[name], rtol=1e-6)
    assert not np.array_equal(parallel.samples["mu"][0], parallel.samples["mu"][1])
    resumed = pyrogen.fit(  # both chains are in the checkpoint: nothing runs again
        normal_model, x, chain_method="parallel", checkpoint=tmp_path / "c.ckpt", **options
    )
    np.testing.assert_array_equal(resumed.samples["mu"], parallel.samples["mu"])


def test_parallel_pyro_chains_need_a_model_that_pickles():
    x = torch.randn(10)

    def local_model(x):  # a closure cannot be sent to a worker process
        normal_model(x)

    with pytest.raises(ValueError, match="chain_method.*pickle"):
        pyrogen.fit(local_model, x, method="nuts", num_chains=2, chain_method="parallel")


def test_auto_keeps_short_pyro_runs_in_this_process():
    x = torch.randn(20, generator=torch.Generator().manual_seed(1))
    result = pyrogen.fit(
        normal_model, x, method="nuts", num_warmup=50, num_samples=50, num_chains=2, progress=False
    )
    assert result.diagnostics["chain_method"] == "sequential"


def test_numpyro_parallel_without_devices_warns_with_the_fix():
    import jax

    if jax.local_device_count() >= 2:
        pytest.skip("this process already has several JAX devices")
    X, y, _ = correlated_design(30, 2)
    with pytest.warns(UserWarning, match=r"set_host_devices\(2\)"):
        result = pyrogen.fit(
            bayesian_linear_regression,
            X,
            y,
            method="nuts",
            num_warmup=50,
            num_samples=50,
            num_chains=2,
            chain_method="parallel",
            progress=False,
        )
    assert result.samples["beta"].shape == (2, 50, 2)
    assert result.diagnostics["chain_method"] == "sequential"  # what NumPyro fell back to


SCRIPT = textwrap.dedent(
    """
    import json, numpy as np, pyrogen
    assert pyrogen.set_host_devices(2) == 2
    from pyrogen.models import bayesian_linear_regression, correlated_design
    X, y, _ = correlated_design(60, 2)
    options = dict(method="nuts", num_warmup=100, num_samples=100, num_chains=2, progress=False)
    runs = {m: pyrogen.fit(bayesian_linear_regression, X, y, chain_method=m, **options)
            for m in ("vectorized", "parallel", "auto")}
    beta = {m: r.samples["beta"] for m, r in runs.items()}
    try:
        pyrogen.set_host_devices(4)  # JAX has started with 2
        late = None
    except RuntimeError as error:
        late = str(error)
    print(json.dumps({
        "ran": {m: r.diagnostics["chain_method"] for m, r in runs.items()},
        "parallel_vs_vectorized": float(np.abs(beta["parallel"] - beta["vectorized"]).max()),
        "auto_vs_parallel": float(np.abs(beta["auto"] - beta["parallel"]).max()),
        "late": late,
    }))
    """
)


def test_numpyro_chains_run_one_per_host_device_with_the_same_draws(tmp_path):
    """In a fresh process (JAX reads the device count once): with two CPU devices,
    "parallel" and "auto" run one chain per device and draw what "vectorized" draws;
    asking for more devices after JAX started is refused with the fix."""
    import json

    script = tmp_path / "devices.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ran"] == {"vectorized": "vectorized", "parallel": "parallel", "auto": "parallel"}
    assert report["parallel_vs_vectorized"] < 1e-4
    assert report["auto_vs_parallel"] == 0.0
    assert "set_host_devices(4)" in report["late"] and "start of the program" in report["late"]


def test_nuts_defaults_to_float64_where_float32_sticks():
    """posteriordb's latent GP (a Cholesky factor with 1e-10 jitter): in JAX's default
    float32 NumPyro's chains stick (R-hat above 3, most transitions divergent); pyrogen
    runs NUTS in float64 unless told, says so, and the chains mix."""
    import arviz as az
    from pyrogen.models.posteriordb import gp_pois_regr

    x = np.arange(-10.0, 11.0, 2.0)
    k = np.array([40, 37, 29, 12, 4, 3, 9, 19, 77, 82, 33], dtype=np.float32)
    fit = pyrogen.fit(
        gp_pois_regr, x.astype(np.float32), k, method="nuts", num_warmup=300, num_samples=300
    )
    assert fit.backend == "numpyro" and fit.precision == "float64"
    assert fit.samples["rho"].dtype == np.float64
    idata = fit.to_arviz(log_likelihood=False)
    assert idata.attrs["precision"] == "float64"
    r_hat = az.rhat(idata, var_names=["rho", "alpha"])
    assert float(r_hat["rho"]) < 1.05 and float(r_hat["alpha"]) < 1.05
    assert fit.sample_stats["diverging"].mean() < 0.05


def test_precision_is_checked_and_float32_is_kept_when_asked():
    X, y, _ = correlated_design(30, 2)
    with pytest.raises(ValueError, match="precision"):
        pyrogen.fit(bayesian_linear_regression, X, y, method="nuts", precision="half")
    fit = pyrogen.fit(
        bayesian_linear_regression,
        X,
        y,
        method="nuts",
        backend="pyro",
        precision="float32",
        num_warmup=30,
        num_samples=30,
        num_chains=1,
        progress=False,
    )
    assert fit.precision == "float32" and fit.samples["beta"].dtype == np.float32


def test_a_scalar_start_keeps_the_site_scalar():
    """``init={"mu": 0.0}`` starts a scalar site; its draws are (chain, draw), not
    (chain, draw, 1)."""
    x = torch.randn(20, generator=torch.Generator().manual_seed(2))
    for backend in ("pyro", "numpyro"):
        fit = pyrogen.fit(
            normal_model_api,
            x,
            method="nuts",
            backend=backend,
            init={"mu": 0.0},
            num_warmup=30,
            num_samples=30,
            num_chains=2,
            progress=False,
        )
        assert fit.samples["mu"].shape == (2, 30), backend


def normal_model_api(x):
    """The same model in pyro-api (runs under either backend)."""
    mu = api_pyro.sample("mu", api_dist.Normal(0.0, 10.0))
    with api_pyro.plate("n", x.shape[0]):
        api_pyro.sample("x", api_dist.Normal(mu, 1.0), obs=x)


def arma11(y):
    """ARMA(1,1) with an unconstrained MA coefficient: its likelihood has a mirror mode
    beyond |theta| = 1 and is astronomically small for most starts there."""
    mu = api_pyro.sample("mu", api_dist.Normal(0.0, 10.0))
    phi = api_pyro.sample("phi", api_dist.Normal(0.0, 2.0))
    theta = api_pyro.sample("theta", api_dist.Normal(0.0, 2.0))
    sigma = api_pyro.sample("sigma", api_dist.HalfCauchy(5.0))
    errors = [y[0] - (mu + phi * mu)]
    for t in range(1, y.shape[0]):
        errors.append(y[t] - (mu + phi * y[t - 1] + theta * errors[-1]))
    errors = api_ops.stack(errors)
    api_pyro.sample("err", api_dist.Normal(0.0, sigma).expand([y.shape[0]]).to_event(1), obs=errors)


def simulated_arma(length: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, e = np.zeros(length), rng.normal(size=length)
    for t in range(1, length):
        y[t] = 0.5 + 0.6 * y[t - 1] + 0.3 * e[t - 1] + e[t]
    return y


def test_numpyro_chains_start_at_the_best_of_several_uniform_draws():
    """One uniform draw per chain (NumPyro's and Stan's start) puts some chains of the
    ARMA model beyond |theta| = 1, where the log density is finite in float64 but
    negligible; the best of ten puts every chain inside."""
    import jax
    import jax.numpy as jnp

    from pyrogen.infer.mcmc import best_starts

    y = jnp.asarray(simulated_arma(60))
    with jax.enable_x64(True):
        single = best_starts(arma11, (y,), {}, num_chains=8, seed=0, candidates=1)
        best = best_starts(arma11, (y,), {}, num_chains=8, seed=0)
    assert np.any(np.abs(np.asarray(single["theta"])) > 1)
    assert np.all(np.abs(np.asarray(best["theta"])) < 1)
    assert np.asarray(best["theta"]).shape == (8,)
    one = best_starts(arma11, (y,), {}, num_chains=1, seed=0)
    assert np.asarray(one["theta"]).shape == ()


@pytest.mark.slow
def test_arma_chains_agree_in_float64():
    """In float64 (the default) a chain started beyond |theta| = 1 settled in the mirror
    mode (seed 2: R-hat 1.59 before the starts were chosen)."""
    import arviz as az

    fit = pyrogen.fit(
        arma11, simulated_arma(200), method="nuts", seed=2, num_warmup=500, num_samples=500
    )
    assert float(az.rhat(fit.to_arviz(log_likelihood=False))["theta"]) < 1.05


def test_pyro_nuts_computes_in_its_precision_when_the_data_are_integers():
    """Integer data given by keyword and made real inside the model (``y * 1.0``, as
    posteriordb's integral data arrive) took torch's float32 default under Pyro while
    the fit said float64."""
    y = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])

    def model(y):
        mu = api_pyro.sample("mu", api_dist.Normal(0.0, 10.0))
        with api_pyro.plate("n", y.shape[0]):
            api_pyro.sample("y", api_dist.Normal(mu, 1.0), obs=y * 1.0)

    torch.set_default_dtype(torch.float32)  # a user's default (the suite's is float64)
    try:
        fit = pyrogen.fit(
            model, y=y, method="nuts", backend="pyro", num_warmup=20, num_samples=20,
            num_chains=1, progress=False,
        )  # fmt: skip
    finally:
        torch.set_default_dtype(torch.float64)
    draws = np.asarray(fit.samples["mu"])
    assert fit.precision == "float64"
    # the draws come back as float64 either way: float32 arithmetic shows as values that
    # float32 represents exactly
    assert not np.all(draws.astype(np.float32).astype(np.float64) == draws)
