"""DDPM: Analytic-DPM's table on a 2-D density with a known log-density, and training
and sampling speed against a hand-written PyTorch loop and diffusers' schedulers.

Quality (``--data``, the ring of 8 Gaussians by default; :mod:`pyrogen.toy`): a DDPM
with T = 1000 linear-schedule steps and a time-conditioned MLP (3 x 128, noise
prediction) fitted by ``pyrogen.fit(ddpm, x, loss="simple")`` on 10,000 draws
(``--train-steps`` Adam steps of batch 512), then Gamma_t estimated once
(``estimate_moments``) and the NPR and SN second networks fitted with the first one
fixed (``loss="npr"``, ``loss="sn"``, ``--head-steps`` each). For K = 10, 25, 50, 100,
200 and 1000 steps (evenly spaced sub-trajectories) and each reverse variance
(beta-tilde, beta, analytic, NPR, SN):

- the variational bound on 5,000 held-out draws, reported as the KL bound from the
  truth, -bound - H(p) >= KL(p || p_theta) (nats; the smaller the better), the
  figure of Analytic-DPM's Table 1 (there in bits/dim on CIFAR-10);
- the energy distance between 2,000 ancestral samples and 2,000 held-out draws
  (sample quality; and for DDIM, eta = 0, its own).

Target (the papers' trend): the analytic variance below both fixed ones at every K
below the full chain; NPR/SN below the analytic one at small K.

Speed (``--threads`` torch threads, medians of ``--repeats`` interleaved rounds):
``train_step_time_ratio`` is pyrogen's seconds per training step (``pyrogen.fit``,
the simple loss) over a hand-written PyTorch loop with the same network, batch and
optimizer (target at most 1.10); ``train_vs_diffusers_ratio`` over the same loop
noising with diffusers' ``DDPMScheduler.add_noise``; ``sample_time_ratio`` and
``ddim_sample_time_ratio``: 1,000 samples over K = 100 steps by ``ddpm.sample`` over
diffusers' ``DDPMScheduler``/``DDIMScheduler`` stepping the same network.

Fashion-MNIST (``--fashion``, off by default: a GPU job; ``--device cuda``): the
U-Net DDPM (discretized decoder, 256 levels) fitted with checkpoints, then the bound
in bits/dim per K and variance on ``--fashion-test`` test images, and the Frechet
distance of ``--fashion-samples`` samples to them in the feature space of the project's
Fashion-MNIST classifier (:mod:`pyrogen.features`; its test accuracy is reported).

    python bench/ddpm.py           # about 10 minutes on 2 cores
    python bench/ddpm.py --quick   # under a minute

The last line printed is one JSON object of the figures; ratios are named *_ratio.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import numpy as np
import torch

VARIANCES = ("beta_tilde", "beta", "analytic", "npr", "sn")


def fit_model(options, train: torch.Tensor):
    """The 2-D DDPM, its Gamma_t and both second networks."""
    from pyrogen.models import DDPM

    import pyrogen

    heads = {}
    for kind in ("npr", "sn"):
        torch.manual_seed(options.seed)
        model = DDPM([2], hidden=(options.hidden,) * 3, covariance=kind)
        if "mean" not in heads:
            began = time.perf_counter()
            fitted = pyrogen.fit(model, train, num_steps=options.train_steps, batch_size=512,
                                 lr=options.lr, progress=False, seed=options.seed)  # fmt: skip
            heads["train_seconds"] = time.perf_counter() - began
            heads["mean"] = model.network.state_dict()
            heads["final_loss"] = float(np.mean(fitted.losses[-100:]))
        else:
            model.initialize(train)
            model.network.load_state_dict(heads["mean"])
            model.absorb({})
        pyrogen.fit(model, train, loss=kind, num_steps=options.head_steps, batch_size=512,
                    lr=options.lr, progress=False, seed=options.seed)  # fmt: skip
        model.estimate_moments(train)
        heads[kind] = model
    return heads


def quality(options, heads: dict, test: torch.Tensor, truth: torch.Tensor) -> dict:
    """The KL bound and the samples' energy distance per K and variance."""
    from pyrogen import metrics, toy

    entropy = -float(np.mean(toy.log_density(options.data, test.numpy())))
    figures = {}
    for steps in options.steps:
        row = {}
        for variance in VARIANCES:
            model = heads["sn" if variance == "sn" else "npr"]
            bound = model.log_prob(test, steps=steps, variance=variance)
            row[variance] = -float(bound.mean()) - entropy
            draws = model.sample(len(truth), steps=steps, variance=variance, seed=options.seed)
            figures[f"k{steps}_{variance}_energy"] = metrics.energy_distance(draws, truth)
            figures[f"k{steps}_{variance}_kl_bound"] = row[variance]
        ddim = heads["npr"].sample(len(truth), steps=steps, eta=0.0, variance="beta_tilde",
                                   seed=options.seed)  # fmt: skip
        figures[f"k{steps}_ddim_energy"] = metrics.energy_distance(ddim, truth)
        print(f"K={steps:5d}  KL bound " + "  ".join(f"{v}={row[v]:.3f}" for v in VARIANCES)
              + "  | energy " + "  ".join(f"{v}={figures[f'k{steps}_{v}_energy']:.4f}"
              for v in (*VARIANCES, "ddim")), flush=True)  # fmt: skip
    return figures


def _interleaved(runs: dict, repeats: int, per: int) -> dict:
    """Median seconds per unit of each run over interleaved rounds (after a warm-up)."""
    times = {name: [] for name in runs}
    for run in runs.values():
        run()
    names = list(runs)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            began = time.perf_counter()
            runs[name]()
            times[name].append((time.perf_counter() - began) / per)
    return {name: statistics.median(t) for name, t in times.items()}


def _hand_loop(base, train: torch.Tensor, steps: int, lr: float, add_noise=None) -> None:
    """Ho et al.'s Algorithm 1 written out: the baseline training loop."""
    model = copy.deepcopy(base)
    network, alpha_bar = model.network, model.schedule.alpha_bar.float()
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    y = model.to_chain(train)
    order = torch.randperm(len(y))
    for i in range(steps):
        start = (i * 512) % len(y)
        y0 = y[order[start : start + 512]]
        t = torch.randint(1, len(alpha_bar), (len(y0),))
        eps = torch.randn_like(y0)
        if add_noise is None:
            a = alpha_bar[t][:, None]
            y_t = a.sqrt() * y0 + (1 - a).sqrt() * eps
        else:  # diffusers counts steps from 0
            y_t = add_noise(y0, eps, t - 1)
        loss = ((network(y_t, t) - eps) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _schedulers(model):
    import diffusers

    betas = dict(beta_schedule="linear", beta_start=float(model.schedule.betas[0]),
                 beta_end=float(model.schedule.betas[-1]), clip_sample=False)  # fmt: skip
    T = model.config.timesteps
    ddpm = diffusers.DDPMScheduler(num_train_timesteps=T, variance_type="fixed_small", **betas)
    ddim = diffusers.DDIMScheduler(num_train_timesteps=T, set_alpha_to_one=True,
                                   timestep_spacing="trailing", **betas)  # fmt: skip
    return ddpm, ddim


def _diffusers_sample(model, scheduler, n: int, steps: int, **step_options) -> torch.Tensor:
    scheduler.set_timesteps(steps)
    y = torch.randn(n, *model.config.data_shape)
    with torch.no_grad():
        for t in scheduler.timesteps:
            eps = model.network(y, torch.full((n,), int(t) + 1))
            y = scheduler.step(eps, t, y, **step_options).prev_sample
    return model.from_chain(y)


def speed(options, model, train: torch.Tensor) -> dict:
    import pyro

    import pyrogen

    ddpm_scheduler, ddim_scheduler = _schedulers(model)
    steps = options.speed_steps

    def ours():
        pyro.clear_param_store()
        pyrogen.fit(copy.deepcopy(model), train, num_steps=steps, batch_size=512,
                    lr=options.lr, progress=False)  # fmt: skip

    times = _interleaved(
        {
            "ours": ours,
            "loop": lambda: _hand_loop(model, train, steps, options.lr),
            "diffusers": lambda: _hand_loop(
                model, train, steps, options.lr, ddpm_scheduler.add_noise
            ),
        },
        options.repeats,
        steps,
    )
    n, k = options.sample_count, 100
    sampling = _interleaved(
        {
            "ours": lambda: model.sample(n, steps=k, variance="beta_tilde"),
            "ours_ddim": lambda: model.sample(n, steps=k, eta=0.0, variance="beta_tilde"),
            "diffusers": lambda: _diffusers_sample(model, ddpm_scheduler, n, k),
            "diffusers_ddim": lambda: _diffusers_sample(model, ddim_scheduler, n, k, eta=0.0),
        },
        options.repeats,
        1,
    )
    return {
        "train_step_ms": 1e3 * times["ours"],
        "loop_train_step_ms": 1e3 * times["loop"],
        "diffusers_train_step_ms": 1e3 * times["diffusers"],
        "train_step_time_ratio": times["ours"] / times["loop"],
        "train_vs_diffusers_ratio": times["ours"] / times["diffusers"],
        "sample_seconds": sampling["ours"],
        "diffusers_sample_seconds": sampling["diffusers"],
        "sample_time_ratio": sampling["ours"] / sampling["diffusers"],
        "ddim_sample_seconds": sampling["ours_ddim"],
        "diffusers_ddim_sample_seconds": sampling["diffusers_ddim"],
        "ddim_sample_time_ratio": sampling["ours_ddim"] / sampling["diffusers_ddim"],
    }


def fashion(options) -> dict:
    """The U-Net DDPM on Fashion-MNIST: bits/dim per K and variance (GPU work)."""
    from pyrogen.models import DDPM

    import pyrogen
    from pyrogen import data

    sizes = (options.fashion_train, 0, options.fashion_test)
    train, _, test = data.fashion_splits(sizes, seed=options.seed)
    x = torch.as_tensor(data.dequantize(train, seed=options.seed), device=options.device)
    x_test = torch.as_tensor(data.dequantize(test, seed=options.seed + 1), device=options.device)
    model = DDPM([1, 28, 28], channels=options.channels, data_levels=256).to(options.device)
    began = time.perf_counter()
    pyrogen.fit(model, x, num_steps=options.fashion_steps, batch_size=128, lr=options.fashion_lr,
                checkpoint=options.checkpoint, progress=True, seed=options.seed)  # fmt: skip
    figures = {"fashion_train_seconds": time.perf_counter() - began}
    from pyrogen.features import fashion_classifier, fashion_frechet_distance

    classifier = fashion_classifier()
    figures["classifier_test_accuracy"] = classifier.test_accuracy
    for steps in options.steps:
        model.estimate_moments(x, steps=steps)  # Gamma_t at this trajectory's steps
        for variance in ("beta_tilde", "beta", "analytic"):
            bits = model.bits_per_dim(x_test, steps=steps, variance=variance)
            figures[f"fashion_k{steps}_{variance}_bpd"] = float(bits.mean())
            draws = model.sample(options.fashion_samples, steps=steps, variance=variance)
            figures[f"fashion_k{steps}_{variance}_fd"] = fashion_frechet_distance(
                draws.cpu(), test, classifier
            )
        cells = [
            f"{v} {figures[f'fashion_k{steps}_{v}_bpd']:.3f} bpd, "
            f"FD {figures[f'fashion_k{steps}_{v}_fd']:.2f}"
            for v in ("beta_tilde", "beta", "analytic")
        ]
        print(f"fashion K={steps}: " + "  ".join(cells), flush=True)
    return figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    parser.add_argument("--data", default="ring")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--train-steps", type=int, default=20000)
    parser.add_argument("--head-steps", type=int, default=5000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50, 100, 200, 1000])
    parser.add_argument("--test-size", type=int, default=5000)
    parser.add_argument("--sample-size", type=int, default=2000)
    parser.add_argument("--speed-steps", type=int, default=100)
    parser.add_argument("--sample-count", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--toy", action=argparse.BooleanOptionalAction, default=True,
                        help="the 2-D table and the speed figures")  # fmt: skip
    parser.add_argument("--fashion", action="store_true", help="the U-Net on Fashion-MNIST")
    parser.add_argument("--fashion-train", type=int, default=50000)
    parser.add_argument("--fashion-lr", type=float, default=2e-4)
    parser.add_argument("--fashion-steps", type=int, default=100000)
    parser.add_argument("--fashion-test", type=int, default=1000)
    parser.add_argument("--fashion-samples", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    if options.quick:
        options.train_steps, options.head_steps, options.steps = 200, 100, [10, 50]
        options.test_size, options.sample_size, options.hidden = 300, 300, 64
        options.speed_steps, options.repeats, options.sample_count = 10, 3, 100
    torch.set_num_threads(options.threads)
    from pyrogen import toy

    train = torch.as_tensor(toy.sample(options.data, 10000, seed=options.seed), dtype=torch.float32)
    test = torch.as_tensor(toy.sample(options.data, options.test_size, seed=options.seed + 1),
                           dtype=torch.float32)  # fmt: skip
    truth = torch.as_tensor(toy.sample(options.data, options.sample_size, seed=options.seed + 2),
                            dtype=torch.float32)  # fmt: skip
    figures: dict = {"quick": options.quick, "data": options.data, "threads": options.threads}
    if options.toy:
        figures.update(toy_figures(options, train, test, truth))
    if options.fashion:
        figures.update(fashion(options))
    print(json.dumps(figures))
    return figures


def toy_figures(options, train, test, truth) -> dict:
    """The 2-D table and the speed figures."""
    figures = {}
    heads = fit_model(options, train)
    figures.update(train_seconds=heads["train_seconds"], final_loss=heads["final_loss"])
    figures.update(quality(options, heads, test, truth))
    below = [s for s in options.steps if s < 1000]
    figures["analytic_beats_fixed_at_every_k"] = all(
        figures[f"k{s}_analytic_kl_bound"]
        < min(figures[f"k{s}_beta_kl_bound"], figures[f"k{s}_beta_tilde_kl_bound"])
        for s in below
    )
    k = min(options.steps)
    figures[f"k{k}_analytic_over_beta_kl_ratio"] = (
        figures[f"k{k}_analytic_kl_bound"] / figures[f"k{k}_beta_kl_bound"]
    )
    figures[f"k{k}_npr_over_analytic_kl_ratio"] = (
        figures[f"k{k}_npr_kl_bound"] / figures[f"k{k}_analytic_kl_bound"]
    )
    figures.update(speed(options, heads["npr"], train))
    timings = {k: v for k, v in figures.items() if "time" in k or "_ms" in k or "seconds" in k}
    print("speed: " + "  ".join(f"{k}={v:.4g}" for k, v in timings.items()))
    return figures


if __name__ == "__main__":
    main()
