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

Then the two-layer hierarchical VAE with the VampPrior (784-300-300, 40 + 40 latents,
500 pseudo-inputs; ``--vamp-steps`` training steps of batch 100, and the
importance-weighted log-likelihood of ``--vamp-eval-images`` test digits with
``--vamp-k`` draws each) against the same networks written out by hand the way the
VampPrior's authors' code computes the prior: each draw's Gaussian log-density under
every pseudo-input's component elementwise, summed, then a logsumexp
(``hvae_vamp_train_time_ratio``, ``hvae_vamp_iwae_time_ratio``; pyrogen's
:class:`~pyrogen.distributions.DiagonalNormalMixture` makes that one matrix product).

    python bench/vae_epoch.py           # a full epoch (50,000 images), 3 repeats
    python bench/vae_epoch.py --quick   # 10,000 images, 1 repeat
    python bench/vae_epoch.py --device cuda   # the same on a GPU

The last line printed is one JSON object of the figures; ratios are named *_ratio.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
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


def _vamp_prior_by_hand(vae):
    """log p(z2) under the VampPrior, elementwise over (draws, K, d) then logsumexp, as
    the authors' code writes it."""
    loc, scale = vae.encoder(torch.sigmoid(vae.raw_pseudo))

    def log_prior(z):
        z = z.unsqueeze(-2)  # (..., 1, d) against (K, d)
        log_normal = -0.5 * ((z - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)
        return log_normal.sum(-1).logsumexp(-1) - math.log(len(loc))

    return log_prior


def _hvae_log_weights(vae, x, log_prior, count):
    """log p(x, z1, z2) - log q(z1, z2 | x) for ``count`` draws per example, by hand."""

    def log_normal(z, loc, scale):
        return torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)

    loc2, scale2 = vae.encoder(x)
    z2 = loc2 + scale2 * torch.randn(count, *loc2.shape)
    xs = x.expand(count, *x.shape)
    loc1, scale1 = vae.bottom_encoder(torch.cat([xs, z2], -1))
    z1 = loc1 + scale1 * torch.randn_like(loc1)
    logits = vae.decoder(torch.cat([z1, z2], -1))
    log_px = -F.binary_cross_entropy_with_logits(logits, xs, reduction="none").sum(-1)
    log_p = log_px + log_normal(z1, *vae.bottom_prior(z2)) + log_prior(z2)
    return log_p - log_normal(z1, loc1, scale1) - log_normal(z2, loc2, scale2)


def hvae_vamp(options, train, test, repeats) -> dict:
    """Training steps and the IWAE evaluation of the two-layer VampPrior VAE: pyrogen
    against the same networks by hand (see the module notes)."""
    import pyro
    from pyrogen.models import HierarchicalVAE

    import pyrogen

    torch.manual_seed(0)
    template = HierarchicalVAE((784,), 40, 40, hidden=(300, 300), prior="vamp")
    template.initialize(train[:5000])
    steps, k, images = options.vamp_steps, options.vamp_k, options.vamp_eval_images
    x = train[: steps * 100]

    def train_pyrogen(vae):
        pyro.clear_param_store()
        began = time.perf_counter()
        pyrogen.fit(
            vae,
            x,
            method="svi",
            loss="mean_field",
            lr=5e-4,
            batch_size=100,
            num_epochs=1,
            seed=0,
            progress=False,
        )
        return time.perf_counter() - began

    def train_torch(vae):
        optimizer = torch.optim.Adam(vae.parameters(), lr=5e-4)
        began = time.perf_counter()
        for index in torch.randperm(len(x)).split(100):
            loss = -_hvae_log_weights(vae, x[index], _vamp_prior_by_hand(vae), 1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return time.perf_counter() - began

    def score_pyrogen(vae):
        began = time.perf_counter()
        vae.log_prob(test[:images], num_samples=k)
        return time.perf_counter() - began

    def score_torch(vae):
        """In blocks of draws no bigger than pyrogen's (about 2**22 numbers)."""
        chunk = max(1, 2**22 // (500 * 40 + 784 + 3 * 300))  # draws per block
        began = time.perf_counter()
        with torch.no_grad():
            log_prior = _vamp_prior_by_hand(vae)
            for example in test[:images].split(1):
                log_w = torch.cat(
                    [
                        _hvae_log_weights(vae, example, log_prior, min(chunk, k - start))
                        for start in range(0, k, chunk)
                    ]
                )
                log_w.logsumexp(0)
        return time.perf_counter() - began

    runners = {
        "train_pyrogen": train_pyrogen,
        "train_torch": train_torch,
        "score_pyrogen": score_pyrogen,
        "score_torch": score_torch,
    }
    times = {name: [] for name in runners}
    for repeat in range(repeats):
        for name, runner in runners.items():
            times[name].append(runner(copy.deepcopy(template)))
            print(f"repeat {repeat}: hvae vamp {name:<14} {times[name][-1]:7.2f} s")
    median = {name: float(np.median(v)) for name, v in times.items()}
    return {
        "hvae_vamp_steps": steps,
        "hvae_vamp_eval_images": images,
        "hvae_vamp_k": k,
        "hvae_vamp_train_pyrogen_seconds": median["train_pyrogen"],
        "hvae_vamp_train_torch_seconds": median["train_torch"],
        "hvae_vamp_iwae_pyrogen_seconds": median["score_pyrogen"],
        "hvae_vamp_iwae_torch_seconds": median["score_torch"],
        "hvae_vamp_train_time_ratio": median["train_pyrogen"] / median["train_torch"],
        "hvae_vamp_iwae_time_ratio": median["score_pyrogen"] / median["score_torch"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 images, one repeat")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--device", default="cpu", help="e.g. cuda")
    parser.add_argument("--vamp-steps", type=int, default=None, help="HVAE steps (100)")
    parser.add_argument("--vamp-k", type=int, default=None, help="HVAE IWAE draws (1000)")
    parser.add_argument("--vamp-eval-images", type=int, default=None, help="(20)")
    parser.add_argument("--no-vamp", action="store_true", help="skip the HVAE VampPrior")
    options = parser.parse_args(argv)
    quick = options.quick
    options.vamp_steps = options.vamp_steps or (10 if quick else 100)
    options.vamp_k = options.vamp_k or (100 if quick else 1000)
    options.vamp_eval_images = options.vamp_eval_images or (5 if quick else 20)
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
    if not options.no_vamp and options.device == "cpu":
        test = pyrogen.data.load("binarized_mnist", split="test")
        test = torch.as_tensor(test, dtype=torch.float32)
        figures.update(hvae_vamp(options, x, test, repeats))
        print(
            f"two-layer VampPrior VAE: {options.vamp_steps} training steps pyrogen "
            f"{figures['hvae_vamp_train_pyrogen_seconds']:.2f} s, by hand "
            f"{figures['hvae_vamp_train_torch_seconds']:.2f} s (ratio "
            f"{figures['hvae_vamp_train_time_ratio']:.3f}); log p(x) of "
            f"{options.vamp_eval_images} digits with K = {options.vamp_k}: pyrogen "
            f"{figures['hvae_vamp_iwae_pyrogen_seconds']:.2f} s, by hand "
            f"{figures['hvae_vamp_iwae_torch_seconds']:.2f} s (ratio "
            f"{figures['hvae_vamp_iwae_time_ratio']:.3f})"
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
