"""RewardWrapper / RewardVecEnvWrapper: learned reward replaces the env's, true reward kept in info."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env

from irlhf.core.errors import ValidationError
from irlhf.rl.wrappers import RewardVecEnvWrapper, RewardWrapper


def test_reward_wrapper_replaces_reward_and_keeps_true_one():
    calls = []

    def fn(obs, act, next_obs):
        calls.append((obs.copy(), act, next_obs.copy()))
        return 10.0 * next_obs[0]

    env = RewardWrapper(gym.make("CartPole-v1"), fn)
    obs0, _ = env.reset(seed=0)
    obs1, r, _, _, info = env.step(1)
    assert info["true_reward"] == 1.0 and r == pytest.approx(10.0 * obs1[0])
    np.testing.assert_array_equal(calls[0][0], obs0)
    assert calls[0][1] == 1
    np.testing.assert_array_equal(calls[0][2], obs1)
    with pytest.raises(ValidationError, match="reward_fn"):
        RewardWrapper(gym.make("CartPole-v1"), 3)


def test_reward_wrapper_with_make_vec_env_monitor_reports_true_returns():
    venv = make_vec_env("CartPole-v1", n_envs=2, seed=0, wrapper_class=RewardWrapper,
                        wrapper_kwargs=dict(reward_fn=lambda o, a, n: -5.0))
    venv.reset()
    returns = []
    for _ in range(200):
        _, rewards, dones, infos = venv.step(np.array([0, 1]))
        assert np.all(rewards == -5.0)
        returns += [i["episode"]["r"] for i in infos if "episode" in i]
    assert returns and all(r > 0 for r in returns)  # Monitor sits inside: true returns


def test_vec_wrapper_batched_reward_terminal_obs_and_recording():
    seen = []

    def fn(obs, acts, next_obs):
        seen.append(len(obs))
        return obs[:, 0] + acts

    venv = RewardVecEnvWrapper(make_vec_env("CartPole-v1", n_envs=3, seed=1), fn, record=True, max_episodes=5)
    obs = venv.reset()
    for _ in range(120):
        acts = np.zeros(3, dtype=np.int64)
        new_obs, rewards, dones, infos = venv.step(acts)
        np.testing.assert_allclose(rewards, obs[:, 0], rtol=1e-6)
        assert all("true_reward" in i for i in infos)
        obs = new_obs
    assert set(seen) == {3}
    assert venv.finished >= 5 and len(venv.episodes) == 5
    ep = venv.episodes[-1]
    assert ep.terminal and len(ep.obs) == len(ep.acts) + 1 and np.all(ep.rews == 1.0)
    assert abs(ep.obs[-1][2]) > 0.2 or abs(ep.obs[-1][0]) > 2.4  # the real terminal observation


def test_vec_wrapper_counts_each_envs_episode_steps():
    seen = []
    venv = None

    def fn(obs, acts, next_obs):
        seen.append(venv.episode_steps.copy())
        return np.zeros(len(obs))

    venv = RewardVecEnvWrapper(make_vec_env("CartPole-v1", n_envs=2, seed=2), fn, record=True)
    venv.reset()
    for _ in range(60):  # always pushing left: CartPole ends within ~10 steps, at different times per env
        venv.step(np.zeros(2, dtype=np.int64))
    seen = np.array(seen)
    lengths = [len(ep.acts) for ep in venv.episodes]
    assert seen[0].tolist() == [0, 0] and len(venv.episodes) >= 4
    for env in (0, 1):  # t runs 0, 1, ..., T - 1 within each episode and restarts at 0
        starts = np.flatnonzero(seen[:, env] == 0)
        assert np.all(np.diff(seen[:, env])[np.diff(seen[:, env]) != 1] == -seen[starts[1:] - 1, env])
    assert sorted(set(np.diff(np.flatnonzero(seen[:, 0] == 0)))) <= sorted(set(lengths))
    venv.reset()
    assert venv.episode_steps.tolist() == [0, 0]


def test_vec_wrapper_rejects_bad_reward_shape():
    venv = RewardVecEnvWrapper(make_vec_env("CartPole-v1", n_envs=2, seed=0), lambda o, a, n: np.zeros(3))
    venv.reset()
    with pytest.raises(ValidationError, match="reward_fn output"):
        venv.step(np.zeros(2, dtype=np.int64))


def test_vec_wrapper_keeps_recent_transitions_and_passes_terminations():
    calls = []

    def fn(obs, acts, next_obs, terminated):
        calls.append(terminated.copy())
        return np.where(terminated, -1.0, 0.0)

    venv = RewardVecEnvWrapper(make_vec_env("CartPole-v1", n_envs=2, seed=3), fn, keep_transitions=7, with_dones=True)
    with pytest.raises(ValidationError, match="no steps taken"):
        venv.recent_transitions()
    obs = venv.reset()
    stream = []
    for _ in range(40):  # always push left: CartPole falls within ~10 steps, several times
        acts = np.zeros(2, dtype=np.int64)
        new_obs, rewards, dones, infos = venv.step(acts)
        next_obs = np.stack([i["terminal_observation"] if d else o for o, d, i in zip(new_obs, dones, infos)])
        stream.append((obs, acts, next_obs, dones & ~np.array([i.get("TimeLimit.truncated", False) for i in infos])))
        np.testing.assert_array_equal(rewards, np.where(calls[-1], -1.0, 0.0))
        obs = new_obs
    assert sum(c.sum() for c in calls) >= 4
    kept = venv.recent_transitions()
    assert {k: v.shape[0] for k, v in kept.items()} == {"obs": 7, "acts": 7, "next_obs": 7, "dones": 7}
    # oldest first: the last 7 of the interleaved (step, env) stream
    flat = [tuple(part[i] for part in step) for step in stream for i in range(2)][-7:]
    np.testing.assert_array_equal(kept["obs"], np.stack([f[0] for f in flat]))
    np.testing.assert_array_equal(kept["next_obs"], np.stack([f[2] for f in flat]))
    np.testing.assert_array_equal(kept["dones"], np.array([f[3] for f in flat]))
    assert venv.recent_transitions(3)["obs"].shape == (3, 4)
    with pytest.raises(ValidationError, match="keeps none"):
        RewardVecEnvWrapper(make_vec_env("CartPole-v1", n_envs=1), fn).recent_transitions()
    with pytest.raises(ValidationError, match="keep_transitions"):
        RewardVecEnvWrapper(make_vec_env("CartPole-v1", n_envs=1), fn, keep_transitions=-1)
