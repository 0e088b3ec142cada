"""Scaling out on this machine: SVI/MLE fits on 1 and 2 processes (PyTorch Lightning,
DDP over gloo), and NUTS chains vectorized against parallel.

Fits (each process pinned to one torch thread, ``OMP_NUM_THREADS=1``, which Lightning's
ranks follow; the same global minibatch on every side, so all run the same algorithm
and only the work per process differs):

- a Bernoulli VAE (784-400-20, ``loss="mean_field"``) and a MADE (784-500-784) on
  binarized MNIST (sklearn's 8x8 digits, binarized, with ``--quick``), global batch
  ``--batch`` (one process: all of it; two: half each);
- ``pyrogen.fit(..., strategy="ddp_spawn", devices=1 | 2)``, throughput in examples
  per second over the training steps after the first ten (``Fit.diagnostics
  ["step_clock"]``: rank 0's seconds at the end of each step, without process
  start-up, which is reported apart);
- beside them, the same fit in pyrogen's own loop (one process, no Lightning), on one
  thread and on every core (torch's intra-op threads: what one process can do alone).

Ratios: ``*_ddp2_over_ddp1_throughput_ratio`` (the speed-up of the second process),
``*_ddp2_over_loop_all_cores_throughput_ratio`` (two processes against one process on
both cores), ``*_lightning1_over_loop_step_time_ratio`` (Lightning's overhead on one
process).
Medians of ``--repeats`` interleaved runs.

NUTS: 4 chains of a hierarchical model (eight schools, non-centred, in pyro-api) under
NumPyro, ``chain_method="vectorized"`` against ``"parallel"`` (4 CPU devices made
with ``pyrogen.set_host_devices(4)`` at start; this machine has
``os.cpu_count()`` cores), wall seconds; and the same model under Pyro, chains in this
process one after another against chains in worker processes
(``chain_method="parallel"``). Ratios ``nuts_*_parallel_over_*_time_ratio`` (below 1:
parallel is faster).

    python bench/scaling.py            # MNIST (10,000 images), 3 repeats
    python bench/scaling.py --quick    # the VAE on digits, 1 repeat, short chains

The last line printed is one JSON object of the figures; ratios are named *_ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread per process, ranks included

import pyrogen  # noqa: E402

pyrogen.set_host_devices(4)  # before anything runs on JAX

import numpy as np  # noqa: E402
import torch  # noqa: E402
from pyroapi import distributions as dist  # noqa: E402
from pyroapi import pyro  # noqa: E402


def eight_schools(sigma, y=None):
    """Rubin's eight schools, non-centred (Stan's and posteriordb's eight_schools_noncentered)."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("schools", sigma.shape[0]):
        theta_raw = pyro.sample("theta_raw", dist.Normal(0.0, 1.0))
        theta = pyro.deterministic("theta", mu + tau * theta_raw)
        pyro.sample("y", dist.Normal(theta, sigma), obs=y)


SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SCHOOLS_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def images(quick: bool) -> np.ndarray:
    if quick:
        from sklearn.datasets import load_digits

        return (load_digits().data / 16 > 0.5).astype(np.float32)
    return pyrogen.data.load("binarized_mnist", "train")[:10_000].astype(np.float32)


def make(name: str, dim: int):
    from pyrogen.models import MADE, VAE

    torch.manual_seed(0)
    if name == "vae":
        return VAE(dim, latent_dim=20, hidden=(400,), likelihood="bernoulli")
    return MADE(dim, hidden=(500,))


class Clock:
    """A fit callback that notes the time at the end of every step (pyrogen's loop)."""

    def __init__(self):
        self.began, self.times = time.perf_counter(), []

    def __call__(self, step, loss):
        self.times.append(time.perf_counter() - self.began)


CORES = os.cpu_count() or 1
SKIP = 10  # steps left out of the throughput: compilation, DDP's first buckets


def one_fit(name: str, x, processes: int | None, batch: int, steps: int, threads=1) -> dict:
    """Examples per second over the steps after the first ``SKIP`` (each side's own clock
    at the end of each step); ``processes=None``: pyrogen's loop on ``threads`` threads."""
    model = make(name, x.shape[1])
    options = dict(num_steps=steps, lr=1e-3, progress=False, seed=0)
    if name == "vae":
        options["loss"] = "mean_field"
    began = time.perf_counter()
    if processes is None:
        clock = Clock()
        torch.set_num_threads(threads)
        try:
            result = pyrogen.fit(model, x, batch_size=batch, callback=clock, **options)
        finally:
            torch.set_num_threads(1)
        times = np.asarray(clock.times)
    else:
        result = pyrogen.fit(
            model,
            x,
            batch_size=batch // processes,
            strategy="ddp_spawn",
            devices=processes,
            **options,
        )
        times = result.diagnostics["step_clock"]
    total = time.perf_counter() - began
    return {
        "examples_per_second": (steps - SKIP) * batch / (times[-1] - times[SKIP - 1]),
        "startup_seconds": total - times[-1],
        "final_loss": float(np.mean(result.losses[-20:])),
    }


def fits(args, x) -> dict:
    figures = {}
    for name in ("vae",) if args.quick else ("vae", "made"):
        runs = {"loop": [], "loop_all_cores": [], "ddp1": [], "ddp2": []}
        sides = (("loop", None, 1), ("loop_all_cores", None, CORES), ("ddp1", 1, 1), ("ddp2", 2, 1))
        for _ in range(args.repeats):  # interleaved
            for key, processes, threads in sides:
                runs[key].append(one_fit(name, x, processes, args.batch, args.steps, threads))
        median = {
            key: {k: float(np.median([r[k] for r in rs])) for k in rs[0]}
            for key, rs in runs.items()
        }
        for key, values in median.items():
            figures[f"{name}_{key}_examples_per_second"] = round(values["examples_per_second"], 1)
            figures[f"{name}_{key}_final_loss"] = round(values["final_loss"], 3)
            if key.startswith("ddp"):
                figures[f"{name}_{key}_startup_seconds"] = round(values["startup_seconds"], 2)
        rate = {k: v["examples_per_second"] for k, v in median.items()}
        figures[f"{name}_ddp2_over_ddp1_throughput_ratio"] = round(rate["ddp2"] / rate["ddp1"], 3)
        figures[f"{name}_ddp2_over_loop_all_cores_throughput_ratio"] = round(
            rate["ddp2"] / rate["loop_all_cores"], 3
        )
        figures[f"{name}_lightning1_over_loop_step_time_ratio"] = round(
            rate["loop"] / rate["ddp1"], 3
        )
        print(
            f"{name}: examples/s, one thread per process: pyrogen's loop {rate['loop']:.0f}, "
            f"Lightning 1 process {rate['ddp1']:.0f}, 2 processes {rate['ddp2']:.0f} "
            f"(x{rate['ddp2'] / rate['ddp1']:.2f}); pyrogen's loop on {CORES} threads "
            f"{rate['loop_all_cores']:.0f}; "
            f"start-up {median['ddp2']['startup_seconds']:.1f} s; last-20-step loss "
            f"{median['loop']['final_loss']:.2f} / {median['ddp1']['final_loss']:.2f} / "
            f"{median['ddp2']['final_loss']:.2f}",
            flush=True,
        )
    return figures


def nuts(args) -> dict:
    from pyrogen.compat import backend  # noqa: F401  (the NumPyro pyro-api backend)

    data = (torch.as_tensor(SCHOOLS_SIGMA), torch.as_tensor(SCHOOLS_Y))
    options = dict(
        method="nuts",
        num_chains=4,
        num_warmup=args.draws,
        num_samples=args.draws,
        progress=False,
        target_accept=0.9,
    )
    seconds = {}
    for backend_name, methods in (
        ("numpyro", ("vectorized", "parallel")),
        ("pyro", ("sequential", "parallel")),
    ):
        for method in methods:
            times = []
            for repeat in range(args.repeats if backend_name == "numpyro" else 1):
                began = time.perf_counter()
                result = pyrogen.fit(
                    eight_schools,
                    *data,
                    backend=backend_name,
                    chain_method=method,
                    seed=repeat,
                    **options,
                )
                times.append(time.perf_counter() - began)
                assert result.diagnostics["chain_method"] == method, result.diagnostics
            seconds[(backend_name, method)] = float(np.median(times))
    figures = {f"nuts_{b}_{m}_seconds": round(s, 2) for (b, m), s in seconds.items()}
    figures["nuts_numpyro_parallel_over_vectorized_time_ratio"] = round(
        seconds[("numpyro", "parallel")] / seconds[("numpyro", "vectorized")], 3
    )
    figures["nuts_pyro_parallel_over_sequential_time_ratio"] = round(
        seconds[("pyro", "parallel")] / seconds[("pyro", "sequential")], 3
    )
    print(
        "NUTS, 4 chains of eight schools: NumPyro vectorized "
        f"{seconds[('numpyro', 'vectorized')]:.1f} s, parallel "
        f"{seconds[('numpyro', 'parallel')]:.1f} s; Pyro one after another "
        f"{seconds[('pyro', 'sequential')]:.1f} s, in processes "
        f"{seconds[('pyro', 'parallel')]:.1f} s",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--draws", type=int, default=None)
    args = parser.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.steps = args.steps or (60 if args.quick else 300)
    args.draws = args.draws or (100 if args.quick else 1000)
    torch.set_num_threads(1)
    x = images(args.quick)
    figures = {
        "cores": os.cpu_count(),
        "images": int(x.shape[0]),
        "pixels": int(x.shape[1]),
        "batch": args.batch,
        "steps": args.steps,
        "quick": args.quick,
    }
    figures.update(fits(args, x))
    figures.update(nuts(args))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
