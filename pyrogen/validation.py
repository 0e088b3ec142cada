"""Input checks shared by every entry point: fail early, name the argument."""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = [
    "as_data_tensor",
    "as_examples",
    "check_bool",
    "check_data_shape",
    "check_finite_values",
    "check_positive_int",
    "check_positive_number",
    "check_choice",
]


def as_data_tensor(
    value,
    name: str = "data",
    *,
    ndim: int | tuple[int, ...] | None = None,
    dtype: torch.dtype | None = None,
    allow_empty: bool = False,
    device: torch.device | str | None = None,
    check_finite: bool = True,
) -> torch.Tensor:
    """Return ``value`` as a floating tensor after checking it is usable data.

    Raises ``ValueError``/``TypeError`` naming ``name`` for non-numeric values,
    the wrong rank, empty data, NaN or infinities (``check_finite=False`` leaves the
    last to a stricter check of the caller's, which must then call
    :func:`check_finite_values` before its own error, to name NaN as NaN).
    """
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if tensor.dtype == torch.bool or not (tensor.is_floating_point() or _is_int(tensor)):
            raise TypeError(f"{name}: expected a real-valued tensor, got dtype {tensor.dtype}")
    else:
        try:
            array = np.asarray(value)
        except Exception as error:  # ragged lists and the like
            raise TypeError(f"{name}: could not be read as a numeric array ({error})") from None
        if array.dtype == object or not np.issubdtype(array.dtype, np.number):
            raise TypeError(f"{name}: expected numeric values, got dtype {array.dtype}")
        if np.iscomplexobj(array):
            raise TypeError(f"{name}: expected real values, got complex dtype {array.dtype}")
        # reshaped: np.ascontiguousarray makes a 0-d array (a scalar) 1-d
        tensor = torch.from_numpy(np.ascontiguousarray(array)).reshape(array.shape)
    target = dtype or (tensor.dtype if tensor.is_floating_point() else torch.get_default_dtype())
    tensor = tensor.to(dtype=target, device=device)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if tensor.dim() not in allowed:
            want = " or ".join(str(d) for d in allowed)
            raise ValueError(
                f"{name}: expected an array with {want} dimension(s), "
                f"got shape {tuple(tensor.shape)}"
            )
    if tensor.numel() == 0 and not allow_empty:
        raise ValueError(f"{name}: is empty (shape {tuple(tensor.shape)})")
    if check_finite:
        check_finite_values(tensor, name)
    return tensor


def check_finite_values(tensor: torch.Tensor, name: str = "data", chunk: int = 1 << 20) -> None:
    """Raise a ``ValueError`` naming ``name`` and the first bad index on NaN or infinity.
    Checked ``chunk`` elements at a time: ``torch.isfinite`` makes temporaries the size
    of its input (an absolute value, two masks), which for data of N x D would be more
    memory than the data itself."""
    flat = tensor.reshape(-1)
    for start in range(0, flat.numel(), chunk):
        part = flat[start : start + chunk]
        if bool(torch.isfinite(part).all()):
            continue
        finite = torch.isfinite(tensor)
        bad = (~finite).nonzero()[0].tolist()
        kind = "NaN" if bool(torch.isnan(tensor).any()) else "infinite"
        raise ValueError(f"{name}: contains {kind} values (first at index {tuple(bad)})")


def _is_int(tensor: torch.Tensor) -> bool:
    return tensor.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be at least {minimum}, got {value}")
    return int(value)


def check_bool(value, name: str) -> bool:
    """True or False itself (not 0, 1 or a string)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return value


def check_positive_number(value, name: str, *, allow_zero: bool = False) -> float:
    """A finite real number above zero (or at least zero with ``allow_zero``), as float."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name}: must be a {kind} number, got {value!r}")
    return float(value)


def check_choice(value, name: str, choices) -> str:
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}: must be one of {options}, got {value!r}")
    return value


def check_data_shape(data_shape) -> list[int]:
    """The shape of one example as a list of positive sizes (an int is one dimension)."""
    if isinstance(data_shape, int):
        data_shape = (data_shape,)
    shape = [int(s) for s in data_shape]
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"data_shape: expected positive sizes, got {tuple(data_shape)}")
    return shape


def _within(x: torch.Tensor, measure, low: float, high: float, chunk: int = 1 << 22) -> bool:
    """Whether ``measure(part)`` lies in [low, high] everywhere in ``x`` (False at NaN),
    a chunk of elements at a time (bounded temporaries). Only arithmetic and a min/max
    reduction: both vectorize, where comparisons yielding a bool tensor do not (on one
    CPU thread ``(x == 0) | (x == 1)`` took ten times as long over 784,000 pixels)."""
    for part in x.reshape(-1).split(chunk):
        lo, hi = torch.aminmax(measure(part))
        if not (low <= lo.item() and hi.item() <= high):  # NaN fails both
            return False
    return True


def _binary_defect(part: torch.Tensor) -> torch.Tensor:
    """x - x * x: exactly 0 at 0 and 1, nonzero at every other float (x * x rounds to
    a float other than x, and subtracting distinct floats never gives 0 under gradual
    underflow), NaN at NaN and infinities."""
    return torch.addcmul(part, part, part, value=-1)


def as_examples(
    data,
    data_shape,
    like: torch.Tensor,
    name: str = "x",
    binary: bool = False,
    num_classes: int | None = None,
) -> torch.Tensor:
    """N examples of shape ``data_shape`` (or flattened, (N, prod(data_shape))) as a
    tensor of ``like``'s dtype and device, checked as :func:`as_data_tensor` does;
    ``binary`` also requires 0/1 values (checked in the same pass as finiteness),
    ``num_classes`` integers in [0, num_classes)."""
    exact = binary or num_classes is not None
    x = as_data_tensor(data, name, dtype=like.dtype, check_finite=not exact).to(like.device)
    shape = tuple(data_shape)
    if x.dim() == 2 and x.shape[1] == math.prod(shape):
        x = x.reshape(len(x), *shape)
    if tuple(x.shape[1:]) != shape:
        raise ValueError(
            f"{name}: expected shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}"
        )
    if binary and not _within(x, _binary_defect, 0.0, 0.0):
        check_finite_values(x, name)
        raise ValueError(f"{name}: expected binary data (0 or 1)")
    if num_classes is not None and not (
        _within(x, lambda part: part, 0.0, num_classes - 1)
        and _within(x, lambda part: part - part.round(), 0.0, 0.0)
    ):
        check_finite_values(x, name)
        raise ValueError(f"{name}: expected integer classes in [0, {num_classes})")
    return x


def check_widths(hidden, family: str) -> list[int]:
    """A network's hidden layer widths: at least one layer, each of a positive width,
    as a list of ints; errors name ``hidden`` and the model ``family``."""
    try:
        widths = [int(h) for h in hidden]
    except (TypeError, ValueError):
        raise TypeError(f"hidden: expected a list of layer widths, got {hidden!r}") from None
    if not widths:
        raise ValueError(f"hidden: {family} needs at least one hidden layer")
    for width in widths:
        check_positive_int(width, "hidden")
    return widths
