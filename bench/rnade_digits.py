"""RNADE on real-valued images: quality against Gaussian mixtures, speed against PyTorch.

1. Quality. scikit-learn's 8x8 digits, dequantized (``pyrogen.data.dequantized_digits``:
   x = (level + u) / 17, a density on [0, 1]^64), the first 1400 images for training
   (1200 to fit, 200 to select) and the other 397 for the test, as in
   ``bench/vae_mnist.py``. RNADE (Uria, Murray and Larochelle 2013: NADE's shared
   sigmoid units, a mixture of Gaussians per conditional) is fitted by
   ``pyrogen.fit(model, z, method="mle", batch_size=100, ...)`` on the standardized
   pixels z, the epoch kept by the valid log-likelihood; against scikit-learn's
   ``GaussianMixture`` (full covariances; the number of components chosen on the same
   valid images; one component is the full-covariance Gaussian). Reported: test
   log-likelihood per image in nats on [0, 1]^64 (the standardization's Jacobian added
   back) and ``rnade_minus_gmm_nats`` (above 0: RNADE is better).
2. Speed, against a hand-written PyTorch RNADE with the same weights: the exact
   log-likelihood of the test images (one vectorized pass: an exclusive running sum of
   the input weights, then every conditional mixture at once; the values are checked
   equal), drawing ``--sample-n`` images (a loop over the pixels carrying the
   pre-activation, O(DH) per image) and ``--speed-epochs`` training epochs (Adam,
   batches of 100).
   Each pair is timed in ``--repeats`` interleaved rounds of about 0.2 s of calls,
   compared by medians:
   ``log_prob_time_ratio``, ``sample_time_ratio``, ``train_time_ratio`` (pyrogen's time
   over the hand-written one; 1.10 is the target).

    python bench/rnade_digits.py           # about 5 minutes on 2 cores
    python bench/rnade_digits.py --quick   # under a minute

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


def digits_splits(seed: int):
    """Train (1200), valid (200) and test (397) images on [0, 1]^64."""
    import pyrogen

    x, _ = pyrogen.data.dequantized_digits(seed=seed)
    return x[:1200], x[1200:1400], x[1400:]


def fit_rnade(train, valid, options) -> tuple[object, dict]:
    """RNADE on standardized pixels, the epoch kept by the valid log-likelihood."""
    import pyro
    from pyrogen.models import RNADE

    import pyrogen

    mean, sd = train.mean(0), train.std(0)
    log_jacobian = -float(np.log(sd).sum())  # log |dz/dx|: back to densities on [0, 1]^64

    def standard(x):
        return torch.as_tensor((x - mean) / sd, dtype=torch.float32)

    z_train, z_valid = standard(train), standard(valid)
    torch.manual_seed(options.seed)
    pyro.clear_param_store()
    model = RNADE((64,), hidden=options.hidden, components=options.components).float()
    steps_per_epoch = math.ceil(len(z_train) / options.batch_size)
    best = {"valid": -math.inf, "epoch": 0, "state": None, "checks": 0}

    def select(step: int, loss: float) -> bool:
        if step % steps_per_epoch:
            return False
        epoch = step // steps_per_epoch
        with torch.no_grad():
            score = float(model.log_prob(z_valid).mean())
        if score > best["valid"]:
            best.update(valid=score, epoch=epoch, checks=0)
            best["state"] = copy.deepcopy(model.state_dict())
        else:
            best["checks"] += 1
        return best["checks"] >= options.patience

    began = time.perf_counter()
    fit = pyrogen.fit(
        model,
        z_train,
        method="mle",
        lr=options.lr,
        batch_size=options.batch_size,
        num_epochs=options.epochs,
        seed=options.seed,
        progress=False,
        callback=select,
    )
    seconds = time.perf_counter() - began
    model.load_state_dict(best["state"])
    return model, {
        "standard": standard,
        "log_jacobian": log_jacobian,
        "epoch": best["epoch"],
        "epochs_run": len(fit.losses) // steps_per_epoch,
        "valid_ll": best["valid"] + log_jacobian,
        "seconds": seconds,
    }


def fit_gmm(train, valid, options) -> tuple[object, dict]:
    """scikit-learn's full-covariance mixture, the component count chosen on valid."""
    from sklearn.mixture import GaussianMixture

    scores = {}
    models = {}
    began = time.perf_counter()
    for k in options.gmm_components:
        gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, n_init=1,
                              random_state=options.seed).fit(train)  # fmt: skip
        models[k], scores[k] = gmm, float(gmm.score(valid))
    best = max(scores, key=scores.get)
    return models[best], {
        "components": best,
        "valid_ll": scores[best],
        "valid_by_components": scores,
        "seconds": time.perf_counter() - began,
    }


# -- a hand-written RNADE, for timing --------------------------------------------------


def log_prob_by_hand(model, z: torch.Tensor) -> torch.Tensor:
    """log p(z) of the same network written out: h_d = sigmoid(c + sum_{j<d} W_j z_j),
    then for every d a K-component mixture whose weights, means and log-scales are
    linear in h_d, its log-density by log-sum-exp."""
    W, c, V, b = model.W, model.c, model.V, model.b
    K = model.config.components
    pre = z[:, :, None] * W.T  # (N, D, H)
    h = torch.sigmoid(c + pre.cumsum(1) - pre)
    out = torch.einsum("ndh,dkh->ndk", h, V) + b  # (N, D, 3K)
    logits, loc, raw = out[..., :K], out[..., K : 2 * K], out[..., 2 * K :]
    scale = F.softplus(raw + math.log(math.e - 1)) + 1e-3
    log_normal = (
        -0.5 * ((z[..., None] - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)
    )
    log_weights = logits - logits.logsumexp(-1, keepdim=True)
    return (log_weights + log_normal).logsumexp(-1).sum(-1)


def sample_by_hand(model, n: int) -> torch.Tensor:
    """n draws, pixel by pixel, the pre-activation carried along (O(DH) per image)."""
    W, c, V, b = model.W, model.c, model.V, model.b
    K = model.config.components
    with torch.no_grad():
        a = c.expand(n, -1).clone()
        z = a.new_empty(n, W.shape[1])
        for d in range(W.shape[1]):
            out = torch.sigmoid(a) @ V[d].T + b[d]
            logits, loc, raw = out[:, :K], out[:, K : 2 * K], out[:, 2 * K :]
            scale = F.softplus(raw + math.log(math.e - 1)) + 1e-3
            k = torch.multinomial(torch.softmax(logits, -1), 1)[:, 0]
            pick = torch.arange(n)
            z[:, d] = loc[pick, k] + scale[pick, k] * torch.randn(n)
            a += z[:, d : d + 1] * W[:, d]
    return z


def _median_times(first, second, repeats, seconds=0.2) -> tuple[float, float]:
    """Median seconds per call of two callables over ``repeats`` interleaved rounds
    (the order alternating), each round calling one of them for about ``seconds``
    (the call count fixed by a warm-up), so that a fast call is not timed alone."""
    calls = []
    for f in (first, second):
        began, n = time.perf_counter(), 0
        while time.perf_counter() - began < seconds / 2 or n < 2:
            f()
            n += 1
        calls.append(max(1, round(n * seconds / (time.perf_counter() - began))))
    times = ([], [])
    for r in range(repeats):
        for i in (0, 1) if r % 2 == 0 else (1, 0):
            f = (first, second)[i]
            began = time.perf_counter()
            for _ in range(calls[i]):
                f()
            times[i].append((time.perf_counter() - began) / calls[i])
    return float(np.median(times[0])), float(np.median(times[1]))


def speed(model, z_test, z_train, options) -> dict:
    import pyro

    import pyrogen

    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        ours, theirs = model.log_prob(z_test), log_prob_by_hand(model, z_test)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-3)

    def log_prob_ours():
        with torch.no_grad():
            model.log_prob(z_test)

    def log_prob_theirs():
        with torch.no_grad():
            log_prob_by_hand(model, z_test)

    figures = {}
    pairs = {
        "log_prob": (log_prob_ours, log_prob_theirs),
        "sample": (
            lambda: model.sample(options.sample_n),
            lambda: sample_by_hand(model, options.sample_n),
        ),  # fmt: skip
    }

    epochs = options.speed_epochs

    def train_ours():
        pyro.clear_param_store()
        pyrogen.fit(copy.deepcopy(model), z_train, method="mle", lr=options.lr,
                    batch_size=100, num_epochs=epochs, progress=False)  # fmt: skip

    def train_theirs():
        network = copy.deepcopy(model).train()
        optimizer = torch.optim.Adam(network.parameters(), lr=options.lr)
        for _ in range(epochs):
            for batch in z_train[torch.randperm(len(z_train))].split(100):
                loss = -log_prob_by_hand(network, batch).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    pairs["train"] = (train_ours, train_theirs)
    for name, (first, second) in pairs.items():
        a, b = _median_times(first, second, options.repeats)
        figures[f"{name}_seconds"] = a
        figures[f"{name}_torch_seconds"] = b
        figures[f"{name}_time_ratio"] = a / b
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run, under a minute")
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--components", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--patience", type=int, default=30, help="epochs without a gain")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--gmm-components", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--sample-n", type=int, default=100)
    parser.add_argument("--speed-epochs", type=int, default=5, help="epochs per timed fit")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    if options.quick:
        options.epochs, options.repeats = min(options.epochs, 20), min(options.repeats, 3)
        options.gmm_components = [k for k in options.gmm_components if k <= 4] or [1]
    if options.threads:
        torch.set_num_threads(options.threads)

    train, valid, test = digits_splits(options.seed)
    rnade, chosen = fit_rnade(train, valid, options)
    with torch.no_grad():
        ll = rnade.log_prob(chosen["standard"](test)) + chosen["log_jacobian"]
    rnade_ll, rnade_se = float(ll.mean()), float(ll.std() / math.sqrt(len(ll)))
    gmm, gmm_chosen = fit_gmm(train, valid, options)
    per_image = gmm.score_samples(test)
    gmm_ll, gmm_se = float(per_image.mean()), float(per_image.std() / math.sqrt(len(test)))
    print(f"1. Dequantized 8x8 digits: train {len(train)}, valid {len(valid)}, test {len(test)}")
    print(
        f"   RNADE ({options.hidden} hidden, {options.components} components): test "
        f"log-likelihood {rnade_ll:.2f} +- {rnade_se:.2f} nats (epoch {chosen['epoch']} of "
        f"{chosen['epochs_run']}, {chosen['seconds']:.0f} s)"
    )
    print(
        f"   GaussianMixture, full covariances, {gmm_chosen['components']} components (of "
        f"{options.gmm_components}, chosen on valid): {gmm_ll:.2f} +- {gmm_se:.2f} nats "
        f"({gmm_chosen['seconds']:.0f} s for all)"
    )
    print(f"   RNADE - GMM: {rnade_ll - gmm_ll:+.2f} nats per image")

    z_train = chosen["standard"](train)
    z_test = chosen["standard"](test)
    timings = speed(rnade, z_test, z_train, options)
    print(f"\n2. Speed against a hand-written PyTorch RNADE ({torch.get_num_threads()} threads)")
    for name, what in (
        ("log_prob", f"log p(x) of {len(test)} images"),
        ("sample", f"{options.sample_n} draws"),
        ("train", f"{options.speed_epochs} training epochs of {len(train)} images"),
    ):
        print(
            f"   {what:34s} pyrogen {timings[f'{name}_seconds']:.4f} s, by hand "
            f"{timings[f'{name}_torch_seconds']:.4f} s, ratio {timings[f'{name}_time_ratio']:.2f}"
        )
    figures = {
        "quick": options.quick,
        "threads": torch.get_num_threads(),
        "rnade_test_ll": rnade_ll,
        "rnade_test_ll_se": rnade_se,
        "rnade_epoch": chosen["epoch"],
        "rnade_valid_ll": chosen["valid_ll"],
        "gmm_test_ll": gmm_ll,
        "gmm_test_ll_se": gmm_se,
        "gmm_components": gmm_chosen["components"],
        "gmm_valid_by_components": gmm_chosen["valid_by_components"],
        "rnade_minus_gmm_nats": rnade_ll - gmm_ll,
        **timings,
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
