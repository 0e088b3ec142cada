"""Flow guides beyond Pyro's stock autoguides.

:class:`AutoSplineNormal` pushes a standard normal through rational-quadratic spline
flows (Durkan, Bekasov, Murray and Papamakarios, 2019: neural spline flows) and then an
elementwise affine map started at the model's initial point, so the guide begins as
the mean-field ``AutoNormal`` does (centred at the start, scale ``init_scale``) and the
splines bend it into skewed, heavy-shouldered or multimodal shapes the Gaussian guides
cannot take. With more than one latent dimension the splines are autoregressive
(each coordinate's spline is conditioned on the previous ones), so dependence is learnt
too; Pyro's ``spline_autoregressive`` and ``spline`` provide the transforms.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import constraints
from pyro.distributions.torch_transform import ComposeTransformModule, TransformModule
from pyro.distributions.transforms import spline, spline_autoregressive
from pyro.infer.autoguide import AutoNormalizingFlow
from pyro.infer.autoguide.initialization import init_to_median
from torch import nn

from pyrogen.validation import check_positive_int, check_positive_number

__all__ = ["AutoSplineNormal", "LocScale"]


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


class AutoSplineNormal(AutoNormalizingFlow):
    """A normal pushed through ``num_transforms`` spline flows and a location-scale map.

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
        check_positive_number(init_scale, "init_scale")
        self._flow_options = (num_transforms, count_bins, float(bound), float(init_scale))
        super().__init__(model, self._make_transform)
        self.init_loc_fn = init_loc_fn

    def _make_transform(self, dim: int) -> ComposeTransformModule:
        num_transforms, count_bins, bound, init_scale = self._flow_options
        loc = self._init_loc()
        if dim == 1:
            layers = [spline(1, count_bins=count_bins, bound=bound) for _ in range(num_transforms)]
        else:
            layers = [
                spline_autoregressive(dim, count_bins=count_bins, bound=bound)
                for _ in range(num_transforms)
            ]
        flow = ComposeTransformModule([*layers, LocScale(loc, init_scale)])
        return flow.to(dtype=loc.dtype, device=loc.device)
