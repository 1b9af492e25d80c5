import numpy as np
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.data import Trajectory
from irlhf.envs.tabular import gridworld, random_mdp
from irlhf.eval import (demo_log_likelihood, expected_value_difference, feature_expectation_gap, policy_value,
                        reward_correlation)
from irlhf.planning import value_iteration


def test_evd_is_zero_for_the_true_reward_and_its_affine_images():
    mdp = gridworld(6, slip=0.2, discount=0.9)
    assert expected_value_difference(mdp, mdp.true_reward) == pytest.approx(0.0, abs=1e-10)
    assert expected_value_difference(mdp, 3.0 * mdp.true_reward + 1.0) == pytest.approx(0.0, abs=1e-10)


def test_evd_is_positive_for_a_misleading_reward():
    mdp = gridworld(6, slip=0.2, discount=0.9)
    assert expected_value_difference(mdp, -mdp.true_reward) > 1.0
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert expected_value_difference(mdp, rng.standard_normal(36)) >= -1e-10


def test_policy_value_matches_value_iteration_and_one_state_closed_form():
    mdp = random_mdp(7, 3, 3, seed=0, discount=0.9)
    V, _, pi = value_iteration(mdp, mdp.true_reward, tol=1e-13)
    assert policy_value(mdp, pi, mdp.true_reward) == pytest.approx(mdp.initial @ V, abs=1e-9)
    V, _, pi = value_iteration(mdp, mdp.true_reward, horizon=4)
    assert policy_value(mdp, pi, mdp.true_reward, horizon=4) == pytest.approx(mdp.initial @ V[0], abs=1e-12)


def test_reward_correlation_is_invariant_to_scale_and_shift():
    r = np.random.default_rng(1).standard_normal(20)
    assert reward_correlation(2 * r + 5, r) == pytest.approx(1.0)
    assert reward_correlation(-r, r) == pytest.approx(-1.0)
    assert reward_correlation(np.ones(20), r) == 0.0
    with pytest.raises(IrlhfError, match="learned_reward"):
        reward_correlation(r[:5], r)


def test_demo_log_likelihood_closed_form():
    pi = np.full((4, 2), 0.5)
    demos = [Trajectory(obs=np.array([0, 1, 2]), acts=np.array([0, 1]))] * 3
    assert demo_log_likelihood(pi, demos) == pytest.approx(2 * np.log(0.5))
    pi_t = np.zeros((2, 4, 2))
    pi_t[:, :, 0] = 1.0
    assert demo_log_likelihood(pi_t, demos) == -np.inf
    with pytest.raises(IrlhfError, match="empty"):
        demo_log_likelihood(pi, [])


def test_feature_expectation_gap():
    assert feature_expectation_gap(np.array([3.0, 0.0]), np.array([0.0, 4.0])) == pytest.approx(5.0)
    with pytest.raises(IrlhfError, match="mu_pi"):
        feature_expectation_gap(np.zeros(2), np.zeros(3))


def test_evd_without_a_true_reward_raises():
    mdp = random_mdp(4, 2, 2, seed=0).replace(true_reward=None)
    with pytest.raises(IrlhfError, match="true_reward"):
        expected_value_difference(mdp, np.zeros(4))
