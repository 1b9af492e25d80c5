"""irlhf.core.config: BaseConfig (frozen, constraints declared beside the fields, from_dict rejects unknown
fields), check_number, check_choice."""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Literal

import numpy as np
import pytest

from irlhf.core.config import (BaseConfig, Check, Fraction, NonNegative, OneOf, Positive, PositiveInt, Range, Widths,
                               check_choice, check_number)
from irlhf.core.errors import IrlhfError, ValidationError


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    lr: Positive = 0.1
    steps: PositiveInt = 10
    mode: Literal["a", "b"] = "a"


REGISTRY = {"relu": None, "tanh": None}


@dataclasses.dataclass(frozen=True)
class Full(BaseConfig):
    """Every kind of declared constraint, and one between fields."""

    rate: Annotated[float, Range(0, 1, high_open=True)] = 0.5
    decay: NonNegative = 0.0
    share: Fraction = 1.0
    patience: PositiveInt | None = None
    flag: bool = False
    activation: Annotated[str, OneOf(REGISTRY)] = "relu"
    widths: Widths = (8, 8)
    kwargs: Annotated[dict, Check(lambda v: isinstance(v, dict), "a dict of keyword arguments")] = \
        dataclasses.field(default_factory=dict)
    name: str = "free text is not checked"
    low: float = 0.0
    high: float = 1.0

    def validate(self) -> None:
        if self.low >= self.high:
            raise ValidationError(f"low={self.low!r}, high={self.high!r}: expected low < high")


def test_from_dict_round_trip():
    config = Config(lr=0.5, steps=3, mode="b")
    assert config.to_dict() == {"lr": 0.5, "steps": 3, "mode": "b"}
    assert Config.from_dict(config.to_dict()) == config


def test_from_dict_partial_uses_defaults():
    assert Config.from_dict({"steps": 4}) == Config(steps=4)


def test_from_dict_rejects_unknown_fields_by_name():
    with pytest.raises(IrlhfError, match=r"unknown field\(s\) \['bogus', 'zeta'\]") as info:
        Config.from_dict({"lr": 0.2, "zeta": 1, "bogus": 2})
    assert "lr" in str(info.value) and "steps" in str(info.value)  # lists what is expected


def test_from_dict_validates_values():
    with pytest.raises(IrlhfError, match="steps=0"):
        Config.from_dict({"steps": 0})


def test_config_is_frozen_and_replace_validates():
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 1.0  # type: ignore[misc]
    assert config.replace(lr=2.0).lr == 2.0 and config.lr == 0.1
    with pytest.raises(IrlhfError, match="mode='c'"):
        config.replace(mode="c")


@pytest.mark.parametrize(
    "value, kwargs",
    [
        (0.0, dict(low=0.0)),
        (1.0, dict(high=1.0)),
        (0.5, dict(low=0.0, high=1.0, low_open=True, high_open=True)),
        (3, dict(integer=True, low=3)),
        (2, dict()),
        (-1e300, dict()),
    ],
)
def test_check_number_accepts(value, kwargs):
    check_number("x", value, **kwargs)


@pytest.mark.parametrize(
    "value, kwargs, message",
    [
        (0.0, dict(low=0.0, low_open=True), "expected > 0.0"),
        (-0.1, dict(low=0.0), "expected >= 0.0"),
        (1.0, dict(high=1.0, high_open=True), "expected < 1.0"),
        (1.1, dict(high=1.0), "expected <= 1.0"),
        (math.nan, dict(), "expected a number"),
        (math.inf, dict(), "expected a number"),
        (-math.inf, dict(low=0.0), "expected a number"),
        ("1", dict(), "expected a number"),
        (None, dict(), "expected a number"),
        (True, dict(), "expected a number"),
        (True, dict(integer=True), "expected an int"),
        (2.0, dict(integer=True), "expected an int"),
        (2, dict(integer=True, low=3), "expected >= 3"),
    ],
)
def test_check_number_rejects(value, kwargs, message):
    with pytest.raises(IrlhfError, match=message) as info:
        check_number("alpha", value, **kwargs)
    assert str(info.value).startswith(f"alpha={value!r}")


def test_check_choice():
    check_choice("mode", "b", ("a", "b"))
    check_choice("k", 2, [1, 2])
    with pytest.raises(IrlhfError, match=r"mode='c': expected one of \['a', 'b'\]"):
        check_choice("mode", "c", ("a", "b"))


def test_declared_constraints_accept_defaults_and_normalise_widths():
    config = Full(widths=[4, 2], patience=3)
    assert config.widths == (4, 2) and isinstance(config.widths, tuple)
    assert Full(widths=5).widths == (5,) and Full(widths=()).widths == ()
    assert Full(patience=None).patience is None
    assert Full.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(rate=1.0), r"^rate=1.0: expected < 1$"),
        (dict(rate=-0.1), r"^rate=-0.1: expected >= 0$"),
        (dict(rate=math.nan), r"^rate=nan: expected a number$"),
        (dict(decay=-1), r"^decay=-1: expected >= 0$"),
        (dict(share=1.5), r"^share=1.5: expected <= 1$"),
        (dict(patience=0), r"^patience=0: expected >= 1$"),
        (dict(patience=2.0), r"^patience=2.0: expected an int$"),
        (dict(patience=True), r"^patience=True: expected an int$"),
        (dict(flag=1), r"^flag=1: expected True or False$"),
        (dict(activation="gelu"), r"^activation='gelu': expected one of \['relu', 'tanh'\]$"),
        (dict(widths=(4, 0)), r"^widths\[1\]=0: expected >= 1$"),
        (dict(widths="64"), r"^widths='64': expected a tuple of ints >= 1"),
        (dict(kwargs=[1]), r"^kwargs=\[1\]: expected a dict of keyword arguments$"),
        (dict(low=2.0), r"^low=2.0, high=1.0: expected low < high$"),
    ],
)
def test_declared_constraints_reject_with_field_value_and_expectation(changes, message):
    with pytest.raises(ValidationError, match=message):
        Full(**changes)


def test_literal_rejects_bool_for_int_choices():
    @dataclasses.dataclass(frozen=True)
    class Choice(BaseConfig):
        k: Literal[1, 2] = 1

    assert Choice(k=2).k == 2
    with pytest.raises(ValidationError, match=r"k=True: expected one of \[1, 2\]"):
        Choice(k=True)


def test_subclass_inherits_and_extends_constraints():
    @dataclasses.dataclass(frozen=True)
    class Child(Config):
        extra: PositiveInt = 1

    assert Child(extra=2, steps=3).steps == 3
    with pytest.raises(ValidationError, match="steps=0"):
        Child(steps=0)
    with pytest.raises(ValidationError, match="extra=0"):
        Child(extra=0)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Full(activation=np.str_("gelu")), r"^activation='gelu': expected one of \['relu', 'tanh'\]$"),
        (lambda: Full(patience=np.int64(0)), r"^patience=0: expected >= 1$"),
        (lambda: Full(share=np.float64(1.5)), r"^share=1.5: expected <= 1$"),
        (lambda: Full(widths=np.array([4, 0])), r"^widths=\[4, 0\]: expected a tuple of ints >= 1"),
        (lambda: check_number("lr", np.float32(-0.5), low=0), r"^lr=-0.5: expected >= 0$"),
        (lambda: check_choice("algo", np.str_("x"), ["a", np.str_("b")]), r"^algo='x': expected one of \['a', 'b'\]$"),
    ],
)
def test_messages_show_numpy_values_as_written(build, message):
    """A numpy scalar or small array is shown as the number, text or list it holds, not as np.int64(0)."""
    with pytest.raises(ValidationError, match=message) as info:
        build()
    assert "np." not in str(info.value) and "array(" not in str(info.value)


def test_numpy_scalars_are_taken_as_the_python_values_they_hold():
    config = Full(patience=np.int64(3), flag=np.bool_(True), activation=np.str_("tanh"), share=np.float64(0.5))
    assert (config.patience, config.flag, config.activation, config.share) == (3, True, "tanh", 0.5)
    assert [type(v) for v in (config.patience, config.flag, config.activation, config.share)] == [int, bool, str,
                                                                                                   float]
