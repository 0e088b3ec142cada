r"""Autoregressive density models: FVSBN, NADE and MADE for binary vectors, RNADE for
real-valued ones.

Each model factorizes a D-dimensional binary vector by the chain rule,

.. math::

    p(x) = \prod_{d=1}^{D} p(x_{o_d} \mid x_{o_{<d}}), \qquad
    p(x_{o_d} = 1 \mid x_{o_{<d}}) = \sigma(\ell_d(x_{o_{<d}})),

for an ordering :math:`o` of the dimensions, and differs only in the logit
:math:`\ell_d`. As a Pyro model every conditional is one observed site, evaluated in a
single vectorized pass (teacher forcing): there is no latent variable, so
``pyrogen.fit(m, x, method="mle")`` maximizes the log-likelihood with the engine's
loop (minibatches with ``batch_size``). ``sample(n)`` draws the D conditionals in turn.

- **FVSBN** (fully visible sigmoid belief network; Frey 1998):
  :math:`\ell_d = b_d + \sum_{j<d} W_{dj} x_{o_j}`, a logistic regression per dimension
  (a strictly lower-triangular weight matrix).
- **NADE** (Larochelle and Murray 2011): a hidden layer shared across the conditionals,
  :math:`h_d = \sigma(c + W_{:, <d} x_{o_{<d}})`, :math:`\ell_d = b_d + V_d \cdot h_d`;
  the pre-activations are a running sum over d, so all D conditionals cost O(DH).
- **MADE** (Germain et al. 2015): an MLP whose weight matrices are masked so that
  output d sees only inputs before it in the ordering (Pyro's ``MaskedLinear`` layers).
  With ``num_masks`` > 1 it is trained order- and connectivity-agnostically: each
  training pass draws one of ``num_masks`` (ordering, hidden-degree) mask sets, all
  sharing the weights; ``log_prob`` is then the ensemble
  :math:`\log \frac1M \sum_m p_m(x)` (a proper mixture, the EoNADE idea of Uria et al.
  2014), whose training objective :math:`\mathbb E_m \log p_m(x)` is a lower bound of it.
- **DeepNADE** (Uria, Murray and Larochelle 2014): one ReLU MLP that reads the
  observed part of x and which dimensions are observed, :math:`[x \odot m, m]`, and
  gives :math:`p(x_j \mid x_S)` for every unobserved j at once, for any observed set
  S; an ordering o then defines :math:`p_o(x) = \prod_d p(x_{o_d} \mid x_{o_{<d}})`.
  It is trained order-agnostically, for all D! orderings at once: each example draws
  :math:`d \sim U\{1..D\}` and an ordering, and the site x counts the D - d + 1
  unobserved dimensions with weight D / (D - d + 1), an unbiased estimate of
  :math:`\log p_o(x)` whose mean over orderings is a lower bound of the ensemble's
  :math:`\log \frac1M \sum_m p_{o_m}(x)` (EoNADE). ``log_prob`` and ``sample`` use
  ``num_orderings`` fixed orderings; the first layer's pre-activation is a running
  sum along the ordering (NADE's trick), so the D conditionals of an ordering cost
  one pass of the upper layers per dimension, O(D H^2), not D whole passes.
  With ``steps`` = k > 1 it is NADE-k (Raiko, Li, Cho and Bengio 2014): the network
  is applied k times, each pass reading the observed values with the previous pass's
  probabilities filled in where x is unobserved, a learned mean-field-like inference
  whose last pass gives :math:`p(x_j \mid x_S)`; every conditional then costs k whole
  passes (no running sum: the filled-in values change with S).

- **PixelCNN** (van den Oord et al. 2016a, b): images in raster order. ``gated=True``
  (the default) stacks gated layers with a vertical stack that sees every row above
  and a horizontal stack that sees the pixels to the left, which together have no
  blind spot; ``gated=False`` is the original stack of convolutions whose kernels are
  masked so that a pixel's logit sees only the pixels above it and to its left (mask A
  on the first layer excludes the centre, mask B on the later ones includes it), whose
  receptive field misses a wedge to the upper right.
- **RNADE** (Uria, Murray and Larochelle 2013): NADE's shared hidden layer for real
  values, each conditional a mixture of K Gaussians whose weights, means and log-sds
  are linear in :math:`h_d` (one output layer per dimension).

The sequence models below read x as a sequence x_1..x_T (an image in raster order,
characters, a time series) and compute the features of every conditional from the
shifted inputs (position t is fed x_{t-1}, position 1 a learned start vector) in one
causal pass; the conditional is Bernoulli (binary data), categorical (``num_classes``
symbols: text) or a mixture of ``components`` Gaussians (standardized real values):

- **WaveNet** (van den Oord et al. 2016c): a stack of dilated causal 1-D convolutions
  (dilations 1, 2, 4, ..., kernel 2) with gated activations, residual and skip
  connections; by default enough layers that the receptive field covers the sequence.
  Sampling keeps each layer's input history and reads only its taps (Fast WaveNet,
  Paine et al. 2016): O(layers) per value.
- **RNNDecoder**: an LSTM or GRU over the shifted inputs; sampling carries the state.
- **TransformerDecoder** (GPT-2 style; Radford et al. 2019): learned position
  embeddings, pre-norm blocks of causal self-attention; sampling caches the keys and
  values of the positions drawn so far (``sample(n, cache=False)`` recomputes the
  prefix, for comparison).

References:
    Frey (1998). Graphical Models for Machine Learning and Digital Communication. MIT.
    Larochelle and Murray (2011). The Neural Autoregressive Distribution Estimator.
    Germain, Gregor, Murray and Larochelle (2015). MADE: Masked Autoencoder for
        Distribution Estimation. ICML.
    Uria, Murray and Larochelle (2014). A Deep and Tractable Density Estimator. ICML.
    Raiko, Li, Cho and Bengio (2014). Iterative Neural Autoregressive Distribution
        Estimator (NADE-k). NeurIPS.
    van den Oord, Kalchbrenner and Kavukcuoglu (2016a). Pixel Recurrent Neural
        Networks. ICML.
    van den Oord et al. (2016b). Conditional Image Generation with PixelCNN Decoders.
    van den Oord et al. (2016c). WaveNet: A Generative Model for Raw Audio.
    Paine et al. (2016). Fast Wavenet Generation Algorithm.
    Radford et al. (2019). Language Models are Unsupervised Multitask Learners.
    Uria, Murray and Larochelle (2013). RNADE: The real-valued neural autoregressive
        density-estimator. NeurIPS.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn.auto_reg_nn import MaskedLinear
from torch import nn
from torch.nn import functional as F

from pyrogen.distributions import NormalMixture
from pyrogen.infer.fast_elbo import module
from pyrogen.nn.autoregressive import (
    LIKELIHOODS,
    DistributionHead,
    GatedPixelCNNLayer,
    MaskedConv2d,
    ShiftedInput,
    TransformerBlock,
    WaveNetBlock,
    normal_mixture,
    sample_normal_mixture,
)
from pyrogen.validation import (
    check_bool,
    check_choice,
    check_data_shape,
    check_positive_int,
    check_positive_number,
)
from pyrogen.zoo import NetworkModel, data_plate, register

__all__ = [
    "FVSBN",
    "NADE",
    "MADE",
    "DeepNADE",
    "RNADE",
    "PixelCNN",
    "WaveNet",
    "RNNDecoder",
    "TransformerDecoder",
]


@dataclass
class FVSBNConfig:
    data_shape: list[int]
    prior_scale: float | None = None
    prior: str = "normal"


@dataclass
class NADEConfig:
    data_shape: list[int]
    hidden: int = 500


@dataclass
class MADEConfig:
    data_shape: list[int]
    hidden: list[int] = field(default_factory=lambda: [500])
    num_masks: int = 1
    seed: int = 0  # draws the orderings and hidden degrees of masks 2..num_masks
    direct: bool = False  # direct input-to-output connections


STEP_LOSSES = ("mean", "last")


@dataclass
class DeepNADEConfig:
    data_shape: list[int]
    hidden: list[int] = field(default_factory=lambda: [500, 500])
    num_orderings: int = 1
    seed: int = 0  # draws the orderings
    data_order: bool = False  # the first ordering is the data's own, the rest drawn
    steps: int = 1  # NADE-k's refinement passes per conditional (k)
    step_loss: str = "mean"  # train on every pass's prediction ("mean") or the last's


class _Autoregressive(NetworkModel):
    """What the autoregressive models share: data checks, the Pyro model with one
    vectorized observed site (every conditional at once), exact log-likelihood,
    sequential sampling. Binary unless a subclass says otherwise."""

    default_method = "mle"
    binary_data = True

    def _setup(self, config) -> None:
        self.config = config
        self.dim = math.prod(config.data_shape)

    # -- the model ---------------------------------------------------------------------
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """All D conditional logits of flat binary x (N, D), in data order."""
        raise NotImplementedError

    def conditionals(self, x: torch.Tensor) -> dist.TorchDistribution:
        """p(x_d | x_<d) for every d of flat x (N, D): batch shape (N, D)."""
        return dist.Bernoulli(logits=self.logits(x))

    def _observed(self, flat: torch.Tensor) -> torch.Tensor:
        return flat

    def model(self, x, num_examples: int | None = None) -> None:
        module(type(self).__name__.lower(), self)
        flat = x.reshape(len(x), self.dim)
        with data_plate(x, num_examples):
            pyro.sample("x", self.conditionals(flat).to_event(1), obs=self._observed(flat))

    guide = None

    def _numbers_per_example(self) -> int:
        """About how many numbers one example holds in the teacher-forced pass's largest
        tensors, for :meth:`log_prob`'s chunking."""
        return 4 * self.dim

    def log_prob(self, x) -> torch.Tensor:
        """Exact log p(x) per example (nats; a density for real-valued data). Examples
        go in chunks of about 2**24 numbers of the pass's largest tensors (NADE's hidden
        states alone are N x D x H), so memory stays bounded whatever N."""
        (x,) = self.prepare(x)  # checked here: the distributions need not check again
        flat = x.reshape(len(x), self.dim)
        batch = max(1, 2**24 // self._numbers_per_example())
        with torch.no_grad(), pyro.validation_enabled(False):
            return torch.cat(
                [
                    self.conditionals(part).log_prob(self._observed(part)).sum(-1)
                    for part in flat.split(batch)
                ]
            )

    def anomaly_score(self, x) -> torch.Tensor:
        """-log p(x) per example (nats): high where the model finds x unlikely, the
        out-of-distribution detector of PixelDefend (Song et al. 2018)."""
        return -self.log_prob(x)

    def bits_per_dim(self, x) -> torch.Tensor:
        """-log2 p(x) / D per example (bits per character for text)."""
        return -self.log_prob(x) / (self.dim * math.log(2.0))

    def _order(self) -> torch.Tensor:
        return torch.arange(self.dim)

    def sample(self, n: int) -> torch.Tensor:
        """n exact draws, one dimension at a time in the model's order."""
        check_positive_int(n, "n")
        reference = next(self.parameters())
        x = reference.new_zeros(n, self.dim)
        with torch.no_grad():
            for d in self._order().tolist():
                x[:, d] = torch.bernoulli(torch.sigmoid(self._logit(x, d)))
        return x.reshape(n, *self.config.data_shape)

    def _logit(self, x: torch.Tensor, d: int) -> torch.Tensor:
        """The logit of p(x_d = 1 | x's earlier dimensions) (the later ones are 0 in x),
        (N,); drawn as ``Bernoulli(logits=...).sample()`` draws it."""
        return self.logits(x)[:, d]


def _running_hidden(x: torch.Tensor, W: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """NADE's hidden states h_d = sigmoid(c + W[:, <d] x_<d) for every d of flat x (N, D)
    at once, (N, D, H): the pre-activations are an exclusive running sum over d."""
    contributions = x[:, :, None] * W.T
    return torch.sigmoid(c + contributions.cumsum(1) - contributions)


def _sample_running(W: torch.Tensor, c: torch.Tensor, n: int, draw) -> torch.Tensor:
    """n draws (n, D), dimension by dimension: x_d = draw(h_d, d) with h_d (n, H), the
    pre-activation carried from one dimension to the next, a_{d+1} = a_d + W_d x_d, so
    each draw costs O(DH)."""
    with torch.no_grad():
        a = c.expand(n, -1).clone()
        x = a.new_empty(n, W.shape[1])
        for d in range(W.shape[1]):
            x[:, d] = draw(torch.sigmoid(a), d)
            a += x[:, d : d + 1] * W[:, d]
    return x


def _hidden_widths(hidden, family: str) -> list[int]:
    """At least one hidden layer, each of a positive width."""
    hidden = [int(h) for h in hidden]
    if not hidden:
        raise ValueError(f"hidden: {family} needs at least one hidden layer")
    for h in hidden:
        check_positive_int(h, "hidden")
    return hidden


def _member_log_probs(model, x, members, use) -> torch.Tensor:
    """Each ensemble member's exact log p_m(x), (len(members), N): ``use(m)`` switches to
    member m, whose teacher-forced log-likelihood is the generic one; the current member
    is restored."""
    current = model.current
    try:
        each = []
        for m in members:
            use(m)
            each.append(_Autoregressive.log_prob(model, x))
    finally:
        use(current)
    return torch.stack(each)


def _sample_members(model, n: int, members: int, use) -> torch.Tensor:
    """n exact flat draws of an ensemble (1/M) sum_m p_m: a member per draw, uniformly,
    then ``model._sample_current`` under it (``use(m)`` switches to member m; the
    current member is restored)."""
    if members == 1:
        with torch.no_grad():
            return model._sample_current(n)
    current = model.current
    reference = next(model.parameters())
    which = torch.randint(members, (n,), device=reference.device)
    out = reference.new_empty(n, model.dim)
    try:
        with torch.no_grad():
            for m in which.unique().tolist():
                use(m)
                chosen = which == m
                out[chosen] = model._sample_current(int(chosen.sum()))
    finally:
        use(current)
    return out


@register("fvsbn")
class FVSBN(_Autoregressive):
    r"""Fully visible sigmoid belief network: a logistic regression per dimension on
    the dimensions before it. Parameters: D(D+1)/2.

    ``prior_scale`` = s puts a prior on the D(D-1)/2 weights, Gaussian
    :math:`W_{dj} \sim \mathcal N(0, s^2)` (``prior="normal"``) or Laplace
    :math:`W_{dj} \sim \mathrm{Laplace}(0, s)` (``prior="laplace"``; the biases keep
    a flat prior), as a factor of the model outside the data plate, so a fit
    (``method="mle"``, which maximizes the model's joint density over its parameters)
    is the posterior mode: L2-penalized logistic regressions, penalty
    :math:`\lVert W\rVert_2^2 / 2s^2`, or L1-penalized ones,
    :math:`\lVert W\rVert_1 / s`, counted once for the whole data set however it is
    minibatched. With 784 pixels and 50,000 images the unpenalized fit overfits (see
    ``bench/ar_mnist.py``)."""

    def __init__(self, data_shape, prior_scale: float | None = None, prior: str = "normal"):
        super().__init__()
        if prior_scale is not None:
            prior_scale = check_positive_number(prior_scale, "prior_scale")
        check_choice(prior, "prior", ("normal", "laplace"))
        self._setup(FVSBNConfig(check_data_shape(data_shape), prior_scale, prior))
        self.weight = nn.Parameter(torch.zeros(self.dim, self.dim))
        self.bias = nn.Parameter(torch.zeros(self.dim))
        self.register_buffer("mask", torch.ones(self.dim, self.dim).tril(-1))

    def logits(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)

    def log_prior(self) -> torch.Tensor:
        """log p(W) under ``prior_scale`` (0 without one): the weights the mask keeps."""
        s = self.config.prior_scale
        if s is None:
            return self.weight.new_zeros(())
        w = self.weight * self.mask
        count = self.dim * (self.dim - 1) / 2
        if self.config.prior == "laplace":
            return -w.abs().sum() / s - count * math.log(2 * s)
        return -0.5 * (w**2).sum() / s**2 - count * (math.log(s) + 0.5 * math.log(2 * math.pi))

    def model(self, x, num_examples: int | None = None) -> None:
        super().model(x, num_examples)
        if self.config.prior_scale is not None:
            pyro.factor("weight_prior", self.log_prior())

    def _logit(self, x, d):
        return x @ (self.weight[d] * self.mask[d]) + self.bias[d]


@register("nade")
class NADE(_Autoregressive):
    """Neural autoregressive distribution estimator with ``hidden`` sigmoid units shared
    by every conditional (default 500, as in Larochelle and Murray 2011)."""

    def __init__(self, data_shape, hidden: int = 500):
        super().__init__()
        check_positive_int(hidden, "hidden")
        self._setup(NADEConfig(check_data_shape(data_shape), int(hidden)))
        scale = 1.0 / math.sqrt(self.dim)
        self.W = nn.Parameter(torch.randn(hidden, self.dim) * scale)
        self.c = nn.Parameter(torch.zeros(hidden))
        self.V = nn.Parameter(torch.randn(self.dim, hidden) * 1.0 / math.sqrt(hidden))
        self.b = nn.Parameter(torch.zeros(self.dim))

    def logits(self, x):
        return (_running_hidden(x, self.W, self.c) * self.V).sum(-1) + self.b

    def _numbers_per_example(self) -> int:
        return self.dim * self.config.hidden  # the (D, H) hidden states

    def sample(self, n: int) -> torch.Tensor:
        """n exact draws in O(DH) each (the pre-activation carried along)."""
        check_positive_int(n, "n")

        def draw(h, d):
            return torch.bernoulli(torch.sigmoid(h @ self.V[d] + self.b[d]))

        return _sample_running(self.W, self.c, n, draw).reshape(n, *self.config.data_shape)


@dataclass
class PixelCNNConfig:
    data_shape: list[int]
    channels: int = 64
    layers: int = 7
    first_kernel: int = 7
    kernel: int = 3
    gated: bool = True


@register("pixelcnn")
class PixelCNN(_Autoregressive):
    """PixelCNN for binary images (H, W). ``gated=True`` (default): a first gated
    two-stack layer with ``first_kernel`` that excludes the current pixel, ``layers`` - 1
    gated layers with ``kernel``, then ReLU, 1x1 convolution, ReLU, 1x1 convolution to
    the logits (van den Oord et al. 2016b). ``gated=False``: a ``first_kernel`` mask-A
    convolution to ``channels`` channels, ``layers`` - 1 residual mask-B ``kernel``
    convolutions with ReLUs, and a 1x1 convolution to the logits (2016a)."""

    def __init__(
        self,
        data_shape,
        channels: int = 64,
        layers: int = 7,
        first_kernel: int = 7,
        kernel: int = 3,
        gated: bool = True,
    ):
        super().__init__()
        shape = check_data_shape(data_shape)
        if len(shape) != 2:
            raise ValueError(f"data_shape: PixelCNN needs (height, width), got {tuple(shape)}")
        for value, name in ((channels, "channels"), (layers, "layers")):
            check_positive_int(value, name)
        for value, name in ((first_kernel, "first_kernel"), (kernel, "kernel")):
            check_positive_int(value, name)
            if value % 2 == 0:
                raise ValueError(f"{name}: must be odd, got {value}")
        self._setup(PixelCNNConfig(shape, channels, layers, first_kernel, kernel, bool(gated)))
        if gated:
            self.stack = nn.ModuleList(
                [GatedPixelCNNLayer(1, channels, first_kernel, first=True)]
                + [GatedPixelCNNLayer(channels, channels, kernel) for _ in range(layers - 1)]
            )
            self.out = nn.Sequential(
                nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, 1, 1)
            )
            return
        self.first = MaskedConv2d(1, channels, first_kernel, "A")
        self.blocks = nn.ModuleList(
            MaskedConv2d(channels, channels, kernel, "B") for _ in range(layers - 1)
        )
        self.out = nn.Conv2d(channels, 1, 1)

    def logits(self, x):
        return self.image_logits(x.reshape(len(x), *self.config.data_shape)).reshape(len(x), -1)

    def image_logits(self, image: torch.Tensor) -> torch.Tensor:
        """The logits of images (N, h, W) of any number of rows h: every layer is causal
        in rows (a pixel's logit reads only the rows above and its own row's left
        part), so the first h rows' logits need only the first h rows."""
        height, width = self.config.data_shape
        if image.dim() != 3 or image.shape[2] != width or not 1 <= image.shape[1] <= height:
            raise ValueError(
                f"image: expected shape (N, h, {width}) with 1 <= h <= {height}, "
                f"got {tuple(image.shape)}"
            )
        image = image[:, None]  # (N, 1, h, W)
        if self.config.gated:
            v = h = image
            for layer in self.stack:
                v, h = layer(v, h)
            return self.out(h)[:, 0]
        h = self.first(image)
        for block in self.blocks:
            h = h + block(torch.relu(h))
        return self.out(torch.relu(h))[:, 0]

    def _numbers_per_example(self) -> int:
        return 4 * self.config.channels * self.dim  # both stacks' gate pre-activations

    def _logit(self, x, d):
        """Pixel (i, j) = divmod(d, W) from a pass over rows 0..i only (see
        :meth:`image_logits`): the sampler does about half the work of a pass over the
        whole image per pixel, and draws the same."""
        height, width = self.config.data_shape
        i, j = divmod(d, width)
        return self.image_logits(x.reshape(len(x), height, width)[:, : i + 1])[:, i, j]


@dataclass
class RNADEConfig:
    data_shape: list[int]
    hidden: int = 100
    components: int = 10


@register("rnade")
class RNADE(_Autoregressive):
    """Real-valued NADE: ``hidden`` shared sigmoid units (default 100) and a mixture of
    ``components`` Gaussians (default 10) per conditional."""

    binary_data = False

    def __init__(self, data_shape, hidden: int = 100, components: int = 10):
        super().__init__()
        check_positive_int(hidden, "hidden")
        check_positive_int(components, "components")
        self._setup(RNADEConfig(check_data_shape(data_shape), int(hidden), int(components)))
        d = self.dim
        self.W = nn.Parameter(torch.randn(hidden, d) / math.sqrt(d))
        self.c = nn.Parameter(torch.zeros(hidden))
        # per dimension: K weights, K means, K log-sds, each linear in h_d
        self.V = nn.Parameter(torch.randn(d, 3 * components, hidden) * 0.1 / math.sqrt(hidden))
        self.b = nn.Parameter(torch.zeros(d, 3 * components))
        with torch.no_grad():  # means spread over [-2, 2] (standardized data)
            self.b[:, components : 2 * components] = torch.linspace(-2, 2, components)

    def _mixture(self, h: torch.Tensor, d=slice(None)) -> NormalMixture:
        """The conditionals' mixtures from hidden states h (..., H) of dimensions d."""
        out = torch.einsum("...dh,dkh->...dk", h, self.V[d]) + self.b[d]
        return normal_mixture(out, self.config.components)

    def _numbers_per_example(self) -> int:
        config = self.config
        return self.dim * (config.hidden + 3 * config.components)

    def conditionals(self, x: torch.Tensor) -> NormalMixture:
        """p(x_d | x_<d) for every d of flat x (N, D): batch shape (N, D)."""
        return self._mixture(_running_hidden(x, self.W, self.c))

    def sample(self, n: int) -> torch.Tensor:
        """n exact draws, the pre-activation carried from dimension to dimension."""
        check_positive_int(n, "n")

        def draw(h, d):
            return sample_normal_mixture(
                torch.addmm(self.b[d], h, self.V[d].T), self.config.components
            )

        return _sample_running(self.W, self.c, n, draw).reshape(n, *self.config.data_shape)


def _is_mask_key(key: str) -> bool:
    """A MADE state-dict key of a mask (saved by earlier versions), not a weight."""
    return key.startswith(("masks_", "direct_masks")) or key.endswith(".mask")


@register("made")
class MADE(_Autoregressive):
    """Masked autoencoder for distribution estimation: ReLU MLP with ``hidden`` widths
    (default one layer of 500) and ``num_masks`` mask sets (orderings and hidden-unit
    degrees) shared by one set of weights; the first is the natural order.
    ``direct=True`` adds masked direct connections from the inputs to the outputs
    (output d reads every input before it in the ordering: an FVSBN term beside the
    network, the ``direct_input_connect="Output"`` of Germain et al.'s MNIST runs, which
    also used hidden layers of 8000 units)."""

    def __init__(
        self, data_shape, hidden=(500,), num_masks: int = 1, seed: int = 0, direct: bool = False
    ):
        super().__init__()
        check_bool(direct, "direct")
        hidden = _hidden_widths(hidden, "MADE")
        check_positive_int(num_masks, "num_masks")
        config = MADEConfig(check_data_shape(data_shape), hidden, int(num_masks), int(seed), direct)
        self._setup(config)
        sizes = [self.dim, *self.config.hidden, self.dim]
        masks = self._draw_masks()
        self.layers = nn.ModuleList(
            MaskedLinear(a, b, m) for a, b, m in zip(sizes[:-1], sizes[1:], masks[0][0])
        )
        # The masks follow from the config (seed), so they are not saved: with 32 mask
        # sets of an 8000-unit layer they would be 1.6 GB of a 53 MB model's state.
        for i in range(len(self.layers)):  # every mask set, stacked: (num_masks, out, in)
            stacked = torch.stack([m[0][i] for m in masks])
            self.register_buffer(f"masks_{i}", stacked, persistent=False)
        self.register_buffer("orders", torch.stack([m[1] for m in masks]), persistent=False)
        if direct:  # output d reads input j iff j comes before d in the ordering
            positions = self.orders.argsort(-1)  # each dimension's place in each ordering
            direct_masks = (positions[:, :, None] > positions[:, None, :]).to(
                torch.get_default_dtype()
            )
            self.register_buffer("direct_masks", direct_masks, persistent=False)
            self.direct = MaskedLinear(self.dim, self.dim, self.direct_masks[0], bias=False)
            nn.init.zeros_(self.direct.weight)
        for layer in [*self.layers, *([self.direct] if direct else [])]:
            layer.register_buffer("mask", layer.mask, persistent=False)  # derived too
        self.current = 0
        self.register_load_state_dict_pre_hook(MADE._drop_saved_masks)

    @staticmethod
    def _drop_saved_masks(module, state_dict, prefix, *args) -> None:
        """A load-state-dict pre-hook (so it runs wherever the MADE sits in a larger
        module): masks saved by earlier versions are dropped, as they are drawn from the
        config, after checking that their orderings are this config's."""
        orders = state_dict.pop(prefix + "orders", None)
        if orders is not None and not torch.equal(orders.to(module.orders), module.orders):
            raise ValueError("state_dict: its mask orderings differ from those this config draws")
        for key in [k for k in state_dict if k.startswith(prefix)]:
            if _is_mask_key(key[len(prefix) :]):
                del state_dict[key]

    def _numbers_per_example(self) -> int:
        return sum(self.config.hidden) + 4 * self.dim

    def _draw_masks(self) -> list[tuple[list[torch.Tensor], torch.Tensor]]:
        """(layer masks, ordering) per mask set: degrees as in Germain et al. (2015)."""
        generator = torch.Generator().manual_seed(self.config.seed)
        out = []
        for m in range(self.config.num_masks):
            order = (
                torch.arange(self.dim) if m == 0 else torch.randperm(self.dim, generator=generator)
            )
            degree_in = torch.empty(self.dim, dtype=torch.long)
            degree_in[order] = torch.arange(1, self.dim + 1)  # position in the ordering
            degrees, low = [degree_in], 1
            for width in self.config.hidden:
                if m == 0:  # evenly spread, as Pyro's AutoRegressiveNN
                    d = torch.linspace(low, max(low, self.dim - 1), width).round().long()
                else:
                    d = torch.randint(
                        low, max(low, self.dim - 1) + 1, (width,), generator=generator
                    )
                degrees.append(d)
                low = int(d.min())
            masks = [
                (later[:, None] >= earlier[None, :]).to(torch.get_default_dtype())
                for earlier, later in zip(degrees[:-1], degrees[1:])
            ]
            masks.append((degree_in[:, None] > degrees[-1][None, :]).to(torch.get_default_dtype()))
            out.append((masks, order))
        return out

    def use_mask(self, index: int) -> None:
        """Switch the layers to mask set ``index``."""
        for i, layer in enumerate(self.layers):
            layer.mask = getattr(self, f"masks_{i}")[index].to(layer.weight.dtype)
        if self.config.direct:
            self.direct.mask = self.direct_masks[index].to(self.direct.weight.dtype)
        self.current = index

    def _order(self) -> torch.Tensor:
        return self.orders[self.current]

    def logits(self, x):
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h + self.direct(x) if self.config.direct else h

    def model(self, x, num_examples: int | None = None) -> None:
        if self.training and self.config.num_masks > 1:  # one mask set per pass
            self.use_mask(int(torch.randint(self.config.num_masks, ())))
        super().model(x, num_examples)

    def log_prob(self, x) -> torch.Tensor:
        """Exact log p(x): with several masks, of the ensemble (1/M) sum_m p_m(x)."""
        if self.config.num_masks == 1:
            return super().log_prob(x)
        each = _member_log_probs(self, x, range(self.config.num_masks), self.use_mask)
        return each.logsumexp(0) - math.log(self.config.num_masks)

    def _sample_current(self, n: int) -> torch.Tensor:
        """n flat draws under the current mask set. The first layer's pre-activation is
        carried along the ordering (after x_d is drawn, a += W1[:, d] x_d, as NADE's),
        later hidden layers are recomputed from it and only output d's row of the last
        layer is read: O(D (H1 + sum_i H_i H_(i+1) + H_last)) per draw instead of a
        whole pass, O(D^2 H), per dimension. The same draws as the generic sampler."""
        (w_in, b_in), *middle, (w_out, b_out) = [
            (layer.weight * layer.mask, layer.bias) for layer in self.layers
        ]
        direct = self.direct.weight * self.direct.mask if self.config.direct else None
        x = w_in.new_zeros(n, self.dim)
        a = b_in.expand(n, -1).clone()
        for d in self._order().tolist():
            h = torch.relu(a)
            for weight, bias in middle:
                h = torch.relu(F.linear(h, weight, bias))
            logit = h @ w_out[d] + b_out[d]
            if direct is not None:
                logit = logit + x @ direct[d]
            x[:, d] = torch.bernoulli(torch.sigmoid(logit))
            a += x[:, d : d + 1] * w_in[:, d]
        return x

    def sample(self, n: int) -> torch.Tensor:
        """Exact draws of the ensemble: a mask set per draw, then its conditionals (see
        :meth:`_sample_current` for the cost)."""
        check_positive_int(n, "n")
        draws = _sample_members(self, n, self.config.num_masks, self.use_mask)
        return draws.reshape(n, *self.config.data_shape)


@register("deepnade")
class DeepNADE(_Autoregressive):
    r"""Order-agnostic deep NADE (Uria, Murray and Larochelle 2014): a ReLU MLP with
    ``hidden`` widths (default two layers of 500) from :math:`[x \odot m, m]` (2D
    inputs: the observed values and the observation mask) to D logits, trained for
    every ordering at once; ``log_prob`` is the ensemble over ``num_orderings`` fixed
    orderings drawn uniformly with ``seed``:
    :math:`\log \frac1M \sum_m p_{o_m}(x)` (EoNADE). See the module docstring.

    With ``data_order=True`` the first ordering is the data's own (raster order for
    images). That is rarely a good one: order-agnostic training draws observed sets
    uniformly, so "the first k pixels in the data's order" (for images, a block of top
    rows) is a set it almost never trains on; on MNIST the raster order alone scored
    about 9 nats worse than a random ordering.

    In training mode the model draws, per example, how many dimensions are observed,
    k ~ U{0..D-1}, and which (a uniformly random k-subset S: the first k of a random
    ordering), and observes x on the other D - k dimensions with weight D / (D - k):
    in expectation over S, :math:`\mathbb E_o \log p_o(x)` (Uria et al. 2014, eq. 9).
    In evaluation mode it is the teacher-forced likelihood of the current ordering.

    ``steps`` = k > 1 makes it NADE-k (Raiko et al. 2014): :math:`v_0 = x \odot m`,
    then k passes :math:`p_i = \sigma(f([v_{i-1}, m]))`,
    :math:`v_i = x \odot m + p_i \odot (1 - m)`, and :math:`p(x_j \mid x_S)` is
    :math:`p_k`'s entry j. The network reads the mask at every pass (NADE-k's
    ``use_mask`` variant), so ``steps=1`` is exactly the model above. Training observes
    the last pass's likelihood as the site ``x``; with ``step_loss="mean"`` (NADE-k's
    pre-training: gradients reach the early passes directly) the earlier passes'
    likelihoods join as auxiliary factors ``x_pass1`` .. ``x_pass{k-1}``, every term
    weighted 1/k; ``step_loss="last"`` (its fine-tuning) keeps ``x`` alone (set
    ``model.config.step_loss`` between the two phases). Zeros fill the unobserved
    values before the first pass, which, the mask being an input, is as general as
    NADE-k's fill with the data's mean. An ordering's log-likelihood costs D k whole
    passes instead of D passes of the upper layers: 12 times the time of ``steps=1``
    for MNIST, two layers of 500 and k = 5 (2 CPU cores).
    """

    def __init__(
        self,
        data_shape,
        hidden=(500, 500),
        num_orderings: int = 1,
        seed: int = 0,
        data_order: bool = False,
        steps: int = 1,
        step_loss: str = "mean",
    ):
        super().__init__()
        hidden = _hidden_widths(hidden, "DeepNADE")
        check_positive_int(num_orderings, "num_orderings")
        check_bool(data_order, "data_order")
        check_positive_int(steps, "steps")
        check_choice(step_loss, "step_loss", STEP_LOSSES)
        config = DeepNADEConfig(
            check_data_shape(data_shape),
            hidden,
            int(num_orderings),
            int(seed),
            data_order,
            int(steps),
            step_loss,
        )
        self._setup(config)
        sizes = [2 * self.dim, *hidden, self.dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.register_buffer("orders", self._draw_orderings())
        self.current = 0

    def _draw_orderings(self) -> torch.Tensor:
        """The config's orderings, (num_orderings, D): the data's own first where
        ``data_order``, then uniform permutations drawn with ``seed``."""
        config = self.config
        generator = torch.Generator().manual_seed(config.seed)
        orders = [torch.arange(self.dim)] if config.data_order else []
        orders += [
            torch.randperm(self.dim, generator=generator)
            for _ in range(config.num_orderings - len(orders))
        ]
        return torch.stack(orders)

    def set_orderings(
        self, num_orderings: int, seed: int | None = None, data_order: bool | None = None
    ) -> None:
        """Score and sample with another ensemble: ``num_orderings`` orderings drawn with
        ``seed`` (the same seed draws the same first ones), the data's own first where
        ``data_order`` (both default to the current config). Training is order-agnostic,
        so a trained model takes any ensemble; the first ordering is current."""
        check_positive_int(num_orderings, "num_orderings")
        data_order = self.config.data_order if data_order is None else data_order
        check_bool(data_order, "data_order")
        self.config.num_orderings = int(num_orderings)
        self.config.seed = self.config.seed if seed is None else int(seed)
        self.config.data_order = data_order
        self.orders = self._draw_orderings().to(self.orders.device)
        self.current = 0

    def use_ordering(self, index: int) -> None:
        """Evaluate and sample under ordering ``index`` (of ``num_orderings``)."""
        if not 0 <= index < self.config.num_orderings:
            raise ValueError(f"index: must be in [0, {self.config.num_orderings}), got {index}")
        self.current = int(index)

    def _order(self) -> torch.Tensor:
        return self.orders[self.current]

    def network(self, x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """The D logits of p(x_j = 1 | x_S) for flat x (N, D) observed where
        ``observed`` (N, D) is 1: the values elsewhere are not read."""
        return self.passes(x, observed)[-1]

    def passes(self, x: torch.Tensor, observed: torch.Tensor) -> list[torch.Tensor]:
        """The logits of each of the ``steps`` passes (NADE-k's refinements), the last
        being :meth:`network`'s: pass i reads x where observed and pass i - 1's
        probabilities elsewhere (zeros before the first)."""
        known = x * observed
        value, out = known, []
        for i in range(self.config.steps):
            h = torch.cat([value, observed], -1)
            for layer in self.layers[:-1]:
                h = torch.relu(layer(h))
            out.append(self.layers[-1](h))
            if i + 1 < self.config.steps:
                value = known + torch.sigmoid(out[-1]) * (1 - observed)
        return out

    def _upper(self, a: torch.Tensor) -> torch.Tensor:
        """The hidden layers above the first from its pre-activation a (..., H1)."""
        h = torch.relu(a)
        for layer in self.layers[1:-1]:
            h = torch.relu(layer(h))
        return h

    def logits(self, x):
        """The D conditional logits of the current ordering, in data order. With one
        step the first layer's pre-activation before step t is b + sum_{s<t}
        (W_x[:, o_s] x_{o_s} + W_m[:, o_s]): an exclusive running sum along the
        ordering. With more, :meth:`prefix_logits`."""
        if self.config.steps > 1:
            return self.prefix_logits(x)
        order = self._order()
        first, last = self.layers[0], self.layers[-1]
        w_x, w_m = first.weight[:, : self.dim], first.weight[:, self.dim :]
        steps = x[:, order, None] * w_x.T[order] + w_m.T[order]  # (N, D, H1), step t's
        a = first.bias + steps.cumsum(1) - steps
        h = self._upper(a)  # (N, D, H_last): the state before each step
        in_order = (h * last.weight[order]).sum(-1) + last.bias[order]
        return in_order.new_empty(in_order.shape).index_copy_(1, order, in_order)

    def prefix_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The D conditional logits of the current ordering, in data order, by whole
        passes: the D observed prefixes of every example of flat x (N, D) go through
        :meth:`network` as N D rows at once, and row t's output o_t is kept. Any number
        of steps; :meth:`logits` uses it when ``steps`` > 1."""
        order = self._order()
        n, dim = x.shape
        before = torch.ones(dim, dim, device=x.device).tril(-1)  # [t, s]: s before t
        prefix = x.new_zeros(dim, dim).index_copy_(1, order, before.to(x.dtype))
        rows = self.network(
            x[:, None, :].expand(n, dim, dim).reshape(n * dim, dim),
            prefix.expand(n, dim, dim).reshape(n * dim, dim),
        ).reshape(n, dim, dim)
        in_order = rows[:, torch.arange(dim, device=x.device), order]  # (N, D)
        return in_order.new_empty(in_order.shape).index_copy_(1, order, in_order)

    def _numbers_per_example(self) -> int:
        if self.config.steps > 1:  # D rows of 2D inputs, the hidden layers, D outputs
            return self.dim * (4 * self.dim + 2 * sum(self.config.hidden))
        return self.dim * (2 * sum(self.config.hidden) + 4)

    def _random_observed(self, x: torch.Tensor) -> torch.Tensor:
        """Per example a uniformly random subset of k ~ U{0..D-1} dimensions, as 0/1:
        the first k of a uniformly random ordering."""
        n = len(x)
        k = torch.randint(self.dim, (n, 1), device=x.device)
        u = torch.rand(n, self.dim, device=x.device)
        threshold = u.sort(-1).values.gather(1, k)  # the (k+1)-th smallest
        return (u < threshold).to(x.dtype)

    def model(self, x, num_examples: int | None = None) -> None:
        if not self.training:  # the current ordering's exact likelihood
            return super().model(x, num_examples)
        module("deepnade", self)
        flat = x.reshape(len(x), self.dim)
        observed = self._random_observed(flat)
        passes = self.passes(flat, observed)
        if self.config.step_loss == "last":
            passes = passes[-1:]
        weight = self.dim / (self.dim - observed.sum(-1)) / len(passes)  # D / (D - k)
        unobserved = observed == 0
        with data_plate(x, num_examples), poutine.scale(scale=weight):
            for i, logits in enumerate(passes[:-1], start=1):  # NADE-k's auxiliary terms
                log_lik = dist.Bernoulli(logits=logits, validate_args=False).log_prob(flat)
                pyro.factor(f"x_pass{i}", (log_lik * unobserved).sum(-1))
            likelihood = dist.Bernoulli(logits=passes[-1], validate_args=False)
            pyro.sample("x", likelihood.mask(unobserved).to_event(1), obs=flat)

    def ordering_log_probs(self, x, orderings=None) -> torch.Tensor:
        """Exact log p_o(x) under each of ``orderings`` (indices; default all M), (len,
        N): one ordering's D conditionals cost D passes of the upper layers (D
        ``steps`` whole passes with more than one step)."""
        count = self.config.num_orderings
        orderings = list(range(count)) if orderings is None else list(orderings)
        if not orderings or not all(isinstance(m, int) and 0 <= m < count for m in orderings):
            raise ValueError(f"orderings: expected indices in [0, {count}), got {orderings}")
        return _member_log_probs(self, x, orderings, self.use_ordering)

    def log_prob(self, x) -> torch.Tensor:
        """Exact log p(x) of the ensemble (1/M) sum_m p_{o_m}(x) over the orderings."""
        per_ordering = self.ordering_log_probs(x)
        return per_ordering.logsumexp(0) - math.log(self.config.num_orderings)

    def _sample_current(self, n: int) -> torch.Tensor:
        """n flat draws in the current ordering: the first layer's pre-activation is
        carried along (a += W_x[:, o_t] x_{o_t} + W_m[:, o_t]), the upper layers are
        computed once per step and only output o_t's row is read; with ``steps`` > 1,
        the k passes of :meth:`network` per dimension."""
        first, last = self.layers[0], self.layers[-1]
        w_x, w_m = first.weight[:, : self.dim], first.weight[:, self.dim :]
        x = first.weight.new_zeros(n, self.dim)
        if self.config.steps > 1:  # k whole passes per dimension
            observed = torch.zeros_like(x)
            for d in self._order().tolist():
                x[:, d] = torch.bernoulli(torch.sigmoid(self.network(x, observed)[:, d]))
                observed[:, d] = 1.0
            return x
        a = first.bias.expand(n, -1).clone()
        for d in self._order().tolist():
            logit = self._upper(a) @ last.weight[d] + last.bias[d]
            x[:, d] = torch.bernoulli(torch.sigmoid(logit))
            a += x[:, d : d + 1] * w_x[:, d] + w_m[:, d]
        return x

    def sample(self, n: int) -> torch.Tensor:
        """Exact draws of the ensemble: an ordering per draw, then its conditionals."""
        check_positive_int(n, "n")
        draws = _sample_members(self, n, self.config.num_orderings, self.use_ordering)
        return draws.reshape(n, *self.config.data_shape)


# -- sequence models: shifted inputs, one causal pass, a head per position ---------------


class _SequenceModel(_Autoregressive):
    """x read as a sequence of D values: ``features`` maps the shifted inputs (N, D, E)
    to the features (N, D, F) of every conditional in one causal pass, the head turns
    them into p(x_t | x_<t). Sampling runs ``_start`` then ``_step`` per position,
    which subclasses make incremental."""

    def _setup_sequence(self, config, input_width: int, feature_width: int) -> None:
        check_choice(config.likelihood, "likelihood", LIKELIHOODS)
        check_positive_int(config.components, "components")
        classes = None
        if config.likelihood == "categorical":
            if config.num_classes is None:
                raise ValueError("num_classes: a categorical likelihood needs num_classes")
            classes = check_positive_int(config.num_classes, "num_classes", minimum=2)
        self._setup(config)
        self.binary_data = config.likelihood == "bernoulli"
        self.data_classes = classes
        self.inputs = ShiftedInput(input_width, classes)
        self.head = DistributionHead(feature_width, config.likelihood, classes, config.components)

    def _numbers_per_example(self) -> int:
        """Per position: the layers' widest activations (4 F: an LSTM's gates, a
        transformer's MLP, WaveNet's gate and outputs) and the head's parameters."""
        linear = self.head.linear
        return self.dim * (4 * linear.in_features + linear.out_features)

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """(N, T, E) shifted inputs -> (N, T, F) features, causal in T."""
        raise NotImplementedError

    def conditionals(self, x):
        return self.head(self.features(self.inputs(x)))

    def _observed(self, flat):
        return flat.long() if self.data_classes else flat

    def _start(self, n: int):
        """The incremental sampler's state before the first position."""
        return []

    def _step(self, state, inputs: torch.Tensor, t: int):
        """(features (n, F) of position t, new state) given position t's input (n, E).
        By default the whole prefix is recomputed (O(t) per step)."""
        return self._recompute(state, inputs, t)

    def _recompute(self, inputs_so_far: list, inputs: torch.Tensor, t: int):
        inputs_so_far.append(inputs)
        return self.features(torch.stack(inputs_so_far, 1))[:, -1], inputs_so_far

    def sample(self, n: int, cache: bool = True) -> torch.Tensor:
        """n exact draws, one position at a time (classes come back as floats).
        ``cache=False`` recomputes the features of the whole prefix at every step
        instead of the model's incremental update: the same conditionals, slower."""
        check_positive_int(n, "n")
        start, step = (self._start, self._step) if cache else (lambda n: [], self._recompute)
        x = next(self.parameters()).new_zeros(n, self.dim)
        with torch.no_grad():
            state, previous = start(n), None
            for t in range(self.dim):
                features, state = step(state, self.inputs.step(previous, n), t)
                previous = x[:, t] = self.head.sample(features)
        return x.reshape(n, *self.config.data_shape)


@dataclass
class WaveNetConfig:
    data_shape: list[int]
    channels: int = 64  # residual and skip channels
    layers: int | None = None  # dilations 1, 2, 4, ... 512, repeated; None covers D
    kernel: int = 2  # taps of each dilated causal convolution
    likelihood: str = "bernoulli"  # or "categorical", "normal_mixture"
    num_classes: int | None = None  # symbols, for a categorical likelihood
    components: int = 10  # Gaussians per conditional, for a normal mixture


@register("wavenet")
class WaveNet(_SequenceModel):
    """A WaveNet-style stack of dilated causal convolutions with gated activations,
    residual and skip connections (van den Oord et al. 2016c). The receptive field is
    (kernel - 1) * (sum of dilations) + 1; by default ``layers`` is the fewest that
    cover the sequence. Sampling is Fast WaveNet: O(layers * kernel) per value."""

    def __init__(
        self,
        data_shape,
        channels: int = 64,
        layers: int | None = None,
        kernel: int = 2,
        likelihood: str = "bernoulli",
        num_classes: int | None = None,
        components: int = 10,
    ):
        super().__init__()
        shape = check_data_shape(data_shape)
        check_positive_int(channels, "channels")
        check_positive_int(kernel, "kernel", minimum=2)
        dim = math.prod(shape)
        if layers is None:
            layers = 1
            while self._receptive_field(layers, kernel) < dim:
                layers += 1
        check_positive_int(layers, "layers")
        config = WaveNetConfig(
            shape, int(channels), int(layers), int(kernel), likelihood, num_classes, components
        )
        self._setup_sequence(config, channels, channels)
        self.blocks = nn.ModuleList(
            WaveNetBlock(channels, kernel, 2 ** (i % 10), residual=i < layers - 1)
            for i in range(layers)
        )
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(channels, channels), nn.ReLU())

    @staticmethod
    def _receptive_field(layers: int, kernel: int) -> int:
        return (kernel - 1) * sum(2 ** (i % 10) for i in range(layers)) + 1

    @property
    def receptive_field(self) -> int:
        """How many inputs (x_{t-1} back) position t's conditional can see."""
        return self._receptive_field(self.config.layers, self.config.kernel)

    def features(self, inputs):
        h, skip = inputs.transpose(1, 2), 0.0  # (N, C, T)
        for block in self.blocks:
            h, s = block(h)
            skip = skip + s
        return self.out(skip.transpose(1, 2))  # (N, T, C)

    def _start(self, n):
        k = self.config.kernel
        return [deque(maxlen=(k - 1) * b.conv.dilation[0] + 1) for b in self.blocks]

    def _step(self, histories, inputs, t):
        h, skip = inputs, 0.0
        for block, history in zip(self.blocks, histories):
            history.append(h)
            h, s = block.step(history)
            skip = skip + s
        return self.out(skip), histories


@dataclass
class RNNConfig:
    data_shape: list[int]
    cell: str = "lstm"  # or "gru"
    hidden: int = 256  # state size
    layers: int = 1  # stacked recurrent layers
    embedding: int = 64  # width of the input embedding
    likelihood: str = "bernoulli"  # or "categorical", "normal_mixture"
    num_classes: int | None = None  # symbols, for a categorical likelihood
    components: int = 10  # Gaussians per conditional, for a normal mixture


@register("rnn")
class RNNDecoder(_SequenceModel):
    """A recurrent decoder: an LSTM (or GRU) over the shifted inputs, the head on its
    state; sampling carries the state, O(1) per value."""

    def __init__(
        self,
        data_shape,
        cell: str = "lstm",
        hidden: int = 256,
        layers: int = 1,
        embedding: int = 64,
        likelihood: str = "bernoulli",
        num_classes: int | None = None,
        components: int = 10,
    ):
        super().__init__()
        check_choice(cell, "cell", ("lstm", "gru"))
        for value, name in ((hidden, "hidden"), (layers, "layers"), (embedding, "embedding")):
            check_positive_int(value, name)
        config = RNNConfig(
            check_data_shape(data_shape),
            cell,
            int(hidden),
            int(layers),
            int(embedding),
            likelihood,
            num_classes,
            components,
        )
        self._setup_sequence(config, embedding, hidden)
        recurrent = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = recurrent(embedding, hidden, layers, batch_first=True)

    def features(self, inputs):
        return self.rnn(inputs)[0]

    def _start(self, n):
        return None

    def _step(self, state, inputs, t):
        out, state = self.rnn(inputs[:, None], state)
        return out[:, 0], state


@dataclass
class TransformerConfig:
    data_shape: list[int]
    dim: int = 128  # width of the residual stream
    heads: int = 4  # attention heads (must divide dim)
    layers: int = 4  # transformer blocks
    likelihood: str = "bernoulli"  # or "categorical", "normal_mixture"
    num_classes: int | None = None  # symbols, for a categorical likelihood
    components: int = 10  # Gaussians per conditional, for a normal mixture


@register("transformer")
class TransformerDecoder(_SequenceModel):
    """A small GPT-style decoder: input and learned position embeddings, ``layers``
    pre-norm blocks of causal self-attention and MLP, a final layer norm and the head.
    ``sample(n)`` caches every layer's keys and values (O(t) per value);
    ``sample(n, cache=False)`` recomputes the prefix at every step (O(t^2))."""

    def __init__(
        self,
        data_shape,
        dim: int = 128,
        heads: int = 4,
        layers: int = 4,
        likelihood: str = "bernoulli",
        num_classes: int | None = None,
        components: int = 10,
    ):
        super().__init__()
        for value, name in ((dim, "dim"), (heads, "heads"), (layers, "layers")):
            check_positive_int(value, name)
        config = TransformerConfig(
            check_data_shape(data_shape),
            int(dim),
            int(heads),
            int(layers),
            likelihood,
            num_classes,
            components,
        )
        self._setup_sequence(config, dim, dim)
        self.position = nn.Embedding(self.dim, dim)
        nn.init.normal_(self.position.weight, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def features(self, inputs):
        h = inputs + self.position.weight[: inputs.shape[1]]  # (N, T, C)
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def _start(self, n):
        return [{} for _ in self.blocks]

    def _step(self, caches, inputs, t):
        h = (inputs + self.position.weight[t])[:, None]  # (n, 1, C)
        for block, cache in zip(self.blocks, caches):
            h = block(h, cache)
        return self.norm(h[:, 0]), caches
