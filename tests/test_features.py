"""The feature-space distances: the Frechet distance against its closed form between
Gaussians, and the project's Fashion-MNIST classifier trained, cached and used."""

import numpy as np
import pytest
import torch

from pyrogen import features


def test_frechet_distance_is_the_closed_form_between_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200000, 3))
    shifted = rng.normal(size=(200000, 3)) + [1.0, 2.0, 0.0]
    wider = 2.0 * rng.normal(size=(200000, 3))
    assert features.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert features.frechet_distance(a, shifted) == pytest.approx(5.0, abs=0.05)
    # tr(I + 4I - 2 (4I)^(1/2)) = 3 (1 + 4 - 4)
    assert features.frechet_distance(a, wider) == pytest.approx(3.0, abs=0.05)
    with pytest.raises(ValueError, match="a, b: expected two"):
        features.frechet_distance(a, a[:, :2])


def test_the_fashion_classifier_is_trained_cached_and_separates_images_from_noise(
    tmp_path, monkeypatch, reference_data
):
    from pyrogen import data

    monkeypatch.setenv("PYROGEN_CACHE", str(tmp_path))
    net = features.fashion_classifier(epochs=2, limit=5000)
    assert net.test_accuracy > 0.75  # 5,000 images, two epochs (the default recipe: ~0.91)
    assert len(list(tmp_path.glob("fashion_classifier-*.pt"))) == 1
    again = features.fashion_classifier(epochs=2, limit=5000)  # from the cache
    for p, q in zip(net.parameters(), again.parameters()):
        torch.testing.assert_close(p, q)
    assert again.test_accuracy == net.test_accuracy
    train, _, test = data.fashion_splits((1000, 0, 1000), seed=0)
    close = features.fashion_frechet_distance(train, test, net)
    noise = np.random.default_rng(0).integers(0, 256, size=(1000, 28, 28)).astype(np.uint8)
    assert features.fashion_frechet_distance(noise, test, net) > 20 * close
    shares = features.class_histogram(net, test)
    assert shares.sum() == pytest.approx(1.0) and shares.max() < 0.3  # ten balanced classes
    assert features.features(net, test[:5]).shape == (5, 128)
    with pytest.raises(ValueError, match=r"images: expected \(N, 28, 28\)"):
        features.features(net, np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="images: contain NaN"):
        features.features(net, np.full((2, 28, 28), np.nan))
