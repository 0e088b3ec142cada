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
# # Diffusion models as a hierarchical latent chain
#
# A denoising diffusion probabilistic model (DDPM; Sohl-Dickstein et al. 2015, Ho et
# al. 2020) is a latent-variable model with T latent copies of the data,
#
# $$x_T \sim \mathcal{N}(0, I), \qquad x_{t-1} \mid x_t \sim \mathcal{N}(\mu_\theta(x_t, t),
#   \sigma_t^2 I), \qquad x_0 \mid x_1 \sim p_\theta(x_0 \mid x_1),$$
#
# and its variational posterior is not learned at all: it is the *forward process*
# that adds Gaussian noise step by step,
# $q(x_t \mid x_{t-1}) = \mathcal{N}(\sqrt{1 - \beta_t}\, x_{t-1}, \beta_t I)$.
# In pyrogen that is literally a Pyro model and a Pyro guide (`DDPM.model`,
# `DDPM.guide`), so Pyro's `Trace_ELBO` computes DDPM's variational bound; training
# uses the same bound one random step at a time (or Ho et al.'s reweighted "simple"
# loss) inside the same SVI engine as every other model of the zoo.
#
# This notebook draws the forward process, shows why each reverse step is Gaussian
# only given $x_0$, fits a DDPM to a 2-D density whose truth is known, looks at the
# bound's terms step by step, and compares samplers and reverse variances (fixed,
# Analytic-DPM's optimal one, Extended-Analytic-DPM's learned one) at few and many
# steps. It ends with a small U-Net on Fashion-MNIST.

# %%
import math
import os

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pyro
import torch
from pyrogen.models import DDPM

import pyrogen
from pyrogen import metrics, toy
from pyrogen.plots import plot_images, plot_losses

QUICK = os.environ.get("PYROGEN_QUICK") == "1"  # the test suite runs a short version
STEPS = 300 if QUICK else 20000
torch.set_default_dtype(torch.float32)
torch.manual_seed(0)
pyro.set_rng_seed(0)

# %% [markdown]
# ## The forward process, as pictures
#
# Eight Gaussians on a ring, noised to step t: $x_t = \sqrt{\bar\alpha_t}\, x_0 +
# \sqrt{1 - \bar\alpha_t}\, \epsilon$. By T = 1000 nothing of the ring is left: the
# chain's last latent is a standard normal, which is where sampling starts.

# %%
x = toy.sample("ring", 10000, seed=0).astype(np.float32)
ddpm = DDPM([2], hidden=(128, 128, 128), covariance="npr")
ddpm.initialize(torch.as_tensor(x))  # standardizes the data (kept with the model)
y0 = ddpm.to_chain(torch.as_tensor(x[:2000]))
fig, axes = plt.subplots(1, 5, figsize=(15, 3))
for ax, t in zip(axes, [0, 50, 200, 500, 1000]):
    y_t, _ = ddpm.diffuse(y0, torch.full((len(y0),), t)) if t else (y0, None)
    ax.scatter(*y_t.T, s=1, alpha=0.4)
    ax.set(title=f"t = {t}", xlim=(-3, 3), ylim=(-3, 3), aspect="equal")
plt.show()

# %% [markdown]
# ## Why the reverse step is Gaussian only given $x_0$
#
# Each forward step is Gaussian, so $q(x_{t-1} \mid x_t, x_0)$ is Gaussian too (the
# posterior of a linear-Gaussian model). The reverse step the model has to learn,
# $q(x_{t-1} \mid x_t)$, averages that over $q(x_0 \mid x_t)$: for data at -1 and +1
# and a large step it is a mixture of two Gaussians. With small steps each component
# is narrow and the mixture's two means are close, so one Gaussian is a good fit;
# over a few large steps it is not: the reason fast samplers need care with the
# variance.

# %%
schedule = ddpm.schedule
grid = torch.linspace(-2, 2, 400, dtype=torch.float64)
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for ax, (s, t) in zip(axes, [(99, 100), (100, 600)]):
    pair = schedule.pair(torch.tensor(s), torch.tensor(t))
    y_t = torch.tensor(0.3, dtype=torch.float64)
    root, sd = schedule.marginal(torch.tensor(t))
    weights = torch.stack(
        [torch.distributions.Normal(root * c, sd).log_prob(y_t) for c in (-1.0, 1.0)]
    )
    weights = (weights - weights.logsumexp(0)).exp()
    parts = [
        w
        * torch.distributions.Normal(pair.a * c + pair.b * y_t, pair.lambda2.sqrt())
        .log_prob(grid)
        .exp()
        for w, c in zip(weights, (-1.0, 1.0))
    ]
    for c, part in zip((-1, 1), parts):
        ax.plot(grid, part, "--", label=f"given x0 = {c} (times its weight)")
    ax.plot(grid, sum(parts), "k", label="q(x_s | x_t)")
    ax.set(title=f"s = {s}, t = {t}, x_t = 0.3")
    ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# ## The model and its guide in Pyro
#
# On a 4-step chain the trace shows the latent sites `x_4 .. x_1` and the observed
# `x`; Pyro's ELBOs, the closed-form bound `log_prob` and the one-step loss the engine
# trains with all estimate the same number (`tests/models/test_diffusion.py` checks
# them against the bound computed by hand).

# %%
tiny = DDPM([2], timesteps=4, hidden=(16,))
tiny.initialize(torch.as_tensor(x[:500]))
trace = pyro.poutine.trace(tiny.model).get_trace(torch.as_tensor(x[:500]))
print([name for name, site in trace.nodes.items() if site["type"] == "sample"])
print(
    "Trace_ELBO  ",
    -pyro.infer.Trace_ELBO().loss(tiny.model, tiny.guide, torch.as_tensor(x)) / len(x),
)
print(
    "mean-field  ",
    -pyro.infer.TraceMeanField_ELBO().loss(tiny.model, tiny.guide, torch.as_tensor(x)) / len(x),
)
print("log_prob    ", float(tiny.log_prob(x).mean()))
with torch.no_grad():
    print("one-step    ", float(-tiny.loss_terms(torch.as_tensor(x), "elbo").mean()))

# %% [markdown]
# ## Fitting
#
# `pyrogen.fit` runs the SVI engine with the model's own one-step loss (`loss="simple"`
# by default: Ho et al.'s noise-prediction error, a reweighted bound). Then two things
# the Analytic-DPM papers add after training, with the network fixed:
# `estimate_moments` (the Monte Carlo moment behind the optimal isotropic variance) and
# the second network of NPR-DDPM, trained by `loss="npr"` in the same engine.

# %%
fitted = pyrogen.fit(ddpm, x, num_steps=STEPS, batch_size=512, lr=1e-3, seed=0)
heads = pyrogen.fit(ddpm, x, loss="npr", num_steps=STEPS // 4, batch_size=512, lr=1e-3, seed=0)
ddpm.estimate_moments(x)
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
plot_losses(fitted.losses, ax=axes[0], ylabel="simple loss")
plot_losses(heads.losses, ax=axes[1], ylabel="NPR head loss")
plt.show()

# %% [markdown]
# ## The bound, step by step
#
# $-\mathcal{L} = \mathrm{KL}(q(x_T \mid x_0) \| p(x_T)) + \sum_{t \ge 2}
# \mathbb{E}\,\mathrm{KL}(q(x_{t-1} \mid x_t, x_0) \| p_\theta(x_{t-1} \mid x_t)) -
# \mathbb{E} \log p_\theta(x_0 \mid x_1)$: most of it sits in the first steps, where
# the network must resolve the fine structure.

# %%
test = torch.as_tensor(toy.sample("ring", 1000, seed=1), dtype=torch.float32)
y_test = ddpm.to_chain(test)
ts = [2, 5, 10, 20, 50, 100, 200, 400, 700, 1000]
with torch.no_grad():
    terms = []
    for t in ts:
        y_t, _ = ddpm.diffuse(y_test, torch.full((len(y_test),), t))
        terms.append(float(ddpm.step_kl(y_test, y_t, t - 1, t).mean()))
plt.loglog(ts, terms, "o-")
plt.xlabel("t")
plt.ylabel("E KL term (nats)")
plt.show()

# %% [markdown]
# ## Reverse variances and samplers at few steps
#
# Over a K-step sub-trajectory the reverse variance matters: beta-tilde (the forward
# posterior's) is too small, beta too large; Analytic-DPM's optimal variance
# $\lambda^2 + c^2 (1 - \Gamma_t)$ is the best isotropic choice for the trained mean,
# and NPR-DDPM's per-dimension one also corrects for the mean's error. The table is
# the KL bound from the truth, $-\mathcal{L} - H(p) \ge \mathrm{KL}(p \| p_\theta)$, in
# nats (smaller is better); below it, samples by each variance at each K, and DDIM.

# %%
entropy = -float(np.mean(toy.log_density("ring", test.numpy())))
ks = [10, 100] if QUICK else [10, 25, 100, 1000]
variances = ["beta_tilde", "beta", "analytic", "npr"]
print("K      " + "  ".join(f"{v:>10s}" for v in variances))
for k in ks:
    row = [-float(ddpm.log_prob(test, steps=k, variance=v).mean()) - entropy for v in variances]
    print(f"{k:<6d} " + "  ".join(f"{r:10.3f}" for r in row))
fig, axes = plt.subplots(
    len(ks), len(variances) + 1, figsize=(3 * (len(variances) + 1), 3 * len(ks))
)
for i, k in enumerate(ks):
    for j, v in enumerate(variances + ["ddim"]):
        if v == "ddim":
            draws = ddpm.sample(1000, steps=k, eta=0.0, variance="beta_tilde", seed=0)
        else:
            draws = ddpm.sample(1000, steps=k, variance=v, seed=0)
        ax = axes[i, j]
        ax.scatter(*draws.T, s=1)
        ax.set(
            title=f"{v}, K={k}, ED={metrics.energy_distance(draws, test):.3f}",
            xlim=(-3, 3),
            ylim=(-3, 3),
        )
plt.tight_layout()
plt.show()

# %% [markdown]
# ## ArviZ
#
# A DDPM's fit is its networks, so `to_arviz()` holds them as one draw, with the bound
# per example as the log-likelihood group.

# %%
idata = fitted.to_arviz()
az.plot_dist(idata.log_likelihood["x"].values.ravel(), label="per-example bound (nats)")
plt.show()

# %% [markdown]
# ## Images: a small U-Net on Fashion-MNIST
#
# For 8-bit images the decoder is Ho et al.'s discretized Gaussian, so the bound is in
# bits per dimension of the discrete images. A CPU run this short only shows the
# mechanics (the bench's `--fashion` run is the real one, for a GPU).

# %%
from pyrogen import data  # noqa: E402

train, _, test_images = data.fashion_splits((2000 if QUICK else 20000, 0, 200), seed=0)
images = data.dequantize(train, seed=0)
unet = DDPM([1, 28, 28], channels=16 if QUICK else 32, data_levels=256)
pyrogen.fit(unet, images, num_steps=20 if QUICK else 3000, batch_size=64, lr=2e-4, seed=0)
print(
    "bits/dim, K = 10 (beta):",
    float(unet.bits_per_dim(data.dequantize(test_images[:20], seed=1), steps=10).mean()),
)
plot_images(
    unet.sample(16, steps=10 if QUICK else 100, seed=0).numpy(), (28, 28), rows=2, title="samples"
)
plt.show()
