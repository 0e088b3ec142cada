r"""Variational autoencoders: a Pyro model with an amortized guide.

**Model** (Kingma and Welling 2014; Rezende, Mohamed and Wierstra 2014):

.. math::

    z_n \sim \mathcal{N}(0, I_d), \qquad
    x_n \mid z_n \sim p_\theta(x_n \mid z_n) =
    \begin{cases} \prod_j \mathrm{Bernoulli}(x_{nj};\ \sigma(f_\theta(z_n)_j))
        & \text{binary data} \\
    \prod_j \mathcal{N}(x_{nj};\ f_\theta(z_n)_j,\ s_j^2) & \text{real data} \end{cases}

with a decoder network :math:`f_\theta` (MLP or convolutional) and a fixed or learned
scale :math:`s`. **Guide**: the amortized Gaussian
:math:`q_\phi(z_n \mid x_n) = \mathcal{N}(\mu_\phi(x_n), \mathrm{diag}\,\sigma_\phi(x_n)^2)`,
sampled by the reparameterization trick, so ``pyrogen.fit(vae, x, method="svi")``
maximizes the ELBO

.. math::

    \mathcal{L}(x) = \mathbb{E}_{q}[\log p_\theta(x \mid z)]
    - \beta\, \mathrm{KL}(q_\phi(z \mid x) \,\|\, p(z)) \le \log p_\theta(x)

over :math:`\theta` and :math:`\phi` (``loss="mean_field"`` takes the KL in closed
form, ``loss="iwae"`` the importance-weighted bound of Burda, Grosse and
Salakhutdinov 2016). ``prior="vamp"`` replaces N(0, I) by the VampPrior of Tomczak
and Welling (2018), the encoder's mixture at K learned pseudo-inputs,
:math:`p_\lambda(z) = \frac1K \sum_{k=1}^K q_\phi(z \mid u_k)` (its KL has no closed
form, so the ELBO estimates it from the same draw). ``beta`` > 1 is the beta-VAE of
Higgins et al. (2017);
``posterior_flow`` = T > 0 makes the guide an inverse autoregressive flow (Kingma,
Salimans, Jozefowicz, Chen, Sutskever and Welling 2016):
:math:`z_0 \sim \mathcal{N}(\mu_\phi(x), \mathrm{diag}\,\sigma_\phi(x)^2)`, then T
steps :math:`z_t = \sigma_t \odot z_{t-1} + (1 - \sigma_t) \odot m_t`, with
:math:`(m_t, \sigma_t)` from a MADE of :math:`z_{t-1}` and a context h(x) the encoder
gives beside :math:`(\mu, \sigma)` (the paper's numerically stable step; Pyro's
``ConditionalAffineAutoregressive`` with ``stable=True``), the order reversed between
steps, so :math:`\log q(z_T \mid x) = \log q(z_0 \mid x) - \sum_t \sum_i \log
\sigma_{t,i}` in one pass per step; ``prior_flow`` = L > 0 replaces N(0, I) by a
masked autoregressive flow prior (L MAF layers on N(0, I): a learned prior, as the
autoregressive prior of Chen et al. 2017), scored in one pass per layer; its layers
are the stable ones too (from z to the noise each contracts, so the prior's density
never exceeds the standard normal's peak: with unbounded scales the prior, the
posterior and the decoder's input shrank together and training diverged);
``corruption`` trains a denoising VAE (Im et al. 2017): the encoder sees a corrupted
copy (pixels dropped with that probability for binary data, Gaussian noise of that sd
for real data) and the decoder reconstructs the clean data. :class:`Autoencoder` is
the deterministic autoencoder the VAE is contrasted with (a baseline, not a zoo
entry: it has no density to sample from).

**Two stochastic layers** (:class:`HierarchicalVAE`; the two-layer model of Burda et
al. 2016 and Tomczak and Welling 2018):

.. math::

    z_2 \sim p(z_2), \quad z_1 \mid z_2 \sim \mathcal{N}(\mu_\theta(z_2),
    \mathrm{diag}\,\sigma_\theta(z_2)^2), \quad x \mid z_1, z_2 \sim
    p_\theta(x \mid z_1, z_2),

with the guide :math:`q_\phi(z_2 \mid x)\, q_\phi(z_1 \mid x, z_2)` and p(z_2) the
standard normal or the VampPrior.

**Evaluation**: :meth:`VAE.log_prob` is the importance-sampled estimate

.. math::

    \log p(x) \approx \log \frac1K \sum_{k=1}^K
    \frac{p_\theta(x \mid z_k)\, p(z_k)}{q_\phi(z_k \mid x)}, \qquad z_k \sim q_\phi(\cdot \mid x),

the standard IWAE estimator (K = 5000 in the literature), a stochastic lower bound
whose bias vanishes as K grows; :meth:`VAE.psis_khat` is the Pareto-smoothed
importance sampling diagnostic of the weights (Vehtari et al. 2015): k-hat above 0.7
says the encoder is a poor proposal and the estimate is unreliable.

References:
    Kingma and Welling (2014). Auto-Encoding Variational Bayes. ICLR.
    Burda, Grosse and Salakhutdinov (2016). Importance Weighted Autoencoders. ICLR.
    Higgins et al. (2017). beta-VAE. ICLR.
    Tomczak and Welling (2018). VAE with a VampPrior. AISTATS (binarized MNIST figures).
    Kingma, Salimans, Jozefowicz, Chen, Sutskever and Welling (2016). Improved
        Variational Inference with Inverse Autoregressive Flow. NeurIPS.
    Chen, Kingma, Salimans, Duan, Dhariwal, Schulman, Sutskever and Abbeel (2017).
        Variational Lossy Autoencoder. ICLR.
"""

from __future__ import annotations

import contextlib
import math

import pyro
import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from pyro import poutine
from torch import nn
from torch.nn import functional as F

from pyrogen.chunks import rows_per_chunk
from pyrogen.distributions import DiagonalNormalMixture
from pyrogen.infer.fast_elbo import module
from pyrogen.nn.vae_nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from pyrogen.transforms import Reverse, clear_caches
from pyrogen.validation import (
    check_choice,
    check_data_shape,
    check_positive_int,
    check_positive_number,
)
from pyrogen.zoo import NetworkModel, data_plate, register

__all__ = ["VAE", "HierarchicalVAE", "Autoencoder"]

_NETWORKS = {"mlp": (MLPEncoder, MLPDecoder), "conv": (ConvEncoder, ConvDecoder)}


class _Networks(NetworkModel):
    """What the VAE and the autoencoder share: configuration, networks, data checks."""

    def _build(self) -> None:
        """Check the recorded options, keep them in canonical form, build the networks."""
        config = self.config
        self.normalize(
            data_shape=check_data_shape(config.data_shape),
            hidden=[int(h) for h in config.hidden],
            scale=None if config.scale is None else float(config.scale),
            corruption=float(config.corruption),
        )
        check_positive_int(config.latent_dim, "latent_dim")
        for h in config.hidden:
            check_positive_int(h, "hidden")
        check_choice(config.likelihood, "likelihood", ("bernoulli", "gaussian"))
        check_choice(config.architecture, "architecture", tuple(_NETWORKS))
        if hasattr(config, "beta"):
            self.normalize(beta=check_positive_number(config.beta, "beta", allow_zero=True))
        if config.scale is not None:
            check_positive_number(config.scale, "scale")
        if not 0.0 <= config.corruption < 1.0 or not math.isfinite(config.corruption):
            raise ValueError(f"corruption: must be in [0, 1), got {config.corruption}")
        encoder, decoder = _NETWORKS[config.architecture]
        context = config.flow_hidden if getattr(config, "posterior_flow", 0) else 0
        self.encoder = encoder(
            config.data_shape, config.latent_dim, config.hidden, context_dim=context
        )
        self.decoder = decoder(config.data_shape, config.latent_dim, config.hidden)
        if config.likelihood == "gaussian" and config.scale is None:
            self.raw_scale = nn.Parameter(torch.zeros(config.data_shape))

    @property
    def prior_kind(self) -> str:
        """``"standard"`` or ``"vamp"`` (a model without a ``prior`` option: standard)."""
        return getattr(self.config, "prior", "standard")

    @property
    def event_dims(self) -> int:
        return len(self.config.data_shape)

    @property
    def binary_data(self) -> bool:
        return self.config.likelihood == "bernoulli"

    def _register_scale(self) -> None:
        """A learned Gaussian sd is a Pyro parameter of the model."""
        if self.config.likelihood == "gaussian" and self.config.scale is None:
            pyro.param("raw_scale", self.raw_scale)

    def _kl_weight(self):
        """beta on the latent's sites of model and guide (no handler at all for beta = 1;
        a mask for beta = 0, which Pyro's scale handler refuses)."""
        beta = getattr(self.config, "beta", 1.0)
        if beta == 1.0:
            return contextlib.nullcontext()
        return poutine.scale(scale=beta) if beta > 0 else poutine.mask(mask=False)

    def _likelihood(self, out) -> dist.Distribution:
        """p(x | z) from the decoder's output, with the data dimensions as the event."""
        if self.config.likelihood == "bernoulli":
            base = dist.Bernoulli(logits=out, validate_args=False)
        else:
            scale = self.scale.to(out.dtype)
            base = dist.Normal(out, scale)
        return base.to_event(self.event_dims)

    @property
    def scale(self) -> torch.Tensor:
        """The Gaussian likelihood's sd per data dimension."""
        if self.config.scale is not None:
            return torch.tensor(self.config.scale)
        return F.softplus(self.raw_scale + math.log(math.e - 1)) + 1e-3  # starts at ~1

    def _corrupt(self, x):
        p = self.config.corruption
        if p == 0.0 or not self.training:
            return x
        if self.config.likelihood == "bernoulli":
            return x * (torch.rand_like(x) >= p)
        return x + p * torch.randn_like(x)

    def initialize(self, x) -> None:
        """A learned Gaussian sd starts at each dimension's sd in the data (the sd a
        model that ignored z would learn), not at 1, whatever the data's scale."""
        self.train()
        if self.config.likelihood == "gaussian" and self.config.scale is None and len(x) > 1:
            sd = x.std(0).clamp_min(1e-2) - 1e-3
            with torch.no_grad():
                self.raw_scale.copy_(torch.log(torch.expm1(sd)) - math.log(math.e - 1))

    def _mean(self, out) -> torch.Tensor:
        """The likelihood's mean from the decoder's output: probabilities or means."""
        return torch.sigmoid(out) if self.config.likelihood == "bernoulli" else out

    def reconstruct(self, x) -> torch.Tensor:
        """The decoder's mean at the encoder's mean: probabilities or Gaussian means."""
        (x,) = self.prepare(x)
        with torch.no_grad():
            return self._mean(self.decoder(self.encoder(x)[0]))

    def encode(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's (loc, scale) of q(z | x) (of z_0 under a posterior flow), each
        (N, latent_dim)."""
        (x,) = self.prepare(x)
        with torch.no_grad():
            return self.encoder(x)[:2]

    def _decoder_output(self, z, mean: bool) -> torch.Tensor:
        """The decoder's output at codes z (any layers below z at their mean, or drawn)."""
        return self.decoder(z)

    def decode(self, z, mean: bool = True) -> torch.Tensor:
        """Data from latents: the likelihood's mean, or a draw with ``mean=False``."""
        z = torch.as_tensor(z, dtype=next(self.parameters()).dtype)
        with torch.no_grad():
            out = self._decoder_output(z, mean)
            return self._mean(out) if mean else self._likelihood(out).sample()


@register("vae")
class VAE(_Networks):
    """A variational autoencoder (see the module docstring for the math).

    Arguments:
        data_shape: the shape of one example, e.g. ``(784,)`` or ``(28, 28)``.
        latent_dim: d, the size of z.
        hidden: hidden layer widths of the MLPs (encoder; the decoder mirrors them), or
            of the linear layer around the convolutions.
        likelihood: ``"bernoulli"`` (binary data) or ``"gaussian"``.
        architecture: ``"mlp"`` or ``"conv"`` (images with sides divisible by 4).
        beta: the weight of the KL term (1: the VAE; > 1: beta-VAE).
        scale: Gaussian likelihood sd; None learns one per data dimension.
        corruption: > 0 trains a denoising VAE.
        prior: ``"standard"`` (N(0, I)) or ``"vamp"`` (the VampPrior).
        num_pseudo: K, the VampPrior's pseudo-inputs (learned; started at K random
            training examples by ``fit``).
        posterior_flow: T > 0 inverse autoregressive flow steps on q(z | x).
        prior_flow: L > 0 masked autoregressive flow layers on p(z).
        flow_hidden: the flows' MADE hidden width (two layers), and the width of the
            context h(x) the encoder gives the posterior flow.

    Sites: ``z`` (N, d) latent, ``x`` observed; networks ``decoder`` (model) and
    ``encoder`` (guide; in the model too under the VampPrior, with the pseudo-inputs
    ``raw_pseudo``) are registered with ``pyro.module``.
    """

    # traceable, but torch.jit's compile (once per batch shape) cost more than it saved
    # in bench/vae_epoch.py, so fit does not compile the ELBO by default
    jit_safe = False
    methods = ("svi", "map")  # the amortized guide (svi), or a point per example (map)
    # pyrogen fit vae|hvae: binarized MNIST or dequantized 8x8 digits, the analytic KL
    cli_data, cli_report, cli_aliases = "vae_images", "vae", {"latent": "latent_dim"}
    cli_fit = {"loss": "mean_field"}

    def __init__(
        self,
        data_shape,
        latent_dim: int = 50,
        hidden=(400,),
        likelihood: str = "bernoulli",
        architecture: str = "mlp",
        beta: float = 1.0,
        scale: float | None = None,
        corruption: float = 0.0,
        prior: str = "standard",
        num_pseudo: int = 500,
        posterior_flow: int = 0,
        prior_flow: int = 0,
        flow_hidden: int = 256,
    ):
        super().__init__()
        check_choice(prior, "prior", ("standard", "vamp"))
        check_positive_int(num_pseudo, "num_pseudo")
        self.normalize(num_pseudo=int(num_pseudo))
        self._check_flows(prior, posterior_flow, prior_flow, flow_hidden)
        self._build()
        if prior == "vamp":  # pseudo-inputs, before the squashing of _pseudo_inputs
            self.raw_pseudo = nn.Parameter(torch.zeros(num_pseudo, *self.config.data_shape))
        self._build_flows()

    def _check_flows(self, prior, posterior_flow, prior_flow, flow_hidden) -> None:
        check_positive_int(posterior_flow, "posterior_flow", minimum=0)
        check_positive_int(prior_flow, "prior_flow", minimum=0)
        check_positive_int(flow_hidden, "flow_hidden")
        if prior == "vamp" and (posterior_flow or prior_flow):
            raise ValueError(
                "prior: the VampPrior is the encoder's mixture, so it takes no "
                "posterior_flow or prior_flow"
            )
        if hasattr(self.config, "posterior_flow"):  # not HierarchicalVAE's (no flows)
            self.normalize(
                posterior_flow=int(posterior_flow),
                prior_flow=int(prior_flow),
                flow_hidden=int(flow_hidden),
            )

    def _build_flows(self) -> None:
        """The IAF steps of q(z | x) and the MAF layers of p(z)."""
        from pyrogen.models.flows import made, orders

        d, width = self.config.latent_dim, getattr(self.config, "flow_hidden", 1)
        posterior_flow = getattr(self.config, "posterior_flow", 0)
        prior_flow = getattr(self.config, "prior_flow", 0)
        self.has_posterior_flow, self.has_prior_flow = bool(posterior_flow), bool(prior_flow)
        if d < 2 and (posterior_flow or prior_flow):
            raise ValueError("latent_dim: autoregressive flows need latent_dim >= 2")
        self.posterior_flows = nn.ModuleList(
            T.ConditionalAffineAutoregressive(
                made(d, [width, width], order, context_dim=width), stable=True
            )
            for order in (orders(d, posterior_flow) if posterior_flow else [])
        )
        self.prior_flows = nn.ModuleList(
            T.AffineAutoregressive(made(d, [width, width], order), stable=True)
            for order in (orders(d, prior_flow) if prior_flow else [])
        )

    def _posterior_transforms(self, encoded) -> list:
        """z_0 -> z_T: the IAF steps given the encoder's context, reversals between."""
        out = []
        for i, step in enumerate(self.posterior_flows):
            if i:
                out.append(Reverse())
            out.append(step.condition(encoded[2]))
        return out

    def posterior(self, encoded) -> dist.Distribution:
        """q(z | x) from the encoder's output at x: a diagonal normal, or its IAF."""
        q = dist.Normal(encoded[0], encoded[1]).to_event(1)
        if not self.has_posterior_flow:
            return q
        return dist.TransformedDistribution(q, self._posterior_transforms(encoded))

    def _pseudo_inputs(self) -> torch.Tensor:
        """The VampPrior's K pseudo-inputs u_k, in [0, 1] for binary data."""
        if self.config.likelihood == "bernoulli":
            return torch.sigmoid(self.raw_pseudo)
        return self.raw_pseudo

    def latent_prior(self) -> dist.Distribution:
        """p(z): N(0, I), or the VampPrior (1/K) sum_k q(z | u_k)."""
        reference = next(self.parameters())
        d = self.config.latent_dim
        if self.prior_kind == "standard":
            normal = dist.Normal(reference.new_zeros(d), reference.new_ones(d)).to_event(1)
            if not self.has_prior_flow:
                return normal
            clear_caches(self.prior_flows)
            layers = []  # MAF: each layer inverted, so log p(z) is one pass per layer
            for i, layer in enumerate(self.prior_flows):
                layers += [Reverse()] if i else []
                layers.append(layer.inv)
            return dist.TransformedDistribution(normal, layers)
        # the mixture's log-density is one matrix product (MixtureSameFamily builds
        # several (draws, K, d) tensors and took most of the evaluation's time)
        return DiagonalNormalMixture(*self.encoder(self._pseudo_inputs()))

    def _register_generative(self) -> None:
        """The model's parameters: the decoder, a learned sd, and under the VampPrior
        the encoder and the pseudo-inputs (the prior is the encoder at them)."""
        module("decoder", self.decoder)
        if self.has_prior_flow:
            module("prior_flows", self.prior_flows)
        self._register_scale()
        if self.prior_kind == "vamp":
            module("encoder", self.encoder)
            pyro.param("raw_pseudo", self.raw_pseudo)

    def model(self, x, num_examples: int | None = None) -> None:
        self._register_generative()
        prior = self.latent_prior()
        with data_plate(x, num_examples):
            with self._kl_weight():
                z = pyro.sample("z", prior)
            pyro.sample("x", self._likelihood(self.decoder(z)), obs=x)

    def initialize(self, x) -> None:
        """VampPrior pseudo-inputs start at K random training examples (Tomczak and
        Welling initialize them at random; starting from data trains faster)."""
        super().initialize(x)
        if self.prior_kind == "vamp":
            pick = torch.randint(len(x), (self.config.num_pseudo,), device=x.device)
            start = x[pick].to(self.raw_pseudo.dtype)
            with torch.no_grad():
                if self.config.likelihood == "bernoulli":
                    self.raw_pseudo.copy_(torch.logit(0.05 + 0.9 * start))
                else:
                    self.raw_pseudo.copy_(start)

    def guide(self, x, num_examples: int | None = None) -> None:
        module("encoder", self.encoder)
        if self.has_posterior_flow:
            module("posterior_flows", self.posterior_flows)
        with data_plate(x, num_examples):
            encoded = self.encoder(self._corrupt(x))
            with self._kl_weight():
                pyro.sample("z", self.posterior(encoded))

    # -- evaluation ---------------------------------------------------------------------
    def _draw(self, x, encoded, prior, count: int, generator=None) -> tuple[torch.Tensor, ...]:
        """``count`` draws z ~ q(z | x) given the encoder's output at x and p(z):
        log p(x | z), log p(z) and log q(z | x), each (count, N)."""
        loc, scale = encoded[:2]
        noise = torch.randn(
            (count, *loc.shape), generator=generator, dtype=loc.dtype, device=loc.device
        )
        z = loc + scale * noise
        log_qz = dist.Normal(loc, scale).to_event(1).log_prob(z)
        for transform in self._posterior_transforms(encoded):  # IAF: one pass a step
            z, before = transform(z), z
            log_qz = log_qz - transform.log_abs_det_jacobian(before, z)
        log_px = self._likelihood(self.decoder(z)).log_prob(x)
        return log_px, prior.log_prob(z), log_qz

    def _numbers_per_draw(self) -> int:
        """About how many numbers one draw for one example holds at once in
        :meth:`_draw`: the decoder's output and hidden layers, and under the VampPrior
        the K component log-densities of log p(z) (float64, so counted twice, plus the
        logsumexp's temporary)."""
        config = self.config
        numbers = math.prod(config.data_shape) + sum(config.hidden)
        if self.prior_kind == "vamp":
            numbers += 3 * config.num_pseudo
        return numbers

    def _draws_per_chunk(self) -> int:
        """How many example-draws one chunk of the evaluation holds: about 2**22 numbers
        (see :meth:`_numbers_per_draw`)."""
        return rows_per_chunk(self._numbers_per_draw(), budget=2**22)

    def _log_weights(self, x, prior, num_samples: int, chunk: int, generator=None):
        """log p(x, z_k) - log q(z_k | x) for z_k ~ q, shape (num_samples, N), drawn
        ``chunk`` at a time."""
        encoded = self.encoder(x)
        out = []
        for start in range(0, num_samples, chunk):
            count = min(chunk, num_samples - start)
            log_px, log_pz, log_qz = self._draw(x, encoded, prior, count, generator)
            out.append(log_px + log_pz - log_qz)
        return torch.cat(out)

    def _weight_blocks(self, x, num_samples: int, batch_size=None, generator=None):
        """The log-weights of :meth:`_log_weights` for x ``batch_size`` examples at a
        time, each block (num_samples, batch), drawn in chunks so that no chunk holds
        more than about 4M numbers (2**22; see :meth:`_numbers_per_draw`). p(z) is
        built once (the VampPrior encodes its pseudo-inputs once, not per block)."""
        budget = self._draws_per_chunk()  # example-draws per chunk
        batch_size = batch_size or max(1, min(len(x), budget // min(num_samples, 500)))
        chunk = max(1, min(num_samples, budget // batch_size))
        prior = self.latent_prior()
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size]
            yield self._log_weights(batch, prior, num_samples, chunk, generator)

    def log_prob(
        self, x, num_samples: int = 5000, batch_size: int | None = None, seed: int | None = 0
    ) -> torch.Tensor:
        """The importance-sampled log p(x) per example (nats), with ``num_samples`` draws
        of the encoder as proposal (the IWAE estimator). Examples go ``batch_size`` at a
        time and draws in chunks, so that memory stays bounded whatever N and
        ``num_samples`` (about 4M numbers per chunk, the VampPrior's components
        counted). The draws come from their own generator seeded with ``seed`` (None:
        the global one), so by default the same model gives the same estimate."""
        check_positive_int(num_samples, "num_samples")
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        (x,) = self.prepare(x)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=x.device).manual_seed(seed)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            out = [
                log_w.logsumexp(0) - math.log(num_samples)
                for log_w in self._weight_blocks(x, num_samples, batch_size, generator)
            ]
        self.train(was_training)
        return torch.cat(out)

    def psis_khat(self, x, num_samples: int = 1000) -> torch.Tensor:
        """Pareto k-hat of the importance weights p(x, z)/q(z | x) per example (PSIS,
        via ArviZ): below 0.5 reliable, 0.5-0.7 usable, above 0.7 unreliable."""
        import arviz as az

        check_positive_int(num_samples, "num_samples", minimum=20)
        (x,) = self.prepare(x)
        with torch.no_grad():
            log_w = torch.cat(list(self._weight_blocks(x, num_samples)), dim=1)
        _, khat = az.psislw(log_w.double().cpu().numpy().T.copy())
        return torch.as_tensor(khat)

    def elbo(self, x, num_samples: int = 1) -> torch.Tensor:
        """The ELBO per example (beta = 1), a Monte Carlo mean over ``num_samples``."""
        check_positive_int(num_samples, "num_samples")
        (x,) = self.prepare(x)
        with torch.no_grad():
            return torch.cat([w.mean(0) for w in self._weight_blocks(x, num_samples)])

    def _closed_form_kl(self, encoded, prior) -> torch.Tensor | None:
        """KL(q(z | x) || p(z)) per example where it has a closed form (standard prior)."""
        if self.prior_kind != "standard" or self.has_prior_flow or self.has_posterior_flow:
            return None
        return torch.distributions.kl_divergence(dist.Normal(*encoded).to_event(1), prior)

    def elbo_terms(self, x) -> dict[str, torch.Tensor]:
        """The ELBO's two parts per example: the expected log-likelihood
        (reconstruction, one draw) and KL(q || p), in closed form where there is one
        (one layer, standard prior), else from the same draw."""
        (x,) = self.prepare(x)
        batch_size = self._draws_per_chunk()  # one draw per example
        reconstruction, kls = [], []
        with torch.no_grad():
            prior = self.latent_prior()
            for start in range(0, len(x), batch_size):
                batch = x[start : start + batch_size]
                encoded = self.encoder(batch)
                log_px, log_pz, log_qz = (t[0] for t in self._draw(batch, encoded, prior, 1))
                kl = self._closed_form_kl(encoded, prior)
                reconstruction.append(log_px)
                kls.append(log_qz - log_pz if kl is None else kl)
        return {"reconstruction": torch.cat(reconstruction), "kl": torch.cat(kls)}

    def sample(self, n: int, mean: bool = False) -> torch.Tensor:
        """n draws x ~ p(x) (z from the prior); ``mean=True`` gives the decoder's mean
        (probabilities for binary data, the usual picture)."""
        check_positive_int(n, "n")
        with torch.no_grad():
            z = self.latent_prior().sample((n,))
        return self.decode(z, mean=mean)


@register("hvae")
class HierarchicalVAE(VAE):
    """A VAE with two stochastic layers (see the module docstring for the math).

    Arguments are :class:`VAE`'s (``latent_dim`` is the top layer z2, whose prior is
    N(0, I) or the VampPrior), plus ``bottom_dim``, the size of z1. MLP networks only.

    Sites: ``z2`` (N, latent_dim) and ``z1`` (N, bottom_dim) latent, ``x`` observed;
    networks ``decoder`` and ``bottom_prior`` (model), ``encoder`` and
    ``bottom_encoder`` (guide).
    """

    def __init__(
        self,
        data_shape,
        latent_dim: int = 40,
        bottom_dim: int = 40,
        hidden=(300, 300),
        likelihood: str = "bernoulli",
        architecture: str = "mlp",
        beta: float = 1.0,
        scale: float | None = None,
        corruption: float = 0.0,
        prior: str = "standard",
        num_pseudo: int = 500,
    ):
        check_choice(architecture, "architecture", ("mlp",))
        check_positive_int(bottom_dim, "bottom_dim")
        super().__init__(
            data_shape,
            latent_dim,
            hidden,
            likelihood,
            architecture,
            beta,
            scale,
            corruption,
            prior,
            num_pseudo,
        )
        self.normalize(bottom_dim=int(bottom_dim))
        size = math.prod(self.config.data_shape)
        hidden = self.config.hidden
        self.bottom_encoder = MLPEncoder((size + latent_dim,), bottom_dim, hidden)
        self.bottom_prior = MLPEncoder((latent_dim,), bottom_dim, hidden)
        self.decoder = MLPDecoder(self.config.data_shape, bottom_dim + latent_dim, hidden)

    def _numbers_per_draw(self) -> int:
        """:meth:`VAE._numbers_per_draw`, plus q(z1 | x, z2)'s input (x beside each draw
        of z2) and the two bottom networks' hidden layers."""
        size = math.prod(self.config.data_shape)
        return super()._numbers_per_draw() + size + 2 * sum(self.config.hidden)

    def _bottom_q(self, x, z2) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z1 | x, z2): x's leading dimensions broadcast against z2's draws; x's part
        of the first layer is computed once per example, not once per draw."""
        flat = x.reshape(*x.shape[: x.dim() - self.event_dims], -1)
        return self.bottom_encoder.forward_pair(flat, z2)

    def _decode_logits(self, z1, z2) -> torch.Tensor:
        return self.decoder(torch.cat([z1, z2], -1))

    def model(self, x, num_examples: int | None = None) -> None:
        self._register_generative()
        module("bottom_prior", self.bottom_prior)
        prior = self.latent_prior()
        with data_plate(x, num_examples):
            with self._kl_weight():
                z2 = pyro.sample("z2", prior)
                loc, scale = self.bottom_prior(z2)
                z1 = pyro.sample("z1", dist.Normal(loc, scale).to_event(1))
            pyro.sample("x", self._likelihood(self._decode_logits(z1, z2)), obs=x)

    def guide(self, x, num_examples: int | None = None) -> None:
        module("encoder", self.encoder)
        module("bottom_encoder", self.bottom_encoder)
        with data_plate(x, num_examples):
            seen = self._corrupt(x)
            loc, scale = self.encoder(seen)
            with self._kl_weight():
                z2 = pyro.sample("z2", dist.Normal(loc, scale).to_event(1))
                loc, scale = self._bottom_q(seen, z2)
                pyro.sample("z1", dist.Normal(loc, scale).to_event(1))

    def _draw(self, x, encoded, prior, count: int, generator=None) -> tuple[torch.Tensor, ...]:
        """``count`` draws (z1, z2) ~ q given the top encoder's output at x and p(z2):
        log p(x | z1, z2), log p(z1, z2) and log q(z1, z2 | x), each (count, N)."""
        loc2, scale2 = encoded
        shape = (count, *loc2.shape)
        z2 = loc2 + scale2 * torch.randn(
            shape, generator=generator, dtype=loc2.dtype, device=loc2.device
        )
        loc1, scale1 = self._bottom_q(x, z2)
        z1 = loc1 + scale1 * torch.randn(
            loc1.shape, generator=generator, dtype=loc1.dtype, device=loc1.device
        )
        log_px = self._likelihood(self._decode_logits(z1, z2)).log_prob(x)
        p1 = dist.Normal(*self.bottom_prior(z2)).to_event(1)
        log_pz = p1.log_prob(z1) + prior.log_prob(z2)
        log_qz = dist.Normal(loc1, scale1).to_event(1).log_prob(z1)
        log_qz = log_qz + dist.Normal(loc2, scale2).to_event(1).log_prob(z2)
        return log_px, log_pz, log_qz

    def _closed_form_kl(self, encoded, prior) -> torch.Tensor | None:
        return None  # KL(q(z1, z2 | x) || p(z1, z2)) has none

    def reconstruct(self, x) -> torch.Tensor:
        """The decoder's mean at the encoders' means (z2, then z1 given it)."""
        (x,) = self.prepare(x)
        with torch.no_grad():
            z2 = self.encoder(x)[0]
            z1 = self._bottom_q(x, z2)[0]
            return self._mean(self._decode_logits(z1, z2))

    def _decoder_output(self, z2, mean: bool) -> torch.Tensor:
        """From top-layer codes z2: z1 at the mean of p(z1 | z2), or drawn."""
        loc, scale = self.bottom_prior(z2)
        z1 = loc if mean else dist.Normal(loc, scale).sample()
        return self._decode_logits(z1, z2)


class Autoencoder(_Networks):
    """The deterministic autoencoder: z = encoder mean, x ~ p(x | z), fit by maximum
    likelihood of the reconstruction (no prior, no KL). Not a density model:
    :meth:`log_prob` is the reconstruction log-likelihood log p(x | z(x)), which
    unlike a VAE's does not bound log p(x) (it can be made arbitrarily large)."""

    default_method = "mle"

    def __init__(
        self,
        data_shape,
        latent_dim: int = 50,
        hidden=(400,),
        likelihood: str = "bernoulli",
        architecture: str = "mlp",
        scale: float | None = None,
        corruption: float = 0.0,
    ):
        super().__init__()
        self._build()

    def model(self, x, num_examples: int | None = None) -> None:
        module("encoder", self.encoder)
        module("decoder", self.decoder)
        self._register_scale()
        with data_plate(x, num_examples):
            z = self.encoder(self._corrupt(x))[0]
            pyro.sample("x", self._likelihood(self.decoder(z)), obs=x)

    def log_prob(self, x) -> torch.Tensor:
        (x,) = self.prepare(x)
        with torch.no_grad():
            z = self.encoder(x)[0]
            return self._likelihood(self.decoder(z)).log_prob(x)

    def sample(self, n: int) -> torch.Tensor:
        raise NotImplementedError(
            "Autoencoder.sample: a deterministic autoencoder has no prior over its codes; "
            "use a VAE to sample"
        )
