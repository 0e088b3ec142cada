"""``pyrogen.fit``'s options in the groups NumPyro keeps apart: how a run goes
(:class:`RunOptions`: steps, seed, progress, checkpoint), how SVI optimizes
(:class:`SVIOptions`: guide, loss, optimizer) and how NUTS samples
(:class:`NUTSOptions`: warmup, draws, chains, backend). Each group checks its own
values, so every bad option is refused by name before any work."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from pyrogen.validation import check_bool, check_choice, check_positive_int, check_positive_number

__all__ = [
    "CHAIN_METHODS",
    "RunOptions",
    "SVIOptions",
    "NUTSOptions",
    "ScaleOptions",
    "split_options",
]

CHAIN_METHODS = ("auto", "parallel", "sequential", "vectorized")  # NumPyro's, and auto
PRECISIONS = ("float64", "float32")
CONVERGENCE = ("auto", "rule", "none")


@dataclass
class RunOptions:
    """The loop around any engine.

    Attributes:
        seed: seeds Pyro's (torch's, NumPy's, Python's) random number generators.
        num_steps: the most steps (SVI default 1000, EM default 100); ``max_steps`` is
            an alias.
        tol: stop early when the windowed mean loss changes by less than ``tol`` (EM
            default 1e-3 on the mean log-likelihood, as scikit-learn).
        window: the steps averaged by ``tol``'s rule (SVI default 50).
        init: starting values of latent sites (site -> value) for NUTS chains and
            autoguides, over the model's own start.
        progress: a progress bar (default: on a terminal, off in CI).
        checkpoint: a file path; an existing checkpoint resumes the run. It is refused
            (``CheckpointError``, naming what differs) by a run of another model,
            config, data or seed, or, for SVI, MAP and MLE, another optimizer, ``lr``,
            ``batch_size``, ``loss``, ``num_particles`` or guide; ``num_steps`` and
            ``num_epochs`` may change, to extend a run.
        checkpoint_every: steps between checkpoints.
        trust_checkpoint: also read checkpoints of pyrogen's format version 1, which
            were pickles: loading one runs the code it names, so only for files you
            wrote yourself (a warning says so). Checkpoints are otherwise read by
            PyTorch's restricted unpickler and a crafted file is refused.
        callback: ``callback(step, loss)`` after every step of SVI, MAP, MLE or EM;
            returning True stops the run. An object with ``state_dict`` and
            ``load_state_dict`` is checkpointed and resumed with the run.
        device: where a zoo model and the data go (``"cpu"``, ``"cuda"``).
    """

    seed: int = 0
    num_steps: int | None = None
    tol: float | None = None
    window: int | None = None
    init: dict | None = None
    progress: bool | None = None
    checkpoint: str | os.PathLike | None = None
    checkpoint_every: int = 100
    trust_checkpoint: bool = False
    callback: Callable[[int, float], bool | None] | None = None
    device: Any = None

    def __post_init__(self):
        if self.num_steps is not None:
            check_positive_int(self.num_steps, "num_steps")
        if self.tol is not None and not (np.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"tol: must be a non-negative number, got {self.tol}")
        if self.window is not None:
            check_positive_int(self.window, "window")
        check_positive_int(self.checkpoint_every, "checkpoint_every")
        check_bool(self.trust_checkpoint, "trust_checkpoint")
        if self.init is not None and not isinstance(self.init, dict):
            raise TypeError(
                f"init: expected a dict of site -> value, got {type(self.init).__name__}"
            )
        if self.device is not None:
            self.device = check_device(self.device)
        if self.callback is not None and not callable(self.callback):
            raise TypeError("callback: expected a callable callback(step, loss)")


@dataclass
class SVIOptions:
    """Stochastic variational inference, MAP and maximum likelihood.

    Attributes:
        guide: ``"mean_field"`` (AutoNormal), ``"full_rank"`` (AutoMultivariateNormal),
            ``"low_rank"``, ``"flow"`` (AutoIAFNormal), ``"spline"`` (neural spline
            flows), ``"delta"`` or a guide callable; default: the model's own guide,
            else AutoNormal (SVI) or AutoDelta (MAP).
        loss: ``"trace"``, ``"mean_field"`` (analytic KL where the guide's site has one
            with the prior's: a VAE's Normal encoder; not AutoNormal, whose latent sites
            are Deltas over auxiliary draws, so it equals ``"trace"`` there), ``"enum"``,
            ``"iwae"`` or a
            ``pyro.infer.ELBO``.
        optim: ``"adam"``, ``"clipped_adam"``, ``"sgd"`` or a ``pyro.optim.PyroOptim``.
        lr: the learning rate of a named optimizer (default 0.01).
        num_particles, vectorize_particles: samples per ELBO estimate, drawn in one
            vectorized pass when asked (the model must respect its plates). Default:
            1, except under the convergence rule (below), which takes 16 in one
            vectorized pass where the model is checked to vectorize exactly
            (:func:`~pyrogen.infer.svi.vectorizes_particles`): by Polyak and
            Juditsky, the averaged iterates' error depends on the gradients' noise,
            and 16 particles cost about one on a small model.
        batch_size: minibatches of this many examples (models that support them scale
            each batch's likelihood up to N); ``num_epochs`` then counts passes.
        fast_elbo: evaluate Trace_ELBO / TraceMeanField_ELBO (one particle) without
            traces (checked against Pyro's at the first step).
        jit: compile the ELBO with ``torch.jit`` (default: for ``jit_safe`` models).
        convergence: ``"auto"`` (default): where the fit has a guide over global latent
            sites (SVI, MAP) and none of ``num_steps``, ``num_epochs`` and ``tol`` is
            given, run until the rule of :mod:`pyrogen.infer.convergence` is met
            (iterate averaging with its Monte Carlo error, the learning rate halved
            until halving no longer moves the answer; at most 20,000 steps), keep the
            averaged parameters, and say in ``Fit.converged`` whether it was met, with
            a warning naming the remedies when it was not (a Gaussian autoguide with
            no ``init`` starts at the Laplace approximation where its ELBO is higher:
            :func:`~pyrogen.infer.init.laplace_start`); ``"rule"``: that rule
            with ``num_steps`` as its budget; ``"none"``: exactly ``num_steps`` steps
            (default 1000) and the last iterate, ``converged`` None unless ``tol`` is
            given. Amortized guides (VAEs), networks fitted by maximum likelihood and
            guides whose learning rate cannot be halved (an optimizer without one
            ``lr``) take ``"none"``.
        tolerance: the rule's accuracy, in the units of
            :mod:`pyrogen.infer.convergence` (0.02: means within 0.02 posterior
            standard deviations, scales within 2%).
    """

    guide: str | Callable | None = None
    loss: Any = None
    optim: Any = "adam"
    lr: float | None = 0.01
    num_particles: int | None = None
    vectorize_particles: bool = False
    batch_size: int | None = None
    num_epochs: int | None = None
    fast_elbo: bool = True
    jit: bool | None = None
    convergence: str = "auto"
    tolerance: float = 0.02

    def __post_init__(self):
        if self.lr is None:
            self.lr = 0.01
        check_positive_number(self.lr, "lr")
        check_choice(self.convergence, "convergence", CONVERGENCE)
        check_positive_number(self.tolerance, "tolerance")
        if self.num_particles is not None:
            check_positive_int(self.num_particles, "num_particles")
        check_bool(self.fast_elbo, "fast_elbo")
        check_bool(self.vectorize_particles, "vectorize_particles")
        if self.batch_size is not None:
            check_positive_int(self.batch_size, "batch_size")
        if self.num_epochs is not None:
            check_positive_int(self.num_epochs, "num_epochs")
            if self.batch_size is None:
                raise ValueError(
                    "num_epochs: give batch_size too (an epoch is N / batch_size steps)"
                )


@dataclass
class NUTSOptions:
    """The No-U-Turn sampler (Pyro's or NumPyro's).

    Attributes:
        num_warmup, num_samples, num_chains: adaptation steps, draws per chain, chains.
        backend: ``"pyro"`` or ``"numpyro"``; ``"auto"`` picks NumPyro for models
            written against ``pyroapi`` (faster for small models), else Pyro.
        target_accept: the step size adaptation's target acceptance probability.
        dense_mass: adapt a dense mass matrix (the posterior's covariance) instead of
            a diagonal one: fewer leapfrog steps along correlated coordinates.
        chain_method: NumPyro's ``"parallel"`` (one chain per device),
            ``"sequential"`` or ``"vectorized"``; ``"auto"`` is parallel where there
            is a device per chain, else vectorized. Pyro's chains run in turn.
        jit: compile the potential (default on).
        precision: ``"float64"`` (default) or ``"float32"``: the floating type the
            sampler computes in, under either backend (NumPyro: JAX's 64-bit mode for
            the run; Pyro: the data and torch's default dtype). JAX computes in
            float32 unless told, which on posteriors with ill-conditioned parts (a
            Cholesky factor with small jitter, a long recursion) leaves the chains
            stuck; float64 costs little on the small models NUTS is for. The choice
            is kept in ``Fit.precision`` and the InferenceData's attributes.
    """

    num_warmup: int = 500
    num_samples: int = 500
    num_chains: int = 4
    backend: str = "auto"
    target_accept: float = 0.8
    dense_mass: bool = False
    chain_method: str = "auto"
    jit: bool | None = None
    precision: str = "float64"

    def __post_init__(self):
        check_choice(self.precision, "precision", PRECISIONS)
        check_positive_int(self.num_samples, "num_samples")
        check_positive_int(self.num_chains, "num_chains")
        check_positive_int(self.num_warmup, "num_warmup", minimum=0)
        check_choice(self.backend, "backend", ("auto", "pyro", "numpyro"))
        check_choice(self.chain_method, "chain_method", CHAIN_METHODS)
        check_bool(self.dense_mass, "dense_mass")
        if not 0 < float(self.target_accept) < 1:
            raise ValueError(f"target_accept: must be in (0, 1), got {self.target_accept}")


@dataclass
class ScaleOptions:
    """SVI, MAP and MLE across processes and machines, on PyTorch Lightning
    (:mod:`pyrogen.lightning`).

    Attributes:
        strategy: None (pyrogen's own loop in this process), a Lightning strategy name
            (``"ddp"``: Lightning's launcher, which runs the same command once per
            rank, or the ranks ``torchrun`` started; ``"ddp_spawn"``: processes started
            from this session, the model and data pickled; ``"ddp_notebook"``: forked
            processes) or a ``lightning.pytorch.strategies.Strategy``. On CPU the DDP
            strategies use the gloo backend.
        devices: processes per machine (CPU) or GPUs per machine (``device="cuda"``).
        num_nodes: machines.
    """

    strategy: Any = None
    devices: Any = None
    num_nodes: int = 1

    def __post_init__(self):
        check_positive_int(self.num_nodes, "num_nodes")
        if self.strategy is None:
            if self.devices is not None or self.num_nodes != 1:
                raise ValueError(
                    "strategy: devices and num_nodes spread a fit across processes; give "
                    "strategy='ddp' (or 'ddp_spawn', 'ddp_notebook') with them"
                )
            return
        if isinstance(self.strategy, str):
            check_choice(self.strategy, "strategy", STRATEGIES)
        elif not hasattr(self.strategy, "setup_environment"):
            raise TypeError(
                f"strategy: expected a strategy name or a Lightning Strategy, got "
                f"{type(self.strategy).__name__}"
            )
        if self.devices is None:
            self.devices = 1
        elif not (isinstance(self.devices, list) or self.devices == "auto"):
            check_positive_int(self.devices, "devices")


STRATEGIES = ("ddp", "ddp_spawn", "ddp_notebook", "ddp_fork", "auto", "single_device")


def check_device(device):
    """A torch device this machine has, or an error naming ``device``."""
    import torch

    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device: {device!r} is not a device name ({error})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device: {str(device)!r} asked for, but this torch has no CUDA device "
            "(torch.cuda.is_available() is False); use device='cpu' or a CUDA build of torch"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device: {str(device)!r} asked for, but MPS is not available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device: {str(device)!r}: pyrogen runs on 'cpu', 'cuda' or 'mps'")
    return device


def _names(group) -> set[str]:
    return {f.name for f in fields(group)}


def split_options(options: dict, method: str = "svi") -> tuple:
    """``fit``'s flat keywords as the groups (each checked, and ``strategy`` against
    ``method``); the ``jit`` keyword goes to both engines that compile. The adversarial
    engine's group (:class:`~pyrogen.infer.adversarial.AdversarialOptions`) is built,
    and its ``loss`` and ``batch_size`` read, only for ``method="adversarial"``."""
    if method == "adversarial":
        return split_adversarial_options(options)
    for name, default in _adversarial_only().items():
        if name in options and options[name] != default:
            raise ValueError(f"{name}: only method='adversarial' takes {name} (method={method!r})")
    groups = (RunOptions, SVIOptions, NUTSOptions, ScaleOptions)
    run, svi, nuts, scale = (
        group(**{k: v for k, v in options.items() if k in _names(group)}) for group in groups
    )
    if scale.strategy is not None and method not in ("svi", "map", "mle"):
        raise ValueError(
            f"strategy: distributed fits run SVI, MAP and MLE; method={method!r} runs in "
            "one process (NUTS spreads its chains with chain_method='parallel')"
        )
    return run, svi, nuts, scale


ADVERSARIAL_KEYS = (
    "loss",
    "critic_steps",
    "lr",
    "critic_lr",
    "betas",
    "gradient_penalty",
    "batch_size",
    "num_epochs",
    "pack",
    "instance_noise",
    "noise_steps",
)


def _adversarial_only() -> dict:
    """fit()'s keywords that only the adversarial engine reads, with their defaults."""
    from pyrogen.infer.adversarial import AdversarialOptions

    shared = _names(RunOptions) | _names(SVIOptions)  # loss, lr, batch_size, num_epochs
    return {f.name: f.default for f in fields(AdversarialOptions) if f.name not in shared}


def split_adversarial_options(options: dict) -> tuple:
    """(run, adversarial, nuts, scale) for ``method="adversarial"``; options that only
    other engines read (a guide, particles, epochs, ...) are refused by name."""
    from pyrogen.infer.adversarial import AdversarialOptions

    run = RunOptions(**{k: v for k, v in options.items() if k in _names(RunOptions)})
    given = {k: options[k] for k in ADVERSARIAL_KEYS if options.get(k) is not None}
    adversarial = AdversarialOptions(**given)
    for name, default in (
        ("guide", None),
        ("num_particles", None),
        ("strategy", None),
        ("vectorize_particles", False),
        ("optim", "adam"),  # the engine's players and critic both step Adam
        ("fast_elbo", True),
        ("jit", None),
        ("convergence", "auto"),
        ("tolerance", 0.02),
    ):
        if options.get(name, default) != default:
            raise ValueError(
                f"{name}: method='adversarial' does not take {name} (its options: loss, "
                "critic_steps, lr, critic_lr, betas, gradient_penalty, batch_size, num_steps, "
                "num_epochs, pack, instance_noise, noise_steps)"
            )
    nuts = NUTSOptions()
    return run, adversarial, nuts, ScaleOptions()
