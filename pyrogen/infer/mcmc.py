"""NUTS under Pyro or NumPyro, with the same inputs and the same result type.

A model written against ``pyroapi`` runs under either backend; a plain Pyro model
runs under Pyro only. Draws come back as NumPy arrays with a leading chain
dimension, beside per-draw sampler statistics named as ArviZ expects them.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pyro
import torch

from pyrogen.checkpoint import load_checkpoint, register_record, save_checkpoint
from pyrogen.compat import backend as use_backend
from pyrogen.infer.init import init_from
from pyrogen.infer.options import CHAIN_METHODS, PRECISIONS, NUTSOptions, RunOptions
from pyrogen.validation import check_choice

__all__ = ["CHAIN_METHODS", "MCMCResult", "fit_nuts", "run_nuts", "set_host_devices"]

# Pyro chains in worker processes only where the run is long enough to repay the
# start of a process (about 3 s to import torch and Pyro): 4 chains of 1,000 steps
PARALLEL_MIN_STEPS = 4_000


def set_host_devices(n: int) -> int:
    """Make JAX see ``n`` CPU devices, so that NumPyro runs ``n`` chains in parallel
    (``chain_method="parallel"``, chosen by ``"auto"`` when there are as many devices
    as chains). Call it first, before anything runs on JAX: its CPU backend reads the
    count once. Returns the devices JAX sees; raises if JAX started with fewer."""
    import numpyro

    from pyrogen.validation import check_positive_int

    n = check_positive_int(n, "n")
    numpyro.set_host_device_count(n)  # XLA_FLAGS, read when the CPU backend starts
    import jax

    try:
        jax.config.update("jax_num_cpu_devices", n)
    except (RuntimeError, AttributeError):  # already started: the count below tells
        pass
    if jax.default_backend() == "cpu" and jax.local_device_count() < n:
        raise RuntimeError(
            f"n: JAX's CPU backend had started with {jax.local_device_count()} device(s) "
            f"before set_host_devices({n}); call it at the start of the program, before "
            "any JAX computation (or set XLA_FLAGS=--xla_force_host_platform_device_count="
            f"{n} in the environment)"
        )
    return jax.local_device_count()


@register_record
@dataclass
class MCMCResult:
    samples: dict[str, np.ndarray]  # site -> (chain, draw, *site_shape)
    sample_stats: dict[str, np.ndarray]  # statistic -> (chain, draw)
    backend: str
    elapsed: float  # seconds of sampling, warmup included (compilation too for NumPyro)
    extra: dict = field(default_factory=dict)


def run_nuts(
    model,
    args=(),
    kwargs=None,
    *,
    backend: str = "pyro",
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 4,
    seed: int = 0,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    chain_method: str = "auto",
    jit: bool = True,
    precision: str = "float64",
    max_plate_nesting: int | None = None,
    init_values: dict | None = None,
    progress: bool = False,
    checkpoint: str | os.PathLike | None = None,
    fingerprint: dict | None = None,
    trust_checkpoint: bool = False,
) -> MCMCResult:
    from pyrogen.fit import as_precision

    check_choice(chain_method, "chain_method", CHAIN_METHODS)
    check_choice(precision, "precision", PRECISIONS)
    args, kwargs = as_precision(args, precision), as_precision(kwargs or {}, precision)
    if init_values:
        init_values = as_precision(init_values, precision)
    options = dict(
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        seed=seed,
        target_accept=target_accept,
        max_tree_depth=max_tree_depth,
        dense_mass=dense_mass,
        chain_method=chain_method,
        jit=jit,
        max_plate_nesting=max_plate_nesting,
        init_values=init_values,
        progress=progress,
        precision=precision,
    )
    fingerprint = dict(fingerprint or {})
    fingerprint["precision"] = precision
    fingerprint.update(
        sampler=repr(("nuts", backend, num_warmup, num_samples, num_chains, seed, target_accept))
    )
    if backend == "numpyro" and chain_method != "auto":  # the draws depend on it
        fingerprint["chain_method"] = chain_method
    fingerprint["dense_mass"] = str(bool(dense_mass))
    if checkpoint is not None and os.path.exists(checkpoint):
        state = load_checkpoint(checkpoint, fingerprint, trust_checkpoint)
    else:
        state = {"chains": []}
    if backend == "numpyro":
        if not state["chains"]:
            state["chains"] = [_run_numpyro(model, args, kwargs, **options)]
            if checkpoint is not None:
                save_checkpoint(checkpoint, state, fingerprint)
        (result,) = state["chains"]
        return result
    if backend != "pyro":
        raise ValueError(f"backend: must be 'pyro' or 'numpyro', got {backend!r}")
    return _run_pyro_chains(model, args, kwargs, state, options, checkpoint, fingerprint)


def _run_pyro_chains(model, args, kwargs, state, options, checkpoint, fingerprint):
    """Pyro's chains still to run, here or in worker processes. Each chain is seeded on
    its own (seed * 1000 + chain), so the draws are the same either way, and each is
    saved to the checkpoint once it and the chains before it are done."""
    todo = list(range(len(state["chains"]), options["num_chains"]))
    finished: dict[int, dict] = {}

    def done(chain: int, draws: dict) -> None:
        finished[chain] = draws
        while len(state["chains"]) in finished:
            state["chains"].append(finished.pop(len(state["chains"])))
            if checkpoint is not None:
                save_checkpoint(checkpoint, state, fingerprint)

    steps = options["num_warmup"] + options["num_samples"]
    method = _pyro_chain_method(options["chain_method"], model, args, kwargs, todo, steps)
    if method == "parallel":
        _run_pyro_chains_in_processes(model, args, kwargs, todo, options, done)
    else:
        for chain in todo:
            done(chain, _run_pyro_chain(model, args, kwargs, chain, **options))
    chains = state["chains"]
    return MCMCResult(
        samples={k: np.stack([c["samples"][k] for c in chains]) for k in chains[0]["samples"]},
        sample_stats={k: np.stack([c["stats"][k] for c in chains]) for k in chains[0]["stats"]},
        backend="pyro",
        elapsed=sum(c["elapsed"] for c in chains),
        extra={"chain_method": method},
    )


def fit_nuts(
    target,
    args,
    kwargs,
    nuts: NUTSOptions,
    run: RunOptions,
    result,
    init_values,
    fingerprint: dict | None = None,
):
    """``fit(method="nuts")``: the backend chosen (NumPyro for pyro-api models under
    ``"auto"``), the chains run, draws relabelled where the model does that, and the
    posterior means absorbed by the model and kept in ``result.params``."""
    from pyrogen.compat import uses_pyroapi
    from pyrogen.zoo import ChecksNUTS, SupportsRelabel

    if isinstance(target, ChecksNUTS):
        target.check_nuts()
    portable = uses_pyroapi(target.model)
    backend = nuts.backend if nuts.backend != "auto" else ("numpyro" if portable else "pyro")
    if backend == "numpyro" and not portable:
        raise ValueError(
            "backend: 'numpyro' needs a model written against pyroapi "
            "(from pyroapi import pyro, distributions as dist)"
        )
    mcmc = run_nuts(
        target.model,
        args,
        kwargs,
        backend=backend,
        num_warmup=nuts.num_warmup,
        num_samples=nuts.num_samples,
        num_chains=nuts.num_chains,
        seed=run.seed,
        target_accept=nuts.target_accept,
        dense_mass=nuts.dense_mass,
        chain_method=nuts.chain_method,
        jit=True if nuts.jit is None else nuts.jit,
        precision=nuts.precision,
        init_values=init_values,
        progress=bool(run.progress),
        checkpoint=run.checkpoint,
        fingerprint=fingerprint,
        trust_checkpoint=run.trust_checkpoint,
    )
    samples = target.relabel(mcmc.samples) if isinstance(target, SupportsRelabel) else mcmc.samples
    result.samples, result.sample_stats, result.backend = samples, mcmc.sample_stats, backend
    result.diagnostics["sampling_seconds"] = mcmc.elapsed
    result.diagnostics["chain_method"] = mcmc.extra.get("chain_method")
    draws = {k: torch.as_tensor(np.array(v)).flatten(0, 1) for k, v in samples.items()}
    target.absorb(draws)
    result.params = {k: v.mean(0) if v.is_floating_point() else v for k, v in draws.items()}
    return result


def _pyro_chain_method(chain_method: str, model, args, kwargs, todo, steps: int) -> str:
    """``"parallel"`` (chains in worker processes) or ``"sequential"`` for Pyro: asked
    for, or under ``"auto"`` where there are several chains left and cores, the run is
    long (``PARALLEL_MIN_STEPS`` steps over the chains) and the model pickles."""
    import pickle

    if chain_method in ("sequential", "vectorized") or len(todo) < 2:
        return "sequential"
    if chain_method == "auto" and (
        (os.cpu_count() or 1) < 2 or steps * len(todo) < PARALLEL_MIN_STEPS
    ):
        return "sequential"
    try:
        pickle.dumps((model, args, kwargs))
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        if chain_method == "auto":
            return "sequential"
        raise ValueError(
            "chain_method: 'parallel' runs Pyro's chains in worker processes, which need "
            f"the model and its data to pickle ({error}); define the model at the top of "
            "a module, or use chain_method='sequential'"
        ) from None
    return "parallel"


def _run_pyro_chains_in_processes(model, args, kwargs, todo, options, done) -> None:
    """Pyro's chains in spawned worker processes (one per core at most, each with its
    share of torch's threads); ``done(chain, draws)`` as each finishes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    cores = os.cpu_count() or 1
    workers = min(len(todo), cores)
    threads = max(1, cores // workers)
    settings = (threads, torch.get_default_dtype())
    options = {**options, "progress": False}  # one bar per process would interleave
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=settings,
    )
    with pool:
        futures = {
            pool.submit(_run_pyro_chain, model, args, kwargs, chain, **options): chain
            for chain in todo
        }
        for future in as_completed(futures):
            done(futures[future], future.result())


def _start_worker(threads: int, dtype) -> None:
    torch.set_num_threads(threads)
    torch.set_default_dtype(dtype)


def _run_pyro_chain(model, args, kwargs, chain, **options) -> dict:
    from pyro.infer import MCMC, NUTS

    from pyrogen.infer.svi import max_plate_nesting, quiet_jit_tracing

    pyro.set_rng_seed(options["seed"] * 1_000 + chain)
    nesting = options["max_plate_nesting"]
    with use_backend("pyro"):
        if nesting is None:
            nesting = max_plate_nesting(model, args, kwargs)
        kernel = NUTS(
            model,
            target_accept_prob=options["target_accept"],
            max_tree_depth=options["max_tree_depth"],
            full_mass=options["dense_mass"],
            jit_compile=options["jit"],
            ignore_jit_warnings=True,
            max_plate_nesting=nesting,
            init_strategy=init_from(options["init_values"]),
        )
        stats = {"acceptance_rate": [], "diverging": [], "step_size": []}
        previous = {"mean": 0.0, "divergences": 0}

        def record(kernel, params, stage, i):
            if not stage.startswith("Sample"):
                return
            n = i + 1
            mean = kernel._mean_accept_prob
            stats["acceptance_rate"].append(n * mean - (n - 1) * previous["mean"])
            previous["mean"] = mean
            divergences = len(kernel._divergences)
            stats["diverging"].append(divergences > previous["divergences"])
            previous["divergences"] = divergences
            stats["step_size"].append(float(kernel.step_size))

        mcmc = MCMC(
            kernel,
            num_samples=options["num_samples"],
            warmup_steps=options["num_warmup"],
            num_chains=1,
            disable_progbar=not options["progress"],
            hook_fn=record,
        )
        began = time.perf_counter()
        with quiet_jit_tracing():
            mcmc.run(*args, **kwargs)
        elapsed = time.perf_counter() - began
    from pyrogen.arviz import deterministic_sites

    samples = {k: v.detach().cpu().numpy() for k, v in mcmc.get_samples().items()}
    with use_backend("pyro"):
        samples.update(deterministic_sites(model, samples, args, kwargs))
    return {
        "samples": samples,
        "stats": {k: np.asarray(v) for k, v in stats.items()},
        "elapsed": elapsed,
    }


def to_jax(value):
    import jax.numpy as jnp

    if isinstance(value, torch.Tensor):
        return jnp.asarray(value.detach().cpu().numpy())
    if isinstance(value, np.ndarray):
        return jnp.asarray(value)
    return value


START_CANDIDATES = 10  # uniform draws per chain, of which the most probable starts it


def best_starts(model, args, kwargs, num_chains: int, seed: int, candidates=START_CANDIDATES):
    """Each chain's start: of ``candidates`` draws uniform on (-2, 2) in the unconstrained
    space (Stan's and NumPyro's start), the one of highest log density. A single draw
    can land where the density is finite but negligible (an ARMA model's MA coefficient
    beyond 1 gives log densities of -1e50 and more in float64), and a chain started
    there may settle in a far mode; float32 overflowed there and NumPyro drew again.
    Unconstrained values with a leading chain dimension (none for one chain)."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import init_to_uniform
    from numpyro.infer.util import initialize_model

    keys = jax.random.split(jax.random.PRNGKey(seed + 1), num_chains * candidates)
    with use_backend("numpyro"):
        info = initialize_model(
            keys,
            model,
            init_strategy=init_to_uniform,
            model_args=args,
            model_kwargs=kwargs,
            dynamic_args=False,
        )
    energy = info.param_info.potential_energy.reshape(num_chains, candidates)
    energy = jnp.where(jnp.isnan(energy), jnp.inf, energy)
    best = jnp.argmin(energy, axis=1) + jnp.arange(num_chains) * candidates
    starts = {name: value[best] for name, value in info.param_info.z.items()}
    return starts if num_chains > 1 else {name: value[0] for name, value in starts.items()}


def _run_numpyro(model, args, kwargs, **options) -> MCMCResult:
    """NumPyro's NUTS in the run's precision: JAX's 64-bit mode on for the whole run
    (the data's conversion included; JAX would otherwise truncate it to float32)."""
    import jax

    with jax.enable_x64(options["precision"] == "float64"):
        return _run_numpyro_chains(model, args, kwargs, **options)


def _run_numpyro_chains(model, args, kwargs, **options) -> MCMCResult:
    import jax
    from numpyro.infer import MCMC, NUTS

    args = tuple(to_jax(a) for a in args)
    kwargs = {k: to_jax(v) for k, v in kwargs.items()}
    from numpyro.infer import init_to_uniform, init_to_value

    start = options["init_values"]
    kernel = NUTS(
        model,
        target_accept_prob=options["target_accept"],
        max_tree_depth=options["max_tree_depth"],
        dense_mass=options["dense_mass"],
        init_strategy=init_to_value(values={k: to_jax(v) for k, v in start.items()})
        if start
        else init_to_uniform,
    )
    starts = None
    if not start:  # no start of the model's own: the best of several uniform draws
        starts = best_starts(model, args, kwargs, options["num_chains"], options["seed"])
    chain_method = options["chain_method"]
    if chain_method == "parallel" and jax.local_device_count() < options["num_chains"]:
        warnings.warn(
            f"chain_method: 'parallel' asked for {options['num_chains']} chains, but JAX "
            f"sees {jax.local_device_count()} device(s), so NumPyro draws them one after "
            f"another; call pyrogen.set_host_devices({options['num_chains']}) at the start "
            "of the program for one CPU device per chain",
            UserWarning,
            stacklevel=4,
        )
        chain_method = "sequential"  # what NumPyro falls back to (after its own warning)
    if chain_method == "auto":
        # one chain per device where there are enough devices; else all chains in one
        # vectorized pass, which for small models beats running them one after another
        # (4 chains of posteriordb's hmm_example on 2 CPU cores: 18 s against 52 s)
        enough = jax.local_device_count() >= options["num_chains"]
        chain_method = "parallel" if enough else "vectorized"
    mcmc = MCMC(
        kernel,
        num_warmup=options["num_warmup"],
        num_samples=options["num_samples"],
        num_chains=options["num_chains"],
        chain_method=chain_method,
        progress_bar=options["progress"],
        jit_model_args=False,
    )
    extra = ("diverging", "accept_prob", "num_steps", "energy", "adapt_state.step_size")
    with use_backend("numpyro"):
        began = time.perf_counter()
        key = jax.random.PRNGKey(options["seed"])
        mcmc.run(key, *args, extra_fields=extra, init_params=starts, **kwargs)
        samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
        elapsed = time.perf_counter() - began
    fields = mcmc.get_extra_fields(group_by_chain=True)
    stats = {
        "diverging": fields["diverging"],
        "acceptance_rate": fields["accept_prob"],
        "n_steps": fields["num_steps"],
        "energy": fields["energy"],
        "step_size": fields["adapt_state.step_size"],
    }
    return MCMCResult(
        samples={k: np.asarray(v) for k, v in samples.items()},
        sample_stats={k: np.asarray(v) for k, v in stats.items()},
        backend="numpyro",
        elapsed=elapsed,
        extra={"chain_method": chain_method},
    )
