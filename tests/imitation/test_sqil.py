"""SQIL: the mixed replay batch (demo rows with reward 1, agent rows with reward 0), terminal flags,
determinism, the DQN / SAC choice, and bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3 import DQN, SAC

from irlhf.core.errors import ValidationError
from irlhf.data.demos import demo_transitions
from irlhf.data.types import Trajectory
from irlhf.envs.gym import make_env
from irlhf.imitation import sqil

CARTPOLE_OBS = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
CARTPOLE_ACT = spaces.Discrete(2)
#: A few hundred steps of DQN with two training rounds of the zoo's 128 gradient steps (train_freq 256).
SHORT = sqil.Config(total_timesteps=768, learning_starts=256, buffer_size=2000, log_every=256, seed=3)


def cartpole_buffer(demos, demo_fraction: float = 0.5, seed: int = 0) -> sqil.SqilReplayBuffer:
    buffer = sqil.SqilReplayBuffer(1000, CARTPOLE_OBS, CARTPOLE_ACT, device="cpu", demo_fraction=demo_fraction,
                                   seed=seed)
    d = demo_transitions(demos, CARTPOLE_OBS, CARTPOLE_ACT)
    buffer.set_demos(d["obs"], d["acts"], d["next_obs"], d["dones"])
    return buffer


def add_agent_steps(buffer, n: int, reward: float, done: bool = False, truncated: bool = False, seed: int = 1):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        obs = rng.normal(size=(1, 4)).astype(np.float32) + 100.0  # far from every demo state
        buffer.add(obs, obs + 1.0, np.array([[rng.integers(2)]]), np.array([reward]), np.array([done]),
                   [{"TimeLimit.truncated": truncated}])


@pytest.mark.parametrize("demo_fraction, n_demo", [(0.5, 32), (0.25, 16)])
def test_mixed_batch_has_the_demo_fraction_and_the_demo_rows(cartpole_demos, demo_fraction, n_demo):
    buffer = cartpole_buffer(cartpole_demos, demo_fraction)
    add_agent_steps(buffer, 50, reward=1.0)
    batch = buffer.sample(64)
    rewards = batch.rewards.numpy().ravel()
    assert batch.observations.shape == (64, 4) and batch.actions.shape == (64, 1)
    np.testing.assert_array_equal(rewards[:n_demo], 1.0)
    np.testing.assert_array_equal(rewards[n_demo:], 0.0)
    d = demo_transitions(cartpole_demos, CARTPOLE_OBS, CARTPOLE_ACT)
    obs = batch.observations.numpy()
    for i in range(n_demo):  # every demo row is one of the demonstrations' transitions, unchanged
        (rows,) = np.nonzero((d["obs"] == obs[i]).all(axis=1))
        assert rows.size, f"row {i} is not a demonstration"
        j = rows[0]
        assert batch.actions[i, 0].item() == d["acts"][j]
        np.testing.assert_array_equal(batch.next_observations[i].numpy(), d["next_obs"][j])
        assert batch.dones[i, 0].item() == float(d["dones"][j])
    assert (obs[n_demo:] > 50).all()  # the rest are the agent's


def test_agent_rewards_are_zero_whatever_the_env_pays_and_timeouts_are_not_terminal(cartpole_demos):
    buffer = cartpole_buffer(cartpole_demos)
    add_agent_steps(buffer, 20, reward=7.0, done=True, truncated=True)
    assert np.all(buffer.rewards[:20] == 0.0)
    batch = buffer.sample(40)
    assert batch.rewards[20:].sum().item() == 0.0
    assert batch.dones[20:].sum().item() == 0.0  # time-limit cuts: not terminal
    terminal = cartpole_buffer(cartpole_demos)
    add_agent_steps(terminal, 20, reward=-3.0, done=True)
    batch = terminal.sample(40)
    assert batch.rewards[20:].sum().item() == 0.0 and batch.dones[20:].min().item() == 1.0


def test_demo_dones_are_real_terminations_only():
    obs = np.arange(40, dtype=np.float32).reshape(10, 4) / 100
    ended = Trajectory(obs=obs[:6], acts=np.array([0, 1, 0, 1, 0]), terminal=True)
    cut = Trajectory(obs=obs[6:], acts=np.array([1, 1, 0]), terminal=False)
    result = sqil.train("CartPole-v1", [ended, cut], sqil.Config(total_timesteps=256, learning_starts=256,
                                                                 buffer_size=500))
    buffer = result.model.replay_buffer
    np.testing.assert_array_equal(buffer.demos["dones"].ravel(), [0, 0, 0, 0, 1, 0, 0, 0])
    assert result.n_demo_transitions == 8
    # the termination is absorbing, reward 1 for ever: 1 / (1 - gamma), done kept so SB3 adds nothing after it
    gamma = result.model.gamma
    np.testing.assert_allclose(buffer.demos["rewards"].ravel(), [1, 1, 1, 1, 1 / (1 - gamma), 1, 1, 1], rtol=1e-6)
    batch = buffer.demo_samples(64)
    ended_rows = batch.dones.numpy().ravel() == 1
    assert ended_rows.any() and np.allclose(batch.rewards.numpy().ravel()[ended_rows], 1 / (1 - gamma))
    plain = sqil.train("CartPole-v1", [ended, cut], sqil.Config(total_timesteps=256, learning_starts=256,
                                                                buffer_size=500, absorbing=False))
    np.testing.assert_array_equal(plain.model.replay_buffer.demos["rewards"].ravel(), 1.0)


def test_short_cartpole_run_is_deterministic(cartpole_demos):
    first = sqil.train("CartPole-v1", cartpole_demos, SHORT)
    second = sqil.train("CartPole-v1", cartpole_demos, SHORT)
    assert first.algo == "dqn" and isinstance(first.model, DQN)
    assert isinstance(first.model.replay_buffer, sqil.SqilReplayBuffer)

    def strip(history):
        return [{k: v for k, v in record.items() if k != "seconds"} for record in history]

    assert strip(first.history) == strip(second.history)
    assert [r["timesteps"] for r in first.history] == [256, 512, 768]
    last = first.history[-1]
    assert last["loss"] is not None and np.isfinite(last["loss"])
    assert last["demo_q"] > last["agent_q"]  # reward flows on the demonstrations only
    obs = np.stack([t.obs[0] for t in cartpole_demos])
    np.testing.assert_array_equal(first.policy(obs), second.policy(obs))
    assert first.policy(obs).dtype == np.int64


def test_callback_stops_and_evaluation_is_recorded(cartpole_demos):
    seen = []
    config = SHORT.replace(total_timesteps=5000, eval_every=256, eval_episodes=2)
    result = sqil.train("CartPole-v1", cartpole_demos, config, callback=lambda record, policy: seen.append(record)
                        or len(seen) == 2)
    assert len(result.history) == 2 and result.model.num_timesteps < 1000
    assert all(r["eval_return"] is not None for r in result.history)


def test_dqn_takes_sqils_target_and_rate_under_the_users_choices(cartpole_demos):
    def stop(record, policy):  # build the model, stop at the first record
        return True

    model = sqil.train("CartPole-v1", cartpole_demos, SHORT, callback=stop).model
    assert model.target_update_interval == sqil.DQN_DEFAULTS["target_update_interval"] == 1000
    assert model.learning_rate == sqil.DQN_DEFAULTS["learning_rate"]
    mine = SHORT.replace(learning_rate=3e-4, rl_kwargs={"target_update_interval": 50})
    model = sqil.train("CartPole-v1", cartpole_demos, mine, callback=stop).model
    assert model.target_update_interval == 50 and model.learning_rate == 3e-4


def test_pendulum_picks_sac_with_scaled_demo_actions(gym_demos):
    demos = gym_demos("Pendulum-v1", 1, 0)
    config = sqil.Config(total_timesteps=300, buffer_size=1000, batch_size=64, learning_starts=100, log_every=100)
    result = sqil.train("Pendulum-v1", demos, config)
    assert result.algo == "sac" and isinstance(result.model, SAC)
    assert result.model.tau == sqil.SAC_DEFAULTS["tau"] and result.model.learning_rate == 3e-4  # SQIL's, not the zoo's
    high = make_env("Pendulum-v1").action_space.high
    np.testing.assert_allclose(result.model.replay_buffer.demos["acts"], np.clip(demos[0].acts / high, -1, 1),
                               atol=1e-6)
    assert [r["timesteps"] for r in result.history] == [100, 200, 300]
    assert result.history[-1]["loss"] is not None
    actions = result.policy(demos[0].obs[:5])
    assert actions.shape == (5, 1) and np.all(np.abs(actions) <= 2.0)
    mine = config.replace(learning_rate=1e-3, rl_kwargs={"tau": 0.01})
    model = sqil.train("Pendulum-v1", demos, mine, callback=lambda record, policy: True).model
    assert model.tau == 0.01 and model.learning_rate == 1e-3  # the user's choices win


def raises(match: str):
    return pytest.raises(ValidationError, match=match)


def test_bad_input(cartpole_demos, gym_demos):
    pendulum = gym_demos("Pendulum-v1", 1, 0)
    with raises(re.escape("observations of shape (3,); expected (4,)")) as info:
        sqil.train("CartPole-v1", pendulum, SHORT)
    assert "\n" not in str(info.value) and "CartPole-v1" in str(info.value)
    for bad in (0.0, 1.0, 1.5, -0.2):
        with raises(f"demo_fraction={bad}"):
            sqil.Config(demo_fraction=bad)
    with raises("algo='ppo'"):
        sqil.Config(algo="ppo")
    with raises("algo='dqn' on env='Pendulum-v1'.*expected algo='sac'") as info:
        sqil.train("Pendulum-v1", pendulum, sqil.Config(algo="dqn"))
    assert "\n" not in str(info.value)
    with raises("algo='sac' on env='CartPole-v1'"):
        sqil.train("CartPole-v1", cartpole_demos, sqil.Config(algo="sac"))
    with raises("demo_fraction=0.005 with batch_size=64: 0 demonstration rows"):
        sqil.train("CartPole-v1", cartpole_demos, SHORT.replace(demo_fraction=0.005))
    with raises("rl_kwargs=.*replay_buffer_class"):
        sqil.Config(rl_kwargs={"replay_buffer_class": None})
    with raises("rl_kwargs=.*gamma"):
        sqil.Config(rl_kwargs={"gamma": 0.9})
    with raises("gamma=1.0"):
        sqil.Config(gamma=1.0)
    env = make_env("CartPole-v1")
    with raises("gymnasium environment id"):
        sqil.train(env, cartpole_demos, SHORT)
    env.close()
    with raises("expected irlhf.imitation.sqil.Config"):
        sqil.train("CartPole-v1", cartpole_demos, {"demo_fraction": 0.5})
