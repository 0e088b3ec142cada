r"""Normalizing flows: a simple base density pushed through invertible maps.

A flow is :math:`x = f(z)`, :math:`z \sim p_Z` (a standard normal, or NICE's standard
logistic), :math:`f = f_K \circ \dots \circ f_1` invertible and differentiable, so
that by the change of variables

.. math::

    \log p(x) = \log p_Z(f^{-1}(x)) + \sum_{k} \log \left|\det
        \frac{\partial f_k^{-1}}{\partial y}\right|_{y = y_k}.

Each model here is a :class:`~pyrogen.zoo.DensityModel` whose ``distribution()`` is a
Pyro ``TransformedDistribution`` built from Pyro's own transforms where Pyro has them
(``AffineCoupling``, ``AffineAutoregressive``, ``SplineCoupling``,
``SplineAutoregressive``, ``Permute``) and from :mod:`pyrogen.transforms` where it does
not (NICE's additive coupling and scaling), so it is usable inside any Pyro model and
fitted by maximum likelihood, ``pyrogen.fit(flow, x, method="mle")``. Between
layers the dimensions are reversed, so every dimension is transformed.

- **NICE** (Dinh, Krueger and Bengio 2014): additive coupling layers
  :math:`y_2 = x_2 + m(x_1)` (volume-preserving) with alternating halves, then a
  diagonal scaling :math:`y = x \odot e^s`, the only term of the log-determinant; a
  logistic base by default, as the paper's.
- **RealNVP** (Dinh, Sohl-Dickstein and Bengio 2017): affine coupling
  :math:`y_2 = x_2 \odot e^{s(x_1)} + t(x_1)`; with s = 0 it is NICE's coupling.
- **MAF** (Papamakarios, Pavlakou and Murray 2017): affine autoregressive layers
  (MADE networks) used in the density direction: Pyro's ``AffineAutoregressive`` maps
  noise to data in one pass per dimension (the IAF direction), so MAF puts its inverse
  in the flow, making ``log_prob`` one pass and ``sample`` D passes.
- **IAF** (Kingma et al. 2016): the same layers in the sampling direction: ``sample``
  is one pass, ``log_prob`` D passes (the direction a variational posterior wants).
- **NSF** (Durkan, Bekasov, Murray and Papamakarios 2019): monotone rational-quadratic
  splines on [-bound, bound] (identity outside), coupling (``autoregressive=False``)
  or autoregressive.

``forward(z)`` maps base draws to data and ``inverse(x)`` data to the base space, to
inspect the latent space.

References:
    Dinh, Krueger and Bengio (2014). NICE: Non-linear Independent Components
        Estimation. arXiv:1410.8516.
    Dinh, Sohl-Dickstein and Bengio (2017). Density estimation using Real NVP. ICLR.
    Papamakarios, Pavlakou and Murray (2017). Masked Autoregressive Flow for Density
        Estimation. NeurIPS.
    Kingma, Salimans, Jozefowicz, Chen, Sutskever and Welling (2016). Improved
        Variational Inference with Inverse Autoregressive Flow. NeurIPS.
    Durkan, Bekasov, Murray and Papamakarios (2019). Neural Spline Flows. NeurIPS.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from pyro.nn import DenseNN
from torch import nn

from pyrogen.transforms import AdditiveCoupling, Scaling
from pyrogen.validation import (
    as_data_tensor,
    check_choice,
    check_data_shape,
    check_positive_int,
    check_widths,
)
from pyrogen.zoo import DensityModel, register

__all__ = ["IAF", "MAF", "NICE", "NSF", "RealNVP"]

BASES = ("normal", "logistic")


class _Flow(DensityModel):
    """What the flows share: the base, the layers with reversals between them, the
    transformed distribution, ``forward``/``inverse``. A subclass's constructor calls
    :meth:`_setup` with its transform modules (``direction`` "density" puts each one's
    inverse in the flow)."""

    cli_data = "toy2d"  # pyrogen fit NAME: --data ring|grid|checkerboard|moons|FILE.csv

    def _setup(self, modules: list, base: str = "normal", direction: str = "sample") -> None:
        self.normalize(data_shape=check_data_shape(self.config.data_shape))
        if len(self.config.data_shape) != 1:
            raise ValueError(
                f"data_shape: flows here take vectors (D,), got {tuple(self.config.data_shape)}"
            )
        self.dim = self.config.data_shape[0]
        self.base_name, self.direction = check_choice(base, "base", BASES), direction
        self.layers = nn.ModuleList(modules)
        self.register_buffer("reverse", torch.arange(self.dim - 1, -1, -1))

    def _numbers_per_example(self) -> int:
        widths = sum(getattr(self.config, "hidden", ()) or ())
        return len(self.layers) * (widths + 4 * self.dim)

    def base(self) -> dist.TorchDistribution:
        reference = next(self.parameters())
        zeros = reference.new_zeros(self.dim)
        if self.base_name == "logistic":
            return dist.Logistic(zeros, torch.ones_like(zeros)).to_event(1)
        return dist.Normal(zeros, torch.ones_like(zeros)).to_event(1)

    def transforms(self) -> list:
        """The maps from base to data, in order, reversals between layers. Each layer's
        one-entry cache of its last (input, output) is cleared: a full-batch fit passes
        the same data tensor at every step, and a cached output from the previous
        step's graph would be reused (and backpropagated through a second time)."""
        out = []
        for i, layer in enumerate(self.layers):
            layer._cached_x_y = None, None
            if i:
                out.append(T.Permute(self.reverse))
            out.append(layer.inv if self.direction == "density" else layer)
        return out

    def distribution(self, context=None) -> dist.TransformedDistribution:
        if context is not None:
            raise ValueError(f"context: {type(self).__name__} is unconditional")
        return dist.TransformedDistribution(self.base(), self.transforms())

    def _points(self, value, name: str) -> torch.Tensor:
        """``value`` as a tensor of D-vectors in the flow's dtype and device (a tensor
        keeps its autograd graph; arrays are checked as data)."""
        reference = next(self.parameters())
        if not isinstance(value, torch.Tensor):
            value = as_data_tensor(value, name)
        points = value.to(reference)
        if points.dim() == 0 or points.shape[-1] != self.dim:
            raise ValueError(f"{name}: expected shape (..., {self.dim}), got {tuple(points.shape)}")
        return points

    def forward(self, z) -> torch.Tensor:
        """Base draws z (..., D) mapped to data space."""
        z = self._points(z, "z")
        for transform in self.transforms():
            z = transform(z)
        return z

    def inverse(self, x) -> torch.Tensor:
        """Data x (..., D) mapped to the base space (the latent codes)."""
        x = self._points(x, "x")
        for transform in reversed(self.transforms()):
            x = transform.inv(x)
        return x


def _coupling_split(dim: int, name: str) -> int:
    if dim < 2:
        raise ValueError(f"data_shape: {name} couples two halves, so needs D >= 2")
    return dim // 2


@register("nice")
class NICE(_Flow):
    """NICE: additive coupling layers with alternating halves and a final diagonal
    scaling, on a logistic base (Dinh et al. 2014).

    Arguments:
        data_shape: (D,).
        layers: coupling layers (the paper's: 4).
        hidden: the coupling networks' ReLU hidden widths (the paper's MNIST: five of
            1000).
        base: ``"logistic"`` (the paper's) or ``"normal"``.
    """

    def __init__(self, data_shape, layers: int = 4, hidden=(256, 256), base: str = "logistic"):
        super().__init__()
        check_positive_int(layers, "layers")
        dim = check_data_shape(data_shape)[0]
        split, widths = _coupling_split(dim, "NICE"), check_widths(hidden, "NICE")
        modules = [
            AdditiveCoupling(split, DenseNN(split, widths, [dim - split])) for _ in range(layers)
        ]
        self.normalize(hidden=widths)
        self._setup([*modules, Scaling(dim)], base)

    def transforms(self) -> list:
        """Couplings with reversals between them, then the scaling (no reversal)."""
        out = super().transforms()
        return out[:-2] + out[-1:]


@register("realnvp")
class RealNVP(_Flow):
    """RealNVP: affine coupling layers (Pyro's ``AffineCoupling``) with alternating
    halves on a standard normal base (Dinh et al. 2017).

    Arguments:
        data_shape: (D,).
        layers: coupling layers.
        hidden: the coupling networks' ReLU hidden widths.
    """

    def __init__(self, data_shape, layers: int = 6, hidden=(256, 256)):
        super().__init__()
        check_positive_int(layers, "layers")
        dim = check_data_shape(data_shape)[0]
        split, widths = _coupling_split(dim, "RealNVP"), check_widths(hidden, "RealNVP")
        modules = [
            T.AffineCoupling(split, DenseNN(split, widths, [dim - split, dim - split]))
            for _ in range(layers)
        ]
        self.normalize(hidden=widths)
        self._setup(modules)


def _autoregressive_layers(dim: int, layers: int, hidden, name: str) -> tuple[list, list[int]]:
    from pyro.nn import AutoRegressiveNN

    check_positive_int(layers, "layers")
    if dim < 2:
        raise ValueError(f"data_shape: {name} needs D >= 2")
    widths = check_widths(hidden, name)
    modules = [T.AffineAutoregressive(AutoRegressiveNN(dim, widths)) for _ in range(layers)]
    return modules, widths


@register("maf")
class MAF(_Flow):
    """Masked autoregressive flow: affine autoregressive layers (MADE networks) in the
    density direction, so ``log_prob`` is one pass and ``sample`` D passes
    (Papamakarios et al. 2017).

    Arguments:
        data_shape: (D,).
        layers: autoregressive layers (the dimensions reversed between them).
        hidden: each MADE's hidden widths.
    """

    direction = "density"  # Pyro's AffineAutoregressive inverted: data -> noise in a pass

    def __init__(self, data_shape, layers: int = 5, hidden=(256, 256)):
        super().__init__()
        dim = check_data_shape(data_shape)[0]
        modules, widths = _autoregressive_layers(dim, layers, hidden, type(self).__name__)
        self.normalize(hidden=widths)
        self._setup(modules, direction=self.direction)


@register("iaf")
class IAF(MAF):
    """Inverse autoregressive flow: the same layers in the sampling direction, so
    ``sample`` is one pass and ``log_prob`` D passes (Kingma et al. 2016).

    Arguments:
        data_shape: (D,).
        layers: autoregressive layers.
        hidden: each MADE's hidden widths.
    """

    direction = "sample"


@register("nsf")
class NSF(_Flow):
    """Neural spline flow: monotone rational-quadratic splines with ``bins`` bins on
    [-bound, bound] (identity outside), coupling or autoregressive (Durkan et al. 2019).

    Arguments:
        data_shape: (D,).
        layers: spline layers.
        hidden: the networks' hidden widths.
        bins: spline bins.
        bound: the spline's interval half-width (standardize the data to fit in it).
        autoregressive: autoregressive splines (Pyro's ``SplineAutoregressive``, in
            the density direction) instead of coupling ones.
    """

    def __init__(
        self,
        data_shape,
        layers: int = 4,
        hidden=(64, 64),
        bins: int = 8,
        bound: float = 3.0,
        autoregressive: bool = False,
    ):
        super().__init__()
        check_positive_int(layers, "layers")
        check_positive_int(bins, "bins", minimum=2)
        if not (isinstance(bound, (int, float)) and math.isfinite(bound) and bound > 0):
            raise ValueError(f"bound: must be a positive number, got {bound!r}")
        dim = check_data_shape(data_shape)[0]
        widths = check_widths(hidden, "NSF")
        if autoregressive:
            modules = [
                T.spline_autoregressive(dim, widths, count_bins=bins, bound=float(bound))
                for _ in range(layers)
            ]
        else:
            split = _coupling_split(dim, "NSF")
            modules = [
                T.spline_coupling(dim, split, widths, count_bins=bins, bound=float(bound))
                for _ in range(layers)
            ]
        self.normalize(hidden=widths, bins=int(bins), bound=float(bound))
        self._setup(modules, direction="density" if autoregressive else "sample")
