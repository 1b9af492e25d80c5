"""Config base: frozen dataclasses, validated in ``__post_init__``, serialisable to JSON.

Each algorithm defines ``@dataclass(frozen=True) class Config(BaseConfig)`` with documented
defaults and calls the ``check_*`` helpers from ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

import numpy as np

from irlhf.core.errors import ValidationError

C = TypeVar("C", bound="BaseConfig")


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    """Mixin for frozen config dataclasses: ``to_dict``, ``from_dict`` and ``replace``."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any]) -> C:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValidationError(
                f"{cls.__module__}.{cls.__qualname__}: unknown field(s) {unknown}; expected some of {sorted(names)}"
            )
        return cls(**values)

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)


def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False) -> None:
    """Raise ``ValidationError`` unless ``value`` is a finite number in the given range."""
    kind = "an int" if integer else "a number"
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        raise ValidationError(f"{name}={value!r}: expected {kind}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValidationError(f"{name}={value!r}: expected {'>' if low_open else '>='} {low}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValidationError(f"{name}={value!r}: expected {'<' if high_open else '<='} {high}")


def check_choice(name: str, value: Any, choices: tuple[Any, ...] | list[Any]) -> None:
    """Raise ``ValidationError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValidationError(f"{name}={value!r}: expected one of {list(choices)}")


def check_bool(name: str, value: Any) -> None:
    """Raise ``ValidationError`` unless ``value`` is True or False."""
    if not isinstance(value, bool):
        raise ValidationError(f"{name}={value!r}: expected True or False")


def check_hidden_sizes(name: str, value: Any) -> tuple[int, ...]:
    """Validate MLP hidden widths (an int, or a tuple/list of ints >= 1, possibly empty); return a tuple."""
    sizes = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (tuple, list)):
        raise ValidationError(f"{name}={value!r}: expected a tuple of ints >= 1 (may be empty)")
    for k, width in enumerate(sizes):
        check_number(f"{name}[{k}]", width, low=1, integer=True)
    return tuple(sizes)
