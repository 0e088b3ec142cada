"""Two-dimensional densities with a known log-density, for measuring a fitted density by
its KL divergence from the truth: KL(p || q) = E_p[log p] - E_p[log q] = (test NLL of q)
minus (the entropy of p), both estimated on the same held-out draws.

- ``ring``: 8 Gaussians (sd 0.1) evenly on a circle of radius 2;
- ``grid``: 25 Gaussians (sd 0.1) on the 5 x 5 grid {-4, -2, 0, 2, 4}^2;
- ``checkerboard``: uniform on the 8 unit squares of [-2, 2]^2 whose corner (floor x1,
  floor x2) has an even sum (density 1/8 there, 0 elsewhere);
- ``moons``: scikit-learn's two interleaved half circles, (cos t, sin t) and
  (1 - cos t, 1/2 - sin t), t uniform on [0, pi], plus N(0, 0.1^2 I) noise: its density
  is the noise kernel averaged along both curves (by quadrature, 2,001 points each).

    x = pyrogen.toy.sample("moons", 5000, seed=0)
    pyrogen.toy.log_density("moons", x)   # exact log p(x), nats
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["TOY_DENSITIES", "MODE_SD", "log_density", "mode_coverage", "modes", "sample"]

TOY_DENSITIES = ("ring", "grid", "checkerboard", "moons")
_SD = 0.1


def _centres(name: str) -> np.ndarray:
    if name == "ring":
        angle = 2 * np.pi * np.arange(8) / 8
        return 2.0 * np.stack([np.cos(angle), np.sin(angle)], -1)
    axis = np.arange(-4.0, 5.0, 2.0)
    return np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)


def _moon_curves(t: np.ndarray) -> np.ndarray:
    upper = np.stack([np.cos(t), np.sin(t)], -1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], -1)
    return np.stack([upper, lower])  # (2, len(t), 2)


def _check(name: str) -> None:
    if name not in TOY_DENSITIES:
        raise ValueError(f"name: unknown toy density {name!r}; known: {', '.join(TOY_DENSITIES)}")


def sample(name: str, n: int, seed: int = 0, sd: float | None = None) -> np.ndarray:
    """n draws (n, 2) of the toy density ``name``; ``sd`` sets the ring's and the grid's
    component sd (default 0.1; the mode-coverage protocol's in :data:`MODE_SD`)."""
    _check(name)
    if sd is not None and name not in ("ring", "grid"):
        raise ValueError(f"sd: only the ring and the grid take a component sd, not {name!r}")
    if sd is not None and not (math.isfinite(sd) and sd > 0):
        raise ValueError(f"sd: must be a positive number, got {sd!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: must be a positive integer, got {n!r}")
    rng = np.random.default_rng(seed)
    if name in ("ring", "grid"):
        centres = _centres(name)
        scale = _SD if sd is None else sd
        return centres[rng.integers(len(centres), size=n)] + scale * rng.normal(size=(n, 2))
    if name == "checkerboard":
        x1 = rng.uniform(-2, 2, n)
        x2 = rng.uniform(0, 1, n) + rng.integers(-2, 2, n) * 1.0
        x2 += (np.floor(x1) + np.floor(x2)) % 2  # onto the square of the same colour
        x2 = np.where(x2 >= 2, x2 - 4, x2)
        return np.stack([x1, x2], -1)
    t, which = rng.uniform(0, np.pi, n), rng.integers(2, size=n)
    return _moon_curves(t)[which, np.arange(n)] + _SD * rng.normal(size=(n, 2))


def _log_normal_2d(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """log N(x_i; c_j, sd^2 I) for every row i and centre j: (n, m)."""
    squared = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    return -0.5 * squared / _SD**2 - math.log(2 * math.pi * _SD**2)


def _logmeanexp(a: np.ndarray, axis: int) -> np.ndarray:
    top = a.max(axis, keepdims=True)
    return (np.log(np.exp(a - top).mean(axis, keepdims=True)) + top).squeeze(axis)


def log_density(name: str, x) -> np.ndarray:
    """The exact log p(x) (nats) of the toy density ``name`` at the rows of x (n, 2)."""
    _check(name)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x: expected shape (n, 2), got {x.shape}")
    if name in ("ring", "grid"):
        return _logmeanexp(_log_normal_2d(x, _centres(name)), 1)
    if name == "checkerboard":
        inside = (np.abs(x) <= 2).all(1) & ((np.floor(x[:, 0]) + np.floor(x[:, 1])) % 2 == 0)
        with np.errstate(divide="ignore"):
            return np.where(inside, -math.log(8.0), -np.inf)
    t = np.linspace(0, np.pi, 2001)
    curves = _moon_curves(t).reshape(-1, 2)  # the two curves, t on a fine grid
    # the mean over t of each curve by the trapezoid rule, then over the two curves
    weights = np.full(len(t), 1.0)
    weights[[0, -1]] = 0.5
    log_w = np.log(weights / weights.sum())
    out = np.empty(len(x))
    for start in range(0, len(x), 1000):  # (1000, 4002) temporaries at a time
        part = _log_normal_2d(x[start : start + 1000], curves).reshape(-1, 2, len(t))
        out[start : start + 1000] = _logmeanexp(np.logaddexp.reduce(part + log_w, axis=-1), 1)
    return out


# The components' sds of the mode-coverage protocol (Metz et al. 2017's ring, radius 2,
# sd 0.02; the 5 x 5 grid, spacing 2, sd 0.05, as VEEGAN's and PacGAN's grids)
MODE_SD = {"ring": 0.02, "grid": 0.05}


def modes(name: str) -> np.ndarray:
    """The component centres of the ring (8, 2) or the grid (25, 2)."""
    if name not in ("ring", "grid"):
        raise ValueError(f"name: only 'ring' and 'grid' have modes, not {name!r}")
    return _centres(name)


def mode_coverage(name: str, samples, sd: float | None = None, min_share: float = 0.2) -> dict:
    """The mode-coverage protocol of the GAN literature (Metz et al. 2017; Srivastava et
    al. 2017, VEEGAN; Lin et al. 2018, PacGAN) on the ring or the grid.

    A sample is *high quality* when it lies within 3 sd of its nearest mode; a mode is
    *captured* when its high-quality samples number at least ``min_share`` of the count
    an even spread would give it (n / modes; 0.2 is PacGAN's 20 of 2,500 samples per
    grid mode). ``sd`` defaults to :data:`MODE_SD`.

    Returns: ``modes`` (captured), ``high_quality`` (share of samples), ``counts`` (high
    quality samples per mode) and ``kl_modes``, the KL divergence of the high-quality
    samples' spread over modes from the uniform one (nats; 0 for an even spread)."""
    centres = modes(name)
    sd = MODE_SD[name] if sd is None else float(sd)
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2 or not len(x):
        raise ValueError(f"samples: expected shape (n, 2) with n > 0, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("samples: contain NaN or infinite values")
    distance = np.sqrt(((x[:, None, :] - centres[None]) ** 2).sum(-1))
    nearest, close = distance.argmin(1), distance.min(1) <= 3 * sd
    counts = np.bincount(nearest[close], minlength=len(centres))
    expected = len(x) / len(centres)
    share = counts / max(counts.sum(), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = float(np.sum(np.where(share > 0, share * np.log(share * len(centres)), 0.0)))
    return {
        "modes": int((counts >= min_share * expected).sum()),
        "high_quality": float(close.mean()),
        "counts": counts,
        "kl_modes": kl if counts.sum() else float("inf"),
    }
