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
# # Autoregressive models: the chain rule, one conditional at a time
#
# Any distribution over $D$ binary pixels factorizes exactly as
#
# $$p(x) = \prod_{d=1}^{D} p(x_d \mid x_{<d}),$$
#
# so a model of $p(x)$ is a family of $D$ Bernoulli conditionals. The models differ in
# how the conditional's logit reads the pixels before it:
#
# - **FVSBN**: a separate logistic regression per pixel, $\ell_d = b_d + \sum_{j<d}
#   W_{dj} x_j$ ($D^2/2$ weights);
# - **NADE**: one hidden layer shared by all conditionals, $h_d = \sigma(c + W_{:,<d}
#   x_{<d})$, whose pre-activation is a running sum, so all $D$ conditionals cost one
#   pass;
# - **MADE**: an ordinary MLP whose weights are masked so that output $d$ cannot see
#   inputs $\ge d$; several orderings (masks) can share one set of weights;
# - **DeepNADE**: an MLP that is told which pixels it may read, trained for every
#   ordering at once, whose orderings are averaged at test time;
# - **PixelCNN**: convolutions whose kernels are masked so that a pixel sees only the
#   rows above it and the pixels to its left; the gated version splits them into a
#   vertical and a horizontal stack;
# - **WaveNet**: the image read as a sequence of 784 values, a stack of dilated causal
#   1-D convolutions whose receptive field doubles with every layer;
# - **RNADE**: NADE's running hidden layer with a mixture of Gaussians per conditional,
#   for real-valued pixels.
#
# The same chain rule reads any sequence: the end of this notebook fits an **LSTM** and
# a **transformer** to characters of English text and a WaveNet to a real time series.
#
# In pyrogen each is a Pyro model with a single observed site holding all $D$
# conditionals (teacher forcing); there is no latent variable, so
# `pyrogen.fit(model, x, method="mle")` maximizes the exact log-likelihood.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from pyrogen.models import (
    FVSBN,
    MADE,
    NADE,
    RNADE,
    DeepNADE,
    PixelCNN,
    RNNDecoder,
    TransformerDecoder,
    WaveNet,
)

import pyrogen
from pyrogen.metrics import auroc
from pyrogen.plots import plot_images

QUICK = os.environ.get("PYROGEN_QUICK") == "1"  # the test suite runs a short version
torch.manual_seed(0)
train, _, test = pyrogen.data.mnist_splits((1500, 0, 300) if QUICK else None)
EPOCHS = 1 if QUICK else 20
print(train.shape, test.shape)

# %% [markdown]
# ## Fitting the models
#
# Same data, same optimizer, minibatches of 100; the exact test log-likelihood is one
# teacher-forced pass.

# %%
models = {
    "FVSBN": FVSBN((784,)),
    "NADE": NADE((784,), hidden=100 if QUICK else 500),
    "MADE": MADE((784,), hidden=(200 if QUICK else 500,)),
    "PixelCNN": PixelCNN((28, 28), channels=8, layers=4) if QUICK else PixelCNN((28, 28)),
    "WaveNet": WaveNet((784,), channels=8 if QUICK else 64),
}
fits, table = {}, {}
for name, model in models.items():
    fits[name] = pyrogen.fit(model, train, method="mle", lr=1e-3, batch_size=100,
                             num_epochs=EPOCHS)  # fmt: skip
    table[name] = -float(model.log_prob(test).mean())
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, fit in fits.items():
    ax.plot(fit.losses, label=name, alpha=0.8)
ax.set(xlabel="step", ylabel="-log p(x) per image (nats)", title="training")
ax.legend()
print({name: round(nll, 2) for name, nll in table.items()})

# %% [markdown]
# ## Samples
#
# Drawing is sequential: pixel 1, then pixel 2 given pixel 1, and so on. NADE carries
# its pre-activation from pixel to pixel ($a_{d+1} = a_d + W_d x_d$), so an image costs
# $O(DH)$; MADE re-runs the network once per pixel.

# %%
for name, model in models.items():
    plot_images(model.sample(10 if QUICK else 20), (28, 28), 2, f"{name} samples")

# %% [markdown]
# ## What MADE's masks look like
#
# Each hidden unit gets a degree $m(k)$ and may see inputs $j$ with position $\le m(k)$;
# output $d$ may see hidden units with $m(k) < d$. The product of the masks is the
# connectivity from input to output: strictly lower triangular in the model's
# ordering, which is the whole guarantee that $p$ sums to one. Below, a tiny MADE
# (D = 8, two hidden layers of 12) with two mask sets: the natural ordering and a
# random one.

# %%
tiny = MADE((8,), hidden=(12, 12), num_masks=2, seed=3)
fig, axes = plt.subplots(2, 4, figsize=(12, 5.5))
for row in range(2):
    tiny.use_mask(row)
    masks = [layer.mask for layer in tiny.layers]
    reach = masks[2] @ masks[1] @ masks[0]
    order = tiny._order()
    for ax, (title, m) in zip(
        axes[row], [("input->h1", masks[0]), ("h1->h2", masks[1]), ("h2->output", masks[2])]
    ):
        ax.imshow(m, cmap="Greys", vmin=0, vmax=1)
        ax.set(title=f"mask set {row}: {title}", xticks=[], yticks=[])
    axes[row, 3].imshow(reach > 0, cmap="Greys")
    axes[row, 3].set(title=f"input->output, order {order.tolist()}", xticks=[], yticks=[])
fig.tight_layout()

# %% [markdown]
# The exact check: with D = 8 all 256 binary vectors can be listed, and their
# probabilities under a randomly initialized model sum to one for every mask set.

# %%
import itertools

every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=8)))
for m in range(2):
    tiny.use_mask(m)
    print(
        f"mask set {m}: sum of p(x) over all 256 vectors = {tiny.log_prob(every).exp().sum():.6f}"
    )

# %% [markdown]
# ## One network for every ordering: DeepNADE
#
# MADE builds an ordering into its masks. DeepNADE (Uria, Murray and Larochelle 2014)
# hands the network the mask instead: it reads $[x \odot m, m]$, the observed pixels
# and which pixels are observed, and outputs $p(x_j \mid x_S)$ for every unobserved
# $j$ and *any* observed set $S$. An ordering $o$ then defines a proper model,
# $p_o(x) = \prod_d p(x_{o_d} \mid x_{o_{<d}})$. Training covers all $D!$ orderings:
# per image and step it draws a random ordering and a cut $d$, observes the $d - 1$
# pixels before the cut and scores the $D - d + 1$ after it, weighted by
# $D / (D - d + 1)$: an unbiased estimate of $\log p_o(x)$ for a random $o$. At test
# time the average of $M$ orderings, $\frac1M \sum_m p_{o_m}(x)$, is again a model, and
# by Jensen's inequality its log-likelihood is at least the orderings' mean: the
# ensemble of orderings (EoNADE). Below, the test log-likelihood as orderings join the
# ensemble.

# %%
deep = DeepNADE((784,), hidden=(100,) if QUICK else (500, 500), num_orderings=8)
deep_fit = pyrogen.fit(deep, train, method="mle", lr=1e-3, batch_size=100,
                      num_epochs=EPOCHS)  # fmt: skip
held_out = test[:300] if QUICK else test[:1000]
each = deep.ordering_log_probs(held_out)  # (8, N): log p_o(x) under each ordering
sizes = np.arange(1, 9)
ensemble = [float((each[:k].logsumexp(0) - np.log(k)).mean()) for k in sizes]
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(sizes, [-v for v in ensemble], "o-", label="ensemble of the first M")
ax.plot(sizes, [-float(e.mean()) for e in each], "x", color="grey", label="each ordering")
ax.set(xlabel="orderings M", ylabel="test NLL (nats)", title="DeepNADE: ensembles of orderings")
ax.legend()
plot_images(deep.sample(10 if QUICK else 20), (28, 28), 2, "DeepNADE samples (8 orderings)")
print(f"one ordering {-ensemble[0]:.2f} nats, eight {-ensemble[-1]:.2f}")

# %% [markdown]
# ## PixelCNN's receptive field, and the blind spot
#
# Which input pixels can change the logit of the centre pixel? The gradient answers
# exactly: only pixels before it in raster order. For the original PixelCNN
# (`gated=False`), not all of them: stacked masked 3x3 kernels never reach the wedge to
# the upper right, the "blind spot". The gated PixelCNN (the default) runs a vertical
# stack that sees whole rows above (kernels of $(k/2 + 1) \times k$, its output shifted
# down one row) beside a horizontal stack that sees the row to the left; the
# horizontal stack reads the vertical one, and the union has no blind spot. The
# receptive field is a property of the architecture, so untrained networks will do.

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, gated in zip(axes, (False, True)):
    torch.manual_seed(0)
    network = PixelCNN((28, 28), layers=7, gated=gated)
    image = test[:1].clone().requires_grad_(True)
    centre = 14 * 28 + 14
    network.logits(image)[0, centre].backward()
    seen = (image.grad.reshape(28, 28) != 0).float()
    seen[14, 14] = 0.5  # the pixel itself, in grey
    ax.imshow(seen, cmap="Blues")
    ax.set(title=("gated two-stack" if gated else "original (masked)") + " PixelCNN")
    ax.axis("off")
fig.suptitle("inputs that reach the centre pixel's logit (7 layers)")

# %% [markdown]
# ## WaveNet's dilations
#
# WaveNet reads the image as one sequence. Each layer is a causal convolution with
# two taps, $t$ and $t - d$, and the dilation $d$ doubles from layer to layer, so $L$
# layers see $2^L$ steps back at a cost linear in $L$: ten layers cover all 784 pixels.
# Below, the connections that feed the last output of four layers (dilations 1, 2, 4,
# 8): sixteen inputs. Sampling keeps each layer's recent inputs in a queue and reads
# only its two taps (Fast WaveNet), instead of re-running the stack on the prefix.

# %%
fig, ax = plt.subplots(figsize=(9, 3.2))
T, dilations = 20, [1, 2, 4, 8]
reach = {(len(dilations), T - 1)}
for level in range(len(dilations), 0, -1):
    d = dilations[level - 1]
    for _, t in [node for node in reach if node[0] == level]:
        for source in (t, t - d):
            if source >= 0:
                ax.plot([source, t], [level - 1, level], color="C0", lw=1)
                reach.add((level - 1, source))
for level in range(len(dilations) + 1):
    on = [t for (lv, t) in reach if lv == level]
    ax.scatter(range(T), [level] * T, s=18, color="lightgrey", zorder=2)
    ax.scatter(on, [level] * len(on), s=18, color="C0", zorder=3)
ax.set(yticks=range(5), yticklabels=["input", "d=1", "d=2", "d=4", "d=8"], xlabel="position")
ax.set_title("receptive field of the last output: 2^4 = 16 inputs")
wavenet = models["WaveNet"]
print("WaveNet layers:", wavenet.config.layers, "receptive field:", wavenet.receptive_field)

# %% [markdown]
# ## Likelihood as an anomaly detector
#
# $-\log p(x)$ is large for inputs the model finds unlikely. Digits with 10% of their
# pixels flipped, or shifted four pixels right, should score far above clean test
# digits; the AUROC says how well the score separates them (0.5 is chance).

# %%
noise = torch.rand(test.shape, generator=torch.Generator().manual_seed(1)) < 0.1
flipped = (test - noise.float()).abs()
shifted = test.reshape(-1, 28, 28).roll(4, dims=2).reshape(-1, 784)
fig, ax = plt.subplots(figsize=(6, 3.5))
model = models["NADE"]
clean = model.anomaly_score(test)
for label, data in (("clean", test), ("10% flipped", flipped), ("shifted by 4", shifted)):
    ax.hist(model.anomaly_score(data).numpy(), bins=40, alpha=0.6, label=label)
ax.set(xlabel="-log p(x) under NADE (nats)", title="anomaly scores")
ax.legend()
for name, model in models.items():
    clean = model.anomaly_score(test)
    print(
        f"{name}: AUROC flipped {auroc(clean, model.anomaly_score(flipped)):.3f}, "
        f"shifted {auroc(clean, model.anomaly_score(shifted)):.3f}"
    )

# %% [markdown]
# ## The NLL table
#
# Test negative log-likelihood in nats per image from the runs above, beside the
# papers' figures (trained to convergence on the full 50,000 images; the runs here are
# short, so expect to sit above them). The full protocol, choosing the epoch on the
# validation split, is `python bench/ar_mnist.py`.

# %%
papers = {"FVSBN": 97.45, "NADE": 88.86, "MADE": 88.40, "PixelCNN": 81.30, "WaveNet": None}
print(f"{'model':10s} {'this run':>9s} {'paper':>7s}")
for name, nll in table.items():
    paper = "" if papers[name] is None else f"{papers[name]:7.2f}"
    print(f"{name:10s} {nll:9.2f} {paper:>7s}")

# %% [markdown]
# Run to convergence by `bench/ar_mnist.py` (the epoch chosen on the validation
# digits), the same families reach the papers' figures: FVSBN 97.44 with a Laplace
# prior (below), NADE 88.52 (paper 88.86), MADE 88.19 with the paper's network, one
# hidden layer of 8000 units and direct input-to-output connections (paper 88.40; 91.5
# with 500 units), and a gated PixelCNN of 20 layers and 32 channels 80.47 (paper
# 81.30). NADE, MADE and PixelCNN ran on an H100 GPU, each in under ten minutes:
#
# ```
# python bench/ar_mnist.py --models made --made-hidden 8000 --made-direct --lr 3e-4 \
#     --device cuda --no-speed --epochs 2000 --max-minutes 6.5 --eval-every 1 --patience 5
# python bench/ar_mnist.py --models pixelcnn --pixelcnn-layers 20 --pixelcnn-channels 32 \
#     --lr 1e-3 --lr-decay 0.95 --device cuda --no-speed --epochs 2000 --max-minutes 8.2 \
#     --eval-every 1 --patience 4
# ```

# %% [markdown]
# ## A prior on FVSBN's weights
#
# FVSBN has $D(D-1)/2 \approx 307{,}000$ weights for 50,000 images, and fitted long
# enough it overfits: the training digits' NLL falls below the test digits' by several
# nats. `FVSBN((784,), prior_scale=s)` puts $W_{dj} \sim \mathcal N(0, s^2)$ on every
# weight (`prior="laplace"`: $\mathrm{Laplace}(0, s)$), as a factor of the Pyro model
# outside the data plate, so `fit` finds the posterior mode: L2- (or L1-) penalized
# logistic regressions, the penalty counted once for the data set however it is
# minibatched. Below, the same short fit without and with each prior (a larger
# learning rate than above, so that the fit reaches the overfitting regime). Run to
# convergence on all 50,000 images with the Laplace prior, s = 0.2 (chosen on the
# validation digits), FVSBN reaches 97.44 ± 0.23 nats on the test digits, the paper's
# 97.45; without a prior it stops near 98.4:
# `python bench/ar_mnist.py --models fvsbn --no-speed --epochs 100 --eval-every 4
# --lr 1e-2 --lr-decay 0.95 --fvsbn-prior laplace --fvsbn-prior-scale 0.2`.

# %%
for prior in ({}, {"prior_scale": 0.5}, {"prior": "laplace", "prior_scale": 0.2}):
    fvsbn = FVSBN((784,), **prior)
    pyrogen.fit(fvsbn, train, method="mle", lr=1e-2, batch_size=100, num_epochs=EPOCHS)
    print(
        f"{prior or 'no prior'}: train NLL {-float(fvsbn.log_prob(train[:10000]).mean()):.2f}, "
        f"test NLL {-float(fvsbn.log_prob(test).mean()):.2f} nats"
    )

# %% [markdown]
# ## Text: characters of the Python documentation
#
# The standard library ships the help pages of `pydoc` (`pydoc_data.topics`), about
# 465,000 characters of English prose and code. `pyrogen.data.characters` cuts them
# into a training, a validation and a test part (contiguous, so the test text is
# unseen) and into sequences of 96 symbols. An LSTM and a small GPT-style transformer
# model them with categorical conditionals; the score is bits per character on the
# test part, beside a bigram model (character-pair counts).

# %%
LENGTH = 64
text = pyrogen.data.characters(LENGTH)
chars_train = text.train[:300] if QUICK else text.train
size = len(text.alphabet)
counts = np.full((size + 1, size), 0.5)  # row `size` is the start of a sequence
np.add.at(counts, (np.c_[np.full(len(chars_train), size), chars_train[:, :-1]], chars_train), 1)
bigram = counts / counts.sum(1, keepdims=True)
bigram_bits = -np.log2(bigram[np.c_[np.full(len(text.test), size), text.test[:, :-1]], text.test])
language_models = {
    "LSTM": RNNDecoder(
        (LENGTH,), hidden=64 if QUICK else 256, likelihood="categorical", num_classes=size
    ),  # fmt: skip
    "transformer": TransformerDecoder(
        (LENGTH,),
        dim=32 if QUICK else 128,
        layers=2 if QUICK else 4,
        likelihood="categorical",
        num_classes=size,
    ),  # fmt: skip
}
print(f"bigram: {bigram_bits.mean():.3f} bits per character")
for name, model in language_models.items():
    fit = pyrogen.fit(model, chars_train, method="mle", lr=2e-3, batch_size=64,
                      num_epochs=1 if QUICK else 10)  # fmt: skip
    print(f"{name}: {float(model.bits_per_dim(text.test).mean()):.3f} bits per character")
    for line in text.decode(model.sample(2)):
        print("   ", repr(line))

# %% [markdown]
# Sampling a transformer naively recomputes the whole prefix for every new character;
# with the key/value cache each step attends from the new position only. Same draws,
# less work:

# %%
import time

transformer = language_models["transformer"]
for cache in (True, False):
    torch.manual_seed(0)
    began = time.perf_counter()
    draws = transformer.sample(20, cache=cache)
    seconds = time.perf_counter() - began
    print(f"cache={cache}: {seconds:.2f} s, first draw {text.decode(draws[:1])[0][:30]!r}")

# %% [markdown]
# ## Real-valued pixels: RNADE on 8x8 digits
#
# scikit-learn's 8x8 digits have 17 grey levels; adding uniform noise inside each level
# (`pyrogen.data.dequantized_digits`) makes them a density problem on $[0, 1]^{64}$.
# RNADE keeps NADE's running hidden layer and makes each conditional
# $p(x_d \mid x_{<d})$ a mixture of 10 Gaussians whose weights, means and scales are
# linear in $h_d$. It is fitted on standardized pixels; the log-likelihood is reported
# back on $[0, 1]^{64}$ (the standardization's Jacobian added), beside scikit-learn's
# Gaussian mixtures with full covariances, their number chosen on held-out images.

# %%
from sklearn.mixture import GaussianMixture  # noqa: E402

pixels, _ = pyrogen.data.dequantized_digits(seed=0)
fit_part, select_part, test_part = pixels[:1200], pixels[1200:1400], pixels[1400:]
shift, spread = fit_part.mean(0), fit_part.std(0)
jacobian = -np.log(spread).sum()  # log |dz/dx| of z = (x - shift) / spread


def standardized(x):
    return torch.as_tensor((x - shift) / spread, dtype=torch.float32)


torch.manual_seed(0)
rnade = RNADE((64,), hidden=100, components=10).float()
pyrogen.fit(rnade, standardized(fit_part), method="mle", lr=3e-3, batch_size=100,
            num_epochs=5 if QUICK else 20)  # fmt: skip
rnade_ll = float(rnade.log_prob(standardized(test_part)).mean()) + jacobian
mixtures = [GaussianMixture(k, reg_covar=1e-4, random_state=0).fit(fit_part) for k in (1, 2, 4, 8)]
best = max(mixtures, key=lambda m: m.score(select_part))
print(f"test log-likelihood per image: RNADE {rnade_ll:.1f} nats, ", end="")
print(f"GaussianMixture ({best.n_components} components) {best.score(test_part):.1f} nats")

# %% [markdown]
# Samples beside real digits, and one conditional: the density of a pixel given the
# pixels before it in three test images (the dotted lines are the actual values). A
# single Gaussian could not express these: sharp peaks near "no ink" and "full ink"
# beside a broad bump between, weighted differently for each image's context.

# %%
drawn = rnade.sample(16).detach().numpy() * spread + shift
plot_images(np.clip(drawn, 0, 1), (8, 8), 2, "RNADE samples (8x8 digits)")
plot_images(test_part[:16], (8, 8), 2, "test digits")
plt.show()
pixel = 8 * 3 + 4  # row 3, column 4: the middle of most digits
grid = torch.linspace(-3, 3, 400)
with torch.no_grad():
    z = standardized(test_part[:3])
    conditional = rnade.conditionals(z)  # batch (3, 64): p(z_d | z_<d) of each image
    density = conditional.log_prob(grid[:, None, None].expand(-1, 3, 64)).exp()[..., pixel]
fig, ax = plt.subplots(figsize=(7, 3))
for i in range(3):
    ax.plot(grid * spread[pixel] + shift[pixel], density[:, i] / spread[pixel], label=f"image {i}")
    ax.axvline(test_part[i, pixel], color=f"C{i}", ls=":")
ax.set(xlabel="pixel value", ylabel="density", title=f"p(x_{pixel} | pixels before it)")
ax.legend()
plt.show()

# %% [markdown]
# ## A real time series: sunspots
#
# Yearly mean sunspot numbers, 1700-2008 (statsmodels' copy), on the square-root
# scale. A WaveNet with a mixture of three Gaussians per conditional is fitted to
# windows of 16 years from 1700-1919; each later year is then predicted from the 15
# before it (the last conditional of a window), beside a Gaussian AR(9) fitted by least
# squares on the same windows. With 220 years of training data the flexible model has
# little room to win, and it overfits if trained long: the comparison is honest, not
# flattering.

# %%
split, window = 220, 16
windows, later = map(torch.tensor, pyrogen.data.sunspot_windows(window, train_years=split))
series = np.sqrt(pyrogen.data.load("sunspots"))
series = (series - series[:split].mean()) / series[:split].std()
lags = 9
design = torch.cat([windows[:, -1 - lags : -1], torch.ones(len(windows), 1)], 1)
coef = torch.linalg.lstsq(design, windows[:, -1:]).solution
ar_sd = float((windows[:, -1:] - design @ coef).std())
ar_mean = (torch.cat([later[:, -1 - lags : -1], torch.ones(len(later), 1)], 1) @ coef)[:, 0]
ar_ll = torch.distributions.Normal(ar_mean, ar_sd).log_prob(later[:, -1])
torch.manual_seed(0)
sun = WaveNet((window,), channels=16, likelihood="normal_mixture", components=3).double()
pyrogen.fit(sun, windows, method="mle", lr=3e-3, batch_size=32, num_epochs=10)
with torch.no_grad():
    predictive = sun.conditionals(later)  # batch (N, 16): the last one is the forecast
    wavenet_ll = predictive.log_prob(later)[:, -1]
    draws = predictive.sample((2000,))[..., -1]  # (2000, N)
print(f"one-step-ahead log density per year: WaveNet {wavenet_ll.mean():.3f}, ", end="")
print(f"AR(9) {ar_ll.mean():.3f}")
years = np.arange(1700, 2009)[split:]
low, mid, high = np.quantile(draws.numpy(), [0.05, 0.5, 0.95], axis=0)
fig, ax = plt.subplots(figsize=(9, 3.5))
ax.plot(np.arange(1700, 2009), series, color="k", lw=1, label="data")
ax.fill_between(years, low, high, color="C0", alpha=0.3, label="WaveNet 90% one-step band")
ax.plot(years, mid, color="C0", lw=1)
ax.plot(years, ar_mean.numpy(), color="C1", lw=1, label="AR(9) mean")
ax.axvline(1700 + split, color="grey", ls=":")
ax.set(xlabel="year", ylabel="sqrt(sunspots), standardized")
ax.legend(loc="upper left")

# %% [markdown]
# The longer runs (bits per character against bigram, trigram and lzma; training and
# sampling time against hand-written PyTorch; the transformer's cache) are
# `python bench/ar_sequence.py`.
