"""FourierSeriesDensity against closed forms, quadrature and a second implementation."""

import math

import numpy as np
import pyro
import pytest
import torch
from scipy import stats

from pyrogen.distributions import (
    FourierSeriesDensity,
    autocorrelation,
    levinson_step_up,
    minimum_phase,
    reflection_coefficients,
)


@pytest.fixture
def a():
    g = torch.Generator().manual_seed(0)
    return torch.complex(torch.randn(6, generator=g), torch.randn(6, generator=g))


def _series(a, u):
    """Second implementation: f(u) = sum_{n=-N..N} c_n e^{i pi n u} from a direct
    double loop over the autocorrelation, normalized by 2 c_0."""
    K = len(a)
    c = [sum(a[k] * a[k + n].conj() for k in range(K - n)) for n in range(K)]
    total = c[0].real * torch.ones_like(u)
    for n in range(1, K):
        total = total + 2 * (c[n] * torch.exp(1j * math.pi * n * u)).real
    return total / (2 * c[0].real)


def test_autocorrelation_is_the_direct_sum(a):
    direct = torch.stack([sum(a[k] * a[k + n].conj() for k in range(6 - n)) for n in range(6)])
    torch.testing.assert_close(autocorrelation(a), direct)


def test_density_equals_the_fourier_series(a):
    u = torch.linspace(-1, 1, 1001)
    d = FourierSeriesDensity(a, domain="interval")
    torch.testing.assert_close(d.log_prob(u).exp(), _series(a, u))
    assert bool((_series(a, u) >= 0).all())


@pytest.mark.parametrize("domain, lo, hi", [("interval", -1.7, 2.3), ("real", -80.0, 80.0)])
def test_normalized_and_cdf_matches_quadrature(a, domain, lo, hi):
    d = FourierSeriesDensity(a, loc=0.3, scale=2.0, domain=domain)
    grid = torch.linspace(lo, hi, 400001)
    density = d.log_prob(grid).exp()
    assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, abs=1e-8)
    cumulative = torch.cat([torch.zeros(1), torch.cumulative_trapezoid(density, grid)])
    # trapezoid error on the real line's steeper grid is about 1e-8
    torch.testing.assert_close(d.cdf(grid), cumulative, atol=5e-8, rtol=0)


def test_real_line_jacobian_is_that_of_tanh(a):
    d = FourierSeriesDensity(a, loc=-0.5, scale=1.5)
    x = torch.linspace(-6, 6, 101, requires_grad=True)
    u = torch.tanh((x + 0.5) / 1.5)
    (du_dx,) = torch.autograd.grad(u.sum(), x)
    expected = d.density_u(u.detach()).log() + du_dx.log()
    torch.testing.assert_close(d.log_prob(x.detach()), expected)


def test_scale_and_phase_of_a_leave_the_density_unchanged(a):
    x = torch.linspace(-3, 3, 50)
    rotated = FourierSeriesDensity(3.7 * a * torch.exp(torch.tensor(0.9j)))
    torch.testing.assert_close(rotated.log_prob(x), FourierSeriesDensity(a).log_prob(x))


@pytest.mark.parametrize("domain", ["interval", "real"])
def test_icdf_inverts_the_cdf_and_samples_follow_it(a, domain):
    d = FourierSeriesDensity(a, loc=0.3, scale=2.0, domain=domain)
    q = torch.linspace(1e-6, 1 - 1e-6, 2001)
    torch.testing.assert_close(d.cdf(d.icdf(q)), q, atol=1e-12, rtol=0)
    torch.manual_seed(0)
    draws = d.sample((20000,)).numpy()
    cdf = lambda v: d.cdf(torch.as_tensor(v)).numpy()  # noqa: E731
    assert stats.kstest(draws, cdf).pvalue > 1e-3
    # the same test rejects a shifted sample: it can fail
    assert stats.kstest(draws + 0.1, cdf).pvalue < 1e-6


def test_roughness_is_the_integral_of_the_squared_derivative(a):
    d = FourierSeriesDensity(a, domain="interval")
    u = torch.linspace(-1, 1, 200001, requires_grad=True)
    (slope,) = torch.autograd.grad(d.density_u(u).sum(), u)
    integral = torch.trapezoid(slope.square(), u.detach())
    assert d.roughness().item() == pytest.approx(integral.item(), rel=1e-8)
    # a pure low frequency is smoother than the same weight on a high one
    low = FourierSeriesDensity(torch.tensor([1.0, 0.5, 0.0, 0.0]))
    high = FourierSeriesDensity(torch.tensor([1.0, 0.0, 0.0, 0.5]))
    assert high.roughness() > 8 * low.roughness()


def test_batch_shapes_and_a_pyro_site():
    a = torch.randn(3, 5, dtype=torch.complex128)
    d = FourierSeriesDensity(a, loc=torch.zeros(3), scale=torch.ones(3))
    assert d.batch_shape == (3,)
    assert d.log_prob(torch.randn(7, 3)).shape == (7, 3)
    assert d.sample((4,)).shape == (4, 3)
    assert d.expand((2, 3)).log_prob(torch.zeros(2, 3)).shape == (2, 3)

    def model(x):
        with pyro.plate("data", len(x)):
            pyro.sample("x", FourierSeriesDensity(a[0]), obs=x)

    trace = pyro.poutine.trace(model).get_trace(torch.randn(10))
    assert trace.log_prob_sum().isfinite()


def test_interval_density_is_zero_outside():
    a = torch.tensor([1.0, 0.3])
    d = FourierSeriesDensity(a, loc=1.0, scale=0.5, domain="interval", validate_args=False)
    assert d.log_prob(torch.tensor([0.4, 1.6])).isinf().all()
    assert d.cdf(torch.tensor([-5.0, 5.0])).tolist() == [0.0, 1.0]
    checked = FourierSeriesDensity(a, loc=1.0, scale=0.5, domain="interval", validate_args=True)
    with pytest.raises(ValueError, match="support"):
        checked.log_prob(torch.tensor([0.4]))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="a: contains NaN"):
        FourierSeriesDensity(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="a: every coefficient vector must be non-zero"):
        FourierSeriesDensity(torch.zeros(3))
    with pytest.raises(ValueError, match="domain"):
        FourierSeriesDensity(torch.ones(3), domain="circle")
    with pytest.raises(ValueError, match="scale"):
        FourierSeriesDensity(torch.ones(3), scale=-1.0, validate_args=True)
    with pytest.raises(ValueError, match="value: probabilities"):
        FourierSeriesDensity(torch.ones(3)).icdf(torch.tensor([1.5]))


def _roots(a: torch.Tensor) -> np.ndarray:
    """Roots of sum_k a_k z^k."""
    return np.roots(a.numpy()[::-1])


@pytest.mark.parametrize("order", [1, 2, 5])
def test_levinson_step_up_gives_every_root_outside_the_disk_and_steps_back_down(order):
    g = torch.Generator().manual_seed(order)
    kappa = torch.complex(*torch.randn(2, order, generator=g, dtype=torch.float64))
    kappa = 0.95 * kappa / (1 + kappa.abs())  # inside the unit disk
    re, im = levinson_step_up(list(kappa.real), list(kappa.imag))
    a = torch.cat(
        [torch.ones(1, dtype=kappa.dtype), torch.complex(torch.stack(re), torch.stack(im))]
    )
    assert np.abs(_roots(a)).min() > 1  # minimum phase (Schur-Cohn)
    assert torch.equal(a[-1], kappa[-1])  # a_N is the last reflection coefficient
    torch.testing.assert_close(reflection_coefficients(a), kappa)
    # one reflection coefficient of modulus above 1 puts a root inside the disk
    flipped = kappa.clone()
    flipped[0] = 1 / flipped[0].conj()
    re, im = levinson_step_up(list(flipped.real), list(flipped.imag))
    b = torch.cat(
        [torch.ones(1, dtype=kappa.dtype), torch.complex(torch.stack(re), torch.stack(im))]
    )
    assert np.abs(_roots(b)).min() < 1


def test_minimum_phase_keeps_the_density_and_moves_every_root_outside(a):
    a = a / a[0]
    assert np.abs(_roots(a)).min() < 1  # this draw has roots inside the disk
    m = minimum_phase(a)
    assert np.abs(_roots(m)).min() > 1 and m[0] == 1
    u = torch.linspace(-1, 1, 101, dtype=torch.float64)
    for domain in ("interval", "real"):
        torch.testing.assert_close(
            FourierSeriesDensity(m, domain=domain).log_prob(u),
            FourierSeriesDensity(a, domain=domain).log_prob(u),
        )
    torch.testing.assert_close(minimum_phase(m), m)  # already minimum phase
    # every root reflection of a gives the same minimum-phase coefficients
    roots = _roots(a)
    roots[[0, 2]] = 1 / roots[[0, 2]].conj()
    other = torch.from_numpy(np.poly(roots)[::-1].copy())
    torch.testing.assert_close(minimum_phase(other / other[0]), m)
    # a lower degree (a_N = 0) keeps its trailing zero; batches go row by row
    short = torch.tensor([1, 2.0, 0.0], dtype=torch.complex128)
    torch.testing.assert_close(
        minimum_phase(short), torch.tensor([1, 0.5, 0], dtype=torch.complex128)
    )
    torch.testing.assert_close(minimum_phase(torch.stack([a, m]))[0], m)


def test_reflection_coefficients_refuse_a_root_inside_the_disk():
    with pytest.raises(ValueError, match="a: a root .* inside the unit circle"):
        reflection_coefficients(torch.tensor([1, 2.0], dtype=torch.complex128))
    with pytest.raises(ValueError, match="a: expected complex coefficients"):
        reflection_coefficients(torch.tensor([2, 0.5], dtype=torch.complex128))
    with pytest.raises(ValueError, match="a: a_0 must be non-zero"):
        minimum_phase(torch.tensor([0, 1.0], dtype=torch.complex128))
    nan = torch.tensor([1, float("nan")], dtype=torch.complex128)
    for function in (minimum_phase, reflection_coefficients):
        with pytest.raises(ValueError, match="a: contains NaN or infinite"):
            function(nan)
