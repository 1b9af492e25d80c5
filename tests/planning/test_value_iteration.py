import numpy as np
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.envs.tabular import TabularMDP, gridworld, random_mdp
from irlhf.planning import soft_value_iteration, value_iteration

from naive import dense_plan, dense_policy_evaluation


def one_state_mdp(n_actions: int, discount: float, horizon=None) -> TabularMDP:
    P = np.ones((1, n_actions, 1))
    return TabularMDP(P, np.ones((1, 1)), np.ones(1), discount=discount, horizon=horizon)


def switch_mdp(discount: float) -> TabularMDP:
    """2 states, actions 0 = stay, 1 = switch, deterministic."""
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[1, 0, 1] = 1.0
    P[0, 1, 1] = P[1, 1, 0] = 1.0
    return TabularMDP(P, np.eye(2), np.array([1.0, 0.0]), discount=discount)


# ---------------------------------------------------------------- closed forms


def test_hard_values_two_state_closed_form():
    g = 0.9
    V, Q, pi = value_iteration(switch_mdp(g), np.array([0.0, 1.0]), tol=1e-13)
    np.testing.assert_allclose(V, [g / (1 - g), 1 / (1 - g)], atol=1e-10)
    np.testing.assert_allclose(Q, [[g * g / (1 - g), g / (1 - g)], [1 / (1 - g), 1 + g * g / (1 - g)]], atol=1e-10)
    np.testing.assert_array_equal(pi, [[0, 1], [1, 0]])


@pytest.mark.parametrize("temperature", [1.0, 0.5, 3.0])
def test_soft_values_one_state_closed_form(temperature):
    # V = r + T log A + g V  =>  V = (r + T log A) / (1 - g); the soft policy is uniform
    g, A, r = 0.8, 3, 0.7
    V, Q, pi = soft_value_iteration(one_state_mdp(A, g), np.full(1, r), temperature=temperature, tol=1e-13)
    np.testing.assert_allclose(V, [(r + temperature * np.log(A)) / (1 - g)], atol=1e-10)
    np.testing.assert_allclose(pi, np.full((1, A), 1 / A), atol=1e-12)


def test_soft_finite_horizon_one_state_closed_form():
    g, A, r, H = 0.5, 4, 2.0, 5
    V, Q, pi = soft_value_iteration(one_state_mdp(A, g), np.full(1, r), horizon=H)
    expected = np.zeros(H)
    expected[H - 1] = r + np.log(A)
    for t in range(H - 2, -1, -1):
        expected[t] = r + np.log(A) + g * expected[t + 1]
    np.testing.assert_allclose(V[:, 0], expected, atol=1e-12)
    np.testing.assert_allclose(Q[H - 1], np.full((1, A), r), atol=1e-12)  # Q[H-1] = r


def test_soft_two_state_fixed_point_and_policy():
    g = 0.9
    mdp = switch_mdp(g)
    r = np.array([[0.0, -1.0], [1.0, 0.5]])
    V, Q, pi = soft_value_iteration(mdp, r, tol=1e-13)
    # Q(s, a) = r + g V(next), V = log sum exp Q, pi = exp(Q - V)
    nxt = np.array([[0, 1], [1, 0]])
    np.testing.assert_allclose(Q, r + g * V[nxt], atol=1e-10)
    np.testing.assert_allclose(V, np.log(np.exp(Q).sum(axis=1)), atol=1e-10)
    np.testing.assert_allclose(pi, np.exp(Q - V[:, None]), atol=1e-12)


# ---------------------------------------------------------------- against a dense reference


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("soft", [True, False])
def test_finite_horizon_matches_dense(seed, soft):
    mdp = random_mdp(12, 3, 4, seed=seed, discount=0.95)
    rng = np.random.default_rng(seed)
    r = rng.standard_normal((12, 3))
    H = 7
    V, Q, pi = (soft_value_iteration if soft else value_iteration)(mdp, r, horizon=H)
    V_ref, Q_ref, pi_ref = dense_plan(mdp.dense_transitions(), r, 0.95, H, soft)
    np.testing.assert_allclose(V, V_ref, atol=1e-9, rtol=0)
    np.testing.assert_allclose(Q, Q_ref, atol=1e-9, rtol=0)
    np.testing.assert_allclose(pi, pi_ref, atol=1e-9, rtol=0)


def test_soft_temperature_matches_dense():
    mdp = random_mdp(10, 4, 3, seed=5, discount=0.9)
    r = np.random.default_rng(5).standard_normal(10)
    V, Q, pi = soft_value_iteration(mdp, r, horizon=6, temperature=0.3)
    V_ref, Q_ref, pi_ref = dense_plan(mdp.dense_transitions(), np.repeat(r[:, None], 4, 1), 0.9, 6, True, 0.3)
    np.testing.assert_allclose(V, V_ref, atol=1e-9)
    np.testing.assert_allclose(pi, pi_ref, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 3])
def test_infinite_horizon_hard_is_optimal(seed):
    # the greedy policy's exact value (dense linear solve) equals V, and no action improves on it
    mdp = random_mdp(15, 3, 5, seed=seed, discount=0.9)
    r = np.random.default_rng(seed).standard_normal((15, 3))
    V, Q, pi = value_iteration(mdp, r, tol=1e-13)
    P = mdp.dense_transitions()
    np.testing.assert_allclose(dense_policy_evaluation(P, r, pi, 0.9), V, atol=1e-9)
    Q_ref = r + 0.9 * np.einsum("sap,p->sa", P, V)
    np.testing.assert_allclose(Q, Q_ref, atol=1e-9)
    assert np.all(Q.max(axis=1) <= V + 1e-9)


def test_infinite_horizon_soft_is_fixed_point():
    mdp = random_mdp(15, 3, 5, seed=7, discount=0.9)
    r = np.random.default_rng(7).standard_normal(15)
    V, Q, pi = soft_value_iteration(mdp, r, tol=1e-13)
    Q_ref = r[:, None] + 0.9 * np.einsum("sap,p->sa", mdp.dense_transitions(), V)
    np.testing.assert_allclose(Q, Q_ref, atol=1e-9)
    np.testing.assert_allclose(V, np.log(np.exp(Q_ref).sum(axis=1)), atol=1e-9)
    np.testing.assert_allclose(pi.sum(axis=1), 1.0, atol=1e-12)


def test_long_horizon_approaches_infinite_horizon():
    mdp = random_mdp(8, 2, 3, seed=1, discount=0.5)
    r = np.random.default_rng(1).standard_normal(8)
    V_inf, _, _ = soft_value_iteration(mdp, r, tol=1e-14)
    V_fin, _, _ = soft_value_iteration(mdp, r, horizon=80)
    np.testing.assert_allclose(V_fin[0], V_inf, atol=1e-12)


def test_low_temperature_approaches_hard_max():
    mdp = random_mdp(10, 3, 3, seed=2, discount=0.9)
    r = np.random.default_rng(2).standard_normal((10, 3))
    V_hard, _, _ = value_iteration(mdp, r, horizon=5)
    V_soft, _, _ = soft_value_iteration(mdp, r, horizon=5, temperature=1e-4)
    np.testing.assert_allclose(V_soft, V_hard, atol=5e-3)


def test_warm_start_converges_immediately_to_same_values():
    mdp = random_mdp(20, 3, 4, seed=3, discount=0.95)
    r = np.random.default_rng(3).standard_normal(20)
    V, Q, pi = soft_value_iteration(mdp, r, tol=1e-12)
    V2, Q2, pi2 = soft_value_iteration(mdp, r, tol=1e-12, V_init=V, max_iter=2)
    np.testing.assert_allclose(V2, V, atol=1e-11)


def test_policy_rows_sum_to_one_on_gridworld():
    mdp = gridworld(12, slip=0.3)
    r = np.random.default_rng(0).standard_normal(mdp.n_states)
    _, _, pi = soft_value_iteration(mdp, r, horizon=10)
    np.testing.assert_allclose(pi.sum(axis=-1), 1.0, atol=1e-12)


def test_state_reward_equals_broadcast_state_action_reward():
    mdp = random_mdp(9, 3, 2, seed=4)
    r = np.random.default_rng(4).standard_normal(9)
    a = soft_value_iteration(mdp, r, horizon=4)
    b = soft_value_iteration(mdp, np.repeat(r[:, None], 3, axis=1), horizon=4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# ---------------------------------------------------------------- masks and absorbing states


def test_minus_inf_reward_masks_actions_without_nan():
    mdp = random_mdp(6, 3, 3, seed=0, discount=0.9)
    r = np.zeros((6, 3))
    r[:, 0] = -np.inf  # action 0 forbidden everywhere
    for plan in (soft_value_iteration, value_iteration):
        for horizon in (None, 5):
            V, Q, pi = plan(mdp, r, horizon=horizon)
            assert np.all(np.isfinite(V)) and not np.isnan(pi).any()
            np.testing.assert_array_equal(pi[..., 0], 0.0)


def test_state_with_all_actions_masked_gets_minus_inf_value_and_uniform_policy():
    # state 2 is absorbing and fully masked; state 0 can avoid it, state 1 cannot
    P = np.zeros((3, 2, 3))
    P[0, 0, 0] = 1.0
    P[0, 1, 2] = 1.0
    P[1, :, 2] = 1.0
    P[2, :, 2] = 1.0
    mdp = TabularMDP(P, np.eye(3), np.full(3, 1 / 3), discount=0.9)
    r = np.array([[1.0, 1.0], [0.0, 0.0], [-np.inf, -np.inf]])
    for horizon in (None, 4):
        V, Q, pi = soft_value_iteration(mdp, r, horizon=horizon)
        V0 = V if horizon is None else V[0]
        pi0 = pi if horizon is None else pi[0]
        assert np.isfinite(V0[0]) and np.isneginf(V0[1]) and np.isneginf(V0[2])
        np.testing.assert_allclose(pi0[0], [1.0, 0.0])  # avoids the trap
        np.testing.assert_allclose(pi0[2], [0.5, 0.5])
        assert not np.isnan(pi).any() and not np.isnan(V).any()


def test_absorbing_terminal_state_values():
    # state 1 is absorbing with reward 0: V(0) with a one-step reward of 1 then absorb = 1 (hard)
    P = np.zeros((2, 1, 2))
    P[0, 0, 1] = 1.0
    P[1, 0, 1] = 1.0
    mdp = TabularMDP(P, np.eye(2), np.array([1.0, 0.0]), discount=0.99)
    V, _, _ = value_iteration(mdp, np.array([1.0, 0.0]))
    np.testing.assert_allclose(V, [1.0, 0.0], atol=1e-12)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "reward, match",
    [(np.zeros(5), "shape"), (np.zeros((4, 7)), "shape"), (np.array([0, np.nan, 0, 0]), "NaN"),
     (np.array([0, np.inf, 0, 0]), r"\+inf"), ([["a"]], "reward")],
)
def test_bad_reward_raises(reward, match):
    mdp = random_mdp(4, 2, 2, seed=0)
    with pytest.raises(IrlhfError, match=match):
        soft_value_iteration(mdp, reward, horizon=3)


def test_bad_horizon_temperature_and_discount_raise():
    mdp = random_mdp(4, 2, 2, seed=0)
    with pytest.raises(IrlhfError, match="horizon"):
        value_iteration(mdp, np.zeros(4), horizon=0)
    with pytest.raises(IrlhfError, match="temperature"):
        soft_value_iteration(mdp, np.zeros(4), temperature=0.0)
    with pytest.raises(IrlhfError, match="discount=1.0"):
        value_iteration(mdp.replace(discount=1.0), np.zeros(4))
    with pytest.raises(IrlhfError, match="V_init"):
        soft_value_iteration(mdp, np.zeros(4), V_init=np.zeros(3))


def test_non_convergence_is_reported():
    mdp = random_mdp(4, 2, 2, seed=0, discount=0.999)
    with pytest.raises(IrlhfError, match="max_iter"):
        value_iteration(mdp, np.ones(4), max_iter=3)
