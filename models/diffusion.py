r"""Denoising diffusion probabilistic models as a hierarchical latent chain.

**Model** (Sohl-Dickstein et al. 2015; Ho, Jain and Abbeel 2020): a Markov chain of T
latent copies of the data, run backwards,

.. math::

    x_T \sim \mathcal{N}(0, I), \qquad
    x_{t-1} \mid x_t \sim \mathcal{N}(\mu_\theta(x_t, t), \sigma_t^2 I), \qquad
    x_0 \mid x_1 \sim p_\theta(x_0 \mid x_1),

with :math:`\mu_\theta(x_t, t) = a_t \hat x_0 + b_t x_t` the forward posterior's mean
at the network's estimate :math:`\hat x_0(x_t, t)` (the network predicts the noise
:math:`\epsilon`, x_0 itself or :math:`v = \sqrt{\bar\alpha_t}\,\epsilon -
\sqrt{1 - \bar\alpha_t}\, x_0`; Salimans and Ho 2022), and the decoder
:math:`p_\theta(x_0 \mid x_1)` Gaussian for real data, the discretized Gaussian of Ho
et al. for images of ``data_levels`` grey levels. **Guide**: the fixed forward
process, :math:`q(x_{1:T} \mid x_0) = q(x_T \mid x_0) \prod_t q(x_{t-1} \mid x_t,
x_0)`, written backwards so that each latent site's guide distribution is the Gaussian
forward posterior (see :mod:`pyrogen.diffusion.schedules`); it has no parameters.
Pyro's ``Trace_ELBO`` on this pair is exactly DDPM's variational bound, and
``TraceMeanField_ELBO`` its Rao-Blackwellized form with every KL in closed form
(Ho et al.'s Eq. 5). Real data are standardized first (mean and sd of the data the fit
starts from, kept with the model; the log-density includes the Jacobian); images are
mapped to [-1, 1].

**Training** (:mod:`pyrogen.diffusion.losses`): ``pyrogen.fit(ddpm, x)`` runs the SVI
engine on one step t per example, ``loss="simple"`` (Ho et al.'s noise-prediction loss,
the default: a reweighted bound) or ``loss="elbo"`` (the bound itself, unbiased);
``loss="sn"`` / ``"npr"`` then train the second network of Extended-Analytic-DPM with
the first one fixed. ``loss="trace"`` or ``"mean_field"`` run Pyro's own ELBOs over the
whole chain (T network evaluations a step).

**Sampling and the bound over any sub-trajectory**: :meth:`DDPM.sample` and
:meth:`DDPM.log_prob` take ``steps=K`` (an evenly spaced sub-trajectory of K steps,
as DDIM and Analytic-DPM), ``eta`` (1: ancestral sampling, 0: DDIM) and ``variance``:
``"beta"``, ``"beta_tilde"``, ``"analytic"`` (Bao et al. ICLR 2022: the optimal
isotropic variance from :math:`\Gamma_t`, estimated once by :meth:`DDPM.estimate_moments`
from the training data) or ``"sn"`` / ``"npr"`` (Bao et al. ICML 2022; needs
``covariance=``). :meth:`DDPM.log_prob` is the variational bound (nats, a lower bound
on log p(x); the DDPM forward process, as in Analytic-DPM's likelihood tables), each
step's term in closed form at one draw of x_t per example from a fixed seed (the same
numbers on every call).

References:
    Sohl-Dickstein, Weiss, Maheswaranathan and Ganguli (2015). Deep Unsupervised
        Learning using Nonequilibrium Thermodynamics. ICML.
    Ho, Jain and Abbeel (2020). Denoising Diffusion Probabilistic Models. NeurIPS.
    Song, Meng and Ermon (2021). Denoising Diffusion Implicit Models. ICLR.
    Nichol and Dhariwal (2021). Improved Denoising Diffusion Probabilistic Models. ICML.
    Salimans and Ho (2022). Progressive Distillation for Fast Sampling of Diffusion
        Models. ICLR.
    Bao, Li, Zhu and Zhang (2022). Analytic-DPM: an Analytic Estimate of the Optimal
        Reverse Variance in Diffusion Probabilistic Models. ICLR.
    Bao, Li, Cao, Zhu and Zhang (2022). Estimating the Optimal Covariance with Imperfect
        Mean in Diffusion Probabilistic Models. ICML.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch

from pyrogen.diffusion.losses import LOSSES, DiffusionLoss
from pyrogen.diffusion.reverse import VARIANCES, gaussian_kl, reverse_variance
from pyrogen.diffusion.schedules import NoiseSchedule
from pyrogen.distributions.discretized import DiscretizedNormal, bin_centre, bin_index
from pyrogen.nn.diffusion_nets import TimeMLP, UNet
from pyrogen.validation import (
    check_choice,
    check_data_shape,
    check_positive_int,
    check_widths,
)
from pyrogen.zoo import NetworkModel, data_plate, register

__all__ = ["DDPM"]

PREDICTIONS = ("eps", "x0", "v")
COVARIANCES = ("sn", "npr")


def _control_variate_mean(values: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` with ``control`` (mean exactly 1 per number) as a
    control variate, the regression coefficient from the same draws."""
    values, control = values.reshape(-1), control.reshape(-1)
    centred = control - control.mean()
    spread = centred.pow(2).mean().clamp_min(1e-30)
    coefficient = (centred * (values - values.mean())).mean() / spread
    return values.mean() - coefficient * (control.mean() - 1)


@register("ddpm")
class DDPM(NetworkModel):
    """A denoising diffusion probabilistic model: the latent chain x_T -> ... -> x_0
    with the forward process as its guide.

    Arguments:
        data_shape: one example's shape: (D,) for vectors (a time-conditioned MLP) or
            (C, H, W) for images (a U-Net).
        timesteps: T, the chain's length (the fit's ``num_steps`` are its optimizer's).
        schedule: ``"linear"`` or ``"cosine"`` betas.
        prediction: what the network predicts: ``"eps"`` (the noise), ``"x0"`` or
            ``"v"``.
        hidden: the MLP's widths (vectors).
        channels: the U-Net's base width (images).
        variance: the reverse variance of the model's chain and the default of
            ``sample``/``log_prob``: ``"beta"`` or ``"beta_tilde"`` (fixed), or
            ``"analytic"``, ``"sn"``, ``"npr"`` (after ``estimate_moments`` or the
            second network's fit).
        covariance: ``"sn"`` or ``"npr"`` adds Extended-Analytic-DPM's second network
            (same architecture), trained by ``fit(..., loss=covariance)``.
        data_levels: images of this many grey levels, given dequantized in [0, 1):
            the discretized Gaussian decoder; None: real data, a Gaussian decoder.
    """

    cli_data = (
        "toy2d_or_images"  # --data ring|grid|checkerboard|moons|FILE.csv|fashion_mnist|digits
    )
    cli_defaults = {"data_shape": [2]}
    cli_fit = {"lr": 1e-3, "num_steps": 3000, "batch_size": 256}
    cli_report = "ddpm"  # the bound per K and variance; the density of the 100-step bound
    default_method = "svi"
    methods = ("svi",)
    default_loss = "simple"
    fixed_guide = True  # the forward process: to_arviz reports the networks' fit
    own_losses = LOSSES

    def __init__(
        self,
        data_shape,
        timesteps: int = 1000,
        schedule: str = "linear",
        prediction: str = "eps",
        hidden=(128, 128, 128),
        channels: int = 32,
        variance: str = "beta",
        covariance: str | None = None,
        data_levels: int | None = None,
    ):
        super().__init__()
        shape = check_data_shape(data_shape)
        if len(shape) not in (1, 3):
            raise ValueError(f"data_shape: (D,) or (C, H, W), got {tuple(shape)}")
        check_choice(prediction, "prediction", PREDICTIONS)
        check_choice(variance, "variance", VARIANCES)
        if covariance is not None:
            check_choice(covariance, "covariance", COVARIANCES)
        if variance in COVARIANCES and covariance != variance:
            raise ValueError(f"variance: {variance!r} needs covariance={variance!r}")
        if data_levels is not None:
            check_positive_int(data_levels, "data_levels", minimum=2)
        widths = check_widths(hidden, "ddpm")
        self.normalize(data_shape=shape, hidden=widths)
        self.schedule = NoiseSchedule(timesteps, schedule)
        self.network = self._network()
        self.covariance_net = self._network() if covariance else None
        dim = shape[0] if len(shape) == 1 else 1
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("standardized", torch.tensor(False))
        # 1 - Gamma_t (kept rather than Gamma_t: near 1 at large t, float32 would round it)
        self.register_buffer("gamma_gap", torch.full((timesteps + 1,), math.nan))
        # the mean network Gamma was estimated with (a checksum of its weights)
        self.register_buffer("gamma_weights", torch.tensor(math.nan, dtype=torch.float64))
        self.register_buffer("covariance_fitted", torch.tensor(False))

    def _network(self) -> torch.nn.Module:
        shape, steps = self.config.data_shape, self.config.timesteps
        if len(shape) == 1:
            return TimeMLP(shape[0], self.config.hidden, steps)
        return UNet(shape[0], self.config.channels, steps)

    @property
    def module_name(self) -> str:
        return "ddpm"

    @property
    def bounded(self) -> bool:
        """Images (data in [-1, 1] in the chain's space) rather than real data."""
        return self.config.data_levels is not None

    # -- data -----------------------------------------------------------------------------
    def prepare(self, *data) -> tuple:
        (x,) = super().prepare(*data)
        if self.bounded and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"x: images of data_levels={self.config.data_levels} are expected "
                f"dequantized in [0, 1], got values in [{x.min():.3g}, {x.max():.3g}]"
            )
        return (x,)

    def initialize(self, x) -> None:
        super().initialize(x)
        if self.bounded or bool(self.standardized):
            return
        flat = x.reshape(len(x), -1)
        self.shift.copy_(flat.mean(0))
        self.scale.copy_(flat.std(0).clamp_min(1e-6) if len(x) > 1 else torch.ones_like(self.shift))
        self.standardized.fill_(True)

    def _view(self, v: torch.Tensor) -> torch.Tensor:
        return v.reshape(-1, *([1] * (len(self.config.data_shape) - 1))) if v.numel() > 1 else v

    def to_chain(self, x: torch.Tensor) -> torch.Tensor:
        """Data -> the chain's space: standardized, or images' levels in [-1, 1]."""
        if self.bounded:
            levels = self.config.data_levels
            return 2 * bin_index(x, levels) / (levels - 1) - 1
        return (x - self._view(self.shift)) / self._view(self.scale)

    def from_chain(self, y: torch.Tensor) -> torch.Tensor:
        if self.bounded:
            return bin_centre(y, self.config.data_levels)
        return y * self._view(self.scale) + self._view(self.shift)

    # -- the networks ---------------------------------------------------------------------
    def _coefficients(self, t: torch.Tensor, like: torch.Tensor):
        root, sd = self.schedule.marginal(t.cpu())
        return self._view_batch(root, like), self._view_batch(sd, like)

    def _view_batch(self, c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Per-example coefficients (B,) (or one, 0-d) shaped to broadcast against like."""
        c = c.to(device=like.device) if c.dtype == torch.bool else c.to(like)
        return c.reshape(-1, *([1] * (like.dim() - 1))) if c.dim() else c

    def predict(self, y_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps_hat, x0_hat) at chain values y_t (B, ...) and steps t (B,)."""
        out = self.network(y_t, t.to(y_t.device))
        root, sd = self._coefficients(t, y_t)
        if self.config.prediction == "eps":
            return out, (y_t - sd * out) / root
        if self.config.prediction == "x0":
            return (y_t - root * out) / sd, out
        return sd * y_t + root * out, root * y_t - sd * out  # v

    def trained_module(self, kind: str) -> torch.nn.Module:
        """What ``loss=kind`` trains: the mean network, or the covariance network."""
        if kind in COVARIANCES:
            if self.config.covariance != kind:
                raise ValueError(f"loss: {kind!r} trains the network of covariance={kind!r}")
            return self.covariance_net
        return self.network

    def _log_moment(self, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.covariance_net(y_t, t.to(y_t.device)).clamp(-30.0, 10.0)

    def second_moment(self, y_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The second network's estimate, per dimension: E[eps^2 | x_t] (SN) or
        E[(eps - eps_hat)^2 | x_t] (NPR); its output is the estimate's log."""
        return torch.exp(self._log_moment(y_t, t))

    def make_loss(self, kind: str, options=None) -> DiffusionLoss:
        """The engine's ELBO for ``fit(..., loss=kind)`` (kind in ``own_losses``)."""
        loss = DiffusionLoss(self, kind)
        if kind in COVARIANCES:
            self.trained_module(kind)  # refuses a model without that network
            self.covariance_fitted.fill_(True)
        return loss

    def diffuse(self, y0: torch.Tensor, t: torch.Tensor, generator=None):
        """x_t ~ q(x_t | x_0) at steps t (B,): (x_t, eps)."""
        eps = torch.randn(y0.shape, dtype=y0.dtype, device=y0.device, generator=generator)
        root, sd = self._coefficients(t, y0)
        return root * y0 + sd * eps, eps

    # -- the reverse step -----------------------------------------------------------------
    def _weights_checksum(self) -> torch.Tensor:
        with torch.no_grad():
            return sum(p.double().abs().sum() + p.double().sum() for p in self.network.parameters())

    def _gamma(self, t: torch.Tensor) -> torch.Tensor:
        if not torch.isclose(self.gamma_weights, self._weights_checksum(), rtol=1e-12):
            raise ValueError(
                "variance: 'analytic' needs Gamma_t of the current network: call "
                "ddpm.estimate_moments(x_train) after fitting"
            )
        gamma = 1 - self.gamma_gap.double().cpu()[t]
        if not torch.isfinite(gamma).all():
            missing = sorted(
                {int(i) for i in torch.as_tensor(t).reshape(-1)[~torch.isfinite(gamma.reshape(-1))]}
            )
            raise ValueError(
                f"variance: Gamma_t not estimated at steps {missing[:5]}...: call "
                "ddpm.estimate_moments(x_train, steps=K) for this trajectory"
            )
        return gamma

    def _variance(self, kind, pair, t, next_pair, y_t, eps_hat) -> torch.Tensor:
        """sigma^2 of p(x_s | x_t), shaped to broadcast against y_t."""
        check_choice(kind, "variance", VARIANCES)
        gamma = self._gamma(t) if kind == "analytic" else None
        head = None
        if kind in COVARIANCES:
            if self.config.covariance != kind or not bool(self.covariance_fitted):
                raise ValueError(
                    f"variance: {kind!r} needs DDPM(..., covariance={kind!r}) fitted with "
                    f"pyrogen.fit(ddpm, x, loss={kind!r})"
                )
            steps = torch.as_tensor(t).expand(len(y_t))
            head = self.second_moment(y_t, steps).double()
        variance = reverse_variance(
            kind,
            pair,
            next_pair=next_pair,
            gamma=gamma,
            head=head,
            eps_hat=None if eps_hat is None else eps_hat.double(),
            bounded=self.bounded,
        )
        if variance.shape == y_t.shape:
            return variance.to(y_t.dtype)
        return self._view_batch(variance, y_t)

    def reverse(self, y_t, s, t, next_t=None, variance=None, eta: float = 1.0, clip=False):
        """p_theta(x_s | x_t) at chain values y_t (B, ...): (mean, variance, x0_hat).
        s, t (and the trajectory's step after t, ``next_t``, which ``"beta_tilde"``
        reads at the last step) are ints or (B,) tensors. ``clip``: x0_hat clipped to
        [-1, 1] (images), or ``"last"``: only where s = 0."""
        s, t = torch.as_tensor(s), torch.as_tensor(t)
        steps = t.expand(len(y_t)) if t.dim() == 0 else t
        eps_hat, x0_hat = self.predict(y_t, steps)
        if clip == "last":  # only where s = 0 (the decoder's mean)
            x0_hat = torch.where(self._view_batch(s == 0, y_t), x0_hat.clamp(-1, 1), x0_hat)
        elif clip:
            x0_hat = x0_hat.clamp(-1, 1)
        pair = self.schedule.pair(s, t, eta)
        next_pair = None if next_t is None else self.schedule.pair(t, torch.as_tensor(next_t))
        mean = self._view_batch(pair.a, y_t) * x0_hat + self._view_batch(pair.b, y_t) * y_t
        kind = variance or self.config.variance
        return mean, self._variance(kind, pair, t, next_pair, y_t, eps_hat), x0_hat

    def decoder(self, y_1, t, next_t=None, variance=None) -> dist.Distribution:
        """p_theta(x_0 | x_t) in the data's space (the chain's last step; t = tau_1)."""
        mean, var, _ = self.reverse(y_1, 0, t, next_t, variance, clip=self.bounded)
        return self._decoder(mean, var)

    def _decoder(self, mean, var) -> dist.Distribution:
        events = len(self.config.data_shape)
        if self.bounded:
            return DiscretizedNormal(mean, var.sqrt(), self.config.data_levels).to_event(events)
        scale, shift = self._view(self.scale), self._view(self.shift)
        return dist.Normal(mean * scale + shift, var.sqrt() * scale).to_event(events)

    def prior_kl(self, y0: torch.Tensor) -> torch.Tensor:
        """KL(q(x_T | x_0) || N(0, I)) per example, in closed form."""
        root, sd = (c.to(y0) for c in self.schedule.marginal(torch.tensor(self.config.timesteps)))
        terms = 0.5 * (root**2 * y0**2 + sd**2 - 1) - sd.log()
        return terms.flatten(1).sum(1)

    def step_kl(self, y0, y_t, s, t, next_t=None, variance=None) -> torch.Tensor:
        """KL(q(x_s | x_t, x_0) || p_theta(x_s | x_t)) per example (the DDPM forward
        process, s >= 1)."""
        mean, var, _ = self.reverse(y_t, s, t, next_t, variance)
        pair = self.schedule.pair(torch.as_tensor(s), torch.as_tensor(t))
        q_mean = self._view_batch(pair.a, y0) * y0 + self._view_batch(pair.b, y0) * y_t
        q_var = self._view_batch(pair.lambda2, y0)
        return gaussian_kl(q_mean, q_var.expand_as(q_mean), mean, var).flatten(1).sum(1)

    # -- the generative story and the guide ---------------------------------------------
    def _register(self) -> None:
        pyro.module("ddpm_network", self.network)
        if self.config.variance in COVARIANCES:
            pyro.module("ddpm_covariance", self.covariance_net)

    def model(self, x, num_examples: int | None = None) -> None:
        """x_T ~ N(0, I); x_{t-1} | x_t ~ N(mu_theta, sigma_t^2 I) for t = T..2;
        x (observed) | x_1 ~ the decoder. Sites ``x_T`` .. ``x_1`` in the chain's space
        (shape (N, *data_shape)), ``x`` the data."""
        self._register()
        path = self.schedule.trajectory().tolist()
        events = len(self.config.data_shape)
        zeros = torch.zeros_like(x)
        with data_plate(x, num_examples):
            y = pyro.sample(f"x_{path[-1]}", dist.Normal(zeros, 1.0).to_event(events))
            for k in range(len(path) - 1, 1, -1):
                s, t = path[k - 1], path[k]
                mean, var, _ = self.reverse(y, s, t, path[k + 1] if k + 1 < len(path) else None)
                y = pyro.sample(f"x_{s}", dist.Normal(mean, var.sqrt()).to_event(events))
            pyro.sample("x", self.decoder(y, path[1], path[2] if len(path) > 2 else None), obs=x)

    def guide(self, x, num_examples: int | None = None) -> None:
        """The forward process q(x_{1:T} | x_0), backwards: x_T ~ q(x_T | x_0), then
        x_{t-1} ~ q(x_{t-1} | x_t, x_0), the Gaussian posterior. No parameters."""
        path = self.schedule.trajectory().tolist()
        events = len(self.config.data_shape)
        y0 = self.to_chain(x)
        with data_plate(x, num_examples):
            root, sd = (c.to(y0) for c in self.schedule.marginal(torch.tensor(path[-1])))
            y = pyro.sample(f"x_{path[-1]}", dist.Normal(root * y0, sd).to_event(events))
            for k in range(len(path) - 1, 1, -1):
                s, t = path[k - 1], path[k]
                pair = self.schedule.pair(torch.tensor(s), torch.tensor(t))
                mean = float(pair.a) * y0 + float(pair.b) * y
                scale = torch.full_like(mean, float(pair.lambda2.sqrt()))
                y = pyro.sample(f"x_{s}", dist.Normal(mean, scale).to_event(events))

    # -- training losses (see pyrogen.diffusion.losses) ----------------------------------
    def loss_terms(self, x: torch.Tensor, kind: str = "simple") -> torch.Tensor:
        """Each example's loss at one step t ~ U{1..T} (B,): the simple loss, T times
        the bound's term at t (plus the prior's KL: an unbiased estimate of -ELBO), or
        the covariance network's squared error."""
        y0 = self.to_chain(x)
        T = self.config.timesteps
        t = torch.randint(1, T + 1, (len(y0),))
        y_t, eps = self.diffuse(y0, t)
        if kind in COVARIANCES:
            with torch.no_grad():
                eps_hat, _ = self.predict(y_t, t)
            target = eps**2 if kind == "sn" else (eps - eps_hat) ** 2
            log_moment = self._log_moment(y_t, t)
            # the Gaussian scoring rule: minimized by the conditional mean of the target
            return (target * torch.exp(-log_moment) + log_moment).flatten(1).mean(1)
        if kind == "simple":
            out = self.network(y_t, t.to(y_t.device))
            root, sd = self._coefficients(t, y0)
            target = {"eps": eps, "x0": y0, "v": root * eps - sd * y0}[self.config.prediction]
            return ((out - target) ** 2).flatten(1).mean(1)
        if self.config.variance not in ("beta", "beta_tilde"):
            raise ValueError(
                "loss: 'elbo' trains the mean under a fixed variance ('beta' or 'beta_tilde')"
            )
        s = t - 1  # the decoder's step where t = 1
        next_t = (t + 1).clamp(max=T) if T > 1 else None
        mean, var, _ = self.reverse(y_t, s, t, next_t, clip="last" if self.bounded else False)
        pair = self.schedule.pair(s, t)
        last = self._view_batch(t == 1, y0)
        q_mean = self._view_batch(pair.a, y0) * y0 + self._view_batch(pair.b, y0) * y_t
        q_var = torch.where(last, 1.0, self._view_batch(pair.lambda2, y0))  # masked below
        kl = gaussian_kl(q_mean, q_var.expand_as(q_mean), mean, var).flatten(1).sum(1)
        nll = -self._decoder(mean, var).log_prob(x)
        return T * torch.where(t.to(y0.device) == 1, nll, kl) + self.prior_kl(y0)

    # -- the bound over any sub-trajectory and sampling ---------------------------------
    def _bound(self, x, path: list[int], variance, generator) -> torch.Tensor:
        """One estimate of the variational bound per example over ``path``: each
        step's KL in closed form at its own draw of x_t ~ q(x_t | x_0)."""
        y0 = self.to_chain(x)
        total = -self.prior_kl(y0)
        for k in range(len(path) - 1, 0, -1):
            s, t = path[k - 1], path[k]
            next_t = path[k + 1] if k + 1 < len(path) else None
            y_t, _ = self.diffuse(y0, torch.full((len(y0),), t), generator)
            if s > 0:
                total = total - self.step_kl(y0, y_t, s, t, next_t, variance)
            else:
                total = total + self.decoder(y_t, t, next_t, variance).log_prob(x)
        return total

    def log_prob(
        self, x, steps: int | None = None, variance: str | None = None, seed: int = 0
    ) -> torch.Tensor:
        """The variational bound on log p(x) per example (nats; a density of the
        dequantized pixels for images, so that ``bits_per_dim`` reads as the flows'):
        over the evenly spaced sub-trajectory of ``steps`` = K steps (all T by
        default), with the reverse ``variance`` (the config's by default). Each of the
        K terms is in closed form at one draw of x_t per example, from ``seed``: the
        same numbers on every call (the bound's estimate, not an upper or lower bound
        of it)."""
        from pyrogen.chunks import map_chunks

        (x,) = self.prepare(x)
        path = self.schedule.trajectory(steps).tolist()
        kind = check_choice(variance or self.config.variance, "variance", VARIANCES)
        if kind == "analytic":
            self._gamma(torch.tensor(path[1:]))  # refuse before any work

        def rows(part):
            generator = torch.Generator(part.device).manual_seed(int(seed))
            return self._bound(part, path, kind, generator)

        with torch.no_grad():
            return map_chunks(rows, x, self._numbers_per_example())

    def bits_per_dim(self, x, **options) -> torch.Tensor:
        """The bound in bits per dimension (of the discrete images: + log2 levels)."""
        dims = math.prod(self.config.data_shape)
        bits = -self.log_prob(x, **options) / (dims * math.log(2.0))
        return bits + (math.log2(self.config.data_levels) if self.bounded else 0.0)

    def _numbers_per_example(self) -> int:
        width = (
            max(self.config.hidden)
            if len(self.config.data_shape) == 1
            else 8 * self.config.channels
        )
        return 8 * width * math.prod(self.config.data_shape[1:] or [1])

    def sample(
        self,
        n: int,
        steps: int | None = None,
        eta: float = 1.0,
        variance: str | None = None,
        clip: bool | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        """n draws by the reverse chain over the sub-trajectory of ``steps`` = K steps
        (all T by default): ancestral sampling (``eta=1``), DDIM (``eta=0``, with
        ``variance="beta_tilde"``, the deterministic sampler) or between, with the
        reverse ``variance``; the last step returns the decoder's mean (Ho et al.).
        ``clip``: x0_hat clipped to [-1, 1] at every step (images: on by default)."""
        check_positive_int(n, "n")
        if not 0.0 <= float(eta) <= 1.0:
            raise ValueError(f"eta: must be in [0, 1], got {eta!r}")
        path = self.schedule.trajectory(steps).tolist()
        kind = check_choice(variance or self.config.variance, "variance", VARIANCES)
        clip = self.bounded if clip is None else bool(clip)
        reference = self.shift
        generator = None if seed is None else torch.Generator(reference.device).manual_seed(seed)
        shape = (n, *self.config.data_shape)
        y = torch.randn(shape, dtype=reference.dtype, device=reference.device, generator=generator)
        with torch.no_grad():
            for k in range(len(path) - 1, 0, -1):
                s, t = path[k - 1], path[k]
                next_t = path[k + 1] if k + 1 < len(path) else None
                mean, var, _ = self.reverse(y, s, t, next_t, kind, eta=eta, clip=clip)
                if s == 0:
                    y = mean
                    break
                noise = torch.randn(shape, dtype=y.dtype, device=y.device, generator=generator)
                y = mean + var.sqrt() * noise
        return self.from_chain(y)

    # -- Analytic-DPM's moments ------------------------------------------------------------
    def estimate_moments(
        self, x, steps: int | None = None, num_samples: int | None = None, seed: int = 0
    ) -> torch.Tensor:
        """Gamma_t = E ||eps_theta(x_t, t)||^2 / d by Monte Carlo at the steps of the
        sub-trajectory of ``steps`` = K (all T by default), over ``num_samples``
        training examples (default: as many as give about 4,000 numbers per step, at
        least 100) with x_t ~ q(x_t | x_0): the analytic variance's one estimate, made
        once after a fit (Bao et al. 2022, Algorithm 1). Returns Gamma (T + 1,), NaN
        where not estimated.

        At large t the variance needs 1 - Gamma_t, tiny beside Gamma_t's Monte Carlo
        error (about 1e-3 against 1e-2 for 2-D data), and the coefficient c^2 it is
        multiplied by is large: the mean of ||eps_hat||^2 / d is taken with the
        drawn noise's ||eps||^2 / d, whose mean is exactly 1, as a control variate
        (regression coefficient estimated from the same draws), which removes most of
        that error where eps_hat tracks eps."""
        (x,) = self.prepare(x)
        dims = math.prod(self.config.data_shape)
        count = num_samples or max(100, math.ceil(4000 / dims))
        count = min(check_positive_int(count, "num_samples"), len(x))
        checksum = self._weights_checksum()
        if not torch.isclose(self.gamma_weights, checksum, rtol=1e-12):
            self.gamma_gap.fill_(math.nan)  # estimated with other weights
        generator = torch.Generator(x.device).manual_seed(int(seed))
        with torch.no_grad():
            for t in self.schedule.trajectory(steps).tolist()[1:]:
                if torch.isfinite(self.gamma_gap[t]):
                    continue
                index = torch.randperm(len(x), generator=generator, device=x.device)[:count]
                y0 = self.to_chain(x[index])
                y_t, eps = self.diffuse(y0, torch.full((count,), t), generator)
                eps_hat, _ = self.predict(y_t, torch.full((count,), t))
                gamma = _control_variate_mean(eps_hat.double() ** 2, eps.double() ** 2)
                self.gamma_gap[t] = 1 - gamma
        self.gamma_weights.copy_(checksum)
        return 1 - self.gamma_gap.double()

    def observed_data(self, x: torch.Tensor) -> dict:
        """ArviZ's observed_data (named here: tracing the whole chain to find it costs T
        network passes over the data)."""
        return {"x": x.detach().cpu().numpy()}

    def pointwise_log_likelihood(self, draws: dict, x: torch.Tensor) -> dict:
        """ArviZ's log_likelihood: the bound per example (one draw of the fit)."""
        return {"x": self.log_prob(x)[None].cpu().numpy()}
