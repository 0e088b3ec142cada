r"""NICE's two transforms (Dinh, Krueger and Bengio 2014), which Pyro has not as such.

- :class:`AdditiveCoupling`: :math:`y_1 = x_1`, :math:`y_2 = x_2 + m(x_1)` for a split
  :math:`x = (x_1, x_2)` at ``split_dim`` and any network m; volume-preserving,
  :math:`\log|\det J| = 0`; the inverse is :math:`x_2 = y_2 - m(y_1)`.
- :class:`Reverse`: the last dimension reversed, the permutation flows put between
  layers so every dimension is transformed (Pyro's ``Permute`` with a fixed order,
  without its buffer and cache).
- :class:`Scaling`: :math:`y = x \odot e^{s}`, the diagonal scaling layer NICE ends
  with, :math:`\log|\det J| = \sum_d s_d`.

And one that Pyro has in another form: :class:`BoundedAffineCoupling`, Pyro's
``AffineCoupling`` :math:`y_2 = x_2 \odot e^{s(x_1)} + t(x_1)` with its log-scale
softly bounded, :math:`s = a / (1 + |a| / b)` (zuko's ``MonotonicAffineTransform``),
where Pyro clips it to [-5, 3].

Both act on the last dimension as one event (``event_dim = 1``) and give
``log_abs_det_jacobian`` summed over it, as Pyro's ``AffineCoupling`` does.
"""

from __future__ import annotations

import torch
from pyro.distributions import constraints
from pyro.distributions.torch_transform import TransformModule
from pyro.distributions.transforms import AffineCoupling

__all__ = [
    "AdditiveCoupling",
    "BoundedAffineCoupling",
    "Interleave",
    "Reverse",
    "Scaling",
    "soft_bound",
]


def soft_bound(a: torch.Tensor, bound: float) -> torch.Tensor:
    """a / (1 + |a| / bound): a in (-bound, bound), a itself near 0, its gradient
    everywhere (zuko's bound on log-scales and log-derivatives)."""
    return a / (1 + a.abs() / bound)


class AdditiveCoupling(TransformModule):
    """y = (x_1, x_2 + m(x_1)), with x_1 the first ``split_dim`` entries of x's last
    dimension and ``hypernet`` mapping x_1 (..., split_dim) to m (..., D - split_dim)."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, split_dim: int, hypernet: torch.nn.Module):
        super().__init__(cache_size=1)
        self.split_dim, self.nn = int(split_dim), hypernet

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.split([self.split_dim, x.size(-1) - self.split_dim], dim=-1)

    def _call(self, x):
        x1, x2 = self._split(x)
        return torch.cat([x1, x2 + self.nn(x1)], dim=-1)

    def _inverse(self, y):
        y1, y2 = self._split(y)
        return torch.cat([y1, y2 - self.nn(y1)], dim=-1)

    def log_abs_det_jacobian(self, x, y):
        return x.new_zeros(x.shape[:-1])


class Scaling(TransformModule):
    """y = x * exp(log_scale), a learned scale per dimension (started at 1)."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, dim: int):
        super().__init__(cache_size=1)
        self.log_scale = torch.nn.Parameter(torch.zeros(dim))

    def _call(self, x):
        return x * self.log_scale.exp()

    def _inverse(self, y):
        return y * (-self.log_scale).exp()

    def log_abs_det_jacobian(self, x, y):
        return self.log_scale.sum().expand(x.shape[:-1])


class _Permutation(TransformModule):
    """A fixed reordering of the last dimension: no parameters (a module, so Pyro's
    ``ComposeTransformModule`` takes it), log-determinant 0. It keeps its last (x, y)
    as every transform does: scoring a draw hands each layer the very tensor it
    produced, so an inverse autoregressive layer finds its cache and is not inverted
    (D passes of its network; without the cache here an IAF posterior's step cost 5
    times a plain VAE's)."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self):
        super().__init__(cache_size=1)

    def __eq__(self, other):
        return type(other) is type(self)

    __hash__ = TransformModule.__hash__

    def log_abs_det_jacobian(self, x, y):
        return x.new_zeros(x.shape[:-1])


class Reverse(_Permutation):
    """y = x[..., ::-1], its own inverse."""

    def _call(self, x):
        return x.flip(-1)

    def _inverse(self, y):
        return y.flip(-1)


class Interleave(_Permutation):
    """x = the halves of y interleaved: y's first ceil(D/2) entries go to x's even
    places, the rest to its odd places, so a coupling that splits y into halves
    splits x into alternate entries (Real NVP's checkerboard partition of a flattened
    image, where neighbouring pixels fall on different sides)."""

    @staticmethod
    def _order(y: torch.Tensor) -> torch.Tensor:
        d = y.shape[-1]
        return torch.cat([torch.arange(0, d, 2), torch.arange(1, d, 2)]).to(y.device)

    def _call(self, y):
        x = torch.empty_like(y)
        x[..., self._order(y)] = y
        return x

    def _inverse(self, x):
        return x[..., self._order(x)]


class BoundedAffineCoupling(AffineCoupling):
    """y = (x_1, x_2 exp(s) + t) with (t, a) = ``hypernet(x_1)`` and the log-scale
    s = a / (1 + |a| / scale_bound) in (-scale_bound, scale_bound): a smooth bound
    with its gradient everywhere, where Pyro's ``AffineCoupling`` clips a to [-5, 3]
    (passing the gradient straight through). On vectors (the last dimension)."""

    def __init__(self, split_dim: int, hypernet, scale_bound: float = 5.0):
        super().__init__(split_dim, hypernet)
        self.scale_bound = float(scale_bound)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.split([self.split_dim, x.size(-1) - self.split_dim], dim=-1)

    def _shift_and_log_scale(self, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shift, a = self.nn(x1)
        log_scale = soft_bound(a, self.scale_bound)
        self._cached_log_scale = log_scale
        return shift, log_scale

    def _call(self, x):
        x1, x2 = self._split(x)
        shift, log_scale = self._shift_and_log_scale(x1)
        return torch.cat([x1, x2 * log_scale.exp() + shift], dim=-1)

    def _inverse(self, y):
        y1, y2 = self._split(y)
        shift, log_scale = self._shift_and_log_scale(y1)
        return torch.cat([y1, (y2 - shift) * (-log_scale).exp()], dim=-1)

    def log_abs_det_jacobian(self, x, y):
        x_old, y_old = self._cached_x_y
        if self._cached_log_scale is None or x is not x_old or y is not y_old:
            self._shift_and_log_scale(self._split(x)[0])
        return self._cached_log_scale.sum(-1)
