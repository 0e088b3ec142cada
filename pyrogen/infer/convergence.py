r"""When stochastic optimization has converged: iterate averaging, its Monte Carlo
error, and a learning rate halved until halving no longer moves the answer (after
Dhaka et al. 2020 and Welandawe et al. 2022).

At a fixed learning rate the iterates of a stochastic optimizer never settle: they
reach a stationary cloud around the optimum and stay there, so the last iterate
carries the cloud's noise (a mean-field scale off by 5-8% on a 4-D Gaussian at
Adam's lr 0.01) and a loss that stops falling says little. The rule, run by the
shared loop on the guide's parameters (unconstrained, as Pyro optimizes them), works
in *levels*, one learning rate each:

1. **Averaging, with a warm-up.** Every step's parameters are kept (as batch means,
   merged pairwise to bound the memory). At each check (every ``check_every``
   steps) the level's last half is the sample: its mean is the Polyak-Ruppert
   average, its Monte Carlo standard error (MCSE) comes from the effective sample
   size of the kept series (Geyer's initial monotone sequence,
   :func:`pyro.ops.stats.effective_sample_size`), so the iterates' autocorrelation
   (hundreds of steps for Adam's scales) is accounted for.
2. **Stationary and precise.** The level ends when the two quarters of the sample
   agree (their means differ by less than ``tolerance`` units plus twice their
   combined MCSE: no drift left) and every coordinate's MCSE is below
   ``tolerance / 2`` units.
3. **A smaller learning rate.** The parameters are set to the average and the rate
   halved (RAABBVI decreases it once the iterates are stationary). The fit has
   converged when two successive levels' averages differ by less than ``tolerance``
   units plus twice their combined MCSE in every coordinate: halving the rate no
   longer moves the answer, so the bias a fixed rate leaves is below the accuracy
   asked for.

Units make "small" mean the same everywhere: a location of a Gaussian guide is
measured in the guide's own standard deviation for that coordinate (AutoNormal's
scales, the marginal standard deviations of a multivariate or low-rank normal
guide; a low-rank factor's rows likewise), a positive parameter relatively (a unit
is the parameter's own size), anything else in its unconstrained scale (a MAP point
has no spread to measure by). With the default ``tolerance``
0.02 the fitted means move by less than 0.02 posterior standard deviations and the
scales by less than 2% when the rate is halved, and each carries an MCSE of at most
1%.

By the Polyak-Juditsky theorem the average's error after n steps depends on the
gradients' noise, not on the learning rate, so the steps the rule needs scale with
that noise: several particles per step (vectorized, at nearly the cost of one on a
small model) cut them by about their number.

References:
    Polyak, Juditsky (1992). Acceleration of stochastic approximation by averaging.
    SIAM J. Control Optim. 30(4).
    Dhaka, Catalina, Andersen, Magnusson, Huggins, Vehtari (2020). Robust, Accurate
    Stochastic Optimization for Variational Inference. NeurIPS.
    Welandawe, Andersen, Vehtari, Huggins (2022). Robust, Automated, and Accurate
    Black-box Variational Inference (RAABBVI). arXiv:2203.15945.
"""

from __future__ import annotations

import numpy as np
import pyro
import torch
from pyro.distributions import constraints

__all__ = ["IterateAveraging", "base_lr", "mean_and_mcse", "parameter_units", "scale_lr"]


def mean_and_mcse(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean of each column of ``series`` (steps, P) and its Monte Carlo standard
    error, sd / sqrt(ESS) with the ESS of the autocorrelated series (0 for a constant
    column)."""
    mean, mcse, _ = _summary(series)
    return mean, mcse


def _summary(series: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each column's mean, MCSE and ESS (an infinite MCSE below 4 rows)."""
    mean = series.mean(0)
    if len(series) < 4:
        return mean, np.full_like(mean, np.inf), np.ones_like(mean)
    sd = series.std(0, ddof=1)
    ess = effective_sizes(series)
    return mean, np.where(sd > 0, sd / np.sqrt(ess), 0.0), ess


def effective_sizes(series: np.ndarray) -> np.ndarray:
    """Each column's effective sample size, n / tau with Geyer's (1992) initial
    monotone sequence estimate of the integrated autocorrelation time tau (as Stan,
    ArviZ and Pyro estimate it, for one chain; autocovariances by FFT); the series'
    length for a constant column."""
    n = len(series)
    centred = series - series.mean(0)
    size = 1 << int(2 * n - 1).bit_length()
    spectrum = np.fft.rfft(centred, n=size, axis=0)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=0)[:n] / n
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = acov / acov[:1]
    pairs = rho[: 2 * (n // 2) : 2] + rho[1 : 2 * (n // 2) : 2]  # Gamma_k, k = 0, 1, ...
    positive = np.cumprod(pairs > 0, axis=0).astype(bool)  # up to the first non-positive
    monotone = np.minimum.accumulate(np.where(positive, pairs, np.inf), axis=0)
    tau = -1.0 + 2.0 * np.where(positive, monotone, 0.0).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ess = n / tau
    ess = np.where(acov[0] > 0, ess, n)
    return np.nan_to_num(ess, nan=float(n), posinf=float(n)).clip(1.0, n * np.log10(max(n, 10)))


def _store_vector() -> tuple[list[str], np.ndarray]:
    state = pyro.get_param_store()._params
    names = sorted(state)
    flat = [state[n].detach().reshape(-1).double().cpu().numpy() for n in names]
    return names, (np.concatenate(flat) if flat else np.zeros(0))


def _set_store_vector(names: list[str], vector: np.ndarray) -> None:
    state = pyro.get_param_store()._params
    offset = 0
    with torch.no_grad():
        for name in names:
            value = state[name]
            size = value.numel()
            part = torch.as_tensor(vector[offset : offset + size], dtype=value.dtype)
            value.copy_(part.reshape(value.shape).to(value.device))
            offset += size


def parameter_units(guide=None) -> np.ndarray:
    """Each coordinate's unit, in the order of the parameter store's sorted names (see
    the module's docstring)."""
    store = pyro.get_param_store()
    names = sorted(store._params)
    units = {}
    for name in names:
        unconstrained = store._params[name].detach()
        constraint = store._constraints.get(name, constraints.real)
        units[name] = _own_unit(unconstrained, constraint)
    _gaussian_units(guide, names, units)
    if not units:
        return np.zeros(0)
    return np.concatenate([units[n].reshape(-1).double().cpu().numpy() for n in names])


def _own_unit(u: torch.Tensor, constraint) -> torch.Tensor:
    """For a positive parameter s = softplus(u): the change of u that moves s by its
    own size, s / softplus'(u); exp-transformed positives are relative already (1);
    any other parameter: 1, in its unconstrained scale."""
    if isinstance(constraint, type(constraints.softplus_positive)):
        return torch.nn.functional.softplus(u) / torch.sigmoid(u).clamp_min(1e-12)
    return torch.ones_like(u)


def _gaussian_units(guide, names: list[str], units: dict) -> None:
    """Locations of Gaussian autoguides (and low-rank factors' rows) in the guide's
    standard deviations."""
    if guide is None:
        return
    prefix = getattr(guide, "_pyro_name", type(guide).__name__)
    with torch.no_grad():
        for name in names:
            if name.startswith(f"{prefix}.locs."):  # AutoNormal
                scales = name.replace(".locs.", ".scales.", 1)
                if scales in names:
                    units[name] = pyro.param(scales).detach().abs().clamp_min(1e-12)
        loc = f"{prefix}.loc"
        if loc in names and hasattr(guide, "get_posterior"):
            try:
                sd = guide.get_posterior().variance.sqrt().detach().clamp_min(1e-12)
            except (NotImplementedError, AttributeError, RuntimeError, TypeError):
                return
            units[loc] = sd.expand(units[loc].shape)
            tril = f"{prefix}.scale_tril"
            if tril in names:  # AutoMultivariateNormal's unit lower-triangular factor L:
                # a change of L[i, j] moves the marginal sd of i by its share of L's row
                # norm, so a row is measured in its norm (1 where coordinates are
                # independent, large where a coordinate is a near copy of others)
                rows = pyro.param(tril).detach().norm(dim=-1, keepdim=True)
                units[tril] = rows.expand(units[tril].shape).clamp_min(1e-12)
            factor = f"{prefix}.cov_factor"
            if factor in names:  # AutoLowRankMultivariateNormal's rows
                units[factor] = sd[:, None].expand(units[factor].shape)


def base_lr(optim) -> float | None:
    """The learning rate ``optim`` was made with (None if it has no single one)."""
    args = getattr(optim, "pt_optim_args", None)
    return float(args["lr"]) if isinstance(args, dict) and "lr" in args else None


def scale_lr(optim, base: float | None, factor: float) -> None:
    """Set the learning rate of ``optim`` (pyrogen's shared Adam or any
    ``pyro.optim.PyroOptim`` made with a dict of arguments) to ``base * factor``, for
    the parameters it steps now and those it meets later."""
    if base is None:
        return
    lr = base * factor
    if hasattr(optim, "set_lr"):  # pyrogen's SharedAdam
        optim.set_lr(lr)
        return
    optim.pt_optim_args["lr"] = lr
    for inner in getattr(optim, "optim_objs", {}).values():
        for group in inner.param_groups:
            group["lr"] = lr


class IterateAveraging:
    """The convergence rule of the module docstring, as a callback of the shared loop
    (``callback(step, loss) -> stop``) with ``state_dict`` / ``load_state_dict`` (a
    checkpoint holds it). ``optim`` is the run's optimizer (its rate is halved, which
    needs a single learning rate: ``base_lr(optim)`` not None), ``guide`` gives the
    units. After the loop :meth:`finish` leaves the parameters at the latest average
    and ``converged`` says whether the rule was met."""

    def __init__(
        self,
        optim,
        guide=None,
        *,
        tolerance: float = 0.02,
        check_every: int = 100,
        lr_decay: float = 0.5,
        min_ess: float = 10.0,
        memory: int = 1024,
    ):
        if not 0 < lr_decay < 1:
            raise ValueError(f"lr_decay: must be in (0, 1), got {lr_decay}")
        self.optim, self.guide, self.base_lr = optim, guide, base_lr(optim)
        self.tolerance, self.check_every, self.lr_decay = tolerance, check_every, lr_decay
        self.memory, self.min_ess = memory, min_ess
        self.level, self.lr_factor, self.converged = 0, 1.0, False
        self.previous: tuple[np.ndarray, np.ndarray] | None = None
        self.latest: tuple[np.ndarray, np.ndarray] | None = None
        self.drifting = True  # the last check saw the sample's halves disagree
        self.history: list[dict] = []  # one row per finished level
        self.names: list[str] = []
        self.pending_lr = 1.0  # a resumed run's rate factor, applied at the next step
        self._clear()

    def _clear(self) -> None:
        self.steps = 0  # in this level
        self.batch = 1  # steps per stored batch mean
        self.batches: list[np.ndarray] = []
        self.partial, self.partial_count = None, 0

    def __call__(self, step: int, loss: float) -> bool:
        if self.pending_lr != 1.0:
            scale_lr(self.optim, self.base_lr, self.pending_lr)
            self.pending_lr = 1.0
        self.names, x = _store_vector()
        self._record(x)
        if self.steps < 2 * self.check_every or self.steps % self.check_every:
            return False
        return self._check()

    def _record(self, x: np.ndarray) -> None:
        self.steps += 1
        self.partial = x if self.partial is None else self.partial + x  # x is a new array
        self.partial_count += 1
        if self.partial_count < self.batch:
            return
        self.batches.append(self.partial / self.batch)
        self.partial, self.partial_count = None, 0
        limit = max(32, min(self.memory, 2**22 // max(1, x.size)))
        if len(self.batches) >= 2 * limit:  # merge pairs: the same means, half the rows
            pairs = np.stack(self.batches[: 2 * (len(self.batches) // 2)])
            self.batches = list(0.5 * (pairs[0::2] + pairs[1::2]))
            self.batch *= 2

    def sample(self) -> np.ndarray:
        """This level's kept iterates: the last half of its stored batch means."""
        series = np.stack(self.batches)
        return series[len(series) // 2 :]

    def _check(self) -> bool:
        kept = self.sample()
        if len(kept) < 8:
            return False
        half = len(kept) // 2
        mean_a, mcse_a = mean_and_mcse(kept[:half])
        mean_b, mcse_b = mean_and_mcse(kept[half:])
        average, mcse, ess = _summary(kept)
        units = parameter_units(self.guide)
        if units.shape != average.shape:  # parameters appeared: start the level again
            self._clear()
            return False
        drift = np.abs(mean_a - mean_b) <= self.tolerance * units + 2 * np.hypot(mcse_a, mcse_b)
        # an MCSE is only as good as its ESS: a sample shorter than a few dozen
        # autocorrelation times understates it
        precise = (mcse <= self.tolerance / 2 * units) & ((ess >= self.min_ess) | (mcse == 0))
        self.latest, self.drifting = (average, mcse), not drift.all()
        if not (drift.all() and precise.all()):
            return False
        return self._end_level(average, mcse, units)

    def _end_level(self, average: np.ndarray, mcse: np.ndarray, units: np.ndarray) -> bool:
        _set_store_vector(self.names, average)
        moved = None
        if self.previous is not None and self.previous[0].shape == average.shape:
            before, before_mcse = self.previous
            moved = float(np.max(np.abs(average - before) / units))
            allowed = self.tolerance * units + 2 * np.hypot(mcse, before_mcse)
            self.converged = bool(np.all(np.abs(average - before) <= allowed))
        self.history.append(
            {
                "level": self.level,
                "lr_factor": self.lr_factor,
                "steps": self.steps,
                "max_mcse": float(np.max(mcse / units)) if mcse.size else 0.0,
                "max_move": moved,
            }
        )
        if self.converged:
            return True
        self.previous = (average, mcse)
        self.latest = None
        self.lr_factor *= self.lr_decay
        scale_lr(self.optim, self.base_lr, self.lr_factor)
        self.level += 1
        self._clear()
        return False

    def outcome(self) -> str:
        """What the run reached and what the parameters are, for a budget that ran out."""
        if self.level:
            return (
                "the iterates were averaged, but the answer still moved when the learning "
                "rate was halved; the parameters are the latest average"
            )
        if self.latest is not None and self.drifting:
            return "the iterates were still drifting; the parameters are the last iterate"
        if self.latest is not None:
            return (
                "the averaged iterates did not reach the asked accuracy; the parameters are "
                "their running average"
            )
        return "the iterates were never averaged; the parameters are the last iterate"

    def finish(self) -> None:
        """After the loop: where the budget ran out within a level whose iterates had
        stopped drifting, the parameters at its running average (closer than the last
        iterate); while they still drift, the last iterate (the average lags)."""
        if not self.converged and self.latest is not None and not self.drifting:
            _set_store_vector(self.names, self.latest[0])

    def state_dict(self) -> dict:
        return {
            "level": self.level,
            "lr_factor": self.lr_factor,
            "converged": self.converged,
            "previous": self.previous,
            "latest": self.latest,
            "drifting": self.drifting,
            "history": list(self.history),
            "names": list(self.names),
            "steps": self.steps,
            "batch": self.batch,
            "batches": np.stack(self.batches) if self.batches else None,
            "partial": (self.partial, self.partial_count),
        }

    def load_state_dict(self, state: dict) -> None:
        self.level, self.lr_factor = state["level"], state["lr_factor"]
        self.converged, self.previous = state["converged"], state["previous"]
        self.latest, self.history = state["latest"], list(state["history"])
        self.drifting = state["drifting"]
        self.names, self.steps, self.batch = list(state["names"]), state["steps"], state["batch"]
        batches = state["batches"]
        self.batches = [] if batches is None else list(batches)
        self.partial, self.partial_count = state["partial"]
        self.pending_lr = self.lr_factor  # the optimizer is rebuilt at the base rate
