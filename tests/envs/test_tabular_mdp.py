"""irlhf.envs.tabular.TabularMDP: validation of every field, dense input, stored form."""

import numpy as np
import pytest
import scipy.sparse as sp

from irlhf.core.errors import IrlhfError
from irlhf.envs.tabular import TabularMDP

S, A = 3, 2


def dense_P(seed=0):
    return np.random.default_rng(seed).dirichlet(np.ones(S), size=(S, A))


def make(**changes):
    kwargs = dict(transitions=dense_P(), features=np.eye(S), initial=np.full(S, 1 / S))
    kwargs.update(changes)
    return TabularMDP(**kwargs)


def test_valid_mdp_properties():
    mdp = make(discount=0.5, horizon=4, true_reward=[1, 2, 3], features=np.ones((S, 5)))
    assert (mdp.n_states, mdp.n_actions, mdp.n_features) == (S, A, 5)
    assert sp.isspmatrix_csr(mdp.transitions) or isinstance(mdp.transitions, sp.csr_array)
    assert mdp.transitions.shape == (S * A, S) and mdp.transitions.dtype == np.float64
    assert mdp.discount == 0.5 and mdp.horizon == 4
    assert mdp.true_reward.dtype == np.float64 and mdp.true_reward.tolist() == [1.0, 2.0, 3.0]


def test_dense_input_equals_sparse_input():
    P = dense_P(1)
    from_dense = make(transitions=P)
    from_sparse = make(transitions=sp.csr_matrix(P.reshape(S * A, S)))
    assert (from_dense.transitions != from_sparse.transitions).nnz == 0
    np.testing.assert_array_equal(from_dense.dense_transitions(), P)
    # row s*A + a holds P(. | s, a)
    np.testing.assert_array_equal(from_dense.transitions[1 * A + 1].toarray().ravel(), P[1, 1])


def test_other_sparse_formats_and_explicit_zeros():
    P = np.zeros((S * A, S))
    P[np.arange(S * A), np.arange(S * A) % S] = 1.0
    coo = sp.coo_matrix(P)
    with_zero = sp.coo_matrix((np.r_[coo.data, 0.0], (np.r_[coo.row, 0], np.r_[coo.col, 2])), shape=P.shape)
    mdp = make(transitions=with_zero)
    assert mdp.transitions.nnz == S * A  # explicit zero dropped
    np.testing.assert_array_equal(mdp.transitions.toarray(), P)
    assert make(transitions=sp.lil_matrix(P)).transitions.nnz == S * A


def test_int_discount_one_and_numpy_horizon_accepted():
    mdp = make(discount=1, horizon=np.int64(3))
    assert mdp.discount == 1.0 and isinstance(mdp.discount, float)
    assert mdp.horizon == 3 and type(mdp.horizon) is int


def test_state_action_reward_accepted():
    assert make(true_reward=np.zeros((S, A))).true_reward.shape == (S, A)


def test_row_not_summing_to_one():
    P = dense_P()
    P[1, 0] *= 0.9
    with pytest.raises(IrlhfError, match=r"transitions: row 2 \(state 1, action 0\) sums to 0\.9.*1 bad rows"):
        make(transitions=P)


def test_row_sum_tolerance():
    P = dense_P()
    P[0, 0, 0] += 1e-12  # within tolerance
    make(transitions=P)
    P[0, 0, 0] += 1e-6
    with pytest.raises(IrlhfError, match="transitions: row 0"):
        make(transitions=P)


@pytest.mark.parametrize("entry", [-0.2, np.nan, np.inf])
def test_bad_probability_values(entry):
    P = dense_P()
    P[2, 1] = [1.0 - entry if np.isfinite(entry) else 0.5, entry, 0.0]
    with pytest.raises(IrlhfError, match="transitions: negative, NaN or inf"):
        make(transitions=P)


@pytest.mark.parametrize(
    "transitions",
    [
        dense_P().tolist(),  # a list is not accepted as dense input
        np.ones((S, A, S + 1)) / (S + 1),
        sp.csr_matrix(np.ones((S * A + 1, S)) / S),
        sp.csr_matrix((0, 0)),
        np.ones((S * A, S)) / S,  # 2-d dense
        None,
    ],
)
def test_bad_transitions_shape_or_type(transitions):
    with pytest.raises(IrlhfError, match="transitions"):
        make(transitions=transitions)


@pytest.mark.parametrize(
    "features",
    [np.ones((S + 1, 2)), np.ones(S), np.ones((S, 2, 1)), [[0.0], [np.nan], [1.0]], [[0.0], [np.inf], [1.0]],
     [["a"], ["b"], ["c"]]],
)
def test_bad_features(features):
    with pytest.raises(IrlhfError, match="features"):
        make(features=features)


@pytest.mark.parametrize(
    "initial",
    [[0.5, 0.4, 0.0], [1.5, -0.5, 0.0], [0.5, 0.5], np.full((S, 1), 1 / S), [np.nan, 0.5, 0.5], [1.0, 0.0, 0.0, 0.0]],
)
def test_initial_not_a_distribution(initial):
    with pytest.raises(IrlhfError, match="initial"):
        make(initial=initial)


@pytest.mark.parametrize("discount", [0, 0.0, -0.1, 1.0000001, 2, np.nan, True, "0.9", None])
def test_discount_out_of_range(discount):
    with pytest.raises(IrlhfError, match="discount"):
        make(discount=discount)


@pytest.mark.parametrize("horizon", [0, -1, 2.5, True, "3", np.float64(3)])
def test_bad_horizon(horizon):
    with pytest.raises(IrlhfError, match="horizon"):
        make(horizon=horizon)


@pytest.mark.parametrize("reward", [np.zeros(S + 1), np.zeros((S, A + 1)), np.zeros((S, A, 1)), np.zeros((A, S)),
                                    [0.0, np.nan, 0.0], [0.0, -np.inf, 0.0]])
def test_bad_true_reward(reward):
    with pytest.raises(IrlhfError, match="true_reward"):
        make(true_reward=reward)


def test_replace_validates_again():
    mdp = make()
    assert mdp.replace(discount=0.5).discount == 0.5 and mdp.discount == 0.99
    with pytest.raises(IrlhfError, match="discount"):
        mdp.replace(discount=1.5)
    with pytest.raises(IrlhfError, match="initial"):
        mdp.replace(initial=np.ones(S))


def test_inputs_are_copied():
    features, initial = np.eye(S), np.full(S, 1 / S)
    mdp = make(features=features, initial=initial)
    features[0, 0], initial[0] = 5.0, 0.0
    assert mdp.features[0, 0] == 1.0 and mdp.initial[0] == 1 / S


# -- low-precision input (e.g. seals' float32 tabular environments) ------------------------------------
def float32_P(S_=50, A_=4, seed=0):
    """Dense (S, A, S) float32 probabilities: rows sum to 1 only up to float32 rounding."""
    return np.random.default_rng(seed).dirichlet(np.ones(S_), size=(S_, A_)).astype(np.float32)


def test_float32_rows_off_by_rounding_are_renormalised_once(caplog):
    from irlhf.envs import tabular

    P = float32_P()
    assert np.abs(P.astype(np.float64).sum(-1) - 1.0).max() > tabular.ROW_SUM_TOL  # rounding alone exceeds 1e-8
    tabular._note_renormalised.cache_clear()
    with caplog.at_level("INFO", logger="irlhf.envs.tabular"):
        for _ in range(2):
            mdp = TabularMDP(P, np.eye(50), np.full(50, 1 / 50, dtype=np.float32))
    assert mdp.transitions.dtype == np.float64
    np.testing.assert_allclose(np.asarray(mdp.transitions.sum(axis=1)).ravel(), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(mdp.dense_transitions(), P, rtol=1e-6)  # the same probabilities, rescaled
    notes = [r.getMessage() for r in caplog.records if "renormalised" in r.getMessage()]
    assert len(notes) == 2 and "transitions" in notes[0] and "float32" in notes[0]  # once each for P and initial
    assert "initial" in notes[1]


def test_float32_row_really_wrong_is_still_rejected():
    P = float32_P()
    P[3, 1] *= np.float32(0.999)
    with pytest.raises(IrlhfError, match=r"transitions: row 13 \(state 3, action 1\) sums to 0\.999.*float32"):
        TabularMDP(P, np.eye(50), np.full(50, 1 / 50))


def test_float64_tolerance_is_unchanged_and_ints_are_exact():
    P = dense_P().astype(np.float32).astype(np.float64)  # float32 rounding, but stored as float64: rejected
    with pytest.raises(IrlhfError, match="transitions: row"):
        make(transitions=P)
    deterministic = np.zeros((S, A, S), dtype=np.int64)
    deterministic[:, :, 0] = 1
    assert make(transitions=deterministic).transitions.nnz == S * A
    deterministic[0, 0, 1] = 1
    with pytest.raises(IrlhfError, match=r"transitions: row 0 .* sums to 2"):
        make(transitions=deterministic)


def test_float32_initial_off_by_rounding_is_accepted_and_wrong_one_rejected():
    initial = np.full(50, 1 / 50, dtype=np.float32)  # sums to 1 - 2.2e-8 in float32
    mdp = TabularMDP(float32_P(), np.eye(50), initial)
    assert mdp.initial.dtype == np.float64 and abs(mdp.initial.sum() - 1.0) < 1e-15
    initial[0] += np.float32(0.01)
    with pytest.raises(IrlhfError, match="initial"):
        TabularMDP(float32_P(), np.eye(50), initial)
