"""Stochastic variational inference as a loop engine.

``SVIEngine`` mirrors NumPyro's ``SVI`` split: ``init`` builds the parameters,
``update`` takes one gradient step.
The loop around it (progress, checkpoints, early stopping) is ``run_loop``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import pyro
import pyro.optim
import torch
from pyro import poutine
from pyro.infer import (
    JitTrace_ELBO,
    JitTraceEnum_ELBO,
    JitTraceMeanField_ELBO,
    RenyiELBO,
    Trace_ELBO,
    TraceEnum_ELBO,
    TraceMeanField_ELBO,
)
from pyro.infer.autoguide import (
    AutoDelta,
    AutoIAFNormal,
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)
from pyro.infer.util import torch_item
from pyro.poutine.util import site_is_subsample

from pyrogen.infer.fast_elbo import PARTICLE_PLATE, agrees_with_pyro, fast_twin
from pyrogen.infer.init import init_from, laplace_start, trace_structure
from pyrogen.validation import check_positive_number

__all__ = [
    "ModelStructure",
    "empty_guide",
    "fit_svi",
    "SVIEngine",
    "SharedAdam",
    "make_elbo",
    "make_guide",
    "make_optim",
    "max_plate_nesting",
    "model_structure",
    "guide_draws",
    "point_values",
    "select_examples",
]


@contextmanager
def quiet_jit_tracing():
    """Pyro's jit ELBOs and NUTS trace with torch.jit.trace, which torch now flags as
    deprecated; the flag says nothing a pyrogen user can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.trace.*is deprecated")
        yield


@dataclass
class ModelStructure:
    """What the engines need to know about a model, read from one trace of it."""

    enumerated: bool  # some discrete site is marked for enumeration
    nesting: int  # max_plate_nesting
    continuous: list[str]  # latent sites a continuous guide must cover


def model_structure(model, args=(), kwargs=None) -> ModelStructure:
    trace = trace_structure(model, args, kwargs or {})
    sites = [s for s in trace.nodes.values() if s["type"] == "sample"]
    dims = [f.dim for s in sites for f in s["cond_indep_stack"] if f.vectorized]
    return ModelStructure(
        enumerated=any(s["infer"].get("enumerate") for s in sites),
        nesting=-min(dims) if dims else 0,
        continuous=[
            s["name"]
            for s in sites
            if not s["is_observed"]
            and not site_is_subsample(s)  # a minibatch plate's indices are no latent
            and not s["infer"].get("enumerate")
            and not getattr(s["fn"], "has_enumerate_support", False)
        ],
    )


def max_plate_nesting(model, args=(), kwargs=None) -> int:
    return model_structure(model, args, kwargs).nesting


def make_elbo(
    loss: str | pyro.infer.ELBO | None,
    *,
    enumerated: bool,
    nesting: int,
    num_particles: int = 1,
    vectorize_particles: bool = False,
    jit: bool = False,
) -> pyro.infer.ELBO:
    """Pick the ELBO estimator: ``"trace"``, ``"mean_field"`` (analytic KL), ``"enum"``,
    or ``"iwae"`` (the importance-weighted bound, Renyi alpha = 0, over
    ``num_particles`` samples); with ``jit`` its compiled (``torch.jit``) twin, for
    models without data-dependent Python control flow."""
    if isinstance(loss, pyro.infer.ELBO):
        return loss
    if loss == "iwae":
        if enumerated:
            raise ValueError("loss: 'iwae' cannot sum out enumerated discrete sites")
        return RenyiELBO(
            alpha=0.0,
            num_particles=num_particles,
            vectorize_particles=vectorize_particles,
            max_plate_nesting=nesting + (1 if vectorize_particles else 0),
        )
    options = dict(
        num_particles=num_particles,
        vectorize_particles=vectorize_particles,
        max_plate_nesting=nesting + (1 if vectorize_particles else 0),
    )
    if loss is None:
        loss = "enum" if enumerated else "trace"
    if enumerated:
        loss = "enum"
    classes = {
        "trace": (Trace_ELBO, JitTrace_ELBO),
        "mean_field": (TraceMeanField_ELBO, JitTraceMeanField_ELBO),
        "enum": (TraceEnum_ELBO, JitTraceEnum_ELBO),
    }
    if loss in classes:
        if jit:
            return classes[loss][1](ignore_jit_warnings=True, **options)
        return classes[loss][0](**options)
    raise ValueError(
        f"loss: must be 'trace', 'mean_field', 'enum', 'iwae' or a pyro ELBO, got {loss!r}"
    )


def vectorizes_particles(model, guide, args=(), kwargs=None, *, nesting: int, num: int = 3) -> bool:
    """Whether ``model`` and ``guide`` run under Pyro's vectorized-particles plate (at
    dim ``-(nesting + 1)``, as a vectorized ELBO puts it) give every particle the ELBO
    term that particle's draws give alone: each of ``num`` particles' log p - log q,
    summed over all other dimensions, against the unvectorized model and guide
    conditioned on that particle's draws. A model that mixes particles (a latent
    summed over every dimension, a shape read off a draw) fails, or raises, and so
    gets False: its ELBO would be wrong, not merely slow."""
    kwargs = kwargs or {}
    dim = -(nesting + 1)
    try:
        with torch.no_grad(), poutine.block():
            with pyro.plate(PARTICLE_PLATE, num, dim=dim):
                guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
            with pyro.plate(PARTICLE_PLATE, num, dim=dim):
                model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
                    *args, **kwargs
                )
            together = _per_particle(model_trace, num, dim) - _per_particle(guide_trace, num, dim)
            shapes = {
                name: site["value"].shape
                for name, site in _sample_sites(poutine.trace(guide).get_trace(*args, **kwargs))
            }
            for k in range(num):
                draws = _particle_draws(guide_trace, k, num, dim, shapes)
                alone_guide = poutine.trace(poutine.condition(guide, data=draws)).get_trace(
                    *args, **kwargs
                )
                for name in draws:  # drawn, not observed: the model replays them
                    alone_guide.nodes[name]["is_observed"] = False
                alone_model = poutine.trace(poutine.replay(model, trace=alone_guide)).get_trace(
                    *args, **kwargs
                )
                alone = alone_model.log_prob_sum() - alone_guide.log_prob_sum()
                if not torch.allclose(together[k], alone, rtol=1e-6, atol=1e-6):
                    return False
    except (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError):
        return False
    return True


def _sample_sites(trace):
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site_is_subsample(site):
            yield name, site


def _per_particle(trace, num: int, dim: int) -> torch.Tensor:
    """Each particle's sum of the trace's log densities (scaled and masked)."""
    trace.compute_log_prob()
    total = torch.zeros(num)
    for _, site in _sample_sites(trace):
        lp = site["log_prob"]
        if lp.dim() < -dim or lp.shape[dim] != num:
            raise ValueError(f"site {site['name']!r} is not batched over the particles")
        total = total + torch.movedim(lp, lp.dim() + dim, 0).reshape(num, -1).sum(1).to(total)
    return total


def _particle_draws(trace, k: int, num: int, dim: int, shapes: dict) -> dict:
    """Particle ``k``'s value of every latent site of a vectorized guide trace, in the
    site's unvectorized shape (``shapes``: the plate broadcast adds size-1 dims)."""
    draws = {}
    for name, site in _sample_sites(trace):
        if site["is_observed"]:
            continue
        batch = len(site["fn"].batch_shape)
        if batch < -dim or site["fn"].batch_shape[dim] != num:
            raise ValueError(f"site {name!r} is not batched over the particles")
        value = site["value"].select(batch + dim, k)
        if name not in shapes or value.numel() != shapes[name].numel():
            raise ValueError(f"site {name!r} has another shape unvectorized")
        draws[name] = value.reshape(shapes[name])
    return draws


def _fusable(params) -> bool:
    """Whether torch's fused Adam kernel takes these parameters (floating point, on the
    CPU or a CUDA device)."""
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


class SharedAdam(pyro.optim.PyroOptim):
    """Adam with one ``torch.optim.Adam`` over every parameter, not one per parameter.

    ``pyro.optim.Adam`` builds a separate torch optimizer for each parameter and steps
    them one by one; for a network with many parameter tensors that Python loop is a
    large part of a small step. Adam's update is elementwise, so one optimizer over
    all of them takes the same steps; it runs torch's fused kernel (one pass over
    each tensor instead of one per arithmetic operation) where the parameters allow,
    else the multi-tensor ``foreach`` one (``fused=False`` keeps ``foreach``).
    Parameters met later (e.g. created lazily by a guide) join as new groups."""

    def __init__(self, lr: float, fused: bool = True, **options):
        super().__init__(torch.optim.Adam, {"lr": lr, **options})
        self.fused = fused
        self.optimizer: torch.optim.Optimizer | None = None
        self.groups: list[list[str]] = []  # parameter names per group, for checkpoints
        self.known: set[str] = set()
        self.pending: dict | None = None
        self.last_ids: frozenset = frozenset()
        self.untouched: list[str] = []
        self.step_scales: dict[str, torch.Tensor] = {}

    def scale_steps(self, scales: dict[str, torch.Tensor]) -> None:
        """Multiply each named parameter's Adam step elementwise by ``scales[name]``:
        Adam's step is ``lr`` in the parameter's own units whatever its gradient, so a
        location whose posterior sd is 0.01 moves by about one sd a step at lr 0.01
        while one whose sd is 50 barely moves. Scaling the steps by the posterior's sds
        (:func:`laplace_step_scales`) runs Adam in standardized coordinates, as NUTS's
        mass matrix does for its steps."""
        self.step_scales = {k: v.detach().clone() for k, v in scales.items()}

    def __call__(self, params, *args, **kwargs) -> None:
        store = pyro.get_param_store()
        if self.pending is not None:  # restore a checkpoint once the parameters exist
            self._build(self.pending["groups"])
            self.optimizer.load_state_dict(self.pending["state"])
            self.pending = None
        ids = frozenset(map(id, params))
        if ids != self.last_ids:  # the same tensors as last step need no bookkeeping
            names = sorted({store.param_name(p) for p in params})
            new = [n for n in names if n not in self.known]
            if new:
                self._add_group(new)
            self.untouched = sorted(self.known.difference(names))
            self.last_ids = ids
        for name in self.untouched:  # as Pyro's Adam: untouched parameters stay put
            self._param(name).grad = None
        if not self.step_scales:
            self.optimizer.step()
            return
        scaled = {n: self._param(n) for n in self.step_scales if n in self.known}
        before = {n: p.detach().clone() for n, p in scaled.items()}
        self.optimizer.step()
        with torch.no_grad():
            for name, p in scaled.items():
                p.copy_(before[name] + self.step_scales[name].to(p) * (p - before[name]))

    def set_lr(self, lr: float) -> None:
        """Change the learning rate of every parameter, present and to come (e.g. a
        decay schedule applied between epochs)."""
        lr = check_positive_number(lr, "lr")
        self.pt_optim_args["lr"] = lr
        for group in self.optimizer.param_groups if self.optimizer is not None else ():
            group["lr"] = lr

    def _param(self, name: str) -> torch.Tensor:
        return pyro.get_param_store()[name].unconstrained()

    def _add_group(self, names: list[str]) -> None:
        group = {"params": [self._param(n) for n in names]}
        if self.optimizer is None:
            fused = self.fused and _fusable(group["params"])
            kernel = {"fused": True} if fused else {"foreach": True}
            self.optimizer = torch.optim.Adam([group], **{**kernel, **self.pt_optim_args})
        else:
            if self.optimizer.defaults.get("fused") and not _fusable(group["params"]):
                self._unfuse()
            self.optimizer.add_param_group(group)
        self.groups.append(list(names))
        self.known.update(names)

    def _unfuse(self) -> None:
        """The same optimizer, state included, on the foreach kernel (a parameter the
        fused kernel does not take has come)."""
        state = self.optimizer.state_dict()
        groups = [{"params": g["params"]} for g in self.optimizer.param_groups]
        options = {k: v for k, v in self.pt_optim_args.items() if k != "fused"}
        self.optimizer = torch.optim.Adam(groups, **{"foreach": True, **options})
        self.optimizer.load_state_dict(state)
        for group in self.optimizer.param_groups:
            group["fused"], group["foreach"] = None, True

    def _build(self, groups: list[list[str]]) -> None:
        self.optimizer, self.groups, self.known = None, [], set()
        self.last_ids, self.untouched = frozenset(), []
        for names in groups:
            self._add_group(names)

    def get_state(self) -> dict:
        if self.optimizer is None:
            return self.pending or {"groups": [], "state": None}
        return {"groups": [list(g) for g in self.groups], "state": self.optimizer.state_dict()}

    def set_state(self, state: dict) -> None:
        self.optimizer, self.groups, self.known = None, [], set()
        self.last_ids, self.untouched = frozenset(), []
        self.pending = state if state.get("state") is not None else None


def laplace_step_scales(guide) -> dict[str, torch.Tensor]:
    """Per-element step scales for the locations of a Gaussian autoguide, from its
    current spread in the unconstrained space (set at the Laplace start): AutoNormal's
    ``locs.<site>`` by that site's scales, AutoMultivariateNormal's ``loc`` by the
    marginal sds. Other parameters (the scales, the Cholesky factor) keep Adam's step."""
    from pyro.infer.autoguide import AutoMultivariateNormal

    store, prefix = pyro.get_param_store(), guide._pyro_name
    with torch.no_grad():
        if isinstance(guide, AutoNormal):
            return {
                f"{prefix}.locs.{name}": store[f"{prefix}.scales.{name}"].detach().clone()
                for name, _ in guide.prototype_trace.iter_stochastic_nodes()
            }
        if isinstance(guide, AutoMultivariateNormal):
            covariance = guide.get_posterior().covariance_matrix
            return {f"{prefix}.loc": covariance.diagonal().sqrt().detach().clone()}
    return {}


def make_optim(optim: str | pyro.optim.PyroOptim, lr: float) -> pyro.optim.PyroOptim:
    if isinstance(optim, pyro.optim.PyroOptim):
        return optim
    if optim == "adam":
        return SharedAdam(lr)
    if optim == "clipped_adam":
        return pyro.optim.ClippedAdam({"lr": lr, "clip_norm": 10.0})
    if optim == "sgd":
        return pyro.optim.SGD({"lr": lr})
    raise ValueError(f"optim: must be 'adam', 'clipped_adam', 'sgd' or a PyroOptim, got {optim!r}")


def make_guide(
    guide, model, structure: ModelStructure, *, method: str, init_values=None
) -> Callable:
    """The guide for ``method``: the one given, AutoDelta for MAP, else by name:

    - ``"mean_field"``: AutoNormal, independent normals in the unconstrained space;
    - ``"full_rank"``: AutoMultivariateNormal, one dense Gaussian over all sites;
    - ``"low_rank"``: AutoLowRankMultivariateNormal, diagonal plus a low-rank factor;
    - ``"flow"``: Pyro's AutoIAFNormal, a normal pushed through two inverse
      autoregressive flows (the zoo's IAF layers are the same Pyro transforms;
      :class:`~pyrogen.infer.AutoFlow` with ``"iaf"`` adds a reversal between them and
      an affine map started at the initial point, which measured a worse median KL on
      a banana posterior: 0.59 against 0.53 over seeds 0-6, ``python bench/flows.py``);
    - ``"spline"``: :class:`~pyrogen.infer.AutoFlow` with the zoo's autoregressive
      neural spline layers, then an affine map started at the initial point;
    - ``"delta"``: AutoDelta, a point mass (MAP).

    Autoguides start at ``init_values`` where given (e.g. a model's k-means start)."""
    if guide is not None and not isinstance(guide, str):
        return guide
    if guide is None:
        guide = "delta" if method == "map" else "mean_field"
    # enumerated discrete sites are summed out by the ELBO, so the guide leaves them alone
    exposed = poutine.block(model, expose=structure.continuous)
    if guide == "delta":
        return AutoDelta(exposed, init_loc_fn=init_from(init_values))
    start = init_from(init_values)
    if guide == "mean_field":
        return AutoNormal(exposed, init_loc_fn=start)
    if guide == "full_rank":
        return AutoMultivariateNormal(exposed, init_loc_fn=start)
    if guide == "low_rank":
        return AutoLowRankMultivariateNormal(exposed, init_loc_fn=start)
    if guide == "flow":
        return AutoIAFNormal(exposed, num_transforms=2)
    if guide == "spline":
        from pyrogen.infer.guides import AutoFlow

        return AutoFlow(exposed, "nsf", init_loc_fn=start)
    raise ValueError(
        "guide: must be 'mean_field', 'full_rank', 'low_rank', 'flow', 'spline', 'delta' or a "
        f"callable, got {guide!r}"
    )


def guide_draws(guide, args=(), kwargs=None, num_samples: int = 1000) -> dict:
    """``num_samples`` draws of every site the guide samples, stacked on a new leading
    dimension: in one vectorized pass when the guide allows it (Pyro's parallel
    ``Predictive``), else one trace per draw."""
    from pyro.infer import Predictive

    kwargs = kwargs or {}
    with torch.no_grad():
        try:
            return Predictive(guide, num_samples=num_samples, parallel=True)(*args, **kwargs)
        except (RuntimeError, ValueError, NotImplementedError):
            return Predictive(guide, num_samples=num_samples)(*args, **kwargs)


def point_values(guide, args=(), kwargs=None) -> dict[str, torch.Tensor]:
    """Point estimates of the guide's sites: its median, or the values of a Delta guide."""
    kwargs = kwargs or {}
    with torch.no_grad():
        if hasattr(guide, "median"):
            try:
                return {k: v.detach() for k, v in guide.median(*args, **kwargs).items()}
            except NotImplementedError:  # flow guides: the median of draws instead
                draws = guide_draws(guide, args, kwargs, 500)
                return {name: value.median(0).values for name, value in draws.items()}
        trace = poutine.trace(guide).get_trace(*args, **kwargs)
    return {
        name: site["value"].detach()
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"]
    }


def select_examples(args: tuple, index) -> tuple:
    """The examples ``index`` (indices or a slice) of every tensor argument whose leading
    dimension is the first argument's N; other arguments as they are."""
    n = int(args[0].shape[0])
    return tuple(
        a[index] if isinstance(a, torch.Tensor) and a.dim() and a.shape[0] == n else a for a in args
    )


class SVIEngine:
    """One SVI step per ``update``; the loss is divided by ``loss_scale`` (e.g. N).

    With ``batch_size`` each step sees the next minibatch of a random permutation of
    the N examples (a new one every epoch; the last batch of an epoch may be smaller):
    every tensor argument is indexed along its first dimension and the model is called
    with ``num_examples=N``, which its data plate uses to scale the batch up to N."""

    def __init__(
        self,
        model,
        guide,
        optim,
        elbo,
        args=(),
        kwargs=None,
        loss_scale: float = 1.0,
        batch_size: int | None = None,
        fast: bool = True,
    ):
        self.model, self.guide, self.optim, self.elbo = model, guide, optim, elbo
        self.args, self.kwargs = args, kwargs or {}
        self.loss_scale = loss_scale
        self.traced = False  # a jit ELBO compiles on its first step
        # Pyro's Trace_ELBO / TraceMeanField_ELBO computed without traces (the same
        # number; checked against Pyro's at the first step, else Pyro's is kept)
        self.fast = fast_twin(elbo) if fast else None
        self.batch_size = batch_size
        if batch_size is not None:
            self.num_examples = int(args[0].shape[0])
            self.order = torch.randperm(self.num_examples, device=args[0].device)
            self.position = 0

    def _batch(self) -> tuple[tuple, dict]:
        if self.batch_size is None:
            return self.args, self.kwargs
        if self.position >= self.num_examples:
            self.order = torch.randperm(self.num_examples, device=self.args[0].device)
            self.position = 0
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self._take(index)

    def _take(self, index) -> tuple[tuple, dict]:
        """The examples ``index`` of every data argument, and ``num_examples=N``."""
        return select_examples(self.args, index), {**self.kwargs, "num_examples": self.num_examples}

    def update(self) -> float:
        args, kwargs = self._batch()
        if self.traced:
            return self._step(args, kwargs) / self.loss_scale
        if self.fast is not None:
            # the two ELBOs' agreement is a property of the model's sites, plates and
            # scales, not of the batch's size: a minibatch's first two examples (still
            # scaled to N) show it at a fraction of a full batch's cost
            check = select_examples(args, slice(0, 2)) if self.batch_size is not None else args
            try:
                agrees = agrees_with_pyro(
                    self.fast, self.elbo, self.model, self.guide, check, kwargs
                )
            except torch.linalg.LinAlgError:  # a failed draw: Pyro's ELBO says so (below)
                agrees = False
            if not agrees:
                self.fast = None
        with quiet_jit_tracing():
            loss = self._step(args, kwargs) / self.loss_scale
        self.traced = True
        return loss

    def _step(self, args, kwargs) -> float:
        """One step; a guide draw that makes the model's matrix factorization fail (a
        Cholesky of a kernel that the draw made numerically singular) stops the fit
        with a message that says so. Such a draw is not redrawn: the draws that fail
        sit in one region (a long length scale), and a fit that only ever sees the
        others is pulled into that region (a test model: its mean went from 0 to 0.72)."""
        try:
            return self._try_step(args, kwargs)
        except torch.linalg.LinAlgError as error:
            raise RuntimeError(
                f"svi: a draw of the guide made the model fail ({str(error).splitlines()[0]}); "
                "the guide puts mass where the model cannot be evaluated: start it "
                "elsewhere (init=...), give the model more jitter, or use NUTS, which "
                "rejects such proposals"
            ) from error

    def _try_step(self, args, kwargs) -> float:
        """``pyro.infer.SVI.step``, except that gradients are released (``grad = None``,
        as ``torch.optim.Optimizer.zero_grad`` does) instead of refilled with zeros."""
        if self.fast is not None:
            # after a first validated step, the steps skip the distributions' argument
            # checks (a non-finite loss still stops the loop); the data were checked
            checks = pyro.validation_enabled(False) if self.traced else contextlib.nullcontext()
            with checks:
                loss, params = self.fast.loss_and_grads(self.model, self.guide, *args, **kwargs)
        else:
            with poutine.trace(param_only=True) as capture:
                loss = self.elbo.loss_and_grads(self.model, self.guide, *args, **kwargs)
            params = [site["value"].unconstrained() for site in capture.trace.nodes.values()]
        self.optim(params)
        for p in params:
            p.grad = None
        return torch_item(loss)

    def state_dict(self) -> dict:
        state = {"params": pyro.get_param_store().get_state(), "optim": self.optim.get_state()}
        if self.batch_size is not None:
            state["batches"] = {"order": self.order.cpu(), "position": self.position}
        return state

    def load_state_dict(self, state: dict) -> None:
        # Build the guide's parameters first: an autoguide that sets itself up later
        # would overwrite the restored values with its initial ones.
        args, kwargs = self.args, self.kwargs
        if self.batch_size is not None:  # one batch builds them as well as all N
            args, kwargs = self._take(slice(0, self.batch_size))
        with poutine.block(), torch.no_grad():
            self.guide(*args, **kwargs)
        restore_param_store(state["params"])
        self.optim.set_state(state["optim"])
        if self.batch_size is not None and "batches" in state:
            self.order = state["batches"]["order"].to(self.args[0].device)
            self.position = state["batches"]["position"]


def restore_param_store(state: dict) -> None:
    """Pyro's ``ParamStoreDict.set_state``, except that a parameter already in the store
    with the saved shape is overwritten in place: a guide that holds its parameters
    itself (AutoMultivariateNormal's ``loc`` is an ``nn.Parameter`` of the module)
    keeps reading the tensor it holds, which ``set_state`` would leave at its initial
    value while the store moved on."""
    store = pyro.get_param_store()
    rest = {"params": {}, "constraints": dict(state["constraints"])}
    with torch.no_grad():
        for name, value in state["params"].items():
            current = store._params.get(name)
            if current is not None and current.shape == value.shape:
                current.copy_(value.to(device=current.device, dtype=current.dtype))
            else:
                rest["params"][name] = value
    store.set_state(rest)


def empty_guide(*args, **kwargs) -> None:
    """The guide of a fit with nothing latent to approximate (maximum likelihood)."""
    return None


def _choose_guide(target, method, options, structure, init_values):
    if method == "mle" or (not structure.continuous and options.guide is None):
        return empty_guide  # nothing latent: MAP and SVI reduce to maximum likelihood
    if method == "svi" and options.guide is None and target.guide is not None:
        return target.guide
    return make_guide(
        options.guide, target.model, structure, method=method, init_values=init_values
    )


def _training_record(options, elbo=None) -> str:
    """What a resumed SVI run must share with the checkpoint it resumes."""
    from pyrogen.checkpoint import describe

    return repr(
        (
            describe(options.optim),
            options.lr if isinstance(options.optim, str) else None,
            options.batch_size,
            describe(options.loss),
            getattr(elbo, "num_particles", options.num_particles),
            describe(options.guide),
            options.convergence,
        )
    )


def fitted_parameters(target) -> dict[str, torch.Tensor]:
    """A fit with no global latent site to report: the model's sites if it keeps any,
    else its parameters by name (a plain function's: Pyro's parameter store)."""
    values = target.point_values()
    if values:
        return values
    if isinstance(target, torch.nn.Module):
        return {name: p.detach().clone() for name, p in target.named_parameters()}
    return {name: value.detach().clone() for name, value in pyro.get_param_store().items()}


def guide_and_elbo(
    target, method, options, probe, kwargs, init_values, jit: bool, rule: bool = False
):
    """The guide and the ELBO for ``method``, chosen from the model's structure as read
    on ``probe`` (the data, or two examples of it); under the convergence rule
    (``rule``) with ``num_particles`` unset, :data:`RULE_PARTICLES` vectorized
    particles where the model and guide vectorize exactly."""
    loss = options.loss if options.loss is not None else getattr(target, "default_loss", None)
    if isinstance(loss, str) and loss in getattr(target, "own_losses", ()):
        # the model's own estimator of its objective (a DDPM's one-step losses): it
        # reads the model's structure itself, so the chain is not traced here
        return target.guide or empty_guide, target.make_loss(loss, options)
    structure = model_structure(target.model, probe, kwargs)
    guide = _choose_guide(target, method, options, structure, init_values)
    particles, vectorize = options.num_particles or 1, options.vectorize_particles
    if rule and options.num_particles is None and method == "svi":
        if _rule_particles_apply(target, guide, structure, loss, probe, kwargs):
            particles, vectorize = RULE_PARTICLES, True
    elbo = make_elbo(
        loss,
        enumerated=structure.enumerated,
        nesting=structure.nesting,
        num_particles=particles,
        vectorize_particles=vectorize,
        jit=jit,
    )
    return guide, elbo


RULE_PARTICLES = 16  # particles per step under the convergence rule, where they vectorize
RULE_MAX_STEPS = 20_000  # the budget of convergence="auto" when num_steps is not given


def _rule_particles_apply(target, guide, structure, loss, args, kwargs) -> bool:
    """Whether the rule's vectorized particles may serve this fit: a guide with noise to
    average (not a point mass), nothing enumerated, Pyro's plain ELBO, and a model that
    vectorizes exactly (checked on the data, from a fixed random state)."""
    if isinstance(guide, AutoDelta) or structure.enumerated or loss not in (None, "trace"):
        return False
    with torch.random.fork_rng(), poutine.block(), torch.no_grad():
        guide(*args, **kwargs)  # the guide's parameters, made outside any particle plate
        return vectorizes_particles(target.model, guide, args, kwargs, nesting=structure.nesting)


def convergence_rule(guide, optim, options):
    """The iterate-averaging rule (:class:`~pyrogen.infer.convergence.IterateAveraging`)
    for a fit where :func:`_rule_applies`, if the guide has anything to average and the
    optimizer one learning rate to halve; else None."""
    from pyrogen.infer.convergence import IterateAveraging, base_lr

    if guide is empty_guide:
        return None
    if base_lr(optim) is None:
        if options.convergence == "rule":
            raise ValueError(
                "convergence: 'rule' halves the learning rate, and this optimizer has no "
                "single lr (give optim by name, or a PyroOptim made with a dict of "
                "arguments)"
            )
        return None
    return IterateAveraging(optim, guide, tolerance=options.tolerance)


def _rule_applies(target, method, options, run) -> bool:
    """Whether :func:`convergence_rule` may apply, before the guide exists."""
    from pyrogen.zoo import NetworkModel

    if options.convergence == "none" or method not in ("svi", "map"):
        return False
    if options.batch_size is not None and options.convergence == "auto":
        return False  # minibatches: the step count is the user's (epochs)
    if options.convergence == "auto" and (
        run.num_steps is not None or options.num_epochs is not None or run.tol is not None
    ):
        return False
    return not isinstance(target, NetworkModel)


class _Both:
    """The rule and the user's callback as one loop callback (either may stop the run;
    both are checkpointed)."""

    def __init__(self, rule, callback):
        self.rule, self.callback = rule, callback

    def __call__(self, step: int, loss: float) -> bool:
        stop = bool(self.rule(step, loss))
        return bool(self.callback(step, loss)) or stop

    def state_dict(self) -> dict:
        state = {"rule": self.rule.state_dict()}
        if hasattr(self.callback, "state_dict"):
            state["callback"] = self.callback.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.rule.load_state_dict(state["rule"])
        if "callback" in state and hasattr(self.callback, "load_state_dict"):
            self.callback.load_state_dict(state["callback"])


def _with_rule(rule, callback):
    if rule is None:
        return callback
    return rule if callback is None else _Both(rule, callback)


def _warn_unconverged(target, method: str, steps: int, rule) -> None:
    warnings.warn(
        f"{method} {target.name}: not converged in {steps} steps ({rule.outcome()}). Give "
        "more steps (num_steps=... with convergence='rule'), more particles "
        "(num_particles=..., vectorize_particles=True), a larger tolerance, or a guide "
        "closer to the posterior",
        UserWarning,
        stacklevel=4,
    )


def fit_svi(target, args, kwargs, method, options, run, result, init_values, fingerprint=None):
    """``fit(method="svi" | "map" | "mle")``: the guide and ELBO chosen from the model's
    structure (read on two examples when minibatched), then the shared loop, under the
    convergence rule where it applies."""
    import math

    from pyrogen.infer.loop import run_options_loop
    from pyrogen.zoo import NetworkModel

    pyro.clear_param_store()
    batch = options.batch_size
    probe = select_examples(args, slice(0, min(batch, 2))) if batch is not None else args
    jit = target.jit_safe if options.jit is None else options.jit
    ruled = _rule_applies(target, method, options, run)
    guide, elbo = guide_and_elbo(
        target, method, options, probe, kwargs, init_values, jit, rule=ruled
    )
    if fingerprint is not None:  # resuming under another optimizer would change the run
        fingerprint = {**fingerprint, "training": _training_record(options, elbo)}
    # under the rule, a Gaussian autoguide with no start given starts at the Laplace
    # approximation where that beats its own start (pyrogen.infer.init.laplace_start)
    laplace = ruled and not init_values and laplace_start(target.model, guide, elbo, args, kwargs)
    optim = make_optim(options.optim, options.lr)
    if laplace and isinstance(optim, SharedAdam):  # steps in the posterior's own units
        optim.scale_steps(laplace_step_scales(guide))
    engine = SVIEngine(
        target.model,
        guide,
        optim,
        elbo,
        args,
        kwargs,
        loss_scale=target.num_examples(*args),
        batch_size=batch,
        fast=options.fast_elbo,
    )
    num_steps = run.num_steps or 1000
    if options.num_epochs is not None:
        num_steps = options.num_epochs * math.ceil(target.num_examples(*args) / batch)
    rule = convergence_rule(guide, optim, options) if ruled else None
    if rule is not None and run.num_steps is None:
        num_steps = RULE_MAX_STEPS
    looped = run_options_loop(
        engine,
        run,
        num_steps=num_steps,
        desc=f"{method} {target.name}",
        fingerprint=fingerprint,
        callback=_with_rule(rule, run.callback),
    )
    result.losses, result.num_steps = looped.losses, looped.num_steps
    result.guide, result.backend = guide, "pyro"
    result.converged = looped.converged if run.tol is not None else None
    result.diagnostics["num_particles"] = getattr(elbo, "num_particles", None)
    result.diagnostics["laplace_start"] = bool(laplace)
    if rule is not None:
        rule.finish()
        result.converged = rule.converged
        result.diagnostics.update(convergence="iterate averaging", levels=list(rule.history))
        if not rule.converged:
            _warn_unconverged(target, method, looped.num_steps, rule)
    result.diagnostics["resumed_from"] = looped.resumed_from
    if guide is empty_guide or isinstance(target, NetworkModel):
        target.absorb({})  # an amortized guide's latents are per example: the fit is the networks
        result.params = fitted_parameters(target)
    else:
        result.params = point_values(guide, args, kwargs)
        target.absorb(result.params)
    return result
