"""The zoo contract: the surface every zoo model offers, the optional abilities the
engines and the command line look for, and the registry behind ``pyrogen zoo``.

Required of every model (:class:`ZooModel`, an abstract base):

- ``model(*data)``, the generative story as a Pyro model, and optionally ``guide``;
- ``log_prob(x)`` per example in nats and ``sample(n)``;
- ``config``: the constructor's arguments, recorded by the base class (one source of
  truth: a model writes its defaults once, in its ``__init__`` signature), so that
  ``save``/``load`` round-trip it;
- ``prepare(*data)``, ``initialize(*data)``, ``point_values()``, ``absorb(values)``:
  what ``pyrogen.fit`` calls around an engine (defaults are given).

Optional abilities are runtime-checkable protocols, found by ``isinstance``:
:class:`SupportsEM` (closed-form EM), :class:`SupportsMinibatches`,
:class:`SupportsRelabel` (NUTS draws put in a canonical order),
:class:`SupportsPointwiseLogLikelihood` (ArviZ's ``log_likelihood`` group written by
the model), :class:`ChecksNUTS` and :class:`HasCLI` (``pyrogen fit NAME``'s data,
metrics and pictures). :func:`supported_methods` reads them; ``pyrogen.fit`` refuses
any other method by name before any work.

A family is added by one file in ``models/`` that defines a ``ZooModel`` subclass and
decorates it with :func:`register`: see ``docs/adding-a-model.md``.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import functools
import inspect
import math
import os
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from pyrogen.checkpoint import atomic_write
from pyrogen.validation import as_data_tensor

__all__ = [
    "ZOO",
    "ALL_METHODS",
    "ChecksNUTS",
    "DensityModel",
    "FunctionModel",
    "HasCLI",
    "NetworkModel",
    "SupportsEM",
    "SupportsMinibatches",
    "SupportsPointwiseLogLikelihood",
    "SupportsRelabel",
    "ZooModel",
    "as_target",
    "check_method",
    "data_plate",
    "get_model_class",
    "register",
    "supported_methods",
]

ZOO: dict[str, type[ZooModel]] = {}
ALL_METHODS = ("svi", "map", "mle", "em", "nuts", "adversarial")


def register(name: str):
    """Class decorator: list the model under ``name`` in ``pyrogen zoo`` and make it
    fittable by ``pyrogen fit NAME``."""

    def wrap(cls):
        if not (isinstance(cls, type) and issubclass(cls, ZooModel)):
            raise TypeError(f"register({name!r}): {cls!r} is not a ZooModel subclass")
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(cls.__abstractmethods__))
            raise TypeError(f"register({name!r}): {cls.__name__} does not define {missing}")
        cls.zoo_name = name
        ZOO[name] = cls
        return cls

    return wrap


def get_model_class(name: str) -> type[ZooModel]:
    import pyrogen.models  # noqa: F401  (fills the registry)

    if name not in ZOO:
        raise ValueError(f"model: unknown model {name!r}; known models: {', '.join(sorted(ZOO))}")
    return ZOO[name]


def data_plate(x: torch.Tensor, num_examples: int | None = None):
    """The plate over the examples in x: a minibatch of x stands for ``num_examples``
    (N) of them (``fit(..., batch_size=B)`` passes N), so its log-likelihood is scaled
    by N / B."""
    import pyro

    batch = x.shape[0]
    return pyro.plate("data", num_examples or batch, subsample=torch.arange(batch, device=x.device))


# -- optional abilities ----------------------------------------------------------------
@runtime_checkable
class SupportsEM(Protocol):
    """Closed-form EM: ``em_init(x)`` starts a run, ``em_step(x)`` takes one E- and
    M-step and returns the mean log-likelihood before the M-step."""

    def em_init(self, x: torch.Tensor) -> None: ...

    def em_step(self, x: torch.Tensor) -> float: ...


@runtime_checkable
class SupportsMinibatches(Protocol):
    """``model(x, num_examples=N)`` scales a minibatch's likelihood up to N examples, so
    ``fit(..., batch_size=B)`` may step on minibatches."""

    supports_batches: bool


@runtime_checkable
class SupportsRelabel(Protocol):
    """Puts NUTS draws in a canonical order (mixture components, HMM states)."""

    def relabel(self, samples: dict) -> dict: ...


@runtime_checkable
class ChecksNUTS(Protocol):
    """Refuses NUTS, by a clear error, where the model's configuration has no posterior
    to sample (no prior)."""

    def check_nuts(self) -> None: ...


@runtime_checkable
class SupportsPointwiseLogLikelihood(Protocol):
    """Writes ArviZ's ``log_likelihood`` group itself (enumerated or Markov models)."""

    def pointwise_log_likelihood(self, draws: dict, *data) -> dict: ...


@runtime_checkable
class HasCLI(Protocol):
    """``pyrogen fit NAME``'s own data and report (see :mod:`pyrogen.cli`):
    ``cli_data(options)`` returns a :class:`pyrogen.cli.RunData`, ``cli_report(run)``
    writes the model's own metrics and pictures (after the generic ones)."""

    @classmethod
    def cli_data(cls, options) -> Any: ...


def summary(cls) -> str:
    """The first sentence of a model class's docstring, on one line."""
    import re

    text = " ".join((cls.__doc__ or cls.__name__).split()).replace("``", "")
    match = re.match(r"(.+?[.:])(\s+[A-Z]|$)", text)
    return (match.group(1) if match else text).rstrip(".:")


def supported_methods(model) -> tuple[str, ...]:
    """The ``method`` values ``pyrogen.fit`` accepts for ``model``, in preference order."""
    methods = getattr(model, "methods", None)
    if methods is None:
        methods = ("svi", "map", "mle", "nuts")
    methods = tuple(methods)
    if isinstance(model, SupportsEM) and "em" not in methods:
        methods += ("em",)
    return methods


def check_method(model, method: str) -> None:
    """Refuse a method the model cannot run, naming the model and the methods it can."""
    methods = supported_methods(model)
    if method not in methods:
        name = getattr(model, "name", None) or type(model).__name__
        why = ""
        if method == "em":
            why = " (no closed-form EM: it defines no em_step)"
        raise ValueError(
            f"method: {name} cannot be fitted with method={method!r}{why}; "
            f"its methods: {', '.join(methods)}"
        )


# -- configuration from the constructor's signature ----------------------------------
def _config_class(cls: type, init: Callable) -> type:
    """A dataclass with a field per argument of ``init`` (defaults copied per instance)."""
    fields = []
    for name, parameter in list(inspect.signature(init).parameters.items())[1:]:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(
                f"{cls.__name__}.__init__: *args and **kwargs cannot be recorded in its config; "
                "name every argument"
            )
        if parameter.default is parameter.empty:
            fields.append((name, Any))
        else:
            default = functools.partial(copy.deepcopy, parameter.default)
            fields.append((name, Any, dataclasses.field(default_factory=default)))
    config = dataclasses.make_dataclass(f"{cls.__name__}Config", fields, kw_only=True)
    config.__module__ = cls.__module__
    config.__qualname__ = f"{cls.__qualname__}.Config"
    return config


def _recording(init: Callable) -> Callable:
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if "config" not in self.__dict__:  # the outermost constructor records
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError as error:
                raise TypeError(f"{type(self).__name__}: {error}") from None
            bound.apply_defaults()
            values = dict(list(bound.arguments.items())[1:])
            object.__setattr__(self, "config", type(self).Config(**values))
        init(self, *args, **kwargs)

    __init__._records_config = True
    return __init__


class ZooModel(torch.nn.Module, metaclass=abc.ABCMeta):
    """Base class of the zoo: a Pyro ``model``/``guide`` pair with a density surface.

    A subclass defines ``model(*data)`` (the generative story), optionally ``guide``
    (else ``pyrogen.fit`` chooses an autoguide), ``log_prob(x)`` per example in nats and
    ``sample(n)``. The constructor's arguments are recorded in ``self.config`` (a
    dataclass made from the signature, ``type(model).Config``) before the constructor
    body runs; the body checks them and may normalize a field in place
    (``self.config.hidden = [int(h) for h in hidden]``). Fitted values live in
    parameters and buffers, so ``save``/``load`` round-trip config and fit.

    Class attributes: ``default_method`` (what ``pyrogen fit`` and the contract tests
    run), ``methods`` (what ``fit`` accepts; ``em`` is added for :class:`SupportsEM`),
    ``jit_safe`` (model and guide trace the same way on every call, so SVI may compile),
    ``revision`` (raised when the same config and weights come to mean another model;
    ``save`` records it and ``load`` refuses a file of another revision, saying why in
    ``revision_note``, instead of returning a different density under the old name).
    """

    zoo_name: ClassVar[str] = ""
    Config: ClassVar[type]
    config: Any
    guide = None  # a subclass may define its own guide method
    jit_safe: ClassVar[bool] = False
    default_method: ClassVar[str] = "svi"
    methods: ClassVar[tuple[str, ...]] = ("svi", "map", "mle", "nuts")
    revision: ClassVar[int] = 1  # files saved before revisions were recorded: 1
    revision_note: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_records_config", False):
            cls.Config = _config_class(cls, init)
            cls.__init__ = _recording(init)

    @property
    def name(self) -> str:
        return self.zoo_name or type(self).__name__

    def normalize(self, **values) -> None:
        """Keep checked, canonical values of constructor arguments in ``self.config``
        (a list of ints for a tuple of widths, a dict for a prior object)."""
        for key, value in values.items():
            if not hasattr(self.config, key):
                raise AttributeError(f"{type(self).__name__}.normalize: no config field {key!r}")
            setattr(self.config, key, value)

    # -- the required surface -----------------------------------------------------------
    @abc.abstractmethod
    def model(self, *data) -> None:
        """The generative story: a Pyro model over the data ``fit`` was given."""

    @abc.abstractmethod
    def log_prob(self, x) -> torch.Tensor:
        """log p(x) per example, in nats."""

    @abc.abstractmethod
    def sample(self, n: int) -> torch.Tensor:
        """n draws from the fitted model."""

    # -- data -------------------------------------------------------------------
    def prepare(self, *data) -> tuple:
        """Check and convert the data handed to ``fit``; return the model's arguments."""
        return tuple(
            as_data_tensor(d, "data" if i == 0 else f"data[{i}]") for i, d in enumerate(data)
        )

    def num_examples(self, *data) -> int:
        return int(data[0].shape[0])

    # -- fitted values ----------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return bool(getattr(self, "fitted", False))

    def initialize(self, *data) -> None:
        """Set a start from the data before SVI, MAP or NUTS (an unfitted model)."""

    def point_values(self) -> dict[str, torch.Tensor]:
        """The current values of the model's global latent sites, by site name."""
        return {}

    def absorb(self, values: dict[str, torch.Tensor]) -> None:
        """Take point estimates of the global sites (from MAP, SVI or NUTS)."""

    # -- persistence ------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write config and fitted state atomically to ``path``."""
        payload = {
            "class": type(self).__name__,
            "config": dataclasses.asdict(self.config),
            "state": self.state_dict(),
            "revision": type(self).revision,
        }
        atomic_write(path, lambda handle: torch.save(payload, handle))

    @classmethod
    def load(cls, path: str | os.PathLike):
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(
                f"path: {str(path)!r} is not a readable pyrogen model ({error})"
            ) from None
        if not isinstance(payload, dict) or not {"class", "config", "state"} <= set(payload):
            raise ValueError(f"path: {str(path)!r} holds no pyrogen model (class, config, state)")
        if payload.get("class") != cls.__name__:
            raise ValueError(
                f"path: {str(path)!r} holds a {payload.get('class')}, not a {cls.__name__}"
            )
        saved = cls._saved_revision(payload)
        if saved != cls.revision:
            raise ValueError(
                f"path: {str(path)!r} holds a {cls.__name__} of revision {saved}, whose "
                f"weights mean another model in this pyrogen (revision {cls.revision}: "
                f"{cls.revision_note or 'changed since'}); refit it"
            )
        model = cls(**payload["config"])
        model.load_state_dict(payload["state"])
        return model

    @classmethod
    def _saved_revision(cls, payload: dict) -> int:
        """The revision of a saved model (1 where the file records none; a subclass may
        tell its revisions apart by their configs)."""
        return payload.get("revision", 1)

    def extra_repr(self) -> str:
        fields = dataclasses.asdict(self.config)
        return ", ".join(f"{k}={v!r}" for k, v in fields.items())


class NetworkModel(ZooModel):
    """A zoo model whose fit is its networks' weights, with no global latent site:
    ``fit`` may train it on minibatches (``batch_size``); ``initialize`` puts it in
    training mode, ``absorb`` marks it fitted and puts it in evaluation mode. Its data
    are N examples of ``config.data_shape`` (or flattened), 0/1 where
    ``binary_data``, integer classes where ``data_classes`` is set."""

    supports_batches = True  # fit(..., batch_size=B) passes num_examples=N
    methods: ClassVar[tuple[str, ...]] = ("svi", "map", "mle")
    binary_data = False
    data_classes: int | None = None  # the data are integer classes in [0, data_classes)

    def __init__(self):
        super().__init__()
        self.register_buffer("fitted", torch.tensor(False))

    def prepare(self, *data) -> tuple:
        from pyrogen.validation import as_examples

        if len(data) != 1:
            raise TypeError(f"{type(self).__name__} takes one data array x, got {len(data)}")
        reference = next(self.parameters())
        x = as_examples(
            data[0],
            self.config.data_shape,
            reference,
            binary=self.binary_data,
            num_classes=self.data_classes,
        )
        return (x,)

    def absorb(self, values: dict[str, torch.Tensor]) -> None:
        self.fitted.fill_(True)
        self.eval()

    def initialize(self, *data) -> None:
        self.train()


class DensityModel(NetworkModel):
    """A zoo model whose whole job is a density network, as zuko's lazy distributions:
    a subclass gives ``distribution(context=None)``, a Pyro distribution whose event is
    one example, and gets the Pyro ``model`` (one observed site, ``site``, in the data
    plate, minibatches allowed), ``log_prob`` evaluated in chunks of bounded memory,
    ``sample``, ``bits_per_dim``, ``anomaly_score`` and the pointwise log-likelihood
    ArviZ reads. Fitted by maximum likelihood (``method="mle"``); a subclass may add a
    prior on its weights as a factor (a MAP fit by the same engine)."""

    default_method: ClassVar[str] = "mle"
    methods: ClassVar[tuple[str, ...]] = ("mle", "map", "svi")
    site: ClassVar[str] = "x"

    @abc.abstractmethod
    def distribution(self, context=None):
        """p(x | context): a Pyro distribution whose event shape is one example's."""

    @property
    def module_name(self) -> str:
        """The name its parameters carry in Pyro's parameter store (and checkpoints)."""
        return type(self).__name__.lower()

    @property
    def context_dim(self) -> int | None:
        """The width of the context vector p(x | context) is conditioned on (None:
        unconditional); a conditional model's data are (x, context) pairs."""
        return getattr(self.config, "context_dim", None)

    def prepare(self, *data) -> tuple:
        from pyrogen.validation import as_examples

        if not self.context_dim:
            return super().prepare(*data)
        if len(data) != 2 or data[1] is None:
            raise TypeError(
                f"{type(self).__name__} is conditional (context_dim={self.context_dim}): "
                "it takes x and context, one row of context per example"
            )
        (x,) = super().prepare(data[0])
        context = as_examples(data[1], [self.context_dim], x, name="context")
        if len(context) != len(x):
            raise ValueError(f"context: {len(context)} rows for {len(x)} examples in x")
        return x, context

    def model(self, x, context=None, num_examples: int | None = None) -> None:
        import pyro

        from pyrogen.infer.fast_elbo import module

        module(self.module_name, self)
        with data_plate(x, num_examples):
            pyro.sample(self.site, self.distribution(context), obs=x)

    def _numbers_per_example(self) -> int:
        """About how many numbers one example holds in log_prob's largest temporaries."""
        shape = getattr(self.config, "data_shape", None) or [1]
        return 4 * math.prod(shape)

    def log_prob(self, x, context=None) -> torch.Tensor:
        """Exact log p(x) (or log p(x | context), a row of context per example) per
        example (nats; a density for real-valued data), examples in chunks of about
        2**24 numbers, so memory stays bounded whatever N."""
        import pyro

        from pyrogen.chunks import map_chunks

        if context is not None and not self.context_dim:
            raise ValueError(f"context: {type(self).__name__} is unconditional")
        data = self.prepare(x, context) if self.context_dim else self.prepare(x)
        x, context = data[0], (data[1] if len(data) > 1 else None)

        def rows(index):  # a run of consecutive rows: sliced (views), not gathered
            part = slice(int(index[0]), int(index[-1]) + 1)
            return self.distribution(None if context is None else context[part]).log_prob(x[part])

        # checked here: the distribution need not check again
        with torch.no_grad(), pyro.validation_enabled(False):
            index = torch.arange(len(x), device=x.device)
            return map_chunks(rows, index, self._numbers_per_example())

    def sample(self, n: int, context=None) -> torch.Tensor:
        """n draws; a conditional model's given ``context``, one vector (C,) for all n
        or a row (n, C) for each."""
        from pyrogen.validation import as_data_tensor, check_positive_int

        check_positive_int(n, "n")
        if self.context_dim:
            if context is None:
                raise TypeError(f"context: {type(self).__name__} is conditional; give a context")
            reference = next(self.parameters())
            context = as_data_tensor(context, "context", dtype=reference.dtype).to(reference.device)
            if context.shape not in ((self.context_dim,), (n, self.context_dim)):
                raise ValueError(
                    f"context: expected shape ({self.context_dim},) or ({n}, {self.context_dim}),"
                    f" got {tuple(context.shape)}"
                )
            context = context.expand(n, self.context_dim)
        elif context is not None:
            raise ValueError(f"context: {type(self).__name__} is unconditional")
        with torch.no_grad():
            return self.distribution(context).sample((n,))

    def bits_per_dim(self, x, context=None) -> torch.Tensor:
        """-log2 p(x) / D per example (bits per character for text)."""
        import numpy as np

        dims = math.prod(np.shape(x)[1:]) or 1  # the data are checked by log_prob
        log_p = self.log_prob(x) if context is None else self.log_prob(x, context)
        return -log_p / (dims * math.log(2.0))

    def anomaly_score(self, x) -> torch.Tensor:
        """-log p(x) per example (nats): high where the model finds x unlikely, the
        out-of-distribution detector of PixelDefend (Song et al. 2018)."""
        return -self.log_prob(x)

    def pointwise_log_likelihood(self, draws: dict, x: torch.Tensor, *context) -> dict:
        """ArviZ's log_likelihood: the fitted log p(x) (given the context) per example
        (one draw)."""
        return {self.site: self.log_prob(x, *context)[None].cpu().numpy()}


# -- plain model functions -----------------------------------------------------------
class FunctionModel:
    """A plain Pyro model function seen through the zoo's surface, so the engines never
    ask "zoo model or function": its data are converted to tensors, it has no start or
    fitted state of its own, and its loss is not scaled per example."""

    jit_safe = False
    guide = None
    methods = ("svi", "map", "mle", "nuts")
    config = None
    is_fitted = False

    def __init__(self, fn: Callable, device=None):
        self.model, self.device = fn, device
        self.name = getattr(fn, "__name__", type(fn).__name__)
        self.identity = getattr(fn, "__qualname__", repr(fn))

    def prepare(self, *args) -> tuple:
        """Arrays (NumPy's, torch's, JAX's) become checked tensors, which a NumPyro run
        turns back into JAX arrays and Pyro's engines (the start, ArviZ's groups) read
        as they are; booleans and other values are passed as they are."""
        import numpy as np

        args = tuple(np.array(a) if _is_jax_array(a) else a for a in args)  # a writable copy
        return tuple(
            as_data_tensor(arg, f"args[{i}]", device=self.device)
            if isinstance(arg, np.ndarray)
            or (isinstance(arg, torch.Tensor) and arg.dtype != torch.bool)
            else arg
            for i, arg in enumerate(args)
        )

    def num_examples(self, *args) -> float:
        return 1.0

    def initialize(self, *args) -> None:
        pass

    def point_values(self) -> dict:
        return {}

    def absorb(self, values: dict) -> None:
        pass


def as_target(model, device=None):
    """The object the engines drive: a zoo model itself, or a function's adapter."""
    if isinstance(model, ZooModel):
        return model
    if isinstance(model, type) and issubclass(model, ZooModel):
        raise TypeError(
            f"model: got the class {model.__name__}; pass an instance, e.g. {model.__name__}(...)"
        )
    if callable(model):
        return FunctionModel(model, device)
    raise TypeError(f"model: expected a zoo model or a callable, got {type(model).__name__}")


def _is_jax_array(value) -> bool:
    return type(value).__module__.split(".")[0] in ("jax", "jaxlib") and hasattr(value, "__array__")
