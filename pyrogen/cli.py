"""The ``pyrogen`` command.

pyrogen zoo                              list the models, one line each
pyrogen data                             list the data sets
pyrogen fit NAME [options]               fit any zoo model; write metrics.json, the model
                                         (model.pt) or its InferenceData, and pictures
pyrogen fit NAME --help                  NAME's options: its constructor's arguments as
                                         flags (--hidden 30 20), --set KEY=VALUE, the
                                         engine's options
pyrogen crosscheck mixture-1d            Pyro NUTS vs NumPyro NUTS vs Stan's reference
pyrogen compare-inference regression|ar  every guide against NUTS on one model
pyrogen check-posteriordb NAME [--model MODULE:FUNCTION] [--path CHECKOUT] [--guides ...]
                                         your pyro-api model against posteriordb's draws

Which data, defaults and report a model gets is declared by the model class (see
:mod:`pyrogen.runs`): nothing here names a model.
"""

from __future__ import annotations

import argparse
import ast
import sys
import warnings
from pathlib import Path

import numpy as np

__all__ = ["main"]

# the command's own options: a config field of the same name is set with --set
_RUN_FLAGS = {
    "data": dict(help="a data set name or a CSV path (the model's default if left out)"),
    "columns": dict(help="comma-separated CSV columns to use (default: all)"),
    "method": dict(choices=["em", "mle", "map", "svi", "nuts", "adversarial"], help="the engine"),
    "num_steps": dict(type=int, help="SVI/MAP/MLE/EM steps (instead of epochs)"),
    "lr": dict(type=float, help="learning rate (network models 1e-3, others 0.05)"),
    "loss": dict(help="the ELBO: trace, mean_field, enum, iwae; adversarial: ns, wgan-gp, hinge"),
    "critic_steps": dict(type=int, help="adversarial: critic updates per generator update"),
    "critic_lr": dict(type=float, help="adversarial: the critic's learning rate"),
    "instance_noise": dict(
        type=float, help="adversarial: sd of the noise on the critic's inputs, falling to 0"
    ),
    "guide": dict(help="SVI's guide: mean_field, full_rank, low_rank, flow, spline, delta"),
    "epochs": dict(type=int, help="passes over the data (network models; default 10)"),
    "batch_size": dict(type=int, help="minibatch size (network models; default 128)"),
    "num_warmup": dict(type=int, default=500, help="NUTS"),
    "num_samples": dict(type=int, default=500, help="NUTS draws per chain"),
    "num_chains": dict(type=int, default=4, help="NUTS"),
    "chain_method": dict(
        choices=["auto", "parallel", "sequential", "vectorized"],
        default="auto",
        help="NUTS: parallel runs a chain per device (NumPyro) or process (Pyro)",
    ),
    "seed": dict(type=int, default=0),
    "strategy": dict(
        choices=["ddp", "ddp_spawn", "ddp_notebook"],
        help="SVI/MAP/MLE across processes on PyTorch Lightning (ddp: one process per "
        "device, this command run once per rank; also under torchrun)",
    ),
    "devices": dict(type=int, help="--strategy: processes (CPU) or GPUs per machine"),
    "num_nodes": dict(type=int, default=1, help="--strategy: machines"),
    "device": dict(help="cpu or cuda (default cpu)"),
    "checkpoint": dict(help="resume from / save to this file"),
    "trust_checkpoint": dict(
        action="store_true", help="also read pickled checkpoints of pyrogen's format 1"
    ),
    "out": dict(help="output folder (default runs/NAME)"),
    "train_size": dict(type=int, help="the first N training examples"),
    "eval_size": dict(type=int, default=1000, help="test examples scored"),
    "length": dict(type=int, default=128, help="--data characters: sequence length"),
    "samples": dict(
        type=int, help="draws shown (images, text); default up to 16 in training's time"
    ),
}


def _literal(text: str):
    """A flag's value: a Python literal (3, 0.5, None, [1, 2], {"a": 1}) or the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _model_flags(cls) -> dict[str, tuple[str, dict]]:
    """flag -> (config field, argparse options) from the constructor's signature, plus
    the model's short aliases; fields the data set (data_shape) or that share a name
    with the command's options (seed) are left to --set."""
    import dataclasses

    flags = {}
    for item in dataclasses.fields(cls.Config):
        if item.name == "data_shape" or item.name in _RUN_FLAGS:
            continue
        default = item.default_factory() if callable(item.default_factory) else None
        if isinstance(default, bool):
            options = dict(action=argparse.BooleanOptionalAction)
        elif isinstance(default, (list, tuple)):
            options = dict(nargs="+", type=_literal)
        else:
            options = dict(type=_literal)
        options["help"] = f"{cls.__name__}'s {item.name} (default {default!r})"
        flags[item.name.replace("_", "-")] = (item.name, options)
    for alias, name in getattr(cls, "cli_aliases", {}).items():
        flag = name.replace("_", "-")
        if flag in flags:
            flags[alias] = (name, {**flags[flag][1], "help": f"= --{flag}"})
    return flags


def _fit_parser(parser: argparse.ArgumentParser, name: str | None) -> None:
    from pyrogen.zoo import ZOO, get_model_class

    get_model_class("gmm")  # fills the registry
    parser.add_argument("model", choices=sorted(ZOO), metavar="NAME", help="a zoo model")
    for flag, options in _RUN_FLAGS.items():
        parser.add_argument("--" + flag.replace("_", "-"), dest=flag, **options)
    parser.add_argument(
        "--num-samples-iwae",
        dest="iwae_samples",
        type=int,
        default=1000,
        help="VAEs: importance samples K for log p(x) (the literature uses 5000)",
    )
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a constructor argument of the model (any config field)",
    )
    if name in ZOO:
        group = parser.add_argument_group(f"{name} ({ZOO[name].__name__}) options")
        for flag, (field, options) in _model_flags(ZOO[name]).items():
            group.add_argument("--" + flag, dest="cfg_" + field, default=None, **options)


def _model_config(cls, args) -> dict:
    """The config values given by flags and --set, checked against the config's fields."""
    import dataclasses

    fields = [f.name for f in dataclasses.fields(cls.Config)]
    config = {
        key[4:]: value
        for key, value in vars(args).items()
        if key.startswith("cfg_") and value is not None
    }
    for setting in args.settings:
        key, sep, value = setting.partition("=")
        if not sep or key not in fields:
            raise SystemExit(
                f"pyrogen: --set {setting}: expected KEY=VALUE with KEY one of {', '.join(fields)}"
            )
        config[key] = _literal(value)
    return config


def _unknown_flag(name: str, extras: list[str]) -> SystemExit:
    from pyrogen.zoo import ZOO

    flag = extras[0]
    takers = [other for other, cls in sorted(ZOO.items()) if flag.lstrip("-") in _model_flags(cls)]
    where = f" (models that take it: {', '.join(takers)})" if takers else ""
    return SystemExit(
        f"pyrogen: {flag} is not an option of {name}{where}; see pyrogen fit {name} --help"
    )


def _fit(args) -> int:
    from pyrogen.runs import RunError, execute, json_text
    from pyrogen.zoo import get_model_class

    if args.samples is not None and args.samples < 1:
        raise SystemExit(f"pyrogen: --samples must be positive, got {args.samples}")
    args.config = _model_config(get_model_class(args.model), args)
    try:
        run = execute(args.model, args)
    except RunError as error:
        raise SystemExit(f"pyrogen: {error}") from None
    if run is None:  # a rank above 0 of a distributed fit: rank 0 reports
        return 0
    scalars = {k: v for k, v in run.metrics.items() if not isinstance(v, (list, dict))}
    print(json_text(scalars))
    print(f"wrote {run.out}/metrics.json, {run.written} and plots")
    return 0


def _zoo() -> int:
    from pyrogen.zoo import ZOO, get_model_class, summary, supported_methods

    get_model_class("gmm")  # imports the zoo
    for name, cls in sorted(ZOO.items()):
        methods = ", ".join(supported_methods(cls))
        print(f"{name:<16}{cls.__module__}.{cls.__name__} [{methods}]: {summary(cls)}")
    return 0


def _import_function(spec: str):
    """``module:function`` or ``path/to/file.py:function``."""
    import importlib
    import importlib.util

    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name:
        raise SystemExit(f"pyrogen: --model {spec}: expected MODULE:FUNCTION or FILE.py:FUNCTION")
    try:
        if where.endswith(".py"):
            loader = importlib.util.spec_from_file_location(Path(where).stem, where)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
        return getattr(module, name)
    except (ImportError, FileNotFoundError, AttributeError) as error:
        raise SystemExit(f"pyrogen: --model {spec}: {error}") from None


def _check_posteriordb(args) -> int:
    import pyrogen
    from pyrogen.diagnostics import check_posteriordb

    try:
        reference = pyrogen.data.load_posteriordb(args.name, path=args.path)
    except ValueError as error:
        raise SystemExit(f"pyrogen: {error}") from None
    if args.model is not None:
        model = _import_function(args.model)
    else:
        from pyrogen.models.posteriordb import POSTERIORS

        if reference.name not in POSTERIORS:
            known = ", ".join(sorted(POSTERIORS))
            raise SystemExit(
                f"pyrogen: --model: pyrogen has no model of {reference.name}; give yours "
                f"(MODULE:FUNCTION), or name one of {known}"
            )
        model = POSTERIORS[reference.name]
    comparison, rows = check_posteriordb(
        model,
        reference,
        guides=tuple(args.guides),
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        num_chains=args.num_chains,
        num_steps=args.num_steps,
        seed=args.seed,
    )
    print(f"NUTS ({comparison.fits['nuts'].backend}) against Stan's reference, {reference.name}")
    print(comparison)
    if rows:
        print(f"\n{'guide':<12}{'parameter':<16}{'mean z':>10}{'sd ratio':>10}{'converged':>11}")
        for row in rows:
            print(
                f"{row['guide']:<12}{row['parameter']:<16}{row['mean_z']:>10.2f}"
                f"{row['sd_ratio']:>10.3f}{str(row['converged']):>11}"
            )
    return 0 if comparison.passed else 1


def _crosscheck(args) -> int:
    import torch

    import pyrogen
    from pyrogen.models import normal_mixture_1d

    if args.model != "mixture-1d":
        raise SystemExit(f"pyrogen: crosscheck knows 'mixture-1d', not {args.model!r}")
    torch.set_default_dtype(torch.float64)
    reference = pyrogen.data.load_posteriordb("low_dim_gauss_mix")
    y = np.asarray(reference.data["y"])
    comparison = pyrogen.crosscheck(
        normal_mixture_1d,
        y,
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        num_chains=args.num_chains,
        seed=args.seed,
        progress=args.progress,
    )
    print("Pyro NUTS against NumPyro NUTS, posteriordb low_dim_gauss_mix")
    print(comparison)
    ok = comparison.passed
    for backend, fitted in comparison.fits.items():
        against = pyrogen.compare_to_reference(fitted.samples, reference, label=backend)
        print(f"\n{backend} against Stan's reference draws")
        print(against)
        ok = ok and against.passed
    return 0 if ok else 1


def _compare_inference(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    import pyrogen
    from pyrogen.checkpoint import atomic_write
    from pyrogen.models import ar_model, bayesian_linear_regression, correlated_design
    from pyrogen.plots import save_figure
    from pyrogen.runs import json_text

    torch.set_default_dtype(torch.float64)
    if args.model == "regression":
        X, y, _ = correlated_design(n=50, dim=2, rho=0.95, seed=1)
        model, data, options = bayesian_linear_regression, (X, y), {}
        title = "Bayesian linear regression, predictors correlated 0.95"
    else:
        y = np.asarray(pyrogen.data.load_posteriordb("arK").data["y"], dtype=np.float64)
        model, data, options = ar_model, (y,), {"order": 5}
        title = "posteriordb arK, AR(5)"
    report = pyrogen.compare_inference(
        model,
        *data,
        num_steps=args.num_steps,
        num_samples=args.num_samples,
        seed=args.seed,
        **options,
    )
    print(title)
    print(report)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        figure, ax = plt.subplots(figsize=(6, 4.5))
        report.plot(ax=ax)
        ax.set_title(title)
        save_figure(figure, out / "overlay.png")
        plt.close(figure)
        text = json_text({"model": args.model, "rows": report.rows}, indent=2)
        atomic_write(out / "report.json", lambda handle: handle.write(text.encode() + b"\n"))
        print(f"wrote {out}/report.json and overlay.png")
    return 0


def _zoo_lines() -> str:
    from pyrogen.zoo import ZOO, get_model_class, summary

    get_model_class("gmm")
    return "\n".join(f"  {name:<16}{summary(cls)}" for name, cls in sorted(ZOO.items()))


def _parser(model: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyrogen", description="Classic generative models in Pyro"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("zoo", help="list the models")
    commands.add_parser("data", help="list the data sets")
    fit = commands.add_parser(
        "fit",
        help="fit a zoo model and write metrics, the model or InferenceData, and plots",
        epilog="models:\n" + _zoo_lines(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _fit_parser(fit, model)
    check = commands.add_parser("crosscheck", help="Pyro NUTS vs NumPyro NUTS vs posteriordb")
    check.add_argument("model", choices=["mixture-1d"])
    check.add_argument("--num-warmup", type=int, default=500)
    check.add_argument("--num-samples", type=int, default=1000)
    check.add_argument("--num-chains", type=int, default=4)
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False)
    posteriordb = commands.add_parser(
        "check-posteriordb",
        help="NUTS (and VI guides) on your pyro-api model against posteriordb's Stan draws",
    )
    posteriordb.add_argument(
        "name", help="a posterior, e.g. eight_schools-eight_schools_noncentered"
    )
    posteriordb.add_argument(
        "--model",
        help="MODULE:FUNCTION or FILE.py:FUNCTION, called with the data (default: pyrogen's "
        "own pyro-api model of the posterior, where pyrogen.models.posteriordb has one)",
    )
    posteriordb.add_argument("--path", help="a posteriordb checkout (default $POSTERIORDB_PATH)")
    posteriordb.add_argument("--guides", nargs="*", default=[], help="e.g. mean_field full_rank")
    posteriordb.add_argument("--num-warmup", type=int, default=1000)
    posteriordb.add_argument("--num-samples", type=int, default=1000)
    posteriordb.add_argument("--num-chains", type=int, default=4)
    posteriordb.add_argument(
        "--num-steps", type=int, help="SVI steps per guide (default: until the convergence rule)"
    )
    posteriordb.add_argument("--seed", type=int, default=0)
    compare = commands.add_parser(
        "compare-inference", help="every guide against NUTS on one model: one table"
    )
    compare.add_argument("model", choices=["regression", "ar"])
    compare.add_argument("--num-steps", type=int, default=2000)
    compare.add_argument("--num-samples", type=int, default=1000)
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--out", default=None, help="write report.json and overlay.png here")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # ArviZ announces its coming 1.0 refactor on import; the command's output is ours.
    warnings.filterwarnings("ignore", message="\\s*ArviZ is undergoing", category=FutureWarning)
    model = argv[1] if len(argv) > 1 and argv[0] == "fit" else None
    args, extras = _parser(model).parse_known_args(argv)
    if extras:
        if args.command == "fit":
            raise _unknown_flag(args.model, extras)
        raise SystemExit(f"pyrogen: unrecognized arguments: {' '.join(extras)}")
    if args.command == "zoo":
        return _zoo()
    if args.command == "data":
        from pyrogen.data import list_datasets

        for name, text in list_datasets().items():
            print(f"{name:<18}{text}")
        return 0
    if args.command == "fit":
        return _fit(args)
    if args.command == "compare-inference":
        return _compare_inference(args)
    if args.command == "check-posteriordb":
        return _check_posteriordb(args)
    return _crosscheck(args)


if __name__ == "__main__":
    sys.exit(main())
