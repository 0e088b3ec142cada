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

- **PixelCNN** (van den Oord et al. 2016): images in raster order; a stack of
  convolutions whose kernels are masked so that a pixel's logit sees only the pixels
  above it and to its left (mask A on the first layer excludes the centre, mask B on
  the later ones includes it), with residual connections. This is the original
  PixelCNN, whose receptive field has a blind spot to the upper right; the gated
  two-stack variant is not built yet.
- **RNADE** (Uria, Murray and Larochelle 2013): NADE's shared hidden layer for real
  values, each conditional a mixture of K Gaussians whose weights, means and log-sds
  are linear in :math:`h_d` (one output layer per dimension).

References:
    Frey (1998). Graphical Models for Machine Learning and Digital Communication. MIT.
    Larochelle and Murray (2011). The Neural Autoregressive Distribution Estimator.
    Germain, Gregor, Murray and Larochelle (2015). MADE: Masked Autoencoder for
        Distribution Estimation. ICML.
    Uria, Murray and Larochelle (2014). A Deep and Tractable Density Estimator. ICML.
    van den Oord, Kalchbrenner and Kavukcuoglu (2016). Pixel Recurrent Neural
        Networks. ICML.
    Uria, Murray and Larochelle (2013). RNADE: The real-valued neural autoregressive
        density-estimator. NeurIPS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pyro
import pyro.distributions as dist
import torch
from pyro.nn.auto_reg_nn import MaskedLinear
from torch import nn
from torch.nn import functional as F

from pyrogen.validation import check_data_shape, check_positive_int
from pyrogen.zoo import NetworkModel, data_plate, register

__all__ = ["FVSBN", "NADE", "MADE", "RNADE", "PixelCNN"]


@dataclass
class FVSBNConfig:
    data_shape: list[int]


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


class _BinaryAutoregressive(NetworkModel):
    """What the binary autoregressive models share: data checks, the Pyro model with
    one vectorized observed site, sequential sampling."""

    default_method = "mle"
    binary_data = True

    def _setup(self, config) -> None:
        self.config = config
        self.dim = math.prod(config.data_shape)

    # -- the model ---------------------------------------------------------------------
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """All D conditional logits of flat binary x (N, D), in data order."""
        raise NotImplementedError

    def model(self, x, num_examples: int | None = None) -> None:
        pyro.module(type(self).__name__.lower(), self, update_module_params=True)
        flat = x.reshape(len(x), self.dim)
        with data_plate(x, num_examples):
            pyro.sample("x", dist.Bernoulli(logits=self.logits(flat)).to_event(1), obs=flat)

    guide = None

    def log_prob(self, x) -> torch.Tensor:
        """Exact log p(x) per example (nats)."""
        (x,) = self.prepare(x)
        flat = x.reshape(len(x), self.dim)
        with torch.no_grad():
            return dist.Bernoulli(logits=self.logits(flat)).log_prob(flat).sum(-1)

    def anomaly_score(self, x) -> torch.Tensor:
        """-log p(x) per example (nats): high where the model finds x unlikely, the
        out-of-distribution detector of PixelDefend (Song et al. 2018)."""
        return -self.log_prob(x)

    def bits_per_dim(self, x) -> torch.Tensor:
        """-log2 p(x) / D per example."""
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
                x[:, d] = torch.bernoulli(torch.sigmoid(self._conditional(x, d)))
        return x.reshape(n, *self.config.data_shape)

    def _conditional(self, x: torch.Tensor, d: int) -> torch.Tensor:
        """The logit of dimension d given x's earlier dimensions (later ones are 0)."""
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


@register("fvsbn")
class FVSBN(_BinaryAutoregressive):
    """Fully visible sigmoid belief network: a logistic regression per dimension on
    the dimensions before it. Parameters: D(D+1)/2."""

    def __init__(self, data_shape):
        super().__init__()
        self._setup(FVSBNConfig(check_data_shape(data_shape)))
        self.weight = nn.Parameter(torch.zeros(self.dim, self.dim))
        self.bias = nn.Parameter(torch.zeros(self.dim))
        self.register_buffer("mask", torch.ones(self.dim, self.dim).tril(-1))

    def logits(self, x):
        return x @ (self.weight * self.mask).T + self.bias

    def _conditional(self, x, d):
        return x @ (self.weight[d] * self.mask[d]) + self.bias[d]


@register("nade")
class NADE(_BinaryAutoregressive):
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


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only the pixels above and to the left of the centre
    (type ``"A"``) or those and the centre (``"B"``)."""

    def __init__(self, in_channels, out_channels, kernel_size, mask_type: str):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        mask = torch.ones(kernel_size, kernel_size)
        centre = kernel_size // 2
        mask[centre, centre + (mask_type == "B") :] = 0
        mask[centre + 1 :] = 0
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


@register("pixelcnn")
class PixelCNN(_BinaryAutoregressive):
    """PixelCNN for binary images (H, W): a ``first_kernel`` mask-A convolution to
    ``channels`` channels, ``layers`` - 1 residual mask-B ``kernel`` convolutions with
    ReLUs, and a 1x1 convolution to the logits."""

    def __init__(
        self,
        data_shape,
        channels: int = 64,
        layers: int = 7,
        first_kernel: int = 7,
        kernel: int = 3,
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
        self._setup(PixelCNNConfig(shape, channels, layers, first_kernel, kernel))
        self.first = MaskedConv2d(1, channels, first_kernel, "A")
        self.blocks = nn.ModuleList(
            MaskedConv2d(channels, channels, kernel, "B") for _ in range(layers - 1)
        )
        self.out = nn.Conv2d(channels, 1, 1)

    def logits(self, x):
        h = self.first(x.reshape(len(x), 1, *self.config.data_shape))
        for block in self.blocks:
            h = h + block(torch.relu(h))
        return self.out(torch.relu(h)).reshape(len(x), self.dim)


@dataclass
class RNADEConfig:
    data_shape: list[int]
    hidden: int = 100
    components: int = 10


@register("rnade")
class RNADE(NetworkModel):
    """Real-valued NADE: ``hidden`` shared sigmoid units (default 100) and a mixture of
    ``components`` Gaussians (default 10) per conditional."""

    default_method = "mle"

    def __init__(self, data_shape, hidden: int = 100, components: int = 10):
        super().__init__()
        check_positive_int(hidden, "hidden")
        check_positive_int(components, "components")
        self.config = RNADEConfig(check_data_shape(data_shape), int(hidden), int(components))
        self.dim = d = math.prod(self.config.data_shape)
        self.W = nn.Parameter(torch.randn(hidden, d) / math.sqrt(d))
        self.c = nn.Parameter(torch.zeros(hidden))
        # per dimension: K weights, K means, K log-sds, each linear in h_d
        self.V = nn.Parameter(torch.randn(d, 3 * components, hidden) * 0.1 / math.sqrt(hidden))
        self.b = nn.Parameter(torch.zeros(d, 3 * components))
        with torch.no_grad():  # means spread over [-2, 2] (standardized data)
            self.b[:, components : 2 * components] = torch.linspace(-2, 2, components)

    def _mixture(self, h: torch.Tensor, d=slice(None)) -> dist.MixtureSameFamily:
        """The conditionals' mixtures from hidden states h (..., H) of dimensions d."""
        k = self.config.components
        out = torch.einsum("...dh,dkh->...dk", h, self.V[d]) + self.b[d]
        logits, loc, log_scale = out.split(k, -1)
        scale = F.softplus(log_scale + math.log(math.e - 1)) + 1e-3
        return dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(loc, scale))

    def conditionals(self, x: torch.Tensor) -> dist.MixtureSameFamily:
        """p(x_d | x_<d) for every d of flat x (N, D): batch shape (N, D)."""
        return self._mixture(_running_hidden(x, self.W, self.c))

    def model(self, x, num_examples: int | None = None) -> None:
        pyro.module("rnade", self, update_module_params=True)
        flat = x.reshape(len(x), self.dim)
        with data_plate(x, num_examples):
            pyro.sample("x", self.conditionals(flat).to_event(1), obs=flat)

    def log_prob(self, x) -> torch.Tensor:
        """Exact log density per example (nats)."""
        (x,) = self.prepare(x)
        flat = x.reshape(len(x), self.dim)
        with torch.no_grad():
            return self.conditionals(flat).log_prob(flat).sum(-1)

    def sample(self, n: int) -> torch.Tensor:
        """n exact draws, the pre-activation carried from dimension to dimension."""
        check_positive_int(n, "n")

        def draw(h, d):
            return self._mixture(h[:, None], slice(d, d + 1)).sample()[:, 0]

        return _sample_running(self.W, self.c, n, draw).reshape(n, *self.config.data_shape)


@register("made")
class MADE(_BinaryAutoregressive):
    """Masked autoencoder for distribution estimation: ReLU MLP with ``hidden`` widths
    (default one layer of 500) and ``num_masks`` mask sets (orderings and hidden-unit
    degrees) shared by one set of weights; the first is the natural order."""

    def __init__(self, data_shape, hidden=(500,), num_masks: int = 1, seed: int = 0):
        super().__init__()
        hidden = [int(h) for h in hidden]
        if not hidden:
            raise ValueError("hidden: MADE needs at least one hidden layer")
        for h in hidden:
            check_positive_int(h, "hidden")
        check_positive_int(num_masks, "num_masks")
        self._setup(MADEConfig(check_data_shape(data_shape), hidden, int(num_masks), int(seed)))
        sizes = [self.dim, *self.config.hidden, self.dim]
        masks = self._draw_masks()
        self.layers = nn.ModuleList(
            MaskedLinear(a, b, m) for a, b, m in zip(sizes[:-1], sizes[1:], masks[0][0])
        )
        for i in range(len(self.layers)):  # every mask set, stacked: (num_masks, out, in)
            self.register_buffer(f"masks_{i}", torch.stack([m[0][i] for m in masks]))
        self.register_buffer("orders", torch.stack([m[1] for m in masks]))
        self.current = 0

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
        self.current = index

    def _order(self) -> torch.Tensor:
        return self.orders[self.current]

    def logits(self, x):
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h

    def model(self, x, num_examples: int | None = None) -> None:
        if self.training and self.config.num_masks > 1:  # one mask set per pass
            self.use_mask(int(torch.randint(self.config.num_masks, ())))
        super().model(x, num_examples)

    def log_prob(self, x) -> torch.Tensor:
        """Exact log p(x): with several masks, of the ensemble (1/M) sum_m p_m(x)."""
        if self.config.num_masks == 1:
            return super().log_prob(x)
        current = self.current
        per_mask = []
        for m in range(self.config.num_masks):
            self.use_mask(m)
            per_mask.append(super().log_prob(x))
        self.use_mask(current)
        return torch.stack(per_mask).logsumexp(0) - math.log(self.config.num_masks)

    def sample(self, n: int) -> torch.Tensor:
        """Exact draws of the ensemble: a mask set per draw, then its conditionals."""
        if self.config.num_masks == 1:
            return super().sample(n)
        check_positive_int(n, "n")
        current = self.current
        which = torch.randint(self.config.num_masks, (n,))
        out = torch.empty(n, *self.config.data_shape, dtype=next(self.parameters()).dtype)
        for m in which.unique().tolist():
            self.use_mask(m)
            chosen = which == m
            out[chosen] = super().sample(int(chosen.sum()))
        self.use_mask(current)
        return out
