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
``SplineAutoregressive``, ``BatchNorm`` and their conditional forms) and from
:mod:`pyrogen.transforms` where it does not (NICE's additive coupling and scaling,
``ActNorm``, the reversal between layers, the conditional additive and spline
couplings, Glow's squeeze, 1x1 convolution and multiscale architecture), so it is
usable inside any Pyro model and fitted by maximum likelihood,
``pyrogen.fit(flow, x, method="mle")``. Between layers the dimensions are reversed, so
every dimension is transformed. With ``context_dim`` a flow is conditional, p(x | c):
its data are pairs, ``pyrogen.fit(flow, x, c, method="mle")``,
``flow.log_prob(x, c)``, ``flow.sample(n, c)``.

- **NICE** (Dinh, Krueger and Bengio 2014): additive coupling layers
  :math:`y_2 = x_2 + m(x_1)` (volume-preserving), the parts alternating, then a
  diagonal scaling as the top layer, :math:`h = S \odot g(x)` (the paper's Sec. 3.3:
  the scaling acts on the couplings' output, at the base's end), the only term of the
  log-determinant; a logistic base by default, as the paper's.
- **RealNVP** (Dinh, Sohl-Dickstein and Bengio 2017): affine coupling
  :math:`z_2 = x_2 \odot e^{s(x_1)} + t(x_1)` from data to noise, its log-scale
  softly bounded (``direction="sample"``: from noise to data, Pyro's clipping); with
  s = 0 it is NICE's coupling.
- **MAF** (Papamakarios, Pavlakou and Murray 2017): affine autoregressive layers
  (MADE networks) used in the density direction: Pyro's ``AffineAutoregressive`` maps
  noise to data in one pass per dimension (the IAF direction), so MAF puts its inverse
  in the flow, making ``log_prob`` one pass and ``sample`` D passes; data map to noise
  as :math:`z = x \odot e^{s} + m` with the log-scale softly bounded,
  :math:`s = a / (1 + |a| / b)` (``scale_bound=None``: Pyro's clipping).
- **IAF** (Kingma et al. 2016): the same layers in the sampling direction: ``sample``
  is one pass, ``log_prob`` D passes (the direction a variational posterior wants).
- **NSF** (Durkan, Bekasov, Murray and Papamakarios 2019): monotone rational-quadratic
  splines on [-bound, bound] (identity outside), coupling (``autoregressive=False``)
  or autoregressive, on Pyro's spline transforms with pyrogen's one-pass kernel
  (:mod:`pyrogen.transforms.spline`); ``order="linear"`` takes Pyro's linear rational
  splines instead (Dolatabadi, Erfani and Leckie 2020).
- **Glow** (Kingma and Dhariwal 2018): images; levels of squeeze, steps of actnorm,
  invertible 1x1 convolution and affine coupling, half the channels factored out
  after each level, then Real NVP's logit map to pixel intensities.

The coupling flows (NICE, RealNVP, NSF's coupling) split a vector into x_1 and x_2:
``partition="alternate"`` (the default) takes alternate entries (a flattened image's
checkerboard, as Real NVP's), ``"half"`` the first half and the second.

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
    Dolatabadi, Erfani and Leckie (2020). Invertible Generative Modeling using Linear
        Rational Splines. AISTATS.
    Kingma and Dhariwal (2018). Glow: Generative Flow with Invertible 1x1
        Convolutions. NeurIPS.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from pyro.distributions.conditional import ConditionalTransform
from pyro.nn import ConditionalDenseNN, DenseNN
from torch import nn

from pyrogen.transforms import (
    ActNorm,
    AdditiveCoupling,
    BoundedAffineAutoregressive,
    BoundedAffineCoupling,
    ConditionalAdditiveCoupling,
    ConditionalBoundedAffineAutoregressive,
    ConditionalBoundedAffineCoupling,
    ConditionalRQSplineAutoregressive,
    ConditionalSplineCoupling,
    Interleave,
    MultiscaleFlow,
    Reverse,
    RQSplineAutoregressive,
    RQSplineCoupling,
    Scaling,
    clear_caches,
)
from pyrogen.transforms.spline import SPLINE_ORDERS
from pyrogen.validation import (
    as_data_tensor,
    check_choice,
    check_data_shape,
    check_positive_int,
    check_positive_number,
    check_widths,
)
from pyrogen.zoo import DensityModel, register

__all__ = ["Glow", "IAF", "MAF", "NICE", "NSF", "RealNVP"]

BASES = ("normal", "logistic")
NORMS = ("batch", "act")
DIRECTIONS = ("density", "sample")
PARTITIONS = ("half", "alternate")


def _context_dim(context_dim) -> int | None:
    if context_dim is None:
        return None
    return check_positive_int(context_dim, "context_dim")


def _dense(split: int, context_dim: int | None, widths: list[int], out: list[int]) -> nn.Module:
    """The coupling network of x_1 (and the context, if any)."""
    if context_dim:
        return ConditionalDenseNN(split, context_dim, widths, out)
    return DenseNN(split, widths, out)


def _norms(norm: str | None, dim: int, layers: int) -> list | None:
    """A normalization after each layer: Pyro's ``BatchNorm`` (batch statistics while
    training, running averages after) or :class:`~pyrogen.transforms.ActNorm`."""
    if norm is None:
        return None
    check_choice(norm, "norm", NORMS)
    return [T.BatchNorm(dim) if norm == "batch" else ActNorm(dim) for _ in range(layers)]


class _FlowModel(DensityModel):
    """What every flow here shares: a subclass gives ``base()`` and
    ``transforms(context)`` (base to data); this gives the distribution and
    ``forward``/``inverse`` with their inputs checked. Transforms keep their last
    (input, output), part of an autograd graph: dropped before a copy or a pickle
    (``copy.deepcopy`` refuses non-leaf tensors)."""

    def __getstate__(self):
        clear_caches(self)
        return super().__getstate__()

    def _check_context(self, context) -> None:
        if context is None and self.context_dim:
            raise ValueError(f"context: {type(self).__name__} is conditional; give a context")
        if context is not None and not self.context_dim:
            raise ValueError(f"context: {type(self).__name__} is unconditional")

    def distribution(self, context=None) -> dist.TransformedDistribution:
        """p(x), or p(x | context) for a conditional flow (a context row per example,
        or one for all)."""
        return dist.TransformedDistribution(self.base(), self.transforms(context))

    def _points(self, value, name: str, shape=None) -> torch.Tensor:
        """``value`` as a tensor of examples of ``shape`` (default: the data's) in the
        flow's dtype and device, with any leading dimensions (a tensor keeps its
        autograd graph; arrays are checked as data)."""
        reference = next(self.parameters())
        shape = tuple(shape or self.config.data_shape)
        if not isinstance(value, torch.Tensor):
            value = as_data_tensor(value, name)
        points = value.to(reference)
        if points.dim() < len(shape) or tuple(points.shape[points.dim() - len(shape) :]) != shape:
            raise ValueError(
                f"{name}: expected shape (..., {', '.join(map(str, shape))}), "
                f"got {tuple(points.shape)}"
            )
        return points

    def forward(self, z, context=None) -> torch.Tensor:
        """Base draws z (..., *data_shape) mapped to data space (given ``context`` if
        conditional)."""
        z = self._points(z, "z")
        for transform in self.transforms(self._context(context)):
            z = transform(z)
        return z

    def inverse(self, x, context=None) -> torch.Tensor:
        """Data x (..., *data_shape) mapped to the base space (the latent codes)."""
        x = self._points(x, "x")
        for transform in reversed(self.transforms(self._context(context))):
            x = transform.inv(x)
        return x

    def _context(self, context):
        if context is None or isinstance(context, torch.Tensor) or not self.context_dim:
            return context  # an unconditional flow's transforms refuse it by name
        return self._points(context, "context", (self.context_dim,))


class _Flow(_FlowModel):
    """What the flows share: the base, the layers with reversals between them, the
    transformed distribution, ``forward``/``inverse``. A subclass's constructor calls
    :meth:`_setup` with its transform modules (``direction`` "density" puts each one's
    inverse in the flow)."""

    cli_data = "toy2d"  # pyrogen fit NAME: --data ring|grid|checkerboard|moons|FILE.csv

    def _setup(
        self,
        modules: list,
        base: str = "normal",
        direction: str = "sample",
        norms=None,
        partition: str = "half",
    ) -> None:
        self.normalize(data_shape=check_data_shape(self.config.data_shape))
        if len(self.config.data_shape) != 1:
            raise ValueError(
                f"data_shape: flows here take vectors (D,), got {tuple(self.config.data_shape)}"
            )
        self.dim = self.config.data_shape[0]
        self.base_name, self.direction = check_choice(base, "base", BASES), direction
        self.layers = nn.ModuleList(modules)
        self.norms = nn.ModuleList(norms) if norms else None
        self.partition = check_choice(partition, "partition", PARTITIONS)

    def _numbers_per_example(self) -> int:
        widths = sum(getattr(self.config, "hidden", ()) or ())
        return len(self.layers) * (widths + 4 * self.dim)

    def base(self) -> dist.TorchDistribution:
        reference = next(self.parameters())
        zeros = reference.new_zeros(self.dim)
        if self.base_name == "logistic":
            return dist.Logistic(zeros, torch.ones_like(zeros)).to_event(1)
        return dist.Normal(zeros, torch.ones_like(zeros)).to_event(1)

    def transforms(self, context=None) -> list:
        """The maps from base to data, in order, reversals between layers, each layer
        followed by its normalization if any (so data meet a normalization first);
        conditional layers conditioned on ``context``."""
        self._check_context(context)
        clear_caches(self)
        out = []
        for i, layer in enumerate(self.layers):
            if i:
                out.append(Reverse())
            layer = layer.inv if self.direction == "density" else layer
            out.append(
                layer.condition(context) if isinstance(layer, ConditionalTransform) else layer
            )
            if self.norms is not None:
                out.append(self.norms[i])
        return out + self._partition()

    def _partition(self) -> list:
        """Coupling flows split their input into halves; ``"alternate"`` interleaves
        the halves on the data side, so the split is into alternate entries."""
        return [Interleave()] if self.partition == "alternate" else []

    def sampling_transforms(self) -> list:
        """The layers in the sampling direction whatever the flow's (a guide draws and
        scores its own draws in one pass per layer), reversals between, no
        normalizations: the building blocks of :class:`pyrogen.infer.AutoFlow`."""
        if self.context_dim or self.norms is not None:
            raise ValueError("flow: a guide's flow takes no context_dim and no norm")
        out = []
        for i, layer in enumerate(self.layers):
            out += [Reverse(), layer] if i else [layer]
        return out + self._partition()


def _coupling_split(dim: int, name: str) -> int:
    if dim < 2:
        raise ValueError(f"data_shape: {name} couples two halves, so needs D >= 2")
    return dim // 2


def _couplings(family, data_shape, layers, hidden, context_dim, plain, conditional, outputs):
    """``layers`` couplings of ``family`` (``conditional`` ones with a context), each
    with a dense network from x_1 (and the context) to ``outputs`` vectors the size of
    x_2; returns them, D and the checked widths."""
    check_positive_int(layers, "layers")
    dim, context_dim = check_data_shape(data_shape)[0], _context_dim(context_dim)
    split, widths = _coupling_split(dim, family), check_widths(hidden, family)
    coupling = conditional if context_dim else plain
    sizes = [dim - split] * outputs
    modules = [coupling(split, _dense(split, context_dim, widths, sizes)) for _ in range(layers)]
    return modules, dim, widths


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
        context_dim: condition on a context vector of this width (p(x | c)); the
            coupling networks read it beside x_1.
        partition: ``"alternate"`` (the default) couples alternate entries (even ones
            on odd ones and back, a flattened image's checkerboard), ``"half"`` the
            first half with the second.
    """

    revision = 2
    revision_note = (
        "the scaling layer moved from the data's end to the base's, the paper's top "
        "layer; files of the release that moved it record no revision but hold the new "
        "layout: NICE(**config).load_state_dict(state) reads them"
    )

    def __init__(
        self,
        data_shape,
        layers: int = 4,
        hidden=(256, 256),
        base: str = "logistic",
        context_dim: int | None = None,
        partition: str = "alternate",
    ):
        super().__init__()
        modules, dim, widths = _couplings(
            "NICE", data_shape, layers, hidden, context_dim,
            AdditiveCoupling, ConditionalAdditiveCoupling, outputs=1,
        )  # fmt: skip
        self.normalize(hidden=widths)
        self._setup(modules, base, partition=partition)
        self.scaling = Scaling(dim)

    def transforms(self, context=None) -> list:
        """From the base: the scaling, then the couplings with reversals between them
        (from the data: the couplings, then the scaling, the paper's top layer)."""
        return [self.scaling, *super().transforms(context)]

    def sampling_transforms(self) -> list:
        return [self.scaling, *super().sampling_transforms()]


@register("realnvp")
class RealNVP(_Flow):
    """RealNVP: affine coupling layers (Pyro's ``AffineCoupling``) with alternating
    halves on a standard normal base (Dinh et al. 2017).

    Arguments:
        data_shape: (D,).
        layers: coupling layers.
        hidden: the coupling networks' ReLU hidden widths.
        norm: ``"batch"`` (Pyro's ``BatchNorm``, the paper's) or ``"act"``
            (:class:`~pyrogen.transforms.ActNorm`) after each layer, or None.
        context_dim: condition on a context vector of this width (Pyro's
            ``ConditionalAffineCoupling``).
        partition: ``"alternate"`` (the default: even entries on odd ones and back,
            the paper's checkerboard for a flattened image) or ``"half"``.
        direction: ``"density"`` (default): each coupling maps data to noise,
            :math:`z_2 = x_2 e^{s(x_1)} + t(x_1)`, its log-scale softly bounded,
            :math:`s = a / (1 + |a| / b)` (zuko's form,
            :class:`~pyrogen.transforms.BoundedAffineCoupling`); ``"sample"``: noise to data,
            :math:`x_2 = z_2 e^{s(z_1)} + t(z_1)`, ``s`` clipped to [-5, 3] (Pyro's
            ``AffineCoupling`` as it is). Both score and sample in one pass.
        scale_bound: b, the density direction's bound on each log-scale.
    """

    revision = 2
    revision_note = (
        "the couplings run in the density direction by default, with a soft bound on "
        "the log-scales; a file of revision 1 is RealNVP(..., direction='sample') with "
        "its 'state' loaded by load_state_dict"
    )

    @classmethod
    def _saved_revision(cls, payload: dict) -> int:
        """A file without a revision but with a ``direction`` in its config was saved
        after the change (revision 2)."""
        if "revision" not in payload and "direction" in payload["config"]:
            return 2
        return super()._saved_revision(payload)

    def __init__(
        self,
        data_shape,
        layers: int = 6,
        hidden=(256, 256),
        norm: str | None = None,
        context_dim: int | None = None,
        partition: str = "alternate",
        direction: str = "density",
        scale_bound: float = 5.0,
    ):
        super().__init__()
        check_choice(direction, "direction", DIRECTIONS)
        scale_bound = check_positive_number(scale_bound, "scale_bound")
        if direction == "density":
            plain = partial(BoundedAffineCoupling, scale_bound=scale_bound)
            conditional = partial(ConditionalBoundedAffineCoupling, scale_bound=scale_bound)
        else:
            plain, conditional = T.AffineCoupling, T.ConditionalAffineCoupling
        modules, dim, widths = _couplings(
            "RealNVP", data_shape, layers, hidden, context_dim, plain, conditional, outputs=2
        )
        self.normalize(hidden=widths, scale_bound=scale_bound)
        # The density direction is zuko's form: against zuko's RealNVP on the same data
        # (bench/flows.py) the sampling direction trailed (digits 2.60 against 2.46
        # bits); with zuko's bound (7) one ring seed of seven put a test point at an
        # extreme log-density (exploratory runs), with a bound of 5 none did
        self._setup(modules, direction=direction, norms=_norms(norm, dim, layers),
                    partition=partition)  # fmt: skip


def orders(dim: int, layers: int) -> list[torch.Tensor]:
    """Each layer's MADE order: random, as Pyro's default, but redrawn where it would
    condition the same way as the layer before. Layers meet the dimensions reversed
    every other time, so an order o at layer i acts as o (i even) or D - 1 - o (i odd)
    on the data's coordinates. Pyro's independent random orders repeated in half the
    layers in 2-D (a 5-layer MAF on the moons: KL 0.160 from the truth, 0.057 with no
    repeat; zuko's MAF 0.055), while one fixed order for all layers did worse than
    random ones on the 8x8 digits (2.46 against 2.34 bits per pixel).

    In 2-D the layers must alternate, and a draw decides only which coordinate the
    layer at the data's end conditions on; there every layer takes the natural order,
    so that layer models x_2 given x_1, as zuko's and the MAF paper's first layer do:
    one flow per config instead of one of two by seed. On the moons, which are not
    symmetric under swapping x_1 and x_2, pyrogen's MAF was ahead of zuko's on 3 seeds
    of 5 with this order and on 1 of 5 with drawn ones; on the ring and the
    checkerboard, which are, the order cannot matter in distribution, and the
    five-seed figures moved by seed noise alone (``bench/flows.py``, bench/RESULTS.md)."""
    if dim == 2:
        return [torch.arange(2) for _ in range(layers)]
    out, before = [], None
    for i in range(layers):
        while True:
            order = torch.randperm(dim)
            acts_as = order if i % 2 == 0 else dim - 1 - order
            if dim < 2 or before is None or not torch.equal(acts_as, before):
                break
        out.append(order)
        before = acts_as
    return out


def made(dim: int, widths, order, context_dim: int | None = None, param_dims=None):
    """Pyro's MADE (``AutoRegressiveNN``, or its conditional form) with ``order``.
    Pyro's MADE needs every hidden layer at least D wide (each unit is given a degree
    in 1 .. D - 1 in turn, so each degree has a unit)."""
    from pyro.nn import AutoRegressiveNN, ConditionalAutoRegressiveNN

    if min(widths) < dim:
        raise ValueError(
            f"hidden: an autoregressive layer's widths must each be at least D = {dim} "
            f"(Pyro's MADE), got {list(widths)}"
        )

    options = {"permutation": order}
    if param_dims is not None:
        options["param_dims"] = param_dims
    if context_dim:
        return ConditionalAutoRegressiveNN(dim, context_dim, widths, **options)
    return AutoRegressiveNN(dim, widths, **options)


def _autoregressive_layers(
    dim: int, layers: int, hidden, name: str, context_dim: int | None, scale_bound
) -> tuple[list, list[int]]:
    check_positive_int(layers, "layers")
    if dim < 2:
        raise ValueError(f"data_shape: {name} needs D >= 2")
    widths = check_widths(hidden, name)
    nets = [made(dim, widths, order, context_dim) for order in orders(dim, layers)]
    if scale_bound is None:  # Pyro's layers as they are: the log-scale clipped to [-5, 3]
        layer = T.ConditionalAffineAutoregressive if context_dim else T.AffineAutoregressive
        return [layer(net) for net in nets], widths
    layer = ConditionalBoundedAffineAutoregressive if context_dim else BoundedAffineAutoregressive
    return [layer(net, scale_bound) for net in nets], widths


@register("maf")
class MAF(_Flow):
    """Masked autoregressive flow: affine autoregressive layers (MADE networks) in the
    density direction, so ``log_prob`` is one pass and ``sample`` D passes
    (Papamakarios et al. 2017).

    Arguments:
        data_shape: (D,).
        layers: autoregressive layers (the dimensions reversed between them).
        hidden: each MADE's hidden widths.
        norm: ``"batch"`` (the paper's), ``"act"`` or None, after each layer.
        context_dim: condition on a context vector of this width (Pyro's
            ``ConditionalAffineAutoregressive``).
        scale_bound: b, the bound on each layer's log-scale s = a / (1 + |a| / b) of
            the MADE's output a (:class:`~pyrogen.transforms.BoundedAffineAutoregressive`,
            zuko's form); None: Pyro's layers as they are, a clipped to [-5, 3].
    """

    direction = "density"  # Pyro's AffineAutoregressive inverted: data -> noise in a pass
    revision = 2
    revision_note = (
        "each layer's log-scale is softly bounded (scale_bound, 5 by default) where "
        "Pyro's clip cut it to [-5, 3]; a file of revision 1 is "
        "MAF(**config, scale_bound=None) (IAF likewise) with its 'state' loaded by "
        "load_state_dict"
    )

    def __init__(
        self,
        data_shape,
        layers: int = 5,
        hidden=(256, 256),
        norm: str | None = None,
        context_dim: int | None = None,
        scale_bound: float | None = 5.0,
    ):
        super().__init__()
        dim, context_dim = check_data_shape(data_shape)[0], _context_dim(context_dim)
        if scale_bound is not None:
            scale_bound = check_positive_number(scale_bound, "scale_bound")
        name = type(self).__name__
        modules, widths = _autoregressive_layers(
            dim, layers, hidden, name, context_dim, scale_bound
        )
        self.normalize(hidden=widths, scale_bound=scale_bound)
        self._setup(modules, direction=self.direction, norms=_norms(norm, dim, layers))


@register("iaf")
class IAF(MAF):
    """Inverse autoregressive flow: the same layers in the sampling direction, so
    ``sample`` is one pass and ``log_prob`` D passes (Kingma et al. 2016).

    Arguments:
        data_shape: (D,).
        layers: autoregressive layers.
        hidden: each MADE's hidden widths.
        norm: ``"batch"``, ``"act"`` or None, after each layer.
        context_dim: condition on a context vector of this width.
        scale_bound: the soft bound on each log-scale (None: Pyro's clip), as MAF's.
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
        order: ``"quadratic"`` (default; Durkan et al.'s rational-quadratic splines,
            computed by :func:`pyrogen.transforms.spline.rational_quadratic_spline`)
            or ``"linear"`` (Pyro's linear rational splines, one more parameter group
            per bin).
        norm: ``"batch"``, ``"act"`` or None, after each layer.
        context_dim: condition on a context vector of this width.
        partition: the coupling's split, ``"alternate"`` (default) or ``"half"``
            (coupling layers only).
    """

    revision = 2
    revision_note = (
        "rational-quadratic splines whose knot derivatives are exp of a bounded "
        "log-derivative (pyrogen.transforms.knot_derivatives); a file of revision 1 "
        "holds Pyro's linear rational splines (NSF(..., order='linear') with its "
        "'state' loaded by load_state_dict) or softplus derivatives"
    )

    def __init__(
        self,
        data_shape,
        layers: int = 4,
        hidden=(64, 64),
        bins: int = 8,
        bound: float = 3.0,
        autoregressive: bool = False,
        norm: str | None = None,
        context_dim: int | None = None,
        partition: str = "alternate",
        order: str = "quadratic",
    ):
        super().__init__()
        check_positive_int(layers, "layers")
        check_positive_int(bins, "bins", minimum=2)
        check_choice(order, "order", SPLINE_ORDERS)
        bound = check_positive_number(bound, "bound")
        dim, context_dim = check_data_shape(data_shape)[0], _context_dim(context_dim)
        widths, bins = check_widths(hidden, "NSF"), int(bins)
        if autoregressive:
            modules = [
                _spline_autoregressive(dim, widths, bins, bound, context_dim, made_order, order)
                for made_order in orders(dim, layers)
            ]
        else:
            modules = [
                _spline_coupling(dim, widths, bins, bound, context_dim, order)
                for _ in range(layers)
            ]
        self.normalize(hidden=widths, bins=bins, bound=bound, order=order)
        direction = "density" if autoregressive else "sample"
        partition = "half" if autoregressive else partition  # autoregressive: no split
        self._setup(modules, direction=direction, norms=_norms(norm, dim, layers),
                    partition=partition)  # fmt: skip


def _spline_groups(bins: int, order: str, per: int = 1) -> list[int]:
    """The networks' output groups per coordinate: widths, heights, inner derivatives
    (and the linear splines' lambdas), each ``per`` times."""
    groups = [bins, bins, bins - 1] + ([bins] if order == "linear" else [])
    return [per * g for g in groups]


def _spline_autoregressive(dim, widths, bins, bound, context_dim, made_order, order):
    """An autoregressive spline layer in ``made_order`` (see :func:`orders`): pyrogen's
    rational-quadratic one on Pyro's classes, or Pyro's linear rational one."""
    net = made(dim, widths, made_order, context_dim, _spline_groups(bins, order))
    if order == "quadratic":
        if context_dim:
            return ConditionalRQSplineAutoregressive(dim, net, count_bins=bins, bound=bound)
        return RQSplineAutoregressive(dim, net, count_bins=bins, bound=bound)
    if context_dim:
        return T.ConditionalSplineAutoregressive(dim, net, count_bins=bins, bound=bound)
    return T.SplineAutoregressive(dim, net, count_bins=bins, bound=bound)


def _spline_coupling(dim, widths, bins, bound, context_dim, order):
    split = _coupling_split(dim, "NSF")
    groups = _spline_groups(bins, order, per=dim - split)
    if context_dim:
        net = ConditionalDenseNN(split, context_dim, widths, groups)
        return ConditionalSplineCoupling(dim, split, net, bins, bound, order=order)
    net = DenseNN(split, widths, groups)
    if order == "quadratic":
        return RQSplineCoupling(dim, split, net, count_bins=bins, bound=bound)
    return T.SplineCoupling(dim, split, net, count_bins=bins, bound=bound)


@register("glow")
class Glow(_FlowModel):
    r"""A Glow-style multiscale flow for images (Kingma and Dhariwal 2018): levels of
    squeeze, ``steps`` x (actnorm, invertible 1x1 convolution, affine coupling with a
    small convolutional network) and a factor-out of half the channels
    (:class:`~pyrogen.transforms.MultiscaleFlow`), on a standard normal base, then
    Real NVP's logit map to pixel values,
    :math:`x = (\sigma(y) - \alpha) / (1 - 2\alpha)`, so the density is on pixel
    intensities in [0, 1] (dequantized: ``pyrogen.data.dequantize``).

    Arguments:
        data_shape: (C, H, W), H and W divisible by 2 ** levels (28x28: 2 levels).
        levels: squeeze levels (each but the last factors out half the channels).
        steps: flow steps per level (Glow's 32; small images need fewer).
        hidden: the coupling networks' channels (Glow's 512).
        alpha: the logit map's margin (Real NVP's 0.05).
        data_levels: the grey levels the pixels were quantized to before
            dequantization (256 for 8-bit images, 17 for sklearn's digits):
            ``bits_per_dim`` is that of the discrete images, -log2 p(x) / D +
            log2(data_levels).
    """

    cli_data = "images"  # pyrogen fit glow: --data fashion_mnist|digits
    site = "x"

    def __init__(
        self,
        data_shape=(1, 28, 28),
        levels: int = 2,
        steps: int = 8,
        hidden: int = 128,
        alpha: float = 0.05,
        data_levels: int = 256,
    ):
        super().__init__()
        shape = check_data_shape(data_shape)
        if len(shape) != 3:
            raise ValueError(f"data_shape: Glow takes images (C, H, W), got {tuple(shape)}")
        for value, name in ((levels, "levels"), (steps, "steps"), (hidden, "hidden")):
            check_positive_int(value, name)
        check_positive_int(data_levels, "data_levels", minimum=2)
        if not (isinstance(alpha, (int, float)) and 0 <= alpha < 0.5):
            raise ValueError(f"alpha: must be in [0, 0.5), got {alpha!r}")
        self.normalize(data_shape=shape, alpha=float(alpha))
        self.flow = MultiscaleFlow(shape, levels, steps, hidden)

    def _numbers_per_example(self) -> int:
        return math.prod(self.config.data_shape) * self.flow.numbers_per_pixel()

    def base(self) -> dist.TorchDistribution:
        zeros = next(self.parameters()).new_zeros(self.config.data_shape)
        return dist.Normal(zeros, torch.ones_like(zeros)).to_event(3)

    def transforms(self, context=None) -> list:
        """Base to pixels: the multiscale flow, then the logit map's inverse."""
        self._check_context(context)
        clear_caches(self)
        alpha = self.config.alpha
        return [
            self.flow,
            T.SigmoidTransform(),
            T.AffineTransform(-alpha / (1 - 2 * alpha), 1 / (1 - 2 * alpha), event_dim=3),
        ]

    def prepare(self, *data) -> tuple:
        from pyrogen.validation import check_finite_values

        if len(data) == 1 and np.ndim(data[0]) == 3 and self.config.data_shape[0] == 1:
            data = (data[0][:, None],)  # (N, H, W) grey images: one channel
        (x,) = super().prepare(*data)
        if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
            check_finite_values(x, "x")
            raise ValueError(
                "x: pixel intensities must be in [0, 1] (dequantized: "
                "pyrogen.data.dequantize), got values in "
                f"[{float(x.min()):.3g}, {float(x.max()):.3g}]"
            )
        return (x,)

    def bits_per_dim(self, x, context=None) -> torch.Tensor:
        """Bits per pixel of the discrete images: -log2 p(x) / D + log2(data_levels)."""
        return super().bits_per_dim(x) + math.log2(self.config.data_levels)
