"""The zoo's density models on one Fashion-MNIST protocol: bits per pixel of the test
images, with the flows' baselines (zuko, normflows) in the same run.

Protocol (Theis, van den Oord and Bethge 2016; Dinh et al. 2017): Fashion-MNIST's
images (``pyrogen.data.fashion_splits``: random subsets of ``--train`` training,
``--valid`` validation and ``--test`` test images of the 60k/10k split, 50k of the
training set to fit and 10k to select, seed 0), dequantized x = (k + u) / 256. A
continuous model's figure is -log2 p(x) / 784 + 8 bits per pixel, an upper bound on
the 8-bit images' (a discrete model's is their own -log2 P(k) / 784). Every model is
fitted by ``pyrogen.fit`` with Adam, ``--batch-size`` and ``--epochs`` epochs, keeping
the epoch with the best validation figure; one table:

- ``glow``: :class:`pyrogen.models.Glow`, 2 levels of ``--glow-steps`` steps with
  ``--glow-hidden`` channels, on the images in [0, 1] (its own logit map, alpha 0.05),
  against normflows' Glow of the same size (``bench/flows.py``'s ``NormflowsGlow``);
- ``realnvp``, ``maf``: the vector flows on the 784 pixels in the logit space
  y = logit(0.05 + 0.9 x) (its Jacobian added back), ``--layers`` layers of
  ``--hidden`` x 2 units (MAF's ``--maf-hidden``, at least 784 for Pyro's MADE; the
  MAF paper's 1024), against zuko's RealNVP and MAF of the same size fitted by the
  textbook loop on the same batches' sizes and epochs;
- ``vae``: the Gaussian VAE (latent 32, hidden 512) on y, scored by the
  importance-weighted log p(y) (K = ``--vae-samples``);
- ``rnade``: RNADE (``--hidden`` units, 10 components) on y;
- ``wavenet``: the WaveNet-style causal convolutions on the 784 pixels as a sequence
  of 256-way categoricals (``--channels`` channels): a discrete model of the 8-bit
  images themselves.

Baselines: ``<flow>_nll_gap`` is pyrogen's test NLL minus the baseline's (nats per
image; above 0: pyrogen is worse), ``<flow>_bits_ratio`` pyrogen's bits over the
baseline's, ``<flow>_train_time_ratio`` the seconds of the whole fit (validation
included), and on the CPU ``<flow>_step_time_ratio`` the median seconds per training
step over ``--repeats`` interleaved rounds of ``--speed-steps`` steps from both
sides' starting states (``bench/flows.py``'s ``step_times``). The VAE and the
autoregressive models have their baselines in ``bench/vae_mnist.py`` and
``bench/ar_mnist.py``; here they are the table's other rows.

The defaults are a CPU-sized run (5,000 images to fit, 3 epochs: nothing converges; a
few minutes per model on one core). The published-size table (50,000 images, 10,000
to select and 10,000 to score, tens of epochs) is a GPU job:

    python bench/fashion.py --device cuda --train 50000 --valid 10000 --test 10000 \\
        --epochs 100 --glow-steps 8 --glow-hidden 128 --hidden 1024 --channels 64
    python bench/fashion.py                 # CPU-sized
    python bench/fashion.py --train 10000 --valid 1000 --test 2000 --epochs 10
                                            # CPU, one model at a time: 2 to 25 minutes each
    python bench/fashion.py --quick         # under a minute

The last line printed is one JSON object of the figures; ratios are named *_ratio.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from functools import partial

import numpy as np
import torch
from _fitting import fit_pyrogen, fit_textbook
from flows import NormflowsGlow, step_times

MODELS = ("glow", "realnvp", "maf", "vae", "rnade", "wavenet")
ALPHA = 0.05  # the logit map of the vector models
DIM = 784


def load(options) -> dict:
    """The three splits: 8-bit images (N, 28, 28), dequantized images (N, 1, 28, 28)
    in [0, 1], their logits (N, 784) and each logit image's log |dy/dx|."""
    import pyrogen

    sizes = (options.train, options.valid, options.test)
    splits = pyrogen.data.fashion_splits(sizes, seed=0)
    out = {}
    for name, images in zip(("train", "valid", "test"), splits):
        x = pyrogen.data.dequantize(images, 256, seed=len(out))  # (N, 1, 28, 28)
        p = ALPHA + (1 - 2 * ALPHA) * x.reshape(len(x), DIM).astype(np.float64)
        y = np.log(p) - np.log1p(-p)
        jacobian = (math.log(1 - 2 * ALPHA) - np.log(p) - np.log1p(-p)).sum(1)
        out[name] = {
            "levels": torch.as_tensor(images.reshape(len(images), DIM), dtype=torch.float32),
            "images": torch.as_tensor(x, dtype=torch.float32),
            "logits": torch.as_tensor(y, dtype=torch.float32),
            "jacobian": torch.as_tensor(jacobian, dtype=torch.float32),
        }
    return out


def to_bits(log_p: torch.Tensor, split: dict, space: str) -> float:
    """Mean bits per pixel of the 8-bit images from log densities of ``space``."""
    if space == "logits":  # log p(x) = log p(y) + log |dy/dx|
        log_p = log_p + split["jacobian"].to(log_p)
    if space == "levels":  # a discrete model: no dequantization
        return float(-log_p.mean()) / (DIM * math.log(2))
    return float(-log_p.mean()) / (DIM * math.log(2)) + 8.0


def build(name: str, options):
    """(pyrogen's model, the data space it reads, fit's method, the baseline or None)."""
    import zuko
    from pyrogen.models import MAF, RNADE, VAE, Glow, RealNVP, WaveNet

    hidden, layers = (options.hidden,) * 2, options.layers
    if name == "glow":
        steps, width = options.glow_steps, options.glow_hidden
        theirs = NormflowsGlow(2, steps, width, (1, 28, 28))
        return Glow((1, 28, 28), 2, steps, width), "images", "mle", theirs
    if name == "realnvp":
        theirs = zuko.flows.RealNVP(DIM, transforms=layers, hidden_features=hidden)
        return RealNVP((DIM,), layers, hidden), "logits", "mle", theirs
    if name == "maf":  # Pyro's MADE needs widths of at least D
        hidden = (options.maf_hidden,) * 2
        theirs = zuko.flows.MAF(DIM, transforms=layers, hidden_features=hidden)
        return MAF((DIM,), layers, hidden), "logits", "mle", theirs
    if name == "vae":
        vae = VAE((DIM,), latent_dim=32, hidden=(512,), likelihood="gaussian")
        return vae, "logits", "svi", None
    if name == "rnade":
        return RNADE((DIM,), hidden=options.hidden, components=10), "logits", "mle", None
    wavenet = WaveNet((DIM,), channels=options.channels, likelihood="categorical", num_classes=256)
    return wavenet, "levels", "mle", None


def score(model, name: str, split: dict, space: str, options, samples: int) -> float:
    """Bits per pixel of ``split`` under pyrogen's ``model`` (in batches)."""
    log_p = []
    with torch.no_grad():
        for batch in split[space].to(options.device).split(options.eval_batch):
            if name == "vae":
                log_p.append(model.log_prob(batch, num_samples=samples).cpu())
            else:
                log_p.append(model.log_prob(batch).cpu())
    return to_bits(torch.cat(log_p), split, space)


def baseline_bits(flow, split: dict, space: str, options) -> float:
    """Bits per pixel of ``split`` under a baseline flow (in batches)."""
    with torch.no_grad():
        batches = split[space].to(options.device).split(options.eval_batch)
        log_p = torch.cat([flow().log_prob(batch).cpu() for batch in batches])
    return to_bits(log_p, split, space)


def bench_model(name: str, data: dict, options) -> dict:
    torch.manual_seed(options.seed)
    ours, space, method, theirs = build(name, options)
    ours = ours.to(options.device)
    if name == "glow":  # both actnorms start from the first batch
        first = data["train"]["images"][: options.batch_size].to(options.device)
        with torch.no_grad():
            ours.train()
            ours.log_prob(first)
            theirs.to(options.device).log_prob(first)
    timed = theirs is not None and options.device == "cpu"  # step times: the CPU only
    starts = (copy.deepcopy(ours), copy.deepcopy(theirs)) if timed else None
    train, valid = data["train"][space], data["valid"]
    select = partial(score, name=name, split=valid, space=space, options=options, samples=10)
    best = fit_pyrogen(ours, train, select, options, options.epochs, method)
    key = f"fashion_{name}"
    figures = {
        f"{key}_bits_per_dim": score(ours, name, data["test"], space, options, options.vae_samples),
        f"{key}_best_epoch": best["epoch"],
        f"{key}_train_seconds": best["seconds"],
    }
    if theirs is not None:
        baseline = "normflows" if name == "glow" else "zuko"
        select = partial(baseline_bits, split=valid, space=space, options=options)
        other = fit_textbook(theirs, train, select, options, options.epochs)
        other["test_bits"] = baseline_bits(theirs, data["test"], space, options)
        figures[f"{key}_{baseline}_bits_per_dim"] = other["test_bits"]
        figures[f"{key}_{baseline}_best_epoch"] = other["epoch"]
        figures[f"{key}_{baseline}_train_seconds"] = other["seconds"]
        gap_bits = figures[f"{key}_bits_per_dim"] - other["test_bits"]
        figures[f"{key}_nll_gap"] = gap_bits * DIM * math.log(2)
        figures[f"{key}_bits_ratio"] = figures[f"{key}_bits_per_dim"] / other["test_bits"]
        figures[f"{key}_train_time_ratio"] = best["seconds"] / other["seconds"]
        if timed:  # interleaved rounds of steps from the starting states
            ours_step, theirs_step = step_times(*starts, train, options)
            figures[f"{key}_pyrogen_step_ms"] = 1000 * ours_step
            figures[f"{key}_{baseline}_step_ms"] = 1000 * theirs_step
            figures[f"{key}_step_time_ratio"] = ours_step / theirs_step
    return figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--valid", type=int, default=500)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-batch", type=int, default=500)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--layers", type=int, default=5, help="RealNVP's and MAF's layers")
    parser.add_argument("--hidden", type=int, default=256, help="the vector flows', RNADE's")
    parser.add_argument("--maf-hidden", type=int, default=1024, help="at least 784")
    parser.add_argument("--glow-steps", type=int, default=4)
    parser.add_argument("--glow-hidden", type=int, default=32)
    parser.add_argument("--channels", type=int, default=32, help="WaveNet's")
    parser.add_argument("--vae-samples", type=int, default=100, help="test log p(x)'s K")
    parser.add_argument("--speed-steps", type=int, default=50, help="steps per timed round")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed rounds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    if options.quick:
        options.train, options.valid, options.test, options.epochs = 256, 64, 64, 1
        options.hidden, options.glow_steps, options.glow_hidden = 32, 1, 8
        options.maf_hidden = DIM
        options.channels, options.vae_samples, options.layers = 8, 5, 2
        options.speed_steps, options.repeats = 2, 1
    torch.set_num_threads(options.threads)
    torch.set_default_dtype(torch.float32)
    data = load(options)
    figures: dict = {"quick": options.quick, "train": options.train, "epochs": options.epochs}
    for name in options.models:
        row = bench_model(name, data, options)
        figures.update(row)
        cells = [f"{k[len('fashion_') + len(name) + 1 :]}={v:.4g}" for k, v in row.items()]
        print(f"{name:8s} " + "  ".join(cells), flush=True)
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
