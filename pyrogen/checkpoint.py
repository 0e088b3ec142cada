"""Checkpoints: written atomically, refused when truncated or from another run.

A checkpoint is a ``torch.save`` archive holding a header (format, version and the
run's fingerprint) and the engine's state. It is first written to a temporary file
in the same directory, flushed to disk and then moved over the old file with
``os.replace``, so a crash leaves either the old checkpoint or the new one, never a
partial file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import types
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from pyro.optim import PyroOptim

__all__ = [
    "CheckpointError",
    "atomic_path",
    "atomic_write",
    "save_checkpoint",
    "load_checkpoint",
    "fingerprint",
    "describe",
]

FORMAT = "pyrogen-checkpoint"
VERSION = 1
# fingerprint keys that checkpoints written by earlier versions lack: not compared there
RECORDED_LATER = frozenset({"training", "dense_mass"})


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


def save_checkpoint(path, state: dict, run_fingerprint: dict) -> None:
    payload = {"format": FORMAT, "version": VERSION, "fingerprint": run_fingerprint, "state": state}
    atomic_write(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(path, run_fingerprint: dict) -> dict:
    """Return the saved state, or raise ``CheckpointError`` saying what is wrong."""
    try:
        # Our own files hold optimizer states and numpy RNG states, which the
        # weights-only unpickler refuses; the header below is checked before use.
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupt and was not loaded ({error})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a pyrogen checkpoint")
    if payload.get("version") != VERSION:
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
    return payload["state"]
