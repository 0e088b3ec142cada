"""pyrogen's closed-form EM against scikit-learn's GaussianMixture, in one run.

Both start from the same weights, means and covariances, run the same fixed number
of EM iterations (no early stop: tol=0) on the same float64 data, full covariances,
and both end with one more E-step (sklearn's final E-step; pyrogen's final
log-likelihood). Reported: wall time of the whole fit, the ratio, the final mean
log-likelihood of each and their relative difference, and a table over N of time and
peak resident memory (each cell measured in a fresh process).

    python bench/gmm_em.py            # N=200,000, D=8, K=10, 100 iterations, 3 repeats
    python bench/gmm_em.py --quick    # under a minute
    python bench/gmm_em.py --sizes 2000000 5000000 --table-only pyrogen --table-iterations 5
                                      # memory at scale: pyrogen's peak stays bounded

The last line printed is one JSON object of the figures; ratios are named *_ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np


def make_data(n: int, dim: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Samples of a random K-component mixture, and K data points as initial means."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, size=(k, dim))
    factors = rng.normal(0, 0.6, size=(k, dim, dim)) + np.eye(dim)
    labels = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 5.0)))
    x = centers[labels] + np.einsum("nij,nj->ni", factors[labels], rng.normal(size=(n, dim)))
    means = x[rng.choice(n, size=k, replace=False)]
    return x, means


def run_pyrogen(x, means, iterations):
    import torch
    from pyrogen.models import GaussianMixture

    import pyrogen

    model = GaussianMixture(len(means), covariance="full", init=means, reg_covar=1e-6)
    began = time.perf_counter()
    fit = pyrogen.fit(model, x, method="em", num_steps=iterations, tol=0.0, progress=False)
    elapsed = time.perf_counter() - began
    assert fit.num_steps == iterations
    with torch.no_grad():
        return elapsed, float(model.log_prob(torch.as_tensor(x)).mean())


def initial_parameters(x, means):
    """The starting point both libraries use: pyrogen's nearest-mean initialization."""
    import torch
    from pyrogen.models import GaussianMixture

    model = GaussianMixture(len(means), covariance="full", init=means, reg_covar=1e-6)
    (xt,) = model.prepare(torch.as_tensor(x))
    model.initialize(xt)
    precisions = torch.linalg.inv(model.covariances)
    return model.weights.numpy(), model.locs.numpy(), precisions.numpy()


def run_sklearn(x, means, iterations):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    weights, locs, precisions = initial_parameters(x, means)
    model = GaussianMixture(
        len(means),
        covariance_type="full",
        tol=0.0,
        max_iter=iterations,
        n_init=1,
        weights_init=weights,
        means_init=locs,
        precisions_init=precisions,
        reg_covar=1e-6,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        began = time.perf_counter()
        model.fit(x)
        elapsed = time.perf_counter() - began
    assert model.n_iter_ == iterations
    return elapsed, float(model.score(x))


def child(impl: str, n: int, dim: int, k: int, iterations: int) -> None:
    """Run one fit in this process; print its time and its peak resident memory above
    the memory held before the fit (data included), sampled every 5 ms."""
    from _peak import peak_above_baseline

    x, means = make_data(n, dim, k)
    runner = run_pyrogen if impl == "pyrogen" else run_sklearn
    runner(x[:2000], means, 2)  # imports and first-call costs stay out of the figure
    (elapsed, log_lik), _, peak = peak_above_baseline(lambda: runner(x, means, iterations))
    print(json.dumps({"seconds": elapsed, "peak_mib": peak, "loglik": log_lik}))


def measure_in_child(impl, n, dim, k, iterations) -> dict:
    command = [sys.executable, __file__, "--child", impl, str(n), str(dim), str(k), str(iterations)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure_table(sizes, dim: int, k: int, iterations: int, which: str) -> list[dict]:
    """Time and peak resident memory per N, each fit in a fresh process; the data's
    own size beside it (N x D float64)."""
    print(
        f"\n{'N':>9}{'data MiB':>10}{'pyrogen s':>11}{'pyrogen MiB':>13}"
        + (f"{'sklearn s':>11}{'sklearn MiB':>13}{'speed-up':>10}" if which == "both" else "")
    )
    table = []
    for size in sizes:
        ours = measure_in_child("pyrogen", size, dim, k, iterations)
        row = {
            "n": size,
            "data_mib": size * dim * 8 / 2**20,
            "pyrogen_seconds": ours["seconds"],
            "pyrogen_peak_mib": ours["peak_mib"],
        }
        line = f"{size:>9}{row['data_mib']:>10.1f}{ours['seconds']:>11.3f}{ours['peak_mib']:>13.1f}"
        if which == "both":
            theirs = measure_in_child("sklearn", size, dim, k, iterations)
            row.update(sklearn_seconds=theirs["seconds"], sklearn_peak_mib=theirs["peak_mib"])
            line += f"{theirs['seconds']:>11.3f}{theirs['peak_mib']:>13.1f}"
            line += f"{theirs['seconds'] / ours['seconds']:>9.2f}x"
        table.append(row)
        print(line)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", help="the table's N (default 1e4-1e6)")
    parser.add_argument(
        "--table-only",
        choices=["pyrogen", "both"],
        help="measure only the table (time and peak memory per N), for pyrogen or both",
    )
    parser.add_argument("--table-iterations", type=int, help="EM iterations per table cell")
    args = parser.parse_args()
    if args.child:
        impl, *sizes = args.child
        child(impl, *map(int, sizes))
        return

    import torch

    n, dim, k, iterations, repeats = 200_000, 8, 10, 100, 3
    sizes = [10_000, 100_000, 200_000, 1_000_000]
    if args.quick:
        n, iterations, repeats, sizes = 20_000, 20, 2, [20_000]
    sizes = args.sizes or sizes
    if args.table_only:
        table = measure_table(sizes, dim, k, args.table_iterations or iterations, args.table_only)
        print(json.dumps({"bench": "gmm_em", "table_only": True, "table": table}))
        return
    x, means = make_data(n, dim, k)
    print(
        f"N={n} D={dim} K={k} full covariances, {iterations} EM iterations, float64; "
        f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}"
    )
    run_pyrogen(x[:2000], means, 2)  # warm up imports and kernels for both
    run_sklearn(x[:2000], means, 2)
    times = {"pyrogen": [], "sklearn": []}
    log_liks = {}
    for _ in range(repeats):  # alternate so that drift in machine load hits both alike
        for name, runner in (("pyrogen", run_pyrogen), ("sklearn", run_sklearn)):
            elapsed, log_lik = runner(x, means, iterations)
            times[name].append(elapsed)
            log_liks[name] = log_lik
    median = {name: float(np.median(t)) for name, t in times.items()}
    rel = abs(log_liks["pyrogen"] - log_liks["sklearn"]) / abs(log_liks["sklearn"])
    ratio = median["sklearn"] / median["pyrogen"]
    print(f"{'':10}{'seconds (median)':>18}{'mean log-lik':>16}")
    for name in ("pyrogen", "sklearn"):
        print(f"{name:10}{median[name]:>18.3f}{log_liks[name]:>16.8f}")
    print(f"speed-up over sklearn: {ratio:.2f}x   relative log-likelihood difference: {rel:.2e}")

    table = measure_table(sizes, dim, k, args.table_iterations or iterations, "both")
    print(
        json.dumps(
            {
                "bench": "gmm_em",
                "quick": args.quick,
                "n": n,
                "dim": dim,
                "components": k,
                "iterations": iterations,
                "pyrogen_seconds": median["pyrogen"],
                "sklearn_seconds": median["sklearn"],
                "speedup_vs_sklearn_ratio": ratio,
                "pyrogen_loglik": log_liks["pyrogen"],
                "sklearn_loglik": log_liks["sklearn"],
                "loglik_rel_diff": rel,
                "table": table,
            }
        )
    )


if __name__ == "__main__":
    main()
