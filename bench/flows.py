"""pyrogen's normalizing flows against zuko's of the same kind and size.

Pairs (pyrogen / zuko 1.x), the same depth and hidden widths, Adam with the same
learning rate, batch size and number of epochs, float32:

- NICE (additive couplings and a final scaling, both on a normal base; zuko's side
  built from its ``GeneralCouplingTransform`` with ``AdditiveTransform``, since its
  ``NICE`` class is affine),
- RealNVP (affine coupling; pyrogen's in ``--realnvp-direction``, default "density"
  as zuko's, with its log-scale bound ``--scale-bound``, default 5),
- MAF (affine autoregressive, density direction: one pass per log_prob),
- NSF (autoregressive rational-quadratic splines, 8 bins; pyrogen's on [-5, 5] as
  zuko's).

Data:

- ``moons``, ``checkerboard`` and ``ring`` (:mod:`pyrogen.toy`, exact log-densities known):
  10,000 draws to fit (``--quick``: 2,000), 2,000 to select the epoch, 5,000 to
  score; reported: KL from the truth in nats = test NLL minus the true entropy;
- ``digits``: sklearn's 8x8 digits dequantized (x = (level + u) / 17), in the logit
  space y = logit(0.05 + 0.9 x) for both sides, 1,200 to fit, 200 to select the
  epoch, 397 to score; reported: bits per pixel of the discrete images
  (-log2 p(x) / 64 + log2 17, the logit map's Jacobian added back).

The multiscale image flow (``--glow``, on by default): pyrogen's ``Glow`` against
normflows' Glow of the same size (``GlowBlock``: actnorm, LU 1x1 convolution, affine
coupling with a 3x3-1x1-3x3 network and sigmoid scales; ``Squeeze``, ``Merge``, a
standard normal ``DiagGaussian`` per level, its ``Logit`` transform), 2 levels of
``--glow-steps`` steps with ``--glow-hidden`` channels, on the digits as 1x8x8 images
(x in [0, 1]), the same protocol and ``--seeds``; ``glow_digits_step_time_ratio`` and
the bits per pixel of each.

Flows inside a VAE (``--vae``, on by default): the Gaussian VAE (latent 8, hidden 128)
against the same VAE with a 2-step IAF posterior (``posterior_flow=2``), a 2-layer MAF
prior (``prior_flow=2``) and both, ``--vae-epochs`` epochs on the digits (x in
[0, 1]^64, 1400 to fit), scored by the importance-weighted log p(x) of the 397 test
images (K = 1000): ``vae_iaf_minus_vae_nats`` and the others (above 0: the flow
helps).

Flow guides (``--guides``, on by default): on the banana x ~ N(0, 1),
y | x ~ N(x^2, 0.3^2) (normalized, so the negative ELBO is KL(q || p)), pyrogen's
``AutoFlow`` with the zoo's IAF layers against Pyro's ``AutoIAFNormal`` (2 layers each,
3,000 Adam steps of lr 0.01, seeds 0 to ``--guide-seeds`` - 1; the KL from 4,000
particles): medians, and ``autoflow_iaf_vs_pyro_iaf_kl_ratio``.

pyrogen is fitted by ``pyrogen.fit(flow, x, method="mle", batch_size=B,
num_epochs=E, callback=...)``; zuko by the textbook loop (``-flow().log_prob(x).mean()``,
backward, ``torch.optim.Adam``). Each side keeps the epoch with the best validation
log-likelihood. ``--seeds K`` fits each pair K times (seeds ``--seed`` to ``--seed`` +
K - 1: the weights and the minibatch order; the data stay those of ``--seed``) and
reports the medians of each side's figure and of the per-seed gaps, each seed's
figures (``*_per_seed``) and ``<flow>_<data>_pyrogen_ahead_seeds``, the number of seeds
where pyrogen's NLL is no worse.

Speed: ``--repeats`` interleaved rounds of ``--speed-steps`` training steps on each
side (the same minibatches), medians compared: ``<flow>_<data>_step_time_ratio`` is
pyrogen's seconds per step over zuko's (the target: at most 1.0),
``<flow>_<data>_nll_gap`` pyrogen's test NLL minus zuko's (nats per example; above 0:
pyrogen is worse).

    python bench/flows.py           # about 10 minutes on 2 cores
    python bench/flows.py --quick   # under a minute

The last line printed is one JSON object of the figures; ratios are named *_ratio.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import time

import numpy as np
import torch
from _fitting import fit_pyrogen, fit_textbook

FLOWS = ("nice", "realnvp", "maf", "nsf")
DATA = ("moons", "checkerboard", "ring", "digits")
ALPHA = 0.05  # the logit map of the digits


def load(name: str, quick: bool, seed: int) -> dict:
    """Train, valid and test arrays (float32) and how to turn an NLL into the figure."""
    import pyrogen
    from pyrogen import toy

    if name == "digits":
        x, _ = pyrogen.data.dequantized_digits(seed=seed)
        y = np.log(ALPHA + (1 - 2 * ALPHA) * x) - np.log1p(-(ALPHA + (1 - 2 * ALPHA) * x))
        # log |dy/dx| per image, added to log p(y) to give log p(x)
        p = ALPHA + (1 - 2 * ALPHA) * x
        log_jacobian = (math.log(1 - 2 * ALPHA) - np.log(p) - np.log1p(-p)).sum(1)
        parts = (slice(0, 1200), slice(1200, 1400), slice(1400, None))
        splits = [torch.as_tensor(y[s], dtype=torch.float32) for s in parts]
        test_jacobian = float(log_jacobian[parts[2]].mean())
        return {
            "splits": splits,
            "figure": "bits_per_dim",
            # NLL of y -> bits per pixel of the 17-level images
            "convert": lambda nll: (nll - test_jacobian) / (64 * math.log(2)) + math.log2(17),
        }
    n = 2000 if quick else 10000
    draws = [toy.sample(name, size, seed=seed + i) for i, size in enumerate((n, 2000, 5000))]
    entropy = -float(np.mean(toy.log_density(name, draws[2])))
    return {
        "splits": [torch.as_tensor(d, dtype=torch.float32) for d in draws],
        "figure": "kl_from_truth",
        "convert": lambda nll: nll - entropy,
    }


def build(flow: str, dim: int, options) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The pair, pyrogen's and zuko's, of the same kind and size."""
    import zuko
    from pyrogen.models import MAF, NICE, NSF, RealNVP

    layers, hidden = options.layers, (options.hidden,) * 2
    zuko_options = {"transforms": layers, "hidden_features": hidden}
    if flow == "nice":
        return NICE((dim,), layers, hidden, base="normal"), zuko_nice(dim, layers, hidden)
    if flow == "realnvp":
        ours = RealNVP((dim,), layers, hidden, direction=options.realnvp_direction,
                       scale_bound=options.scale_bound)  # fmt: skip
        return ours, zuko.flows.RealNVP(dim, **zuko_options)
    if flow == "maf":
        return MAF((dim,), layers, hidden), zuko.flows.MAF(dim, **zuko_options)
    ours = NSF((dim,), layers, hidden, bins=8, bound=5.0, autoregressive=True)
    return ours, zuko.flows.NSF(dim, bins=8, **zuko_options)


def zuko_nice(dim: int, layers: int, hidden) -> torch.nn.Module:
    """NICE in zuko's parts: additive couplings with alternating masks and a final
    elementwise affine map (zuko's own ``NICE`` class is affine, i.e. RealNVP)."""
    import zuko
    from zuko.flows import Flow, GeneralCouplingTransform, UnconditionalTransform

    couplings = [
        GeneralCouplingTransform(
            dim,
            mask=torch.arange(dim) % 2 == i % 2,
            univariate=zuko.transforms.AdditiveTransform,
            shapes=[()],
            hidden_features=hidden,
        )  # fmt: skip
        for i in range(layers)
    ]
    zeros = torch.zeros(dim)
    scaling = UnconditionalTransform(zuko.transforms.MonotonicAffineTransform, zeros, zeros)
    base = zuko.flows.UnconditionalDistribution(
        zuko.distributions.DiagNormal, zeros, torch.ones(dim), buffer=True
    )
    return Flow([*couplings, scaling], base)


def _zuko_nll(flow, x: torch.Tensor) -> float:
    with torch.no_grad():
        return -float(flow().log_prob(x).mean())


def _ours_nll(model, x: torch.Tensor) -> float:
    return -float(model.log_prob(x).mean())


def fit_ours(model, train, valid, options, epochs: int) -> dict:
    """pyrogen.fit, keeping the epoch with the best validation log-likelihood."""
    return fit_pyrogen(model, train, lambda m: _ours_nll(m, valid), options, epochs)


def fit_zuko(flow, train, valid, options, epochs: int) -> dict:
    """The textbook loop, keeping the epoch with the best validation log-likelihood."""
    return fit_textbook(flow, train, lambda f: _zuko_nll(f, valid), options, epochs)


def step_times(ours, theirs, train, options) -> tuple[float, float]:
    """Median seconds per training step over interleaved rounds of ``speed_steps``
    steps on each side (the same minibatch size)."""
    import pyro

    import pyrogen

    steps = options.speed_steps

    def run_ours():
        pyro.clear_param_store()
        model = copy.deepcopy(ours).train()
        pyrogen.fit(model, train, method="mle", lr=options.lr, batch_size=options.batch_size,
                    num_steps=steps, progress=False)  # fmt: skip

    def run_theirs():
        flow = copy.deepcopy(theirs)
        optimizer = torch.optim.Adam(flow.parameters(), lr=options.lr)
        order = torch.randperm(len(train))
        for i in range(steps):
            start = (i * options.batch_size) % len(train)
            batch = train[order[start : start + options.batch_size]]
            loss = -flow().log_prob(batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    times = {"ours": [], "theirs": []}
    run_ours(), run_theirs()  # warm-up
    for r in range(options.repeats):
        order = [("ours", run_ours), ("theirs", run_theirs)]
        for name, run in order if r % 2 == 0 else order[::-1]:
            began = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - began) / steps)
    return statistics.median(times["ours"]), statistics.median(times["theirs"])


def fit_pair(flow: str, train, valid, test, options, epochs: int, seed: int) -> dict:
    """One seed: both sides built from ``seed`` (weights and minibatch order), fitted,
    scored on the test set; the starting states kept for the speed rounds."""
    options = copy.copy(options)
    options.seed = seed
    torch.manual_seed(seed)
    ours, theirs = build(flow, train.shape[1], options)
    starts = copy.deepcopy(ours), copy.deepcopy(theirs)
    ours_best = fit_ours(ours, train, valid, options, epochs)
    theirs_best = fit_zuko(theirs, train, valid, options, epochs)
    return {
        "ours_nll": _ours_nll(ours, test),
        "theirs_nll": _zuko_nll(theirs, test),
        "ours_epoch": ours_best["epoch"],
        "theirs_epoch": theirs_best["epoch"],
        "starts": starts,
    }


def bench_pair(flow: str, data_name: str, data: dict, options) -> dict:
    """Both sides over ``--seeds`` seeds on the same data: the median figure of each,
    the median of the per-seed NLL gaps, each seed's figures, and the step times."""
    train, valid, test = data["splits"]
    epochs = options.epochs if data_name != "digits" else options.digits_epochs
    seeds = range(options.seed, options.seed + options.seeds)
    runs = [fit_pair(flow, train, valid, test, options, epochs, seed) for seed in seeds]
    ours_step, theirs_step = step_times(*runs[0]["starts"], train, options)
    key = f"{flow}_{data_name}"
    return summarize(key, "zuko", data["figure"], data["convert"], runs, ours_step, theirs_step)


def summarize(key, baseline, figure, convert, runs, ours_step, theirs_step) -> dict:
    """The figures of a pair over seeds: the median figure of each side, the median of
    the per-seed NLL gaps, the seeds where pyrogen's NLL is no worse, the median best
    epochs, the step times, and each seed's figures when there are several."""
    ours_figures = [convert(run["ours_nll"]) for run in runs]
    theirs_figures = [convert(run["theirs_nll"]) for run in runs]
    gaps = [run["ours_nll"] - run["theirs_nll"] for run in runs]
    figures = {
        f"{key}_pyrogen_{figure}": statistics.median(ours_figures),
        f"{key}_{baseline}_{figure}": statistics.median(theirs_figures),
        f"{key}_nll_gap": statistics.median(gaps),
        f"{key}_pyrogen_ahead_seeds": sum(gap <= 0 for gap in gaps),
        f"{key}_pyrogen_best_epoch": statistics.median(run["ours_epoch"] for run in runs),
        f"{key}_{baseline}_best_epoch": statistics.median(run["theirs_epoch"] for run in runs),
        f"{key}_pyrogen_step_ms": 1000 * ours_step,
        f"{key}_{baseline}_step_ms": 1000 * theirs_step,
        f"{key}_step_time_ratio": ours_step / theirs_step,
    }
    if len(runs) > 1:
        figures[f"{key}_pyrogen_{figure}_per_seed"] = ours_figures
        figures[f"{key}_{baseline}_{figure}_per_seed"] = theirs_figures
    return figures


# -- the multiscale image flow ----------------------------------------------------------
class NormflowsGlow(torch.nn.Module):
    """normflows' Glow on 1x8x8 images, levels of ``steps`` GlowBlocks, with the same
    interface as a zuko flow here: ``flow().log_prob(x)``."""

    def __init__(self, levels: int, steps: int, hidden: int, shape=(1, 8, 8), alpha=ALPHA):
        import normflows as nf

        super().__init__()
        c, h, w = shape
        q0, flows, merges = [], [], []
        for i in range(levels):
            blocks = [
                nf.flows.GlowBlock(c * 2 ** (levels + 1 - i), hidden, split_mode="channel")
                for _ in range(steps)
            ]
            flows.append([*blocks, nf.flows.Squeeze()])
            if i > 0:
                merges.append(nf.flows.Merge())
                k = levels - i
                latent = (c * 2**k, h // 2**k, w // 2**k)
            else:
                latent = (c * 2 ** (levels + 1), h // 2**levels, w // 2**levels)
            q0.append(nf.distributions.DiagGaussian(latent, trainable=False))
        self.model = nf.MultiscaleFlow(
            q0, flows, merges, transform=nf.transforms.Logit(alpha), class_cond=False
        )

    def forward(self):
        return self

    def log_prob(self, x):
        return self.model.log_prob(x, None)


def bench_glow(options) -> dict:
    """Glow on the digits (1x8x8, 17 levels): bits per pixel over ``--seeds`` seeds
    (medians, as the pairs above) and step time."""
    from pyrogen.models import Glow

    import pyrogen

    x, _ = pyrogen.data.dequantized_digits(seed=options.seed)
    images = torch.as_tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8)
    train, valid, test = images[:1200], images[1200:1400], images[1400:]
    levels, steps, hidden = 2, options.glow_steps, options.glow_hidden
    to_bits = lambda nll: nll / (64 * math.log(2)) + math.log2(17)  # noqa: E731
    runs = []
    for seed in range(options.seed, options.seed + options.seeds):
        seeded = copy.copy(options)
        seeded.seed = seed
        torch.manual_seed(seed)
        ours = Glow((1, 8, 8), levels, steps, hidden, alpha=ALPHA, data_levels=17)
        theirs = NormflowsGlow(levels, steps, hidden)
        starts = copy.deepcopy(ours), copy.deepcopy(theirs)
        with torch.no_grad():  # normflows' actnorm starts from the first batch, as ours
            theirs.log_prob(train[: options.batch_size])
            ours.train()
            ours.log_prob(train[: options.batch_size])
        ours_best = fit_ours(ours, train, valid, seeded, options.glow_epochs)
        theirs_best = fit_zuko(theirs, train, valid, seeded, options.glow_epochs)
        runs.append({
            "ours_nll": _ours_nll(ours, test), "theirs_nll": _zuko_nll(theirs, test),
            "ours_epoch": ours_best["epoch"], "theirs_epoch": theirs_best["epoch"],
            "starts": starts,
        })  # fmt: skip
    ours_step, theirs_step = step_times(*runs[0]["starts"], train, options)
    return summarize("glow_digits", "normflows", "bits_per_dim", to_bits, runs, ours_step,
                     theirs_step)  # fmt: skip


def bench_vae(options) -> dict:
    """A Gaussian VAE with and without flows on the digits: test log p(x), nats."""
    import pyro
    from pyrogen.models import VAE

    import pyrogen

    x, _ = pyrogen.data.dequantized_digits(seed=options.seed)
    x = x.astype(np.float32)
    variants = {
        "vae": {},
        "vae_iaf": {"posterior_flow": 2},
        "vae_maf_prior": {"prior_flow": 2},
        "vae_both": {"posterior_flow": 2, "prior_flow": 2},
    }
    figures = {}
    for name, flows in variants.items():
        torch.manual_seed(options.seed)
        pyro.clear_param_store()
        vae = VAE((64,), latent_dim=8, hidden=(128,), likelihood="gaussian", flow_hidden=64,
                  **flows)  # fmt: skip
        began = time.perf_counter()
        pyrogen.fit(vae, x[:1400], method="svi", lr=1e-3, batch_size=100,
                    num_epochs=options.vae_epochs, seed=options.seed, progress=False)  # fmt: skip
        figures[f"{name}_train_seconds"] = time.perf_counter() - began
        samples = 50 if options.quick else 1000
        figures[f"{name}_test_log_p"] = float(vae.log_prob(x[1400:], num_samples=samples).mean())
    for name in list(variants)[1:]:
        figures[f"{name}_minus_vae_nats"] = (
            figures[f"{name}_test_log_p"] - figures["vae_test_log_p"]
        )
        figures[f"{name}_train_time_ratio"] = (
            figures[f"{name}_train_seconds"] / figures["vae_train_seconds"]
        )
    return figures


def bench_guides(options) -> dict:
    """AutoFlow's IAF against Pyro's AutoIAFNormal on the banana: median KL(q || p)."""
    import pyro
    import pyro.distributions as dist
    from pyro.infer import Trace_ELBO
    from pyro.infer.autoguide import AutoIAFNormal

    import pyrogen
    from pyrogen.infer import AutoFlow

    def banana():
        x = pyro.sample("x", dist.Normal(0.0, 1.0))
        pyro.sample("y", dist.Normal(x**2, 0.3))

    guides = {
        "pyro_iaf": lambda: AutoIAFNormal(banana, num_transforms=2),
        "autoflow_iaf": lambda: AutoFlow(banana, "iaf", layers=2),
    }
    kls = {name: [] for name in guides}
    for seed in range(options.guide_seeds):
        for name, make in guides.items():
            pyro.clear_param_store()
            pyro.set_rng_seed(seed)
            guide = make()
            pyrogen.fit(banana, method="svi", guide=guide, lr=0.01, seed=seed,
                        num_steps=options.guide_steps, progress=False)  # fmt: skip
            elbo = Trace_ELBO(num_particles=4000, vectorize_particles=True)
            kls[name].append(float(elbo.loss(banana, guide)))
    figures = {f"{name}_banana_kl": statistics.median(v) for name, v in kls.items()}
    figures["autoflow_iaf_vs_pyro_iaf_kl_ratio"] = (
        figures["autoflow_iaf_banana_kl"] / figures["pyro_iaf_banana_kl"]
    )
    return figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    parser.add_argument("--flows", nargs="+", choices=FLOWS, default=list(FLOWS))
    parser.add_argument("--data", nargs="+", choices=DATA, default=list(DATA))
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=40, help="toy densities")
    parser.add_argument("--digits-epochs", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--speed-steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--glow", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--glow-steps", type=int, default=4)
    parser.add_argument("--glow-hidden", type=int, default=64)
    parser.add_argument("--glow-epochs", type=int, default=100)
    parser.add_argument("--vae", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--vae-epochs", type=int, default=150)
    parser.add_argument("--guides", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--guide-seeds", type=int, default=7)
    parser.add_argument("--guide-steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="the data's and the first fit's")
    parser.add_argument(
        "--seeds", type=int, default=1, help="fits per pair (seeds --seed, --seed + 1, ...)"
    )
    parser.add_argument("--realnvp-direction", choices=("density", "sample"), default="density")
    parser.add_argument("--scale-bound", type=float, default=5.0, help="RealNVP's scale_bound")
    options = parser.parse_args(argv)
    if options.quick:
        options.flows = [f for f in options.flows if f in ("realnvp", "maf")]
        options.data = [d for d in options.data if d in ("moons", "digits")]
        options.epochs, options.digits_epochs, options.layers = 3, 3, 3
        options.speed_steps, options.repeats = 20, 3
        options.glow_steps, options.glow_hidden, options.glow_epochs = 2, 16, 2
        options.vae_epochs = 2
        options.guide_seeds, options.guide_steps = 1, 100
    torch.set_num_threads(options.threads)
    torch.set_default_dtype(torch.float32)
    figures: dict = {"quick": options.quick, "layers": options.layers, "hidden": options.hidden}
    for data_name in options.data:
        data = load(data_name, options.quick, options.seed)
        for flow in options.flows:
            pair = bench_pair(flow, data_name, data, options)
            figures.update(pair)
            print(f"{flow:8s} {data_name:13s} " + "  ".join(
                f"{k.split('_', 2)[2]}={v:.4g}" for k, v in pair.items() if not isinstance(v, list)
            ), flush=True)  # fmt: skip
    if options.glow:
        glow = bench_glow(options)
        figures.update(glow)
        cells = [f"{k[12:]}={v:.4g}" for k, v in glow.items() if not isinstance(v, list)]
        print("glow     digits        " + "  ".join(cells), flush=True)
    if options.vae:
        vae = bench_vae(options)
        figures.update(vae)
        print("vae      digits        " + "  ".join(f"{k}={v:.4g}" for k, v in vae.items()))
    if options.guides:
        guides = bench_guides(options)
        figures.update(guides)
        print("guides   banana        " + "  ".join(f"{k}={v:.4g}" for k, v in guides.items()))
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
