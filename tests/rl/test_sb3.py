"""irlhf.rl.sb3: model factory validation, SB3Policy shapes, and the BC warm start of PPO."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.nn.policies import MLPPolicy, Policy
from irlhf.rl import experts
from irlhf.rl.sb3 import (ALGOS, DEFAULT_HYPERPARAMS, FALLBACK_HYPERPARAMS, RECOMMENDED_ALGO, SB3Policy, advance,
                          env_spaces, hyperparams, learn_timesteps, make_model, ppo_from_bc, timestep_bar)


def test_defaults_cover_the_classic_envs():
    assert ALGOS == ("ppo", "dqn", "sac")
    for key in [("CartPole-v1", "ppo"), ("CartPole-v1", "dqn"), ("Acrobot-v1", "ppo"), ("Acrobot-v1", "dqn"),
                ("MountainCar-v0", "dqn"), ("Pendulum-v1", "sac"), ("Pendulum-v1", "ppo"),
                ("LunarLander-v3", "ppo"), ("LunarLander-v3", "dqn")]:
        values = DEFAULT_HYPERPARAMS[key]
        assert values["n_timesteps"] >= 1 and values["n_envs"] >= 1
        assert "normalize" not in values
    assert hyperparams("CartPole-v1", "ppo", n_steps=8)["n_steps"] == 8
    assert hyperparams("Foo-v0", "ppo") == FALLBACK_HYPERPARAMS


def test_hopper_sac_takes_the_zoo_mujoco_defaults():
    pytest.importorskip("mujoco")
    pytest.importorskip("imageio")  # gymnasium's MuJoCo envs import it
    assert RECOMMENDED_ALGO["Hopper-v5"] == "sac"
    model = make_model("sac", "Hopper-v5", seed=0)
    assert model.learning_starts == 10_000 and model.learning_rate == pytest.approx(3e-4)  # SB3's rate kept
    assert model.observation_space.shape == (11,) and model.action_space.shape == (3,)
    model.get_env().close()


def test_make_model_builds_and_uses_schedules():
    model = make_model("ppo", "CartPole-v1", seed=0, n_envs=2)
    assert model.n_envs == 2 and model.n_steps == 32
    assert model.learning_rate(1.0) == pytest.approx(1e-3) and model.learning_rate(0.5) == pytest.approx(5e-4)


@pytest.mark.parametrize("algo, env, match", [
    ("a2c", "CartPole-v1", "unknown algorithm"),
    ("dqn", "Pendulum-v1", "Discrete"),
    ("sac", "CartPole-v1", "Box"),
    ("ppo", "NoSuchEnv-v0", "NoSuchEnv"),
])
def test_make_model_errors(algo, env, match):
    with pytest.raises(ValidationError, match=match):
        make_model(algo, env)


def test_bad_hyperparameter_is_a_validation_error():
    with pytest.raises(ValidationError, match="hyperparameters"):
        make_model("ppo", "CartPole-v1", no_such_option=1)
    with pytest.raises(ValidationError, match="n_envs"):
        make_model("ppo", "CartPole-v1", n_envs=0)


@pytest.mark.parametrize("algo, env", [("ppo", "CartPole-v1"), ("dqn", "CartPole-v1"), ("sac", "Pendulum-v1"),
                                       ("ppo", "Pendulum-v1")])
def test_sb3_policy_shapes_and_dtypes(algo, env):
    policy = SB3Policy(make_model(algo, env, seed=0, n_envs=1))
    obs_space, act_space = env_spaces(env)
    obs = np.stack([obs_space.sample() for _ in range(5)])
    actions = policy(obs)
    if env == "CartPole-v1":
        assert actions.shape == (5,) and actions.dtype == np.int64
        assert np.ndim(policy(obs[0])) == 0
    else:
        assert actions.shape == (5, 1) and actions.dtype == np.float32
        assert np.all(np.abs(actions) <= 2.0)
        assert policy(obs[0]).shape == (1,)
    np.testing.assert_array_equal(policy(obs), actions)  # deterministic
    with pytest.raises(ValidationError, match="obs"):
        policy(np.zeros((5, 7)))


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_ppo_from_bc_reproduces_the_bc_policy(env):
    obs_space, act_space = env_spaces(env)
    d = obs_space.shape[0]
    module = MLPPolicy(obs_space, act_space, (32, 16), "tanh", obs_mean=np.linspace(-0.5, 0.5, d),
                       obs_scale=np.linspace(0.5, 2.0, d), log_std_init=-0.7, seed=3)
    model = ppo_from_bc(env, Policy(module), seed=0, n_envs=1, n_steps=64, batch_size=64, n_epochs=1)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(64, d)).astype(np.float32) * 2
    np.testing.assert_allclose(SB3Policy(model)(obs), Policy(module)(obs), atol=1e-5)
    actions = module.act(obs, deterministic=False, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, log_prob, _ = model.policy.evaluate_actions(torch.as_tensor(obs), torch.as_tensor(actions))
        expected = module.log_prob(obs, actions)
    np.testing.assert_allclose(log_prob.numpy(), expected.numpy(), atol=1e-5)
    model.learn(256)


def test_ppo_from_bc_rejects_mismatched_policies():
    obs_space, act_space = env_spaces("Pendulum-v1")
    module = MLPPolicy(obs_space, act_space, (8,), seed=0)
    with pytest.raises(ValidationError, match="do not match"):
        ppo_from_bc("CartPole-v1", module)
    with pytest.raises(ValidationError, match="expected an irlhf Policy"):
        ppo_from_bc("CartPole-v1", lambda obs: obs)


def test_action_log_prob_ppo_and_sac():
    from irlhf.rl.sb3 import action_log_prob, make_model

    ppo = make_model("ppo", "CartPole-v1", seed=0, n_envs=1)
    obs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    acts = np.array([0, 1, 1, 0, 1, 0])
    with torch.no_grad():
        probs = ppo.policy.get_distribution(ppo.policy.obs_to_tensor(obs)[0]).distribution.probs
        lp = action_log_prob(ppo, obs, acts)
    np.testing.assert_allclose(lp.numpy(), np.log(probs.numpy()[np.arange(6), acts]), rtol=1e-5)
    sac = make_model("sac", "Pendulum-v1", seed=0)
    grid = np.linspace(-2, 2, 4001, dtype=np.float32)[:, None]  # Pendulum's torque in [-2, 2]
    with torch.no_grad():
        density = action_log_prob(sac, np.repeat(obs[:1, :3], len(grid), axis=0), grid).exp().numpy()
    assert np.trapezoid(density, grid[:, 0]) == pytest.approx(1.0, abs=2e-3)  # a density in env units
    with pytest.raises(ValidationError, match="PPO or SAC"):
        action_log_prob(make_model("dqn", "CartPole-v1", seed=0), obs, acts)


def test_relabel_replay_buffer_uses_next_obs_and_terminations():
    from irlhf.rl.sb3 import make_model, relabel_replay_buffer

    sac = make_model("sac", "Pendulum-v1", seed=0, learning_starts=50)
    assert relabel_replay_buffer(sac, lambda o, a, n: o[:, 0]) == 0  # empty
    sac.learn(60)
    buf = sac.replay_buffer
    assert relabel_replay_buffer(sac, lambda o, a, n, d: n[:, 1] + a[:, 0] + d, with_dones=True) == 60
    expected = buf.next_observations[:60, 0, 1] + sac.policy.unscale_action(buf.actions[:60, 0])[:, 0]
    np.testing.assert_allclose(buf.rewards[:60, 0], expected, rtol=1e-5, atol=1e-6)


# -- progress bars over SB3 timesteps: totals equal the steps SB3 really takes ----------------------------------
@pytest.mark.parametrize("algo, overrides, asked, done", [
    ("ppo", dict(n_envs=2, n_steps=8, batch_size=16, n_epochs=1), 40, 48),  # whole rollouts of 2 * 8 steps
    ("ppo", dict(n_envs=2, n_steps=8, batch_size=16, n_epochs=1), 32, 32),
    ("dqn", dict(train_freq=4, learning_starts=1000), 10, 12),  # rollouts of train_freq steps
])
def test_learn_timesteps_is_what_learn_does(algo, overrides, asked, done):
    model = make_model(algo, "CartPole-v1", seed=0, **overrides)
    assert learn_timesteps(model, asked) == done
    model.learn(asked)
    assert model.num_timesteps == done


def test_timestep_bar_ends_at_its_total():
    model = make_model("ppo", "CartPole-v1", seed=0, n_envs=2, n_steps=8, batch_size=16, n_epochs=1)
    bar = timestep_bar(model, 40, desc="t", file=io.StringIO())
    advance(bar, 16)
    assert (bar.n, bar.total) == (16, 48)
    advance(bar, 64)  # a learner that goes past the plan (episode-based train_freq) never overshoots the bar
    assert bar.n == bar.total == 48


def test_expert_callback_bar_ends_at_its_total_when_rollouts_overshoot():
    model = make_model("ppo", "CartPole-v1", seed=0, n_envs=2, n_steps=8, batch_size=16, n_epochs=1)
    callback = experts._callback(40, progress=True, desc="t")  # 40 steps asked; PPO does 3 rollouts of 16
    model.learn(40, callback=callback)
    assert model.num_timesteps == 48 and callback.bar.n == callback.bar.total == 48
