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
# # Bayesian autoregression: one model, two NUTS backends, Stan's answer, a forecast
#
# An AR(p) model says each value is a linear function of the p before it plus noise,
#
# $$y_t = \alpha + \sum_{k=1}^p \beta_k\, y_{t-k} + \varepsilon_t, \qquad
#   \varepsilon_t \sim \mathcal{N}(0, \sigma^2).$$
#
# `pyrogen.models.ar_model` writes it once against pyro-api, with the priors of
# posteriordb's `arK` ($\alpha, \beta_k \sim \mathcal{N}(0, 10^2)$,
# $\sigma \sim \mathrm{HalfCauchy}(2.5)$). We fit posteriordb's series (T = 200, p = 5)
# under NumPyro's NUTS and Pyro's NUTS, compare both with Stan's 10,000 reference
# draws, check the model against its own data with a posterior-predictive plot, and
# forecast.

# %%
import os

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import torch
from pyrogen.models import AutoRegressive, ar_model

import pyrogen

QUICK = os.environ.get("PYROGEN_QUICK") == "1"
torch.set_default_dtype(torch.float64)

reference = pyrogen.data.load_posteriordb("arK")
y = np.asarray(reference.data["y"], dtype=np.float64)
fig, ax = plt.subplots(figsize=(9, 2.8))
ax.plot(y, lw=1)
ax.set(xlabel="t", ylabel="y", title="posteriordb arK: the series")
plt.show()

# %% [markdown]
# ## NUTS under both backends, against Stan
#
# `AutoRegressive(5)` is the zoo wrapper of the same function; because the model is
# written against pyro-api, `backend="auto"` picks NumPyro. `compare_to_reference`
# measures each posterior mean and sd against Stan's in units of the combined Monte
# Carlo standard error.

# %%
draws = 150 if QUICK else 1000
model = AutoRegressive(5)
numpyro_fit = pyrogen.fit(
    model, y, method="nuts", num_warmup=draws, num_samples=draws, num_chains=2 if QUICK else 4
)
print(pyrogen.compare_to_reference(numpyro_fit.samples, reference, label="numpyro"))
pyro_fit = pyrogen.fit(
    ar_model,
    y,
    order=5,
    method="nuts",
    backend="pyro",
    num_warmup=50 if QUICK else 500,
    num_samples=50 if QUICK else 1000,
    num_chains=1 if QUICK else 4,
)
print(pyrogen.compare_to_reference(pyro_fit.samples, reference, label="pyro"))
print(
    f"sampling time: numpyro {numpyro_fit.diagnostics['sampling_seconds']:.1f} s, "
    f"pyro {pyro_fit.diagnostics['sampling_seconds']:.1f} s"
)

# %%
idata = numpyro_fit.to_arviz()
stan = az.from_dict(
    posterior={
        "alpha": reference.reference_draws["alpha"],
        "beta": np.stack([reference.reference_draws[f"beta[{k}]"] for k in range(1, 6)], -1),
        "sigma": reference.reference_draws["sigma"],
    }
)
az.plot_forest(
    [idata, stan],
    model_names=["pyrogen (NumPyro NUTS)", "Stan reference"],
    var_names=["alpha", "beta", "sigma"],
    combined=True,
    figsize=(7, 4.5),
)
plt.show()
print(az.summary(idata, var_names=["alpha", "beta", "sigma"]))

# %% [markdown]
# ## Does the model reproduce its data?
#
# Posterior-predictive check: one-step-ahead draws $y_t^{rep}$ from every posterior
# draw, against the observed $y_t$ (ArviZ's `plot_ppc`), and PSIS-LOO from the
# pointwise log-likelihoods that `to_arviz` stores.

# %%
flat = {k: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) for k, v in numpyro_fit.samples.items()}
lags = np.stack([y[5 - k : len(y) - k] for k in range(1, 6)], -1)
mean = flat["alpha"][:, None] + flat["beta"] @ lags.T
replicated = mean + flat["sigma"][:, None] * np.random.default_rng(0).normal(size=mean.shape)
chains = np.shape(numpyro_fit.samples["alpha"])[0]
idata.add_groups(posterior_predictive={"y": replicated.reshape(chains, -1, mean.shape[1])})
az.plot_ppc(idata, var_names=["y"], num_pp_samples=100)
plt.show()
print(az.loo(idata))

# %% [markdown]
# ## Forecasting
#
# `forecast(y, horizon)` continues the series along posterior-predictive paths: each path
# takes one posterior draw of $(\alpha, \beta, \sigma)$ and simulates forward with its
# noise, so the bands hold both parameter and noise uncertainty.

# %%
horizon = 30
paths = model.forecast(y, horizon, num_samples=4000).numpy()
low, mid, high = np.quantile(paths, [0.05, 0.5, 0.95], axis=0)
future = np.arange(len(y), len(y) + horizon)
fig, ax = plt.subplots(figsize=(9, 3))
ax.plot(np.arange(150, len(y)), y[150:], color="k", lw=1, label="observed")
ax.fill_between(future, low, high, alpha=0.3, label="90% predictive band")
ax.plot(future, mid, label="predictive median")
for path in paths[:5]:
    ax.plot(future, path, lw=0.6, color="tab:blue", alpha=0.5)
ax.set(xlabel="t", title="posterior-predictive forecast, AR(5)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# # Hidden Markov models: Baum-Welch, Viterbi, and NUTS against Stan
#
# A hidden Markov model puts a discrete chain under the data:
# $z_t \mid z_{t-1} \sim \mathrm{Categorical}(\theta_{z_{t-1}})$ and
# $y_t \mid z_t \sim \mathcal{N}(\mu_{z_t}, 1)$. `HiddenMarkov(K)` writes the chain with
# `pyro.markov` and marks each $z_t$ for enumeration, so Pyro sums it out exactly;
# `method="em"` runs Baum-Welch (forward-backward, then closed-form updates), and
# `viterbi` decodes the most probable path. The data: posteriordb's `hmm_example`.

# %%
from pyrogen.models import HiddenMarkov, hmm_model  # noqa: E402

hmm_reference = pyrogen.data.load_posteriordb("hmm_example")
series = np.asarray(hmm_reference.data["y"], dtype=np.float64)
hmm = HiddenMarkov(2, mu_loc=[3.0, 10.0], mu_scale=1.0)
em_fit = pyrogen.fit(hmm, series, method="em", num_steps=200, tol=1e-10)
path = hmm.viterbi(series).numpy()
print(
    "Baum-Welch (MAP under the priors): mu",
    hmm.mu.numpy().round(3),
    "\ntheta\n",
    hmm.theta.numpy().round(3),
)

fig, axes = plt.subplots(1, 2, figsize=(13, 3), gridspec_kw={"width_ratios": [3, 1]})
axes[0].plot(series, "k.", ms=4, label="y")
axes[0].step(np.arange(len(series)), hmm.mu.numpy()[path], where="mid", label="Viterbi: mu of z_t")
axes[0].set(xlabel="t", title="the decoded chain")
axes[0].legend(fontsize=8)
axes[1].plot(-em_fit.losses)
axes[1].set(xlabel="EM iteration", ylabel="mean log p(y)", title="EM never goes down")
plt.tight_layout()
plt.show()

# %% [markdown]
# `hmm_model` is the same posterior written against pyro-api with the forward algorithm
# spelled out as the Stan model does it; NumPyro's NUTS runs it, and the draws are
# compared with Stan's (its `theta1`, `theta2` are our `theta[0]`, `theta[1]`).

# %%
hmm_fit = pyrogen.fit(
    hmm_model,
    series,
    method="nuts",
    num_warmup=draws,
    num_samples=draws,
    num_chains=2 if QUICK else 4,
)
named = {
    "theta1": np.asarray(hmm_fit.samples["theta"])[..., 0, :],
    "theta2": np.asarray(hmm_fit.samples["theta"])[..., 1, :],
    "mu": hmm_fit.samples["mu"],
}
print(pyrogen.compare_to_reference(named, hmm_reference, label="numpyro"))
az.plot_posterior(
    az.from_dict(posterior={k: np.asarray(v) for k, v in named.items()}), figsize=(12, 5)
)
plt.show()
