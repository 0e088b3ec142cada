# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # GANs, adversarial autoencoders and ALI as implicit Pyro models
#
# A GAN's generator defines a distribution only through a sampler: $z \sim
# \mathcal{N}(0, I)$, $x = G_\theta(z)$. There is no density $p_\theta(x)$ to put in an
# ELBO, so the model is fitted by comparing its samples with the data through a
# second network, a *critic*. Read as inference (Mohamed and Lakshminarayanan 2016),
# all three classic adversarial models match two joint distributions:
#
# - **GAN** (Goodfellow et al. 2014): the model's $x = G(z)$, $z \sim p(z)$, against
#   the data $x \sim p_{data}$; the critic reads $x$.
# - **Adversarial autoencoder** (Makhzani et al. 2016): the prior $z \sim p(z)$ against
#   the aggregate posterior $q(z) = E_{p_{data}} q(z \mid x)$; the critic reads $z$.
# - **ALI / BiGAN** (Dumoulin et al. 2017; Donahue et al. 2017): $(G(z), z)$ with
#   $z \sim p(z)$ against $(x, z)$ with $x \sim p_{data}$, $z \sim q(z \mid x)$; the
#   critic reads the pair.
#
# In pyrogen each is a Pyro model (the generator; the data site is an
# `Implicit` distribution: draws, no density) with a guide where there is an encoder,
# and `pyrogen.fit(model, x, method="adversarial")` runs the alternating updates in the
# same loop as every other engine (progress bar with both losses, seeds, checkpoints,
# early stopping). This notebook shows which distributions each model matches, fits
# GANs to the ring and grid of Gaussians where mode collapse is easy to see, and
# compares the three with a VAE on Fashion-MNIST.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import pyro
import torch
from pyro import poutine
from pyrogen.models import ALI, GAN, VAE, AdversarialAutoencoder

import pyrogen
from pyrogen import toy
from pyrogen.plots import plot_images

QUICK = os.environ.get("PYROGEN_QUICK") == "1"  # the test suite runs a short version
torch.set_default_dtype(torch.float32)
torch.manual_seed(0)
pyro.set_rng_seed(0)

# %% [markdown]
# ## The models are Pyro models
#
# A GAN's trace has the latent `z` and the implicit site `x`. Observed, `x` holds the
# data; unconditioned (`poutine.uncondition`), the same model *generates*: that is how
# the engine draws the model's side. Pyro's ELBO refuses the model, as it must.

# %%
gan = GAN((2,), latent_dim=8, hidden=(64, 64), critic_hidden=(64, 64))
x = torch.as_tensor(toy.sample("moons", 5, seed=0), dtype=torch.float32)
print(poutine.trace(gan.model).get_trace(x).format_shapes())
generated = poutine.trace(poutine.uncondition(gan.model)).get_trace(x).nodes["x"]["value"]
print("generated x:", generated.detach().numpy().round(2))
try:
    pyro.infer.Trace_ELBO().loss(gan.model, lambda x: None, x)
except NotImplementedError as error:
    print("Trace_ELBO:", error)

# %% [markdown]
# ## What each model matches, in one dimension
#
# A two-bump density on the line. The GAN moves $p_\theta(x)$ onto the data; the
# adversarial autoencoder moves its *aggregate* posterior $q(z)$ onto the prior
# $\mathcal{N}(0, 1)$ while its decoder reconstructs; ALI moves the joint of
# (generated $x$, its $z$) onto the joint of (data $x$, its code).

# %%
rng = np.random.default_rng(0)
line = np.concatenate([rng.normal(-2, 0.4, 4000), rng.normal(1.5, 0.6, 4000)])[:, None]
steps_1d = 200 if QUICK else 4000
small = dict(latent_dim=1, hidden=(64, 64), critic_hidden=(64, 64))
fits = {}
for name, model in {
    "GAN": GAN((1,), **small),
    "ALI": ALI((1,), **small),
    "AAE": AdversarialAutoencoder(
        (1,),
        latent_dim=1,
        hidden=(64, 64),
        likelihood="gaussian",
        scale=0.3,
        critic_hidden=(64, 64),
    ),
}.items():
    fits[name] = pyrogen.fit(
        model,
        line,
        method="adversarial",
        num_steps=steps_1d,
        lr=1e-3,
        batch_size=256,
        progress=False,
    )

figure, axes = plt.subplots(1, 3, figsize=(13, 3.5))
torch.manual_seed(1)
axes[0].hist(line[:, 0], 80, density=True, alpha=0.5, label="data $p_{data}(x)$")
axes[0].hist(
    fits["GAN"].model.sample(8000)[:, 0].numpy(),
    80,
    density=True,
    alpha=0.5,
    label=r"GAN $p_\theta(x)$",
)
axes[0].set_title("GAN: $p_\\theta(x)$ against the data")
loc, scale = fits["AAE"].model.encode(line)
codes = (loc + scale * torch.randn_like(loc))[:, 0].numpy()
grid = np.linspace(-4, 4, 200)
axes[1].hist(codes, 80, density=True, alpha=0.5, label="aggregate $q(z)$")
axes[1].plot(grid, np.exp(-(grid**2) / 2) / np.sqrt(2 * np.pi), label="prior $p(z)$")
axes[1].set_title("AAE: $q(z)$ against $p(z)$")
ali = fits["ALI"].model
z_prior = torch.randn(3000, 1)
axes[2].scatter(
    ali.decode(z_prior)[:, 0], z_prior[:, 0], s=2, alpha=0.3, label="$p(x, z)$: $(G(z), z)$"
)
loc, scale = ali.encode(line[:3000])
axes[2].scatter(
    line[:3000, 0],
    (loc + scale * torch.randn_like(loc))[:, 0],
    s=2,
    alpha=0.3,
    label="$q(x, z)$: $(x, z \\sim q(z|x))$",
)
axes[2].set_xlabel("x")
axes[2].set_ylabel("z")
axes[2].set_title("ALI: two joints over (x, z)")
for ax in axes:
    ax.legend(fontsize=8, markerscale=4)
figure.tight_layout()

# %% [markdown]
# Both losses over training: the players' (generator, encoder) and the critic's. For the
# non-saturating loss the critic's sits near $2 \log 2 \approx 1.39$ when it can no
# longer tell the sides apart.

# %%
figure, axes = plt.subplots(1, 3, figsize=(13, 3))
for ax, (name, result) in zip(axes, fits.items()):
    ax.plot(result.losses, lw=0.6, label="players")
    ax.plot(result.diagnostics["critic_losses"], lw=0.6, label="critic")
    ax.axhline(2 * np.log(2), color="k", lw=0.5, ls="--")
    ax.set_title(name)
    ax.set_xlabel("step")
    ax.legend()
figure.tight_layout()

# %% [markdown]
# ## Mode coverage on the ring and the grid
#
# Eight Gaussians on a ring (sd 0.02) and 25 on a grid (sd 0.05): a GAN that collapses
# covers few modes. The protocol of the literature: 2,500 samples; a sample is *high
# quality* within 3 sd of its nearest mode; a mode is captured when it receives at
# least a fifth of an even share of them. Samples over training show how the generator
# spreads out.
#
# A plain GAN often settles on a few of the modes (the bench's three seeds covered 2, 8
# and 0 of the ring's 8). PacGAN's remedy (Lin et al. 2018) is one option of the engine:
# with `pack=2` the critic reads two examples side by side, so a generator whose pairs
# look alike is caught. Both runs below use it.

# %%
ring = toy.sample("ring", 50000, seed=0, sd=toy.MODE_SD["ring"])
steps = 600 if QUICK else 10000
snapshots = {}


def keep(step, loss):
    if step in (steps // 10, steps // 3, steps):
        torch.manual_seed(0)
        snapshots[step] = model.sample(1000).numpy()


torch.manual_seed(0)
model = GAN((2,), latent_dim=64, hidden=(128, 128), critic_hidden=(128, 128))
ring_fit = pyrogen.fit(
    model,
    ring,
    method="adversarial",
    num_steps=steps,
    lr=1e-3,
    batch_size=512,
    pack=2,
    callback=keep,
    progress=False,
)
figure, axes = plt.subplots(1, len(snapshots), figsize=(4 * len(snapshots), 4))
for ax, (step, draws) in zip(axes, sorted(snapshots.items())):
    ax.scatter(ring[:2000, 0], ring[:2000, 1], s=2, c="0.7")
    ax.scatter(draws[:, 0], draws[:, 1], s=2)
    ax.set_title(f"step {step}")
    ax.set_aspect("equal")
figure.tight_layout()
torch.manual_seed(1)
print(
    "ring:",
    {
        k: v
        for k, v in toy.mode_coverage("ring", model.sample(2500).numpy()).items()
        if k != "counts"
    },
)

# %% [markdown]
# The grid's 25 modes are 2 apart with an sd of 0.05: a mode the generator has missed
# is a spike of the data the critic learns to see, but no generated point lies near
# enough to feel its gradient, so missed modes stay missed. *Instance noise*
# (Sonderby et al. 2017; Arjovsky and Bottou 2017) adds the same Gaussian noise to
# both sides of the critic: the two distributions are matched after blurring, where
# every mode pulls on the generator from afar, and the noise falls to zero over three
# quarters of the run, leaving the original problem (`instance_noise=1.0`; over three
# seeds the bench covered 25, 24 and 25 modes; without it, 14 and 17 over two seeds).

# %%
grid_data = toy.sample("grid", 50000, seed=0, sd=toy.MODE_SD["grid"])
torch.manual_seed(0)
wide = (128, 128) if QUICK else (256, 256, 256)  # 25 modes want wider, deeper networks
grid_gan = GAN((2,), latent_dim=64, hidden=wide, critic_hidden=wide)
pyrogen.fit(
    grid_gan,
    grid_data,
    method="adversarial",
    num_steps=steps if QUICK else 20000,
    lr=1e-3,
    batch_size=512,
    instance_noise=1.0,
    progress=False,
)
torch.manual_seed(1)
draws = grid_gan.sample(2500).numpy()
found = toy.mode_coverage("grid", draws)
plt.figure(figsize=(4.5, 4.5))
plt.scatter(grid_data[:3000, 0], grid_data[:3000, 1], s=2, c="0.7")
plt.scatter(draws[:, 0], draws[:, 1], s=2)
plt.title(f"grid: {found['modes']} of 25 modes, {100 * found['high_quality']:.0f}% high quality")
plt.gca().set_aspect("equal")

# %% [markdown]
# `python bench/adversarial.py` runs this over three seeds for the GAN and ALI and
# prints VEEGAN's published table beside (Srivastava et al. 2017, Table 1: on the ring
# GAN 1 mode / 99.3%, ALI 2.8 / 0.13%, Unrolled GAN 7.6 / 35.6%, VEEGAN 8 / 52.9%).
#
# ## Fashion-MNIST
#
# DCGAN-style convolutional networks (no batch normalization) on dequantized
# Fashion-MNIST in [0, 1]; a CPU-sized run here, so the pictures show the mechanics
# rather than converged models. Samples are measured in the feature space of the
# project's own Fashion-MNIST classifier (`pyrogen.features`): the Frechet distance,
# precision and recall (Kynkaanniemi et al. 2019) and which classes the samples fall in.

# %%
from pyrogen import data  # noqa: E402
from pyrogen.features import (  # noqa: E402
    class_histogram,
    fashion_classifier,
    features,
    frechet_distance,
    precision_recall,
)

train, _, test = data.fashion_splits((1000 if QUICK else 20000, 0, 300), seed=0)
train = torch.as_tensor(data.dequantize(train, seed=0), dtype=torch.float32)
test = torch.as_tensor(data.dequantize(test, seed=1), dtype=torch.float32)
image_steps = 30 if QUICK else 3000
conv = dict(architecture="conv", output="sigmoid", channels=16 if QUICK else 32)
# the two autoencoders share encoder, decoder and a Gaussian likelihood (sd 0.1)
decoder = dict(latent_dim=16, hidden=(128,), architecture="conv", likelihood="gaussian", scale=0.1)
models = {
    "GAN": GAN((1, 28, 28), latent_dim=32, critic_hidden=(128,), **conv),
    "ALI": ALI((1, 28, 28), latent_dim=32, hidden=(128,), critic_hidden=(128,), **conv),
    "AAE": AdversarialAutoencoder((1, 28, 28), **decoder),
    "VAE": VAE((1, 28, 28), **decoder),
}
image_fits = {}
for name, model in models.items():
    torch.manual_seed(0)
    if name == "VAE":
        image_fits[name] = pyrogen.fit(
            model,
            train,
            num_steps=image_steps,
            batch_size=64,
            lr=1e-3,
            loss="mean_field",
            progress=False,
        )
    else:
        image_fits[name] = pyrogen.fit(
            model,
            train,
            method="adversarial",
            num_steps=image_steps,
            batch_size=64,
            lr=1e-3 if name == "AAE" else 2e-4,
            progress=False,
        )

figure, axes = plt.subplots(1, 4, figsize=(14, 3.6))
for ax, (name, model) in zip(axes, models.items()):
    torch.manual_seed(2)
    draws = model.sample(16) if name in ("GAN", "ALI") else model.sample(16, mean=True)
    tiles = draws.reshape(4, 4, 28, 28).permute(0, 2, 1, 3).reshape(112, 112)
    ax.imshow(tiles.numpy(), cmap="gray_r")
    ax.set_title(f"{name} samples")
    ax.axis("off")
figure.tight_layout()

# %% [markdown]
# Latent interpolations (a straight line between two codes, decoded) and
# reconstructions (x -> encoder -> generator or decoder) for the models with an encoder.

# %%
torch.manual_seed(3)
ends = torch.randn(2, 32)
path = torch.stack([(1 - t) * ends[0] + t * ends[1] for t in np.linspace(0, 1, 8)])
plot_images(models["GAN"].decode(path), (28, 28), 1, "GAN: a line in z")
plot_images(
    torch.cat([test[:8], models["ALI"].reconstruct(test[:8]), models["AAE"].reconstruct(test[:8])]),
    (28, 28),
    3,
    "data; ALI reconstructions; AAE reconstructions",
)

# %% [markdown]
# The table: each model's samples against 300 test images in the classifier's feature
# space, the number of classes that receive more than 5% of the samples, the
# reconstruction error of the models with an encoder, and for the two models with a
# decoder density the test log-likelihood by importance sampling (nats per image,
# dequantized pixels in [0, 1]). DDPM's row comes from `python bench/ddpm.py --fashion`
# (too slow for a notebook on a CPU).

# %%
net = fashion_classifier()
real = features(net, test)
rows = []
for name, model in models.items():
    torch.manual_seed(4)
    draws = model.sample(300) if name in ("GAN", "ALI") else model.sample(300, mean=True)
    draws = draws.reshape(-1, 1, 28, 28).clamp(0, 1)
    fake = features(net, draws)
    precision, recall = precision_recall(real, fake)
    row = [
        name,
        frechet_distance(real, fake),
        precision,
        recall,
        int((class_histogram(net, draws) > 0.05).sum()),
    ]
    mse = (
        ((model.reconstruct(test).reshape(test.shape) - test) ** 2).mean().item()
        if hasattr(model, "reconstruct")
        else float("nan")
    )
    log_lik = (
        model.log_prob(test, num_samples=100).mean().item()
        if name in ("AAE", "VAE")
        else float("nan")
    )
    rows.append(row + [mse, log_lik])
print(
    f"{'model':6} {'FD':>8} {'prec':>6} {'recall':>6} {'classes':>7} {'rec. MSE':>9} "
    f"{'log p(x)':>9}"
)
for name, fd, p, r, c, mse, ll in rows:
    print(f"{name:6} {fd:8.2f} {p:6.3f} {r:6.3f} {c:7d} {mse:9.4f} {ll:9.1f}")
print(f"classifier test accuracy {net.test_accuracy:.3f}")

# %% [markdown]
# ## ArviZ
#
# An adversarial fit is a point estimate of the networks: `to_arviz()` holds them as
# one draw. An implicit model has no log-likelihood group (there is no density); the
# adversarial autoencoder's decoder has one, evaluated by importance sampling.

# %%
idata = fits["AAE"].to_arviz()
print(idata)
print("GAN groups:", fits["GAN"].to_arviz().groups())
