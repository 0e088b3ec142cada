"""Checkpoints: written atomically, read without running code, refused when truncated,
crafted or from another run.

A checkpoint is a ``torch.save`` archive holding a header (format, version and the
run's fingerprint) and the engine's state, all of it tensors and plain values (dicts,
lists, tuples, strings, numbers): NumPy arrays are stored as tensors of their bytes,
Pyro's parameter constraints by name, and pyrogen's result records as dicts (see
:func:`encode`). It is read with ``torch.load(weights_only=True)``, PyTorch's
restricted unpickler, so a file crafted to run code when unpickled is refused, not
run. Checkpoints of format version 1 (pyrogen before the safe format) were pickles;
they load only with ``trust_checkpoint=True``, which warns.

A checkpoint is first written to a temporary file in the same directory, flushed to
disk and then moved over the old file with ``os.replace``, so a crash leaves either
the old checkpoint or the new one, never a partial file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import types
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from pyro.optim import PyroOptim

__all__ = [
    "CheckpointError",
    "decode",
    "encode",
    "register_record",
    "atomic_path",
    "atomic_write",
    "save_checkpoint",
    "load_checkpoint",
    "fingerprint",
    "describe",
]

FORMAT = "pyrogen-checkpoint"
VERSION = 2  # 2: tensors and plain values only; 1: pickles (read only when trusted)
TAG = "__pyrogen__"
# fingerprint keys that checkpoints written by earlier versions lack: not compared there
RECORDED_LATER = frozenset({"training", "dense_mass", "precision"})


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: truncated, corrupt, or from another run."""


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    For writers that want a file name rather than a handle (netCDF, for one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(file)`` on a temporary file, flush it to disk, then move it onto ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def fingerprint(**items: Any) -> dict[str, str]:
    """Identify a run: tensors are hashed, everything else is kept as its repr."""
    out = {}
    for key, value in items.items():
        if isinstance(value, torch.Tensor):
            data = value.detach().cpu().contiguous()
            digest = hashlib.sha1(data.numpy().tobytes()).hexdigest()[:16]
            out[key] = f"tensor{tuple(data.shape)}:{data.dtype}:{digest}"
        elif isinstance(value, (tuple, list)):
            out[key] = repr(tuple(fingerprint(v=v)["v"] for v in value))
        else:
            out[key] = repr(value)
    return out


def describe(obj: Any) -> str:
    """A repr of an option that is the same in every process: plain values as
    themselves, a Pyro optimizer by its type and arguments, any other object (an ELBO,
    a guide, a function) by its type's or its own name, never by its address."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return repr(obj)
    if isinstance(obj, (list, tuple)):
        return "(" + ", ".join(describe(v) for v in obj) + ")"
    if isinstance(obj, dict):
        items = sorted(obj.items(), key=lambda item: repr(item[0]))
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in items) + "}"
    if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
        return obj.__qualname__
    name = type(obj).__qualname__
    if isinstance(obj, PyroOptim):  # its torch optimizer and that one's arguments
        return f"{name}({describe(obj.pt_optim_constructor)}, {describe(obj.pt_optim_args)})"
    return name


# -- a safe encoding: tensors and plain values only -------------------------------------
_RECORDS: dict[str, type] = {}  # dataclasses a checkpoint may hold, by name


def register_record(cls: type) -> type:
    """Let checkpoints hold instances of the dataclass ``cls`` (stored as a dict)."""
    _RECORDS[cls.__qualname__] = cls
    return cls


def _constraint_modules():
    import pyro.distributions.constraints as pyro_constraints
    import torch.distributions.constraints as torch_constraints

    return {m.__name__: m for m in (torch_constraints, pyro_constraints)}


def _encode_constraint(value) -> dict:
    for name, module in _constraint_modules().items():
        for attribute in dir(module):
            if getattr(module, attribute) is value:
                return {TAG: "constraint", "module": name, "name": attribute}
    cls = type(value)
    if cls.__module__ not in _constraint_modules():
        raise CheckpointError(f"checkpoint: cannot store the constraint {value!r} safely")
    fields = {k: encode(v) for k, v in vars(value).items()}
    return {TAG: "constraint", "module": cls.__module__, "class": cls.__name__, "fields": fields}


def _decode_constraint(value: dict):
    from torch.distributions.constraints import Constraint

    module = _constraint_modules().get(value["module"])
    if module is None:
        raise CheckpointError(f"checkpoint: unknown constraint module {value['module']!r}")
    if "name" in value:
        found = getattr(module, value["name"], None)
        if not isinstance(found, Constraint):
            raise CheckpointError(f"checkpoint: unknown constraint {value['name']!r}")
        return found
    cls = getattr(module, value["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, Constraint)):
        raise CheckpointError(f"checkpoint: unknown constraint class {value['class']!r}")
    constraint = cls.__new__(cls)
    constraint.__dict__.update({k: decode(v) for k, v in value["fields"].items()})
    return constraint


def encode(value):
    """``value`` as tensors and plain values (what ``torch.load(weights_only=True)``
    reads): NumPy arrays and scalars, Pyro constraints and registered records tagged."""
    import numpy as np
    from torch.distributions.constraints import Constraint

    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [encode(v) for v in value]
        return items if isinstance(value, list) else {TAG: "tuple", "items": items}
    if isinstance(value, (np.ndarray, np.generic)) or type(value).__module__.startswith("jax"):
        array = np.ascontiguousarray(np.asarray(value))
        if array.dtype.hasobject:
            raise CheckpointError("checkpoint: cannot store an array of Python objects safely")
        data = torch.frombuffer(bytearray(array.tobytes()), dtype=torch.uint8)
        kind = "ndarray" if isinstance(value, np.ndarray) or np.ndim(value) else "npscalar"
        return {TAG: kind, "dtype": array.dtype.str, "shape": list(array.shape), "data": data}
    if isinstance(value, Constraint):
        return _encode_constraint(value)
    if dataclasses.is_dataclass(value) and type(value).__qualname__ in _RECORDS:
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {TAG: "record", "class": type(value).__qualname__, "fields": fields}
    raise CheckpointError(
        f"checkpoint: cannot store a {type(value).__name__} safely; checkpoint states hold "
        "tensors, arrays, numbers, strings, lists and dicts"
    )


def decode(value):
    """The inverse of :func:`encode`."""
    import numpy as np

    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get(TAG)
    if kind is None:
        return {k: decode(v) for k, v in value.items()}
    if kind == "tuple":
        return tuple(decode(v) for v in value["items"])
    if kind in ("ndarray", "npscalar"):
        raw = value["data"].numpy().tobytes()
        array = np.frombuffer(raw, dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()
        return array if kind == "ndarray" else array[()]
    if kind == "constraint":
        return _decode_constraint(value)
    if kind == "record" and value["class"] in _RECORDS:
        return _RECORDS[value["class"]](**{k: decode(v) for k, v in value["fields"].items()})
    raise CheckpointError(f"checkpoint: unknown entry {kind!r}")


def save_checkpoint(path, state: dict, run_fingerprint: dict) -> None:
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "fingerprint": dict(run_fingerprint),
        "state": encode(state),
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))


def _read(path, trust: bool) -> dict:
    """The archive, by the restricted unpickler; an old pickle only when trusted."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        refused = error
    if "weights only load failed" not in str(refused).lower():
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupt and was not loaded ({refused})"
        ) from None
    # a pyrogen checkpoint of format 1 (pickled), or a crafted file: never unpickled
    # unless the user trusts it
    if not trust:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was not loaded: it holds objects that loading would "
            "have to run code to rebuild (a checkpoint of pyrogen's format 1, or a crafted "
            "file). If you wrote it yourself with an earlier pyrogen, pass "
            "trust_checkpoint=True (--trust-checkpoint) to load it"
        ) from None
    warnings.warn(
        f"checkpoint {str(path)!r}: loaded with trust_checkpoint=True, which runs the code "
        "a pickle names; load only files you wrote yourself",
        UserWarning,
        stacklevel=3,
    )
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupt and was not loaded ({error})"
        ) from None


def load_checkpoint(path, run_fingerprint: dict, trust: bool = False) -> dict:
    """Return the saved state, or raise ``CheckpointError`` saying what is wrong.
    ``trust`` also reads pickled checkpoints of format version 1 (it runs the code a
    pickle names: only for files you wrote yourself)."""
    payload = _read(path, trust)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a pyrogen checkpoint")
    if payload.get("version") not in (VERSION, 1):
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {payload.get('version')}, "
            f"this pyrogen reads version {VERSION}"
        )
    saved = payload.get("fingerprint", {})
    differences = [
        f"{key}: checkpoint has {saved.get(key)}, this run has {value}"
        for key, value in run_fingerprint.items()
        if saved.get(key) != value and (key in saved or key not in RECORDED_LATER)
    ]
    if differences:
        raise CheckpointError(
            f"checkpoint {str(path)!r} belongs to another run and was not loaded; "
            + "; ".join(differences)
        )
    state = payload["state"]
    return decode(state) if payload["version"] == VERSION else state
