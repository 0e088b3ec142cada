"""FVSBN, the fully visible sigmoid belief network (Frey 1998): a logistic regression
per dimension on the dimensions before it. See :mod:`pyrogen.models.autoregressive`."""

from __future__ import annotations

import math

import pyro
import torch
from pyrogen.models.autoregressive.base import (
    _Autoregressive,
)
from torch import nn
from torch.nn import functional as F

from pyrogen.validation import (
    check_choice,
    check_data_shape,
    check_positive_number,
)
from pyrogen.zoo import register

__all__ = ["FVSBN"]


@register("fvsbn")
class FVSBN(_Autoregressive):
    r"""Fully visible sigmoid belief network: a logistic regression per dimension on
    the dimensions before it. Parameters: D(D+1)/2.

    ``prior_scale`` = s puts a prior on the D(D-1)/2 weights, Gaussian
    :math:`W_{dj} \sim \mathcal N(0, s^2)` (``prior="normal"``) or Laplace
    :math:`W_{dj} \sim \mathrm{Laplace}(0, s)` (``prior="laplace"``; the biases keep
    a flat prior), as a factor of the model outside the data plate, so a fit
    (``method="mle"``, which maximizes the model's joint density over its parameters)
    is the posterior mode: L2-penalized logistic regressions, penalty
    :math:`\lVert W\rVert_2^2 / 2s^2`, or L1-penalized ones,
    :math:`\lVert W\rVert_1 / s`, counted once for the whole data set however it is
    minibatched. With 784 pixels and 50,000 images the unpenalized fit overfits (see
    ``bench/ar_mnist.py``)."""

    def __init__(self, data_shape, prior_scale: float | None = None, prior: str = "normal"):
        super().__init__()
        if prior_scale is not None:
            prior_scale = check_positive_number(prior_scale, "prior_scale")
        check_choice(prior, "prior", ("normal", "laplace"))
        self._setup(data_shape=check_data_shape(data_shape), prior_scale=prior_scale)
        self.weight = nn.Parameter(torch.zeros(self.dim, self.dim))
        self.bias = nn.Parameter(torch.zeros(self.dim))
        self.register_buffer("mask", torch.ones(self.dim, self.dim).tril(-1))

    def logits(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)

    def log_prior(self) -> torch.Tensor:
        """log p(W) under ``prior_scale`` (0 without one): the weights the mask keeps."""
        s = self.config.prior_scale
        if s is None:
            return self.weight.new_zeros(())
        w = self.weight * self.mask
        count = self.dim * (self.dim - 1) / 2
        if self.config.prior == "laplace":
            return -w.abs().sum() / s - count * math.log(2 * s)
        return -0.5 * (w**2).sum() / s**2 - count * (math.log(s) + 0.5 * math.log(2 * math.pi))

    def model(self, x, num_examples: int | None = None) -> None:
        super().model(x, num_examples=num_examples)
        if self.config.prior_scale is not None:
            pyro.factor("weight_prior", self.log_prior())

    def _logit(self, x, d):
        return x @ (self.weight[d] * self.mask[d]) + self.bias[d]
