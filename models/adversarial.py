r"""Implicit generative models fitted adversarially: GAN, adversarial autoencoder,
ALI/BiGAN.

Each is a Pyro model/guide pair, and adversarial training is variational inference on
joint distributions (the reading of Mohamed and Lakshminarayanan 2016 and of the
ALI paper): a critic the engine owns estimates a divergence between two
distributions, and the model's networks move to shrink it. ``pyrogen.fit(model, x,
method="adversarial", loss="ns" | "wgan-gp" | "hinge")``
(:mod:`pyrogen.infer.adversarial`).

**GAN** (Goodfellow et al. 2014). Model:

.. math::

    z_n \sim \mathcal{N}(0, I_d), \qquad x_n = G_\theta(z_n)

(``x`` an :class:`~pyrogen.distributions.Implicit` site: draws, no density); no guide.
Matched: p_theta(x) against the data's distribution. At the optimal critic the
non-saturating loss's fixed point is p_theta = p_data (the minimax loss is
2 JS(p_data || p_theta) - log 4 there); WGAN-GP estimates the Wasserstein-1
distance (Gulrajani et al. 2017).

**Adversarial autoencoder** (Makhzani et al. 2016). Model and guide are the VAE's:
:math:`z \sim p(z)`, :math:`x \mid z \sim p_\theta(x \mid z)` (Bernoulli or Gaussian
decoder), :math:`q_\phi(z \mid x) = \mathcal{N}(\mu_\phi(x), \sigma_\phi(x)^2)`.
The ELBO's KL(q(z | x) || p(z)) per example is replaced by a divergence between the
aggregate posterior :math:`q_\phi(z) = E_{p_{data}(x)} q_\phi(z \mid x)` and the prior,
estimated by the critic on z; the players' loss adds the reconstruction term
:math:`-E_{q_\phi(z|x)} \log p_\theta(x \mid z)`. Because the decoder has a density,
``log_prob`` is the VAE's importance-sampled estimate (the encoder as proposal), and
the model can also be fitted as a VAE (``method="svi"``).

**ALI / BiGAN** (Dumoulin et al. 2017; Donahue, Kraehenbuehl and Darrell 2017).
Model: :math:`z \sim \mathcal{N}(0, I)`, :math:`x = G_\theta(z)` (implicit); guide:
:math:`q_\phi(z \mid x) = \mathcal{N}(\mu_\phi(x), \sigma_\phi(x)^2)`. Matched: the
joints :math:`p_\theta(x, z) = p(z)\, \delta(x - G_\theta(z))` and
:math:`q_\phi(x, z) = p_{data}(x)\, q_\phi(z \mid x)`, with one critic on pairs
(x, z); at the optimum the encoder inverts the generator. ``encode`` and
``reconstruct`` (G at the encoder's mean) read that.

References:
    Goodfellow et al. (2014). Generative Adversarial Nets. NeurIPS.
    Radford, Metz and Chintala (2016). Unsupervised Representation Learning with Deep
        Convolutional GANs. ICLR.
    Makhzani, Shlens, Jaitly, Goodfellow and Frey (2016). Adversarial Autoencoders. ICLR
        workshop.
    Dumoulin et al. (2017). Adversarially Learned Inference. ICLR.
    Donahue, Kraehenbuehl and Darrell (2017). Adversarial Feature Learning. ICLR.
    Gulrajani et al. (2017). Improved Training of Wasserstein GANs. NeurIPS.
    Mohamed and Lakshminarayanan (2016). Learning in Implicit Generative Models.
    Srivastava et al. (2017). VEEGAN. NeurIPS (the 2-D mode-coverage protocol).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyrogen.models.vae import VAE

from pyrogen.distributions.implicit import Implicit, ImplicitDensityError
from pyrogen.infer.fast_elbo import module
from pyrogen.nn.adversarial_nets import ConvGenerator, Critic, MLPGenerator, packed_shape
from pyrogen.nn.vae_nets import ConvEncoder, MLPEncoder
from pyrogen.validation import (
    check_choice,
    check_data_shape,
    check_positive_int,
    check_widths,
)
from pyrogen.zoo import NetworkModel, data_plate, register

__all__ = ["GAN", "ALI", "AdversarialAutoencoder"]


def _check_unit_interval(x: torch.Tensor, name: str = "x") -> None:
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(
            f"{name}: the generator's output is a sigmoid (output='sigmoid'), so the data "
            f"must lie in [0, 1]; got values in [{x.min().item():.3g}, {x.max().item():.3g}]"
        )


class _Implicit(NetworkModel):
    """What GAN and ALI share: z ~ N(0, I), x = G(z) an implicit site; the critic the
    engine owns; ``sample``; ``log_prob`` refused."""

    implicit = True  # samples, no density: the contract and ArviZ export know it
    default_method = "adversarial"
    methods = ("adversarial",)
    adversarial_lr = 2e-4
    adversarial_batch_size = 64
    # pyrogen fit gan|ali: --data ring|grid|checkerboard|moons|FILE.csv|fashion_mnist|digits
    cli_data = "adversarial"
    cli_report = "adversarial"
    cli_defaults = {"data_shape": [2]}
    cli_fit = {"num_steps": 3000, "lr": 1e-3, "batch_size": 256}

    def __init__(
        self,
        data_shape,
        latent_dim: int = 64,
        hidden=(256, 256),
        critic_hidden=(256, 256),
        architecture: str = "mlp",
        channels: int = 64,
        output: str = "linear",
    ):
        super().__init__()
        self._build_generator()
        self._build_encoder()

    def _build_encoder(self) -> None:
        """The guide's networks, where the model has a guide (ALI)."""

    def _build_generator(self) -> None:
        config = self.config
        self.normalize(data_shape=check_data_shape(config.data_shape))
        check_positive_int(config.latent_dim, "latent_dim")
        check_choice(config.architecture, "architecture", ("mlp", "conv"))
        check_choice(config.output, "output", ("linear", "sigmoid"))
        self.normalize(
            hidden=check_widths(config.hidden, type(self).__name__),
            critic_hidden=check_widths(config.critic_hidden, type(self).__name__),
        )
        check_positive_int(config.channels, "channels")
        if config.architecture == "conv":
            self.generator = ConvGenerator(
                config.data_shape, config.latent_dim, config.channels, config.output
            )
        else:
            self.generator = MLPGenerator(
                config.data_shape, config.latent_dim, config.hidden, config.output
            )

    def prepare(self, *data) -> tuple:
        (x,) = super().prepare(*data)
        if self.config.output == "sigmoid":
            _check_unit_interval(x)
        return (x,)

    @property
    def event_dims(self) -> int:
        return len(self.config.data_shape)

    def latent_prior(self, like: torch.Tensor | None = None) -> dist.Distribution:
        like = next(self.parameters()) if like is None else like
        d = self.config.latent_dim
        return dist.Normal(like.new_zeros(d), like.new_ones(d)).to_event(1)

    def _generated(self, z) -> Implicit:
        return Implicit(self.generator(z), self.event_dims, name=type(self).__name__)

    def model(self, x, num_examples: int | None = None) -> None:
        module("generator", self.generator)
        with data_plate(x, num_examples):
            z = pyro.sample("z", self.latent_prior(x))
            pyro.sample("x", self._generated(z), obs=x)

    def make_critic(self, pack: int = 1) -> Critic:
        """The critic of ``critic_sites``; with ``pack`` = m it reads m examples at once
        (PacGAN), each part's first dimension m times as long."""
        config = self.config
        shapes = {"x": config.data_shape, "z": (config.latent_dim,)}
        channels = config.channels if config.architecture == "conv" else None
        parts = [packed_shape(shapes[s], pack) for s in self.critic_sites]
        return Critic(parts, config.critic_hidden, channels)

    def log_prob(self, x) -> torch.Tensor:
        raise ImplicitDensityError(
            f"log_prob: {type(self).__name__} is an implicit model (x = G(z)): it has "
            "samples, not a density; measure it by its samples (pyrogen.toy.mode_coverage, "
            "pyrogen.features.fashion_frechet_distance, precision_recall)"
        )

    def sample(self, n: int) -> torch.Tensor:
        """n draws x = G(z), z ~ N(0, I)."""
        check_positive_int(n, "n")
        with torch.no_grad():
            return self.generator(self.latent_prior().sample((n,)))

    def decode(self, z) -> torch.Tensor:
        """G(z) at given codes z (N, latent_dim)."""
        z = torch.as_tensor(z, dtype=next(self.parameters()).dtype)
        with torch.no_grad():
            return self.generator(z)


@register("gan")
class GAN(_Implicit):
    """A generative adversarial network: x = G(z), z ~ N(0, I), an implicit model.

    Arguments:
        data_shape: one example's shape, e.g. ``(2,)`` or ``(1, 28, 28)``.
        latent_dim: d, the size of z.
        hidden: the MLP generator's hidden widths (ReLU).
        critic_hidden: the critic's MLP hidden widths (leaky ReLU), after the
            convolutional trunk for images.
        architecture: ``"mlp"`` or ``"conv"`` (DCGAN-style, sides divisible by 4).
        channels: the convolutional networks' base width.
        output: ``"linear"`` (real data) or ``"sigmoid"`` (data in [0, 1]).

    Sites: ``z`` (N, d) latent, ``x`` implicit and observed; the critic reads ``x``.
    """

    critic_sites = ("x",)

    def adversarial_draws(self, x):
        """The engine's draws without traces (the same numbers as
        :func:`~pyrogen.infer.adversarial.trace_draws`): p = G(z), q = the data."""
        z = torch.randn(len(x), self.config.latent_dim, dtype=x.dtype, device=x.device)
        return {"x": self.generator(z)}, {"x": x}, None


@register("ali")
class ALI(_Implicit):
    """Adversarially learned inference (BiGAN): a generator x = G(z) and an encoder
    q(z | x), fitted by one critic on (x, z) pairs.

    Arguments:
        data_shape, latent_dim, hidden, critic_hidden, architecture, channels, output:
            as :class:`GAN`'s (the encoder mirrors the generator: an MLP with
            ``hidden``, or two stride-2 convolutions).

    Sites: ``z`` and ``x`` (implicit) in the model; ``z`` in the guide; the critic
    reads ``(x, z)``.
    """

    critic_sites = ("x", "z")

    def _build_encoder(self) -> None:
        config = self.config
        if config.architecture == "conv":
            self.encoder = ConvEncoder(config.data_shape, config.latent_dim, config.hidden)
        else:
            self.encoder = MLPEncoder(
                config.data_shape, config.latent_dim, config.hidden, torch.nn.ReLU
            )

    def guide(self, x, num_examples: int | None = None) -> None:
        module("encoder", self.encoder)
        with data_plate(x, num_examples):
            loc, scale = self.encoder(x)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def adversarial_draws(self, x):
        """p = (G(z), z), z ~ N(0, I); q = (x, z ~ q(z | x)); drawn in the traces' order."""
        z_p = torch.randn(len(x), self.config.latent_dim, dtype=x.dtype, device=x.device)
        loc, scale = self.encoder(x)
        z_q = loc + scale * torch.randn_like(loc)
        return {"x": self.generator(z_p), "z": z_p}, {"x": x, "z": z_q}, None

    def encode(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's (loc, scale) of q(z | x), each (N, latent_dim)."""
        (x,) = self.prepare(x)
        with torch.no_grad():
            return self.encoder(x)

    def reconstruct(self, x) -> torch.Tensor:
        """G at the encoder's mean: x -> z -> x."""
        return self.decode(self.encode(x)[0])


@register("aae")
class AdversarialAutoencoder(VAE):
    """An adversarial autoencoder: the VAE's model and guide, with the KL term replaced
    by a critic between the aggregate posterior q(z) and the prior p(z).

    Arguments:
        as :class:`~pyrogen.models.VAE`'s (standard prior; no flows), plus
        critic_hidden: the critic's hidden widths (an MLP on z).

    Sites: ``z`` and ``x`` in the model, ``z`` in the guide; the critic reads ``z``.
    ``log_prob`` is the importance-sampled estimate of the decoder's log p(x) with the
    encoder as proposal, as the VAE's.
    """

    critic_sites = ("z",)
    reconstructs = True  # the players' loss adds -E_q log p(x | z)
    methods = ("adversarial", "svi")
    default_method = "adversarial"
    adversarial_lr = 1e-3
    adversarial_batch_size = 128
    cli_data, cli_report, cli_fit = "vae_images", "vae", {}

    def __init__(
        self,
        data_shape,
        latent_dim: int = 8,
        hidden=(400,),
        likelihood: str = "bernoulli",
        architecture: str = "mlp",
        scale: float | None = None,
        corruption: float = 0.0,
        critic_hidden=(256, 256),
    ):
        super(VAE, self).__init__()  # the VAE's networks, without its priors and flows
        self._build()
        self._build_flows()
        self.normalize(critic_hidden=check_widths(critic_hidden, "AdversarialAutoencoder"))

    def make_critic(self, pack: int = 1) -> Critic:
        return Critic([packed_shape((self.config.latent_dim,), pack)], self.config.critic_hidden)

    def adversarial_draws(self, x):
        """p = z ~ N(0, I); q = z ~ q(z | x); and -log p(x | z_q) per example."""
        z_p = torch.randn(len(x), self.config.latent_dim, dtype=x.dtype, device=x.device)
        loc, scale = self.encoder(x)[:2]
        z_q = loc + scale * torch.randn_like(loc)
        nll = -self._likelihood(self.decoder(z_q)).log_prob(x)
        return {"z": z_p}, {"z": z_q}, nll
