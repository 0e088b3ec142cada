"""A leaner evaluation of Pyro's ``Trace_ELBO`` and ``TraceMeanField_ELBO`` for the SVI
engine's steps.

Pyro's ELBOs build two full traces per step (every ``pyro.param`` of every registered
network becomes a trace node, its value fetched through the parameter store and its
constraint transform), compute every site's log-density through the trace's
bookkeeping and check the traces' shapes. For a model whose guide is fully
reparameterized none of that changes the number: the ELBO is

.. math::

    \\sum_{\\text{observed}} s \\log p(x \\mid \\cdot)
    + \\sum_{\\text{latent}} \\big(s \\log p(z) - s \\log q(z)\\big)

at one draw z ~ q (``Trace_ELBO``), with the latent terms replaced by
-s KL(q || p) where a closed form is registered (``TraceMeanField_ELBO``), s being each
site's scale (plates' subsampling, ``poutine.scale``) and mask. :class:`FastELBO`
computes exactly that: it runs the guide, then the model with the guide's draws
replayed, under one light messenger that records the sample sites and passes the
networks' parameters through unchanged (a parameter registered in the store as
itself, unconstrained, as ``pyro.module`` registers a network's weights, is returned
as is; any other ``pyro.param`` goes through the store as usual).

Which sites it accepts: observed sites and factors; latent sites whose guide draw is
reparameterized; guide-only auxiliary sites. Anything else (a score-function guide, a
site enumerated or sampled in the model but not in the guide) raises
:class:`UnsupportedModel`, and the engine keeps Pyro's own ELBO. The engine also checks
the first step against Pyro's ELBO from the same random state before it relies on this
one (:func:`agrees_with_pyro`).
"""

from __future__ import annotations

import contextlib

import pyro
import torch
from pyro.distributions import constraints
from pyro.distributions.util import scale_and_mask
from pyro.params.param_store import param_with_module_name
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import _PYRO_STACK
from pyro.poutine.subsample_messenger import _Subsample
from torch.distributions import kl_divergence

__all__ = ["FastELBO", "UnsupportedModel", "agrees_with_pyro", "fast_twin", "module"]


PARTICLE_PLATE = "num_particles_vectorized"  # the plate Pyro's ELBOs vectorize with


class UnsupportedModel(ValueError):
    """A model/guide pair outside what :class:`FastELBO` computes exactly."""


class _Record(Messenger):
    """Records sample sites; replays ``replay``'s latent draws; passes store-registered
    unconstrained parameters through without the store's lookup and transform."""

    def __init__(self, params: dict, modules: dict, replay: dict | None = None):
        super().__init__()
        self.sites: dict = {}
        self.params = params  # name -> the unconstrained tensor the optimizer updates
        self.modules = modules  # (name, id) -> [(parameter name, parameter)], see module()
        self.replay = replay
        self.store = pyro.get_param_store()

    def pass_module(self, name: str, nn_module) -> bool:
        """Whether every parameter of ``nn_module`` sits in the store as itself (as
        registered by an earlier ``pyro.module``): then they are recorded, and the
        network is used as is."""
        known = self.modules.get((name, id(nn_module)))
        if known is None:
            return False
        stored = self.store._params
        if any(stored.get(full) is not p for full, p in known):
            return False
        self.params.update(known)
        return True

    def _pyro_param(self, msg) -> None:
        args = msg["args"]
        name = args[0]
        if len(args) > 1:
            stored = self.store._params.get(name)
            if stored is args[1] and self.store._constraints[name] is constraints.real:
                msg["value"], msg["done"] = stored, True
                self.params[name] = stored

    def _pyro_post_param(self, msg) -> None:
        name = msg["args"][0]
        if name not in self.params:
            value = msg["value"]
            unconstrained = getattr(value, "unconstrained", None)
            self.params[name] = unconstrained() if unconstrained is not None else value

    def _pyro_sample(self, msg) -> None:
        if self.replay is None or msg["is_observed"]:
            return
        guide_site = self.replay.get(msg["name"])
        if guide_site is not None:
            msg["value"], msg["done"], msg["infer"] = guide_site["value"], True, guide_site["infer"]

    def _pyro_post_sample(self, msg) -> None:
        if isinstance(msg["fn"], _Subsample):  # a plate's index draw, not a model site
            return
        if msg["infer"].get("enumerate"):
            raise UnsupportedModel(f"site {msg['name']!r} is enumerated")
        self.sites[msg["name"]] = msg


def _log_prob_sum(site) -> torch.Tensor:
    log_p = site["fn"].log_prob(site["value"], *site["args"], **site["kwargs"])
    return scale_and_mask(log_p, site["scale"], site["mask"]).sum()


class FastELBO:
    """The ELBO of ``Trace_ELBO`` (``mean_field=False``) or ``TraceMeanField_ELBO``
    (``mean_field=True``, closed-form KL where registered), computed without Pyro's
    traces: one particle, or ``num_particles`` drawn at once in Pyro's
    vectorized-particles plate at ``dim`` (the mean of their ELBOs, as Pyro's
    ``vectorize_particles=True``). ``loss_and_grads`` returns the loss and the
    parameters it touched (their gradients filled), for the engine's optimizer."""

    def __init__(self, mean_field: bool = False, num_particles: int = 1, dim: int | None = None):
        self.mean_field = mean_field
        self.num_particles, self.dim = num_particles, dim
        self.modules: dict = {}

    def _particles(self):
        if self.num_particles == 1:
            return contextlib.nullcontext()
        return pyro.plate(PARTICLE_PLATE, self.num_particles, dim=self.dim)

    def differentiable_loss_and_params(self, model, guide, *args, **kwargs):
        params: dict = {}
        with self._particles(), _Record(params, self.modules) as guide_record:
            guide(*args, **kwargs)
        guide_sites = guide_record.sites
        for name, site in guide_sites.items():
            if not site["is_observed"] and not site["fn"].has_rsample:
                raise UnsupportedModel(f"guide site {name!r} is not reparameterized")
        with self._particles(), _Record(params, self.modules, replay=guide_sites) as model_record:
            model(*args, **kwargs)
        elbo = 0.0
        for name, site in model_record.sites.items():
            if site["is_observed"]:
                elbo = elbo + _log_prob_sum(site)
                continue
            guide_site = guide_sites.get(name)
            if guide_site is None:
                raise UnsupportedModel(f"latent site {name!r} is not in the guide")
            if self.mean_field:
                try:
                    kl = kl_divergence(guide_site["fn"], site["fn"])
                except NotImplementedError:
                    kl = None
                if kl is not None:
                    kl = scale_and_mask(kl, guide_site["scale"], guide_site["mask"])
                    if torch.is_tensor(kl):
                        elbo = elbo - kl.sum()
                    else:
                        elbo = elbo - kl * torch.Size(guide_site["fn"].batch_shape).numel()
                    continue
            elbo = elbo + _log_prob_sum(site) - _log_prob_sum(guide_site)
        for name, guide_site in guide_sites.items():  # auxiliary guide sites
            if name not in model_record.sites and not guide_site["is_observed"]:
                elbo = elbo - _log_prob_sum(guide_site)
        if not torch.is_tensor(elbo):
            raise UnsupportedModel("the model has no sample sites")
        elbo = elbo / self.num_particles
        # one tensor may come under two names (a PyroModule's and pyro.module's)
        return -elbo, list({id(p): p for p in params.values()}.values())

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        return self.differentiable_loss_and_params(model, guide, *args, **kwargs)[0]

    def loss_and_grads(self, model, guide, *args, **kwargs):
        loss, params = self.differentiable_loss_and_params(model, guide, *args, **kwargs)
        if loss.requires_grad:
            loss.backward()
        return float(loss.detach()), params


def fast_twin(elbo) -> FastELBO | None:
    """The :class:`FastELBO` that computes ``elbo``'s loss, if there is one: for Pyro's
    ``Trace_ELBO`` and ``TraceMeanField_ELBO`` themselves (not their jit or enumerating
    relatives), with one particle or vectorized ones."""
    kind = type(elbo)
    if kind not in (pyro.infer.Trace_ELBO, pyro.infer.TraceMeanField_ELBO):
        return None
    if elbo.num_particles != 1 and not elbo.vectorize_particles:
        return None
    return FastELBO(
        mean_field=kind is pyro.infer.TraceMeanField_ELBO,
        num_particles=elbo.num_particles,
        dim=-elbo.max_plate_nesting if elbo.vectorize_particles else None,
    )


def agrees_with_pyro(fast: FastELBO, pyro_elbo, model, guide, args, kwargs) -> bool:
    """Whether ``fast`` gives Pyro's ELBO at the same draws: both are evaluated from the
    same random state (restored afterwards, so the run's draws are unchanged)."""
    devices = [a.device for a in args if isinstance(a, torch.Tensor) and a.is_cuda][:1]
    with torch.random.fork_rng(devices=devices):  # restores the state on exit
        expected = pyro_elbo.differentiable_loss(model, guide, *args, **kwargs)
    with torch.random.fork_rng(devices=devices):
        try:
            got = fast.differentiable_loss(model, guide, *args, **kwargs)
        except UnsupportedModel:
            return False
    expected, got = float(expected.detach()), float(got.detach())
    return abs(got - expected) <= 1e-5 * max(1.0, abs(expected))


def module(name: str, nn_module):
    """``pyro.module(name, nn_module, update_module_params=True)``, which the zoo's
    models call at every step; under :class:`FastELBO` alone (no other handler on
    Pyro's stack, so no one else reads the parameter sites) a network whose parameters
    are already registered as themselves skips the per-parameter ``pyro.param`` calls:
    its parameters are recorded for the optimizer directly."""
    if len(_PYRO_STACK) == 1 and type(_PYRO_STACK[0]) is _Record:
        record = _PYRO_STACK[0]
        if record.pass_module(name, nn_module):
            return nn_module
        pyro.module(name, nn_module, update_module_params=True)
        record.modules[(name, id(nn_module))] = [
            (param_with_module_name(name, key), p)
            for key, p in nn_module.named_parameters()
            if p.requires_grad
        ]
        return nn_module
    return pyro.module(name, nn_module, update_module_params=True)
