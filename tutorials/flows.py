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
# # Normalizing flows: densities you can push, pull and score exactly
#
# A normalizing flow is a simple base density (a standard normal) pushed through an
# invertible, differentiable map $f$. If $x = f(z)$ then by the change of variables
#
# $$\log p(x) = \log p_Z\big(f^{-1}(x)\big)
#   + \log\left|\det \frac{\partial f^{-1}}{\partial x}\right|,$$
#
# so, unlike a VAE or a GAN, a flow gives the **exact** log-likelihood, exact samples
# and an explicit latent code $z = f^{-1}(x)$. Each flow in pyrogen is a Pyro
# `TransformedDistribution` made of Pyro's transforms (and a few pyrogen adds), so it
# is fitted by maximum likelihood with `pyrogen.fit(flow, x, method="mle")` and can be
# used inside any Pyro model.
#
# This notebook shows the change of variables layer by layer, fits NICE and its
# successors to 2-D densities whose truth is known, conditions a flow on a context,
# uses flows as variational posteriors (a flow guide against mean-field and NUTS on
# a banana-shaped posterior, and an IAF posterior in a VAE), and finally fits a
# Glow-style multiscale flow to images.

# %%
import math
import os

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyrogen.models import MAF, NICE, NSF, VAE, Glow, RealNVP

import pyrogen
from pyrogen import toy
from pyrogen.plots import plot_images, plot_losses

QUICK = os.environ.get("PYROGEN_QUICK") == "1"  # the test suite runs a short version
EPOCHS = 3 if QUICK else 60
torch.set_default_dtype(torch.float32)
pyro.set_rng_seed(0)

# %% [markdown]
# ## The change of variables, one layer at a time
#
# We fit a RealNVP (affine coupling layers, Dinh et al. 2017) to the two moons and
# then push a regular grid of the base space through the flow, drawing it after each
# layer. A coupling layer keeps one coordinate and shifts and scales the other by a
# function of the first, so each picture bends the grid along one axis only; between
# layers the coordinates swap.

# %%
moons = toy.sample("moons", 2000 if QUICK else 10000, seed=0)
test_moons = toy.sample("moons", 2000, seed=1)
flow = RealNVP((2,), layers=4, hidden=(64, 64))
fit = pyrogen.fit(
    flow, moons, method="mle", lr=3e-3, batch_size=256, num_epochs=EPOCHS, progress=False
)
plot_losses(fit.losses, ylabel="negative log-likelihood (per batch, scaled)")
kl = -flow.log_prob(test_moons).mean().item() + toy.log_density("moons", test_moons).mean()
print(f"RealNVP on the moons: KL(truth || flow) = {kl:.3f} nats")

# %%
lines = np.linspace(-2.5, 2.5, 11)
dense = np.linspace(-2.5, 2.5, 200)
grid = [np.stack([np.full_like(dense, v), dense], -1) for v in lines]
grid += [np.stack([dense, np.full_like(dense, v)], -1) for v in lines]
transforms = flow.transforms()
figure, axes = plt.subplots(1, len(transforms) + 1, figsize=(3 * (len(transforms) + 1), 3))
with torch.no_grad():
    current = [torch.as_tensor(g, dtype=torch.float32) for g in grid]
    for k, ax in enumerate(axes):
        for i, g in enumerate(current):
            ax.plot(g[:, 0], g[:, 1], lw=0.7, color="C0" if i < len(lines) else "C1")
        ax.set_title("base z" if k == 0 else f"after {type(transforms[k - 1]).__name__}")
        ax.set_aspect("equal")
        if k < len(transforms):
            current = [transforms[k](g) for g in current]
axes[-1].scatter(*test_moons[:500].T, s=2, c="k", alpha=0.4)
plt.tight_layout()

# %% [markdown]
# The log-density the flow reports is exactly this change of variables: the
# log-determinant from autograd's Jacobian of the inverse map agrees with the one the
# layers compute in closed form (the test suite checks every flow this way).

# %%
x = torch.as_tensor(test_moons[:5], dtype=torch.float32)
by_autograd = torch.stack(
    [
        flow.base().log_prob(flow.inverse(row))
        + torch.linalg.slogdet(torch.autograd.functional.jacobian(flow.inverse, row)).logabsdet
        for row in x
    ]
)
print(torch.stack([flow.log_prob(x), by_autograd], 1))

# %% [markdown]
# ## NICE and its successors on densities with a known truth
#
# NICE (Dinh, Krueger and Bengio 2014) is the volume-preserving ancestor: additive
# couplings $y_2 = x_2 + m(x_1)$, whose Jacobian determinant is 1, and a final
# diagonal scaling that carries the whole log-determinant, on a logistic base. RealNVP
# adds the scale; MAF (Papamakarios et al. 2017) makes every coordinate depend on all
# the ones before it; NSF (Durkan et al. 2019) replaces the affine maps by monotone
# rational-quadratic splines. On three 2-D densities whose log-density is known in
# closed form, the KL divergence from the truth is the test NLL minus the true entropy.

# %%
names = ["moons"] if QUICK else ["ring", "checkerboard", "moons"]
families = {
    "NICE": lambda: NICE((2,), layers=4, hidden=(64, 64)),
    "RealNVP": lambda: RealNVP((2,), layers=4, hidden=(64, 64)),
    "MAF": lambda: MAF((2,), layers=4, hidden=(64, 64)),
    "NSF": lambda: NSF((2,), layers=3, hidden=(32, 32), bound=4.0),
}
fitted, table = {}, {}
for name in names:
    train = toy.sample(name, 1000 if QUICK else 10000, seed=2)
    test = toy.sample(name, 500 if QUICK else 2000, seed=3)
    entropy = -toy.log_density(name, test).mean()
    for family, build in families.items():
        model = build()
        pyrogen.fit(model, train, method="mle", lr=3e-3, batch_size=256, num_epochs=EPOCHS,
                    progress=False)  # fmt: skip
        fitted[name, family] = model
        table[name, family] = -model.log_prob(test).mean().item() - entropy
print("KL(truth || flow), nats")
print(f"{'':14s}" + "".join(f"{f:>9s}" for f in families))
for name in names:
    print(f"{name:14s}" + "".join(f"{table[name, f]:9.3f}" for f in families))

# %%
side = np.linspace(-4.5, 4.5, 50 if QUICK else 160)
xx, yy = np.meshgrid(side, side)
points = np.stack([xx.ravel(), yy.ravel()], -1)
figure, axes = plt.subplots(len(names), len(families) + 1, figsize=(13, 2.7 * len(names)),
                            squeeze=False)  # fmt: skip
for r, name in enumerate(names):
    truth = np.exp(toy.log_density(name, points)).reshape(xx.shape)
    axes[r, 0].imshow(truth, origin="lower", extent=(-4.5, 4.5, -4.5, 4.5), cmap="magma")
    axes[r, 0].set_ylabel(name)
    for c, family in enumerate(families, 1):
        with torch.no_grad():
            density = fitted[name, family].log_prob(points).exp().numpy().reshape(xx.shape)
        axes[r, c].imshow(density, origin="lower", extent=(-4.5, 4.5, -4.5, 4.5), cmap="magma")
for c, title in enumerate(["truth", *families]):
    axes[0, c].set_title(title)
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
plt.tight_layout()

# %% [markdown]
# ## Conditional flows: p(x | c)
#
# With `context_dim` every coupling or autoregressive network also reads a context
# vector c, so one flow is a whole family of densities. Here x is a point near the
# curve (c, sin 3c) with noise growing with |c|; the flow is fitted on (x, c) pairs
# and sampled at three contexts.

# %%
rng = np.random.default_rng(4)
n = 1000 if QUICK else 4000
c = rng.uniform(-1, 1, size=(n, 1))
x = np.concatenate([c, np.sin(3 * c)], 1) + rng.normal(size=(n, 2)) * (0.05 + 0.2 * np.abs(c))
conditional = MAF((2,), layers=4, hidden=(64, 64), context_dim=1)
pyrogen.fit(conditional, x, c, method="mle", lr=3e-3, batch_size=256, num_epochs=EPOCHS,
            progress=False)  # fmt: skip
plt.figure(figsize=(5, 4))
plt.scatter(*x.T, s=2, c="0.7", label="data")
for value in (-0.8, 0.0, 0.6):
    draws = conditional.sample(300, [value]).numpy()
    plt.scatter(*draws.T, s=4, label=f"samples given c = {value}")
plt.legend(fontsize=7)

# %% [markdown]
# ## Flows as variational posteriors
#
# A flow is also a flexible *guide*. The banana $x \sim N(0, 1)$,
# $y \mid x \sim N(x^2, 0.3^2)$ is curved, which a mean-field Gaussian cannot follow.
# `guide="flow"` (Pyro's `AutoIAFNormal`: two IAF layers, the Pyro transforms the
# zoo's `IAF` is made of) and `guide="spline"` (`pyrogen.infer.AutoFlow` with the zoo's
# autoregressive spline layers and an affine map started at the initial point;
# `AutoFlow(model, "realnvp")` and the others take any zoo flow) can; NUTS gives the
# reference. Since this target is normalized, the negative ELBO is exactly
# KL(q || p).


# %%
def banana():
    x = pyro.sample("x", dist.Normal(0.0, 1.0))
    pyro.sample("y", dist.Normal(x**2, 0.3))


steps = 100 if QUICK else 3000
guides = {}
for name in ["mean_field", "flow", "spline"]:
    pyro.clear_param_store()
    guides[name] = pyrogen.fit(banana, method="svi", guide=name, lr=0.01, num_steps=steps,
                               progress=False)  # fmt: skip
nuts = pyrogen.fit(banana, method="nuts", num_warmup=100 if QUICK else 1000,
                   num_samples=100 if QUICK else 1000, num_chains=2, progress=False)  # fmt: skip
reference = nuts.to_arviz()
print(az.summary(reference, kind="stats"))
figure, axes = plt.subplots(1, 4, figsize=(14, 3.4), sharex=True, sharey=True)
post = reference.posterior
axes[0].scatter(post["x"].values.ravel(), post["y"].values.ravel(), s=2, alpha=0.4)
axes[0].set_title("NUTS")
for ax, (name, result) in zip(axes[1:], guides.items()):
    draws = result.to_arviz(num_samples=200 if QUICK else 1000).posterior
    kl = np.mean(result.losses[-100:])
    ax.scatter(draws["x"].values.ravel(), draws["y"].values.ravel(), s=2, alpha=0.4)
    ax.set_title(f"{name}: KL ~ {kl:.2f}")

# %% [markdown]
# In a VAE, the same idea is the inverse autoregressive flow posterior of Kingma et
# al. (2016): `VAE(..., posterior_flow=T)` follows the encoder's Gaussian by T IAF
# steps that read a context h(x) from the encoder; `prior_flow=L` learns the prior as
# a MAF. On sklearn's 8x8 digits (dequantized, a Gaussian likelihood), the
# importance-weighted log-likelihood of held-out images:

# %%
digits, _ = pyrogen.data.dequantized_digits(seed=0)
digits = digits.astype(np.float32)
train_digits, test_digits = digits[:1400], digits[1400:]
flows_in_vae = {
    "VAE": {},
    "VAE + IAF posterior": {"posterior_flow": 2},
    "VAE + MAF prior": {"prior_flow": 2},
    "VAE + both": {"posterior_flow": 2, "prior_flow": 2},
}
vaes = {
    name: VAE((64,), latent_dim=8, hidden=(128,), likelihood="gaussian", flow_hidden=64, **kw)
    for name, kw in flows_in_vae.items()
}
for name, vae in vaes.items():
    pyrogen.fit(vae, train_digits, method="svi", lr=1e-3, batch_size=100,
                num_epochs=5 if QUICK else 150, progress=False)  # fmt: skip
    log_p = vae.log_prob(test_digits, num_samples=50 if QUICK else 1000).mean().item()
    print(f"{name:22s} test log p(x) = {log_p:8.2f} nats per image")

# %% [markdown]
# On this small problem (1,400 images, 8 latent dimensions) the four differ by about
# a nat, less than they move from one seed to another (`python bench/flows.py`, one
# run: MAF prior +0.9, IAF posterior -0.9, both -0.4 nats against the plain VAE); the
# IAF posterior's gains in Kingma et al. (2016) came on larger models.

# %% [markdown]
# ## A multiscale image flow
#
# Glow (Kingma and Dhariwal 2018) works on images directly: it **squeezes** each 2x2
# block of pixels into four channels, applies steps of **actnorm** (a per-channel
# affine map started from the data), an **invertible 1x1 convolution** (a learned
# channel mixing in LU form, so its log-determinant is a sum) and an **affine
# coupling** whose scale and shift come from a small convolutional network, then
# **factors out** half of the channels as final latents and carries on with the rest
# at the next scale. A logit map takes the result to pixel intensities in [0, 1]. We
# fit it to the digits (1x8x8, 17 grey levels); the bits per pixel are those of the
# discrete images, -log2 p(x) / 64 + log2 17 (4.09 bits for a uniform model).

# %%
images = torch.as_tensor(digits).reshape(-1, 1, 8, 8)
glow = Glow((1, 8, 8), levels=2, steps=2 if QUICK else 4, hidden=16 if QUICK else 64,
            data_levels=17)  # fmt: skip
glow_fit = pyrogen.fit(glow, images[:1400], method="mle", lr=1e-3, batch_size=100,
                       num_epochs=3 if QUICK else 100, progress=False)  # fmt: skip
print(f"Glow on the digits: {glow.bits_per_dim(images[1400:]).mean().item():.3f} bits per pixel")
plot_images(glow.sample(16).clamp(0, 1).numpy(), (8, 8), title="Glow samples")

# %% [markdown]
# The same model takes Fashion-MNIST (`pyrogen fit glow --data fashion_mnist`, or
# `pyrogen.data.fashion_splits` and `pyrogen.data.dequantize`): 28x28 images, two
# levels (4x14x14, then 8x7x7). A CPU fits a small one on a subset in minutes; the
# published-size runs (Glow's 32 steps of 512 channels) need a GPU.

# %%
if not QUICK:
    fashion_train, _, fashion_test = pyrogen.data.fashion_splits((5000, 0, 1000), seed=0)
    fashion = torch.as_tensor(pyrogen.data.dequantize(fashion_train, seed=0))
    fashion_glow = Glow((1, 28, 28), levels=2, steps=4, hidden=32)
    pyrogen.fit(fashion_glow, fashion, method="mle", lr=1e-3, batch_size=64, num_epochs=5,
                progress=False)  # fmt: skip
    held_out = torch.as_tensor(pyrogen.data.dequantize(fashion_test, seed=1))
    bits = fashion_glow.bits_per_dim(held_out).mean().item()
    print(f"small Glow, 5,000 Fashion-MNIST images, 5 epochs: {bits:.3f} bits per pixel")
    plot_images(fashion_glow.sample(16).clamp(0, 1).numpy(), (28, 28), title="Glow samples")

# %% [markdown]
# ## Reading the latent space
#
# `inverse` maps data to the base space. For a well-fitted flow the codes of held-out
# data look like draws from the base: here the Glow's codes of test digits against a
# standard normal.

# %%
with torch.no_grad():
    codes = glow.inverse(images[1400:]).reshape(-1).numpy()
plt.figure(figsize=(5, 3))
plt.hist(codes, bins=80, density=True, alpha=0.6, label="codes of test digits")
grid_1d = np.linspace(-4, 4, 200)
plt.plot(grid_1d, np.exp(-0.5 * grid_1d**2) / math.sqrt(2 * math.pi), label="N(0, 1)")
plt.legend()
