r"""Adversarial fitting as an engine of the shared loop (``method="adversarial"``).

GANs, adversarial autoencoders and ALI/BiGAN all match two joint distributions over
some of a model's sites (the seeds' reading of them as variational inference on joint
distributions; Mohamed and Lakshminarayanan 2016):

- GAN: the model's side :math:`x = G(z),\ z \sim p(z)` against the data
  :math:`x \sim p_{data}`;
- adversarial autoencoder: the prior :math:`z \sim p(z)` against the aggregate
  posterior :math:`q(z) = E_{p_{data}(x)} q(z \mid x)`;
- ALI / BiGAN: :math:`(G(z), z),\ z \sim p(z)` against :math:`(x, z),\ x \sim
  p_{data},\ z \sim q(z \mid x)`.

A model names the sites its critic reads (``critic_sites``); the p side is a trace of
its Pyro ``model`` (unconditioned, so that an :class:`~pyrogen.distributions.Implicit`
site generates x, where x is read), the q side the data and a trace of its ``guide``.
The engine owns a critic D (the model's ``make_critic()``) and alternates
``critic_steps`` critic updates with one update of everything else (generator,
encoder), the q side labelled real:

- ``loss="ns"`` (Goodfellow et al. 2014's non-saturating loss; ALI's): critic
  :math:`-\log \sigma(D(q)) - \log(1 - \sigma(D(p)))`, players
  :math:`-\log \sigma(D(p)) - \log(1 - \sigma(D(q)))`;
- ``loss="wgan-gp"`` (Gulrajani et al. 2017): critic :math:`D(p) - D(q) + \lambda
  (\|\nabla D(\hat u)\| - 1)^2` at random interpolates :math:`\hat u` of the two sides,
  players :math:`D(q) - D(p)`;
- ``loss="hinge"`` (Lim and Ye 2017; Miyato et al. 2018): critic
  :math:`\max(0, 1 - D(q)) + \max(0, 1 + D(p))`, players :math:`D(q) - D(p)`.

A player's term is kept only for a side with parameters behind it (a GAN's q side is
data, an AAE's p side the fixed prior). A model whose data site has a density (the
AAE's decoder) adds its reconstruction term :math:`-E_{q(z|x)} \log p(x | z)` to the
players' loss. Each example's draws go through the model's ``adversarial_draws(x)``
where it has one (plain network calls, the same numbers as the traces: tested), else
through Pyro traces (:func:`trace_draws`).

The loop around the steps (progress bar with both losses, seed, checkpoints of both
players and both optimizers, resume, callbacks, early stopping on a held-out score
with :class:`HeldOutScore`) is :func:`pyrogen.infer.loop.run_loop`; a non-finite
critic or player loss stops the fit with an error naming it, leaving the last
checkpoint as it was.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from pyro import poutine
from torch.nn import functional as F

from pyrogen.infer.svi import _fusable
from pyrogen.nn.adversarial_nets import pack
from pyrogen.validation import check_choice, check_positive_int, check_positive_number

__all__ = [
    "ADVERSARIAL_LOSSES",
    "AdversarialEngine",
    "AdversarialOptions",
    "HeldOutScore",
    "critic_loss",
    "fit_adversarial",
    "player_loss",
    "trace_draws",
]

ADVERSARIAL_LOSSES = ("ns", "wgan-gp", "hinge")


@dataclass
class AdversarialOptions:
    """``method="adversarial"``.

    Attributes:
        loss: ``"ns"`` (non-saturating, default), ``"wgan-gp"`` or ``"hinge"``.
        critic_steps: critic updates per player update (default 1; WGAN-GP uses 5).
        lr: the players' Adam learning rate (default: the model's ``adversarial_lr``,
            else 2e-4).
        critic_lr: the critic's (default: the players').
        betas: Adam's (beta1, beta2) for both (default (0.5, 0.999), DCGAN's; WGAN-GP's
            paper used (0, 0.9)).
        gradient_penalty: lambda of WGAN-GP (default 10).
        batch_size: examples per step (default: the model's ``adversarial_batch_size``,
            else 64).
        pack: m > 1 makes the critic read m examples at once (PacGAN, Lin et al.
            2018): a generator that collapses onto few modes shows it in the packed
            examples' lack of variety, which counters mode collapse. The batch size must
            be a multiple of m.
        num_epochs: passes over the data instead of ``num_steps``, a pass being
            N / batch_size steps (each step reads ``critic_steps`` minibatches).
        instance_noise: the sd of Gaussian noise added to every value the critic reads,
            on both sides, at the start of the run, falling linearly to 0 after
            ``noise_steps`` steps (instance noise: Sonderby et al. 2017; Arjovsky and
            Bottou 2017). Both distributions are matched after convolving them with
            the same Gaussian, whose divergence has useful gradients even where their
            supports do not overlap: a generator that misses a narrow mode still feels
            the critic's pull toward it (default 0: none). On data of scale 1, 0.1-1.
        noise_steps: the steps over which the noise falls to 0 (default: three
            quarters of the run).
    """

    loss: str = "ns"
    critic_steps: int = 1
    lr: float | None = None
    critic_lr: float | None = None
    betas: tuple = (0.5, 0.999)
    gradient_penalty: float = 10.0
    batch_size: int | None = None
    num_epochs: int | None = None
    pack: int = 1
    instance_noise: float = 0.0
    noise_steps: int | None = None

    def __post_init__(self):
        check_choice(self.loss, "loss", ADVERSARIAL_LOSSES)
        check_positive_int(self.critic_steps, "critic_steps")
        for name in ("lr", "critic_lr"):
            if getattr(self, name) is not None:
                check_positive_number(getattr(self, name), name)
        check_positive_number(self.gradient_penalty, "gradient_penalty", allow_zero=True)
        betas = tuple(float(b) for b in self.betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas: expected two numbers in [0, 1), got {self.betas!r}")
        self.betas = betas
        if self.batch_size is not None:
            check_positive_int(self.batch_size, "batch_size")
        if self.num_epochs is not None:
            check_positive_int(self.num_epochs, "num_epochs")
        check_positive_int(self.pack, "pack")
        check_positive_number(self.instance_noise, "instance_noise", allow_zero=True)
        if self.noise_steps is not None:
            check_positive_int(self.noise_steps, "noise_steps")


# -- the draws -------------------------------------------------------------------------
def trace_draws(target, x) -> tuple[dict, dict, torch.Tensor | None]:
    """The two sides' values at ``target.critic_sites`` for the examples x, from Pyro
    traces: the model's (unconditioned where the critic reads x, so that it generates
    x), then the guide's; and the reconstruction term -log p(x | z) per example with z
    from the guide, where the model's data site has a density (else None)."""
    sites = tuple(target.critic_sites)
    model = poutine.uncondition(target.model) if "x" in sites else target.model
    p_trace = poutine.trace(model).get_trace(x)
    p = {s: p_trace.nodes[s]["value"] for s in sites}
    values, q_trace = {"x": x}, None
    if target.guide is not None:
        q_trace = poutine.trace(target.guide).get_trace(x)
        values.update(
            (name, site["value"])
            for name, site in q_trace.nodes.items()
            if site["type"] == "sample"
        )
    q = {s: values[s] for s in sites}
    nll = None
    if getattr(target, "reconstructs", False):
        replayed = poutine.trace(poutine.replay(target.model, trace=q_trace)).get_trace(x)
        nll = -replayed.nodes["x"]["fn"].log_prob(x)
    return p, q, nll


def _has_grad(values: dict) -> bool:
    return any(v.requires_grad for v in values.values())


def _penalty(critic, p: dict, q: dict, sites) -> torch.Tensor:
    """WGAN-GP's (||grad D(u)|| - 1)^2 at u = e q + (1 - e) p, e ~ U(0, 1) per example,
    the gradient taken over all the critic's parts together."""
    first = q[sites[0]]
    e = torch.rand(first.shape[0], device=first.device, dtype=first.dtype)
    mixed = []
    for s in sites:
        a, b = q[s].detach(), p[s].detach()
        w = e.reshape(-1, *([1] * (a.dim() - 1)))
        mixed.append((w * a + (1 - w) * b).requires_grad_(True))
    grads = torch.autograd.grad(critic(*mixed).sum(), mixed, create_graph=True)
    norm = torch.cat([g.reshape(g.shape[0], -1) for g in grads], -1).norm(dim=-1)
    return ((norm - 1) ** 2).mean()


def critic_loss(critic, p: dict, q: dict, sites, loss: str, gradient_penalty: float = 10.0):
    """The critic's loss on the two sides' values (detached here), the q side real."""
    p = {s: p[s].detach() for s in sites}
    q = {s: q[s].detach() for s in sites}
    d_p, d_q = critic(*(p[s] for s in sites)), critic(*(q[s] for s in sites))
    if loss == "ns":
        return F.softplus(-d_q).mean() + F.softplus(d_p).mean()
    if loss == "hinge":
        return F.relu(1 - d_q).mean() + F.relu(1 + d_p).mean()
    out = d_p.mean() - d_q.mean()
    if gradient_penalty:
        out = out + gradient_penalty * _penalty(critic, p, q, sites)
    return out


def player_loss(critic, p: dict, q: dict, sites, loss: str) -> torch.Tensor:
    """The players' loss: each side with parameters behind it pushed towards the other
    (labels swapped for the non-saturating loss)."""
    out = 0.0
    if _has_grad(p):
        d_p = critic(*(p[s] for s in sites))
        out = out + (F.softplus(-d_p).mean() if loss == "ns" else -d_p.mean())
    if _has_grad(q):
        d_q = critic(*(q[s] for s in sites))
        out = out + (F.softplus(d_q).mean() if loss == "ns" else d_q.mean())
    if not isinstance(out, torch.Tensor):
        raise ValueError(
            "model: neither side of the critic depends on a parameter (no generator or "
            "encoder behind its sites); nothing to fit adversarially"
        )
    return out


# -- the engine ------------------------------------------------------------------------
class AdversarialEngine:
    """``critic_steps`` critic updates and one player update per ``update()``; each on a
    minibatch of a fresh permutation of the examples every epoch. The last critic
    update and the player update share one draw of the sides (as a hand-written GAN
    loop shares G(z) between its two updates)."""

    def __init__(
        self,
        target,
        critic,
        x,
        options: AdversarialOptions,
        batch_size: int,
        noise_steps: int = 1,
    ):
        self.target, self.critic, self.x, self.options = target, critic, x, options
        self.noise_steps = options.noise_steps or noise_steps
        self.sites = tuple(target.critic_sites)
        lr = options.lr
        critic_lr = options.critic_lr or lr
        players = [p for p in target.parameters() if p.requires_grad]
        fused = _fusable(players) and _fusable(list(critic.parameters()))
        self.player_optim = torch.optim.Adam(players, lr=lr, betas=options.betas, fused=fused)
        self.critic_optim = torch.optim.Adam(
            critic.parameters(), lr=critic_lr, betas=options.betas, fused=fused
        )
        self.draw = getattr(target, "adversarial_draws", None) or (lambda x: trace_draws(target, x))
        self.batch_size = min(batch_size, len(x))
        self.order = torch.randperm(len(x), device=x.device)
        self.position = 0
        self.critic_losses: list[float] = []
        self.step = 0

    def _batch(self) -> torch.Tensor:
        if self.position + self.batch_size > len(self.x):  # full batches only
            self.order = torch.randperm(len(self.x), device=self.x.device)
            self.position = 0
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self.x[index]

    def update(self) -> float:
        options, sites = self.options, self.sites
        self.step += 1
        for i in range(options.critic_steps):
            last = i == options.critic_steps - 1
            x = self._batch()
            if last:
                p, q, nll = self.draw(x)
            else:
                with torch.no_grad():
                    p, q, _ = self.draw(x)
            p, q = self._packed(self._noisy(p)), self._packed(self._noisy(q))
            loss_d = critic_loss(self.critic, p, q, sites, options.loss, options.gradient_penalty)
            self.critic_optim.zero_grad(set_to_none=True)
            loss_d.backward()
            value = loss_d.item()
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"adversarial {self.target.name}: the critic loss became {value} at step "
                    f"{self.step}; lower lr or critic_lr (the last checkpoint, if any, is "
                    "kept as it was)"
                )
            self.critic_optim.step()
        self.critic_losses.append(value)
        self.critic.requires_grad_(False)  # the players' step leaves the critic alone
        try:
            loss_g = player_loss(self.critic, p, q, sites, options.loss)
            if nll is not None:
                loss_g = loss_g + nll.mean()
            self.player_optim.zero_grad(set_to_none=True)
            loss_g.backward()
            value = loss_g.item()
            if math.isfinite(value):
                self.player_optim.step()
        finally:
            self.critic.requires_grad_(True)
        return value  # the loop stops on a non-finite value, naming the player loss

    def noise_sd(self, step: int | None = None) -> float:
        """The instance noise's sd at a step (1-based; default the current one)."""
        step = self.step if step is None else step
        fraction = max(0.0, 1.0 - (step - 1) / self.noise_steps)
        return self.options.instance_noise * fraction

    def _noisy(self, values: dict) -> dict:
        sd = self.noise_sd()
        if sd == 0:
            return values
        return {
            k: v + sd * torch.randn_like(v) if k in self.sites else v for k, v in values.items()
        }

    def _packed(self, values: dict) -> dict:
        m = self.options.pack
        return values if m == 1 else {k: pack(v, m) for k, v in values.items()}

    def postfix(self) -> dict:
        return {"critic": f"{self.critic_losses[-1]:.4g}"} if self.critic_losses else {}

    def state_dict(self) -> dict:
        return {
            "model": self.target.state_dict(),
            "critic": self.critic.state_dict(),
            "player_optim": self.player_optim.state_dict(),
            "critic_optim": self.critic_optim.state_dict(),
            "order": self.order.cpu(),
            "position": self.position,
            "critic_losses": torch.tensor(self.critic_losses, dtype=torch.float64),
            "step": self.step,
        }

    def load_state_dict(self, state: dict) -> None:
        self.target.load_state_dict(state["model"])
        self.critic.load_state_dict(state["critic"])
        self.player_optim.load_state_dict(state["player_optim"])
        self.critic_optim.load_state_dict(state["critic_optim"])
        self.order = state["order"].to(self.x.device)
        self.position = int(state["position"])
        self.critic_losses = state["critic_losses"].tolist()
        self.step = int(state["step"])


class HeldOutScore:
    """A callback for early stopping on a held-out score (lower is better), for
    ``fit(..., callback=HeldOutScore(score, every=500, patience=4))``: ``score()`` is
    called every ``every`` steps (a Frechet distance of samples to held-out images,
    minus the modes a ring's samples cover, ...); the run stops after ``patience``
    calls without a better score, and the model's best state is restored at the end
    (``restore_best``). Checkpointed with the run, so a resumed run keeps its best."""

    def __init__(
        self,
        score: Callable[[], float],
        every: int = 500,
        patience: int = 4,
        restore_best: bool = True,
    ):
        self.score = score
        self.every = check_positive_int(every, "every")
        self.patience = check_positive_int(patience, "patience")
        self.restore_best = restore_best
        self.history: list[tuple[int, float]] = []
        self.best: float = math.inf
        self.best_step: int | None = None
        self.best_state: dict | None = None
        self.model = None  # set by the engine's fit

    def __call__(self, step: int, loss: float) -> bool:
        if step % self.every:
            return False
        value = float(self.score())
        self.history.append((step, value))
        if value < self.best:
            self.best, self.best_step = value, step
            if self.model is not None:
                self.best_state = copy.deepcopy(self.model.state_dict())
        return self.waited() >= self.patience

    def waited(self) -> int:
        return sum(1 for step, _ in self.history if step > (self.best_step or 0))

    def state_dict(self) -> dict:
        return {
            "history": torch.tensor(self.history, dtype=torch.float64).reshape(-1, 2),
            "best": self.best,
            "best_step": -1 if self.best_step is None else self.best_step,
            "best_state": self.best_state or {},
        }

    def load_state_dict(self, state: dict) -> None:
        self.history = [(int(s), float(v)) for s, v in state["history"].tolist()]
        self.best = float(state["best"])
        self.best_step = None if int(state["best_step"]) < 0 else int(state["best_step"])
        self.best_state = state["best_state"] or None


def fit_adversarial(target, x, options: AdversarialOptions, run, result, fingerprint=None):
    """``fit(method="adversarial")``: the critic from the model, the engine, the loop."""
    import pyro

    from pyrogen.infer.loop import run_options_loop
    from pyrogen.infer.svi import fitted_parameters

    if not hasattr(target, "critic_sites") or not hasattr(target, "make_critic"):
        raise ValueError(
            f"method: {target.name} names no critic_sites and no make_critic(); "
            "method='adversarial' fits the zoo's GAN, AAE and ALI"
        )
    if options.lr is None:
        options.lr = getattr(target, "adversarial_lr", 2e-4)
    batch_size = options.batch_size or getattr(target, "adversarial_batch_size", 64)
    if batch_size % options.pack or min(batch_size, len(x)) % options.pack:
        raise ValueError(
            f"pack: the batch ({min(batch_size, len(x))} examples) must be a multiple of "
            f"pack={options.pack}"
        )
    pyro.clear_param_store()  # pyro.module would load another fit's weights of the same name
    torch.manual_seed(run.seed)  # the critic's start is part of the seeded run
    critic = target.make_critic(options.pack) if options.pack > 1 else target.make_critic()
    critic = critic.to(x.device, x.dtype)
    target.train()
    num_steps = run.num_steps or 2000
    if options.num_epochs is not None:  # fit() refused num_steps beside it
        num_steps = options.num_epochs * math.ceil(len(x) / min(batch_size, len(x)))
    noise_steps = max(1, math.ceil(0.75 * num_steps))
    engine = AdversarialEngine(target, critic, x, options, batch_size, noise_steps)
    if fingerprint is not None:
        fingerprint = {
            **fingerprint,
            "training": repr(
                (
                    options.loss,
                    options.critic_steps,
                    options.lr,
                    options.critic_lr,
                    options.betas,
                    options.gradient_penalty,
                    batch_size,
                    options.pack,
                    # the schedule's length: a resumed noisy run must have the same
                    (options.instance_noise, engine.noise_steps) if options.instance_noise else 0,
                )
            ),
        }
    if isinstance(run.callback, HeldOutScore):
        run.callback.model = target
    looped = run_options_loop(
        engine,
        run,
        num_steps=num_steps,
        desc=f"adversarial {target.name}",
        loss_name="player loss",
        fingerprint=fingerprint,
    )
    callback = run.callback
    if isinstance(callback, HeldOutScore) and callback.restore_best and callback.best_state:
        target.load_state_dict(callback.best_state)
        result.diagnostics["best_step"] = callback.best_step
    result.losses, result.num_steps = looped.losses, looped.num_steps
    result.converged, result.backend = looped.converged, "pyro"
    result.guide = target.guide
    result.critic = critic.eval()
    result.diagnostics["critic_losses"] = np.asarray(engine.critic_losses, dtype=float)
    result.diagnostics["resumed_from"] = looped.resumed_from
    if options.instance_noise > 0:
        result.diagnostics["noise_steps"] = engine.noise_steps
    target.absorb({})
    result.params = fitted_parameters(target)
    return result
