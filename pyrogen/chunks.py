"""Evaluation in chunks of bounded memory: the one helper behind every ``log_prob`` that
would otherwise build tensors of N x (something large) at once."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["BUDGET", "rows_per_chunk", "map_chunks"]

BUDGET = 2**24  # numbers held by one chunk's largest temporaries (128 MiB in float64)


def rows_per_chunk(numbers_per_row: int, budget: int = BUDGET, minimum: int = 1) -> int:
    """How many rows fit in ``budget`` numbers when each row costs ``numbers_per_row``
    (at least ``minimum``: a floor that keeps chunks from getting too small to be
    efficient)."""
    return max(minimum, int(budget) // max(1, int(numbers_per_row)))


def map_chunks(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    numbers_per_row: int,
    budget: int = BUDGET,
    minimum: int = 1,
) -> torch.Tensor:
    """``fn`` over x's rows in chunks of ``rows_per_chunk`` rows, written into one
    preallocated result (``fn`` maps rows to per-row results). Writing in place rather
    than concatenating a list keeps the chunks' small results from pinning the heap
    between the large temporaries, which grew the resident memory with N (about the
    data's size again for a mixture's log_prob at N = 2M)."""
    rows = rows_per_chunk(numbers_per_row, budget, minimum)
    if len(x) <= rows:
        return fn(x)
    first = fn(x[:rows])
    out = first.new_empty((len(x), *first.shape[1:]))
    out[:rows] = first
    for start in range(rows, len(x), rows):
        out[start : start + rows] = fn(x[start : start + rows])
    return out
