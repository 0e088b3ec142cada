"""NUTS and VI through pyrogen on posteriordb posteriors, against Stan's reference
draws, beside plain NumPyro running the same pyro-api model.

For each posterior of ``pyrogen.models.posteriordb.POSTERIORS`` (a hierarchical model,
linear regressions with flat priors and a correlated intercept and slope, a Poisson
GLM, a logistic learning model, a latent Gaussian process, ARMA(1,1), GARCH(1,1)):

- pyrogen NUTS (``pyrogen.fit(model, method="nuts")``, its defaults: NumPyro, float64,
  best-of-ten starts), 4 chains x (1,000 warm-up + 1,000 draws): the worst |z| of any
  parameter's mean or sd against Stan's draws (z in combined Monte Carlo standard
  errors, :func:`pyrogen.diagnostics.compare_to_reference`), the worst R-hat, the
  least bulk ESS, wall seconds, ESS per second;
- plain NumPyro on the same model function (``pyro_backend("numpy")``, ``MCMC(NUTS)``
  with its defaults, pyro-api routed to NumPyro by ``pyrogen.compat.backend``: float64
  switched on for both, so the comparison is of the engines; chains vectorized as
  pyrogen runs them on a CPU): the same figures, and
  ``ess_per_second_ratio`` = pyrogen's ESS/s over plain NumPyro's (1 = no overhead);
- each VI guide (mean-field, full-rank) with default options (the convergence rule):
  whether it converged, seconds, and against Stan the worst mean error in posterior
  sds and the smallest and largest sd ratio (mean-field's are expected below 1 where
  the posterior is correlated: that is the family's error, not the optimizer's).

NUTS rows are medians of interleaved repeats (pyrogen, plain, pyrogen, plain, ...);
torch and XLA are held to one thread. Reference draws are read with
:func:`pyrogen.data.load_posteriordb` from a posteriordb checkout (``--path`` or
``POSTERIORDB_PATH``); ``bench/_stan_reference.py`` makes them with PyStan by
posteriordb's protocol where the checkout lacks them.

    python bench/posteriordb.py --path ~/posteriordb            # about 30 minutes
    python bench/posteriordb.py --path ~/posteriordb --quick    # under a minute
    python bench/posteriordb.py --quick      # arK, which pyrogen fetches without a checkout

The last line printed is one JSON object of the figures; ratios are named *_ratio.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402


def nuts_figures(samples, reference, seconds):
    from pyrogen.diagnostics import compare_to_reference

    comparison = compare_to_reference(samples, reference, label="fit")
    rows = comparison.rows
    worst_z = max(max(abs(r["z_mean"]), abs(r["z_sd"])) for r in rows)
    ess = min(r["ess_fit"] for r in rows)
    return {
        "worst_abs_z": worst_z,
        "worst_rhat": max(r["rhat_fit"] for r in rows),
        "min_ess": ess,
        "seconds": seconds,
        "ess_per_second": ess / seconds,
        "parameters": len(rows),
    }


def run_pyrogen_nuts(model, kwargs, reference, warmup, draws, chains, seed):
    import pyrogen

    began = time.perf_counter()
    fit = pyrogen.fit(
        model,
        method="nuts",
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        seed=seed,
        progress=False,
        **kwargs,
    )
    return nuts_figures(fit.samples, reference, time.perf_counter() - began)


def run_plain_numpyro(model, kwargs, reference, warmup, draws, chains, seed):
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    from pyrogen.compat import backend  # pyro-api routed to NumPyro, nothing of pyrogen's

    data = {k: jnp.asarray(v.numpy()) if hasattr(v, "numpy") else v for k, v in kwargs.items()}
    began = time.perf_counter()
    with jax.enable_x64(True), backend("numpyro"):
        mcmc = MCMC(
            NUTS(model),
            num_warmup=warmup,
            num_samples=draws,
            num_chains=chains,
            chain_method="vectorized",
            progress_bar=False,
        )
        mcmc.run(jax.random.PRNGKey(seed), **data)
        samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    return nuts_figures(samples, reference, time.perf_counter() - began)


def run_guide(model, kwargs, reference, guide, seed, num_steps):
    import pyrogen
    from pyrogen.diagnostics import guide_against_reference

    began = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = pyrogen.fit(
            model, guide=guide, seed=seed, num_steps=num_steps, progress=False, **kwargs
        )
    seconds = time.perf_counter() - began
    sites = {name.split("[")[0] for name in reference.reference_draws}
    rows = guide_against_reference(fit, reference, sites)
    mean_errors = [abs(r["mean_z"]) for r in rows]
    ratios = [r["sd_ratio"] for r in rows]
    return {
        "converged": fit.converged,
        "steps": len(fit.losses),
        "seconds": seconds,
        "worst_mean_error_sd": float(max(mean_errors)),
        "min_sd_ratio": float(min(ratios)),
        "max_sd_ratio": float(max(ratios)),
        "warnings": len([w for w in caught if issubclass(w.category, UserWarning)]),
    }


def median_row(rows):
    """The run with the median ESS per second (its other figures as they were)."""
    return sorted(rows, key=lambda r: r["ess_per_second"])[len(rows) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=os.environ.get("POSTERIORDB_PATH"))
    parser.add_argument("--quick", action="store_true", help="one posterior, short runs")
    parser.add_argument("--posteriors", nargs="*", help="names (default: all of them)")
    parser.add_argument("--guides", nargs="*", default=["mean_field", "full_rank"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.path and not args.quick:
        parser.error("--path or POSTERIORDB_PATH: a posteriordb checkout with reference draws")
    import torch
    from pyrogen.models.posteriordb import POSTERIORS

    import pyrogen
    from pyrogen.diagnostics import posteriordb_arguments

    torch.set_num_threads(1)
    names = args.posteriors or [n for n in POSTERIORS if n != "arK-arK"]  # arK: nuts_backends
    if args.quick:  # without a checkout, arK from ../shared/data (or the cache, or a download)
        quick = "eight_schools-eight_schools_noncentered" if args.path else "arK-arK"
        names = args.posteriors or [quick]
        warmup, draws, chains, repeats, num_steps = 200, 200, 2, 1, 300
    else:
        warmup, draws, chains, repeats, num_steps = 1000, 1000, 4, args.repeats, None
    unknown = [n for n in names if n not in POSTERIORS]
    if unknown:
        parser.error(f"--posteriors: no pyro-api model for {unknown}; known: {list(POSTERIORS)}")
    figures = {"quick": args.quick, "posteriors": {}}
    print(
        f"NUTS {chains} chains x ({warmup} warm-up + {draws} draws), median of {repeats}; "
        f"VI guides {args.guides} with {'the convergence rule' if num_steps is None else num_steps}"
    )
    header = (
        f"{'posterior':<40}{'run':<14}{'worst|z|':>9}{'R-hat':>7}{'min ESS':>8}{'s':>7}{'ESS/s':>8}"
    )
    print(header)
    if not args.quick:  # JAX's one-time start-up stays out of whichever side runs first
        warm = POSTERIORS[names[0]]
        reference = pyrogen.data.load_posteriordb(names[0], path=args.path)
        data = posteriordb_arguments(warm, reference.data, reference.stan_code)
        run_plain_numpyro(warm, data, reference, 20, 20, 1, 0)
        run_pyrogen_nuts(warm, data, reference, 20, 20, 1, 0)
    for name in names:
        model = POSTERIORS[name]
        reference = pyrogen.data.load_posteriordb(name, path=args.path)
        kwargs = posteriordb_arguments(model, reference.data, reference.stan_code)
        runs = {"pyrogen": [], "numpyro": []}
        for repeat in range(repeats):
            runs["pyrogen"].append(
                run_pyrogen_nuts(model, kwargs, reference, warmup, draws, chains, repeat)
            )
            runs["numpyro"].append(
                run_plain_numpyro(model, kwargs, reference, warmup, draws, chains, repeat)
            )
        row = {k: median_row(v) for k, v in runs.items()}
        # the worst |z| over every repeat, not the median run's: a bad chain counts
        for k, v in runs.items():
            row[k]["worst_abs_z"] = max(r["worst_abs_z"] for r in v)
            row[k]["worst_rhat"] = max(r["worst_rhat"] for r in v)
        for label, r in row.items():
            print(
                f"{name:<40}{label + ' NUTS':<14}{r['worst_abs_z']:>9.2f}{r['worst_rhat']:>7.3f}"
                f"{r['min_ess']:>8.0f}{r['seconds']:>7.1f}{r['ess_per_second']:>8.1f}"
            )
        row["ess_per_second_ratio"] = (
            row["pyrogen"]["ess_per_second"] / row["numpyro"]["ess_per_second"]
        )
        for guide in args.guides:
            try:
                result = run_guide(model, kwargs, reference, guide, 0, num_steps)
            except (RuntimeError, ValueError) as error:  # e.g. a draw the model cannot take
                row[guide] = {"failed": f"{type(error).__name__}: {str(error)[:200]}"}
                print(f"{name:<40}{guide:<14} failed: {row[guide]['failed']}")
                continue
            row[guide] = result
            print(
                f"{name:<40}{guide:<14} converged {result['converged']}, "
                f"{result['steps']} steps, {result['seconds']:.1f} s; mean error "
                f"{result['worst_mean_error_sd']:.3f} sd; sd ratios "
                f"{result['min_sd_ratio']:.3f}-{result['max_sd_ratio']:.3f}"
            )
        figures["posteriors"][name] = row
    rows = figures["posteriors"].values()
    figures["nuts_worst_abs_z"] = max(r["pyrogen"]["worst_abs_z"] for r in rows)
    figures["plain_numpyro_worst_abs_z"] = max(r["numpyro"]["worst_abs_z"] for r in rows)
    figures["median_ess_per_second_ratio"] = statistics.median(
        r["ess_per_second_ratio"] for r in rows
    )
    print(
        f"pyrogen NUTS worst |z| against Stan {figures['nuts_worst_abs_z']:.2f} (plain NumPyro "
        f"{figures['plain_numpyro_worst_abs_z']:.2f}); pyrogen/plain NumPyro ESS per second, "
        f"median over posteriors {figures['median_ess_per_second_ratio']:.2f}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
