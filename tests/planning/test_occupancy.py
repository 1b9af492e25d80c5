import numpy as np
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.envs.tabular import TabularMDP, gridworld, random_mdp
from irlhf.planning import occupancy_measure, soft_value_iteration

from naive import dense_occupancy


def chain_mdp(discount: float) -> TabularMDP:
    """State 0 moves to absorbing state 1 whatever the action; start in 0."""
    P = np.zeros((2, 2, 2))
    P[0, :, 1] = 1.0
    P[1, :, 1] = 1.0
    return TabularMDP(P, np.eye(2), np.array([1.0, 0.0]), discount=discount)


def test_closed_form_infinite_and_finite():
    g = 0.9
    mdp = chain_mdp(g)
    pi = np.full((2, 2), 0.5)
    np.testing.assert_allclose(occupancy_measure(mdp, pi), [1.0, g / (1 - g)], atol=1e-12)
    H = 6
    np.testing.assert_allclose(occupancy_measure(mdp, pi, horizon=H), [1.0, sum(g**t for t in range(1, H))], atol=1e-12)
    rho_sa = occupancy_measure(mdp, pi, horizon=H, state_action=True)
    np.testing.assert_allclose(rho_sa, 0.5 * np.array([[1.0, 1.0], [1.0, 1.0]]) * [[1.0], [sum(g**t for t in range(1, H))]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_dense_reference(seed):
    mdp = random_mdp(14, 3, 4, seed=seed, discount=0.93)
    r = np.random.default_rng(seed).standard_normal(14)
    H = 9
    _, _, pi_t = soft_value_iteration(mdp, r, horizon=H)
    P = mdp.dense_transitions()
    np.testing.assert_allclose(occupancy_measure(mdp, pi_t, horizon=H),
                               dense_occupancy(P, pi_t, mdp.initial, 0.93, H), atol=1e-9, rtol=0)
    _, _, pi = soft_value_iteration(mdp, r)
    np.testing.assert_allclose(occupancy_measure(mdp, pi), dense_occupancy(P, pi, mdp.initial, 0.93, None), atol=1e-9)
    np.testing.assert_allclose(occupancy_measure(mdp, pi, horizon=H), dense_occupancy(P, pi, mdp.initial, 0.93, H), atol=1e-9)


@pytest.mark.parametrize("discount", [0.5, 0.99, 1.0])
def test_finite_horizon_sums(discount):
    mdp = gridworld(6, slip=0.3, discount=discount)
    pi = np.full((36, 5), 0.2)
    H = 13
    rho = occupancy_measure(mdp, pi, horizon=H)
    np.testing.assert_allclose(rho.sum(), sum(discount**t for t in range(H)), rtol=1e-12)
    assert (rho >= 0).all()
    rho_sa = occupancy_measure(mdp, pi, horizon=H, state_action=True)
    np.testing.assert_allclose(rho_sa.sum(axis=1), rho, atol=1e-12)


def test_infinite_horizon_sum_and_flow_constraint():
    g = 0.95
    mdp = random_mdp(25, 4, 6, seed=9, discount=g)
    _, _, pi = soft_value_iteration(mdp, np.random.default_rng(9).standard_normal(25))
    rho = occupancy_measure(mdp, pi)
    np.testing.assert_allclose(rho.sum(), 1 / (1 - g), rtol=1e-10)
    rho_sa = occupancy_measure(mdp, pi, state_action=True)
    # flow: rho(s') = d0(s') + g * sum_{s,a} rho(s,a) P(s'|s,a)
    inflow = mdp.transitions.T @ rho_sa.reshape(-1)
    np.testing.assert_allclose(rho, mdp.initial + g * inflow, atol=1e-10)


def test_expected_return_equals_value():
    # sum_s rho(s) r(s) = E_{s0 ~ d0} V^pi(s0) for the soft policy's own evaluation with hard return
    mdp = random_mdp(10, 2, 3, seed=4, discount=0.9)
    r = np.random.default_rng(4).standard_normal(10)
    H = 5
    _, _, pi = soft_value_iteration(mdp, r, horizon=H)
    rho = occupancy_measure(mdp, pi, horizon=H)
    # Monte-Carlo-free check: expected return by explicit policy evaluation backwards in time
    P = mdp.dense_transitions()
    V = np.zeros(10)
    for t in reversed(range(H)):
        V = r + (0.9 * np.einsum("sa,sap,p->s", pi[t], P, V) if t < H - 1 else 0.0)
    np.testing.assert_allclose(rho @ r, mdp.initial @ V, atol=1e-12)


def test_bad_policy_raises():
    mdp = random_mdp(4, 2, 2, seed=0)
    with pytest.raises(IrlhfError, match="shape"):
        occupancy_measure(mdp, np.full((4, 3), 1 / 3))
    with pytest.raises(IrlhfError, match="probability"):
        occupancy_measure(mdp, np.full((4, 2), 0.6))
    with pytest.raises(IrlhfError, match="probability"):
        occupancy_measure(mdp, np.full((4, 2), np.nan))
    with pytest.raises(IrlhfError, match="shape"):
        occupancy_measure(mdp, np.full((3, 4, 2), 0.5), horizon=4)  # time axis shorter than the horizon
