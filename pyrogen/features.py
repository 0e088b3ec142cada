r"""Sample quality in the feature space of the project's own Fashion-MNIST classifier.

The Frechet distance of Heusel et al. (2017) compares two sets of images through the
Gaussians fitted to their features, :math:`\lVert \mu_1 - \mu_2 \rVert^2 +
\mathrm{tr}(\Sigma_1 + \Sigma_2 - 2 (\Sigma_1 \Sigma_2)^{1/2})`. FID uses an Inception
network trained on ImageNet; for 28x28 grey images pyrogen uses a small convolutional
classifier trained on Fashion-MNIST's 50,000 training images (two 3x3 convolutions of
32 and 64 channels with max pooling, a 128-unit layer whose activations are the
features, 10 classes; Adam, 3 epochs), cached after its first training with its test
accuracy (about 0.91). Distances measured with it are comparable with each other, not
with published FIDs.

    net = fashion_classifier()           # trained once, then read from the cache
    net.test_accuracy                     # on the 10,000 test images
    frechet_distance(features(net, a), features(net, b))
    fashion_frechet_distance(samples, test_images)
    precision_recall(features(net, test_images), features(net, samples))

Precision and recall of a generative model (Kynkaanniemi et al. 2019, "Improved
precision and recall metric for assessing generative models"): each set's manifold is
the union of balls around its points reaching their k-th nearest neighbour in the set
(k = 3); precision is the share of generated samples inside the real manifold
(fidelity), recall the share of real samples inside the generated one (coverage).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pyrogen.checkpoint import atomic_write

__all__ = [
    "FashionClassifier",
    "class_histogram",
    "fashion_classifier",
    "fashion_frechet_distance",
    "features",
    "frechet_distance",
    "precision_recall",
]

VERSION = 1  # bump when the architecture or the training recipe changes


class FashionClassifier(nn.Module):
    """28x28 grey images in [0, 1] (N, 1, 28, 28) -> 10 logits; ``features`` the
    128-unit layer."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 128),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, 10)
        self.register_buffer("test_accuracy_", torch.tensor(float("nan")))

    @property
    def test_accuracy(self) -> float:
        return float(self.test_accuracy_)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _as_images(images) -> torch.Tensor:
    """uint8 levels (N, 28, 28) or floats in [0, 1] (N, [1,] 28, 28) -> float (N, 1, 28, 28)."""
    x = torch.as_tensor(np.asarray(images))
    if x.dtype == torch.uint8:
        x = x.float() / 255
    x = x.float()
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"images: expected (N, 28, 28) or (N, 1, 28, 28), got {tuple(x.shape)}")
    if len(x) == 0:
        raise ValueError("images: empty")
    if not torch.isfinite(x).all():
        raise ValueError("images: contain NaN or infinite values")
    return x


def _train(net: FashionClassifier, epochs: int, seed: int, limit: int | None) -> None:
    from pyrogen import data

    images, labels = data.load("fashion_mnist", "train")
    generator = torch.Generator().manual_seed(seed)
    if limit is not None:
        keep = torch.randperm(len(images), generator=generator)[:limit].numpy()
        images, labels = images[keep], labels[keep]
    x, y = _as_images(images), torch.as_tensor(np.asarray(labels), dtype=torch.long)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 128):
            batch = order[start : start + 128]
            loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    test_images, test_labels = data.load("fashion_mnist", "test")
    predicted = _batched(net, _as_images(test_images)).argmax(1)
    accuracy = (predicted == torch.as_tensor(np.asarray(test_labels))).double().mean()
    net.test_accuracy_.fill_(float(accuracy))


def _batched(net, x: torch.Tensor, fn=None, size: int = 1000) -> torch.Tensor:
    fn = fn or net
    reference = next(net.parameters())
    with torch.no_grad():
        return torch.cat([fn(x[i : i + size].to(reference)).cpu() for i in range(0, len(x), size)])


def fashion_classifier(
    epochs: int = 3, seed: int = 0, limit: int | None = None, cache: bool = True
) -> FashionClassifier:
    """The classifier behind the feature-space distances: read from pyrogen's cache
    (``PYROGEN_CACHE``), else trained (about a minute on two CPU cores) and written
    there atomically. ``limit`` trains on that many images (tests)."""
    from pyrogen.data import cache_dir

    path = cache_dir() / f"fashion_classifier-v{VERSION}-e{epochs}-s{seed}-n{limit}.pt"
    net = FashionClassifier().float()  # float32 whatever torch's default dtype
    if cache and path.is_file():
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return net.eval()
    torch_seed = torch.initial_seed()
    torch.manual_seed(seed)
    try:
        _train(net, epochs, seed, limit)
    finally:
        torch.manual_seed(torch_seed)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda handle: torch.save(net.state_dict(), handle))
    return net


def features(net: FashionClassifier, images) -> torch.Tensor:
    """The classifier's 128 features of each image (N, 128), float64."""
    return _batched(net, _as_images(images), net.features).double()


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Frechet distance between Gaussians fitted to two feature sets (N, F), (M, F)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"a, b: expected two (N, F) feature sets, got {a.shape} and {b.shape}")
    mean = a.mean(0) - b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr (S_a S_b)^(1/2) = tr (S_a^(1/2) S_b S_a^(1/2))^(1/2), from symmetric
    # eigendecompositions: exact for singular covariances (features that never fire)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    inner = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    return float(
        mean @ mean + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(inner.clip(min=0)).sum()
    )


def fashion_frechet_distance(images, reference, net: FashionClassifier | None = None) -> float:
    """The Frechet distance between two sets of 28x28 images in the classifier's
    feature space (``net``: :func:`fashion_classifier` by default)."""
    net = net or fashion_classifier()
    return frechet_distance(features(net, images), features(net, reference))


def class_histogram(net: FashionClassifier, images) -> np.ndarray:
    """The share of images the classifier puts in each of the 10 classes (mode
    coverage by label)."""
    predicted = _batched(net, _as_images(images)).argmax(1)
    return np.bincount(predicted.numpy(), minlength=10) / len(predicted)


def _knn_radii(a: torch.Tensor, k: int) -> torch.Tensor:
    """Each row's distance to its k-th nearest other row of ``a``."""
    distance = torch.cdist(a, a)
    return distance.kthvalue(k + 1, dim=1).values  # the 0th is the row itself


def _inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Whether each point lies in some ball (centre, radius); in blocks of 1,000 rows."""
    out = []
    for block in points.split(1000):
        out.append((torch.cdist(block, centres) <= radii).any(1))
    return torch.cat(out)


def precision_recall(real, generated, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of ``generated`` against ``real`` feature sets (N, F), (M, F)
    by the k-nearest-neighbour manifolds of Kynkaanniemi et al. (2019)."""
    real = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    generated = torch.as_tensor(np.asarray(generated), dtype=torch.float64)
    if real.dim() != 2 or generated.dim() != 2 or real.shape[1] != generated.shape[1]:
        raise ValueError(
            f"real, generated: expected two (N, F) feature sets, got {tuple(real.shape)} and "
            f"{tuple(generated.shape)}"
        )
    if min(len(real), len(generated)) <= k:
        raise ValueError(f"k: each set needs more than k = {k} points")
    for name, values in (("real", real), ("generated", generated)):
        if not torch.isfinite(values).all():
            raise ValueError(f"{name}: contains NaN or infinite features")
    precision = _inside(generated, real, _knn_radii(real, k)).double().mean().item()
    recall = _inside(real, generated, _knn_radii(generated, k)).double().mean().item()
    return precision, recall
