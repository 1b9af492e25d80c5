"""irlhf.preference.plackett_luce: reduction to Bradley-Terry, stationarity, identifiability."""

import numpy as np
import pytest

from irlhf.data.preferences import Rankings
from irlhf.preference import bradley_terry as bt
from irlhf.preference import plackett_luce as pl


def _sample_rankings(n, m, seed=0):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=n)
    rankings = []
    for _ in range(m):
        left = list(rng.choice(n, rng.integers(2, 6), replace=False))
        order = []
        while left:
            w = np.exp(theta[left])
            order.append(left.pop(rng.choice(len(left), p=w / w.sum())))
        rankings.append(order)
    return theta, rankings


def test_pairs_reduce_to_bradley_terry():
    pairs = [(0, 1), (0, 1), (1, 2), (2, 0)]
    np.testing.assert_allclose(pl.fit(3, [list(p) for p in pairs]).scores, bt.fit(3, pairs).scores, atol=1e-9)
    np.testing.assert_allclose(pl.log_likelihood(np.array([0.3, -0.1, 0.0]), [list(p) for p in pairs]),
                               bt.log_likelihood(np.array([0.3, -0.1, 0.0]), pairs))


def test_hand_computed_likelihood():
    theta = np.log(np.array([1.0, 2.0, 3.0]))  # strengths 1, 2, 3
    # P(2 > 0 > 1) = 3/6 * 1/3
    assert pl.log_likelihood(theta, [[2, 0, 1]]) == pytest.approx(np.log(3 / 6 * 1 / 3))


def test_stationary_and_recovers_scores():
    theta, rankings = _sample_rankings(10, 400)
    result = pl.fit(10, rankings)
    assert result.converged and result.standard_errors is None  # only when asked: a dense (n, n) inverse
    eps = 1e-6
    for k in range(10):
        e = np.zeros(10)
        e[k] = eps
        slope = (pl.log_likelihood(result.scores + e, rankings) - pl.log_likelihood(result.scores - e, rankings))
        assert abs(slope / (2 * eps)) < 1e-5
    assert np.corrcoef(result.scores, theta)[0, 1] > 0.95


def test_lbfgs_path_matches_newton(monkeypatch):
    _, rankings = _sample_rankings(8, 200, seed=1)
    newton = pl.fit(8, rankings)
    monkeypatch.setattr(pl, "DENSE_LIMIT", 2)
    lbfgs = pl.fit(8, rankings)
    np.testing.assert_allclose(lbfgs.scores, newton.scores, atol=1e-5)


def test_prior_and_identifiability():
    with pytest.raises(bt.ComparisonGraphError, match="never lose"):
        pl.fit(3, Rankings([[0, 1, 2], [0, 2, 1]]))
    result = pl.fit(3, Rankings([[0, 1, 2], [0, 2, 1]]), alpha=0.5)
    assert result.scores[0] > result.scores[1] and abs(result.scores.sum()) < 1e-10


def test_standard_errors_when_asked_match_bradley_terry_on_pairs():
    pairs = [(0, 1)] * 7 + [(1, 0)] * 3 + [(1, 2)] * 4 + [(2, 1)] * 2 + [(2, 0), (0, 2)]
    ours = pl.fit(3, [list(p) for p in pairs], standard_errors=True)
    np.testing.assert_allclose(ours.standard_errors, bt.fit(3, pairs, standard_errors=True).standard_errors,
                               rtol=1e-8)
    assert np.all(ours.standard_errors > 0)
