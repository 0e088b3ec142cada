"""VAE quality: test NLL on statically binarized MNIST, and a Gaussian VAE on digits.

1. Binarized MNIST (Larochelle and Murray's split; ``shared/data``): a pyrogen VAE
   (``pyrogen.fit(VAE(...), x, method="svi", loss="mean_field", batch_size=100,
   num_epochs=E)``) trained on ``train``, the epoch kept by the ELBO on ``valid``
   (checked every ``--eval-every`` epochs, stopped after ``--patience`` checks
   without gain or at ``--max-minutes``), reported on ``test``: the ELBO and the
   importance-weighted estimate of log p(x) with K = 5000 (the IWAE estimator of
   Burda et al. 2016, the literature's protocol). The named baseline is the
   published figure for the same split: a one-stochastic-layer VAE with the standard
   prior 88.56 nats, with the VampPrior 85.57; two stochastic layers (``--layers 2``,
   pyrogen's ``HierarchicalVAE``) with the VampPrior 83.19 (Tomczak and Welling 2018,
   Table 2; up to 2000 epochs with 100 epochs of KL warm-up). ``nll_vs_published_ratio`` is ours
   over theirs (above 1: worse). ``--warmup`` anneals beta from 0 to 1 over that many
   epochs; ``--lr-decay`` multiplies Adam's learning rate by that factor each epoch;
   ``--loss iwae --particles K`` trains by the importance-weighted bound with K draws
   (Burda et al. 2016; still one stochastic layer, the same model), and
   ``--select-k`` chooses the epoch by that bound on ``valid`` instead of the ELBO.
2. sklearn's 8x8 digits (1797 images, 64 pixels of 17 levels), dequantized
   (x = (level + u) / 17, u ~ U(0, 1), a proper density on [0, 1]^64), split 1400 /
   397: a Gaussian-decoder VAE against probabilistic PCA with the same latent size
   (sklearn's ``PCA(...).score``, the exact log-likelihood of the linear-Gaussian
   model a linear VAE would recover). Reported: test log-likelihood per image (nats;
   the VAE's by K = 1000 importance sampling) and the gain over PPCA.

    python bench/vae_mnist.py --quick                      # under a minute
    python bench/vae_mnist.py --epochs 300 --max-minutes 45
    python bench/vae_mnist.py --prior vamp --epochs 300
    python bench/vae_mnist.py --loss iwae --particles 5 --select-k 20 --lr 1e-3 \
        --lr-decay 0.995 --epochs 2000 --eval-every 10 --patience 8 --max-minutes 88

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

# Tomczak and Welling (2018), Table 2: (stochastic layers, prior) -> test NLL
# (two layers with the standard prior: no figure quoted here, so no ratio)
PUBLISHED = {(1, "standard"): 88.56, (1, "vamp"): 85.57, (2, "vamp"): 83.19}


def train_mnist(options, data) -> dict:
    from pyrogen.models import VAE, HierarchicalVAE

    import pyrogen
    from pyrogen.infer.svi import SharedAdam

    train, valid, test = data
    torch.manual_seed(options.seed)
    common = dict(hidden=options.hidden, prior=options.prior, num_pseudo=options.num_pseudo)
    if options.layers == 1:
        vae = VAE((784,), latent_dim=options.latent, **common)
    else:  # two stochastic layers of --latent units each
        vae = HierarchicalVAE((784,), options.latent, options.latent, **common)
    if options.init:  # continue from a saved model (an earlier run's --save)
        saved = type(vae).load(options.init)
        vae.load_state_dict(saved.state_dict())
    steps_per_epoch = math.ceil(len(train) / options.batch_size)
    optim = SharedAdam(options.lr)
    best = {"score": -math.inf, "epoch": 0, "state": copy.deepcopy(vae.state_dict())}
    history = []
    began = time.perf_counter()
    stale = 0

    def callback(step: int, loss: float) -> bool:
        nonlocal stale
        if step % steps_per_epoch:
            return False
        epoch = step // steps_per_epoch
        if options.warmup:
            vae.config.beta = min(1.0, epoch / options.warmup)
        optim.set_lr(options.lr * options.lr_decay**epoch)
        minutes = (time.perf_counter() - began) / 60
        out_of_time = options.max_minutes is not None and minutes > options.max_minutes
        if epoch % options.eval_every and epoch != options.epochs and not out_of_time:
            return False
        vae.eval()
        if options.select_k > 1:  # the importance-weighted bound with select_k draws
            score = float(vae.log_prob(valid, num_samples=options.select_k).mean())
        else:
            score = float(vae.elbo(valid).mean())
        vae.train()
        history.append((epoch, loss, score))
        print(
            f"epoch {epoch:4d}  {minutes:6.1f} min  train loss {loss:8.2f}  "
            f"valid {'ELBO' if options.select_k == 1 else f'IW-{options.select_k}'} "
            f"{score:8.2f}",
            flush=True,
        )
        if score > best["score"] and vae.config.beta == 1.0:
            best.update(score=score, epoch=epoch, state=copy.deepcopy(vae.state_dict()))
            stale = 0
        elif vae.config.beta == 1.0:
            stale += 1
        return out_of_time or stale >= options.patience

    if options.warmup and options.epochs:
        vae.config.beta = 0.0
    fit = None
    if options.epochs:  # --epochs 0 scores the --init model as it is
        fit = pyrogen.fit(
            vae,
            train,
            method="svi",
            loss=options.loss,
            num_particles=options.particles,
            vectorize_particles=options.particles > 1,
            optim=optim,
            batch_size=options.batch_size,
            num_epochs=options.epochs,
            callback=callback,
            progress=False,
            seed=options.seed,
            device=options.device,
        )
    seconds = time.perf_counter() - began
    vae.config.beta = 1.0
    if fit is None:  # the --init model's score on valid, as training would report it
        vae.eval()
        if options.select_k > 1:
            best["score"] = float(vae.log_prob(valid, num_samples=options.select_k).mean())
        else:
            best["score"] = float(vae.elbo(valid).mean())
    if best["epoch"]:
        vae.load_state_dict(best["state"])
    vae.eval()
    if options.save:
        vae.save(options.save)
    began = time.perf_counter()
    test_ll = vae.log_prob(test, num_samples=options.k)
    eval_seconds = time.perf_counter() - began
    test_elbo = vae.elbo(test, num_samples=10).mean()
    khat = vae.psis_khat(test[:500], num_samples=1000)
    nll = -float(test_ll.mean())
    published = PUBLISHED.get((options.layers, options.prior))
    ratio = {} if published is None else {"nll_vs_published_ratio": nll / published}
    return {
        "mnist_prior": options.prior,
        "mnist_hidden": list(options.hidden),
        "mnist_latent": options.latent,
        "mnist_epochs": fit.num_steps // steps_per_epoch if fit else 0,
        "mnist_best_epoch": best["epoch"],
        "mnist_train_minutes": seconds / 60,
        "mnist_seconds_per_epoch": seconds / max(1, fit.num_steps / steps_per_epoch)
        if fit
        else None,
        "mnist_loss": options.loss,
        "mnist_particles": options.particles,
        "mnist_lr": options.lr,
        "mnist_lr_decay": options.lr_decay,
        "mnist_select_k": options.select_k,
        # the selection score on valid: the ELBO, or the select_k-draw bound
        ("mnist_valid_elbo" if options.select_k == 1 else "mnist_valid_iw_bound"): best["score"],
        "mnist_test_elbo": float(test_elbo),
        "mnist_test_nll": nll,
        "mnist_test_nll_se": float(test_ll.std() / math.sqrt(len(test_ll))),
        "mnist_k": options.k,
        "mnist_eval_minutes": eval_seconds / 60,
        "mnist_khat_median": float(khat.median()),
        "mnist_khat_over_0_7": float((khat > 0.7).double().mean()),
        "mnist_layers": options.layers,
        "mnist_published_nll": published,
        "mnist_device": str(options.device or "cpu"),
        "mnist_init": options.init,
        **ratio,
    }


def digits(options) -> dict:
    from pyrogen.models import VAE
    from sklearn.decomposition import PCA

    import pyrogen

    x, _ = pyrogen.data.dequantized_digits(seed=0)
    train, test = x[:1400], x[1400:]
    d = options.digits_latent
    ppca = PCA(n_components=d).fit(train)
    ppca_ll = float(ppca.score(test))  # mean log-likelihood per image under PPCA
    torch.manual_seed(options.seed)
    vae = VAE((64,), latent_dim=d, hidden=(128,), likelihood="gaussian")
    fit = pyrogen.fit(
        vae,
        torch.as_tensor(train),
        method="svi",
        loss="mean_field",
        lr=2e-3,
        batch_size=100,
        num_epochs=options.digits_epochs,
        progress=False,
        seed=options.seed,
    )
    vae_ll = float(vae.log_prob(torch.as_tensor(test), num_samples=1000).mean())
    return {
        "digits_latent": d,
        "digits_epochs": options.digits_epochs,
        "digits_final_loss": float(np.mean(fit.losses[-20:])),
        "digits_vae_test_ll": vae_ll,
        "digits_ppca_test_ll": ppca_ll,
        "digits_ll_gain_over_ppca": vae_ll - ppca_ll,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run, under a minute")
    parser.add_argument("--prior", choices=("standard", "vamp"), default="standard")
    parser.add_argument("--num-pseudo", type=int, default=500)
    parser.add_argument("--layers", type=int, choices=(1, 2), default=1, help="stochastic")
    parser.add_argument("--hidden", type=int, nargs="+", default=[300, 300])
    parser.add_argument("--latent", type=int, default=40)
    parser.add_argument(
        "--epochs", type=int, default=300, help="0: score the --init model, no training"
    )
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--warmup", type=int, default=0, help="KL warm-up epochs")
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--lr-decay", type=float, default=1.0, help="lr factor per epoch")
    parser.add_argument(
        "--loss", choices=("mean_field", "iwae"), default="mean_field", help="training bound"
    )
    parser.add_argument("--particles", type=int, default=1, help="draws per bound (iwae)")
    parser.add_argument(
        "--select-k",
        type=int,
        default=1,
        help="choose the epoch on valid by the importance-weighted bound with this many "
        "draws (1: the ELBO)",
    )
    parser.add_argument("--k", type=int, default=5000, help="importance samples for the NLL")
    parser.add_argument("--digits-latent", type=int, default=8)
    parser.add_argument("--digits-epochs", type=int, default=300)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="e.g. cuda (the MNIST fit)")
    parser.add_argument("--no-digits", action="store_true", help="MNIST only")
    parser.add_argument("--save", default=None, help="write the chosen MNIST model here")
    parser.add_argument("--init", default=None, help="start from this saved model (--save)")
    options = parser.parse_args(argv)
    for flag in ("particles", "select_k"):
        if getattr(options, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')}: must be at least 1")
    if options.epochs < 0 or (options.epochs == 0 and not options.init):
        parser.error("--epochs: must be at least 1 (0 only with --init: score that model)")
    if options.threads:
        torch.set_num_threads(options.threads)
    import pyrogen

    sizes = (5000, 1000, 500) if options.quick else None
    splits = pyrogen.data.mnist_splits(sizes, seed=options.seed)
    if options.quick:
        options.epochs, options.eval_every, options.k = 2, 1, 100
        options.hidden, options.latent, options.num_pseudo = [200], 20, 50
        options.digits_epochs = 30
    figures = {"quick": options.quick, "threads": torch.get_num_threads()}
    figures.update(train_mnist(options, splits))
    print(
        f"binarized MNIST, {options.layers} layer(s), {options.prior} prior: test NLL "
        f"{figures['mnist_test_nll']:.2f} nats (K = {options.k}; ELBO "
        f"{-figures['mnist_test_elbo']:.2f}) after {figures['mnist_epochs']} epochs; "
        f"published {figures['mnist_published_nll']} "
        f"(ratio {figures.get('nll_vs_published_ratio', float('nan')):.3f})"
    )
    if options.no_digits:
        print(json.dumps(figures))
        return
    figures.update(digits(options))
    print(
        f"digits (dequantized, d = {options.digits_latent}): VAE test log-lik "
        f"{figures['digits_vae_test_ll']:.2f} nats, PPCA {figures['digits_ppca_test_ll']:.2f} "
        f"(gain {figures['digits_ll_gain_over_ppca']:.2f})"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
