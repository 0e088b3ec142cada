"""The ``pyrogen`` command.

pyrogen zoo                                  list the models
pyrogen data                                 list the data sets
pyrogen fit gmm [--data NAME|CSV] [--method em|map|svi|nuts] [--components K] [--out DIR]
pyrogen fit fourier [--data NAME|CSV] [--columns C] [--frequencies N] [--method mle|map|nuts]
pyrogen fit vae [--data binarized_mnist|digits] [--latent D] [--prior standard|vamp] [--epochs E]
pyrogen fit fvsbn|nade|made|deepnade|pixelcnn|wavenet|rnn|transformer
            [--data binarized_mnist|characters] [--hidden W ...] [--steps K: deepnade]
            [--masks M: made, deepnade] [--direct: made]
pyrogen crosscheck mixture-1d                Pyro NUTS vs NumPyro NUTS vs Stan's reference
pyrogen compare-inference regression|ar      every guide against NUTS on one model
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _load_data(spec: str, columns: str | None) -> tuple[np.ndarray, list[str]]:
    from pyrogen import data

    if spec == "old_faithful":
        return data.load("old_faithful"), ["eruptions (min)", "waiting (min)"]
    if spec in data.list_datasets():
        raise SystemExit(f"pyrogen: --data {spec} is not a table of real values for this model")
    names = columns.split(",") if columns else None
    try:
        x = data.load_csv(spec, names)
    except ValueError as error:
        raise SystemExit(f"pyrogen: --data: {error}") from None
    if names is None:
        with open(spec) as handle:
            names = handle.readline().strip().split(",")
    return x, names


def _write_json(path: Path, payload: dict) -> None:
    from pyrogen.checkpoint import atomic_write

    text = json.dumps(payload, indent=2, default=float) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))


def _write_netcdf(path: Path, idata) -> None:
    from pyrogen.checkpoint import atomic_path

    with atomic_path(path) as tmp:
        idata.to_netcdf(tmp)


def _fit_gmm(args) -> dict:
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    import pyrogen
    from pyrogen.models import GaussianMixture, GaussianMixturePrior
    from pyrogen.plots import plot_density_1d, plot_density_2d, plot_losses, save_figure

    torch.set_default_dtype(torch.float64)
    args.data = args.data or "old_faithful"
    x, names = _load_data(args.data, args.columns)
    out = Path(args.out or "runs/gmm")
    out.mkdir(parents=True, exist_ok=True)
    prior = GaussianMixturePrior.weakly_informative(x) if args.method == "nuts" else None
    try:
        model = GaussianMixture(
            args.components, covariance=args.covariance, prior=prior, n_init=args.n_init
        )
        options = dict(
            method=args.method, seed=args.seed, progress=args.progress, checkpoint=args.checkpoint
        )
        if args.method == "nuts":
            options.update(
                num_warmup=args.num_warmup, num_samples=args.num_samples, num_chains=args.num_chains
            )
        else:
            options.update(num_steps=args.num_steps, lr=0.05 if args.lr is None else args.lr)
        result = pyrogen.fit(model, x, **options)
    except (ValueError, TypeError) as error:
        raise SystemExit(f"pyrogen: {error}") from None

    xt = torch.as_tensor(x)
    log_lik = float(model.log_prob(xt).mean())
    n, d = x.shape
    k = args.components
    num_params = model.num_parameters
    metrics = {
        "model": "gmm",
        "method": args.method,
        "data": args.data,
        "n": n,
        "dim": d,
        "components": k,
        "covariance": args.covariance,
        "mean_log_likelihood": log_lik,
        "bic": float(-2 * log_lik * n + num_params * np.log(n)),
        "aic": float(-2 * log_lik * n + 2 * num_params),
        "seconds": result.elapsed,
        "weights": model.weights.tolist(),
        "locs": model.locs.tolist(),
    }
    if result.losses is not None:
        metrics.update(
            num_steps=result.num_steps, converged=bool(result.converged), final_loss=result.loss
        )
    idata = result.to_arviz(num_samples=200)
    if args.method == "nuts":
        with warnings.catch_warnings():  # constant entries (corr_tril's unit diagonal)
            warnings.simplefilter("ignore", RuntimeWarning)
            summary = az.summary(idata, kind="diagnostics")
        r_hat = summary["r_hat"].to_numpy()
        r_hat = r_hat[np.isfinite(r_hat)]  # one chain, or constant entries of corr_tril
        metrics.update(
            max_r_hat=float(r_hat.max()) if r_hat.size else None,
            min_ess_bulk=float(summary["ess_bulk"].min()),
            divergences=int(np.sum(result.sample_stats["diverging"])),
            elpd_loo=float(az.loo(idata).elpd_loo),
        )
    _write_netcdf(out / "inference_data.nc", idata)

    figure, ax = plt.subplots(figsize=(5.5, 4.5))
    if d == 1:
        plot_density_1d(model.log_prob, x, ax=ax)
        ax.set_xlabel(names[0])
    else:
        plot_density_2d(model.log_prob, x, ax=ax, labels=names)
        ax.scatter(*model.locs[:, :2].T.numpy(), marker="x", s=80, c="tab:red", label="means")
        ax.legend(loc="upper left")
    ax.set_title(f"{k}-component mixture, {args.method}: mean log p(x) = {log_lik:.3f}")
    save_figure(figure, out / "density.png")
    plt.close(figure)
    if result.losses is not None:
        figure, ax = plt.subplots(figsize=(5, 3.5))
        plot_losses(
            result.losses,
            ax=ax,
            ylabel="-mean log-likelihood" if args.method == "em" else "-ELBO per point",
        )
        save_figure(figure, out / "loss.png")
        plt.close(figure)
    if args.method == "nuts":
        axes = az.plot_trace(idata, var_names=["weights", "locs"], compact=True)
        save_figure(axes.ravel()[0].figure, out / "trace.png")
        plt.close("all")
        axes = az.plot_pair(idata, var_names=["locs"], kind="kde", divergences=True)
        save_figure(np.ravel(axes)[0].figure, out / "pair.png")
        plt.close("all")
    _write_json(out / "metrics.json", metrics)
    args.out = str(out)
    return metrics


def _fit_fourier(args) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    import pyrogen
    from pyrogen.models import FourierDensity, FourierPrior
    from pyrogen.plots import plot_losses, save_figure

    torch.set_default_dtype(torch.float64)
    args.data = args.data or "old_faithful"
    x, names = _load_data(args.data, args.columns)
    x, name = x[:, 0], names[0]  # one column: the first (or the one --columns names)
    method = args.method or "mle"
    if method not in ("mle", "map", "nuts"):
        raise SystemExit(f"pyrogen: --method {method} is not one of mle, map, nuts for fourier")
    out = Path(args.out or "runs/fourier")
    out.mkdir(parents=True, exist_ok=True)
    try:
        prior = None if method == "mle" else FourierPrior()
        model = FourierDensity(args.frequencies, prior=prior, smoothness=args.smoothness)
        options = dict(method=method, seed=args.seed, progress=args.progress)
        if method == "nuts":
            options.update(
                num_warmup=args.num_warmup,
                num_samples=args.num_samples,
                num_chains=args.num_chains,
            )
        else:
            options.update(
                num_steps=3000 if args.num_steps is None else args.num_steps,
                lr=0.05 if args.lr is None else args.lr,
                checkpoint=args.checkpoint,
            )
        result = pyrogen.fit(model, x, **options)
    except (ValueError, TypeError) as error:
        raise SystemExit(f"pyrogen: {error}") from None
    log_lik = float(model.log_prob(x).mean())
    metrics = {
        "model": "fourier",
        "method": method,
        "data": args.data,
        "column": name,
        "n": len(x),
        "num_frequencies": args.frequencies,
        "num_parameters": model.num_parameters,
        "mean_log_likelihood": log_lik,
        "seconds": result.elapsed,
    }
    if result.losses is not None:
        metrics.update(num_steps=result.num_steps, final_loss=result.loss)
    _write_netcdf(out / "inference_data.nc", result.to_arviz(num_samples=200))
    figure, ax = plt.subplots(figsize=(6, 3.8))
    span = x.max() - x.min()
    grid = np.linspace(x.min() - 0.2 * span, x.max() + 0.2 * span, 600)
    ax.hist(x, bins=40, density=True, color="0.85", label="data")
    ax.plot(grid, np.exp(model.log_prob(grid).numpy()), label=f"N={args.frequencies}, {method}")
    ax.set(xlabel=name, ylabel="density", title=f"mean log p(x) = {log_lik:.3f}")
    ax.legend()
    save_figure(figure, out / "density.png")
    plt.close(figure)
    if result.losses is not None:
        figure, ax = plt.subplots(figsize=(5, 3.5))
        plot_losses(result.losses, ax=ax, ylabel="-mean log-likelihood (penalized)")
        save_figure(figure, out / "loss.png")
        plt.close(figure)
    _write_json(out / "metrics.json", metrics)
    args.out = str(out)
    return metrics


def _vae_data(spec: str, seed: int):
    """(train, test, test labels or None, image shape, likelihood) for ``pyrogen fit vae``."""
    import torch

    from pyrogen import data

    if spec == "binarized_mnist":
        # all images in random order (the test file's halves differ in difficulty)
        train, _, test = data.mnist_splits((50000, 0, 10000), seed=seed)
        return train, test, None, (28, 28), "bernoulli"
    if spec == "digits":
        try:
            x, labels = data.dequantized_digits(seed)
        except ImportError as error:
            raise SystemExit(f"pyrogen: --data digits: {error}") from None
        x = torch.as_tensor(x, dtype=torch.float32)
        return x[:1400], x[1400:], labels[1400:], (8, 8), "gaussian"
    raise SystemExit(f"pyrogen: --data {spec} is not binarized_mnist or digits for vae")


def _fit_on_minibatches(model, train, args, **options):
    """``pyrogen.fit`` with the command's epochs, batch size, learning rate (default
    1e-3), checkpoint, seed and progress options."""
    import pyrogen

    return pyrogen.fit(
        model,
        train,
        lr=1e-3 if args.lr is None else args.lr,
        batch_size=args.batch_size,
        num_epochs=args.epochs,
        checkpoint=args.checkpoint,
        seed=args.seed,
        progress=args.progress,
        **options,
    )


def _fit_vae(args) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from pyrogen.models import VAE
    from pyrogen.plots import plot_images, plot_latent_map, plot_losses, save_figure

    if (args.method or "svi") != "svi":
        raise SystemExit(f"pyrogen: --method {args.method} is not svi for vae")
    args.data = args.data or "binarized_mnist"
    train, test, labels, shape, likelihood = _vae_data(args.data, args.seed)
    if args.train_size is not None:
        train = train[: args.train_size]
    test = test[: args.eval_size]
    labels = None if labels is None else labels[: args.eval_size]
    out = Path(args.out or "runs/vae")
    out.mkdir(parents=True, exist_ok=True)
    try:
        torch.manual_seed(args.seed)
        vae = VAE(
            (int(np.prod(shape)),),
            latent_dim=args.latent,
            hidden=args.hidden,
            likelihood=likelihood,
            prior=args.prior,
        )
        result = _fit_on_minibatches(vae, train, args, method="svi", loss="mean_field")
        ks = [k for k in (1, 10, 100, 1000, 5000) if k < args.iwae_samples] + [args.iwae_samples]
        estimates = [float(vae.log_prob(test, num_samples=k).mean()) for k in ks]
    except (ValueError, TypeError) as error:
        raise SystemExit(f"pyrogen: {error}") from None
    terms = vae.elbo_terms(test)
    khat = vae.psis_khat(test[:200], num_samples=1000)
    metrics = {
        "model": "vae",
        "data": args.data,
        "train_images": len(train),
        "test_images": len(test),
        "latent_dim": args.latent,
        "hidden": list(args.hidden),
        "prior": args.prior,
        "epochs": args.epochs,
        "num_steps": result.num_steps,
        "final_loss": result.loss,
        "test_reconstruction": float(terms["reconstruction"].mean()),
        "test_kl": float(terms["kl"].mean()),
        "test_elbo": float((terms["reconstruction"] - terms["kl"]).mean()),
        "test_log_likelihood": estimates[-1],
        "num_samples": args.iwae_samples,
        "iwae_by_k": dict(zip(map(str, ks), estimates)),
        "psis_khat_median": float(khat.median()),
        "seconds": result.elapsed,
    }
    vae.save(out / "model.pt")
    figures = {}
    figure, ax = plt.subplots(figsize=(5, 3.5))
    plot_losses(result.losses, ax=ax, ylabel="-ELBO per example (nats)")
    figures["loss.png"] = figure
    figure, ax = plt.subplots(figsize=(5, 3.5))
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
    plot_latent_map(loc.numpy(), labels, ax=ax, title="encoder means of test data")
    figures["latent.png"] = figure
    used = loc.var(0).argsort(descending=True)[: min(5, args.latent)]
    rows = []
    for unit in used:
        for value in np.linspace(-3, 3, 8):
            z = loc[0].clone()
            z[unit] = float(value)
            rows.append(z)
    traversed = vae.decode(torch.stack(rows))
    figures["traversals.png"] = plot_images(traversed, shape, len(used), "one unit per row")
    figure, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogx(ks, estimates, marker="o")
    ax.set(xlabel="K (importance samples)", ylabel="mean log p(x) estimate (nats)")
    figures["iwae.png"] = figure
    for name, figure in figures.items():
        save_figure(figure, out / name)
        plt.close(figure)
    _write_json(out / "metrics.json", metrics)
    args.out = str(out)
    return metrics


AUTOREGRESSIVE = ("fvsbn", "nade", "made", "deepnade", "pixelcnn", "wavenet", "rnn", "transformer")
SEQUENCE_MODELS = ("wavenet", "rnn", "transformer")


def _autoregressive_model(args, shape, text):
    from pyrogen.zoo import get_model_class

    cls = get_model_class(args.model)
    options = {}
    if args.model in SEQUENCE_MODELS and text is not None:
        options = {"likelihood": "categorical", "num_classes": len(text.alphabet)}
    if args.hidden_given and args.model in ("nade", "rnn"):
        options["hidden"] = args.hidden[0]
    if args.hidden_given and args.model in ("made", "deepnade"):
        options["hidden"] = args.hidden
    if args.steps is not None:
        options["steps"] = args.steps
    if args.masks is not None:
        options["num_masks" if args.model == "made" else "num_orderings"] = args.masks
    if args.direct:
        options["direct"] = True
    if args.model == "pixelcnn":
        return cls((28, 28), **options)
    return cls(shape, **options)


def _fit_autoregressive(args) -> dict:
    """Fit one of the autoregressive models on binarized MNIST or on characters of the
    Python docs; write metrics.json, model.pt, loss.png and samples (.png or .txt)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    import pyrogen
    from pyrogen.checkpoint import atomic_write
    from pyrogen.plots import plot_images, plot_losses, save_figure

    if (args.method or "mle") != "mle":
        raise SystemExit(f"pyrogen: --method {args.method} is not mle for {args.model}")
    args.data = args.data or "binarized_mnist"
    text = None
    if args.data == "binarized_mnist":
        train, _, test = pyrogen.data.mnist_splits()
        shape = (784,)
    elif args.data == "characters":
        if args.model not in SEQUENCE_MODELS:
            raise SystemExit(
                f"pyrogen: --data characters needs a sequence model ({', '.join(SEQUENCE_MODELS)})"
            )
        if args.length < 1:
            raise SystemExit(f"pyrogen: --length must be positive, got {args.length}")
        text = pyrogen.data.characters(args.length)
        train, test, shape = text.train, text.test, (args.length,)
    else:
        raise SystemExit(f"pyrogen: --data must be binarized_mnist or characters for {args.model}")
    if args.train_size is not None:
        train = train[: args.train_size]
    test = test[: args.eval_size]
    out = Path(args.out or f"runs/{args.model}")
    out.mkdir(parents=True, exist_ok=True)
    try:
        torch.manual_seed(args.seed)
        model = _autoregressive_model(args, shape, text)
        result = _fit_on_minibatches(model, train, args, method="mle")
        log_p = model.log_prob(test)
    except (ValueError, TypeError) as error:
        raise SystemExit(f"pyrogen: {error}") from None
    metrics = {
        "model": args.model,
        "data": args.data,
        "train_examples": len(train),
        "test_examples": len(test),
        "epochs": args.epochs,
        "num_steps": result.num_steps,
        "final_loss": result.loss,
        "test_nll": -float(log_p.mean()),
        "test_bits_per_dim": -float(log_p.mean()) / (model.dim * np.log(2.0)),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": result.elapsed,
    }
    model.save(out / "model.pt")
    figure, ax = plt.subplots(figsize=(5, 3.5))
    plot_losses(result.losses, ax=ax, ylabel="-log p(x) per example (nats)")
    save_figure(figure, out / "loss.png")
    plt.close(figure)
    draws = model.sample(args.samples)
    if text is None:
        figure = plot_images(draws, (28, 28), 2, f"{args.model} samples")
        save_figure(figure, out / "samples.png")
        plt.close(figure)
    else:
        lines = "\n---\n".join(text.decode(draws)) + "\n"
        atomic_write(out / "samples.txt", lambda handle: handle.write(lines.encode()))
    _write_json(out / "metrics.json", metrics)
    args.out = str(out)
    return metrics


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
    from pyrogen.models import ar_model, bayesian_linear_regression, correlated_design
    from pyrogen.plots import save_figure

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
        _write_json(out / "report.json", {"model": args.model, "rows": report.rows})
        print(f"wrote {out}/report.json and overlay.png")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyrogen", description="Classic generative models in Pyro"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("zoo", help="list the models")
    commands.add_parser("data", help="list the data sets")

    fit = commands.add_parser("fit", help="fit a model and write metrics, InferenceData and plots")
    fit.add_argument("model", choices=["gmm", "fourier", "vae", *AUTOREGRESSIVE])
    fit.add_argument(
        "--data",
        default=None,
        help="gmm, fourier: old_faithful (default) or a CSV with a header; "
        "vae: binarized_mnist (default) or digits; autoregressive: binarized_mnist (default) "
        "or characters (wavenet, rnn, transformer)",
    )
    fit.add_argument("--columns", help="comma-separated CSV columns to use (default: all)")
    fit.add_argument(
        "--method",
        default=None,
        choices=["em", "mle", "map", "svi", "nuts"],
        help="gmm: em (default), map, svi, nuts; fourier: mle (default), map, nuts",
    )
    fit.add_argument("--components", type=int, default=2, help="gmm: K")
    fit.add_argument("--frequencies", type=int, default=8, help="fourier: N")
    fit.add_argument("--smoothness", type=float, default=0.0, help="fourier: roughness penalty")
    fit.add_argument("--covariance", default="full", choices=["full", "diag", "spherical"])
    fit.add_argument("--n-init", type=int, default=1)
    fit.add_argument("--num-steps", type=int, default=None)
    fit.add_argument("--lr", type=float, default=None, help="default 0.05; vae 1e-3")
    fit.add_argument("--num-warmup", type=int, default=500)
    fit.add_argument("--num-samples", type=int, default=500)
    fit.add_argument("--num-chains", type=int, default=4)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--checkpoint", default=None, help="resume from / save to this file")
    fit.add_argument("--out", default=None, help="output folder (default runs/MODEL)")
    fit.add_argument("--latent", type=int, default=50, help="vae: latent dimension")
    fit.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=None,
        help="vae, made, deepnade: layer widths; nade, rnn",
    )
    fit.add_argument("--steps", type=int, default=None, help="deepnade: NADE-k's k (default 1)")
    fit.add_argument(
        "--masks",
        type=int,
        default=None,
        help="made: mask sets, trained order-agnostically and scored as an ensemble; "
        "deepnade: orderings of its ensemble (default 1)",
    )
    fit.add_argument(
        "--direct", action="store_true", help="made: direct input-to-output connections"
    )
    fit.add_argument("--prior", default="standard", choices=["standard", "vamp"], help="vae")
    fit.add_argument("--epochs", type=int, default=10, help="vae, autoregressive: passes")
    fit.add_argument("--batch-size", type=int, default=128, help="vae, autoregressive")
    fit.add_argument("--train-size", type=int, default=None, help="first N training examples")
    fit.add_argument("--eval-size", type=int, default=1000, help="test examples scored")
    fit.add_argument("--length", type=int, default=128, help="characters: sequence length")
    fit.add_argument("--samples", type=int, default=16, help="autoregressive: draws shown")
    fit.add_argument(
        "--num-samples-iwae",
        dest="iwae_samples",
        type=int,
        default=1000,
        help="vae: importance samples K for log p(x) (the literature uses 5000)",
    )
    fit.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)

    check = commands.add_parser("crosscheck", help="Pyro NUTS vs NumPyro NUTS vs posteriordb")
    check.add_argument("model", choices=["mixture-1d"])
    check.add_argument("--num-warmup", type=int, default=500)
    check.add_argument("--num-samples", type=int, default=1000)
    check.add_argument("--num-chains", type=int, default=4)
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False)

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
    args = _parser().parse_args(argv)
    if args.command == "fit":
        args.hidden_given = args.hidden is not None
        args.hidden = args.hidden or [400]
        if args.samples < 1:
            raise SystemExit(f"pyrogen: --samples must be positive, got {args.samples}")
        if args.steps is not None and args.model != "deepnade":
            raise SystemExit(f"pyrogen: --steps is deepnade's (NADE-k), not {args.model}'s")
        if args.masks is not None and args.model not in ("made", "deepnade"):
            raise SystemExit(f"pyrogen: --masks is made's and deepnade's, not {args.model}'s")
        if args.masks is not None and args.masks < 1:
            raise SystemExit(f"pyrogen: --masks must be positive, got {args.masks}")
        if args.direct and args.model != "made":
            raise SystemExit(f"pyrogen: --direct is made's, not {args.model}'s")
    # ArviZ announces its coming 1.0 refactor on import; the command's output is ours.
    warnings.filterwarnings("ignore", message="\\s*ArviZ is undergoing", category=FutureWarning)
    if args.command == "zoo":
        from pyrogen.zoo import ZOO, get_model_class

        get_model_class("gmm")  # imports the zoo
        for name, cls in sorted(ZOO.items()):
            summary = (cls.__doc__ or "").strip().splitlines()[0]
            print(f"{name:<16}{cls.__module__}.{cls.__name__}: {summary}")
        return 0
    if args.command == "data":
        from pyrogen.data import list_datasets

        for name, text in list_datasets().items():
            print(f"{name:<18}{text}")
        return 0
    if args.command == "fit":
        if args.model == "fourier":
            metrics = _fit_fourier(args)
        elif args.model == "vae":
            metrics = _fit_vae(args)
        elif args.model in AUTOREGRESSIVE:
            metrics = _fit_autoregressive(args)
        else:
            args.method = args.method or "em"
            if args.method == "mle":
                raise SystemExit("pyrogen: --method mle is not one of em, map, svi, nuts for gmm")
            metrics = _fit_gmm(args)
        print(
            json.dumps({k: v for k, v in metrics.items() if not isinstance(v, list)}, default=float)
        )
        written = "inference_data.nc" if args.model in ("gmm", "fourier") else "model.pt"
        print(f"wrote {args.out}/metrics.json, {written} and plots")
        return 0
    if args.command == "compare-inference":
        return _compare_inference(args)
    return _crosscheck(args)


if __name__ == "__main__":
    sys.exit(main())
