"""Pictures a person wants after a fit: data with fitted densities, loss curves, image
grids and latent maps."""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "plot_density_2d",
    "plot_density_1d",
    "plot_images",
    "plot_latent_map",
    "plot_losses",
    "save_figure",
]


def _grid(x: np.ndarray, margin: float = 0.15, size: int = 200):
    lo, hi = x.min(0), x.max(0)
    pad = margin * (hi - lo + 1e-12)
    return [np.linspace(l - p, h + p, size) for l, h, p in zip(lo, hi, pad)]


def plot_density_2d(
    log_prob, x, ax=None, columns: tuple[int, int] = (0, 1), labels=None, levels: int = 12
):
    """Scatter of the data with contours of exp(log_prob) over the first two columns."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 4))[1]
    x = np.asarray(x, dtype=float)
    i, j = columns
    gx, gy = _grid(x[:, [i, j]])
    xx, yy = np.meshgrid(gx, gy)
    points = np.tile(x.mean(0), (xx.size, 1))
    points[:, i], points[:, j] = xx.ravel(), yy.ravel()
    with torch.no_grad():
        density = log_prob(torch.as_tensor(points)).exp().cpu().numpy().reshape(xx.shape)
    ax.contour(xx, yy, density, levels=levels, cmap="viridis", linewidths=1)
    ax.scatter(x[:, i], x[:, j], s=6, c="k", alpha=0.5)
    if labels:
        ax.set_xlabel(labels[i])
        ax.set_ylabel(labels[j])
    return ax


def plot_density_1d(log_prob, x, ax=None, bins: int = 40, label: str = "fitted density"):
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    x = np.asarray(x, dtype=float).reshape(-1)
    (grid,) = _grid(x[:, None], size=400)
    with torch.no_grad():
        density = log_prob(torch.as_tensor(grid[:, None])).exp().cpu().numpy()
    ax.hist(x, bins=bins, density=True, color="0.8", label="data")
    ax.plot(grid, density, label=label)
    ax.legend()
    return ax


def plot_losses(losses, ax=None, ylabel: str = "loss"):
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    ax.plot(np.arange(1, len(losses) + 1), losses)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    return ax


def save_figure(figure, path) -> None:
    """Save atomically: a crash never leaves half a PNG."""
    from pyrogen.checkpoint import atomic_write

    atomic_write(
        path, lambda handle: figure.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    )


def plot_images(images, shape, rows: int = 2, title: str | None = None):
    """A grid of images (``rows`` rows), each reshaped to ``shape`` (height, width),
    dark on light as digits are drawn. Returns the figure."""
    import matplotlib.pyplot as plt

    images = np.asarray(images, dtype=float).reshape(-1, *shape)
    cols = int(np.ceil(len(images) / rows))
    figure, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.9), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image in zip(axes.ravel(), images):
        ax.imshow(image, cmap="gray_r", vmin=0, vmax=max(1.0, float(images.max())))
    if title:
        figure.suptitle(title)
    return figure


def plot_latent_map(codes, labels=None, ax=None, title: str = "encoder means"):
    """Codes of examples in 2-D (the first two principal axes when there are more),
    coloured by ``labels`` when given."""
    import matplotlib.pyplot as plt

    codes = np.asarray(codes, dtype=float)
    xlabel, ylabel = "z1", "z2"
    if codes.shape[1] > 2:
        centred = codes - codes.mean(0)
        codes = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
        xlabel, ylabel = "first principal axis of z", "second principal axis of z"
    ax = ax or plt.subplots(figsize=(5, 4.5))[1]
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=3, alpha=0.5)
    else:
        points = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=4, alpha=0.7)
        ax.figure.colorbar(points, ax=ax, label="label")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    return ax
