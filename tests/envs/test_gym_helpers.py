"""irlhf.envs.gym: scripted experts, collect_demos, evaluate, random_return, normalized_score."""

import gymnasium as gym
import numpy as np
import pytest

from irlhf.core.errors import IrlhfError, ValidationError
from irlhf.data.types import Trajectory
from irlhf.envs.gym import (
    SCRIPTED_EXPERTS,
    collect_demos,
    evaluate,
    normalized_score,
    random_policy,
    random_return,
)
from irlhf.rl.experts import make_expert

# Measured means over 10 episodes (seeds 0..9): 500, -120.3, -74.2, -132.3, 265.4; thresholds leave margin.
THRESHOLDS = {"CartPole-v1": 475.0, "MountainCar-v0": -130.0, "Acrobot-v1": -110.0, "Pendulum-v1": -250.0,
              "LunarLander-v3": 200.0, "irlhf/PointMassReach-v0": -15.0}


def _single_env_returns(env_id, policy, n_episodes, seed):
    """The plain loop evaluate() must agree with: episode k resets with seed + k."""
    env = gym.make(env_id)
    returns = []
    for k in range(n_episodes):
        obs, _ = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(np.asarray(policy(obs[None]))[0])
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return np.array(returns)


@pytest.mark.parametrize("env_id", sorted(THRESHOLDS))
def test_scripted_expert_beats_threshold(env_id):
    mean, _ = evaluate(env_id, make_expert(env_id), n_episodes=10, seed=0)
    assert mean >= THRESHOLDS[env_id]


def test_every_scripted_expert_is_tested():
    assert set(SCRIPTED_EXPERTS) == set(THRESHOLDS)


def test_expert_output_shapes_and_dtypes():
    cart = make_expert("CartPole-v1")(np.zeros((3, 4), dtype=np.float32))
    assert cart.shape == (3,) and cart.dtype == np.int64
    pend = make_expert("Pendulum-v1")(np.tile([1.0, 0.0, 0.0], (3, 1)).astype(np.float32))
    assert pend.shape == (3, 1) and np.issubdtype(pend.dtype, np.floating)


@pytest.mark.parametrize("env_id", ["BipedalWalker-v3", "NoSuchEnv-v0", 3])
def test_make_expert_unknown_id_names_id_and_supported(env_id):
    with pytest.raises(ValidationError) as info:
        make_expert(env_id)
    message = str(info.value)
    assert repr(env_id) in message and "CartPole-v1" in message and "Pendulum-v1" in message
    assert isinstance(info.value, IrlhfError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_collect_demos_valid_trajectories(env_id):
    demos = collect_demos(env_id, make_expert(env_id), n_episodes=2, seed=3)
    env = gym.make(env_id)
    assert len(demos) == 2 and all(isinstance(d, Trajectory) for d in demos)
    expected_returns = _single_env_returns(env_id, make_expert(env_id), 2, 3)
    for demo, ret in zip(demos, expected_returns):
        assert demo.obs.shape == (len(demo) + 1, *env.observation_space.shape)
        assert demo.obs.dtype == env.observation_space.dtype
        assert demo.rews is not None and demo.rews.shape == (len(demo),)
        assert demo.rews.sum() == pytest.approx(ret)
        assert all(env.observation_space.contains(o) for o in demo.obs)
        assert all(env.action_space.contains(a) for a in demo.acts)
    if env_id == "CartPole-v1":
        assert demos[0].acts.dtype == np.int64 and demos[0].acts.shape == (len(demos[0]),)
        assert len(demos[0]) == 500 and demos[0].terminal is False  # truncated, not terminated
    else:
        assert demos[0].acts.shape == (len(demos[0]), 1)
        assert demos[0].terminal is False  # Pendulum only truncates


def test_collect_demos_terminal_flag_when_terminated():
    demo = collect_demos("MountainCar-v0", make_expert("MountainCar-v0"), seed=0)[0]
    assert demo.terminal is True and len(demo) < 200
    assert demo.rews.sum() == -len(demo)


def test_collect_demos_seeded():
    expert = make_expert("Acrobot-v1")
    a = collect_demos("Acrobot-v1", expert, n_episodes=2, seed=5)
    b = collect_demos("Acrobot-v1", expert, n_episodes=2, seed=5)
    c = collect_demos("Acrobot-v1", expert, n_episodes=2, seed=6)
    assert a == b
    assert a[1] == c[0]  # episode k resets with seed + k
    assert a[0] != c[0]


def test_collect_demos_rejects_bad_expert_output():
    with pytest.raises(ValidationError, match=r"expert output.*shape \(1,\)"):
        collect_demos("CartPole-v1", lambda obs: np.zeros((len(obs), 1), dtype=np.int64))
    with pytest.raises(ValidationError, match="integer"):
        collect_demos("CartPole-v1", lambda obs: np.zeros(len(obs)))  # float actions for Discrete
    with pytest.raises(ValidationError, match="outside"):
        collect_demos("CartPole-v1", lambda obs: np.full(len(obs), 2))
    with pytest.raises(ValidationError, match=r"shape \(1, 1\)"):
        collect_demos("Pendulum-v1", lambda obs: np.zeros(len(obs), dtype=np.float32))


@pytest.mark.parametrize("fn", [collect_demos, evaluate])
@pytest.mark.parametrize("n_episodes", [0, -1, 1.5, True])
def test_n_episodes_must_be_positive_int(fn, n_episodes):
    with pytest.raises(ValidationError, match="n_episodes"):
        fn("CartPole-v1", make_expert("CartPole-v1"), n_episodes=n_episodes)


def test_unknown_env_id_in_collect_and_evaluate():
    with pytest.raises(ValidationError, match="NoSuchEnv-v0"):
        collect_demos("NoSuchEnv-v0", make_expert("CartPole-v1"))
    with pytest.raises(ValidationError, match="NoSuchEnv-v0"):
        evaluate("NoSuchEnv-v0", make_expert("CartPole-v1"))
    with pytest.raises(ValidationError, match="NoSuchEnv-v0"):
        random_return("NoSuchEnv-v0", 2, 0)


@pytest.mark.parametrize(
    ("env_id", "policy"),
    [
        ("CartPole-v1", lambda obs: np.ones(len(obs), dtype=np.int64)),  # episodes of different lengths
        ("MountainCar-v0", lambda obs: np.full(len(obs), 2, dtype=np.int64)),  # all truncated at 200
        ("Acrobot-v1", make_expert("Acrobot-v1")),
    ],
)
def test_evaluate_matches_single_env_loop(env_id, policy):
    expected = _single_env_returns(env_id, policy, 5, 11)
    mean, std = evaluate(env_id, policy, n_episodes=5, seed=11)
    assert mean == pytest.approx(expected.mean(), abs=1e-9)
    assert std == pytest.approx(expected.std(), abs=1e-9)


def test_evaluate_counts_only_first_episode_when_chunked():
    # 40 episodes span two vector-env chunks; a constant policy makes short CartPole episodes,
    # so every sub-env autoresets many times before the last one finishes.
    policy = lambda obs: np.zeros(len(obs), dtype=np.int64)  # noqa: E731
    expected = _single_env_returns("CartPole-v1", policy, 40, 2)
    assert evaluate("CartPole-v1", policy, n_episodes=40, seed=2) == pytest.approx(
        (expected.mean(), expected.std())
    )


def test_evaluate_rejects_bad_policy_output():
    with pytest.raises(ValidationError, match="policy output"):
        evaluate("CartPole-v1", lambda obs: np.zeros(1, dtype=np.int64), n_episodes=3)


def test_random_return_seeded_and_below_expert():
    a = random_return("CartPole-v1", n_episodes=5, seed=1)
    assert a == random_return("CartPole-v1", n_episodes=5, seed=1)
    assert a < 100
    actions = random_policy("Pendulum-v1", seed=0)(np.zeros((1000, 3), dtype=np.float32))
    assert actions.shape == (1000, 1) and actions.min() >= -2 and actions.max() <= 2 and actions.std() > 0.5


def test_normalized_score():
    expert_ret, _ = evaluate("CartPole-v1", make_expert("CartPole-v1"), n_episodes=3, seed=0)
    rand_ret = random_return("CartPole-v1", n_episodes=3, seed=0)
    assert normalized_score("CartPole-v1", expert_ret, expert_ret, rand_ret) == 1.0
    assert normalized_score("CartPole-v1", rand_ret, expert_ret, rand_ret) == 0.0
    assert normalized_score("Pendulum-v1", -600.0, -200.0, -1000.0) == pytest.approx(0.5)
    with pytest.raises(ValidationError, match="expert_return"):
        normalized_score("CartPole-v1", 1.0, 5.0, 5.0)
    with pytest.raises(ValidationError, match="mean_return"):
        normalized_score("CartPole-v1", float("nan"), 5.0, 1.0)


def test_lunarlander_expert_matches_gymnasium_heuristic():
    from gymnasium.envs.box2d.lunar_lander import heuristic

    env = gym.make("LunarLander-v3")
    expert = make_expert("LunarLander-v3")
    obs, _ = env.reset(seed=3)
    for step in range(400):
        action = heuristic(env, obs)
        assert expert(obs[None])[0] == action
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset(seed=step)
    env.close()
