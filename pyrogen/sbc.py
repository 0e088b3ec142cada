"""Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari and Gelman, 2018).

Draw parameters from the prior, simulate data from them, fit the model to the
simulated data, and record the rank of the true value among L posterior draws. If the
inference is exact, each rank is uniform on {0, ..., L}; an over-confident
approximation (too narrow) piles ranks at both ends, a biased one at one end.

    result = pyrogen.sbc(model, X, observed="y", method="nuts", num_simulations=200)
    result.pvalues            # chi-square uniformity test per scalar parameter
    result.plot()             # rank histograms with the 99% band of uniform ranks
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from pyrogen.compat import backend as use_backend
from pyrogen.diagnostics import flatten_sites
from pyrogen.validation import check_positive_int

__all__ = ["sbc", "SBCResult"]


@dataclass
class SBCResult:
    """Ranks of the true parameters among posterior draws, per scalar parameter.

    Attributes:
        ranks: name -> (num_simulations,) integers in [0, num_draws].
        num_draws: L, posterior draws per simulation.
        pvalues: name -> p-value of a chi-square test of uniform ranks (``bins`` bins).
        shrinkage: name -> mean posterior sd / prior sd (how much each fit learned).
    """

    ranks: dict[str, np.ndarray]
    num_draws: int
    bins: int
    pvalues: dict[str, float] = field(default_factory=dict)
    shrinkage: dict[str, float] = field(default_factory=dict)

    def passed(self, alpha: float = 0.001) -> bool:
        """True when no parameter's uniformity test rejects at level ``alpha``
        (Bonferroni-corrected over the parameters)."""
        return min(self.pvalues.values()) > alpha / len(self.pvalues)

    def over_confident(self, alpha: float = 0.001) -> list[str]:
        """Parameters whose ranks pile up at both ends (posterior too narrow): more mass in
        the outer bins than uniform ranks allow, and a rejected uniformity test."""
        flagged = []
        for name, ranks in self.ranks.items():
            u = (ranks + 0.5) / (self.num_draws + 1)
            tails = np.mean((u < 0.1) | (u > 0.9))
            expected, sd = 0.2, np.sqrt(0.2 * 0.8 / len(u))
            if self.pvalues[name] < alpha and tails > expected + 3 * sd:
                flagged.append(name)
        return flagged

    def __str__(self) -> str:
        lines = [f"{'parameter':<14}{'p-value':>10}{'outer 20%':>11}{'shrinkage':>11}"]
        for name, ranks in self.ranks.items():
            u = (ranks + 0.5) / (self.num_draws + 1)
            tails = np.mean((u < 0.1) | (u > 0.9))
            lines.append(
                f"{name:<14}{self.pvalues[name]:>10.4f}{tails:>11.2f}"
                f"{self.shrinkage.get(name, float('nan')):>11.2f}"
            )
        return "\n".join(lines)

    def plot(self, axes=None):
        """Rank histograms, one panel per parameter, with the band that holds 99% of the
        bin counts of uniform ranks."""
        import matplotlib.pyplot as plt
        from scipy import stats

        names = list(self.ranks)
        if axes is None:
            _, axes = plt.subplots(1, len(names), figsize=(3 * len(names), 2.6), squeeze=False)
            axes = axes[0]
        n = len(next(iter(self.ranks.values())))
        low, high = stats.binom(n, 1 / self.bins).ppf([0.005, 0.995])
        edges = np.linspace(0, self.num_draws + 1, self.bins + 1)
        for ax, name in zip(axes, names):
            ax.axhspan(low, high, color="0.85")
            ax.hist(self.ranks[name], bins=edges, color="tab:blue", alpha=0.8)
            ax.set(title=f"{name}  p={self.pvalues[name]:.3f}", xlabel="rank", yticks=[])
        return axes


def _prior_draw(model, args, kwargs, observed: str, simulate: bool = True):
    """Latent values and simulated observations from the prior predictive (Pyro); with
    ``simulate=False`` the model runs on its data as given (its latents are still prior
    draws: nothing conditions them)."""
    with use_backend("pyro"), torch.no_grad(), poutine.block():
        extra = {observed: None} if simulate else {}
        trace = poutine.trace(model).get_trace(*args, **{**kwargs, **extra})
    latents = {
        name: site["value"].detach()
        for name, site in trace.nodes.items()
        if site["type"] == "sample"
        and not site["is_observed"]
        and not site_is_subsample(site)
        and name != observed  # simulated here, not a parameter
    }
    return latents, trace.nodes[observed]["value"].detach() if simulate else None


def sbc(
    model: Callable,
    *args,
    observed: str = "y",
    simulator: Callable | None = None,
    method: str = "nuts",
    num_simulations: int = 100,
    num_draws: int = 99,
    bins: int = 10,
    seed: int = 0,
    progress: bool = False,
    fit_options: dict | None = None,
    **kwargs,
) -> SBCResult:
    """Simulation-based calibration of ``pyrogen.fit(model, ..., method=method)``.

    Arguments:
        model: a Pyro (or pyro-api) model function called as
            ``model(*args, **kwargs, **{observed: data})``; with ``observed=None`` it
            must simulate the data at the site named ``observed``.
        simulator: optional ``simulator(latents, *args) -> (args, kwargs)`` for models
            whose data cannot be drawn by running the model with the data left out
            (autoregressions, whose likelihood conditions on the series itself).
        method: the engine to calibrate; ``fit_options`` are passed to ``fit``.
        num_simulations: prior draws (each one a fit).
        num_draws: L, the posterior draws each rank is taken among (thinned evenly).

    Returns:
        An :class:`SBCResult`.
    """
    from pyrogen.fit import fit
    from pyrogen.zoo import FunctionModel

    check_positive_int(num_simulations, "num_simulations")
    check_positive_int(num_draws, "num_draws")
    check_positive_int(bins, "bins", minimum=2)
    fit_options = dict(fit_options or {})
    if method == "nuts":
        fit_options.setdefault("num_chains", 1)
        fit_options.setdefault("num_samples", 4 * num_draws)
    fit_options.setdefault("progress", False)
    tensor_args = FunctionModel(model).prepare(*args)  # the prior draws run the model under Pyro
    ranks: dict[str, list[int]] = {}
    spreads: dict[str, list[float]] = {}
    prior_values: dict[str, list[float]] = {}
    iterator = range(num_simulations)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=f"sbc {method}")
    for i in iterator:
        pyro.set_rng_seed(seed * 100_003 + i)
        latents, simulated = _prior_draw(model, tensor_args, kwargs, observed, simulator is None)
        if simulator is not None:
            call_args, call_kwargs = simulator(latents, *args)
            call_kwargs = {**kwargs, **call_kwargs}
        else:
            call_args, call_kwargs = args, {**kwargs, observed: simulated}
        result = fit(
            model, *call_args, method=method, seed=seed * 100_003 + i, **fit_options, **call_kwargs
        )
        draws = _posterior_draws(result, 4 * num_draws)
        truth = flatten_sites({k: v.cpu().numpy() for k, v in latents.items()}, 0)
        flat = flatten_sites(draws, 1)
        for name, value in truth.items():
            thinned = flat[name][np.linspace(0, len(flat[name]) - 1, num_draws).astype(int)]
            ranks.setdefault(name, []).append(int(np.sum(thinned < value)))
            spreads.setdefault(name, []).append(float(flat[name].std()))
            prior_values.setdefault(name, []).append(float(value))
    return _summarize(ranks, spreads, prior_values, num_draws, bins)


def _posterior_draws(result, num_draws: int) -> dict:
    """A fit's posterior draws, one flat sample dimension: NUTS's chains joined, or
    ``num_draws`` draws of the fitted guide."""
    from pyrogen.arviz import draws_from_guide

    if result.method == "nuts":
        return {
            k: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) for k, v in result.samples.items()
        }
    return draws_from_guide(result.model_fn, result.guide, result.args, result.kwargs, num_draws)


def _summarize(ranks, spreads, prior_values, num_draws: int, bins: int) -> SBCResult:
    """Rank histograms' chi-square p-values and posterior shrinkage per quantity."""
    from scipy import stats

    result = SBCResult({k: np.asarray(v) for k, v in ranks.items()}, num_draws, bins)
    edges = np.linspace(0, num_draws + 1, bins + 1)
    for name, r in result.ranks.items():
        counts, _ = np.histogram(r, bins=edges)
        result.pvalues[name] = float(stats.chisquare(counts).pvalue)
        prior_sd = np.std(prior_values[name])
        result.shrinkage[name] = float(np.mean(spreads[name]) / prior_sd) if prior_sd else np.nan
    return result
