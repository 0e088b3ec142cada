"""One table of every inference method on one model, measured against NUTS.

report = pyrogen.compare_inference(model, *args)
print(report)            # time, ESS/s, ELBO, mean error and variance ratio vs NUTS
report.plot()            # the first two parameters, every method overlaid
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from pyrogen.diagnostics import flatten_sites

__all__ = ["InferenceReport", "compare_inference"]

GUIDES = ("mean_field", "full_rank", "low_rank", "flow")


@dataclass
class InferenceReport:
    """Per method: seconds, ESS/s (samplers), ELBO (guides), and against NUTS the largest
    |mean difference| in posterior sds and the range of variance ratios."""

    rows: list[dict]
    draws: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame(self.rows).set_index("method")

    def __str__(self) -> str:
        header = (
            f"{'method':<12}{'seconds':>9}{'ESS/s':>9}{'ELBO':>11}"
            f"{'max|dmean|/sd':>15}{'var ratio min':>15}{'max':>8}  flags"
        )
        lines = [header]
        for r in self.rows:
            ess = "" if r["ess_per_second"] is None else f"{r['ess_per_second']:.1f}"
            elbo = "" if r["elbo"] is None else f"{r['elbo']:.2f}"
            lines.append(
                f"{r['method']:<12}{r['seconds']:>9.1f}{ess:>9}{elbo:>11}"
                f"{r['max_mean_error']:>15.3f}{r['min_variance_ratio']:>15.3f}"
                f"{r['max_variance_ratio']:>8.3f}  {'; '.join(r.get('flags', []))}"
            )
        return "\n".join(lines)

    def plot(self, ax=None, max_points: int = 2000):
        """Scatter of the first two scalar parameters of every method over NUTS."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(5.5, 4.5))[1]
        names = None
        for method, draws in self.draws.items():
            flat = flatten_sites(draws, 1)
            names = names or list(flat)[:2]
            if len(names) < 2:
                raise ValueError("plot: the model has fewer than two scalar parameters")
            x, y = flat[names[0]][:max_points], flat[names[1]][:max_points]
            style = dict(s=3, alpha=0.5) if method == "nuts" else dict(s=2, alpha=0.25)
            ax.scatter(x, y, label=method, color="0.5" if method == "nuts" else None, **style)
        ax.set(xlabel=names[0], ylabel=names[1])
        ax.legend(markerscale=4, fontsize=8)
        return ax


def compare_inference(
    model,
    *args,
    guides=GUIDES,
    num_steps: int = 2000,
    lr: float = 0.02,
    num_particles: int = 8,
    num_samples: int = 1000,
    num_chains: int = 4,
    seed: int = 0,
    **kwargs,
) -> InferenceReport:
    """Fit ``model`` by NUTS (the reference) and by SVI with each of ``guides``.

    ``kwargs`` go to the model. The ELBO of each guide is estimated with 1000 particles
    at the end of its fit; the mean error is the largest |mean_q - mean_NUTS| over the
    scalar parameters in units of the NUTS posterior sd; the variance ratio is
    var_q / var_NUTS (1 everywhere for a perfect approximation; below 1 is
    over-confident)."""
    import arviz as az
    import pyro

    from pyrogen.fit import fit

    began = time.perf_counter()
    reference = fit(
        model,
        *args,
        method="nuts",
        num_samples=num_samples,
        num_chains=num_chains,
        seed=seed,
        progress=False,
        **kwargs,
    )
    nuts_seconds = time.perf_counter() - began
    nuts_draws = {
        k: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) for k, v in reference.samples.items()
    }
    nuts_flat = flatten_sites(nuts_draws, 1)
    ess = min(float(az.ess(v)) for v in flatten_sites(reference.samples).values())
    mean = {k: v.mean() for k, v in nuts_flat.items()}
    sd = {k: v.std() for k, v in nuts_flat.items()}
    rows = [
        dict(
            method="nuts",
            seconds=nuts_seconds,
            ess_per_second=ess / nuts_seconds,
            elbo=None,
            max_mean_error=0.0,
            min_variance_ratio=1.0,
            max_variance_ratio=1.0,
        )
    ]
    report = InferenceReport(rows, {"nuts": nuts_draws})
    options = dict(num_steps=num_steps, lr=lr, num_particles=num_particles, seed=seed)
    for guide in guides:
        row, draws = _guide_row(model, args, kwargs, guide, options, num_samples * num_chains)
        errors = [abs(draws_flat - mean[k]) / sd[k] for k, draws_flat in _means(draws).items()]
        ratios = [v.var() / sd[k] ** 2 for k, v in flatten_sites(draws, 1).items()]
        row.update(
            max_mean_error=float(max(errors)),
            min_variance_ratio=float(min(ratios)),
            max_variance_ratio=float(max(ratios)),
        )
        rows.append(row)
        report.draws[guide] = draws
        pyro.clear_param_store()
    flag_rows(rows)
    return report


def flag_rows(rows: list[dict], tolerance: float = 5.0) -> None:
    """Mark the guides whose figures cannot be trusted, in each row's ``flags``: an
    ELBO that is not finite, or above every other guide's by more than ``tolerance``
    nats (every ELBO bounds the same log-evidence from below, so one far above the rest
    is a failed estimate, a diverged fit), and means more than 3 NUTS sds off."""
    elbos = {r["method"]: r["elbo"] for r in rows if r.get("elbo") is not None}
    for row in rows:
        flags = row.setdefault("flags", [])
        elbo = row.get("elbo")
        if elbo is None:
            continue
        others = [v for k, v in elbos.items() if k != row["method"] and np.isfinite(v)]
        if not np.isfinite(elbo):
            flags.append("ELBO not finite: diverged")
        elif len(others) >= 2 and elbo > max(others) + tolerance:
            flags.append(f"ELBO {elbo - max(others):.3g} nats above every other: diverged")
        if row["max_mean_error"] > 3:
            flags.append("means > 3 NUTS sds off")


def _means(draws: dict) -> dict:
    return {k: v.mean() for k, v in flatten_sites(draws, 1).items()}


def _guide_row(model, args, kwargs, guide, options, num_draws: int) -> tuple[dict, dict]:
    """Fit one guide by SVI: its time, its ELBO (1000 particles) and its draws."""
    from pyro.infer import Trace_ELBO

    from pyrogen.arviz import draws_from_guide
    from pyrogen.fit import fit

    began = time.perf_counter()
    result = fit(
        model,
        *args,
        method="svi",
        guide=guide,
        vectorize_particles=True,
        progress=False,
        **options,
        **kwargs,
    )
    seconds = time.perf_counter() - began
    draws = draws_from_guide(result.model_fn, result.guide, result.args, result.kwargs, num_draws)
    with torch.no_grad():
        elbo = -Trace_ELBO(
            num_particles=1000, vectorize_particles=True, max_plate_nesting=_nesting(result)
        ).loss(result.model_fn, result.guide, *result.args, **result.kwargs)
    return dict(method=guide, seconds=seconds, ess_per_second=None, elbo=float(elbo)), draws


def _nesting(result) -> int:
    from pyrogen.infer.svi import max_plate_nesting

    return max_plate_nesting(result.model_fn, result.args, result.kwargs) + 1
