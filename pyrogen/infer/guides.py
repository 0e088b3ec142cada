"""Flow guides beyond Pyro's stock autoguides, built from the zoo's flows.

:class:`AutoFlow` pushes a standard normal through the layers of one of the zoo's flows
(:mod:`pyrogen.models.flows`: IAF, MAF, RealNVP, NICE, NSF), taken in the sampling
direction so a draw and its log-density cost one pass per layer, then a learnable
elementwise affine map started at the model's initial point. ``guide="spline"`` is its
autoregressive neural spline flow; ``AutoFlow(model, "iaf")`` its IAF (Kingma et al.
2016; ``guide="flow"`` stays Pyro's ``AutoIAFNormal``: on a banana posterior it
measured better until the zoo's IAF bounded its log-scales softly, and the two now
measure alike, ``bench/flows.py``).

:class:`AutoSplineNormal` pushes a standard normal through rational-quadratic spline
flows (Durkan, Bekasov, Murray and Papamakarios, 2019: neural spline flows) and then an
elementwise affine map started at the model's initial point, so the guide begins as
the mean-field ``AutoNormal`` does (centred at the start, scale ``init_scale``) and the
splines bend it into skewed, heavy-shouldered or multimodal shapes the Gaussian guides
cannot take. With more than one latent dimension the splines are autoregressive
(each coordinate's spline is conditioned on the previous ones), so dependence is learnt
too; the zoo's NSF layers (Pyro's spline classes with pyrogen's kernel,
:mod:`pyrogen.transforms.spline`) provide the transforms.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import constraints
from pyro.distributions.torch_transform import ComposeTransformModule, TransformModule
from pyro.infer.autoguide import AutoNormalizingFlow
from pyro.infer.autoguide.initialization import init_to_median
from torch import nn

from pyrogen.transforms.spline import RQSpline
from pyrogen.validation import check_positive_int, check_positive_number

__all__ = ["AutoFlow", "AutoSplineNormal", "LocScale"]


class LocScale(TransformModule):
    """The learnable elementwise affine map ``y = loc + scale * x`` on vectors."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, loc: torch.Tensor, scale: float):
        super().__init__(cache_size=1)
        self.loc = nn.Parameter(loc.detach().clone())
        self.log_scale = nn.Parameter(torch.full_like(self.loc, math.log(scale)))

    def _call(self, x):
        return self.loc + self.log_scale.exp() * x

    def _inverse(self, y):
        return (y - self.loc) * (-self.log_scale).exp()

    def log_abs_det_jacobian(self, x, y):
        return self.log_scale.sum(-1).expand(x.shape[:-1])


class AutoFlow(AutoNormalizingFlow):
    """A normal pushed through ``layers`` layers of a zoo flow and a location-scale map.

    Arguments:
        model: the Pyro model (its latent sites, in the unconstrained space).
        flow: the zoo's flow whose layers are used: ``"iaf"`` (affine autoregressive),
            ``"nsf"`` (autoregressive splines), ``"realnvp"``, ``"nice"``; with one
            latent dimension, elementwise splines whatever the flow.
        layers: how many layers.
        hidden: the layers' hidden widths (default: one layer of 3 D + 1 units, as
            Pyro's ``AutoIAFNormal``).
        init_loc_fn: where the guide starts (Pyro's per-site init functions).
        init_scale: the starting scale of every coordinate, as ``AutoNormal``'s.
        flow_options: other arguments of the flow (``bins``, ``bound`` for NSF).
    """

    FLOWS = ("iaf", "nsf", "realnvp", "nice")

    def __init__(
        self,
        model,
        flow: str = "iaf",
        layers: int = 2,
        hidden=None,
        init_loc_fn=init_to_median,
        init_scale: float = 0.1,
        **flow_options,
    ):
        from pyrogen.validation import check_choice

        check_choice(flow, "flow", self.FLOWS)
        check_positive_int(layers, "layers")
        check_positive_number(init_scale, "init_scale")
        self._options = (flow, layers, hidden, float(init_scale), flow_options)
        super().__init__(model, self._make_transform)
        self.init_loc_fn = init_loc_fn

    def _make_transform(self, dim: int) -> ComposeTransformModule:
        from pyrogen.models.flows import IAF, NICE, NSF, RealNVP

        flow, layers, hidden, init_scale, options = self._options
        loc = self._init_loc()
        if dim == 1:
            bins, bound = options.get("bins", 8), options.get("bound", 3.0)
            parts = [RQSpline(1, count_bins=bins, bound=bound) for _ in range(layers)]
        else:
            # Pyro's defaults: AutoIAFNormal's 3 D + 1 units, spline_autoregressive's 10 D
            hidden = hidden or ((10 * dim, 10 * dim) if flow == "nsf" else (3 * dim + 1,))
            if flow == "nsf":
                options = {"autoregressive": True, **options}
            cls = {"iaf": IAF, "nsf": NSF, "realnvp": RealNVP, "nice": NICE}[flow]
            if flow == "nice":
                options = {"base": "normal", **options}
            parts = cls((dim,), layers=layers, hidden=hidden, **options).sampling_transforms()
        composed = ComposeTransformModule([*parts, LocScale(loc, init_scale)])
        return composed.to(dtype=loc.dtype, device=loc.device)


class AutoSplineNormal(AutoFlow):
    """A normal pushed through ``num_transforms`` autoregressive spline flows (the zoo's
    NSF layers) and a location-scale map: ``AutoFlow(model, "nsf", ...)``.

    Arguments:
        model: the Pyro model (its latent sites, in the unconstrained space).
        num_transforms: how many spline layers.
        count_bins: spline segments per coordinate (more: more flexible shapes).
        bound: the splines act on [-bound, bound] and are the identity outside it.
        init_loc_fn: where the guide starts (Pyro's per-site init functions).
        init_scale: the starting scale of every coordinate, as ``AutoNormal``'s.
    """

    def __init__(
        self,
        model,
        num_transforms: int = 2,
        count_bins: int = 8,
        bound: float = 3.0,
        init_loc_fn=init_to_median,
        init_scale: float = 0.1,
    ):
        check_positive_int(num_transforms, "num_transforms")
        check_positive_int(count_bins, "count_bins", minimum=2)
        check_positive_number(bound, "bound")
        super().__init__(
            model, "nsf", num_transforms, None, init_loc_fn, init_scale,
            bins=count_bins, bound=float(bound),
        )  # fmt: skip
