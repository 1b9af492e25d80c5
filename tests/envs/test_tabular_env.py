"""irlhf.envs.tabular.TabularEnv: a gymnasium view of a TabularMDP."""

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from irlhf.core.errors import IrlhfError
from irlhf.envs.tabular import TabularEnv, gridworld, random_mdp

RIGHT = 4


def test_passes_gymnasium_env_checker():
    env = TabularEnv(gridworld(3), horizon=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning fails the test
        check_env(env, skip_render_check=True)


def test_spaces():
    env = TabularEnv(random_mdp(7, 3, 2))
    assert env.observation_space.n == 7 and env.action_space.n == 3


def test_truncates_at_horizon_and_reset_restarts_the_clock():
    env = TabularEnv(gridworld(3), horizon=3)
    for _ in range(2):
        env.reset(seed=0)
        flags = [env.step(0)[2:4] for _ in range(3)]
        assert flags == [(False, False), (False, False), (False, True)]


def test_horizon_defaults_to_mdp_horizon_and_none_never_truncates():
    env = TabularEnv(gridworld(3, horizon=2))
    env.reset(seed=0)
    assert [env.step(1)[3] for _ in range(2)] == [False, True]
    env = TabularEnv(gridworld(3))
    env.reset(seed=0)
    assert not any(env.step(2)[2] or env.step(2)[3] for _ in range(100))


def test_reset_is_seeded():
    env = TabularEnv(random_mdp(20, 2, 3, seed=0))

    def rollout(seed):
        obs, _ = env.reset(seed=seed)
        return [obs] + [env.step(k % 2)[0] for k in range(10)]

    assert rollout(1) == rollout(1)
    assert any(rollout(1) != rollout(s) for s in (2, 3, 4))


def test_next_state_frequencies_match_P_and_reward():
    mdp = gridworld(3, slip=0.5)
    mdp = mdp.replace(initial=np.eye(9)[4], true_reward=np.arange(9.0))
    env = TabularEnv(mdp)
    env.reset(seed=0)
    n = 4000
    counts = np.zeros(9)
    for _ in range(n):
        obs, _ = env.reset()
        assert obs == 4
        nxt, reward, terminated, truncated, info = env.step(RIGHT)
        assert reward == 4.0 and not terminated and not truncated and info == {}
        counts[nxt] += 1
    p = mdp.dense_transitions()[4, RIGHT]
    np.testing.assert_allclose(p, [0, 0.1, 0, 0.1, 0.1, 0.6, 0, 0.1, 0], atol=1e-15)
    freq = counts / n
    assert (np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12).all(), freq


def test_reward_overrides_and_state_action_rewards():
    mdp = gridworld(2, slip=0.0).replace(initial=np.eye(4)[0])
    R = np.arange(20.0).reshape(4, 5)
    env = TabularEnv(mdp, reward=R)
    env.reset(seed=0)
    assert env.step(RIGHT)[:2] == (1, R[0, RIGHT])
    assert env.step(2)[:2] == (3, R[1, 2])
    env = TabularEnv(mdp.replace(true_reward=None))
    env.reset(seed=0)
    reward = env.step(0)[1]
    assert reward == 0.0 and isinstance(reward, float)


@pytest.mark.parametrize("reward, match", [(np.zeros(5), "reward: shape"), (np.zeros((4, 4)), "reward: shape"),
                                           ([0.0, np.nan, 0.0, 0.0], "reward")])
def test_bad_reward(reward, match):
    with pytest.raises(IrlhfError, match=match):
        TabularEnv(gridworld(2), reward=reward)


@pytest.mark.parametrize("horizon", [0, -1, 2.5, "3", True])
def test_bad_horizon(horizon):
    with pytest.raises(IrlhfError, match="horizon"):
        TabularEnv(gridworld(2), horizon=horizon)


@pytest.mark.parametrize("action", [5, -1, 1.5, "1"])
def test_bad_action(action):
    env = TabularEnv(gridworld(2))
    env.reset(seed=0)
    with pytest.raises(IrlhfError, match="action"):
        env.step(action)
