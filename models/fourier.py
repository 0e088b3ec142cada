r"""One-dimensional densities: the Fourier basis density, and a deep factorized baseline.

**Fourier basis density** (De la Fuente, Singh and Balle, 2024). With
:math:`u = \tanh((x - t)/s)` on the real line (or :math:`u = (x - t)/s` on an
interval) and complex coefficients :math:`a_0 = 1, a_k = b_k` (k = 1..N),

.. math::

    p(u) = \frac{|\sum_{k=0}^{N} a_k e^{-i\pi k u}|^2}{2 \sum_k |a_k|^2}, \qquad
    p(x) = p(u) \left|\frac{du}{dx}\right|,

a trigonometric polynomial of degree N that is non-negative by construction and
normalized exactly (see :class:`pyrogen.distributions.FourierSeriesDensity`).
Fixing :math:`a_0 = 1` removes the two directions (overall scale and global phase)
that leave the density unchanged, so the model has exactly 2N shape parameters
(plus t and s). Three treatments of the coefficients :math:`b \in \mathbb{R}^{N
\times 2}` (real and imaginary parts):

- maximum likelihood (``prior=None``): b, t, s are parameters, ``method="mle"``;
- MAP / SVI / NUTS with a prior that shrinks high frequencies
  (``FourierPrior(scale=sigma, decay=gamma)``); t and s stay parameters (fitted
  jointly under MAP/SVI, held at their current values by NUTS);
- :func:`fourier_density_bayes`: the fully Bayesian model on [-1, 1] written against
  pyro-api, so that Pyro NUTS and NumPyro NUTS can be run on the very same function.

The coefficients b themselves are not identified: reflecting a root of the polynomial
:math:`A(z) = \sum_k a_k z^k` through the unit circle (r to :math:`1/\bar r`) gives
another b with the same density, so a posterior over b has up to :math:`2^N` modes of
different prior mass, which NUTS chains do not cross evenly. The default
``parametrization="reflection"`` removes them: the site ``reflection`` holds
unconstrained :math:`v_k \in \mathbb{R}^2`, mapped to reflection coefficients
:math:`\kappa_k = v_k / \sqrt{1 + |v_k|^2}` inside the unit disk and by Levinson's
step-up recursion to the unique minimum-phase A (every root outside the unit disk,
:math:`a_0 = 1`, :math:`a_N = \kappa_N`) of each density
(:func:`reflection_to_coefficients`), so v is identified and the density is a smooth
one-to-one function of it. The prior is
:math:`v_{k} \sim \mathcal{N}(0, (\sigma / k^{\gamma})^2)` per real and imaginary
part, which shrinks the high-order reflection coefficients towards zero (and with
them the high frequencies). ``parametrization="coefficients"`` puts that prior on b
instead (the raw, non-identified coordinates); its posteriors are compared on
:func:`normalized_autocorrelation`, :math:`c_n / c_0`, which determines the density.
Either way b is kept as the site ``coefficients`` (a deterministic site under
``"reflection"``).

A smoothness penalty ``smoothness * N * roughness`` (the exact integral of
:math:`p'(u)^2`, which weighs frequency n by :math:`n^2`) can be added to the
model as a factor; it tames the Gibbs ringing of high-degree fits.

**Deep factorized density** (Balle, Minnen, Singh, Hwang and Johnston, 2018, appendix
6.1): the CDF is a monotone network
:math:`c = \sigma \circ g_K \circ \dots \circ g_1`, each
:math:`g_k(v) = h_k(H_k v + b_k)` with positive matrices (softplus) and
:math:`h_k(z) = z + \tanh(\alpha_k) \odot \tanh(z)`, and the density is its
derivative, carried through the layers by the chain rule.

References:
    De la Fuente, Singh, Balle (2024). Fourier basis density model. arXiv:2402.15345.

    Balle, Minnen, Singh, Hwang, Johnston (2018). Variational image compression with a
    scale hyperprior. ICLR.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyroapi import distributions as api_dist
from pyroapi import ops
from pyroapi import pyro as api_pyro
from torch import nn

from pyrogen.chunks import map_chunks
from pyrogen.distributions import (
    FourierSeriesDensity,
    NetworkDistribution,
    autocorrelation,
    levinson_step_up,
    minimum_phase,
    reflection_coefficients,
    relative_coefficients,
)
from pyrogen.infer.fast_elbo import module
from pyrogen.validation import (
    as_data_tensor,
    check_choice,
    check_positive_int,
    check_positive_number,
)
from pyrogen.zoo import DensityModel, ZooModel, register

__all__ = [
    "DeepFactorizedDensity",
    "FourierDensity",
    "FourierPrior",
    "fourier_density_bayes",
    "coefficients_to_reflection",
    "normalized_autocorrelation",
    "reflection_to_coefficients",
]

PARAMETRIZATIONS = ("reflection", "coefficients")


def _as_1d(value, name: str = "x") -> torch.Tensor:
    x = as_data_tensor(value, name, ndim=(1, 2))
    if x.dim() == 2:
        if x.shape[1] != 1:
            raise ValueError(f"{name}: expected one column of values, got shape {tuple(x.shape)}")
        x = x[:, 0]
    return x


def _robust_location_scale(x: torch.Tensor) -> tuple[float, float]:
    """Median, and the inter-quartile range (a floor of the sd when it is zero)."""
    x = x.double()
    q1, median, q3 = torch.quantile(
        x, torch.tensor([0.25, 0.5, 0.75], dtype=x.dtype, device=x.device)
    )
    spread = float(q3 - q1)
    if not spread > 0:
        spread = float(x.std()) if len(x) > 1 and float(x.std()) > 0 else 1.0
    return float(median), spread


# -- the Fourier basis density -------------------------------------------------------


@dataclass
class FourierPrior:
    """Normal(0, (scale / k**decay)^2) on the real and imaginary part of order k's
    parameter: high frequencies shrink to zero. ``parametrization="reflection"`` (the
    default) puts it on the unconstrained reflection parameters v_k, which are
    identified; ``"coefficients"`` on b_k, a_k relative to a_0 = 1, which are not
    (see the module notes)."""

    scale: float = 1.0
    decay: float = 1.0
    parametrization: str = "reflection"

    def sds(self, num_frequencies: int, dtype=None, device=None) -> torch.Tensor:
        k = torch.arange(1, num_frequencies + 1, dtype=dtype, device=device)
        return self.scale / k**self.decay


def coefficients_to_a(b: torch.Tensor) -> torch.Tensor:
    """(…, N, 2) real and imaginary parts relative to a_0 = 1 -> complex a (…, N + 1)."""
    return relative_coefficients(b[..., 0], b[..., 1])


def reflection_to_coefficients(v):
    """Unconstrained reflection parameters v (…, N, 2) -> b (…, N, 2), the real and
    imaginary parts of the minimum-phase a_1..a_N (a_0 = 1): kappa = v / sqrt(1 + |v|^2)
    lies inside the unit disk, then Levinson's step-up recursion. Plain arithmetic and
    ``pyroapi.ops``, so it runs on torch and (under NumPyro) jax arrays alike."""
    N = v.shape[-2]
    shrink = (1.0 + (v * v).sum(-1)) ** -0.5  # (…, N)
    p, q = levinson_step_up(
        [v[..., j, 0] * shrink[..., j] for j in range(N)],
        [v[..., j, 1] * shrink[..., j] for j in range(N)],
    )
    return ops.stack([ops.stack(p, -1), ops.stack(q, -1)], -1)


def coefficients_to_reflection(b) -> torch.Tensor:
    """b (…, N, 2) -> the v (…, N, 2) of the same density (the inverse of
    :func:`reflection_to_coefficients` on minimum-phase b; other b are first mapped to
    the minimum-phase coefficients of their density)."""
    b = torch.as_tensor(b)
    a = minimum_phase(coefficients_to_a(b.to(torch.float64)))
    flat = a.reshape(-1, a.shape[-1])
    kappa = torch.stack([reflection_coefficients(row) for row in flat]).reshape(
        a.shape[:-1] + (-1,)
    )
    v = kappa / (1 - kappa.abs().square()).clamp(min=1e-24).sqrt()
    return torch.stack([v.real, v.imag], -1).to(b.dtype if b.is_floating_point() else torch.float64)


def normalized_autocorrelation(b) -> np.ndarray | torch.Tensor:
    """c_n / c_0 for n = 1..N as (…, N, 2) real and imaginary parts: the identified
    summary of coefficient draws ``b`` (…, N, 2) (it determines the density)."""

    as_numpy = not isinstance(b, torch.Tensor)
    tensor = torch.as_tensor(np.array(b, dtype=np.float64) if as_numpy else b, dtype=torch.float64)
    c = autocorrelation(coefficients_to_a(tensor))
    ratio = c[..., 1:] / c[..., :1].real
    out = torch.stack([ratio.real, ratio.imag], -1)
    return out.numpy() if as_numpy else out


@register("fourier")
class FourierDensity(ZooModel):
    """The Fourier basis density model for 1-D data (see the module notes).

    Arguments:
        num_frequencies: N, the degree of the series (2N shape parameters).
        domain: ``"real"`` (the tanh map with learned offset and scale) or
            ``"interval"`` (a periodic density on ``bounds``).
        bounds: the interval for ``domain="interval"``.
        prior: ``None`` (maximum likelihood, ``method="mle"``) or a
            :class:`FourierPrior` (``method="map"``, ``"svi"`` or ``"nuts"``).
        smoothness: weight of the roughness penalty (0 for none).

    Sites: with a prior, ``reflection`` (N, 2) (the identified parameters; b is the
    deterministic site ``coefficients``) or, under
    ``FourierPrior(parametrization="coefficients")``, ``coefficients`` (N, 2); ``obs``
    (n,); the penalty is the factor ``smoothness``. The fitted b (every NUTS draw) is
    kept in ``coefficient_draws`` either way.

    Example:
        >>> import torch, pyrogen
        >>> x = torch.randn(500, dtype=torch.float64)
        >>> m = FourierDensity(6)
        >>> fit = pyrogen.fit(m, x, method="mle", num_steps=300, lr=0.05, progress=False)
        >>> m.sample(4).shape
        torch.Size([4])
    """

    jit_safe = True
    # pyrogen fit fourier: one column of a table, N = 8 unless told
    cli_data, cli_report, cli_method = "column", "fourier", "mle"
    cli_defaults, cli_aliases = {"num_frequencies": 8}, {"frequencies": "num_frequencies"}
    cli_fit = {"num_steps": 3000}

    @classmethod
    def cli_config(cls, options, data, method: str) -> dict:
        """MAP, SVI and NUTS need the prior; maximum likelihood has none."""
        return {} if method == "mle" else {"prior": FourierPrior()}

    def __init__(
        self,
        num_frequencies: int,
        domain: str = "real",
        bounds: tuple[float, float] | list[float] = (-1.0, 1.0),
        prior: FourierPrior | dict | None = None,
        smoothness: float = 0.0,
    ):
        super().__init__()
        check_positive_int(num_frequencies, "num_frequencies")
        check_choice(domain, "domain", ("real", "interval"))
        bounds = tuple(float(b) for b in bounds)
        if len(bounds) != 2 or not all(map(math.isfinite, bounds)) or not bounds[0] < bounds[1]:
            raise ValueError(f"bounds: expected finite (low, high) with low < high, got {bounds}")
        if isinstance(prior, FourierPrior):
            prior = asdict(prior)
        elif prior is not None:
            prior = asdict(FourierPrior(**prior))
        if prior is not None:
            check_positive_number(prior["scale"], "prior.scale")
            check_positive_number(prior["decay"], "prior.decay", allow_zero=True)
            check_choice(prior["parametrization"], "prior.parametrization", PARAMETRIZATIONS)
        smoothness = check_positive_number(smoothness, "smoothness", allow_zero=True)
        self.normalize(bounds=bounds, prior=prior, smoothness=smoothness)
        N, dtype = num_frequencies, torch.float64
        self.register_buffer("fitted", torch.tensor(False))
        if prior is None:
            self.coefficients = nn.Parameter(torch.zeros(N, 2, dtype=dtype))
        else:
            self.register_buffer("coefficient_draws", torch.zeros(1, N, 2, dtype=dtype))
        centre, half = (bounds[0] + bounds[1]) / 2, (bounds[1] - bounds[0]) / 2
        if domain == "real":
            self.loc = nn.Parameter(torch.tensor(0.0, dtype=dtype))
            self.log_scale = nn.Parameter(torch.tensor(0.0, dtype=dtype))
        else:
            self.register_buffer("loc", torch.tensor(centre, dtype=dtype))
            self.register_buffer("log_scale", torch.tensor(math.log(half), dtype=dtype))

    # -- surface ---------------------------------------------------------------------
    @property
    def prior(self) -> FourierPrior | None:
        return None if self.config.prior is None else FourierPrior(**self.config.prior)

    @property
    def default_method(self) -> str:
        return "mle" if self.prior is None else "map"

    @property
    def num_parameters(self) -> int:
        """2N shape parameters, plus offset and scale on the real line."""
        return 2 * self.config.num_frequencies + (2 if self.config.domain == "real" else 0)

    def prepare(self, *data) -> tuple:
        if len(data) != 1:
            raise TypeError(f"FourierDensity takes one data array x, got {len(data)} arguments")
        x = _as_1d(data[0]).to(self.loc.dtype).to(self.loc.device)
        if self.config.domain == "interval":
            low, high = self.config.bounds
            outside = (x < low) | (x > high)
            if bool(outside.any()):
                index = int(outside.nonzero()[0, 0])
                raise ValueError(
                    f"x: value {float(x[index])} at index {index} lies outside bounds "
                    f"[{low}, {high}] of the interval domain"
                )
        return (x,)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """A start near the data: on the real line the offset at the median and the
        scale matching the inter-quartile range (the start p(u) is uniform, p(x) a
        logistic density); the coefficients at zero."""
        if self.config.domain == "real":
            median, iqr = _robust_location_scale(_as_1d(x))
            self.loc.fill_(median)
            self.log_scale.fill_(math.log(iqr / math.log(3.0)))

    @property
    def _site(self) -> str:
        """The prior's sample site, named by its parametrization: ``reflection`` or
        ``coefficients``."""
        return self.prior.parametrization

    def _coefficients_of(self, values: dict) -> torch.Tensor | None:
        """b from a dict of site values (draws or point values), or None."""
        if "coefficients" in values:
            return torch.as_tensor(np.asarray(values["coefficients"]), dtype=self.loc.dtype)
        if "reflection" in values:
            v = torch.as_tensor(np.asarray(values["reflection"]), dtype=self.loc.dtype)
            return reflection_to_coefficients(v)
        return None

    def point_values(self) -> dict[str, torch.Tensor]:
        if self.prior is None:
            return {}
        b = self.coefficient_draws[0].clone()
        return {self._site: coefficients_to_reflection(b) if self._site == "reflection" else b}

    def absorb(self, values: dict[str, torch.Tensor]) -> None:
        """Keep MAP/SVI point estimates, or every NUTS draw (the posterior predictive),
        as coefficients b."""
        b = None if self.prior is None else self._coefficients_of(values)
        if b is not None:
            self.coefficient_draws = (b if b.dim() == 3 else b[None]).to(self.loc.device).clone()
        self.fitted.fill_(True)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        if "coefficient_draws" in state_dict and self.prior is not None:
            self.coefficient_draws = torch.empty_like(state_dict["coefficient_draws"])
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # -- the Pyro model ----------------------------------------------------------------
    def distribution(self, b: torch.Tensor | None = None) -> FourierSeriesDensity:
        """The density for coefficients ``b`` (…, N, 2) (default: the fitted ones)."""
        if b is None:
            b = self.coefficients if self.prior is None else self.coefficient_draws
        return FourierSeriesDensity(
            coefficients_to_a(b),
            self.loc,
            self.log_scale.exp(),
            domain=self.config.domain,
            validate_args=False,
        )

    def model(self, x: torch.Tensor) -> None:
        """x with shape (n,)."""
        module("fourier", self)
        if self.prior is None:
            b = self.coefficients
        else:
            sds = self.prior.sds(self.config.num_frequencies, x.dtype, x.device)
            prior = dist.Normal(0.0, sds[:, None].expand(-1, 2)).to_event(2)
            if self._site == "reflection":
                v = pyro.sample("reflection", prior)
                b = pyro.deterministic("coefficients", reflection_to_coefficients(v), 2)
            else:
                b = pyro.sample("coefficients", prior)
        density = self.distribution(b)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("obs", density, obs=x)
        if self.config.smoothness > 0:
            pyro.factor("smoothness", -self.config.smoothness * x.shape[0] * density.roughness())

    def check_nuts(self) -> None:
        if self.prior is None:
            raise ValueError("prior: method='nuts' needs a prior; pass prior=FourierPrior()")

    # -- densities ---------------------------------------------------------------------
    def log_prob(self, x) -> torch.Tensor:
        """log p(x_n) in nats, shape (n,); after NUTS the posterior predictive
        log mean_s p(x_n | b_s)."""
        x = _as_1d(x).to(self.loc.dtype).to(self.loc.device)
        with torch.no_grad():
            if self.prior is None:
                return self.distribution().log_prob(x)
            draws = self.coefficient_draws
            total = map_chunks(
                lambda d: self.distribution(d[:, None]).log_prob(x),
                draws,
                x.numel() * (self.config.num_frequencies + 1),
                budget=2**22,
            )
            return total.logsumexp(0) - math.log(len(draws))

    def cdf(self, x) -> torch.Tensor:
        x = _as_1d(x).to(self.loc.dtype).to(self.loc.device)
        with torch.no_grad():
            if self.prior is None:
                return self.distribution().cdf(x)
            return self.distribution(self.coefficient_draws[:, None]).cdf(x).mean(0)

    def sample(self, n: int) -> torch.Tensor:
        """n draws (after NUTS: from the posterior predictive), shape (n,)."""
        check_positive_int(n, "n")
        with torch.no_grad():
            if self.prior is None:
                return self.distribution().sample((n,))
            which = torch.randint(len(self.coefficient_draws), (n,))
            return self.distribution(self.coefficient_draws[which]).sample()

    def pointwise_log_likelihood(self, draws: dict, x: torch.Tensor) -> dict[str, np.ndarray]:
        """log p(x_n | draw s) for ArviZ, shape (S, n)."""
        with torch.no_grad():
            b = None if self.prior is None else self._coefficients_of(draws)
            if b is None:
                return {"obs": self.distribution().log_prob(x)[None].cpu().numpy()}
            b = b.to(device=x.device, dtype=x.dtype)
            return {"obs": self.distribution(b[:, None]).log_prob(x).cpu().numpy()}


def fourier_density_bayes(
    x,
    num_frequencies: int = 4,
    prior_scale: float = 1.0,
    decay: float = 1.0,
    parametrization: str = "reflection",
):
    """The fully Bayesian Fourier density on [-1, 1], in pyro-api (Pyro and NumPyro).

    Normal(0, prior_scale / k**decay) on the real and imaginary part of order k's
    parameter: the identified reflection parameters ``reflection`` (N, 2), with b the
    deterministic site ``coefficients`` (``parametrization="reflection"``, the default),
    or b itself, a_k relative to a_0 = 1 (``"coefficients"``: not identified; compare
    its posteriors on :func:`normalized_autocorrelation`). Each x_n in [-1, 1] has
    density |sum_k a_k e^{-i pi k x}|^2 / (2 sum_k |a_k|^2), a factor inside the data
    plate (so pointwise log-likelihoods exist for ArviZ).

    Arguments:
        x: observations in [-1, 1], shape (n,).
    """
    check_choice(parametrization, "parametrization", PARAMETRIZATIONS)
    k = ops.arange(1, num_frequencies + 1) * 1.0
    sds = prior_scale / k**decay
    prior = api_dist.Normal(0.0, ops.stack([sds, sds], -1)).to_event(2)
    if parametrization == "reflection":
        v = api_pyro.sample("reflection", prior)
        b = api_pyro.deterministic("coefficients", reflection_to_coefficients(v))
    else:
        b = api_pyro.sample("coefficients", prior)
    angle = math.pi * x[..., None] * k  # (n, N)
    cos, sin = ops.cos(angle), ops.sin(angle)
    h_re = 1.0 + (b[..., 0] * cos + b[..., 1] * sin).sum(-1)
    h_im = (b[..., 1] * cos - b[..., 0] * sin).sum(-1)
    norm = 2.0 * (1.0 + (b * b).sum((-1, -2)))
    with api_pyro.plate("data", x.shape[0]):
        api_pyro.factor("obs", ops.log(h_re * h_re + h_im * h_im) - ops.log(norm))


# -- the deep factorized baseline -------------------------------------------------------


@register("deep-factorized")
class DeepFactorizedDensity(DensityModel):
    """The deep factorized density of Balle et al. (2018), a monotone-network CDF.

    Arguments:
        num_units: hidden widths; ``(3, 3, 3)`` is the paper's, 43 parameters.
        init_scale: the initial density is spread over about ``init_scale``
            inter-quartile ranges of the data (inputs are standardized, so 1 is the
            natural start; the reference implementation's 10 suits unscaled inputs).

    Fitted by maximum likelihood (``method="mle"``); inputs are standardized by the
    median and inter-quartile range seen at ``initialize``.
    """

    jit_safe = True
    cli_data = "column"
    site = "obs"
    module_name = "deep_factorized"

    def __init__(self, num_units: tuple[int, ...] | list[int] = (3, 3, 3), init_scale=1.0):
        super().__init__()
        num_units = tuple(num_units)
        for i, width in enumerate(num_units):
            check_positive_int(width, f"num_units[{i}]")
        init_scale = check_positive_number(init_scale, "init_scale")
        self.normalize(num_units=num_units, init_scale=init_scale)
        widths = (1, *num_units, 1)
        scale = init_scale ** (1 / (len(widths) - 1))
        dtype = torch.float64
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        generator = torch.Generator().manual_seed(0)
        for i in range(len(widths) - 1):
            start = math.log(math.expm1(1 / scale / widths[i + 1]))
            self.matrices.append(
                nn.Parameter(torch.full((widths[i + 1], widths[i]), start, dtype=dtype))
            )
            bias = torch.rand(widths[i + 1], generator=generator, dtype=dtype) - 0.5
            self.biases.append(nn.Parameter(bias))
            if i < len(widths) - 2:
                self.factors.append(nn.Parameter(torch.zeros(widths[i + 1], dtype=dtype)))
        self.register_buffer("shift", torch.tensor(0.0, dtype=dtype))
        self.register_buffer("spread", torch.tensor(1.0, dtype=dtype))
        self.register_buffer("fitted", torch.tensor(False))

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def prepare(self, *data) -> tuple:
        if len(data) != 1:
            raise TypeError(f"DeepFactorizedDensity takes one data array x, got {len(data)}")
        return (_as_1d(data[0]).to(self.shift.dtype).to(self.shift.device),)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        median, iqr = _robust_location_scale(_as_1d(x))
        self.shift.fill_(median)
        self.spread.fill_(iqr)

    def _logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The CDF's logit and the log of its derivative in x, elementwise."""
        v = ((x - self.shift) / self.spread)[..., None]  # (…, 1)
        log_dv = torch.zeros_like(v)  # log of the (positive) derivative of each unit
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            weight = nn.functional.softplus(matrix)  # (out, in), positive
            z = v @ weight.T + bias
            # d z_j / dx = sum_i W_ji dv_i: a log-sum-exp of positive terms
            log_dz = torch.logsumexp(weight.log() + log_dv[..., None, :], -1)
            if i < len(self.factors):  # hidden layers: z + tanh(a) tanh(z)
                factor = torch.tanh(self.factors[i])
                t = torch.tanh(z)
                v = z + factor * t
                log_dv = log_dz + torch.log1p(factor * (1 - t.square()))
        return z[..., 0], log_dz[..., 0] - self.spread.log()

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """log c'(x), differentiable in the network's parameters."""
        logit, log_slope = self._logits(x)
        return nn.functional.logsigmoid(logit) + nn.functional.logsigmoid(-logit) + log_slope

    def distribution(self, context=None) -> NetworkDistribution:
        """p(x) as a Pyro distribution: log c'(x), and draws by the inverse CDF."""
        if context is not None:
            raise ValueError("context: DeepFactorizedDensity is unconditional")
        return NetworkDistribution(self.log_density, self.sample)

    def _numbers_per_example(self) -> int:
        return 4 * sum(self.config.num_units)

    def cdf(self, x) -> torch.Tensor:
        x = _as_1d(x).to(self.shift.dtype).to(self.shift.device)
        with torch.no_grad():
            return torch.sigmoid(self._logits(x)[0])

    def icdf(self, q: torch.Tensor) -> torch.Tensor:
        """Quantiles by bisection on the monotone CDF (bracket grown until it holds q)."""
        q = torch.as_tensor(q, dtype=self.shift.dtype, device=self.shift.device)
        lo = torch.full_like(q, -1.0)
        hi = torch.full_like(q, 1.0)
        with torch.no_grad():
            for _ in range(200):
                below = self.cdf(self.shift + self.spread * lo) > q
                above = self.cdf(self.shift + self.spread * hi) < q
                if not bool(below.any() or above.any()):
                    break
                lo = torch.where(below, 2 * lo, lo)
                hi = torch.where(above, 2 * hi, hi)
            for _ in range(100):
                mid = 0.5 * (lo + hi)
                low_side = self.cdf(self.shift + self.spread * mid) < q
                lo, hi = torch.where(low_side, mid, lo), torch.where(low_side, hi, mid)
        return self.shift + self.spread * 0.5 * (lo + hi)

    def sample(self, n: int) -> torch.Tensor:
        check_positive_int(n, "n")
        return self.icdf(torch.rand(n, dtype=self.shift.dtype, device=self.shift.device))
