"""irlhf.preference.duel: winners, empirical matrices, regret, Interleaved Filter and RUCB."""

import numpy as np
import pytest

from irlhf.core.errors import ValidationError
from irlhf.data.preferences import Comparisons
from irlhf.preference import bradley_terry as bt
from irlhf.preference import duel as D


# -- winners ------------------------------------------------------------------------------------
def test_condorcet_present_total_order():
    P = D.arithmetic_matrix(5, 0.1)
    w = D.winners(P)
    assert w["condorcet"] == 0
    np.testing.assert_array_equal(w["copeland"], [0])
    np.testing.assert_array_equal(w["borda"], [0])
    np.testing.assert_array_equal(D.copeland_scores(P), [4, 2, 0, -2, -4])  # 2 * wins - (K - 1)


def test_cycle_has_no_condorcet_and_tied_copeland():
    P = D.cyclic_matrix()
    assert D.condorcet_winner(P) is None
    np.testing.assert_array_equal(D.copeland_scores(P), [1, 1, 1, -3])
    np.testing.assert_array_equal(D.copeland_winners(P), [0, 1, 2])
    np.testing.assert_allclose(D.borda_scores(P), [0.6, 0.6, 0.6, 0.2])


def test_borda_differs_from_copeland():
    P = D.borda_vs_copeland_matrix()
    w = D.winners(P)
    assert w["condorcet"] == 0
    np.testing.assert_array_equal(w["copeland"], [0])
    np.testing.assert_array_equal(w["borda"], [1])
    np.testing.assert_allclose(D.borda_scores(P), [0.51, 0.74, 0.25])


def test_exact_ties_and_nan():
    P = np.array([[0.5, 0.5, np.nan], [0.5, 0.5, 0.7], [np.nan, 0.3, 0.5]])
    assert D.condorcet_winner(P) is None  # a tie is not a win; NaN is not > 1/2
    np.testing.assert_array_equal(D.copeland_scores(P), [0, 1, -1])
    np.testing.assert_allclose(D.borda_scores(P), [0.5, 0.6, 0.3])  # mean over compared opponents only


def test_random_condorcet_matrix_is_valid_and_not_total_order():
    P = D.random_condorcet_matrix(8, seed=0)
    D.check_matrix(P, complete=True)
    w = D.condorcet_winner(P)
    assert w is not None
    cpl = D.copeland_scores(P)
    # not a total order: some pair of Copeland scores coincides (a total order gives K distinct scores)
    assert len(np.unique(cpl)) < 8
    np.testing.assert_array_equal(P, D.random_condorcet_matrix(8, seed=0))


def test_bradley_terry_matrix_and_env_inputs():
    scores = np.array([1.0, 0.0, -1.0])
    P = D.bradley_terry_matrix(scores)
    assert D.condorcet_winner(P) == 0
    np.testing.assert_allclose(D.MatrixDuelEnv(scores).P, P)
    result = bt.fit(3, [(0, 1), (1, 2), (2, 0), (0, 2), (0, 1)])
    np.testing.assert_allclose(D.MatrixDuelEnv(result).P, result.probabilities())


# -- empirical matrix ---------------------------------------------------------------------------
def test_preference_matrix_with_ties_and_uncompared_pair():
    data = Comparisons(i=[0, 1, 0, 0, 2], j=[1, 0, 1, 2, 0], mu=[1, 1, 0.5, 0.5, 0], n_items=4)
    P = D.preference_matrix(data)
    # 0 vs 1: 0 wins, 1 wins, tie -> 0 scores 1 + 0 + 0.5 of 3
    assert P[0, 1] == pytest.approx(1.5 / 3)
    assert P[1, 0] == pytest.approx(1.5 / 3)
    # 0 vs 2: tie, then 0 preferred (mu = 0 on (2, 0)) -> 1.5 / 2
    assert P[0, 2] == pytest.approx(0.75)
    assert P[2, 0] == pytest.approx(0.25)
    assert np.isnan(P[1, 2]) and np.isnan(P[2, 1]) and np.isnan(P[3]).sum() == 3
    np.testing.assert_array_equal(np.diag(P), 0.5)
    D.check_matrix(P)  # NaN allowed, P + P^T = 1 where defined


def test_preference_matrix_accepts_pairs():
    P = D.preference_matrix([(0, 1), (0, 1), (1, 0)], n_items=2)
    assert P[0, 1] == pytest.approx(2 / 3)


@pytest.mark.parametrize("P, field", [
    (np.eye(3), "[0, 0]"),                                          # diagonal 1
    (np.full((1, 1), 0.5), "shape"),                                # K < 2
    (np.full((2, 3), 0.5), "shape"),                                # not square
    (np.array([[0.5, 1.2], [-0.2, 0.5]]), "[0, 1]"),                # out of [0, 1]
    (np.array([[0.5, 0.7], [0.4, 0.5]]), "+"),                      # P + P^T != 1
    (np.array([[0.5, np.inf], [0.0, 0.5]]), "[0, 1]"),
])
def test_check_matrix_errors(P, field):
    with pytest.raises(ValidationError, match=field.replace("[", r"\[").replace("]", r"\]").replace("+", r"\+")):
        D.check_matrix(P)


def test_env_requires_complete_matrix():
    with pytest.raises(ValidationError, match="complete"):
        D.MatrixDuelEnv(np.array([[0.5, np.nan], [np.nan, 0.5]]))


# -- regret -------------------------------------------------------------------------------------
def test_regret_condorcet_by_hand():
    P = np.array([[0.5, 0.6, 0.9], [0.4, 0.5, 0.7], [0.1, 0.3, 0.5]])
    arms = np.array([[0, 0], [0, 1], [1, 2], [2, 2]])
    # eps(0, .) = [0, 0.1, 0.4]
    np.testing.assert_allclose(D.regret(P, arms), [0.0, 0.05, 0.25, 0.4])


def test_regret_copeland_without_condorcet():
    P = D.cyclic_matrix()  # cpld = [2, 2, 2, 0] / 3
    np.testing.assert_allclose(D.regret(P, np.array([[0, 1], [0, 3], [3, 3]])), [0.0, 1 / 3, 2 / 3])


# -- bandits ------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", [lambda e, T, s: D.interleaved_filter(e, T, variant="IF1", seed=s),
                                  lambda e, T, s: D.interleaved_filter(e, T, variant="IF2", seed=s),
                                  lambda e, T, s: D.rucb(e, T, seed=s)], ids=["IF1", "IF2", "RUCB"])
def test_exact_horizon_and_determinism(algo):
    P = D.arithmetic_matrix()
    for T in (1, 7, 333):
        run = algo(D.MatrixDuelEnv(P, seed=3), T, 3)
        assert run.arms.shape == (T, 2) and run.outcomes.shape == (T,) and run.cumulative_regret.shape == (T,)
        assert set(np.unique(run.outcomes)) <= {0.0, 0.5, 1.0}
        again = algo(D.MatrixDuelEnv(P, seed=3), T, 3)
        np.testing.assert_array_equal(run.arms, again.arms)
        np.testing.assert_array_equal(run.outcomes, again.outcomes)
        assert run.recommended == again.recommended
        np.testing.assert_allclose(run.regret, D.regret(P, run.arms))


def test_accepts_matrix_as_env():
    run = D.rucb(D.arithmetic_matrix(4, 0.1), 50, seed=0)
    assert run.arms.shape == (50, 2) and run.regret_kind == "condorcet"


class _NoMatrixEnv:
    n_arms = 3

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def duel(self, i, j):
        return 0.5 if i == j else float(self.rng.random() < 0.5 + 0.2 * (j - i))


def test_env_without_true_matrix_has_no_regret():
    run = D.interleaved_filter(_NoMatrixEnv(), 40, seed=0)
    assert run.regret is None and run.cumulative_regret is None and run.outcomes.shape == (40,)


@pytest.mark.parametrize("seed", [0, 1])
def test_interleaved_filter_finds_winner_sublinearly(seed):
    P = D.arithmetic_matrix()
    run = D.interleaved_filter(D.MatrixDuelEnv(P, seed=seed), 20_000, seed=seed)
    assert run.recommended == 0
    assert run.regret[10_000:].sum() < run.regret[:10_000].sum()


@pytest.mark.parametrize("seed", [0, 1])
def test_rucb_finds_winner_with_small_regret(seed):
    P = D.arithmetic_matrix()
    T = 20_000
    run = D.rucb(D.MatrixDuelEnv(P, seed=seed), T, seed=seed)
    assert run.recommended == 0
    uniform = T * np.mean(P[0] - 0.5)  # expected regret of dueling two uniformly random arms
    assert run.cumulative_regret[-1] < 0.1 * uniform


def test_validation():
    P = D.arithmetic_matrix()
    with pytest.raises(ValidationError, match="horizon"):
        D.rucb(P, 0)
    with pytest.raises(ValidationError, match="horizon"):
        D.interleaved_filter(P, 2.5)
    with pytest.raises(ValidationError, match="alpha"):
        D.rucb(P, 10, alpha=0.5)
    with pytest.raises(ValidationError, match="variant"):
        D.interleaved_filter(P, 10, variant="IF3")
    with pytest.raises(ValidationError, match="gap"):
        D.arithmetic_matrix(8, 0.1)
    with pytest.raises(ValidationError, match="arms"):
        D.regret(P, np.array([[0, 9]]))
