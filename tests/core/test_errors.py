"""irlhf.core.errors: bad values are shown as the user wrote them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from irlhf.core.errors import describe, shown


@pytest.mark.parametrize("value, text", [
    (np.int64(3), "3"),
    (np.float64(0.25), "0.25"),
    (np.bool_(False), "False"),
    (np.str_("x"), "'x'"),
    (np.array(7), "7"),
    (np.array([1, 2]), "[1, 2]"),
    (torch.tensor(2.5), "2.5"),
    ([np.int64(1), np.float32(0.5)], "[1, 0.5]"),
    ((np.str_("a"),), "('a',)"),
    ({"k": np.int64(1)}, "{'k': 1}"),
    ("plain", "'plain'"),
    (None, "None"),
])
def test_shown_is_the_value_as_written(value, text):
    assert shown(value) == text


def test_describe_summarises_large_arrays_and_shortens_long_text():
    assert describe(np.zeros((3, 4))) == "array of shape (3, 4) and dtype float64"
    assert describe(np.int64(5)) == "5" and describe([np.str_("b")]) == "['b']"
    assert describe("x" * 100) == repr("x" * 100)[:57] + "..."
