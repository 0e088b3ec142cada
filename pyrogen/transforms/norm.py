r"""Activation normalization (Kingma and Dhariwal 2018, Glow), for vectors and images.

:class:`ActNorm` is an elementwise affine map :math:`x = z \odot e^{s} + b` with one
scale and shift per feature (per channel for images), started from the data: the
first call in the density direction (data to noise, ``_inverse``) in training mode
sets b and s to the batch's mean and log standard deviation, so the layer's output
starts at zero mean and unit variance, as batch normalization's, but with no
dependence on the batch afterwards (batch size 1 works, and train and evaluation
agree). :math:`\log|\det J| = (\text{elements per feature}) \sum_f s_f`.

It follows Pyro's convention for ``BatchNorm`` (which pyrogen's flows use as the
batch-statistics alternative): ``_call`` maps base to data, ``_inverse`` data to base.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import constraints
from pyro.distributions.torch_transform import TransformModule

__all__ = ["ActNorm"]


class ActNorm(TransformModule):
    """Per-feature affine map with data-dependent start.

    Arguments:
        features: the number of features (D for vectors, channels C for images).
        event_dim: 1 for vectors (..., D), 3 for images (..., C, H, W).
    """

    bijective = True

    def __init__(self, features: int, event_dim: int = 1):
        if event_dim not in (1, 3):
            raise ValueError(f"event_dim: 1 (vectors) or 3 (images), got {event_dim!r}")
        super().__init__(cache_size=1)
        self.event_dim_ = event_dim
        shape = (features,) if event_dim == 1 else (features, 1, 1)
        self.loc = torch.nn.Parameter(torch.zeros(shape))
        self.log_scale = torch.nn.Parameter(torch.zeros(shape))
        self.register_buffer("initialized", torch.tensor(False))

    @constraints.dependent_property(is_discrete=False)
    def domain(self):
        return constraints.independent(constraints.real, self.event_dim_)

    @constraints.dependent_property(is_discrete=False)
    def codomain(self):
        return constraints.independent(constraints.real, self.event_dim_)

    def _call(self, z):
        return z * self.log_scale.exp() + self.loc

    def _inverse(self, x):
        if self.training and not bool(self.initialized):
            self._start_from(x)
        return (x - self.loc) * (-self.log_scale).exp()

    @torch.no_grad()
    def _start_from(self, x: torch.Tensor) -> None:
        if self.event_dim_ == 1:
            rows, dims = x.reshape(-1, x.shape[-1]), (0,)
        else:
            rows, dims = x.reshape(-1, *x.shape[-3:]), (0, 2, 3)
        self.loc.copy_(rows.mean(dims).reshape(self.loc.shape))
        if rows.numel() > self.loc.numel():  # a spread needs two values per feature
            std = rows.std(dims).clamp_min(1e-6)
            self.log_scale.copy_(std.log().reshape(self.loc.shape))
        self.initialized.fill_(True)

    def log_abs_det_jacobian(self, z, x):
        per_feature = math.prod(x.shape[-self.event_dim_ :]) // self.loc.numel()
        return (per_feature * self.log_scale.sum()).expand(x.shape[: x.dim() - self.event_dim_])
