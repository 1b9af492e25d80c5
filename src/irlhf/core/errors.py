"""Errors raised on bad input. Each message names the field, the bad value (as the user wrote it) and what is
expected."""

from __future__ import annotations

from typing import Any


class IrlhfError(ValueError):
    """Base class of every error irlhf raises on bad input (also a ``ValueError``)."""


class ValidationError(IrlhfError):
    """A value failed validation: wrong shape, dtype, range, or non-finite entries."""


def _size(value: Any) -> int:
    """Number of elements of an array or tensor (``torch.Tensor.size`` is a method, numpy's an int)."""
    numel = getattr(value, "numel", None)
    return int(numel()) if callable(numel) else int(getattr(value, "size", 0))


def plain(value: Any) -> Any:
    """``value`` with numpy / torch scalars and arrays turned into the Python numbers, text and lists they hold
    (inside lists, tuples and dicts too): what a user wrote, not how numpy stores it."""
    if getattr(value, "shape", None) == () and callable(getattr(value, "item", None)):
        return value.item()
    if getattr(value, "shape", None) is not None and callable(getattr(value, "tolist", None)):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    if isinstance(value, dict):
        return {plain(key): plain(item) for key, item in value.items()}
    return value


def shown(value: Any) -> str:
    """A bad value for a message, as the user wrote it: ``3`` not ``np.int64(3)``, ``'x'`` not ``np.str_('x')``,
    ``[1, 2]`` not ``array([1, 2])``; arrays of more than 8 elements as their shape and dtype."""
    shape = getattr(value, "shape", None)
    if shape is not None and _size(value) > 8:
        return f"array of shape {tuple(shape)} and dtype {getattr(value, 'dtype', '?')}"
    return repr(plain(value))


def describe(value: object, limit: int = 60) -> str:
    """:func:`shown`, cut to ``limit`` characters (for values that may be long, such as whole containers)."""
    text = shown(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
