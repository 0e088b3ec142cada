"""SVI, MAP and maximum likelihood on PyTorch Lightning: minibatches across processes
and machines (``pyrogen.fit(..., strategy="ddp", devices=N, num_nodes=M)``).

The pattern is Pyro's own (``examples/svi_lightning.py``): the ELBO's
``differentiable_loss`` is the loss of a :class:`lightning.pytorch.LightningModule`,
Lightning runs the processes, wraps the module in ``DistributedDataParallel``
(gradients all-reduced: gloo on CPU, NCCL on GPUs) and shards the examples with its
``DistributedSampler``. What pyrogen adds:

- **Pyro's parameters in the module.** Pyro keeps ``pyro.param`` values in a global
  store that DDP cannot see. After one model and guide call builds them, every
  entry of the store becomes an ``nn.Parameter`` registered in the module, and the
  store is refilled with those same objects (in every process, before the first
  step), so Lightning moves, broadcasts, all-reduces and checkpoints what Pyro uses.
- **The likelihood scaled on every rank.** Each rank calls the model on its shard's
  minibatch of B examples with ``num_examples=N``: its data plate scales the
  minibatch by N / B, so each rank's loss is an unbiased estimate of the full
  negative ELBO and DDP's mean of the ranks' gradients is the gradient of a
  minibatch of B x world examples.
- **The rest of a pyrogen fit.** The loss after every step (the ranks' mean per
  example), ``tol`` and ``callback`` decided alike on every rank, checkpoints in
  pyrogen's format written by rank 0 atomically and resumed, a progress bar on rank
  0 only, and the same :class:`~pyrogen.fit.Fit`.

Launch: ``strategy="ddp"`` is Lightning's own launcher, which starts the other ranks
by running the same command again (a script or ``pyrogen fit``); under ``torchrun``
or a cluster scheduler the ranks are started for it. ``"ddp_spawn"`` starts them
with ``multiprocessing`` from any Python session (the model, guide and data must
pickle) and ``"ddp_notebook"`` forks them (notebooks). See the README for the
multi-node command.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
import warnings

import numpy as np
import pyro
import torch
from torch import nn

from pyrogen.infer.loop import tol_reached

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - the message names the fix
    raise ImportError(
        "strategy: distributed fits run on PyTorch Lightning; install it with "
        "pip install 'pyrogen[distributed]' (or pip install lightning)"
    ) from None

__all__ = ["SVIModule", "fit_lightning", "is_rank_zero"]


def is_rank_zero() -> bool:
    """False in the processes a distributed launcher started for ranks above 0 (the
    places where reports and files must not be written twice)."""
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if name in os.environ:
            return int(os.environ[name]) == 0
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return True


class SVIModule(pl.LightningModule):
    """A model/guide pair and its ELBO as a Lightning module whose parameters are
    everything Pyro's parameter store holds for them (see the module docstring), with
    the loss history, the step count and the ``tol`` verdict as buffers, so that they
    come back from spawned ranks with the weights."""

    def __init__(self, target, guide, elbo, args, kwargs, settings: dict):
        super().__init__()
        self.target, self.elbo = target, elbo
        self.guide = guide  # a module (autoguide) is registered as one
        self.data, self.data_kwargs = args, kwargs
        self.settings = settings
        self.num_examples = settings["num_examples"]
        self.pyro_params = nn.ParameterList()
        self.pyro_names: list[str] = []
        self.pyro_constraints: dict = {}
        history = torch.full((settings["num_steps"],), float("nan"), dtype=torch.float64)
        self.register_buffer("loss_history", history)
        self.register_buffer("steps_done", torch.tensor(0))
        self.register_buffer("stopped_on_tol", torch.tensor(False))
        # seconds from the start of training to the end of each step (rank 0's clock),
        # without process start-up
        self.register_buffer("clock", torch.full_like(history, float("nan")))
        self.start_step = self.synced = 0
        self.optimizer_state = None
        self.fast = None  # pyrogen's trace-free twin of the ELBO, where it agrees

    # -- Pyro's parameters as the module's ----------------------------------------------
    def adopt_param_store(self) -> None:
        """Every entry of Pyro's store as a registered ``nn.Parameter``, and the store
        refilled with those very objects."""
        state = pyro.get_param_store().get_state()
        for name, value in state["params"].items():
            if not isinstance(value, nn.Parameter):
                value = nn.Parameter(value.detach().clone())
            self.pyro_params.append(value)
            self.pyro_names.append(name)
        self.pyro_constraints = dict(state["constraints"])
        self.install_param_store()

    def install_param_store(self) -> None:
        store = pyro.get_param_store()
        store.clear()
        params = dict(zip(self.pyro_names, self.pyro_params))
        store.set_state({"params": params, "constraints": dict(self.pyro_constraints)})

    def setup(self, stage: str) -> None:
        # a spawned rank starts with an empty store and float32 defaults
        torch.set_default_dtype(self.settings["dtype"])
        self.install_param_store()
        self.data = tuple(
            a.to(self.device) if isinstance(a, torch.Tensor) else a for a in self.data
        )
        pyro.set_rng_seed(self.settings["seed"] * 1_000 + self.global_rank + 1)

    # -- the loss ---------------------------------------------------------------------
    def batch_loss(self, index) -> torch.Tensor:
        from pyrogen.infer.svi import select_examples

        args = select_examples(self.data, index)
        kwargs = {**self.data_kwargs, "num_examples": self.num_examples}
        elbo = self.fast if self.fast is not None else self.elbo
        loss = elbo.differentiable_loss(self.target.model, self.guide, *args, **kwargs)
        return loss / self.num_examples

    def training_step(self, batch, batch_index):
        (index,) = batch
        with pyro.validation_enabled(False) if self.fast is not None else contextlib.nullcontext():
            loss = self.batch_loss(index.to(self.device))
        value = loss.detach()
        if self.decides_each_step:  # tol and callback see the ranks' mean at every step
            value = self.trainer.strategy.reduce(value, reduce_op="mean")
        self.record(float(value))
        return loss

    @property
    def decides_each_step(self) -> bool:
        return self.settings["tol"] is not None or self.settings["callback"] is not None

    def record(self, loss: float) -> None:
        step = self.start_step + int(self.trainer.global_step)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"{self.settings['desc']}: the loss became {loss} at step {step + 1}; "
                "lower the learning rate or check the data"
            )
        self.loss_history[step] = loss
        self.steps_done.fill_(step + 1)
        if self.settings["progress"]:
            self.log("loss", loss, prog_bar=True, on_step=True, logger=False, batch_size=1)

    def sync_history(self) -> None:
        """Each rank's losses since the last sync replaced by the ranks' mean (one
        collective for many steps, where no rule needs them step by step)."""
        step = int(self.steps_done)
        if not self.decides_each_step and step > self.synced:
            part = self.loss_history[self.synced : step].clone()
            self.loss_history[self.synced : step] = self.trainer.strategy.reduce(
                part, reduce_op="mean"
            )
        self.synced = step

    def on_train_batch_end(self, outputs, batch, batch_index) -> None:
        step = int(self.steps_done)
        self.clock[step - 1] = time.perf_counter() - self.began
        stop = False
        if self.settings["tol"] is not None:
            history = self.loss_history[:step].cpu().numpy()
            stop = tol_reached(history, self.settings["tol"], self.settings["window"])
            if stop:
                self.stopped_on_tol.fill_(True)
        callback = self.settings["callback"]
        if callback is not None:
            asked = bool(callback(step, float(self.loss_history[step - 1])))
            stop = stop or self.trainer.strategy.reduce_boolean_decision(asked, all=False)
        if stop:
            self.trainer.should_stop = True
        every = self.settings["checkpoint_every"]
        if self.settings["checkpoint"] is not None and step % every == 0:
            self.sync_history()
            self.save(step)

    def on_train_start(self) -> None:
        self.train()  # a fitted zoo model is in evaluation mode; ranks train it
        self.began = time.perf_counter()

    def on_fit_end(self) -> None:
        # every rank past its last collective, then the process group closed by every
        # rank while all are alive: left to interpreter exit, gloo's threads can abort
        # a rank ("terminate called without an active exception"). Nothing after this
        # hook (Lightning's teardown ran before it) talks across ranks.
        self.trainer.strategy.barrier("pyrogen-fit-end")
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    def on_train_end(self) -> None:
        self.sync_history()
        step = int(self.steps_done)
        if self.settings["checkpoint"] is not None and step % self.settings["checkpoint_every"]:
            self.save(step)

    def save(self, step: int) -> None:
        if self.trainer.is_global_zero:
            _save(self, step)

    # -- the optimizer ----------------------------------------------------------------
    def configure_optimizers(self):
        settings = self.settings
        optimizer = torch_optimizer(settings["optim"], settings["lr"], self.parameters())
        if self.optimizer_state is not None:
            # a private copy: a spawned rank receives the module's plain tensors in
            # memory shared with the other ranks, and Adam updates its state in place
            optimizer.load_state_dict(copy.deepcopy(self.optimizer_state))
        return optimizer


def torch_optimizer(optim, lr: float, params):
    """The torch optimizer behind ``fit``'s ``optim``: Adam (Pyro's per-parameter Adam
    is the same update), Pyro's ClippedAdam, SGD, or a ``pyro.optim.PyroOptim``'s own
    constructor and arguments."""
    from pyro.optim.clipped_adam import ClippedAdam

    params = [p for p in params if p.requires_grad]
    if isinstance(optim, pyro.optim.PyroOptim):
        if callable(optim.pt_optim_args):
            raise ValueError(
                "optim: a PyroOptim with per-parameter arguments (a callable) cannot be "
                "shared across processes; give a dict of arguments or an optimizer name"
            )
        return optim.pt_optim_constructor(params, **optim.pt_optim_args)
    if optim == "adam":
        return torch.optim.Adam(params, lr=lr)
    if optim == "clipped_adam":
        return ClippedAdam(params, lr=lr, clip_norm=10.0)
    if optim == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"optim: must be 'adam', 'clipped_adam', 'sgd' or a PyroOptim, got {optim!r}")


# -- checkpoints ------------------------------------------------------------------------
def _save(module, step: int) -> None:
    from pyrogen.checkpoint import save_checkpoint

    settings = module.settings
    optimizer = module.trainer.optimizers[0]
    state = {
        "engine": {
            "params": {
                name: p.detach().cpu() for name, p in zip(module.pyro_names, module.pyro_params)
            },
            "modules": {k: v.detach().cpu() for k, v in module.state_dict().items()},
            "optim": optimizer.state_dict(),
        },
        "rng": pyro.util.get_rng_state(),
        "losses": module.loss_history[:step].cpu().numpy(),
        "step": step,
        "converged": bool(module.stopped_on_tol),
    }
    save_checkpoint(settings["checkpoint"], state, settings["fingerprint"])


def _resume(module, checkpoint, fingerprint, trust: bool) -> int:
    """Load a pyrogen checkpoint of a distributed run into ``module``; the step it holds."""
    from pyrogen.checkpoint import load_checkpoint
    from pyrogen.infer.loop import _warn_if_longer

    if checkpoint is None or not os.path.exists(checkpoint):
        return 0
    state = load_checkpoint(checkpoint, fingerprint, trust)
    saved = state["engine"]["modules"]
    own = module.state_dict()
    missing = [k for k in own if k not in saved or saved[k].shape != own[k].shape]
    missing = [k for k in missing if k not in ("loss_history", "clock")]
    if missing:
        from pyrogen.checkpoint import CheckpointError

        raise CheckpointError(
            f"checkpoint: {str(checkpoint)!r} does not hold this run's parameters "
            f"({', '.join(missing[:3])} differ)"
        )
    with torch.no_grad():
        for name, value in own.items():
            if name not in ("loss_history", "clock"):
                value.copy_(saved[name])
    step = int(state["step"])
    _warn_if_longer(step, len(module.loss_history), checkpoint, module.settings["desc"])
    if step > len(module.loss_history):  # the fit is the checkpoint's longer run
        module.loss_history = torch.full((step,), float("nan"), dtype=torch.float64)
        module.clock = torch.full((step,), float("nan"), dtype=torch.float64)
    losses = torch.as_tensor(np.asarray(state["losses"], dtype=np.float64))
    module.loss_history[: len(losses)] = losses
    module.steps_done.fill_(step)
    module.stopped_on_tol.fill_(bool(state["converged"]))
    module.optimizer_state = state["engine"]["optim"]
    module.start_step = module.synced = step
    return step


# -- the fit ----------------------------------------------------------------------------
_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")
_QUIET = "PYROGEN_LIGHTNING_QUIET"  # read by the ranks a launcher starts


def _silence() -> None:
    """Lightning's start-up lines (devices found, process group banner) at WARNING,
    and neither its advice on DataLoader workers (the batches are index lists) nor a
    deprecation inside Lightning itself."""
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


if os.environ.get(_QUIET) == "1":  # a rank started by a launcher of a quiet fit
    _silence()


@contextlib.contextmanager
def _quiet_lightning(progress: bool):
    """Lightning as quiet as the rest of pyrogen unless a progress bar is asked for,
    here and (through the environment) in the ranks it starts."""
    loggers = [logging.getLogger(n) for n in _LOGGERS]
    levels = [lg.level for lg in loggers]
    before = os.environ.get(_QUIET)
    os.environ[_QUIET] = "0" if progress else "1"
    try:
        with warnings.catch_warnings():
            if not progress:
                _silence()
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if before is None:
            os.environ.pop(_QUIET, None)
        else:
            os.environ[_QUIET] = before


def make_trainer(scale, run, num_steps: int, progress: bool):
    accelerator = "cpu"
    if run.device is not None and run.device.type != "cpu":
        accelerator = "gpu" if run.device.type == "cuda" else run.device.type
    strategy = scale.strategy
    start = {"ddp": "popen", "ddp_spawn": "spawn", "ddp_fork": "fork", "ddp_notebook": "fork"}
    if isinstance(strategy, str) and strategy in start:
        from lightning.pytorch.strategies import DDPStrategy

        # no buffer sync at every step: each rank keeps its own buffers (the loss
        # history until it is averaged; a batch norm's running statistics of its
        # shard) and none is sent with every step; the parameters are the same on
        # every rank
        strategy = DDPStrategy(
            start_method=start[strategy],
            process_group_backend="gloo" if accelerator == "cpu" else None,
            **_no_buffer_sync(),
        )
    return pl.Trainer(
        accelerator=accelerator,
        strategy=strategy,
        devices=scale.devices,
        num_nodes=scale.num_nodes,
        max_steps=num_steps,
        max_epochs=-1,
        enable_progress_bar=progress,
        enable_checkpointing=False,
        enable_model_summary=False,
        logger=False,
        num_sanity_val_steps=0,
    )


def _no_buffer_sync() -> dict:
    """DDP's option to leave buffers alone at every step (its name since torch 2.12;
    buffers are still synced once at the start, which a fresh fit's are anyway)."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        return {"forward_sync_buffers": False}
    return {"broadcast_buffers": False}


def _loader(num_examples: int, batch_size: int):
    from torch.utils.data import DataLoader, TensorDataset

    # the examples are indexed on their rank: the batches carry indices, not data
    return DataLoader(
        TensorDataset(torch.arange(num_examples)), batch_size=batch_size, shuffle=True
    )


def fit_lightning(
    target, args, kwargs, method, options, run, scale, result, init_values, fingerprint=None
):
    """``fit(..., strategy=...)``: the guide and ELBO chosen as for one process, the
    module built and its parameters adopted, then ``Trainer.fit``."""
    from pyrogen.infer.loop import default_progress
    from pyrogen.infer.svi import _training_record, guide_and_elbo, select_examples

    _check_target(target, args)
    pyro.clear_param_store()
    n = target.num_examples(*args)
    probe = select_examples(args, slice(0, 2))
    guide, elbo = guide_and_elbo(target, method, options, probe, kwargs, init_values, jit=False)
    progress = default_progress() if run.progress is None else bool(run.progress)
    num_steps = _num_steps(options, run, n, scale)
    if fingerprint is not None:
        fingerprint = {
            **fingerprint,
            "training": _training_record(options),
            "strategy": "lightning",
        }
    settings = dict(
        num_examples=n,
        num_steps=num_steps,
        optim=options.optim,
        lr=options.lr,
        seed=run.seed,
        tol=run.tol,
        window=run.window or 50,
        callback=run.callback,
        checkpoint=run.checkpoint,
        checkpoint_every=run.checkpoint_every,
        fingerprint=fingerprint,
        dtype=torch.get_default_dtype(),
        progress=progress,
        desc=f"{method} {target.name}",
    )
    module = SVIModule(target, guide, elbo, args, kwargs, settings)
    with torch.no_grad():  # one call builds the guide's (and model's) parameters
        module.batch_loss(torch.arange(min(n, 2)))
    module.adopt_param_store()
    if options.fast_elbo:
        module.fast = _checked_twin(elbo, target, guide, probe, kwargs, n)
    start = _resume(module, run.checkpoint, fingerprint, run.trust_checkpoint)
    with _quiet_lightning(progress):
        trainer = make_trainer(scale, run, max(num_steps - start, 0), progress)
        per_rank = options.batch_size or math.ceil(n / trainer.world_size)
        if start < num_steps and not bool(module.stopped_on_tol):
            trainer.fit(module, _loader(n, per_rank))
    module.install_param_store()  # the parent of spawned ranks: its store holds the result
    return _finish(module, target, guide, args, kwargs, result, trainer, start)


def _checked_twin(elbo, target, guide, probe, kwargs, n: int):
    """pyrogen's trace-free ELBO where it gives Pyro's number on two examples (as the
    one-process engine checks it), else None."""
    from pyrogen.infer.fast_elbo import agrees_with_pyro, fast_twin

    fast = fast_twin(elbo)
    kwargs = {**kwargs, "num_examples": n}
    if fast is None or not agrees_with_pyro(fast, elbo, target.model, guide, probe, kwargs):
        return None
    return fast


def _num_steps(options, run, n: int, scale) -> int:
    if options.num_epochs is None:
        return run.num_steps or 1000
    world = (scale.devices if isinstance(scale.devices, int) else 1) * scale.num_nodes
    per_rank = options.batch_size or math.ceil(n / world)
    return options.num_epochs * math.ceil(math.ceil(n / world) / per_rank)


def _check_target(target, args) -> None:
    from pyrogen.zoo import SupportsMinibatches

    if not isinstance(target, SupportsMinibatches):
        raise ValueError(
            f"strategy: distributed fits shard the examples across processes, which needs a "
            f"model that scales a minibatch's likelihood (model(x, num_examples=N)); "
            f"{target.name} does not (the network models of the zoo do)"
        )


def _finish(module, target, guide, args, kwargs, result, trainer, start: int):
    from pyrogen.infer.svi import empty_guide, fitted_parameters, point_values
    from pyrogen.zoo import NetworkModel

    steps = int(module.steps_done)
    result.losses = module.loss_history[:steps].cpu().numpy().astype(float)
    result.num_steps = steps
    result.converged = bool(module.stopped_on_tol)
    result.guide, result.backend = guide, "pyro"
    result.diagnostics.update(
        resumed_from=start or None,
        strategy=type(trainer.strategy).__name__,
        world_size=trainer.world_size,
        step_clock=module.clock[start:steps].cpu().numpy(),
        rank_zero=is_rank_zero(),
    )
    if guide is empty_guide or isinstance(target, NetworkModel):
        target.absorb({})
        result.params = fitted_parameters(target)
    else:
        result.params = point_values(guide, args, kwargs)
        target.absorb(result.params)
    return result
