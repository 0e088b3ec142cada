r"""Gaussian mixtures: closed-form EM, EM as MAP with enumeration, and NUTS.

The generative story of a K-component mixture in D dimensions:

.. math::

    \pi \sim p(\pi), \quad (\mu_k, \Sigma_k) \sim p(\mu, \Sigma), \quad
    z_n \mid \pi \sim \mathrm{Categorical}(\pi), \quad
    x_n \mid z_n \sim \mathcal{N}(\mu_{z_n}, \Sigma_{z_n}).

The assignments :math:`z_n` are summed out exactly (``TraceEnum_ELBO`` under SVI,
enumeration under NUTS), leaving :math:`\log p(x_n) = \log \sum_k \pi_k
\mathcal{N}(x_n; \mu_k, \Sigma_k)`. With flat priors (``prior=None``) the MAP point
is the maximum-likelihood point that EM finds: EM is coordinate ascent on the ELBO
:math:`\mathcal{L}(q, \theta) = \mathbb{E}_q[\log p(x, z \mid \theta)] + H[q]`, the
E-step setting :math:`q(z) = p(z \mid x, \theta)` (closing the gap to
:math:`\log p(x \mid \theta)`) and the M-step maximizing over :math:`\theta` in
closed form (Dempster, Laird and Rubin, 1977; Bishop, PRML, section 9.2).

References:
    Dempster, Laird, Rubin (1977). Maximum likelihood from incomplete data via the
    EM algorithm. JRSS B.

    Arthur, Vassilvitskii (2007). k-means++: the advantages of careful seeding.

    Magnusson et al. posteriordb, ``low_dim_gauss_mix``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyroapi import distributions as api_dist
from pyroapi import ops
from pyroapi import pyro as api_pyro

from pyrogen.chunks import map_chunks, rows_per_chunk
from pyrogen.validation import (
    as_data_tensor,
    check_choice,
    check_positive_int,
    check_positive_number,
)
from pyrogen.zoo import ZooModel, register

__all__ = ["GaussianMixture", "GaussianMixturePrior", "normal_mixture_1d"]

Covariance = Literal["full", "diag", "spherical"]
_BLOCK_ELEMENTS = 2**18  # (rows, K, D) temporaries of about 2 MiB stay in cache


def _rows_per_block(K: int, D: int) -> int:
    return rows_per_chunk(K * D, _BLOCK_ELEMENTS, minimum=256)


@dataclass
class GaussianMixturePrior:
    """Proper priors for Bayesian mixtures (NUTS, or MAP with shrinkage).

    weights ~ Dirichlet(concentration); locs[k, d] ~ Normal(loc_loc[d], loc_scale[d]);
    scales[k, d] ~ HalfNormal(scale_scale[d]); corr_tril[k] ~ LKJCholesky(D, lkj).
    """

    concentration: float = 1.0  # Dirichlet concentration of the mixing weights
    loc_loc: float | list[float] = 0.0  # prior mean of every component mean (per dim)
    loc_scale: float | list[float] = 10.0  # prior sd of the component means (per dim)
    scale_scale: float | list[float] = 5.0  # HalfNormal scale of the component sds (per dim)
    lkj: float = 1.0  # LKJ concentration of the correlations (full covariance)

    @classmethod
    def weakly_informative(cls, x) -> GaussianMixturePrior:
        """Centred on the data, a few data sds wide: loose but proper."""
        x = as_data_tensor(x, "x", ndim=2)
        mean, std = x.mean(0), x.std(0).clamp_min(1e-6) if len(x) > 1 else torch.ones(x.shape[1])
        return cls(
            concentration=1.0,
            loc_loc=mean.tolist(),
            loc_scale=(3 * std).tolist(),
            scale_scale=(2 * std).tolist(),
            lkj=2.0,
        )


@register("gmm")
class GaussianMixture(ZooModel):
    """A Gaussian mixture with full, diagonal or spherical covariances.

    Arguments:
        n_components: the number of components K.
        covariance: ``"full"``, ``"diag"`` or ``"spherical"``.
        init: ``"kmeans++"`` (k-means++ seeding then Lloyd iterations),
            ``"random"`` (random responsibilities), or an array of initial means of
            shape (K, D).
        n_init: EM restarts from fresh initializations; the best is kept.
        reg_covar: non-negative floor added to every covariance diagonal in EM's
            M-step, as scikit-learn does (it keeps components from collapsing onto
            single points); the Pyro model itself adds nothing.
        prior: ``None`` for flat priors (maximum likelihood: EM, and MAP by SVI,
            find the same point), or a :class:`GaussianMixturePrior` (needed by NUTS).

    Sites: ``weights`` (K,), ``locs`` (K, D), ``scales`` (K, D) or (K,) when
    spherical, ``corr_tril`` (K, D, D) when full (Cholesky factors of correlation
    matrices), ``assignment`` (N,) enumerated, ``obs`` (N, D).

    Example:
        >>> import pyrogen
        >>> x = pyrogen.data.load("old_faithful")
        >>> gmm = GaussianMixture(2)
        >>> fit = pyrogen.fit(gmm, x, method="em", progress=False)
        >>> gmm.sample(5).shape
        torch.Size([5, 2])
    """

    jit_safe = True  # no data-dependent control flow: SVI compiles the ELBO
    default_method = "em"
    # pyrogen fit gmm: a table (Old Faithful or a CSV), two components unless told
    cli_data, cli_report = "table", "mixture"
    cli_defaults, cli_aliases = {"n_components": 2}, {"components": "n_components"}

    @classmethod
    def cli_config(cls, options, data, method: str) -> dict:
        """NUTS needs proper priors: weakly informative ones centred on the data."""
        return (
            {"prior": GaussianMixturePrior.weakly_informative(data.train)}
            if method == "nuts"
            else {}
        )

    def __init__(
        self,
        n_components: int,
        covariance: Covariance = "full",
        init: str | list | np.ndarray | torch.Tensor = "kmeans++",
        n_init: int = 1,
        reg_covar: float = 1e-6,
        prior: GaussianMixturePrior | dict | None = None,
        dim: int | None = None,
        kmeans_iter: int = 100,
        extra: dict | None = None,
    ):
        super().__init__()
        check_positive_int(n_components, "n_components")
        check_choice(covariance, "covariance", ("full", "diag", "spherical"))
        check_positive_int(n_init, "n_init")
        check_positive_int(kmeans_iter, "kmeans_iter")
        check_positive_number(reg_covar, "reg_covar", allow_zero=True)
        if isinstance(init, str):
            check_choice(init, "init", ("kmeans++", "random"))
        else:
            means = as_data_tensor(init, "init", ndim=2, dtype=torch.float64)
            if means.shape[0] != n_components:
                raise ValueError(
                    f"init: expected {n_components} initial means, got shape {tuple(means.shape)}"
                )
            if dim is not None and means.shape[1] != dim:
                raise ValueError(f"init: means have {means.shape[1]} columns, dim is {dim}")
            dim = means.shape[1]
            init = means.tolist()
        if isinstance(prior, GaussianMixturePrior):
            prior = asdict(prior)
        elif prior is not None:
            prior = asdict(GaussianMixturePrior(**prior))
        self.normalize(init=init, reg_covar=float(reg_covar), prior=prior, dim=dim)
        self.normalize(extra=extra or {})
        self.register_buffer("fitted", torch.tensor(False))
        if dim is not None:
            self._allocate(dim)

    # -- state ---------------------------------------------------------------------
    def _allocate(self, dim: int, dtype=torch.float64, device=None) -> None:
        K = self.config.n_components
        self.config.dim = dim
        like = dict(dtype=dtype, device=device if device is not None else self.fitted.device)
        self.register_buffer("weights", torch.full((K,), 1.0 / K, **like))
        self.register_buffer("locs", torch.zeros(K, dim, **like))
        self.register_buffer("scale_tril", torch.eye(dim, **like).expand(K, dim, dim).clone())

    @property
    def prior(self) -> GaussianMixturePrior | None:
        return None if self.config.prior is None else GaussianMixturePrior(**self.config.prior)

    @property
    def num_parameters(self) -> int:
        """Free parameters: K - 1 weights, K * D means and the covariances (for BIC/AIC)."""
        K, D = self.config.n_components, self.config.dim
        per_component = {"full": D * (D + 1) // 2, "diag": D, "spherical": 1}
        return (K - 1) + K * D + K * per_component[self.config.covariance]

    @property
    def covariances(self) -> torch.Tensor:
        """The component covariance matrices, shape (K, D, D)."""
        return self.scale_tril @ self.scale_tril.transpose(-1, -2)

    def prepare(self, *data) -> tuple:
        if len(data) != 1:
            raise TypeError(f"GaussianMixture takes one data array x, got {len(data)} arguments")
        x = as_data_tensor(data[0], "x", ndim=(1, 2))
        if x.dim() == 1:
            x = x[:, None]
        if self.config.dim is not None and x.shape[1] != self.config.dim:
            raise ValueError(f"x: expected {self.config.dim} columns, got shape {tuple(x.shape)}")
        if x.shape[0] < self.config.n_components:
            raise ValueError(
                f"n_components: {self.config.n_components} components need at least as many "
                f"data points, x has {x.shape[0]}"
            )
        if self.config.dim is None:
            self._allocate(x.shape[1], dtype=x.dtype)
        return (x.to(self.weights.dtype).to(self.weights.device),)

    def point_values(self) -> dict[str, torch.Tensor]:
        variances = torch.diagonal(self.covariances, dim1=-2, dim2=-1)
        scales = variances.sqrt()
        values = {"weights": self.weights, "locs": self.locs}
        if self.config.covariance == "spherical":
            values["scales"] = scales.mean(-1)
        else:
            values["scales"] = scales
        if self.config.covariance == "full":
            values["corr_tril"] = self.scale_tril / scales[..., None]
        return {k: v.clone() for k, v in values.items()}

    def absorb(self, values: dict[str, torch.Tensor]) -> None:
        """Store point estimates; given draws (a leading sample dim), their means."""
        weights = torch.as_tensor(values["weights"], dtype=self.weights.dtype)
        draws = weights.dim() == 2
        locs = torch.as_tensor(values["locs"], dtype=self.weights.dtype)
        covariances = self._site_covariances(values, self.weights.dtype)
        if draws:
            weights, locs, covariances = weights.mean(0), locs.mean(0), covariances.mean(0)
        self.weights.copy_(weights)
        self.locs.copy_(locs)
        self.scale_tril.copy_(torch.linalg.cholesky(covariances))
        self.fitted.fill_(True)

    def _site_covariances(self, values, dtype) -> torch.Tensor:
        scales = torch.as_tensor(values["scales"], dtype=dtype)
        D = self.config.dim
        if self.config.covariance == "spherical":
            scales = scales[..., None].expand(scales.shape + (D,))
        if self.config.covariance == "full":
            tril = scales[..., None] * torch.as_tensor(values["corr_tril"], dtype=dtype)
        else:
            tril = torch.diag_embed(scales)
        return tril @ tril.transpose(-1, -2)

    # -- the Pyro model and guide ------------------------------------------------------
    def _prior_sites(self, D: int, dtype, device) -> dict:
        K, prior = self.config.n_components, self.prior
        if prior is None:  # flat: the MAP point is the maximum-likelihood point
            sites = {
                "weights": dist.ImproperUniform(constraints.simplex, (), (K,)),
                "locs": dist.ImproperUniform(constraints.real_vector, (K,), (D,)),
                "scales": dist.ImproperUniform(
                    constraints.independent(constraints.positive, 1), (K,), (D,)
                ),
                "corr_tril": dist.ImproperUniform(constraints.corr_cholesky, (K,), (D, D)),
            }
            if self.config.covariance == "spherical":
                sites["scales"] = dist.ImproperUniform(constraints.positive, (K,), ())
            return sites

        def per_dim(value):
            return torch.as_tensor(value, dtype=dtype, device=device).expand(D)

        scale_scale = per_dim(prior.scale_scale)
        sites = {
            "weights": dist.Dirichlet(
                torch.full((K,), prior.concentration, dtype=dtype, device=device)
            ),
            "locs": dist.Normal(per_dim(prior.loc_loc), per_dim(prior.loc_scale)).to_event(1),
            "scales": dist.HalfNormal(scale_scale).to_event(1),
            "corr_tril": dist.LKJCholesky(D, torch.tensor(prior.lkj, dtype=dtype, device=device)),
        }
        if self.config.covariance == "spherical":
            sites["scales"] = dist.HalfNormal(scale_scale.mean())
        return sites

    def model(self, x: torch.Tensor) -> None:
        """x with shape (N, D)."""
        N, D = x.shape
        K = self.config.n_components
        priors = self._prior_sites(D, x.dtype, x.device)
        weights = pyro.sample("weights", priors["weights"])
        with pyro.plate("components", K):
            locs = pyro.sample("locs", priors["locs"])  # (K, D)
            scales = pyro.sample("scales", priors["scales"])  # (K, D) or (K,)
            if self.config.covariance == "full":
                corr_tril = pyro.sample("corr_tril", priors["corr_tril"])  # (K, D, D)
                scale_tril = scales[..., None] * corr_tril
            elif self.config.covariance == "diag":
                scale_tril = torch.diag_embed(scales)
            else:
                scale_tril = scales[..., None, None] * torch.eye(D, dtype=x.dtype, device=x.device)
        with pyro.plate("data", N):
            z = pyro.sample(
                "assignment", dist.Categorical(weights), infer={"enumerate": "parallel"}
            )
            pyro.sample("obs", dist.MultivariateNormal(locs[z], scale_tril=scale_tril[z]), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        """MAP guide: a point mass on every global site, started at the current fit.

        The assignments are not in the guide: the ELBO sums them out exactly."""
        start = self.point_values() if self.fitted else self._initial_values(x)
        weights = pyro.param("weights_map", start["weights"], constraint=constraints.simplex)
        pyro.sample("weights", dist.Delta(weights, event_dim=1))
        locs = pyro.param("locs_map", start["locs"])
        scale_constraint = constraints.positive
        scales = pyro.param("scales_map", start["scales"], constraint=scale_constraint)
        with pyro.plate("components", self.config.n_components):
            pyro.sample("locs", dist.Delta(locs, event_dim=1))
            event_dim = 0 if self.config.covariance == "spherical" else 1
            pyro.sample("scales", dist.Delta(scales, event_dim=event_dim))
            if self.config.covariance == "full":
                corr = pyro.param(
                    "corr_tril_map", start["corr_tril"], constraint=constraints.corr_cholesky
                )
                pyro.sample("corr_tril", dist.Delta(corr, event_dim=2))

    def _initial_values(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.initialize(x)
        return self.point_values()

    def check_nuts(self) -> None:
        if self.prior is None:
            raise ValueError(
                "prior: method='nuts' needs proper priors; pass "
                "prior=GaussianMixturePrior(...) or GaussianMixturePrior.weakly_informative(x)"
            )

    def relabel(self, samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Undo label switching: order the components of every draw by their first mean."""
        order = np.argsort(samples["locs"][..., 0], axis=-1)  # (chain, draw, K)
        out = dict(samples)
        for name in ("weights", "locs", "scales", "corr_tril"):
            if name in samples:
                value = samples[name]
                index = order.reshape(order.shape + (1,) * (value.ndim - order.ndim))
                out[name] = np.take_along_axis(value, index, axis=2)
        return out

    # -- densities ---------------------------------------------------------------------
    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log pi_k + log N(x_n; mu_k, Sigma_k), shape (N, K)."""
        x = self._check_x(x)
        whitening = self._whitening()
        K, D = self.locs.shape
        return map_chunks(
            lambda b: self._weighted_log_prob(b, whitening), x, K * D, _BLOCK_ELEMENTS, 256
        )

    def log_prob(self, x) -> torch.Tensor:
        """Exact log-density of every row of x (N, D), in nats, shape (N,)."""
        x = self._check_x(x)
        whitening = self._whitening()
        K, D = self.locs.shape
        return map_chunks(
            lambda b: self._weighted_log_prob(b, whitening).logsumexp(-1),
            x,
            K * D,
            _BLOCK_ELEMENTS,
            256,
        )

    def predict(self, x) -> torch.Tensor:
        """Responsibilities p(z_n = k | x_n), shape (N, K)."""
        return self.component_log_prob(x).softmax(-1)

    def sample(self, n: int) -> torch.Tensor:
        """n draws from the fitted mixture, shape (n, D)."""
        check_positive_int(n, "n")
        if self.config.dim is None:
            raise RuntimeError("GaussianMixture: fit the model (or call initialize) first")
        z = torch.multinomial(self.weights, n, replacement=True)
        noise = torch.randn(
            n, self.config.dim, 1, dtype=self.weights.dtype, device=self.weights.device
        )
        return self.locs[z] + (self.scale_tril[z] @ noise).squeeze(-1)

    def _check_x(self, x) -> torch.Tensor:
        if self.config.dim is None:
            raise RuntimeError("GaussianMixture: fit the model (or call initialize) first")
        x = as_data_tensor(x, "x", ndim=(1, 2), dtype=self.weights.dtype)
        if x.dim() == 1 and self.config.dim == 1:
            x = x[:, None]
        if x.dim() != 2 or x.shape[1] != self.config.dim:
            raise ValueError(f"x: expected shape (N, {self.config.dim}), got {tuple(x.shape)}")
        return x

    def _whitening(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W, b, c): log N(x; mu_k, Sigma_k) = c_k - |x W_k - b_k|^2 / 2 for all k at once.

        W stacks the K inverse Cholesky factors side by side, (D, K*D), so the
        whitening of a block of rows is one matrix product."""
        K, D = self.locs.shape
        eye = torch.eye(D, dtype=self.locs.dtype, device=self.locs.device).expand(K, D, D)
        inverse = torch.linalg.solve_triangular(self.scale_tril, eye, upper=False)  # (K, D, D)
        W = inverse.transpose(-1, -2).permute(1, 0, 2).reshape(D, K * D)
        b = (inverse @ self.locs[..., None]).reshape(K * D)
        log_det = torch.diagonal(self.scale_tril, dim1=-2, dim2=-1).log().sum(-1)
        c = self.weights.log() - log_det - 0.5 * D * math.log(2 * math.pi)
        return W, b, c

    def _weighted_log_prob(self, x: torch.Tensor, whitening=None) -> torch.Tensor:
        W, b, c = whitening if whitening is not None else self._whitening()
        K = self.config.n_components
        y = torch.addmm(-b, x, W).view(x.shape[0], K, -1)  # (n, K, D)
        return c - 0.5 * y.square().sum(-1)

    # -- closed-form EM ----------------------------------------------------------------
    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Starting values for EM, MAP and NUTS from ``config.init``."""
        x = self._check_x(x)
        K = self.config.n_components
        shift = x.mean(0)
        if isinstance(self.config.init, list):
            means = torch.tensor(self.config.init, dtype=x.dtype, device=x.device)
            labels = _nearest(x, means)
        elif self.config.init == "random":
            weights = torch.rand(x.shape[0], K, dtype=x.dtype, device=x.device)
            weights /= weights.sum(1, keepdim=True)
        else:
            labels = _kmeans(x, K, self.config.kmeans_iter)
        if self.config.init == "random":
            statistics = self._sufficient_statistics(x, lambda _, rows: weights[rows], shift)
        else:
            statistics = self._sufficient_statistics(
                x, lambda _, rows: _one_hot(labels[rows], K, x.dtype), shift
            )
        self._m_step(*statistics)
        if isinstance(self.config.init, list):
            self.locs.copy_(means)
        self.fitted.fill_(True)

    em_init = initialize

    @torch.no_grad()
    def em_step(self, x: torch.Tensor) -> float:
        """One E-step and one M-step; returns the mean log-likelihood before the M-step."""
        shift = self.weights @ self.locs  # centring keeps second moments well conditioned
        W, b, c = self._whitening()
        whitening = (W, b - shift @ W, c)  # whitening of centred rows
        total = x.new_zeros(())

        def responsibilities(centred: torch.Tensor, rows: slice) -> torch.Tensor:
            nonlocal total
            log_prob = self._weighted_log_prob(centred, whitening)
            log_norm = log_prob.logsumexp(-1, keepdim=True)
            total += log_norm.sum()
            return (log_prob - log_norm).exp_()  # (n, K)

        self._m_step(*self._sufficient_statistics(x, responsibilities, shift))
        return float(total) / x.shape[0]

    def _sufficient_statistics(self, x: torch.Tensor, responsibilities, shift: torch.Tensor):
        """Responsibility-weighted counts, sums and second moments of x - shift, block by
        block, so no temporary grows with N. ``responsibilities(centred_block, rows)``
        gives the (n, K) weights of the rows ``rows`` of x."""
        K, D = self.config.n_components, x.shape[1]
        full = self.config.covariance == "full"
        counts, sums = x.new_zeros(K), x.new_zeros(K, D)
        squares = x.new_zeros(K * D, D) if full else x.new_zeros(K, D)
        start = 0
        for block in x.split(_rows_per_block(K, D)):
            centred = block - shift
            resp = responsibilities(centred, slice(start, start + len(block)))
            start += len(block)
            counts += resp.sum(0)
            sums += resp.T @ centred
            if full:  # sum_n r_nk x_n x_n^T for all k in one product: (K*D, D)
                squares += (resp[:, :, None] * centred[:, None, :]).view(
                    len(block), K * D
                ).T @ centred
            else:
                squares += resp.T @ centred.square()
        return counts, sums, squares.view(K, D, D) if full else squares, shift

    def _m_step(self, counts, sums, squares, shift) -> None:
        counts = counts + 10 * torch.finfo(counts.dtype).eps
        means = sums / counts[:, None]  # centred coordinates
        D = means.shape[1]
        reg = self.config.reg_covar
        if self.config.covariance == "full":
            cov = squares / counts[:, None, None] - means[:, :, None] * means[:, None, :]
            cov = cov + reg * torch.eye(D, dtype=cov.dtype, device=cov.device)
            tril, info = torch.linalg.cholesky_ex(cov)
            if bool((info > 0).any()):
                raise FloatingPointError(
                    "GaussianMixture: a covariance became singular (a component collapsed "
                    "onto too few points); increase reg_covar or lower n_components"
                )
        else:
            var = squares / counts[:, None] - means.square()
            if self.config.covariance == "spherical":
                var = var.mean(-1, keepdim=True).expand(-1, D)
            tril = torch.diag_embed((var + reg).clamp_min(torch.finfo(var.dtype).tiny).sqrt())
        self.weights.copy_(counts / counts.sum())
        self.locs.copy_(means + shift)
        self.scale_tril.copy_(tril)


def _one_hot(labels: torch.Tensor, K: int, dtype) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, K).to(dtype)


def _nearest(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Index of the nearest center of every row, block by block."""
    K, D = centers.shape
    return map_chunks(lambda b: torch.cdist(b, centers).argmin(1), x, K * D, _BLOCK_ELEMENTS, 256)


def _kmeans(x: torch.Tensor, K: int, num_iter: int) -> torch.Tensor:
    """k-means++ seeding (Arthur and Vassilvitskii, 2007), then Lloyd iterations."""
    N = x.shape[0]
    centers = x[torch.randint(N, (1,), device=x.device)]
    closest = torch.cdist(x, centers).square().squeeze(1)
    for _ in range(1, K):
        total = closest.sum()
        index = (
            torch.multinomial(closest / total, 1)
            if total > 0
            else torch.randint(N, (1,), device=x.device)
        )
        centers = torch.cat([centers, x[index]])
        closest = torch.minimum(closest, torch.cdist(x, x[index]).square().squeeze(1))
    labels = _nearest(x, centers)
    for _ in range(num_iter):
        counts = torch.bincount(labels, minlength=K).to(x.dtype)
        sums = torch.zeros_like(centers).index_add_(0, labels, x)
        centers = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centers)
        new = _nearest(x, centers)
        if torch.equal(new, labels):
            break
        labels = new
    return labels


def normal_mixture_1d(y):
    """Two-component 1-D normal mixture, exactly posteriordb's ``low_dim_gauss_mix``.

    Written against ``pyroapi`` so the same function runs under Pyro and NumPyro::

        mu ~ Normal(0, 2), ordered;  sigma_k ~ HalfNormal(2);  theta ~ Beta(5, 5)
        y_n ~ theta Normal(mu_1, sigma_1) + (1 - theta) Normal(mu_2, sigma_2)

    Arguments:
        y: observations, shape (N,).
    """
    mu = api_pyro.sample(
        "mu", api_dist.ImproperUniform(api_dist.constraints.ordered_vector, (), (2,))
    )
    api_pyro.factor("mu_prior", api_dist.Normal(0.0, 2.0).log_prob(mu).sum())
    with api_pyro.plate("components", 2):
        sigma = api_pyro.sample("sigma", api_dist.HalfNormal(2.0))
    theta = api_pyro.sample("theta", api_dist.Beta(5.0, 5.0))
    mixing = api_dist.Categorical(probs=ops.stack([theta, 1.0 - theta], -1))
    with api_pyro.plate("data", y.shape[0]):
        api_pyro.sample("y", api_dist.MixtureSameFamily(mixing, api_dist.Normal(mu, sigma)), obs=y)
