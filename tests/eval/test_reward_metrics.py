"""``irlhf.eval.evaluate_reward``: the learned-reward metrics and their references."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.envs.tabular import gridworld, sample_trajectories
from irlhf.eval import evaluate_reward, expected_value_difference
from irlhf.planning import soft_value_iteration

H = 5


@pytest.fixture(scope="module")
def world():
    mdp = gridworld(5, discount=0.9, seed=0)
    _, _, pi = soft_value_iteration(mdp, mdp.true_reward, horizon=H)
    return mdp, sample_trajectories(mdp, pi, n=6, horizon=H, seed=0)


def test_the_true_reward_is_perfect_and_matches_the_expert_likelihood(world):
    mdp, demos = world
    m = evaluate_reward(mdp, mdp.true_reward, demos, H)
    assert set(m) == {"evd", "evd_constant_reward", "reward_correlation", "demo_log_likelihood",
                      "expert_demo_log_likelihood", "uniform_demo_log_likelihood"}
    assert m["evd"] == pytest.approx(0.0, abs=1e-10) and m["reward_correlation"] == pytest.approx(1.0)
    assert m["demo_log_likelihood"] == m["expert_demo_log_likelihood"]
    assert m["uniform_demo_log_likelihood"] == pytest.approx(H * np.log(1 / mdp.n_actions))
    assert m["evd_constant_reward"] == pytest.approx(expected_value_difference(mdp, np.zeros(mdp.n_states),
                                                                               horizon=H))


def test_state_action_rewards_and_a_misleading_reward(world):
    mdp, demos = world
    sa = np.repeat(mdp.true_reward[:, None], mdp.n_actions, axis=1)  # (S, A) copy of the state reward
    assert evaluate_reward(mdp, sa, demos, H)["evd"] == pytest.approx(0.0, abs=1e-10)
    bad = evaluate_reward(mdp, -mdp.true_reward, demos, H)
    assert bad["evd"] > 0 and bad["reward_correlation"] == pytest.approx(-1.0)


def test_bad_input(world):
    mdp, demos = world
    with pytest.raises(IrlhfError, match=r"learned=.*expected a reward of shape \(25,\) or \(25, 5\)"):
        evaluate_reward(mdp, np.zeros(7), demos, H)
    with pytest.raises(IrlhfError, match="true_reward=None"):
        evaluate_reward(dataclasses.replace(mdp, true_reward=None), np.zeros(25), demos, H)
