"""Do two sets of posterior draws agree? Cross-checks between backends and references.

Each scalar component of each site is compared by its mean and sd; a difference is
measured in units of the combined Monte Carlo standard error,
``z = (m_a - m_b) / sqrt(mcse_a^2 + mcse_b^2)``, so the verdict accounts for how many
effective draws each side has. R-hat and bulk ESS of each side are checked too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Comparison",
    "check_posteriordb",
    "compare_draws",
    "compare_to_reference",
    "crosscheck",
    "guide_against_reference",
    "posteriordb_arguments",
    "stan_data_types",
]


@dataclass
class Comparison:
    rows: list[dict]
    labels: tuple[str, str]
    z_threshold: float
    passed: bool
    fits: dict = field(default_factory=dict)

    def to_dataframe(self):
        import pandas as pd

        return pd.DataFrame(self.rows).set_index("parameter")

    def __str__(self) -> str:
        a, b = self.labels
        columns = [
            "mean " + a,
            "mean " + b,
            "sd " + a,
            "sd " + b,
            "z mean",
            "z sd",
            "rhat " + a,
            "rhat " + b,
            "ess " + a,
            "ess " + b,
        ]
        width = max(9, *(len(c) + 2 for c in columns))
        header = f"{'parameter':<16}" + "".join(f"{c:>{width}}" for c in columns) + "  ok"
        lines = [header]
        for r in self.rows:
            values = [
                r["mean_" + a],
                r["mean_" + b],
                r["sd_" + a],
                r["sd_" + b],
                r["z_mean"],
                r["z_sd"],
                r["rhat_" + a],
                r["rhat_" + b],
                r["ess_" + a],
                r["ess_" + b],
            ]
            formats = [".4f"] * 4 + [".2f"] * 2 + [".3f"] * 2 + [".0f"] * 2
            cells = "".join(f"{v:>{width}{f}}" for v, f in zip(values, formats))
            lines.append(f"{r['parameter']:<16}{cells}  {'yes' if r['ok'] else 'NO'}")
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(
            f"{verdict}: |z| < {self.z_threshold} for every mean and sd, R-hat and ESS checked"
        )
        return "\n".join(lines)


def flatten_sites(draws: dict[str, np.ndarray], leading: int = 2) -> dict[str, np.ndarray]:
    """site -> (*leading dims, *shape) becomes 'site[i,j]' -> (*leading dims): one entry
    per scalar component (``leading`` is 2 for (chain, draw), 1 for draws, 0 for values)."""
    out = {}
    for name, value in draws.items():
        value = np.asarray(value, dtype=float)
        shape = value.shape[leading:]
        if not shape:
            out[name] = value
            continue
        for index in np.ndindex(*shape):
            out[f"{name}[{','.join(map(str, index))}]"] = value[(Ellipsis, *index)]
    return out


def _stats(draws: np.ndarray) -> dict[str, float]:
    import arviz as az

    return {
        "mean": float(draws.mean()),
        "sd": float(draws.std(ddof=1)),
        "mcse_mean": float(az.mcse(draws, method="mean")),
        "mcse_sd": float(az.mcse(draws, method="sd")),
        "ess": float(az.ess(draws, method="bulk")),
        "rhat": float(az.rhat(draws)) if draws.shape[0] > 1 else float("nan"),
    }


def compare_draws(
    a: dict[str, np.ndarray],
    b: dict[str, np.ndarray],
    *,
    labels: tuple[str, str] = ("a", "b"),
    z_threshold: float = 4.0,
    max_rhat: float = 1.05,
    min_ess: float = 100.0,
    sites: list[str] | None = None,
) -> Comparison:
    """Compare draws site by site; arrays are (chain, draw, *site_shape)."""
    sites = sites or [s for s in a if s in b]
    missing = [s for s in sites if s not in a or s not in b]
    if missing:
        raise KeyError(f"sites: {missing} are not in both sets of draws")
    flat_a = flatten_sites({s: a[s] for s in sites})
    flat_b = flatten_sites({s: b[s] for s in sites})
    rows, la, lb = [], *labels
    for name in flat_a:
        sa, sb = _stats(flat_a[name]), _stats(flat_b[name])
        z_mean = (sa["mean"] - sb["mean"]) / np.hypot(sa["mcse_mean"], sb["mcse_mean"])
        z_sd = (sa["sd"] - sb["sd"]) / np.hypot(sa["mcse_sd"], sb["mcse_sd"])
        healthy = all(
            (np.isnan(s["rhat"]) or s["rhat"] < max_rhat) and s["ess"] > min_ess for s in (sa, sb)
        )
        ok = bool(abs(z_mean) < z_threshold and abs(z_sd) < z_threshold and healthy)
        row = {"parameter": name}
        for label, s in ((la, sa), (lb, sb)):
            row.update({f"{k}_{label}": v for k, v in s.items()})
        row.update(z_mean=float(z_mean), z_sd=float(z_sd), ok=ok)
        rows.append(row)
    return Comparison(rows, (la, lb), z_threshold, all(r["ok"] for r in rows))


def crosscheck(
    model,
    *args,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 4,
    seed: int = 0,
    z_threshold: float = 4.0,
    progress: bool = False,
    transform=None,
    **kwargs,
) -> Comparison:
    """Run a pyroapi model under Pyro NUTS and NumPyro NUTS and compare the posteriors.

    ``transform`` maps a dict of draws (site -> (chain, draw, ...)) to the quantities
    to compare, for models whose raw sites are not identified (label or sign
    switching): compare what the data determine."""
    from pyrogen.fit import fit

    fits = {}
    for backend in ("pyro", "numpyro"):
        fits[backend] = fit(
            model,
            *args,
            method="nuts",
            backend=backend,
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            seed=seed,
            progress=progress,
            **kwargs,
        )
    transform = transform or (lambda draws: draws)
    comparison = compare_draws(
        transform(fits["pyro"].samples),
        transform(fits["numpyro"].samples),
        labels=("pyro", "numpyro"),
        z_threshold=z_threshold,
    )
    comparison.fits = fits
    return comparison


def compare_to_reference(
    samples: dict[str, np.ndarray], reference, *, z_threshold: float = 4.0, label: str = "pyrogen"
) -> Comparison:
    """Compare draws with posteriordb's Stan reference draws (``pyrogen.data.PosteriorDB``).

    Sites are matched by Stan's names: ``mu`` here is ``mu[1]``, ``mu[2]`` there."""
    sites = [
        s
        for s in samples
        if any(n == s or n.startswith(s + "[") for n in reference.reference_draws)
    ]
    ref = {s: reference.reference(s) for s in sites}
    ours = {
        s: np.asarray(samples[s]).reshape(ref[s].shape[:0] + np.shape(samples[s])) for s in sites
    }
    return compare_draws(ours, ref, labels=(label, "stan"), z_threshold=z_threshold, sites=sites)


def posteriordb_arguments(model, data: dict, stan_code: str | None = None) -> dict:
    """posteriordb's data as keyword arguments of ``model``: the entries its signature
    names (every entry where it takes ``**kwargs``; Stan's sizes such as ``N`` are
    often left to the arrays), lists as tensors, scalars as they are. A list is int64
    where the Stan program (``stan_code``) declares it ``int``, float64 where it
    declares it real (``real``, ``vector``, ``matrix``...) even if every value is a
    whole number (eight schools' effects, a GP's inputs -10, -8, ..., 10: as int64
    they left an SVI fit in float32, where a GP's 1e-10 jitter is nothing); without a
    program, int64 where every value is an integer."""
    import inspect

    import torch

    declared = stan_data_types(stan_code) if stan_code else {}
    parameters = inspect.signature(model).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    out = {}
    for key, value in data.items():
        if not takes_all and key not in parameters:
            continue
        if isinstance(value, list):
            array = np.asarray(value)
            integral = declared.get(
                key, "int" if np.issubdtype(array.dtype, np.integer) else "real"
            )
            value = torch.as_tensor(
                array, dtype=torch.int64 if integral == "int" else torch.float64
            )
        out[key] = value
    return out


def stan_data_types(stan_code: str) -> dict[str, str]:
    """The variables of a Stan program's ``data`` block, each ``"int"`` or ``"real"``
    (``vector``, ``row_vector``, ``matrix`` and ``simplex`` types are real), in both
    array syntaxes (``array[N] int y;`` and the older ``int y[N];``)."""
    import re

    block = re.search(r"\bdata\s*\{", stan_code)
    if block is None:
        return {}
    depth, start = 1, block.end()
    for end in range(start, len(stan_code)):
        depth += {"{": 1, "}": -1}.get(stan_code[end], 0)
        if depth == 0:
            break
    body = re.sub(r"//[^\n]*|/\*.*?\*/|#[^\n]*", "", stan_code[start:end], flags=re.S)
    types = {}
    for statement in body.split(";"):
        statement = " ".join(statement.split())
        if not statement:
            continue
        # drop bounds and sizes (<lower=0>, [N], [N, K]) nested brackets included
        plain = statement
        while True:
            stripped = re.sub(r"<[^<>]*>|\[[^\[\]]*\]", "", plain)
            if stripped == plain:
                break
            plain = stripped
        words = plain.replace("array", "").split()
        if len(words) < 2:
            continue
        kind, name = words[0], words[-1]
        types[name] = "int" if kind == "int" else "real"
    return types


def guide_against_reference(fit, reference, sites, num_samples: int = 4000) -> list[dict]:
    """An SVI fit's guide against Stan's reference draws, a row per scalar parameter of
    ``sites`` (those the guide's draws hold): ``mean_z``, the mean's error in reference
    sds, and ``sd_ratio``, the guide's sd over the reference's."""
    posterior = fit.to_arviz(num_samples=num_samples, log_likelihood=False).posterior
    shapes = {s: reference.reference(s).shape[2:] for s in sites if s in posterior}
    # a guide's draws may carry a broadcast batch dimension of size 1
    ours = flatten_sites(
        {s: posterior[s].values.reshape(1, -1, *shape) for s, shape in shapes.items()}
    )
    stan = flatten_sites({s: reference.reference(s) for s in shapes})
    return [
        {
            "parameter": name,
            "mean_z": float((draws.mean() - stan[name].mean()) / stan[name].std()),
            "sd_ratio": float(draws.std() / stan[name].std()),
        }
        for name, draws in ours.items()
    ]


def check_posteriordb(
    model,
    reference,
    *,
    guides: tuple[str, ...] = (),
    num_warmup: int = 1000,
    num_samples: int = 1000,
    num_chains: int = 4,
    num_steps: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[Comparison, list[dict]]:
    """NUTS on ``model`` (called with posteriordb's data by keyword) against Stan's
    reference draws, and each SVI guide's standard deviations as ratios of the
    reference's: ``(comparison, rows)``, a row per guide and parameter, with whether
    the guide's fit converged (without ``num_steps`` SVI runs until its convergence
    rule is met or says it was not)."""
    import pyrogen

    kwargs = posteriordb_arguments(model, reference.data, reference.stan_code)
    options = dict(num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains)
    nuts = pyrogen.fit(model, method="nuts", seed=seed, progress=progress, **options, **kwargs)
    comparison = compare_to_reference(nuts.samples, reference, label="nuts")
    comparison.fits["nuts"] = nuts
    sites = sorted({r["parameter"].split("[")[0] for r in comparison.rows})
    rows = []
    for guide in guides:
        fit = pyrogen.fit(
            model, guide=guide, num_steps=num_steps, seed=seed, progress=progress, **kwargs
        )
        for row in guide_against_reference(fit, reference, sites):
            rows.append({"guide": guide, **row, "converged": fit.converged})
    return comparison, rows
