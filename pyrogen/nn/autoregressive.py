r"""Building blocks of autoregressive models: masked and causal convolutions, the gated
two-stack PixelCNN layer, the WaveNet residual block, causal self-attention with a
key/value cache, the shifted input embedding and the output heads.

Every block keeps the one property an autoregressive model rests on: the output at
position t depends on the inputs at positions <= t only (the model feeds position t
the value x_{t-1}, so its conditional sees x_{<t}). The tests check it by the
Jacobian and by summing the probabilities of every binary sequence.

References:
    van den Oord, Kalchbrenner and Kavukcuoglu (2016). Pixel Recurrent Neural Networks.
    van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves and Kavukcuoglu (2016).
        Conditional Image Generation with PixelCNN Decoders. NeurIPS.
    van den Oord et al. (2016). WaveNet: A Generative Model for Raw Audio.
    Paine et al. (2016). Fast Wavenet Generation Algorithm.
    Radford et al. (2019). Language Models are Unsupervised Multitask Learners (GPT-2).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

from pyrogen.distributions import NormalMixture

__all__ = [
    "CausalConv1d",
    "CausalSelfAttention",
    "DistributionHead",
    "GatedPixelCNNLayer",
    "MaskedConv2d",
    "ShiftedInput",
    "TransformerBlock",
    "WaveNetBlock",
    "gate",
    "normal_mixture",
    "sample_normal_mixture",
]


def gate(h: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """The gated activation tanh(a) * sigmoid(b) of h's two halves along ``dim``."""
    a, b = h.chunk(2, dim)
    return torch.tanh(a) * torch.sigmoid(b)


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only the pixels above and to the left of the centre
    (type ``"A"``) or those and the centre (``"B"``): the original PixelCNN layer,
    whose stacked receptive field misses a wedge to the upper right (the blind spot)."""

    def __init__(self, in_channels, out_channels, kernel_size, mask_type: str):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        mask = torch.ones(kernel_size, kernel_size)
        centre = kernel_size // 2
        mask[centre, centre + (mask_type == "B") :] = 0
        mask[centre + 1 :] = 0
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


def _shift_down(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]  # row i takes row i - 1


def _shift_right(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (1, 0))[..., :-1]  # column j takes column j - 1


class GatedPixelCNNLayer(nn.Module):
    """One layer of the gated PixelCNN (van den Oord et al. 2016b), with a vertical
    stack that sees every row above (kernel (k//2 + 1, k)) and a horizontal stack that
    sees the pixels to the left in the current row (kernel (1, k//2 + 1)); the
    horizontal stack reads the vertical one through a 1x1 convolution. Stacked, the
    receptive field of pixel (i, j) is all of rows < i within reach plus row i left of
    j: no blind spot.

    The vertical features at row i carry only rows < i: the ``first`` layer shifts its
    output down one row (and the horizontal one right one column, excluding the pixel
    itself); later layers keep the row. Inputs (N, C, H, W) for both stacks; the
    horizontal stack has a residual connection (not in the first layer, whose input
    is the image)."""

    def __init__(self, in_channels: int, channels: int, kernel: int, first: bool = False):
        super().__init__()
        self.first, self.half = first, kernel // 2
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (self.half + 1, kernel))
        self.horizontal = nn.Conv2d(in_channels, 2 * channels, (1, self.half + 1))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = nn.Conv2d(channels, channels, 1)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.half
        v_pre = self.vertical(F.pad(v, (k, k, k, 0)))  # rows i - k .. i
        h_pre = self.horizontal(F.pad(h, (k, 0, 0, 0)))  # columns j - k .. j
        if self.first:  # the image itself: exclude row i and pixel (i, j)
            v_pre, h_pre = _shift_down(v_pre), _shift_right(h_pre)
        h_out = self.horizontal_out(gate(h_pre + self.vertical_to_horizontal(v_pre)))
        return gate(v_pre), h_out if self.first else h + h_out


class CausalConv1d(nn.Conv1d):
    """A 1-D convolution padded on the left only, so output t sees inputs t - (k - 1) d
    .. t for kernel k and dilation d. Inputs (N, C, T)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, dilation: int = 1):
        super().__init__(in_channels, out_channels, kernel, dilation=dilation)
        self.left = (kernel - 1) * dilation

    def forward(self, x):
        return super().forward(F.pad(x, (self.left, 0)))

    def step(self, history) -> torch.Tensor:
        """The output at the newest position from the inputs so far (a sequence of
        (N, C), oldest first, of which the last (k - 1) d + 1 suffice): only the k taps
        are read (Paine et al. 2016), (N, out)."""
        k, d = self.kernel_size[0], self.dilation[0]
        zero = torch.zeros_like(history[-1])
        taps = torch.stack(
            [history[-1 - i * d] if i * d < len(history) else zero for i in range(k - 1, -1, -1)],
            -1,
        )  # (N, C, k), oldest tap first
        return torch.einsum("nck,ock->no", taps, self.weight) + self.bias


class WaveNetBlock(nn.Module):
    """A WaveNet residual block: dilated causal convolution, gated activation, then 1x1
    convolutions to the residual stream and to the skip connections. (N, C, T). The
    last block of a stack feeds only the skips (``residual=False``)."""

    def __init__(self, channels: int, kernel: int, dilation: int, residual: bool = True):
        super().__init__()
        self.conv = CausalConv1d(channels, 2 * channels, kernel, dilation)
        self.residual = nn.Conv1d(channels, channels, 1) if residual else None
        self.skip = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        z = gate(self.conv(x))
        return x if self.residual is None else x + self.residual(z), self.skip(z)

    def step(self, history):
        """(residual, skip) at the newest position, each (N, C), from the block's
        input history (see :meth:`CausalConv1d.step`)."""
        z = gate(self.conv.step(history), -1)
        x = history[-1]
        if self.residual is not None:
            x = x + F.linear(z, self.residual.weight[..., 0], self.residual.bias)
        return x, F.linear(z, self.skip.weight[..., 0], self.skip.bias)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t attends to positions <= t.

    With a ``cache`` (a dict, empty at the start of a sequence) the keys and values of
    the positions seen so far are kept, so that sampling feeds one new position at a
    time at O(t) cost instead of recomputing the whole prefix."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads: must divide dim {dim}, got {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (
            t.view(B, T, self.heads, C // self.heads).transpose(1, 2)  # (B, h, T, C/h)
            for t in self.qkv(x).split(C, 2)
        )
        causal = True
        if cache is not None:
            if "k" in cache:  # one new position attends to every cached one
                if T != 1:
                    raise ValueError("cache: feed one position at a time after the first call")
                k = torch.cat([cache["k"], k], 2)
                v = torch.cat([cache["v"], v], 2)
                causal = False
            cache["k"], cache["v"] = k, v
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal and T > 1)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class TransformerBlock(nn.Module):
    """A GPT-2 style pre-norm block: x + attention(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = CausalSelfAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x, cache: dict | None = None):
        x = x + self.attention(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))


class ShiftedInput(nn.Module):
    """The inputs of an autoregressive sequence model: position t is fed x_{t-1}, and
    position 0 a learned start vector. Classes (``num_classes``) are embedded by a
    table; real or binary values by a linear map. x (N, T) -> (N, T, dim)."""

    def __init__(self, dim: int, num_classes: int | None = None):
        super().__init__()
        self.num_classes = num_classes
        if num_classes is None:
            self.embed = nn.Linear(1, dim)
        else:
            self.embed = nn.Embedding(num_classes, dim)
        self.start = nn.Parameter(torch.randn(dim) * 0.1)

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of the values x (N, S) -> (N, S, dim)."""
        if self.num_classes is None:
            return self.embed(x[..., None])
        return self.embed(x.long())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start = self.start.expand(len(x), 1, -1)
        return torch.cat([start, self.values(x[:, :-1])], 1)

    def step(self, previous: torch.Tensor | None, n: int) -> torch.Tensor:
        """The input of the next position: x_{t-1} (n,) embedded, or the start (n, dim)."""
        if previous is None:
            return self.start.expand(n, -1)
        return self.values(previous[:, None])[:, 0]


LIKELIHOODS = ("bernoulli", "categorical", "normal_mixture")


class DistributionHead(nn.Module):
    """Features (..., F) -> the conditional distribution of one value each, batch
    shape (...): ``bernoulli`` (one logit), ``categorical`` (``num_classes`` logits)
    or ``normal_mixture`` (``components`` weights, means and scales, for standardized
    real values; scales are floored at 1e-3)."""

    def __init__(
        self,
        in_features: int,
        likelihood: str = "bernoulli",
        num_classes: int | None = None,
        components: int = 10,
    ):
        super().__init__()
        self.likelihood, self.components = likelihood, components
        size = {"bernoulli": 1, "categorical": num_classes, "normal_mixture": 3 * components}
        self.linear = nn.Linear(in_features, size[likelihood])
        if likelihood == "normal_mixture":
            with torch.no_grad():  # means spread over [-2, 2]
                self.linear.bias[components : 2 * components] = torch.linspace(-2, 2, components)

    def forward(self, features: torch.Tensor) -> dist.TorchDistribution:
        out = self.linear(features)
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=out[..., 0])
        if self.likelihood == "categorical":
            return dist.Categorical(logits=out)
        return normal_mixture(out, self.components)

    def sample(self, features: torch.Tensor) -> torch.Tensor:
        """One draw of each conditional, as ``self(features).sample()`` draws it (the
        same random numbers, so the same values), without building a distribution
        object for Bernoulli and categorical conditionals: a sampler calls this once
        per position."""
        out = self.linear(features)
        if self.likelihood == "normal_mixture":
            return sample_normal_mixture(out, self.components)
        if self.likelihood == "bernoulli":
            return torch.bernoulli(torch.sigmoid(out[..., 0]))
        probs = F.softmax(out, -1)
        draws = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, True)
        return draws.reshape(probs.shape[:-1])


def normal_mixture(params: torch.Tensor, components: int) -> NormalMixture:
    """A mixture of ``components`` Gaussians from params (..., 3K): weight logits,
    means, and scales (softplus, 1 at 0, floored at 1e-3); batch shape (...)."""
    logits, loc, raw_scale = params.split(components, -1)
    return NormalMixture(logits, loc, _mixture_scale(raw_scale), validate_args=False)


def _mixture_scale(raw: torch.Tensor) -> torch.Tensor:
    """A component's standard deviation from its raw output: softplus shifted to give
    1 at 0, floored at 1e-3."""
    return F.softplus(raw + math.log(math.e - 1)) + 1e-3


def sample_normal_mixture(params: torch.Tensor, components: int) -> torch.Tensor:
    """One draw of each ``normal_mixture(params, components)``, shape (...): the random
    numbers and values of its ``sample()`` in fewer tensor operations (samplers call
    this once per position)."""
    K = components
    logits, loc, raw_scale = params[..., :K], params[..., K : 2 * K], params[..., 2 * K :]
    which = torch.multinomial(torch.softmax(logits, -1).reshape(-1, K), 1, True)
    which = which.reshape(loc.shape[:-1] + (1,))
    # the chosen component's mean and scale only (the scale is elementwise in its raw value)
    mean = loc.gather(-1, which)
    sd = _mixture_scale(raw_scale.gather(-1, which))
    return (mean + sd * torch.randn_like(mean))[..., 0]
