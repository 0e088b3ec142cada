"""``pyrogen fit NAME``: the data a zoo model is fitted on, the fit, and its report
(``metrics.json``, the saved model or its ArviZ InferenceData, pictures), the same way
for every model of the zoo.

A model class says what it needs by class attributes, all optional:

- ``cli_data``: the data recipe, a name in :data:`DATA` (``"table"`` by default) or a
  callable ``(options) -> RunData``;
- ``cli_defaults``: values for constructor arguments the command cannot leave out
  (``{"n_components": 2}``); ``cli_aliases``: short flags (``{"components":
  "n_components"}``); ``cli_fit``: engine defaults (``{"lr": 0.05}``);
- ``cli_config(options, data)``, a classmethod: constructor arguments that depend on
  the data or the method (a prior for NUTS, the data's shape);
- ``cli_report``: a name in :data:`REPORTS` or a callable ``(run) -> None`` that adds
  the model's own metrics and figures to the run before the generic ones.

Everything else (flags from the config, engine options, scoring, loss curve, samples,
NUTS diagnostics and trace plots) is generic.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["DATA", "REPORTS", "Run", "RunData", "execute"]


class RunError(ValueError):
    """A bad command-line value: the command prints it and exits."""


@dataclass
class RunData:
    """What a recipe hands the run: ``train`` (and ``test``) arrays, what they are
    (``kind``: table, column, images, text, series), and the constructor arguments they
    imply (``config``: the data's shape, a likelihood, a number of classes)."""

    train: Any
    test: Any = None
    name: str = ""
    kind: str = "table"
    columns: list[str] | None = None
    image_shape: tuple[int, ...] | None = None
    labels: Any = None
    text: Any = None
    config: dict = field(default_factory=dict)
    log_density: Callable | None = None  # the truth's, where known: KL from it is reported


@dataclass
class Run:
    """One ``pyrogen fit``: the model, its :class:`~pyrogen.Fit`, the data and the
    report being written (metrics, figures by file name, texts by file name)."""

    name: str
    model: Any
    fit: Any
    data: RunData
    options: Any
    out: Path
    metrics: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
    texts: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # what a report computes for its pictures
    written: str = ""  # model.pt or inference_data.nc
    _idata: Any = None

    def inference_data(self):
        """The fit's InferenceData (200 guide draws after SVI), made once."""
        if self._idata is None:
            self._idata = self.fit.to_arviz(num_samples=200)
        return self._idata


# -- data recipes ------------------------------------------------------------------
def _table(options) -> RunData:
    from pyrogen import data

    spec = options.data or "old_faithful"
    if spec == "old_faithful":
        return RunData(data.load("old_faithful"), name=spec, columns=list(FAITHFUL_COLUMNS))
    if spec in data.list_datasets():
        raise RunError(f"--data {spec} is not a table of real values for this model")
    names = options.columns.split(",") if options.columns else None
    try:
        x = data.load_csv(spec, names)
    except ValueError as error:
        raise RunError(f"--data: {error}") from None
    if names is None:
        with open(spec) as handle:
            names = handle.readline().strip().split(",")
    return RunData(x, name=spec, columns=names)


FAITHFUL_COLUMNS = ("eruptions (min)", "waiting (min)")


def _column(options) -> RunData:
    table = _table(options)
    table.train, table.columns, table.kind = table.train[:, 0], table.columns[:1], "column"
    return table


def _subset(run_data: RunData, options) -> RunData:
    if options.train_size is not None:
        run_data.train = run_data.train[: options.train_size]
    if run_data.test is not None:
        run_data.test = run_data.test[: options.eval_size]
    if run_data.labels is not None:
        run_data.labels = run_data.labels[: options.eval_size]
    return run_data


def _mnist(options) -> RunData:
    from pyrogen import data

    # all images in random order (the test file's halves differ in difficulty)
    train, _, test = data.mnist_splits((50000, 0, 10000), seed=options.seed)
    return RunData(
        train, test, "binarized_mnist", "images", image_shape=(28, 28), config={"data_shape": [784]}
    )


def _binary_images(options) -> RunData:
    spec = options.data or "binarized_mnist"
    if spec == "characters":
        raise RunError(
            f"--data characters needs a sequence model ({', '.join(SEQUENCE_MODELS)}), "
            f"not {options.model}"
        )
    if spec != "binarized_mnist":
        raise RunError(f"--data {spec} is not binarized_mnist for {options.model}")
    return _subset(_mnist(options), options)


SEQUENCE_MODELS = ("wavenet", "rnn", "transformer")


def _mnist_or(options, other: str, load_other) -> RunData:
    """Binarized MNIST (the default) or the one other data set the model takes."""
    spec = options.data or "binarized_mnist"
    if spec == "binarized_mnist":
        return _subset(_mnist(options), options)
    if spec != other:
        raise RunError(f"--data {spec} is not binarized_mnist or {other} for {options.model}")
    return _subset(load_other(options), options)


def _characters(options) -> RunData:
    from pyrogen import data

    if options.length < 1:
        raise RunError(f"--length must be positive, got {options.length}")
    text = data.characters(options.length)
    config = {
        "data_shape": [options.length],
        "likelihood": "categorical",
        "num_classes": len(text.alphabet),
    }
    return RunData(text.train, text.test, "characters", "text", text=text, config=config)


def _sequences(options) -> RunData:
    return _mnist_or(options, "characters", _characters)


def _dequantized_digits(options) -> RunData:
    from pyrogen import data

    try:
        x, labels = data.dequantized_digits(options.seed)
    except ImportError as error:
        raise RunError(f"--data digits: {error}") from None
    x = torch.as_tensor(x, dtype=torch.float32)
    config = {"data_shape": [64], "likelihood": "gaussian"}
    return RunData(
        x[:1400],
        x[1400:],
        "digits",
        "images",
        image_shape=(8, 8),
        labels=labels[1400:],
        config=config,
    )


def _vae_images(options) -> RunData:
    return _mnist_or(options, "digits", _dequantized_digits)


def _digits(options) -> RunData:
    spec = options.data or "digits"
    if spec != "digits":
        raise RunError(f"--data {spec} is not digits for {options.model}")
    return _subset(_dequantized_digits(options), options)


def _images(options) -> RunData:
    """Dequantized grey images for continuous image densities: Fashion-MNIST (50,000
    training images, the 10,000 test ones) or sklearn's 8x8 digits."""
    from pyrogen import data

    spec = options.data or "fashion_mnist"
    if spec == "digits":
        digits = _dequantized_digits(options)
        digits.train, digits.test = (t.reshape(-1, 1, 8, 8) for t in (digits.train, digits.test))
        digits.config = {"data_shape": [1, 8, 8], "data_levels": 17}
        return _subset(digits, options)
    if spec != "fashion_mnist":
        raise RunError(f"--data {spec}: {options.model} takes fashion_mnist or digits")
    train, _, test = data.fashion_splits((50000, 0, 10000), seed=options.seed)
    found = RunData(
        torch.as_tensor(data.dequantize(train, seed=options.seed)),
        torch.as_tensor(data.dequantize(test, seed=options.seed + 1)),
        spec,
        "images",
        image_shape=(28, 28),
        config={"data_shape": [1, 28, 28], "data_levels": 256},
    )
    return _subset(found, options)


def _series(options) -> RunData:
    from pyrogen import data

    spec = options.data or options.default_data or "arK"
    if spec == "sunspots":
        y = data.load("sunspots")
    elif spec.endswith(".csv"):
        y = _column(options).train
    else:
        try:
            y = np.asarray(data.load_posteriordb(spec).data["y"], dtype=np.float64)
        except (ValueError, OSError, KeyError) as error:
            raise RunError(f"--data {spec}: not a series ({error})") from None
    return RunData(np.asarray(y, dtype=np.float64), name=spec, kind="series")


def _toy2d(options) -> RunData:
    """A 2-D density with a known log-density (see :mod:`pyrogen.toy`), 10,000 draws to
    fit and held-out ones to score, or a CSV of real vectors (no truth known)."""
    from functools import partial

    from pyrogen import toy

    spec = options.data or "ring"
    if spec not in toy.TOY_DENSITIES:
        table = _table(options)
        table.test = None
        table.config = {"data_shape": [int(np.shape(table.train)[1])]}
        return table
    found = RunData(
        toy.sample(spec, 10000, seed=options.seed),
        toy.sample(spec, 5000, seed=options.seed + 1),
        spec,
        columns=["x1", "x2"],
        config={"data_shape": [2]},
        log_density=partial(toy.log_density, spec),
    )
    return _subset(found, options)


DATA: dict[str, Callable[[Any], RunData]] = {
    "table": _table,
    "column": _column,
    "binary_images": _binary_images,
    "sequences": _sequences,
    "vae_images": _vae_images,
    "digits": _digits,
    "series": _series,
    "toy2d": _toy2d,
    "images": _images,
}


# -- the run -------------------------------------------------------------------------
def _hook(value, table: dict, what: str):
    if value is None or callable(value):
        return value
    if value not in table:
        raise KeyError(f"{what} {value!r} is not one of {', '.join(table)}")
    return table[value]


def build_model(cls, options, run_data: RunData, method: str):
    """The model from the command's config values, the data's and the model's own."""
    config = dict(getattr(cls, "cli_defaults", {}))
    config.update(run_data.config)
    config.update(cls.cli_config(options, run_data, method) if hasattr(cls, "cli_config") else {})
    config.update(options.config)
    fields = cls.Config.__dataclass_fields__
    return cls(**{k: v for k, v in config.items() if k in fields})


def fit_options(cls, model, options, method: str) -> dict:
    """``pyrogen.fit``'s keywords: the command's, else the model's ``cli_fit``, else
    minibatches (10 epochs of 128, lr 1e-3) for network models and 1000 steps (lr 0.05)
    for the others."""
    from pyrogen.zoo import SupportsMinibatches

    common = {"method": method, "seed": options.seed, "progress": options.progress}
    if getattr(options, "device", None) is not None:
        common["device"] = options.device
    if method == "nuts":
        chains = {"num_chains": options.num_chains, "num_samples": options.num_samples}
        chains["chain_method"] = getattr(options, "chain_method", "auto")
        return {"num_warmup": options.num_warmup, **chains, **common}
    if getattr(options, "strategy", None) is not None:
        common.update(
            strategy=options.strategy, devices=options.devices, num_nodes=options.num_nodes
        )
    if method == "em":
        return {"num_steps": options.num_steps, **common}
    fitted = {"lr": 0.05}
    if isinstance(model, SupportsMinibatches):
        fitted = {"lr": 1e-3, "batch_size": 128, "num_epochs": 10}
    fitted.update(getattr(cls, "cli_fit", {}))
    given = {
        "lr": options.lr,
        "num_steps": options.num_steps,
        "batch_size": options.batch_size,
        "num_epochs": options.epochs,
        "loss": options.loss,
        "guide": options.guide,
    }
    if options.epochs is not None and options.num_steps is None:
        fitted.pop("num_steps", None)  # --epochs given: over the model's step budget
    if method == "adversarial":
        given.update(
            critic_steps=getattr(options, "critic_steps", None),
            critic_lr=getattr(options, "critic_lr", None),
            instance_noise=getattr(options, "instance_noise", None),
        )
    fitted.update({k: v for k, v in given.items() if v is not None})
    if fitted.get("num_steps") is not None:
        fitted.pop("num_epochs", None)
    return {**fitted, **common}


def execute(name: str, options) -> Run | None:
    """Fit zoo model ``name`` as the command's options say and write its report (None
    in the ranks above 0 of a distributed fit, which write nothing)."""
    import pyrogen
    from pyrogen.zoo import NetworkModel, get_model_class, supported_methods

    cls = get_model_class(name)
    if not issubclass(cls, NetworkModel):
        torch.set_default_dtype(torch.float64)
    method = options.method or getattr(cls, "cli_method", None) or cls.default_method
    methods = supported_methods(cls)  # refused before any data is loaded
    if method not in methods:
        raise RunError(f"--method {method} is not one of {', '.join(methods)} for {name}")
    chain_method = getattr(options, "chain_method", "auto")
    if method == "nuts" and (
        chain_method == "parallel"
        or (chain_method == "auto" and (os.cpu_count() or 1) >= options.num_chains)
    ):  # a CPU device per NumPyro chain (a command is a fresh process: JAX has not started)
        with contextlib.suppress(RuntimeError):  # it had: NumPyro's warning says so
            pyrogen.set_host_devices(options.num_chains)
    options.default_data = getattr(cls, "cli_default_data", None)
    recipe = _hook(getattr(cls, "cli_data", "table"), DATA, "cli_data")
    run_data = recipe(options)
    try:
        torch.manual_seed(options.seed)
        model = build_model(cls, options, run_data, method)
        keywords = fit_options(cls, model, options, method)
        keywords["checkpoint"] = options.checkpoint
        keywords["trust_checkpoint"] = options.trust_checkpoint
        result = pyrogen.fit(model, run_data.train, **keywords)
    except (ValueError, TypeError) as error:
        raise RunError(str(error)) from None
    if getattr(options, "strategy", None) is not None:
        from pyrogen.lightning import is_rank_zero

        if not is_rank_zero():
            return None  # the report is rank 0's (every rank holds the same fit)
    out = Path(options.out or f"runs/{name}")
    out.mkdir(parents=True, exist_ok=True)
    run = Run(name, model, result, run_data, options, out)
    run.metrics.update(model=name, method=method, data=run_data.name)
    report = _hook(getattr(cls, "cli_report", None), REPORTS, "cli_report")
    if report is not None:
        report(run)
    _generic_report(run)
    write(run)
    return run


# -- reports -------------------------------------------------------------------------
def _scalar(value) -> float:
    return float(value.mean()) if isinstance(value, torch.Tensor) else float(value)


def _score(run: Run) -> None:
    """The held-out (else training) log-likelihood, where the model has not given it."""
    model, data, metrics = run.model, run.data, run.metrics
    if {"test_nll", "mean_log_likelihood", "test_log_likelihood"} & set(metrics):
        return
    if getattr(model, "implicit", False):  # samples, no density: its report measures them
        return
    held_out = data.test is not None
    stage(run, f"scoring {len(data.test if held_out else data.train)} examples")
    if data.test is not None:
        with torch.no_grad():
            log_p = _scalar(model.log_prob(data.test))
        dims = math.prod(np.shape(data.test)[1:]) or 1
        bits = -log_p / (dims * math.log(2.0))
        levels = data.config.get("data_levels")  # dequantized images: the discrete ones'
        metrics.update(test_nll=-log_p, test_bits_per_dim=bits + math.log2(levels or 1))
        if data.log_density is not None:  # KL(p || q) = E_p log p - E_p log q
            truth = float(np.mean(data.log_density(np.asarray(data.test))))
            metrics.update(true_entropy=-truth, kl_from_truth=-log_p - (-truth))
    else:
        with torch.no_grad():
            metrics["mean_log_likelihood"] = _scalar(model.log_prob(data.train))


def _nuts_diagnostics(run: Run, idata) -> None:
    import arviz as az

    with warnings.catch_warnings():  # constant entries (a Cholesky factor's unit diagonal)
        warnings.simplefilter("ignore", RuntimeWarning)
        summary = az.summary(idata, kind="diagnostics")
    r_hat = summary["r_hat"].to_numpy()
    r_hat = r_hat[np.isfinite(r_hat)]
    run.metrics.update(
        max_r_hat=float(r_hat.max()) if r_hat.size else None,
        min_ess_bulk=float(summary["ess_bulk"].min()),
        divergences=int(np.sum(run.fit.sample_stats["diverging"])),
    )
    try:
        run.metrics["elpd_loo"] = float(az.loo(idata).elpd_loo)
    except (ValueError, TypeError, KeyError):
        run.metrics["elpd_loo"] = None


def _pictures(run: Run) -> None:
    import matplotlib.pyplot as plt

    from pyrogen.plots import plot_density_1d, plot_density_2d, plot_images, plot_losses

    result, data, model = run.fit, run.data, run.model
    if result.losses is not None and "loss.png" not in run.figures:
        figure, ax = plt.subplots(figsize=(5, 3.5))
        plot_losses(result.losses, ax=ax, ylabel=run.extra.get("loss_name", "loss per example"))
        run.figures["loss.png"] = figure
    if "density.png" not in run.figures and data.kind in ("table", "column"):
        figure, ax = plt.subplots(figsize=(5.5, 4.5))
        x = np.asarray(data.train)
        if x.ndim == 1 or x.shape[1] == 1:
            plot_density_1d(model.log_prob, x.reshape(len(x), *np.shape(x)[1:]), ax=ax)
            ax.set_xlabel(data.columns[0] if data.columns else "x")
        else:
            plot_density_2d(model.log_prob, x, ax=ax, labels=data.columns)
        run.figures["density.png"] = figure
    if data.kind == "images" and "samples.png" not in run.figures:
        draws = draw_samples(run)
        run.figures["samples.png"] = plot_images(draws, data.image_shape, 2, f"{run.name} samples")
    if data.kind == "text" and "samples.txt" not in run.texts:
        draws = draw_samples(run)
        run.texts["samples.txt"] = "\n---\n".join(data.text.decode(draws)) + "\n"


def stage(run: Run, message: str, always: bool = False) -> None:
    """Say on stderr what the run does after training (when progress is shown)."""
    import sys

    from pyrogen.infer.loop import default_progress

    shown = run.options.progress if run.options.progress is not None else default_progress()
    if shown or always:
        print(f"pyrogen fit {run.name}: {message}", file=sys.stderr, flush=True)


def affordable_draws(sample, wanted: int, budget: float) -> tuple[torch.Tensor, int, float]:
    """Up to ``wanted`` draws of ``sample(n)`` within about ``budget`` seconds: one draw
    is timed and the count cut to what the budget allows at that rate (an upper bound
    of the cost: a batched sampler draws n for less than n times one). Returns the
    draws, their count and the seconds one took."""
    import time

    began = time.perf_counter()
    first = sample(1)
    each = time.perf_counter() - began
    count = int(min(wanted, max(1, budget // max(each, 1e-9))))
    if count == 1:
        return first, count, each
    return torch.cat([torch.as_tensor(first), torch.as_tensor(sample(count - 1))]), count, each


def draw_samples(run: Run) -> torch.Tensor:
    """The pictures' draws: ``--samples`` of them, or up to 16 in about as long as the
    training took (at least 30 seconds), saying so when fewer are drawn."""
    if run.options.samples is not None:
        stage(run, f"drawing {run.options.samples} samples")
        return run.model.sample(run.options.samples)
    budget = max(30.0, run.fit.elapsed)
    stage(run, f"drawing up to 16 samples within {budget:.0f} s")
    draws, count, each = affordable_draws(run.model.sample, 16, budget)
    if count < 16:
        stage(
            run,
            f"16 samples would take about {16 * each:.0f} s (as long as training's "
            f"{budget:.0f} s allows): drew {count}; --samples N draws N",
            always=True,
        )
    run.metrics["samples_drawn"] = count
    return draws


def _generic_report(run: Run) -> None:
    """Scores, run facts, NUTS diagnostics, the loss curve, samples or density."""
    import arviz as az

    from pyrogen.zoo import NetworkModel

    result, model = run.fit, run.model
    run.metrics.setdefault("train_examples", len(run.data.train))
    if run.data.test is not None:
        run.metrics.setdefault("test_examples", len(run.data.test))
    if result.losses is not None:
        run.metrics.update(
            num_steps=result.num_steps, final_loss=result.loss, converged=bool(result.converged)
        )
    if isinstance(model, NetworkModel):
        run.metrics.setdefault("parameters", sum(p.numel() for p in model.parameters()))
    _score(run)
    run.metrics["seconds"] = result.elapsed
    if not isinstance(model, NetworkModel) and result.method == "nuts":
        _nuts_diagnostics(run, run.inference_data())
        if "trace.png" not in run.figures:
            axes = az.plot_trace(run.inference_data(), compact=True)
            run.figures["trace.png"] = np.ravel(axes)[0].figure
    _pictures(run)


def write(run: Run) -> None:
    """metrics.json, model.pt (network models) or inference_data.nc, the pictures and
    texts; every file written atomically."""
    import matplotlib.pyplot as plt

    from pyrogen.checkpoint import atomic_path, atomic_write
    from pyrogen.plots import save_figure
    from pyrogen.zoo import NetworkModel

    if not isinstance(run.model, NetworkModel):
        with atomic_path(run.out / "inference_data.nc") as tmp:
            run.inference_data().to_netcdf(tmp)
        run.written = "inference_data.nc"
    else:
        run.model.save(run.out / "model.pt")
        run.written = "model.pt"
    for name, figure in run.figures.items():
        save_figure(figure, run.out / name)
        plt.close(figure)
    for name, text in run.texts.items():
        atomic_write(run.out / name, lambda handle, text=text: handle.write(text.encode()))
    text = json_text(run.metrics, indent=2) + "\n"
    atomic_write(run.out / "metrics.json", lambda handle: handle.write(text.encode()))


def json_text(value, indent: int | None = None) -> str:
    """Strict JSON (RFC 8259): an infinite or NaN figure (a KL with no samples near a
    mode, ...) is written as null, where Python's json writes Infinity and NaN, which
    other readers refuse."""

    def finite(v):
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [finite(x) for x in v]
        if not isinstance(v, (str, bool, int, type(None))):
            v = float(v)  # numpy and torch scalars
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return json.dumps(finite(value), indent=indent, allow_nan=False)


def _mixture_report(run: Run) -> None:
    """A Gaussian mixture: BIC, AIC, the fitted weights and means, the means on the
    density picture, and a pair plot of the means after NUTS."""
    import arviz as az
    import matplotlib.pyplot as plt

    from pyrogen.plots import plot_density_1d, plot_density_2d

    model, x, method = run.model, np.asarray(run.data.train), run.fit.method
    log_lik = float(model.log_prob(torch.as_tensor(x)).mean())
    n, d = x.shape
    k = model.config.n_components
    run.metrics.update(
        n=n,
        dim=d,
        components=k,
        covariance=model.config.covariance,
        mean_log_likelihood=log_lik,
        bic=float(-2 * log_lik * n + model.num_parameters * np.log(n)),
        aic=float(-2 * log_lik * n + 2 * model.num_parameters),
        weights=model.weights.tolist(),
        locs=model.locs.tolist(),
    )
    run.extra["loss_name"] = "-mean log-likelihood" if method == "em" else "-ELBO per point"
    figure, ax = plt.subplots(figsize=(5.5, 4.5))
    if d == 1:
        plot_density_1d(model.log_prob, x, ax=ax)
        ax.set_xlabel(run.data.columns[0])
    else:
        plot_density_2d(model.log_prob, x, ax=ax, labels=run.data.columns)
        ax.scatter(*model.locs[:, :2].T.numpy(), marker="x", s=80, c="tab:red", label="means")
        ax.legend(loc="upper left")
    ax.set_title(f"{k}-component mixture, {method}: mean log p(x) = {log_lik:.3f}")
    run.figures["density.png"] = figure
    if method == "nuts":
        idata = run.inference_data()
        axes = az.plot_trace(idata, var_names=["weights", "locs"], compact=True)
        run.figures["trace.png"] = np.ravel(axes)[0].figure
        axes = az.plot_pair(idata, var_names=["locs"], kind="kde", divergences=True)
        run.figures["pair.png"] = np.ravel(axes)[0].figure


def _fourier_report(run: Run) -> None:
    """The Fourier density: its size, and the density over the data's histogram."""
    import matplotlib.pyplot as plt

    model, x = run.model, np.asarray(run.data.train)
    log_lik = float(model.log_prob(x).mean())
    run.metrics.update(
        column=run.data.columns[0],
        n=len(x),
        num_frequencies=model.config.num_frequencies,
        num_parameters=model.num_parameters,
        mean_log_likelihood=log_lik,
    )
    run.extra["loss_name"] = "-mean log-likelihood (penalized)"
    figure, ax = plt.subplots(figsize=(6, 3.8))
    span = x.max() - x.min()
    grid = np.linspace(x.min() - 0.2 * span, x.max() + 0.2 * span, 600)
    ax.hist(x, bins=40, density=True, color="0.85", label="data")
    label = f"N={model.config.num_frequencies}, {run.fit.method}"
    ax.plot(grid, np.exp(model.log_prob(grid).numpy()), label=label)
    ax.set(xlabel=run.data.columns[0], ylabel="density", title=f"mean log p(x) = {log_lik:.3f}")
    ax.legend()
    run.figures["density.png"] = figure


def _vae_metrics(run: Run) -> None:
    vae, test, options = run.model, run.data.test, run.options
    k_max = options.iwae_samples
    ks = [k for k in (1, 10, 100, 1000, 5000) if k < k_max] + [k_max]
    estimates = [float(vae.log_prob(test, num_samples=k).mean()) for k in ks]
    terms = vae.elbo_terms(test)
    run.extra.update(terms=terms, ks=ks, estimates=estimates)
    run.metrics.update(
        train_images=len(run.data.train),
        test_images=len(test),
        latent_dim=vae.config.latent_dim,
        hidden=list(vae.config.hidden),
        prior=vae.prior_kind,
        epochs=options.epochs or 10,
        test_reconstruction=float(terms["reconstruction"].mean()),
        test_kl=float(terms["kl"].mean()),
        test_elbo=float((terms["reconstruction"] - terms["kl"]).mean()),
        test_log_likelihood=estimates[-1],
        num_samples=k_max,
        iwae_by_k=dict(zip(map(str, ks), estimates)),
        psis_khat_median=float(vae.psis_khat(test[:200], num_samples=1000).median()),
    )
    run.extra["loss_name"] = "-ELBO per example (nats)"


def _vae_report(run: Run) -> None:
    """A VAE: importance-weighted log p(x) by K, the ELBO's terms, PSIS k-hat, and the
    pictures of reconstructions, samples, the latent map and traversals."""
    import matplotlib.pyplot as plt

    from pyrogen.plots import plot_images, plot_latent_map

    if run.options.iwae_samples < 1:
        raise RunError(f"--num-samples-iwae must be positive, got {run.options.iwae_samples}")
    _vae_metrics(run)
    vae, test, shape, figures = run.model, run.data.test, run.data.image_shape, run.figures
    figure, ax = plt.subplots(figsize=(5, 3.5))
    terms = run.extra["terms"]
    ax.hist(-terms["reconstruction"].numpy(), bins=40, alpha=0.7, label="-reconstruction")
    ax.hist(terms["kl"].numpy(), bins=40, alpha=0.7, label="KL")
    ax.set(xlabel="nats per example", title="the ELBO's two terms on test data")
    ax.legend()
    figures["elbo_terms.png"] = figure
    pairs = torch.cat([test[:10], vae.reconstruct(test[:10])])
    figures["reconstructions.png"] = plot_images(pairs, shape, 2, "test data (top), reconstructed")
    figures["samples.png"] = plot_images(vae.sample(40, mean=True), shape, 4, "samples")
    loc = vae.encode(test)[0]
    figure, ax = plt.subplots(figsize=(5.5, 4.5))
    plot_latent_map(loc.numpy(), run.data.labels, ax=ax, title="encoder means of test data")
    figures["latent.png"] = figure
    used = loc.var(0).argsort(descending=True)[: min(5, vae.config.latent_dim)]
    rows = []
    for unit in used:
        for value in np.linspace(-3, 3, 8):
            z = loc[0].clone()
            z[unit] = float(value)
            rows.append(z)
    traversed = vae.decode(torch.stack(rows))
    figures["traversals.png"] = plot_images(traversed, shape, len(used), "one unit per row")
    figure, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogx(run.extra["ks"], run.extra["estimates"], marker="o")
    ax.set(xlabel="K (importance samples)", ylabel="mean log p(x) estimate (nats)")
    figures["iwae.png"] = figure


def _series_report(run: Run) -> None:
    """A time series model: the one-step-ahead log density per step."""
    with torch.no_grad():
        log_p = run.model.log_prob(run.data.train)
    run.metrics.update(n=len(run.data.train), mean_log_likelihood=_scalar(log_p))


def _ddpm_report(run: Run) -> None:
    """A DDPM: the bound on the held-out data per number of steps K and reverse
    variance (Analytic-DPM's table: its Gamma_t estimated from the training data), and
    the density picture from the 100-step bound."""
    import matplotlib.pyplot as plt

    from pyrogen.plots import plot_density_2d

    model, data = run.model, run.data
    held_out = data.test if data.test is not None else data.train
    ks = [k for k in (10, 100) if k < model.config.timesteps] + [model.config.timesteps]
    stage(run, f"estimating Gamma_t and scoring {len(held_out)} examples at K = {ks}")
    for k in ks:
        model.estimate_moments(data.train, steps=k)
        for variance in ("beta_tilde", "beta", "analytic"):
            bound = _scalar(model.log_prob(held_out, steps=k, variance=variance))
            run.metrics[f"bound_k{k}_{variance}"] = bound
    if data.kind == "table" and np.shape(data.train)[1:] == (2,):
        figure, ax = plt.subplots(figsize=(5.5, 4.5))
        steps = min(100, model.config.timesteps)
        plot_density_2d(
            lambda g: model.log_prob(g, steps=steps, variance="analytic"),
            np.asarray(data.train),
            ax=ax,
            labels=data.columns,
        )
        ax.set_title(f"exp(bound), K = {steps}, analytic variance")
        run.figures["density.png"] = figure


def _adversarial_report(run: Run) -> None:
    """An implicit model (GAN, ALI), measured by its samples: on the ring or the grid
    the modes covered and the share of high-quality samples (:func:`pyrogen.toy.
    mode_coverage`), on Fashion-MNIST the Frechet distance, precision and recall in the
    project's classifier's feature space and the class histogram; both losses' curves,
    the samples over the data, and for ALI reconstructions."""
    import matplotlib.pyplot as plt

    from pyrogen import toy
    from pyrogen.plots import plot_images, plot_losses

    model, data, result = run.model, run.data, run.fit
    figure, ax = plt.subplots(figsize=(5, 3.5))
    plot_losses(result.losses, ax=ax, ylabel="loss")
    ax.lines[0].set_label("players")
    critic = result.diagnostics.get("critic_losses")
    if critic is not None and len(critic):
        ax.plot(np.arange(1, len(critic) + 1), critic, lw=0.8, label="critic")
    ax.legend()
    run.figures["loss.png"] = figure
    held_out = data.test if data.test is not None else data.train
    n = min(2500, len(held_out)) if data.kind != "images" else min(1000, len(held_out))
    stage(run, f"drawing {n} samples")
    torch.manual_seed(run.options.seed)
    draws = model.sample(n)
    if data.kind == "table" and data.name in ("ring", "grid"):
        coverage = toy.mode_coverage(data.name, draws.numpy(), sd=0.1)  # the data's sd
        run.metrics.update(
            modes_captured=coverage["modes"],
            modes_total=len(toy.modes(data.name)),
            high_quality_share=coverage["high_quality"],
            kl_modes=coverage["kl_modes"],
        )
    if data.kind == "table" and np.shape(data.train)[1:] == (2,):
        figure, ax = plt.subplots(figsize=(5.5, 4.5))
        train = np.asarray(data.train)
        ax.scatter(train[:, 0], train[:, 1], s=2, alpha=0.3, label="data")
        ax.scatter(draws[:, 0], draws[:, 1], s=2, alpha=0.5, label="samples")
        ax.legend(markerscale=5)
        ax.set_title(f"{run.name}: samples over the data")
        run.figures["density.png"] = figure
    if data.kind == "images":
        run.figures["samples.png"] = plot_images(
            draws[:16], data.image_shape, 2, f"{run.name} samples"
        )
        if data.name == "fashion_mnist":
            from pyrogen.features import (
                class_histogram,
                fashion_classifier,
                features,
                frechet_distance,
                precision_recall,
            )

            stage(run, "Frechet distance, precision and recall in the classifier's features")
            net = fashion_classifier()
            real, fake = features(net, held_out[:n]), features(net, draws)
            precision, recall = precision_recall(real, fake)
            run.metrics.update(
                frechet_distance=frechet_distance(real, fake),
                precision=precision,
                recall=recall,
                class_histogram=class_histogram(net, draws).round(4).tolist(),
                classifier_test_accuracy=net.test_accuracy,
            )
        if hasattr(model, "reconstruct"):
            pairs = torch.cat([held_out[:8], model.reconstruct(held_out[:8])])
            run.figures["reconstructions.png"] = plot_images(
                pairs, data.image_shape, 2, "data (top), reconstructions (bottom)"
            )


def _toy2d_or_images(options) -> RunData:
    """A 2-D density with a known log-density (--data ring|grid|checkerboard|moons|
    FILE.csv), or images (--data fashion_mnist|digits): ``pyrogen fit ddpm``'s data."""
    images = options.data in ("fashion_mnist", "digits")
    return DATA["images" if images else "toy2d"](options)


def _adversarial_data(options) -> RunData:
    """``pyrogen fit gan|ali``: :func:`_toy2d_or_images`, images with the convolutional
    networks and a sigmoid output."""
    found = _toy2d_or_images(options)
    if found.kind == "images":
        found.config = {**found.config, "architecture": "conv", "output": "sigmoid"}
    return found


DATA["toy2d_or_images"] = _toy2d_or_images
DATA["adversarial"] = _adversarial_data

REPORTS: dict[str, Callable[[Run], None]] = {
    "adversarial": _adversarial_report,
    "ddpm": _ddpm_report,
    "mixture": _mixture_report,
    "fourier": _fourier_report,
    "vae": _vae_report,
    "series": _series_report,
}
