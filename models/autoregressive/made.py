"""MADE (Germain et al. 2015): a masked MLP, one or an ensemble of mask sets. See
:mod:`pyrogen.models.autoregressive`."""

from __future__ import annotations

import math

import torch
from pyro.nn.auto_reg_nn import MaskedLinear
from pyrogen.models.autoregressive.base import (
    _Autoregressive,
    _member_log_probs,
    _sample_members,
)
from torch import nn
from torch.nn import functional as F

from pyrogen.validation import (
    check_bool,
    check_data_shape,
    check_positive_int,
    check_widths,
)
from pyrogen.zoo import register

__all__ = ["MADE"]


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

    cli_aliases = {"masks": "num_masks"}

    def __init__(
        self, data_shape, hidden=(500,), num_masks: int = 1, seed: int = 0, direct: bool = False
    ):
        super().__init__()
        check_bool(direct, "direct")
        hidden = check_widths(hidden, "MADE")
        check_positive_int(num_masks, "num_masks")
        self._setup(
            data_shape=check_data_shape(data_shape),
            hidden=hidden,
            num_masks=int(num_masks),
            seed=int(seed),
        )
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
        super().model(x, num_examples=num_examples)

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
