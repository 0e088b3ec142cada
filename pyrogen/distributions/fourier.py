r"""The Fourier basis density (De la Fuente, Singh and Balle, 2024) as a Pyro distribution.

On :math:`u \in [-1, 1]` the density is a trigonometric polynomial of degree N,

.. math::

    f(u) = \sum_{n=-N}^{N} c_n e^{i \pi n u}, \qquad
    c_n = \sum_{k=0}^{N-n} a_k \overline{a_{k+n}}, \quad c_{-n} = \overline{c_n},

whose coefficients are the autocorrelation of N + 1 free complex numbers
:math:`a_k`. Then :math:`f(u) = |\sum_k a_k e^{-i \pi k u}|^2 \ge 0` (the Herglotz /
Fejer-Riesz construction: every non-negative trigonometric polynomial is such a
square modulus), and :math:`\int_{-1}^{1} f = 2 c_0`, so
:math:`p(u) = f(u) / (2 c_0)` is normalized exactly. Writing
:math:`c_n = \alpha_n + i \beta_n`, the CDF integrates term by term:

.. math::

    F(u) = \frac{u + 1}{2} + \frac{1}{c_0} \sum_{n=1}^{N}
    \frac{\alpha_n \sin(\pi n u) + \beta_n (\cos(\pi n u) - (-1)^n)}{\pi n}.

``domain="real"`` maps the real line onto (-1, 1) with
:math:`u = \tanh((x - t) / s)`, so :math:`p(x) = p(u) (1 - u^2) / s` (tails that
decay like :math:`e^{-2|x|/s}` times the density at the ends of the interval);
``domain="interval"`` is the periodic model on :math:`[t - s, t + s]` with
:math:`u = (x - t) / s`.

References:
    De la Fuente, Singh, Balle (2024). Fourier basis density model. Picture Coding
    Symposium. arXiv:2402.15345.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pyro.distributions import TorchDistribution, constraints
from torch.distributions.utils import broadcast_all

from pyrogen.distributions.shapes import broadcast_shapes

__all__ = [
    "FourierSeriesDensity",
    "autocorrelation",
    "levinson_step_up",
    "minimum_phase",
    "reflection_coefficients",
    "relative_coefficients",
]

DOMAINS = ("real", "interval")


def autocorrelation(a: torch.Tensor) -> torch.Tensor:
    """c_n = sum_k a_k conj(a_{k+n}) for n = 0..N, over the last dim of complex ``a``."""
    K = a.shape[-1]
    # correlation by FFT, zero padded so that the circular correlation is the linear one
    spectrum = torch.fft.fft(a, n=2 * K)
    r = torch.fft.ifft(spectrum.abs().square(), n=2 * K)[..., :K]  # sum_k conj(a_k) a_{k+n}
    return r.conj()


def relative_coefficients(real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
    """Complex a (…, N + 1) with a_0 = 1 and a_k = real_k + i imag_k (…, N): fixing a_0
    removes the scale and phase directions that leave the density unchanged."""
    one = torch.ones_like(real[..., :1])
    return torch.complex(torch.cat([one, real], -1), torch.cat([0 * one, imag], -1))


def levinson_step_up(k_re, k_im) -> tuple[list, list]:
    r"""Levinson's step-up recursion, in real arithmetic for any array library.

    Reflection coefficients :math:`\kappa_j` (real parts ``k_re``, imaginary parts
    ``k_im``: sequences of N arrays) -> the real and imaginary parts (lists of N arrays)
    of :math:`a_1 .. a_N` of the polynomial :math:`A(z) = \sum_k a_k z^k` with
    :math:`a_0 = 1`, built order by order as
    :math:`a^{(j)}_i = a^{(j-1)}_i + \kappa_j \overline{a^{(j-1)}_{j-i}}`
    (so :math:`a^{(j)}_j = \kappa_j`). Every :math:`|\kappa_j| < 1` gives an A with
    all roots outside the unit disk, and each such A comes from exactly one set of
    :math:`\kappa` (Schur-Cohn): the minimum-phase factor of a non-negative
    trigonometric polynomial, one per density."""
    p, q = [], []
    for j, (r, s) in enumerate(zip(k_re, k_im)):
        # kappa conj(a_{j-i}) = (r p + s q) + i (s p - r q), for i = 1..j-1
        p, q = (
            [p[i] + r * p[j - 1 - i] + s * q[j - 1 - i] for i in range(j)] + [r],
            [q[i] + s * p[j - 1 - i] - r * q[j - 1 - i] for i in range(j)] + [s],
        )
    return p, q


def reflection_coefficients(a: torch.Tensor) -> torch.Tensor:
    """Levinson's step-down recursion: complex ``a`` (N + 1,) with a_0 = 1 and every root
    of sum_k a_k z^k outside the unit disk -> its reflection coefficients (N,), each of
    modulus below 1 (the inverse of :func:`levinson_step_up`)."""
    a = torch.as_tensor(a).to(torch.complex128)
    _check_finite(a)
    if a.dim() != 1 or a.shape[0] < 1 or not torch.isclose(a[0], a.new_ones(())):
        raise ValueError(f"a: expected complex coefficients (N + 1,) with a_0 = 1, got {a}")
    kappa = []
    for j in range(a.shape[0] - 1, 0, -1):
        k = a[j]
        if not bool(k.abs() < 1):
            raise ValueError(
                "a: a root of sum_k a_k z^k lies on or inside the unit circle "
                f"(|kappa_{j}| = {float(k.abs()):.6g}); pass minimum_phase(a)"
            )
        a = (a[:j] - k * a[1 : j + 1].flip(0).conj()) / (1 - k.abs().square())
        kappa.append(k)
    return torch.stack(kappa[::-1]) if kappa else a.new_zeros(0)


def _check_finite(a: torch.Tensor) -> None:
    """Refuse coefficients ``a`` (complex or real) with a NaN or an infinity."""
    if a.numel() and not bool(torch.isfinite(torch.view_as_real(a) if a.is_complex() else a).all()):
        raise ValueError("a: contains NaN or infinite coefficients")


def minimum_phase(a: torch.Tensor) -> torch.Tensor:
    """The coefficients (…, N + 1) with a_0 = 1 of the same density whose polynomial
    sum_k a_k z^k has every root outside the unit disk: roots inside are reflected to
    1 / conj(root), which changes |A| on the unit circle by a constant factor only.
    Roots on the circle are moved just outside it. Computed in NumPy, no gradient."""
    a = torch.as_tensor(a)
    _check_finite(a)
    flat = a.detach().to(torch.complex128).reshape(-1, a.shape[-1]).cpu().numpy()
    out = np.zeros_like(flat)
    for row, coefficients in enumerate(flat):
        if coefficients[0] == 0:
            raise ValueError("a: a_0 must be non-zero (a root at z = 0 has no reflection)")
        degree = int(np.flatnonzero(coefficients)[-1])
        roots = np.roots(coefficients[: degree + 1][::-1])
        modulus = np.abs(roots)
        inside = modulus < 1
        roots[inside] = 1 / roots[inside].conj()
        on_circle = np.abs(np.abs(roots) - 1) < 1e-12
        roots[on_circle] *= 1 + 1e-12
        rebuilt = np.poly(roots)[::-1] if degree else np.ones(1, complex)
        out[row, : degree + 1] = rebuilt / rebuilt[0]
    result = torch.from_numpy(out).reshape(a.shape).to(a.device)
    return result.to(a.dtype) if a.is_complex() else result


class FourierSeriesDensity(TorchDistribution):
    """A density whose shape is a non-negative Fourier series (see the module notes).

    Arguments:
        a: complex coefficients, shape (..., N + 1); any non-zero scale and global
            phase give the same density. Real tensors are read as real coefficients.
        loc: the offset t of the map to [-1, 1].
        scale: the positive scale s of the map.
        domain: ``"real"`` (tanh map, support the real line) or ``"interval"``
            (periodic density on [loc - scale, loc + scale]).

    ``log_prob``, ``cdf`` and ``icdf`` are exact; ``sample`` inverts the CDF by a
    bracketed Newton iteration. There is no reparameterized sampler.

    Example:
        >>> a = torch.tensor([1.0 + 0j, 0.5 - 0.2j, 0.1j])
        >>> d = FourierSeriesDensity(a, domain="interval")
        >>> grid = torch.linspace(-1, 1, 20001)
        >>> round(torch.trapezoid(d.log_prob(grid).exp(), grid).item(), 6)
        1.0
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = False

    def __init__(self, a, loc=0.0, scale=1.0, *, domain: str = "real", validate_args=None):
        if domain not in DOMAINS:
            raise ValueError(f"domain: must be 'real' or 'interval', got {domain!r}")
        a = torch.as_tensor(a)
        if not a.is_complex():
            if not a.is_floating_point():
                a = a.to(torch.get_default_dtype())
            a = torch.complex(a, torch.zeros_like(a))
        if a.dim() == 0 or a.shape[-1] < 1:
            raise ValueError(f"a: expected shape (..., N + 1), got {tuple(a.shape)}")
        real_dtype = a.real.dtype
        loc, scale = broadcast_all(
            torch.as_tensor(loc, dtype=real_dtype), torch.as_tensor(scale, dtype=real_dtype)
        )
        batch_shape = broadcast_shapes(a.shape[:-1], loc.shape)
        if validate_args is not False and not torch._C._get_tracing_state():
            _check_finite(a)
            if not bool((a.abs().square().sum(-1) > 0).all()):
                raise ValueError("a: every coefficient vector must be non-zero")
        # parameters are kept unexpanded (they broadcast): an expand by a data plate then
        # costs nothing in the forward or backward pass
        self.a, self.loc, self.scale = a, loc, scale
        self.domain = domain
        self.num_frequencies = a.shape[-1] - 1
        super().__init__(batch_shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        if self.domain == "real":
            return constraints.real
        return constraints.interval(self.loc - self.scale, self.loc + self.scale)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self._get_checked_instance(FourierSeriesDensity, _instance)
        broadcast_shapes(batch_shape, self.batch_shape)  # raises if incompatible
        new.a, new.loc, new.scale = self.a, self.loc, self.scale
        new.domain, new.num_frequencies = self.domain, self.num_frequencies
        super(FourierSeriesDensity, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    # -- the series on [-1, 1] -----------------------------------------------------
    @property
    def coefficients(self) -> torch.Tensor:
        """c_0 .. c_N, the autocorrelation of ``a`` (complex, shape (..., N + 1))."""
        return autocorrelation(self.a)

    def _frequencies(self) -> torch.Tensor:
        return torch.arange(self.a.shape[-1], dtype=self.loc.dtype, device=self.loc.device)

    def density_u(self, u: torch.Tensor) -> torch.Tensor:
        """p(u) on [-1, 1]: |sum_k a_k e^{-i pi k u}|^2 / (2 sum_k |a_k|^2)."""
        angle = math.pi * u.unsqueeze(-1) * self._frequencies()
        cos, sin = angle.cos(), angle.sin()
        re, im = self.a.real, self.a.imag
        h_re = (re * cos + im * sin).sum(-1)
        h_im = (im * cos - re * sin).sum(-1)
        norm = 2 * self.a.abs().square().sum(-1)
        return (h_re.square() + h_im.square()) / norm

    def cdf_u(self, u: torch.Tensor) -> torch.Tensor:
        """F(u) on [-1, 1], integrated term by term."""
        c = self.coefficients
        n = self._frequencies()[1:]
        angle = math.pi * u.unsqueeze(-1) * n
        sign = torch.where(n % 2 == 0, 1.0, -1.0).to(n.dtype)
        terms = c[..., 1:].real * angle.sin() + c[..., 1:].imag * (angle.cos() - sign)
        value = 0.5 * (u + 1) + (terms / (math.pi * n)).sum(-1) / c[..., 0].real
        return value.clamp(0.0, 1.0)

    def roughness(self) -> torch.Tensor:
        """The smoothness penalty: the integral of p'(u)^2 over [-1, 1], exactly
        (pi^2 / c_0^2) sum_{n>=1} n^2 |c_n|^2, so frequency n weighs n^2."""
        c = self.coefficients
        n = self._frequencies()[1:]
        return math.pi**2 * (n.square() * c[..., 1:].abs().square()).sum(-1) / c[..., 0].real ** 2

    # -- the map to the data's domain ---------------------------------------------
    def _to_u(self, x):
        if self.domain == "real":
            return torch.tanh((x - self.loc) / self.scale)
        return (x - self.loc) / self.scale

    def _from_u(self, u):
        if self.domain == "real":
            return self.loc + self.scale * torch.atanh(u)
        return self.loc + self.scale * u

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        if self.domain == "real":
            z = (value - self.loc) / self.scale
            u = torch.tanh(z)
            # log(1 - tanh(z)^2) = 2 (log 2 - |z| - softplus(-2|z|)), stable for large |z|
            log_jacobian = 2 * (
                math.log(2.0) - z.abs() - torch.nn.functional.softplus(-2 * z.abs())
            )
            return self.density_u(u).log() + log_jacobian - self.scale.log()
        u = self._to_u(value)
        inside = (u >= -1) & (u <= 1)
        log_density = self.density_u(u.clamp(-1, 1)).log() - self.scale.log()
        return torch.where(inside, log_density, torch.full_like(log_density, -math.inf))

    def cdf(self, value):
        # defined everywhere: 0 below the support, 1 above
        return self.cdf_u(self._to_u(value).clamp(-1.0, 1.0))

    def icdf(self, value, *, tol: float | None = None, max_iter: int = 100):
        """The quantile function, by bracketed Newton iteration on the closed-form CDF."""
        q = torch.as_tensor(value, dtype=self.loc.dtype, device=self.loc.device)
        if not bool(((q >= 0) & (q <= 1)).all()):
            raise ValueError("value: probabilities must lie in [0, 1]")
        u = self._invert_cdf(q, tol=tol, max_iter=max_iter)
        if self.domain == "real":
            u = u.clamp(-1 + torch.finfo(u.dtype).eps, 1 - torch.finfo(u.dtype).eps)
        return self._from_u(u)

    @torch.no_grad()
    def _invert_cdf(self, q: torch.Tensor, *, tol, max_iter: int) -> torch.Tensor:
        tol = tol if tol is not None else 16 * torch.finfo(q.dtype).eps
        shape = broadcast_shapes(q.shape, self.batch_shape)
        q = q.expand(shape)
        lo, hi = torch.full_like(q, -1.0), torch.full_like(q, 1.0)
        u = 2 * q - 1
        for _ in range(max_iter):
            error = self.cdf_u(u) - q
            lo = torch.where(error < 0, u, lo)
            hi = torch.where(error >= 0, u, hi)
            slope = self.density_u(u)
            newton = u - error / slope
            ok = (slope > 0) & (newton > lo) & (newton < hi)
            step = torch.where(ok, newton, 0.5 * (lo + hi))
            if bool(((step - u).abs() <= tol).all()):
                u = step
                break
            u = step
        return u

    def sample(self, sample_shape=()):
        shape = self._extended_shape(torch.Size(sample_shape))
        q = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
        return self.icdf(q)

    @property
    def mean(self):
        raise NotImplementedError("FourierSeriesDensity.mean has no closed form on the real line")

    @property
    def variance(self):
        raise NotImplementedError("FourierSeriesDensity.variance has no closed form")
