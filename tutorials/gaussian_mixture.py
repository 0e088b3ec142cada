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
# # Gaussian mixtures: EM, EM as MAP, and NUTS
#
# A Gaussian mixture tells this story about each data point $x_n \in \mathbb{R}^D$:
# pick a component $z_n \sim \mathrm{Categorical}(\pi)$, then draw
# $x_n \sim \mathcal{N}(\mu_{z_n}, \Sigma_{z_n})$. Summing out $z_n$ gives the density
#
# $$p(x_n \mid \theta) = \sum_{k=1}^K \pi_k\, \mathcal{N}(x_n; \mu_k, \Sigma_k).$$
#
# In pyrogen that story is a Pyro model (`GaussianMixture.model`), and three engines
# fit it: closed-form **EM**, **MAP** by stochastic optimization with the assignments
# enumerated, and **NUTS** for the full posterior. This notebook runs all three on the
# Old Faithful geyser data and shows why they agree where they should.

# %%
import os

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pyro
import torch
from pyrogen.models import GaussianMixture, GaussianMixturePrior, normal_mixture_1d

import pyrogen
from pyrogen.plots import plot_density_2d, plot_losses

QUICK = os.environ.get("PYROGEN_QUICK") == "1"  # the test suite runs a short version
torch.set_default_dtype(torch.float64)
pyro.set_rng_seed(0)

x = pyrogen.data.load("old_faithful")  # (272, 2): eruption length, waiting time (minutes)
labels = ["eruption (min)", "waiting (min)"]
fig, ax = plt.subplots(figsize=(5, 4))
ax.scatter(*x.T, s=8, c="k", alpha=0.6)
ax.set(xlabel=labels[0], ylabel=labels[1], title="Old Faithful: two kinds of eruption")
plt.show()

# %% [markdown]
# ## EM is coordinate ascent on the ELBO
#
# For any distribution $q(z)$ over the assignments,
#
# $$\log p(x \mid \theta) =
#   \underbrace{\mathbb{E}_q[\log p(x, z \mid \theta)] + H[q]}_{\text{ELBO }
#   \mathcal{L}(q, \theta)} + \mathrm{KL}\big(q(z) \,\|\, p(z \mid x, \theta)\big).$$
#
# The **E-step** sets $q(z) = p(z \mid x, \theta)$, the responsibilities: the KL term
# vanishes and the bound touches $\log p(x \mid \theta)$. The **M-step** maximizes
# $\mathcal{L}(q, \theta)$ over $\theta$ in closed form (weighted means and
# covariances). Neither step can lower the bound, so the log-likelihood never
# decreases. `pyrogen.fit(..., method="em")` runs these steps; its loss is the
# negative mean log-likelihood before each M-step.

# %%
gmm = GaussianMixture(2, covariance="full", init="random")
em = pyrogen.fit(gmm, x, method="em", num_steps=200, tol=1e-8, seed=1, progress=False)
log_lik = -em.losses
print(f"EM: {em.num_steps} iterations, final mean log-likelihood {log_lik[-1]:.6f}")
assert np.all(np.diff(log_lik) >= -1e-10), "EM never lowers the log-likelihood"

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
axes[0].plot(np.arange(1, len(log_lik) + 1), log_lik, marker=".")
axes[0].set(
    xlabel="EM iteration", ylabel="mean log p(x)", title="monotone ascent from a random start"
)
plot_density_2d(gmm.log_prob, x, ax=axes[1], labels=labels)
axes[1].scatter(*gmm.locs.T, marker="x", s=80, c="tab:red")
axes[1].set_title("fitted density")
plt.show()

# %% [markdown]
# The responsibilities $p(z_n = k \mid x_n)$ are the E-step's $q$. Points between the
# two clusters are the uncertain ones:

# %%
resp = gmm.predict(x)
fig, ax = plt.subplots(figsize=(5, 4))
points = ax.scatter(*x.T, c=resp[:, 0], cmap="coolwarm", s=12)
fig.colorbar(points, label="p(z = first component | x)")
ax.set(xlabel=labels[0], ylabel=labels[1])
plt.show()

# %% [markdown]
# ## k-means is hard EM
#
# Fix every covariance to $\sigma^2 I$ and let $\sigma \to 0$: the responsibilities
# become one-hot (each point goes to its nearest mean) and the M-step becomes "move
# each mean to the centre of its points": k-means. pyrogen starts EM from k-means++
# by default; here is how the spherical mixture's soft assignments harden as the
# shared variance shrinks. (Standardized data, so both axes count alike.)

# %%
z = (x - x.mean(0)) / x.std(0)
spherical = GaussianMixture(2, covariance="spherical")
pyrogen.fit(spherical, z, method="em", progress=False)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
for ax, variance in zip(axes, [1.0, 0.1, 0.001]):
    spherical.scale_tril.copy_(np.sqrt(variance) * torch.eye(2).expand(2, 2, 2))
    soft = spherical.predict(z)[:, 0]
    ax.scatter(*z.T, c=soft, cmap="coolwarm", s=10, vmin=0, vmax=1)
    ax.set_title(
        f"shared variance {variance}: {int(((soft > 0.01) & (soft < 0.99)).sum())} soft points"
    )
plt.show()

# %% [markdown]
# ## EM as MAP: the same optimum, reached by SVI with enumeration
#
# The Pyro model marks the assignment site for enumeration, so `TraceEnum_ELBO` sums
# it out exactly and the only latent variables left are the global parameters. With
# flat priors, MAP over those parameters (an `AutoDelta` guide) maximizes the very
# log-likelihood EM maximizes. Both start from the same k-means solution here.

# %%
em_model = GaussianMixture(2, reg_covar=0.0)
em_fit = pyrogen.fit(em_model, x, method="em", num_steps=500, tol=1e-12, progress=False)
map_model = GaussianMixture(2, reg_covar=0.0)
map_fit = pyrogen.fit(
    map_model, x, method="map", num_steps=150 if QUICK else 400, lr=0.05, progress=False
)
print(f"EM : mean log-likelihood {em_model.log_prob(x).mean():.8f}")
print(f"MAP: mean log-likelihood {map_model.log_prob(x).mean():.8f}")

fig, ax = plt.subplots(figsize=(6, 3.5))
plot_losses(map_fit.losses, ax=ax, ylabel="-ELBO per point (assignments summed out)")
ax.axhline(em_fit.losses[-1], color="tab:red", ls="--", label="EM optimum")
ax.set_ylim(em_fit.losses[-1] - 0.01, em_fit.losses[-1] + 0.1)
ax.legend()
plt.show()

# %% [markdown]
# ## The full posterior with NUTS
#
# With proper priors (weakly informative ones, centred on the data), NUTS samples the
# weights, means, scales and correlations, still summing out every assignment. The
# components are relabelled by their first mean so that the chains agree on which
# is which. `Fit.to_arviz()` gives ArviZ everything it needs, pointwise
# log-likelihoods included.

# %%
bayes = GaussianMixture(2, prior=GaussianMixturePrior.weakly_informative(x))
nuts = pyrogen.fit(
    bayes,
    x,
    method="nuts",
    num_warmup=60 if QUICK else 500,
    num_samples=60 if QUICK else 500,
    num_chains=2,
    progress=False,
)
idata = nuts.to_arviz()
print(az.summary(idata, var_names=["weights", "locs"]))
az.plot_trace(idata, var_names=["weights", "locs"], compact=True)
plt.tight_layout()
plt.show()

# %%
az.plot_pair(idata, var_names=["locs"], coords={"locs_dim_1": [0]}, kind="kde", marginals=True)
plt.show()
print(az.loo(idata))

# %% [markdown]
# ## The same model under Pyro and NumPyro, checked against Stan
#
# `normal_mixture_1d` is posteriordb's `low_dim_gauss_mix` written once against
# `pyroapi`, so the same function runs under Pyro's NUTS and NumPyro's NUTS.
# `pyrogen.crosscheck` runs both and compares every parameter's mean and sd in units
# of the combined Monte Carlo standard error; `compare_to_reference` does the same
# against Stan's 10,000 reference draws.

# %%
reference = pyrogen.data.load_posteriordb("low_dim_gauss_mix")
y = np.asarray(reference.data["y"])
check = pyrogen.crosscheck(
    normal_mixture_1d,
    y,
    num_warmup=100 if QUICK else 500,
    num_samples=100 if QUICK else 1000,
    num_chains=2 if QUICK else 4,
)
print(check)
print(pyrogen.compare_to_reference(check.fits["numpyro"].samples, reference, label="numpyro"))

# %%
stan = az.from_dict(posterior={s: reference.reference(s) for s in ("mu", "sigma", "theta")})
az.plot_forest(
    [
        check.fits["pyro"].to_arviz(log_likelihood=False),
        check.fits["numpyro"].to_arviz(log_likelihood=False),
        stan,
    ],
    model_names=["pyro", "numpyro", "stan"],
    var_names=["mu", "sigma", "theta"],
    combined=True,
    figsize=(6, 4),
)
plt.show()

# %% [markdown]
# ## How many components?
#
# EM's log-likelihood always grows with K; BIC charges for the extra parameters.

# %%
bics = []
for k in range(1, 6):
    model = GaussianMixture(k, n_init=3)
    pyrogen.fit(model, x, method="em", progress=False)
    bics.append(-2 * model.log_prob(x).sum().item() + model.num_parameters * np.log(len(x)))
plt.plot(range(1, 6), bics, marker="o")
plt.xlabel("components K")
plt.ylabel("BIC (lower is better)")
plt.show()
print("BIC picks K =", int(np.argmin(bics)) + 1)
