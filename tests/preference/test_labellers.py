"""Synthetic labellers: oracle and the B-Pref teachers on hand-made segment pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from irlhf.core.errors import ValidationError
from irlhf.preference.labellers import LABELLERS, Labeller, SyntheticOracle, Teacher, make_labeller

A = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
B = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 2.0], [0.5, 0.5, 0.5]])


def test_protocol_and_oracle():
    oracle = make_labeller("oracle")
    assert isinstance(oracle, Labeller) and isinstance(SyntheticOracle(), Labeller)
    np.testing.assert_array_equal(oracle.label_batch(A, B), [1.0, 0.0, 0.5, 0.5])
    assert oracle.label([1.0, 2.0], [0.0, 0.0]) == 1.0

    class Seg:
        true_rews = A

    np.testing.assert_array_equal(SyntheticOracle().label_batch(Seg(), B), [1.0, 0.0, 0.5, 0.5])


def test_noisy_follows_bradley_terry_and_is_seeded():
    a, b = np.ones((20000, 1)), np.zeros((20000, 1))
    mu = SyntheticOracle(temperature=1.0, seed=3).label_batch(a, b)
    assert set(np.unique(mu)) <= {0.0, 1.0}
    assert mu.mean() == pytest.approx(1 / (1 + math.exp(-1)), abs=0.015)
    np.testing.assert_array_equal(mu, SyntheticOracle(temperature=1.0, seed=3).label_batch(a, b))
    mu2 = make_labeller("noisy", beta=2.0, seed=0).label_batch(a, b)
    assert mu2.mean() == pytest.approx(1 / (1 + math.exp(-2)), abs=0.015)


def test_mistake_flips_with_probability_eps():
    a, b = np.ones((20000, 2)), np.zeros((20000, 2))
    mu = make_labeller("mistake", eps=0.2, seed=1).label_batch(a, b)
    assert (1 - mu.mean()) == pytest.approx(0.2, abs=0.015)


def test_skip_when_both_bad():
    t = Teacher(skip_threshold=1.0)
    assert t.label([0.2, 0.3], [0.1, 0.1]) is None
    assert t.label([0.2, 0.9], [0.1, 0.1]) == 1.0
    rel = make_labeller("skip", skip_threshold=0.3)  # bottom 30% of the batch's return range
    mu = rel.label_batch(np.array([[0.0], [10.0], [1.0]]), np.array([[2.0], [9.0], [5.0]]))
    assert np.isnan(mu[0]) and mu[1] == 1.0 and mu[2] == 0.0


def test_myopic_weights_recent_steps():
    a = np.array([[3.0, 0.0, 0.0, 0.0]])  # early reward
    b = np.array([[0.0, 0.0, 0.0, 2.0]])  # late reward
    assert make_labeller("oracle").label_batch(a, b)[0] == 1.0
    assert make_labeller("myopic", gamma=0.5).label_batch(a, b)[0] == 0.0  # 3 * 0.125 < 2


def test_equal_labels_close_returns_half():
    t = Teacher(equal_threshold=0.5)
    assert t.label([1.0, 1.0], [1.2, 1.0]) == 0.5
    assert t.label([1.0, 1.0], [2.0, 1.0]) == 0.0
    mu = make_labeller("equal").label_batch(np.array([[0.0], [5.0]]), np.array([[0.5], [10.0]]))
    np.testing.assert_array_equal(mu, [0.5, 0.0])


def test_bad_input():
    with pytest.raises(ValidationError, match="labeller='human'"):
        make_labeller("human")
    with pytest.raises(ValidationError, match="unknown"):
        make_labeller("noisy", temperature=1.0)
    with pytest.raises(ValidationError, match="eps"):
        Teacher(eps=0.7)
    with pytest.raises(ValidationError, match="gamma"):
        Teacher(gamma=0.0)
    with pytest.raises(ValidationError, match="shapes"):
        Teacher().label_batch(np.zeros((2, 3)), np.zeros((2, 4)))
    assert LABELLERS == ("oracle", "mistake", "noisy", "skip", "myopic", "equal")
