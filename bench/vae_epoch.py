"""One epoch of a VAE on binarized MNIST: pyrogen against hand-written PyTorch.

Both sides train the same 784-400-50 MLP VAE (softplus hidden units, Bernoulli
decoder, Gaussian encoder) with Adam (lr 1e-3), batch 128, the same batch order and
the same initial weights, on the negative ELBO with the KL in closed form and one
reparameterized draw per example:

- pyrogen: ``pyrogen.fit(VAE((784,)), x, method="svi", loss="mean_field",
  batch_size=128, num_epochs=1)`` (the engine's loop, progress bar off);
- PyTorch: the textbook loop (encoder, rsample, decoder, BCE-with-logits + KL,
  backward, step).

Reported: seconds per epoch (median of ``--repeats`` runs, each side alternately)
and ``epoch_time_ratio`` = pyrogen / PyTorch (1 means no overhead), plus the mean
training loss of each side's last 50 steps (the two should agree: same model, same
optimizer). Then, for reference, stock Pyro (``SVI`` + ``Trace_ELBO`` on the same
modules, a plain loop: ``stock_pyro_time_ratio``) and pyrogen's engine with Pyro's own
ELBO evaluation (``fast_elbo=False``: ``pyro_elbo_over_fast_elbo_ratio`` is what the
trace-free ELBO of :mod:`pyrogen.infer.fast_elbo` saves). pyrogen's engine steps
torch's fused Adam kernel (``torch.optim.Adam(fused=True)``); the textbook loop uses
torch's default Adam (``epoch_time_ratio``), and the same loop with the fused kernel
gives ``same_adam_kernel_epoch_time_ratio``: pyrogen's own overhead alone, with the
optimizer's arithmetic identical on both sides.

    python bench/vae_epoch.py           # a full epoch (50,000 images), 3 repeats
    python bench/vae_epoch.py --quick   # 10,000 images, 1 repeat
    python bench/vae_epoch.py --device cuda   # the same on a GPU

The last line printed is one JSON object of the figures; ratios are named *_ratio.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np
import torch
from torch.nn import functional as F

BATCH = 128


def batches(n: int, seed: int) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return list(order.split(BATCH))


def _sync(x):
    if x.is_cuda:
        torch.cuda.synchronize()


def run_pyrogen(vae, x, seed, fast_elbo=True):
    import pyro

    import pyrogen

    pyro.clear_param_store()
    torch.manual_seed(seed)  # fit reseeds: the batch order is drawn from this seed
    _sync(x)
    began = time.perf_counter()
    fit = pyrogen.fit(
        vae,
        x,
        method="svi",
        loss="mean_field",
        lr=1e-3,
        batch_size=BATCH,
        num_epochs=1,
        seed=seed,
        progress=False,
        device=x.device,
        fast_elbo=fast_elbo,
    )
    _sync(x)
    return time.perf_counter() - began, float(np.mean(fit.losses[-50:]))


def run_pyrogen_pyro_elbo(vae, x, seed):
    """pyrogen's engine with Pyro's own TraceMeanField_ELBO (``fast_elbo=False``)."""
    return run_pyrogen(vae, x, seed, fast_elbo=False)


def run_torch(vae, x, seed, fused=None):
    vae.to(x.device)
    encoder, decoder = vae.encoder, vae.decoder
    params = list(encoder.parameters()) + list(decoder.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3, fused=fused)
    n = len(x)
    order = [index.to(x.device) for index in batches(n, seed)]
    losses = []
    _sync(x)
    began = time.perf_counter()
    for index in order:
        batch = x[index]
        loc, scale = encoder(batch)
        z = loc + scale * torch.randn_like(loc)
        logits = decoder(z)
        nll = F.binary_cross_entropy_with_logits(logits, batch, reduction="none").sum(-1)
        kl = 0.5 * (loc**2 + scale**2 - 1).sum(-1) - scale.log().sum(-1)
        loss = (nll + kl).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    _sync(x)
    seconds = time.perf_counter() - began
    return seconds, float(torch.stack(losses[-50:]).mean())


def run_torch_fused(vae, x, seed):
    """The hand-written loop with torch's fused Adam kernel (``fused=True``), the one
    pyrogen's engine runs: the same optimizer kernel on both sides."""
    return run_torch(vae, x, seed, fused=True)


def run_stock_pyro(vae, x, seed):
    """Pyro's own SVI loop with Trace_ELBO on the zoo model (no pyrogen engine)."""
    import pyro
    from pyro.infer import SVI, Trace_ELBO

    pyro.clear_param_store()
    vae.to(x.device)
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    losses = []
    _sync(x)
    began = time.perf_counter()
    for index in batches(len(x), seed):
        losses.append(svi.step(x[index.to(x.device)], num_examples=len(x)) / len(x))
    _sync(x)
    return time.perf_counter() - began, float(np.mean(losses[-50:]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 images, one repeat")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--device", default="cpu", help="e.g. cuda")
    options = parser.parse_args(argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    from pyrogen.models import VAE

    import pyrogen

    x = pyrogen.data.load("binarized_mnist", split="train")
    x = torch.as_tensor(x, dtype=torch.float32).to(options.device)
    if options.quick:
        x = x[:10000]
    repeats = options.repeats or (1 if options.quick else 3)
    torch.manual_seed(0)
    template = VAE((784,), latent_dim=50, hidden=(400,))
    runners = {
        "pyrogen": run_pyrogen,
        "torch": run_torch,
        "torch_fused": run_torch_fused,
        "pyrogen_pyro_elbo": run_pyrogen_pyro_elbo,
        "stock_pyro": run_stock_pyro,
    }
    times = {name: [] for name in runners}
    losses = {}
    run_torch(copy.deepcopy(template), x[:2048], 0)  # warm-up: allocator, kernels
    run_pyrogen(copy.deepcopy(template), x[:2048], 0)
    for repeat in range(repeats):
        for name, runner in runners.items():
            seconds, loss = runner(copy.deepcopy(template), x, repeat)
            times[name].append(seconds)
            losses[name] = loss
            print(f"repeat {repeat}: {name:<17} {seconds:7.2f} s   loss (last 50) {loss:.2f}")
    median = {k: float(np.median(v)) for k, v in times.items()}
    figures = {
        "quick": options.quick,
        "images": len(x),
        "batch_size": BATCH,
        "threads": torch.get_num_threads(),
        "device": str(x.device),
        "pyrogen_seconds": median["pyrogen"],
        "pyrogen_pyro_elbo_seconds": median["pyrogen_pyro_elbo"],
        "torch_seconds": median["torch"],
        "torch_fused_adam_seconds": median["torch_fused"],
        "stock_pyro_seconds": median["stock_pyro"],
        "pyrogen_loss": losses["pyrogen"],
        "torch_loss": losses["torch"],
        "epoch_time_ratio": median["pyrogen"] / median["torch"],
        "same_adam_kernel_epoch_time_ratio": median["pyrogen"] / median["torch_fused"],
        "stock_pyro_time_ratio": median["stock_pyro"] / median["torch"],
        "pyro_elbo_over_fast_elbo_ratio": median["pyrogen_pyro_elbo"] / median["pyrogen"],
    }
    print(
        f"epoch of {len(x)} images: pyrogen {median['pyrogen']:.2f} s, PyTorch "
        f"{median['torch']:.2f} s (ratio {figures['epoch_time_ratio']:.3f}), PyTorch with "
        f"the fused Adam {median['torch_fused']:.2f} s (ratio "
        f"{figures['same_adam_kernel_epoch_time_ratio']:.3f}); stock Pyro "
        f"{median['stock_pyro']:.2f} s (ratio {figures['stock_pyro_time_ratio']:.3f}); pyrogen "
        f"with Pyro's own ELBO {median['pyrogen_pyro_elbo']:.2f} s"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
