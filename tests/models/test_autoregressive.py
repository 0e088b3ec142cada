"""Autoregressive binary models against exact answers: with D = 10 the 1,024 binary
vectors can be enumerated, so normalization (no mask leaks the future), sampling and
the chain rule are checked exactly."""

import itertools

import numpy as np
import pytest
import torch
from pyrogen.models import FVSBN, MADE, NADE, RNADE, PixelCNN

import pyrogen
from pyrogen.metrics import auroc


def _all_binary(d):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)))


def _randomized(model, scale=1.5):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, scale)
    return model.eval()


MODELS = {
    "fvsbn": lambda: FVSBN((10,)),
    "nade": lambda: NADE((10,), hidden=8),
    "made": lambda: MADE((10,), hidden=(16, 16)),
    "made-3-masks": lambda: MADE((10,), hidden=(16, 16), num_masks=3),
    "made-image": lambda: MADE((2, 5), hidden=(12,)),
    "pixelcnn": lambda: PixelCNN((2, 5), channels=8, layers=3, first_kernel=3, kernel=3),
}


@pytest.mark.parametrize("name", MODELS)
def test_probabilities_of_all_binary_vectors_sum_to_one(name):
    model = _randomized(MODELS[name]())
    x = _all_binary(10).reshape(-1, *model.config.data_shape)
    log_p = model.log_prob(x)
    assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(log_p.std()) > 0.5  # far from uniform: the check has teeth


def test_a_leaking_mask_is_caught():
    """The normalization check fails when a conditional may see its own pixel."""
    model = _randomized(FVSBN((10,)))
    model.mask.fill_diagonal_(1.0)  # each pixel's conditional sees the pixel itself
    with torch.no_grad():
        model.weight.diagonal().add_(3.0)
    total = float(model.log_prob(_all_binary(10)).exp().sum())
    assert abs(total - 1.0) > 0.01


@pytest.mark.parametrize("name", ["fvsbn", "nade", "made-3-masks"])
def test_samples_follow_the_model(name):
    model = _randomized(MODELS[name]())
    torch.manual_seed(2)
    small = {"fvsbn": FVSBN((4,)), "nade": NADE((4,), hidden=5)}.get(name)
    if small is None:
        small = MADE((4,), hidden=(8,), num_masks=3)
    model = _randomized(small, scale=1.0)
    draws = model.sample(40000)
    codes = (draws * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(-1).long()
    frequency = torch.bincount(codes, minlength=16).double() / len(draws)
    exact = model.log_prob(_all_binary(4)).exp().double()
    assert float((frequency - exact).abs().max()) < 0.012  # 3 sd of 40,000 draws


def test_fvsbn_is_the_chain_rule_written_out():
    model = _randomized(FVSBN((3,)))
    x = torch.tensor([[1.0, 0.0, 1.0]])
    w, b = (model.weight * model.mask).detach(), model.bias.detach()
    p1 = torch.sigmoid(b[0])
    p2 = torch.sigmoid(b[1] + w[1, 0] * 1.0)
    p3 = torch.sigmoid(b[2] + w[2, 0] * 1.0 + w[2, 1] * 0.0)
    expected = torch.log(p1) + torch.log(1 - p2) + torch.log(p3)
    assert float(model.log_prob(x)[0]) == pytest.approx(float(expected), rel=1e-6)
    assert float(model.bits_per_dim(x)[0]) == pytest.approx(-float(expected) / 3 / np.log(2))


def test_made_orderings_are_respected():
    """Output d's logit does not change when any input at or after d in its ordering
    changes (checked by the Jacobian of every mask set)."""
    model = _randomized(MADE((6,), hidden=(20, 20), num_masks=4))
    for m in range(4):
        model.use_mask(m)
        order = model._order()
        position = torch.empty(6, dtype=torch.long)
        position[order] = torch.arange(6)
        jac = torch.autograd.functional.jacobian(model.logits, torch.rand(1, 6))[0, :, 0]
        allowed = position[None, :] < position[:, None]  # input j precedes output d
        assert float(jac[~allowed].abs().max()) == 0.0
        assert float(jac[allowed].abs().max()) > 0.0


def test_pixelcnn_logits_never_see_the_current_or_later_pixels():
    model = _randomized(PixelCNN((5, 6), channels=8, layers=4, first_kernel=5, kernel=3))
    jac = torch.autograd.functional.jacobian(model.logits, torch.rand(1, 30))[0, :, 0]
    later = torch.ones(30, 30).triu()  # input j at or after output d in raster order
    assert float(jac[later.bool()].abs().max()) == 0.0
    assert float(jac[~later.bool()].abs().max()) > 0.0
    with pytest.raises(ValueError, match="data_shape"):
        PixelCNN((784,))
    with pytest.raises(ValueError, match="kernel: must be odd"):
        PixelCNN((4, 4), kernel=2)


def test_training_on_mnist_raises_the_likelihood(reference_data):
    x = torch.as_tensor(pyrogen.data.load("binarized_mnist", split="train")[:1000]).float()
    test = torch.as_tensor(pyrogen.data.load("binarized_mnist", split="test")[:200]).float()
    # pixels independent, at the training marginals: what a model with no dependence
    # between pixels reaches at best
    p = x.mean(0).clamp(1e-3, 1 - 1e-3)
    independent = float((test * p.log() + (1 - test) * (1 - p).log()).sum(-1).mean())
    for model in (NADE((784,), hidden=50), MADE((784,), hidden=(200,), num_masks=2)):
        before = float(model.log_prob(test).mean())
        fit = pyrogen.fit(model, x, method="mle", batch_size=100, num_epochs=10, lr=1e-2)
        after = float(model.log_prob(test).mean())
        assert np.isfinite(fit.losses).all() and fit.num_steps == 100
        assert before < -400 and after > independent + 20, (model, before, after, independent)
        assert model.sample(2).shape == (2, 784)
    # anomaly scores: digits with 10% of pixels flipped, and digits shifted by 4
    # pixels, are far less likely than clean ones
    flipped = (
        test - (torch.rand(test.shape, generator=torch.Generator().manual_seed(0)) < 0.1).float()
    ).abs()
    shifted = test.reshape(-1, 28, 28).roll(4, dims=2).reshape(-1, 784)
    clean_score = model.anomaly_score(test)
    assert auroc(clean_score, model.anomaly_score(flipped)) > 0.95
    assert auroc(clean_score, model.anomaly_score(shifted)) > 0.7


def test_bad_input_names_the_argument():
    model = NADE((4,), hidden=3)
    with pytest.raises(ValueError, match="x: expected binary"):
        pyrogen.fit(model, np.full((5, 4), 0.5), method="mle", num_steps=1)
    with pytest.raises(ValueError, match="x: contains NaN"):
        pyrogen.fit(model, np.full((5, 4), np.nan), method="mle", num_steps=1)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 4\)"):
        pyrogen.fit(model, np.zeros((5, 3)), method="mle", num_steps=1)
    with pytest.raises(ValueError, match="x: .*empty"):
        pyrogen.fit(model, np.zeros((0, 4)), method="mle", num_steps=1)
    with pytest.raises(ValueError, match="hidden"):
        NADE((4,), hidden=0)
    with pytest.raises(ValueError, match="hidden"):
        MADE((4,), hidden=())
    with pytest.raises(ValueError, match="num_masks"):
        MADE((4,), num_masks=0)
    with pytest.raises(ValueError, match="data_shape"):
        FVSBN((0,))


def test_rnade_density_integrates_to_one_and_its_draws_match_it():
    torch.manual_seed(0)
    model = RNADE((2,), hidden=8, components=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    grid = torch.linspace(-12, 12, 1201)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([xx.ravel(), yy.ravel()], -1)
    density = model.log_prob(points).exp().reshape(1201, 1201)
    assert float(torch.trapezoid(torch.trapezoid(density, grid), grid)) == pytest.approx(
        1.0, abs=1e-4
    )
    mean = (points * density.reshape(-1, 1)).sum(0) * float(grid[1] - grid[0]) ** 2
    draws = model.sample(50000)
    se = draws.std(0) / np.sqrt(len(draws))
    assert torch.all((draws.mean(0) - mean).abs() < 4 * se)


def test_rnade_beats_a_full_covariance_gaussian_on_digits():
    x, _ = pyrogen.data.dequantized_digits(seed=0)
    x = torch.as_tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    train, test = x[:1400], x[1400:]
    gaussian = torch.distributions.MultivariateNormal(
        train.mean(0), torch.cov(train.T) + 1e-4 * torch.eye(64)
    )
    baseline = float(gaussian.log_prob(test).mean())  # measured -72.6
    torch.manual_seed(0)
    model = RNADE((64,), hidden=50, components=5)
    pyrogen.fit(model, train, method="mle", lr=5e-3, batch_size=100, num_epochs=15)
    assert float(model.log_prob(test).mean()) > baseline + 15  # measured -39.5
    with pytest.raises(ValueError, match="x: contains NaN"):
        model.log_prob(torch.full((2, 64), float("nan")))
    with pytest.raises(ValueError, match="components"):
        RNADE((4,), components=0)
