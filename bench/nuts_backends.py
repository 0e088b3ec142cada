"""NUTS through pyrogen against plain NumPyro and plain Pyro, on posteriordb's arK.

The same AR(5) posterior (T = 200) four ways, in one run:

- pyrogen, backend="numpyro": ``pyrogen.fit(ar_model, y, order=5, method="nuts")``
- plain NumPyro: a hand-written NumPyro model with ``numpyro.infer.MCMC(NUTS(...))``,
  with the chain method pyrogen picks (``chain_method="vectorized"`` where there are
  fewer devices than chains, as on a CPU), and again with ``"sequential"``
- pyrogen, backend="pyro" (jit-compiled potential)
- plain Pyro: ``pyro.infer.MCMC(NUTS(model, jit_compile=True))``

NumPyro's 4 chains run in one vectorized pass on a CPU (pyrogen's default there);
Pyro's run one after another (plain Pyro's chains in the same loop, so that neither
side gets extra processes). Reported: wall time (warmup,
sampling and compilation), the minimum bulk ESS over the 7 parameters, and ESS per
second; the ratios are pyrogen's ESS/s over the plain backend's (1 means no overhead),
and ``vectorized_over_sequential_ratio`` is plain NumPyro's ESS/s vectorized over
sequential.

    python bench/nuts_backends.py           # 1000 warmup + 1000 draws, 4 chains (~10 min)
    python bench/nuts_backends.py --quick   # under a minute

The last line printed is one JSON object of the figures; ratios are named *_ratio.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def min_ess(samples: dict) -> float:
    """The smallest bulk ESS over every scalar component of (chain, draw, ...) draws."""
    import arviz as az

    from pyrogen.diagnostics import flatten_sites

    return min(float(az.ess(v, method="bulk")) for v in flatten_sites(samples).values())


def run_pyrogen(y, backend, warmup, draws, chains):
    from pyrogen.models import ar_model

    import pyrogen

    began = time.perf_counter()
    fit = pyrogen.fit(
        ar_model,
        y,
        order=5,
        method="nuts",
        backend=backend,
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        progress=False,
    )
    return time.perf_counter() - began, min_ess(fit.samples)


def run_numpyro(y, warmup, draws, chains, chain_method="vectorized"):
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    def model(y, K=5):
        alpha = numpyro.sample("alpha", dist.Normal(0.0, 10.0))
        beta = numpyro.sample("beta", dist.Normal(0.0, 10.0).expand([K]).to_event(1))
        sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
        T = y.shape[0]
        lags = jnp.stack([y[K - k : T - k] for k in range(1, K + 1)], -1)
        with numpyro.plate("time", T - K):
            numpyro.sample("y", dist.Normal(alpha + lags @ beta, sigma), obs=y[K:])

    began = time.perf_counter()
    mcmc = MCMC(
        NUTS(model),
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        chain_method=chain_method,
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(0), jnp.asarray(y))
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    return time.perf_counter() - began, min_ess(samples)


def run_pyro(y, warmup, draws, chains):
    import warnings

    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.infer import MCMC, NUTS

    y = torch.as_tensor(y)

    def model(y, K=5):
        alpha = pyro.sample("alpha", dist.Normal(0.0, 10.0))
        beta = pyro.sample("beta", dist.Normal(0.0, 10.0).expand([K]).to_event(1))
        sigma = pyro.sample("sigma", dist.HalfCauchy(2.5))
        T = y.shape[0]
        lags = torch.stack([y[K - k : T - k] for k in range(1, K + 1)], -1)
        with pyro.plate("time", T - K):
            pyro.sample("y", dist.Normal(alpha + lags @ beta, sigma), obs=y[K:])

    began = time.perf_counter()
    per_chain = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for chain in range(chains):
            pyro.set_rng_seed(chain)
            kernel = NUTS(model, jit_compile=True, ignore_jit_warnings=True)
            mcmc = MCMC(kernel, num_samples=draws, warmup_steps=warmup, disable_progbar=True)
            mcmc.run(y)
            per_chain.append({k: v.numpy() for k, v in mcmc.get_samples().items()})
    samples = {k: np.stack([c[k] for c in per_chain]) for k in per_chain[0]}
    return time.perf_counter() - began, min_ess(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run, under a minute")
    args = parser.parse_args()
    import torch

    import pyrogen

    torch.set_default_dtype(torch.float64)
    y = np.asarray(pyrogen.data.load_posteriordb("arK").data["y"], dtype=np.float64)
    warmup, draws, chains = (100, 100, 2) if args.quick else (1000, 1000, 4)
    pyro_warmup, pyro_draws, pyro_chains = (50, 50, 1) if args.quick else (warmup, draws, chains)
    repeats = 1 if args.quick else 3
    # JAX and torch.jit pay a one-time start-up on their first compilation; a short run of
    # each side first keeps that cost out of whichever configuration happens to run first
    if not args.quick:  # (a quick run's ratios are a smoke test, not figures)
        run_numpyro(y, 20, 20, 1)
        run_pyrogen(y, "numpyro", 20, 20, 1)
        run_pyro(y, 10, 10, 1)
        run_pyrogen(y, "pyro", 10, 10, 1)
    runs = {"pyrogen_numpyro": [], "numpyro": [], "numpyro_sequential": [], "pyrogen_pyro": [],
            "pyro": []}  # fmt: skip
    for repeat in range(repeats):  # interleaved, so drifts in machine load hit every row
        runs["pyrogen_numpyro"].append(run_pyrogen(y, "numpyro", warmup, draws, chains))
        runs["numpyro"].append(run_numpyro(y, warmup, draws, chains))
        runs["numpyro_sequential"].append(run_numpyro(y, warmup, draws, chains, "sequential"))
        if repeat == 0:  # Pyro's rows take minutes each: one run
            runs["pyrogen_pyro"].append(
                run_pyrogen(y, "pyro", pyro_warmup, pyro_draws, pyro_chains)
            )
            runs["pyro"].append(run_pyro(y, pyro_warmup, pyro_draws, pyro_chains))
    # the median run by ESS per second
    rows = {k: sorted(v, key=lambda r: r[1] / r[0])[len(v) // 2] for k, v in runs.items()}
    print(
        f"posteriordb arK, AR(5), T=200: {chains} chains x ({warmup} warmup + {draws} draws);"
        f" Pyro rows {pyro_chains} x ({pyro_warmup} + {pyro_draws}); median of {repeats} runs"
    )
    print(f"{'run':<18}{'seconds':>10}{'min ESS':>10}{'ESS/s':>10}")
    figures = {"quick": args.quick}
    for name, (seconds, ess) in rows.items():
        print(f"{name:<18}{seconds:>10.1f}{ess:>10.0f}{ess / seconds:>10.1f}")
        figures[f"{name}_seconds"] = seconds
        figures[f"{name}_min_ess"] = ess
        figures[f"{name}_ess_per_second"] = ess / seconds
    figures["numpyro_overhead_ratio"] = (
        figures["pyrogen_numpyro_ess_per_second"] / figures["numpyro_ess_per_second"]
    )
    figures["pyro_overhead_ratio"] = (
        figures["pyrogen_pyro_ess_per_second"] / figures["pyro_ess_per_second"]
    )
    figures["vectorized_over_sequential_ratio"] = (
        figures["numpyro_ess_per_second"] / figures["numpyro_sequential_ess_per_second"]
    )
    figures["default_backend_speedup_ratio"] = (
        figures["pyrogen_numpyro_ess_per_second"] / figures["pyrogen_pyro_ess_per_second"]
    )
    print(
        f"pyrogen/plain ESS per second: numpyro {figures['numpyro_overhead_ratio']:.2f}, "
        f"pyro {figures['pyro_overhead_ratio']:.2f}; pyrogen's default (numpyro) over pyro "
        f"{figures['default_backend_speedup_ratio']:.1f}x"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
