"""DiagonalNormalMixture against torch's MixtureSameFamily, quadrature and its draws."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrogen.distributions import DiagonalNormalMixture


def _params(k=7, d=5, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    loc = 3 * torch.randn(k, d, generator=g, dtype=dtype)
    scale = torch.exp(torch.randn(k, d, generator=g, dtype=dtype))
    logits = torch.randn(k, generator=g, dtype=dtype)
    return loc, scale, logits


def _reference(loc, scale, logits):
    components = dist.Normal(loc, scale).to_event(1)
    return dist.MixtureSameFamily(dist.Categorical(logits=logits), components)


def test_log_prob_equals_mixture_same_family():
    loc, scale, logits = _params()
    z = 3 * torch.randn(4, 6, 5, dtype=torch.float64)
    ours = DiagonalNormalMixture(loc, scale, logits).log_prob(z)
    assert ours.shape == (4, 6)
    torch.testing.assert_close(ours, _reference(loc, scale, logits).log_prob(z), rtol=0, atol=1e-10)
    # equal weights without logits
    torch.testing.assert_close(
        DiagonalNormalMixture(loc, scale).log_prob(z),
        _reference(loc, scale, torch.zeros(7, dtype=torch.float64)).log_prob(z),
        rtol=0,
        atol=1e-10,
    )


def test_float32_keeps_precision_where_the_expansion_cancels():
    """Posterior-like components: sd 1e-3 of means near 2, points near the means. The
    expanded quadratic form cancels terms of about 4e6; in float64 the float32 result
    is still as accurate as the elementwise float32 route."""
    loc64 = 2 + 0.1 * torch.randn(50, 40, dtype=torch.float64)
    scale64 = torch.full((50, 40), 1e-3, dtype=torch.float64)
    z64 = loc64[:20] + 1e-3 * torch.randn(20, 40, dtype=torch.float64)
    exact = _reference(loc64, scale64, torch.zeros(50, dtype=torch.float64)).log_prob(z64)
    ours = DiagonalNormalMixture(loc64.float(), scale64.float()).log_prob(z64.float())
    assert ours.dtype == torch.float32
    elementwise = _reference(loc64.float(), scale64.float(), torch.zeros(50)).log_prob(z64.float())
    ours_error = (ours.double() - exact).abs().max()
    elementwise_error = (elementwise.double() - exact).abs().max()
    assert ours_error <= max(2 * elementwise_error, 1e-4)


def test_gradients_equal_mixture_same_family():
    loc, scale, logits = (t.requires_grad_() for t in _params(k=4, d=3))
    z = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    ours = torch.autograd.grad(
        DiagonalNormalMixture(loc, scale, logits).log_prob(z).sum(), (loc, scale, logits, z)
    )
    theirs = torch.autograd.grad(
        _reference(loc, scale, logits).log_prob(z).sum(), (loc, scale, logits, z)
    )
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_density_integrates_to_one():
    loc = torch.tensor([[-2.0, 0.5], [1.0, -1.0], [0.0, 2.0]], dtype=torch.float64)
    scale = torch.tensor([[0.5, 1.0], [0.3, 0.7], [1.2, 0.4]], dtype=torch.float64)
    d = DiagonalNormalMixture(loc, scale, torch.tensor([0.0, 1.0, -1.0]))
    grid = torch.linspace(-9, 9, 1201, dtype=torch.float64)
    points = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1)
    mass = torch.trapezoid(torch.trapezoid(d.log_prob(points).exp(), grid), grid)
    assert abs(mass.item() - 1) < 1e-6


def test_draws_match_the_mean_variance_and_component_weights():
    loc, scale, logits = _params(k=3, d=2)
    d = DiagonalNormalMixture(loc, scale, logits)
    reference = _reference(loc, scale, logits)
    torch.testing.assert_close(d.mean, reference.mean)
    torch.testing.assert_close(d.variance, reference.variance)
    torch.manual_seed(0)
    draws = d.sample((200_000,))
    assert draws.shape == (200_000, 2)
    se = (d.variance / 200_000).sqrt()
    assert ((draws.mean(0) - d.mean).abs() < 5 * se).all()
    assert ((draws.var(0) / d.variance - 1).abs() < 0.03).all()
    # the fraction of draws nearest each (well separated) component's mean
    loc = torch.tensor([[-10.0], [0.0], [10.0]], dtype=torch.float64)
    d = DiagonalNormalMixture(loc, torch.ones(3, 1, dtype=torch.float64), logits)
    nearest = (d.sample((60_000,)) - loc.T).abs().argmin(-1)
    share = torch.bincount(nearest, minlength=3) / 60_000
    torch.testing.assert_close(share, torch.softmax(logits, 0), rtol=0, atol=0.01)


def test_plate_expansion_copies_nothing_and_broadcasts():
    loc, scale, _ = _params(k=3, d=2, dtype=torch.float32)
    d = DiagonalNormalMixture(loc, scale)

    def model():
        with pyro.plate("data", 6):
            return pyro.sample("z", d)

    trace = pyro.poutine.trace(model).get_trace()
    site = trace.nodes["z"]
    assert site["fn"].batch_shape == (6,) and site["value"].shape == (6, 2)
    assert site["fn"].loc is loc
    assert site["fn"].log_prob(site["value"]).shape == (6,)
    # one point scored against the whole batch
    assert site["fn"].log_prob(torch.zeros(2)).shape == (6,)
    assert d.sample((4, 5)).shape == (4, 5, 2)


def test_bad_arguments_are_named():
    loc, scale, logits = _params(k=3, d=2)
    with pytest.raises(ValueError, match="loc"):
        DiagonalNormalMixture(torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="scale"):
        DiagonalNormalMixture(loc, torch.ones(4, 2))
    with pytest.raises(ValueError, match="logits"):
        DiagonalNormalMixture(loc, scale, torch.zeros(4))
    with pytest.raises(ValueError, match="scale"):
        DiagonalNormalMixture(loc, -scale, validate_args=True)
    with pytest.raises(ValueError, match="loc"):
        DiagonalNormalMixture(loc.clone().fill_(math.nan), scale, validate_args=True)
    with pytest.raises(ValueError):
        DiagonalNormalMixture(loc, scale, validate_args=True).log_prob(
            torch.tensor([0.0, math.nan])
        )
