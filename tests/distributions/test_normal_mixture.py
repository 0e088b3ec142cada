"""NormalMixture against torch's MixtureSameFamily: densities, CDF, moments and draws."""

import math

import pyro.distributions as dist
import pytest
import torch

from pyrogen.distributions import NormalMixture


def _pair(batch=(3, 4), K=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*batch, K, generator=g, dtype=torch.float64)
    loc = 3 * torch.randn(*batch, K, generator=g, dtype=torch.float64)
    scale = torch.rand(*batch, K, generator=g, dtype=torch.float64) + 0.05
    ours = NormalMixture(logits, loc, scale)
    torch_ = dist.MixtureSameFamily(dist.Categorical(logits=logits), dist.Normal(loc, scale))
    return ours, torch_


def test_log_prob_cdf_and_moments_equal_mixture_same_family():
    ours, theirs = _pair()
    assert ours.batch_shape == theirs.batch_shape == (3, 4) and ours.event_shape == ()
    x = torch.linspace(-8, 8, 41, dtype=torch.float64)[:, None, None].expand(41, 3, 4)
    torch.testing.assert_close(ours.log_prob(x), theirs.log_prob(x))
    torch.testing.assert_close(ours.cdf(x), theirs.cdf(x))
    torch.testing.assert_close(ours.mean, theirs.mean)
    torch.testing.assert_close(ours.variance, theirs.variance)
    # normalized: the density integrates to 1 on a fine grid
    grid = torch.linspace(-30, 30, 60001, dtype=torch.float64)
    density = ours.log_prob(grid[:, None, None]).exp()
    torch.testing.assert_close(
        torch.trapezoid(density, grid, dim=0), torch.ones(3, 4, dtype=torch.float64)
    )


@pytest.mark.parametrize("sample_shape", [(), (7,), (2, 3)])
def test_draw_shapes_and_components(sample_shape):
    """Each draw comes from one component: with scales near zero every draw sits on
    one of its element's means."""
    ours, _ = _pair()
    assert ours.sample(sample_shape).shape == torch.Size(sample_shape) + (3, 4)
    sharp = NormalMixture(ours.logits, ours.loc, torch.full_like(ours.scale, 1e-9))
    draws = sharp.sample(sample_shape)
    gaps = (draws.unsqueeze(-1) - ours.loc).abs().min(-1).values
    assert float(gaps.max()) < 1e-6


def test_draws_follow_the_density_and_expand_shares_parameters():
    ours, _ = _pair(batch=(2,), K=3)
    torch.manual_seed(2)
    draws = ours.sample((40000,))
    se = (ours.variance / len(draws)).sqrt()
    assert bool(((draws.mean(0) - ours.mean).abs() < 4 * se).all())
    # Kolmogorov-Smirnov against the closed-form CDF, per batch element
    for b in range(2):
        sorted_draws = draws[:, b].sort().values
        empirical = torch.arange(1, len(draws) + 1, dtype=torch.float64) / len(draws)
        distance = (ours.cdf(sorted_draws[:, None].expand(-1, 2))[:, b] - empirical).abs().max()
        assert float(distance) < 1.63 / math.sqrt(len(draws))  # the 1% critical value
    ours = NormalMixture(ours.logits[0], ours.loc[0], ours.scale[0])
    wide = ours.expand((6,))
    assert wide.batch_shape == (6,) and wide.sample().shape == (6,)
    torch.testing.assert_close(
        wide.log_prob(torch.zeros(6)), ours.log_prob(torch.zeros(())).expand(6)
    )


def test_validation_names_the_argument():
    with pytest.raises(ValueError, match="scale"):
        NormalMixture(torch.zeros(3), torch.zeros(3), -torch.ones(3), validate_args=True)
    with pytest.raises(ValueError, match="logits: expected components"):
        NormalMixture(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(1.0))
