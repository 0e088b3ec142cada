"""Simulation-based calibration at full size: which engines does pyrogen calibrate?

Every engine is run ``num_simulations`` times on data simulated from the prior, and the
rank of the true parameter among 39 posterior draws is recorded (Talts et al. 2018):

- Bayesian linear regression with strongly correlated predictors (rho = 0.97, n = 20):
  NUTS (NumPyro backend), SVI with the mean-field, full-rank and spline-flow guides;
- Bayesian AR(1) (T = 60), NUTS, with the series simulated from each prior draw.

Printed per engine: the chi-square p-value of uniform ranks per parameter, the share of
ranks in the outer 20% (0.20 when calibrated; more: over-confident), the shrinkage
(posterior sd / prior sd) and seconds per simulation; ``*_tail_share`` is that share
averaged over the parameters. For speed, the NUTS calibration of the regression is
also run by a hand-written NumPyro loop (prior draw, simulate, MCMC, rank; same
warmup, draws and chains) and ``sbc_time_ratio`` is pyrogen's time over it.

    python bench/sbc.py            # 50 simulations per engine (about 15 minutes)
    python bench/sbc.py --quick    # 1 simulation per engine, short SVI: a smoke run

The last line printed is one JSON object of the figures; ratios are named *_ratio.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

NUM_DRAWS = 39
NUTS_OPTIONS = dict(num_warmup=200, backend="numpyro")


def _ar1_simulator(latents, y):
    from pyrogen.models import simulate_ar

    series = simulate_ar(latents["alpha"], latents["beta"], latents["sigma"], len(y))
    return (series,), {}


def run_pyrogen(label, model, args, num_simulations, **options):
    import pyrogen

    began = time.perf_counter()
    result = pyrogen.sbc(
        model, *args, num_simulations=num_simulations, num_draws=NUM_DRAWS, seed=1, **options
    )
    seconds = (time.perf_counter() - began) / num_simulations
    tails = {
        name: float(np.mean(np.isin(ranks, range(4)) | (ranks >= NUM_DRAWS + 1 - 4)))
        for name, ranks in result.ranks.items()
    }
    flagged = result.over_confident()
    if label != "warm-up":
        print(f"\n{label}  ({seconds:.2f} s per simulation)")
        print(result)
        print(f"calibrated: {result.passed()}   over-confident: {flagged or 'none'}")
    return {
        "seconds_per_simulation": seconds,
        "min_pvalue": min(result.pvalues.values()),
        "passed": bool(result.passed()),
        "over_confident": flagged,
        "tail_share": float(np.mean(list(tails.values()))),
    }


def run_plain_numpyro(X, num_simulations, num_warmup, num_samples):
    """The same NUTS calibration of the regression, written directly in NumPyro."""
    import jax
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    def model(X, y=None):
        beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
        with numpyro.plate("data", X.shape[0]):
            numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)

    rng = np.random.default_rng(1)
    ranks = []
    began = time.perf_counter()
    for i in range(num_simulations):
        beta = rng.normal(size=X.shape[1])
        y = X @ beta + rng.normal(size=X.shape[0])
        mcmc = MCMC(
            NUTS(model),
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=1,
            progress_bar=False,
        )
        mcmc.run(jax.random.PRNGKey(i), X, y)
        draws = np.asarray(mcmc.get_samples()["beta"])
        thinned = draws[np.linspace(0, len(draws) - 1, NUM_DRAWS).astype(int)]
        ranks.append((thinned < beta).sum(0))
    return (time.perf_counter() - began) / num_simulations


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 simulation each, 30 SVI steps")
    parser.add_argument("--simulations", type=int, default=None)
    options = parser.parse_args(argv)
    torch.set_default_dtype(torch.float64)
    n = options.simulations or (1 if options.quick else 50)
    svi_steps = 30 if options.quick else 600

    from pyrogen.models import ar_model, bayesian_linear_regression, correlated_design

    X, _, _ = correlated_design(n=20, dim=2, rho=0.97, seed=2)
    figures = {"quick": options.quick, "num_simulations": n, "num_draws": NUM_DRAWS}

    def svi(guide, loss="trace"):
        return dict(
            guide=guide,
            loss=loss,
            lr=0.05,
            num_steps=svi_steps,
            num_particles=4,
            vectorize_particles=True,
        )

    regression = (bayesian_linear_regression, (X,))
    # one untimed simulation each, so that neither side pays JAX's first-call start-up
    if not options.quick:  # (a quick run's ratio is a smoke test, not a figure)
        run_pyrogen("warm-up", *regression, 1, method="nuts", fit_options=dict(NUTS_OPTIONS))
        run_plain_numpyro(X, 1, NUTS_OPTIONS["num_warmup"], 4 * NUM_DRAWS)
    figures["regression_nuts"] = run_pyrogen(
        "regression, NUTS", *regression, n, method="nuts", fit_options=dict(NUTS_OPTIONS)
    )
    for guide, loss in [("mean_field", "mean_field"), ("full_rank", "trace"), ("spline", "trace")]:
        figures[f"regression_{guide}"] = run_pyrogen(
            f"regression, SVI {guide}", *regression, n, method="svi", fit_options=svi(guide, loss)
        )
    figures["ar1_nuts"] = run_pyrogen(
        "AR(1), NUTS",
        ar_model,
        (np.zeros(60),),
        n,
        order=1,
        alpha_scale=1.0,
        beta_scale=0.3,
        sigma_scale=1.0,
        simulator=_ar1_simulator,
        method="nuts",
        fit_options=dict(NUTS_OPTIONS),
    )

    plain = run_plain_numpyro(X, n, NUTS_OPTIONS["num_warmup"], 4 * NUM_DRAWS)
    ours = figures["regression_nuts"]["seconds_per_simulation"]
    print(
        f"\nNUTS calibration of the regression: pyrogen.sbc {ours:.2f} s per simulation, "
        f"hand-written NumPyro loop {plain:.2f} s per simulation"
    )
    figures["plain_numpyro_seconds_per_simulation"] = plain
    figures["sbc_time_ratio"] = ours / plain
    for key in ["regression_nuts", "regression_mean_field", "regression_full_rank",
                "regression_spline", "ar1_nuts"]:  # fmt: skip
        figures[f"{key}_tail_share"] = figures[key]["tail_share"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
