"""SVI that converges: pyrogen's default fit against plain Pyro's fixed-length loop.

``pyrogen.fit(model, *data)`` with no step count runs until the convergence rule of
``pyrogen.infer.convergence`` is met (iterate averaging, its Monte Carlo error, the
learning rate halved until halving no longer moves the answer; 16 vectorized
particles; the Laplace approximation as the start where its ELBO is higher). The
baseline is what Pyro's examples do: ``pyro.infer.SVI`` with ``Trace_ELBO``,
``pyro.optim.Adam({"lr": 0.01})`` and the same autoguide, run for the same number of
steps as pyrogen took, keeping the last iterate. Both are scored
against the exact answer:

- ``gaussian``: a correlated 4-D Gaussian posterior, whose mean-field optimum has
  standard deviations 1 / sqrt(diag(precision)) and whose full-rank optimum is the
  posterior itself;
- ``regression`` (not in ``--quick``): a linear regression with an uncentred
  predictor (x around 50, intercept and slope correlated at -0.99), against NumPyro's
  NUTS (4 chains of 2,000 draws) in the same run.

Printed per target and guide: steps, seconds, whether pyrogen's rule was met, the
worst |sd ratio - 1| and the worst |mean error| in posterior sds of each fit, and
``*_error_ratio`` (the baseline's error over pyrogen's: above 1, pyrogen is closer;
the sd error on the Gaussian, whose optima are known for both guides, the mean error
on the regression, where NUTS gives the posterior's sds and a mean-field guide's
optimal sds are smaller by design) and ``*_time_ratio`` (pyrogen's seconds over the
baseline's).

    python bench/svi_convergence.py            # both targets, both guides (~4 minutes)
    python bench/svi_convergence.py --quick    # the Gaussian, mean-field (under a minute)

The last line printed is one JSON object of the figures; ratios are named *_ratio.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import torch
from pyroapi import distributions as dist
from pyroapi import pyro

GUIDES = {"mean_field": "AutoNormal", "full_rank": "AutoMultivariateNormal"}


def gaussian_target():
    import pyro as torch_pyro
    import pyro.distributions as torch_dist

    a = np.random.default_rng(0).normal(size=(4, 4))
    c = a @ a.T + 0.5 * np.eye(4)
    c = c / np.sqrt(np.outer(np.diag(c), np.diag(c))) * np.outer([1, 2, 0.5, 3], [1, 2, 0.5, 3])
    cov = torch.tensor(c)
    mean = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64)

    def model(mean, cov):
        torch_pyro.sample("z", torch_dist.MultivariateNormal(mean, cov))

    precision = torch.linalg.inv(cov)
    exact = {
        "mean_field": (mean.numpy(), (1 / precision.diag().sqrt()).numpy()),
        "full_rank": (mean.numpy(), cov.diag().sqrt().numpy()),
    }
    return model, (mean, cov), exact, ["z"]


def regression(x, y=None):
    a = pyro.sample("a", dist.Normal(0.0, 10.0))
    b = pyro.sample("b", dist.Normal(0.0, 10.0))
    s = pyro.sample("s", dist.HalfNormal(5.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(a + b * x, s), obs=y)


def regression_target():
    import pyrogen

    rng = np.random.default_rng(0)
    x = 50 + 10 * rng.normal(size=100)
    y = 2.0 + 0.3 * x + 1.5 * rng.normal(size=100)
    nuts = pyrogen.fit(
        regression, x, y, method="nuts", backend="numpyro", num_samples=2000, progress=False
    )
    draws = np.stack([np.asarray(nuts.samples[k]).reshape(-1) for k in "abs"], 1)
    reference = (draws.mean(0), draws.std(0))
    data = (torch.as_tensor(x), torch.as_tensor(y))
    return regression, data, {"mean_field": reference, "full_rank": reference}, list("abs")


def summaries(guide, args, sites, num_samples: int = 20_000):
    """Means and sds of the guide's draws of the model's ``sites``, flattened in turn."""
    from pyrogen.infer.svi import guide_draws

    with torch.no_grad():
        draws = guide_draws(guide, args, {}, num_samples)
    flat = np.concatenate([np.asarray(draws[k]).reshape(num_samples, -1) for k in sites], axis=1)
    return flat.mean(0), flat.std(0)


def errors(found, exact) -> tuple[float, float]:
    mean, sd = found
    true_mean, true_sd = exact
    sd_error = float(np.max(np.abs(sd / true_sd - 1)))
    return sd_error, float(np.max(np.abs(mean - true_mean) / true_sd))


def run_pyrogen(model, args, guide, seed):
    import pyrogen

    began = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = pyrogen.fit(model, *args, guide=guide, seed=seed, progress=False)
    seconds = time.perf_counter() - began
    said = any("not converged" in str(w.message) for w in caught)
    return result, seconds, said


def run_pyro(model, args, guide, steps, seed):
    import pyro
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoMultivariateNormal, AutoNormal

    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    made = (AutoNormal if guide == "mean_field" else AutoMultivariateNormal)(model)
    svi = SVI(model, made, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
    began = time.perf_counter()
    for _ in range(steps):
        svi.step(*args)
    return made, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the Gaussian, mean-field only")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    targets = {"gaussian": gaussian_target}
    scored = {"gaussian": 0, "regression": 1}  # which error the ratio compares
    guides = ["mean_field"] if options.quick else list(GUIDES)
    if not options.quick:
        targets["regression"] = regression_target
    figures: dict = {"quick": options.quick}
    for name, make in targets.items():
        model, args, exact, sites = make()
        for guide in guides:
            result, seconds, said = run_pyrogen(model, args, guide, options.seed)
            ours = errors(summaries(result.guide, args, sites), exact[guide])
            made, base_seconds = run_pyro(model, args, guide, result.num_steps, options.seed)
            theirs = errors(summaries(made, args, sites), exact[guide])
            key = f"{name}_{guide}"
            print(
                f"{name:10s} {guide:10s} steps {result.num_steps:6d}  converged "
                f"{result.converged!s:5s} (warned: {said!s:5s})  pyrogen sd err "
                f"{ours[0]:.3f} mean err {ours[1]:.3f} sd  {seconds:6.1f} s | Pyro's "
                f"last iterate sd err {theirs[0]:.3f} mean err {theirs[1]:.3f} sd  "
                f"{base_seconds:6.1f} s"
            )
            figures.update(
                {
                    f"{key}_steps": result.num_steps,
                    f"{key}_converged": bool(result.converged),
                    f"{key}_sd_error": round(ours[0], 4),
                    f"{key}_mean_error": round(ours[1], 4),
                    f"{key}_baseline_sd_error": round(theirs[0], 4),
                    f"{key}_baseline_mean_error": round(theirs[1], 4),
                    f"{key}_seconds": round(seconds, 2),
                    f"{key}_baseline_seconds": round(base_seconds, 2),
                    f"{key}_error_ratio": round(
                        theirs[scored[name]] / max(ours[scored[name]], 1e-12), 3
                    ),
                    f"{key}_time_ratio": round(seconds / base_seconds, 3),
                }
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
