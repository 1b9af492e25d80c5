"""Config base: frozen dataclasses whose constraints are declared beside their fields.

A field's type says what it accepts and is checked once, when the config is built:

    @dataclasses.dataclass(frozen=True)
    class Config(BaseConfig):
        lr: Annotated[float, Range(0, low_open=True)] = 1e-3     # a finite number > 0
        epochs: Annotated[int, Range(1)] = 100                    # an int >= 1 (bools rejected)
        patience: Annotated[int, Range(1)] | None = 10            # None, or an int >= 1
        loss: Literal["gaussian", "mse"] = "gaussian"             # one of the listed values
        activation: Annotated[str, OneOf(ACTIVATIONS)] = "relu"   # one of a collection known at import
        hidden_sizes: Widths = (64, 64)                           # ints >= 1; JSON lists become tuples
        normalize_obs: bool = True                                 # True or False, nothing else
        rl_kwargs: Annotated[dict, Check(is_dict, "a dict")] = ...  # any predicate

        def validate(self) -> None:          # optional: constraints between fields, after the field checks
            if self.bc_warm_start and self.algo != "ppo": raise ValidationError(...)

Messages name the field, the value as given and what is expected: ``lr=-1: expected > 0``.
``check_number`` / ``check_choice`` / ``check_bool`` stay for validating function arguments.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Literal, TypeVar, Union

import numpy as np

from irlhf.core.errors import ValidationError, plain, shown

C = TypeVar("C", bound="BaseConfig")


# -- constraints, used as Annotated[...] metadata ---------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Range:
    """A numeric bound: ``low <= value <= high`` (strict with ``low_open`` / ``high_open``)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False


@dataclasses.dataclass(frozen=True)
class OneOf:
    """One of a collection known when the class is defined (e.g. the keys of a registry dict)."""

    choices: tuple[Any, ...]

    def __init__(self, choices: Iterable[Any]):
        object.__setattr__(self, "choices", tuple(choices))


@dataclasses.dataclass(frozen=True)
class Check:
    """Any predicate: ``test(value)`` true, else ``{name}={value}: expected {expected}`` (value as written)."""

    test: Callable[[Any], bool]
    expected: str


class _WidthsMarker:
    """Marks a tuple of MLP hidden widths (ints >= 1, possibly empty); an int or list is normalised."""


Widths = Annotated[tuple, _WidthsMarker()]


# -- the checks ----------------------------------------------------------------------------------
def check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False) -> None:
    """Raise ``ValidationError`` unless ``value`` is a finite number in the given range."""
    kind = "an int" if integer else "a number"
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, bool) or not ok_type or (not integer and not math.isfinite(value)):
        raise ValidationError(f"{name}={shown(value)}: expected {kind}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValidationError(f"{name}={shown(value)}: expected {'>' if low_open else '>='} {low}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValidationError(f"{name}={shown(value)}: expected {'<' if high_open else '<='} {high}")


def check_choice(name: str, value: Any, choices: tuple[Any, ...] | list[Any]) -> None:
    """Raise ``ValidationError`` unless ``value`` is one of ``choices``."""
    if isinstance(value, bool) and not any(isinstance(c, bool) for c in choices) or value not in choices:
        raise ValidationError(f"{name}={shown(value)}: expected one of {plain(list(choices))}")


def check_bool(name: str, value: Any) -> None:
    """Raise ``ValidationError`` unless ``value`` is True or False."""
    if not isinstance(value, bool):
        raise ValidationError(f"{name}={shown(value)}: expected True or False")


def check_hidden_sizes(name: str, value: Any) -> tuple[int, ...]:
    """Validate MLP hidden widths (an int, or a tuple/list of ints >= 1, possibly empty); return a tuple."""
    sizes = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (tuple, list)):
        raise ValidationError(f"{name}={shown(value)}: expected a tuple of ints >= 1 (may be empty)")
    for k, width in enumerate(sizes):
        check_number(f"{name}[{k}]", width, low=1, integer=True)
    return tuple(sizes)


def _python_scalar(value: Any) -> Any:
    """A numpy scalar as the Python bool, int, float or str it holds (a user who passes np.int64(3) means 3);
    anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


@dataclasses.dataclass(frozen=True)
class _FieldRule:
    """What one field accepts, read once per class from its type hint."""

    base: Any                      # bool, int, float, str, tuple, dict, ... or None (not checked)
    optional: bool = False         # None accepted
    choices: tuple[Any, ...] | None = None
    bounds: Range | None = None
    widths: bool = False
    checks: tuple[Check, ...] = ()

    def apply(self, name: str, value: Any) -> Any:
        """Check ``value``; return it, normalised where the rule says so (widths -> tuple)."""
        if value is None and self.optional:
            return value
        if self.base is not None or self.choices is not None:
            value = _python_scalar(value)
        if self.widths:
            value = check_hidden_sizes(name, value)
        elif self.choices is not None:
            check_choice(name, value, self.choices)
        elif self.base is bool:
            check_bool(name, value)
        elif self.base in (int, float):
            bounds = self.bounds or Range()
            check_number(name, value, low=bounds.low, high=bounds.high, low_open=bounds.low_open,
                         high_open=bounds.high_open, integer=self.base is int)
        for check in self.checks:
            if not check.test(value):
                raise ValidationError(f"{name}={shown(value)}: expected {check.expected}")
        return value


def _rule(hint: Any) -> _FieldRule:
    optional, metadata = False, []
    origin = typing.get_origin(hint)
    if origin is Annotated:
        hint, *metadata = typing.get_args(hint)
        origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        members = [m for m in typing.get_args(hint) if m is not type(None)]
        optional = len(members) < len(typing.get_args(hint))
        inner = _rule(members[0]) if len(members) == 1 else _FieldRule(base=None)
        return dataclasses.replace(inner, optional=optional or inner.optional,
                                   checks=inner.checks + tuple(m for m in metadata if isinstance(m, Check)))
    choices = tuple(typing.get_args(hint)) if origin is Literal else None
    for item in metadata:
        if isinstance(item, OneOf):
            choices = item.choices
    bounds = next((m for m in metadata if isinstance(m, Range)), None)
    widths = any(isinstance(m, _WidthsMarker) for m in metadata)
    base = hint if hint in (bool, int, float) else None
    return _FieldRule(base=base, choices=choices, bounds=bounds, widths=widths,
                      checks=tuple(m for m in metadata if isinstance(m, Check)))


@functools.cache
def _rules(cls: type) -> tuple[tuple[str, _FieldRule], ...]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple((f.name, _rule(hints[f.name])) for f in dataclasses.fields(cls) if f.init)


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    """Base of frozen config dataclasses: field constraints from the type hints, checked at construction;
    ``validate`` for constraints between fields; ``to_dict``, ``from_dict`` and ``replace``."""

    def __post_init__(self) -> None:
        for name, rule in _rules(type(self)):
            value = getattr(self, name)
            normalised = rule.apply(name, value)
            if normalised is not value:
                object.__setattr__(self, name, normalised)
        self.validate()

    def validate(self) -> None:
        """Constraints between fields (the field-level ones already hold); override to add some."""

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


# Common field types, declared once.
Positive = Annotated[float, Range(0, low_open=True)]
NonNegative = Annotated[float, Range(0)]
Fraction = Annotated[float, Range(0, 1)]
PositiveInt = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
Seed = Annotated[int, Range(0)]
