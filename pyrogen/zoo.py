"""The surface every zoo model shares, and the registry behind ``pyrogen zoo``."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, ClassVar

import torch

from pyrogen.checkpoint import atomic_write
from pyrogen.validation import as_data_tensor

__all__ = ["ZooModel", "NetworkModel", "register", "ZOO", "get_model_class", "data_plate"]

ZOO: dict[str, type[ZooModel]] = {}


def register(name: str):
    """Class decorator: list the model under ``name`` in ``pyrogen zoo``."""

    def wrap(cls):
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


class ZooModel(torch.nn.Module):
    """Base class of the zoo: a Pyro ``model``/``guide`` pair with a density surface.

    Subclasses define ``model(*data)`` (the generative story), optionally ``guide``
    (else ``pyrogen.fit`` chooses an autoguide), ``log_prob(x)`` per example in
    nats and ``sample(n)``. Hyper-parameters live in a dataclass ``self.config``,
    fitted values in parameters and buffers, so ``save``/``load`` round-trip both.
    """

    zoo_name: ClassVar[str] = ""
    config: Any
    guide = None  # a subclass may define its own guide method
    jit_safe: ClassVar[bool] = False  # model and guide trace the same way on every call
    default_method: str = "svi"  # the engine ``pyrogen fit`` and the contract tests use

    # -- data -------------------------------------------------------------------
    def prepare(self, *data) -> tuple:
        """Check and convert the data handed to ``fit``; return the model's arguments."""
        return tuple(
            as_data_tensor(d, "data" if i == 0 else f"data[{i}]") for i, d in enumerate(data)
        )

    def num_examples(self, *data) -> int:
        return int(data[0].shape[0])

    # -- fitted values ----------------------------------------------------------
    def point_values(self) -> dict[str, torch.Tensor]:
        """The current values of the model's global latent sites, by site name."""
        raise NotImplementedError

    def absorb(self, values: dict[str, torch.Tensor]) -> None:
        """Take point estimates of the global sites (from MAP, SVI or NUTS)."""
        raise NotImplementedError

    # -- persistence ------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write config and fitted state atomically to ``path``."""
        payload = {
            "class": type(self).__name__,
            "config": dataclasses.asdict(self.config),
            "state": self.state_dict(),
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
        if payload.get("class") != cls.__name__:
            raise ValueError(
                f"path: {str(path)!r} holds a {payload.get('class')}, not a {cls.__name__}"
            )
        model = cls(**payload["config"])
        model.load_state_dict(payload["state"])
        return model

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
    binary_data = False
    data_classes: int | None = None  # the data are integer classes in [0, data_classes)

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

    def __init__(self):
        super().__init__()
        self.register_buffer("fitted", torch.tensor(False))

    def point_values(self) -> dict[str, torch.Tensor]:
        return {}

    def absorb(self, values: dict[str, torch.Tensor]) -> None:
        self.fitted.fill_(True)
        self.eval()

    def initialize(self, x) -> None:
        self.train()
