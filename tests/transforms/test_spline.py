"""The rational-quadratic spline kernel against Pyro's and against its own calculus."""

import math

import pytest
import torch
from pyro.distributions.transforms.spline import _monotonic_rational_spline

from pyrogen.transforms import RQSpline, knot_derivatives, rational_quadratic_spline

BOUND = 2.0


def _parameters(shape, bins=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    w, h = (torch.randn(*shape, bins, generator=generator) for _ in range(2))
    d = torch.randn(*shape, bins - 1, generator=generator)
    return w, h, d


def _inputs(n, dim, seed=1):
    """Points inside, outside, at the ends and (by their density) in every bin."""
    x = 1.3 * BOUND * torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    x[0] = BOUND
    x[1] = -BOUND
    return x


@pytest.mark.parametrize("per_example", [False, True])
def test_the_kernel_is_pyros_quadratic_spline(per_example):
    """A second implementation: Pyro's quadratic-order spline pads the end derivatives
    with 1 - min_derivative after adding min_derivative to the inner ones, so with
    min_derivative = 0 and its inner derivatives given as ours (exp(d)) the two
    splines are the same function."""
    x = _inputs(40, 3)
    w, h, d = _parameters((40, 3) if per_example else (3,))
    ours, ours_logdet = rational_quadratic_spline(x, w, h, d, bound=BOUND, min_derivative=0.0)
    theirs, theirs_logdet = _monotonic_rational_spline(
        x, w.softmax(-1), h.softmax(-1), d.exp(), bound=BOUND, min_derivative=0.0
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours_logdet, theirs_logdet, rtol=1e-10, atol=1e-10)
    back, back_logdet = rational_quadratic_spline(
        theirs, w, h, d, bound=BOUND, inverse=True, min_derivative=0.0
    )
    theirs_back, theirs_back_logdet = _monotonic_rational_spline(
        theirs, w.softmax(-1), h.softmax(-1), d.exp(), inverse=True, bound=BOUND,
        min_derivative=0.0,
    )  # fmt: skip
    torch.testing.assert_close(back, theirs_back, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(back_logdet, theirs_back_logdet, rtol=1e-8, atol=1e-8)


def test_knot_derivatives_are_softly_bounded_and_one_at_zero():
    u = torch.tensor([-1e6, -50.0, -1.0, 0.0, 1.0, 50.0, 1e6])
    d = knot_derivatives(u, 1e-3)
    assert d[3] == 1 and (d.diff() > 0).all()  # 1 at 0, increasing
    assert 1e-3 < d.min() and d.max() < 1e3 and d[0] == pytest.approx(1e-3, rel=1e-4)
    # a = u / (1 + |u| / L), L = log 1000: by hand at u = 1
    assert d[4].item() == pytest.approx(math.exp(1 / (1 + 1 / math.log(1000))), rel=1e-12)
    torch.testing.assert_close(knot_derivatives(u[1:-1], 0.0), u[1:-1].exp())
    # the kernel uses them: the spline's slope at an inner knot is its derivative
    w, h = torch.zeros(2, 1, 4)  # equal bins: an inner knot at 0
    for raw in (-2.0, 0.0, 3.0):
        _, logdet = rational_quadratic_spline(
            torch.zeros(1, 1), w, h, torch.full((1, 3), raw), bound=BOUND
        )
        assert logdet.item() == pytest.approx(knot_derivatives(torch.tensor(raw)).log().item())
    with pytest.raises(ValueError, match="min_derivative: must be in"):
        rational_quadratic_spline(torch.zeros(1, 1), w, h, torch.zeros(1, 3), min_derivative=1.0)
    with pytest.raises(ValueError, match="min_derivative: must be in"):
        knot_derivatives(torch.zeros(3), -1e-3)


def test_the_log_derivative_is_autograds_and_the_inverse_inverts():
    x = _inputs(60, 4).requires_grad_(True)
    w, h, d = _parameters((4,))
    y, logdet = rational_quadratic_spline(x, w, h, d, bound=BOUND)
    (slope,) = torch.autograd.grad(y.sum(), x)  # elementwise: the Jacobian's diagonal
    torch.testing.assert_close(logdet, slope.log(), rtol=1e-10, atol=1e-10)
    back, back_logdet = rational_quadratic_spline(y, w, h, d, bound=BOUND, inverse=True)
    torch.testing.assert_close(back, x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(back_logdet, -logdet, rtol=1e-9, atol=1e-9)
    outside = x.detach().abs() > BOUND
    assert outside.any() and (~outside).any()
    assert torch.equal(y[outside], x[outside]) and torch.equal(logdet[outside], 0 * logdet[outside])


def test_the_spline_is_monotone_continuous_and_meets_the_identity_with_slope_one():
    w, h, d = _parameters((1,), bins=6, seed=3)
    x = torch.linspace(-BOUND - 0.5, BOUND + 0.5, 20001).unsqueeze(-1)
    y, logdet = rational_quadratic_spline(x, w, h, d, bound=BOUND)
    steps = y.diff(dim=0)
    assert (steps > 0).all()
    assert steps.max() < 50 * (x[1] - x[0]).item()  # no jump anywhere, knots included
    # slope exactly 1 at both ends, inside the spline (Durkan et al.'s ends; Pyro's
    # spline has 1 - min_derivative there, a log-slope of -1e-3)
    ends = torch.tensor([[-BOUND], [BOUND]])
    _, at_ends = rational_quadratic_spline(ends, w, h, d, bound=BOUND)
    assert at_ends.abs().max() < 1e-12


def test_gradients_are_finite_everywhere_including_the_tails_and_the_knots():
    w, h, d = (p.requires_grad_(True) for p in _parameters((2,)))
    x = torch.tensor([[-1e4, 1e4], [BOUND, -BOUND], [0.0, 0.3], [3.0, -5.0]], requires_grad=True)
    for inverse in (False, True):
        y, logdet = rational_quadratic_spline(x, w, h, d, bound=BOUND, inverse=inverse)
        grads = torch.autograd.grad((y + logdet).sum(), [x, w, h, d])
        assert all(torch.isfinite(g).all() for g in grads)


def test_a_one_dimensional_spline_flow_integrates_to_one():
    import pyro.distributions as dist

    torch.manual_seed(4)
    layers = [RQSpline(1, count_bins=7, bound=BOUND) for _ in range(2)]
    flow = dist.TransformedDistribution(dist.Normal(torch.zeros(1), torch.ones(1)), layers)
    grid = torch.linspace(-10, 10, 400001).unsqueeze(-1)  # bins as narrow as 1e-3
    with torch.no_grad():
        density = flow.log_prob(grid).exp().squeeze(-1)
    assert abs(torch.trapezoid(density, grid.squeeze(-1)).item() - 1) < 1e-7


def test_an_elementwise_spline_starts_as_the_identity():
    t = RQSpline(3, count_bins=6, bound=BOUND)
    x = 1.5 * torch.randn(10, 3)
    y = t(x)
    torch.testing.assert_close(y, x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        t.log_abs_det_jacobian(x, y), torch.zeros_like(x), atol=1e-12, rtol=0
    )


@pytest.mark.parametrize("name", ["min_bin_width", "min_bin_height"])
def test_bins_that_cannot_fit_are_refused_by_name(name):
    w, h, d = _parameters((2,), bins=8)
    with pytest.raises(ValueError, match=f"{name}: 0.2 is too large for 8 bins"):
        rational_quadratic_spline(torch.zeros(3, 2), w, h, d, **{name: 0.2})
