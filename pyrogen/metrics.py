"""Figures of merit shared by the zoo: likelihoods in nats and bits, sample distances,
the AUROC of an anomaly score."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

__all__ = ["nll", "bits_per_dim", "mmd", "energy_distance", "auroc"]


def nll(log_prob: torch.Tensor) -> float:
    """Mean negative log-likelihood in nats per example from per-example log p(x)."""
    return float(-log_prob.mean())


def bits_per_dim(log_prob: torch.Tensor, num_dims: int) -> float:
    """Mean negative log2-likelihood per dimension from per-example log p(x) in nats."""
    return nll(log_prob) / (num_dims * math.log(2))


def _pairwise_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a, b).square()


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidth: float | None = None) -> float:
    """Unbiased squared maximum mean discrepancy with a Gaussian kernel.

    The bandwidth defaults to the median pairwise distance of the pooled samples.
    """
    x, y = x.reshape(len(x), -1).double(), y.reshape(len(y), -1).double()
    if bandwidth is None:
        pooled = torch.cat([x, y])
        bandwidth = float(torch.cdist(pooled, pooled).median().clamp_min(1e-12))
    gamma = 1.0 / (2 * bandwidth**2)
    kxx, kyy, kxy = (torch.exp(-gamma * _pairwise_sq(u, v)) for u, v in ((x, x), (y, y), (x, y)))
    n, m = len(x), len(y)
    term_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    term_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(term_x + term_y - 2 * kxy.mean())


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Szekely and Rizzo)."""
    x, y = x.reshape(len(x), -1).double(), y.reshape(len(y), -1).double()
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


def auroc(inlier_scores, outlier_scores) -> float:
    """Area under the ROC curve of a score meant to be higher on outliers: the chance
    that a random outlier scores above a random inlier (ties count half; the
    Mann-Whitney statistic). 0.5 is chance, 1 perfect separation."""
    inlier = np.asarray(inlier_scores, dtype=float).ravel()
    outlier = np.asarray(outlier_scores, dtype=float).ravel()
    for name, scores in (("inlier_scores", inlier), ("outlier_scores", outlier)):
        if scores.size == 0:
            raise ValueError(f"{name}: is empty")
        if not np.isfinite(scores).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
    ranks = stats.rankdata(np.concatenate([inlier, outlier]))  # average ranks for ties
    u = ranks[len(inlier) :].sum() - len(outlier) * (len(outlier) + 1) / 2
    return float(u / (len(inlier) * len(outlier)))
