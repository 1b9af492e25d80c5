"""irlhf.core.seeding: explicit, reproducible randomness."""

import numpy as np
import pytest

from irlhf.core.errors import IrlhfError, ValidationError
from irlhf.core.seeding import as_generator, seed_everything


def test_same_int_seed_gives_same_stream():
    a, b = as_generator(123), as_generator(123)
    np.testing.assert_array_equal(a.random(16), b.random(16))
    np.testing.assert_array_equal(a.integers(0, 1000, 16), b.integers(0, 1000, 16))


def test_int_seed_matches_numpy_default_rng():
    np.testing.assert_array_equal(as_generator(7).random(5), np.random.default_rng(7).random(5))


def test_different_seeds_give_different_streams():
    assert not np.array_equal(as_generator(0).random(8), as_generator(1).random(8))


def test_numpy_integer_seed_accepted():
    np.testing.assert_array_equal(as_generator(np.int64(5)).random(4), as_generator(5).random(4))


def test_generator_is_passed_through_unchanged():
    rng = np.random.default_rng(3)
    assert as_generator(rng) is rng


def test_none_gives_fresh_generator():
    rng = as_generator(None)
    assert isinstance(rng, np.random.Generator)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, False, [1, 2], np.random.RandomState(0)])
def test_bad_seeds_raise(bad):
    with pytest.raises(IrlhfError, match="seed"):
        as_generator(bad)


def test_errors_are_value_errors():
    assert issubclass(IrlhfError, ValueError)
    assert issubclass(ValidationError, IrlhfError)
    with pytest.raises(ValueError):
        as_generator(-5)


def test_seed_everything_seeds_python_numpy_and_torch():
    import random

    torch = pytest.importorskip("torch")
    seed_everything(11)
    first = (random.random(), np.random.random(), torch.rand(1).item())
    seed_everything(11)
    assert (random.random(), np.random.random(), torch.rand(1).item()) == first
    seed_everything(12)
    assert random.random() != first[0]


def test_bad_numpy_seed_is_shown_as_written():
    with pytest.raises(ValidationError, match=r"^seed=-1: expected a non-negative int"):
        as_generator(np.int64(-1))
