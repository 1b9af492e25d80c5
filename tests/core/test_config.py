"""irlhf.core.config: BaseConfig (frozen, from_dict rejects unknown fields), check_number, check_choice."""

import dataclasses
import math

import pytest

from irlhf.core.config import BaseConfig, check_choice, check_number
from irlhf.core.errors import IrlhfError


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    lr: float = 0.1
    steps: int = 10
    mode: str = "a"

    def __post_init__(self):
        check_number("lr", self.lr, low=0, low_open=True)
        check_number("steps", self.steps, low=1, integer=True)
        check_choice("mode", self.mode, ("a", "b"))


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
