"""Stan reference draws for posteriordb posteriors, made with PyStan by posteriordb's own
protocol, written into a posteriordb checkout's layout.

posteriordb's reference draws are Stan NUTS runs: 10 chains, 10,000 warm-up and
10,000 kept iterations thinned by 10 (1,000 draws a chain; ``arK`` and a few others
use 20,000 warm-up). This script makes the same kind of draws for a posterior whose
data and Stan program are in a checkout (or a folder with the checkout's layout) but
whose reference draws are not, for example where the checkout's zipped draws cannot be
fetched, or where posteriordb has none (``GLM_Poisson_Data-GLM_Poisson_model``).
``bench/posteriordb.py`` and :func:`pyrogen.data.load_posteriordb` then read them
like posteriordb's own.

    pip install pystan   # Stan 2.3x and a C++ compiler; not a pyrogen dependency
    python bench/_stan_reference.py arma-arma11 garch-garch11 --path ~/posteriordb

Writes ``reference_posteriors/draws/draws/NAME.json.zip`` (a list of chains, each a
dict from Stan's flat names, ``theta[1]``, to its draws) and
``reference_posteriors/draws/info/NAME.info.json`` (the arguments, Stan's version and
the checks posteriordb makes: R-hat < 1.01, bulk ESS; divergences reported), each atomically.
A posterior that already has draws is left alone unless ``--force``. A run whose
checks fail is reported and written with ``"checks_passed": false`` in its info file
so that nobody mistakes it for a reference.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np


def posterior_root(path: str) -> Path:
    folder = Path(path).expanduser()
    for candidate in (folder / "posterior_database", folder):
        if (candidate / "posteriors").is_dir():
            return candidate
    raise SystemExit(
        f"--path: {str(folder)!r} has no posteriors/ folder (not a posteriordb checkout)"
    )


def read_zip_json(path: Path):
    with zipfile.ZipFile(path) as archive:
        (member,) = archive.namelist()
        return json.loads(archive.read(member))


def atomic_bytes(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def flat_chains(fit, num_chains: int) -> list[dict[str, list[float]]]:
    """PyStan's draws as posteriordb stores them: one dict a chain, Stan's flat names in
    Stan's (column-major) order."""
    chains: list[dict[str, list[float]]] = [{} for _ in range(num_chains)]
    for name, dims in zip(fit.param_names, fit.dims):
        values = np.asarray(fit[name])  # (*dims, draws * chains), draw-major
        values = values.reshape(*dims, -1, num_chains)
        for index in np.ndindex(*dims) if dims else [()]:
            label = name + ("[" + ",".join(str(i + 1) for i in index) + "]" if dims else "")
            series = values[index]  # (draws, chains)
            for c in range(num_chains):
                chains[c][label] = series[:, c].tolist()
    return chains


def rank_normalized_rhat_and_ess(draws: np.ndarray) -> tuple[float, float]:
    """(R-hat, bulk ESS) of one quantity's (chain, draw) array, as ArviZ computes them."""
    import arviz as az

    return float(az.rhat(draws)), float(az.ess(draws, method="bulk"))


def make_reference(root: Path, name: str, args) -> dict:
    import stan

    info = json.loads((root / "posteriors" / f"{name}.json").read_text())
    draws_file = root / "reference_posteriors" / "draws" / "draws" / f"{name}.json.zip"
    if draws_file.exists() and not args.force:
        return {"posterior": name, "skipped": "has reference draws (--force to remake)"}
    data = read_zip_json(root / "data" / "data" / f"{info['data_name']}.json.zip")
    code = (root / "models" / "stan" / f"{info['model_name']}.stan").read_text()
    start = time.perf_counter()
    program = stan.build(code, data=data, random_seed=args.seed)
    built = time.perf_counter() - start
    fit = program.sample(
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_samples=args.draws,
        num_thin=args.thin,
        delta=args.adapt_delta,
    )
    sampled = time.perf_counter() - start - built
    chains = flat_chains(fit, args.chains)
    divergent = np.asarray(fit["divergent__"]).reshape(-1, args.chains).sum(axis=0)
    checks = {}
    for label in chains[0]:
        array = np.array([chain[label] for chain in chains])
        if np.ptp(array) == 0:  # a constant (e.g. a fixed transformed parameter)
            continue
        checks[label] = rank_normalized_rhat_and_ess(array)
    worst_rhat = max(r for r, _ in checks.values())
    least_ess = min(e for _, e in checks.values())
    # posteriordb's checks (R-hat, ESS); divergences are reported, as posteriordb does
    passed = worst_rhat < 1.01 and least_ess > 400
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{name}.json", json.dumps(chains))
    atomic_bytes(draws_file, buffer.getvalue())
    record = {
        "name": name,
        "inference_method": "stan_sampling",
        "inference_method_arguments": {
            "chains": args.chains,
            "iter": args.warmup + args.draws,
            "warmup": args.warmup,
            "thin": args.thin,
            "seed": args.seed,
            "control": {"adapt_delta": args.adapt_delta},
        },
        "inference_version": f"pystan {stan.__version__}",
        "made_by": "pyrogen bench/_stan_reference.py",
        "diagnostics": {
            "worst_rhat": worst_rhat,
            "least_bulk_ess": least_ess,
            "divergent_transitions": divergent.astype(int).tolist(),
        },
        "checks_passed": passed,
    }
    info_file = root / "reference_posteriors" / "draws" / "info" / f"{name}.info.json"
    atomic_bytes(info_file, json.dumps(record, indent=2).encode())
    return {
        "posterior": name,
        "build_s": round(built, 1),
        "sample_s": round(sampled, 1),
        "worst_rhat": round(worst_rhat, 4),
        "least_bulk_ess": round(least_ess),
        "divergent": int(divergent.sum()),
        "checks_passed": passed,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("posteriors", nargs="+", help="posteriordb posterior names")
    parser.add_argument("--path", default=os.environ.get("POSTERIORDB_PATH"), required=False)
    parser.add_argument("--chains", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=10_000)
    parser.add_argument("--draws", type=int, default=10_000, help="iterations kept before thinning")
    parser.add_argument("--thin", type=int, default=10)
    parser.add_argument("--seed", type=int, default=4711)
    parser.add_argument("--adapt-delta", type=float, default=0.95)
    parser.add_argument("--force", action="store_true", help="remake existing reference draws")
    args = parser.parse_args(argv)
    if not args.path:
        parser.error("--path (or POSTERIORDB_PATH): a posteriordb checkout is needed")
    root = posterior_root(args.path)
    failed = 0
    for name in args.posteriors:
        result = make_reference(root, name, args)
        failed += result.get("checks_passed") is False
        print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
