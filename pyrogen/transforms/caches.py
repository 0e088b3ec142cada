"""Dropping what transforms keep of their last call."""

from __future__ import annotations

from torch import nn

__all__ = ["clear_caches"]

# what Pyro's transforms (and pyrogen's image steps) keep beside their last (x, y)
_KEPT = ("_cached_log_scale", "_cache_log_detJ", "_last")


def clear_caches(module: nn.Module) -> None:
    """Drop every transform's one-entry cache of its last (input, output): a
    full-batch fit passes the same data tensor at every step, and a cached output from
    the previous step's graph would be reused (and backpropagated through twice).
    The transforms under ``module`` are found once and remembered (walking the module
    tree at every step cost a fifth of a small flow's step)."""
    parts = module.__dict__.get("_transform_parts")
    if parts is None:
        parts = [p for p in module.modules() if hasattr(p, "_cached_x_y") or hasattr(p, "_last")]
        module.__dict__["_transform_parts"] = parts
    for part in parts:
        state = part.__dict__
        if "_cached_x_y" in state:
            state["_cached_x_y"] = None, None
        for name in _KEPT:
            if state.get(name) is not None:
                state[name] = None
