"""Errors raised on bad input. Each message names the field, the bad value and what is expected."""

from __future__ import annotations


class IrlhfError(ValueError):
    """Base class of every error irlhf raises on bad input (also a ``ValueError``)."""


class ValidationError(IrlhfError):
    """A value failed validation: wrong shape, dtype, range, or non-finite entries."""


def describe(value: object, limit: int = 60) -> str:
    """Short repr of a bad value for error messages (arrays summarised by shape and dtype)."""
    shape = getattr(value, "shape", None)
    size = getattr(value, "size", 0)
    size = size() if callable(size) else size  # torch.Tensor.size is a method
    if shape is not None and (size if isinstance(size, int) else int(getattr(value, "numel", lambda: 0)())) > 8:
        return f"array of shape {tuple(shape)} and dtype {getattr(value, 'dtype', '?')}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
