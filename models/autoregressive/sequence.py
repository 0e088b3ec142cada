"""Sequence decoders over shifted inputs, one causal pass: WaveNet, RNN (LSTM/GRU) and
a GPT-style transformer, with incremental samplers. See
:mod:`pyrogen.models.autoregressive`."""

from __future__ import annotations

import math
from collections import deque

import torch
from pyrogen.models.autoregressive.base import (
    _Autoregressive,
)
from torch import nn

from pyrogen.nn.autoregressive import (
    LIKELIHOODS,
    DistributionHead,
    ShiftedInput,
    TransformerBlock,
    WaveNetBlock,
)
from pyrogen.validation import (
    check_choice,
    check_data_shape,
    check_positive_int,
)
from pyrogen.zoo import register

__all__ = ["WaveNet", "RNNDecoder", "TransformerDecoder"]


class _SequenceModel(_Autoregressive):
    """x read as a sequence of D values: ``features`` maps the shifted inputs (N, D, E)
    to the features (N, D, F) of every conditional in one causal pass, the head turns
    them into p(x_t | x_<t). Sampling runs ``_start`` then ``_step`` per position,
    which subclasses make incremental."""

    cli_data = "sequences"  # pyrogen fit NAME: binarized MNIST or --data characters

    def _setup_sequence(self, input_width: int, feature_width: int, **normalized) -> None:
        self._setup(**normalized)
        config = self.config
        check_choice(config.likelihood, "likelihood", LIKELIHOODS)
        check_positive_int(config.components, "components")
        classes = None
        if config.likelihood == "categorical":
            if config.num_classes is None:
                raise ValueError("num_classes: a categorical likelihood needs num_classes")
            classes = check_positive_int(config.num_classes, "num_classes", minimum=2)
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
        self._setup_sequence(
            channels,
            channels,
            data_shape=shape,
            channels=int(channels),
            layers=int(layers),
            kernel=int(kernel),
        )
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
        self._setup_sequence(
            embedding,
            hidden,
            data_shape=check_data_shape(data_shape),
            hidden=int(hidden),
            layers=int(layers),
            embedding=int(embedding),
        )
        recurrent = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = recurrent(embedding, hidden, layers, batch_first=True)

    def features(self, inputs):
        return self.rnn(inputs)[0]

    def _start(self, n):
        return None

    def _step(self, state, inputs, t):
        out, state = self.rnn(inputs[:, None], state)
        return out[:, 0], state


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
        self._setup_sequence(
            dim, dim, data_shape=check_data_shape(data_shape), dim=int(dim), heads=int(heads)
        )
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
