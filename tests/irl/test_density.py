"""Density-based imitation: the KDE against scipy and by hand, chunked scoring, the three input types,
determinism, a tiny CartPole run and bad input."""

import types

import numpy as np
import pytest
import scipy.stats
import torch
from gymnasium import spaces
from scipy.special import logsumexp

from irlhf.core.errors import ValidationError
from irlhf.data.types import flatten_trajectories
from irlhf.envs.gym import collect_demos, random_policy
from irlhf.irl import density

torch.set_num_threads(1)


def test_log_density_matches_scipy_in_1d():
    rng = np.random.default_rng(0)
    data, query = rng.normal(size=40), np.linspace(-4, 4, 17)
    h = 0.3
    kde = density.GaussianKDE(data[:, None], h)
    ref = scipy.stats.gaussian_kde(data, bw_method=h / data.std(ddof=1))  # its kernel std = factor * std
    np.testing.assert_allclose(kde.log_density(query[:, None]), ref.logpdf(query), rtol=1e-10)


def test_log_density_matches_the_formula_in_2d_and_the_rules_match_scipy():
    rng = np.random.default_rng(1)
    data, query = rng.normal(size=(25, 2)), rng.normal(size=(9, 2)) * 2
    h = 0.7
    by_hand = logsumexp([scipy.stats.multivariate_normal(mean=x, cov=h**2 * np.eye(2)).logpdf(query)
                         for x in data], axis=0) - np.log(len(data))
    np.testing.assert_allclose(density.GaussianKDE(data, h).log_density(query), by_hand, rtol=1e-10)
    ref = scipy.stats.gaussian_kde(data.T)
    assert density.bandwidth_rule(25, 2, "scott") == pytest.approx(ref.scotts_factor())
    assert density.bandwidth_rule(25, 2, "silverman") == pytest.approx(ref.silverman_factor())


def test_chunked_scoring_equals_unchunked_and_respects_the_block(monkeypatch):
    rng = np.random.default_rng(2)
    kde = density.GaussianKDE(rng.normal(size=(50, 3)), 0.4)
    query = rng.normal(size=(37, 3)) * 1.5
    full = kde.log_density(query, max_block=10**6)
    sizes = []

    def recording(a):
        sizes.append(a.size)
        return logsumexp(a, axis=1)

    monkeypatch.setattr(density, "_logsumexp_rows", recording)
    for block in (1, 7, 49, 50, 120, 1849):
        sizes.clear()
        np.testing.assert_allclose(kde.log_density(query, max_block=block), full, rtol=1e-12, atol=1e-12)
        assert max(sizes) <= block and sum(sizes) == 37 * 50


def test_density_is_higher_near_the_demos(cartpole_demos):
    reward = density.fit_reward("CartPole-v1", cartpole_demos)
    demo = cartpole_demos[0]
    obs, acts, next_obs = demo.obs[:-1], demo.acts, demo.obs[1:]
    near = reward(obs, acts, next_obs)
    far = reward(obs + 3 * reward.obs_scale, acts, next_obs)
    assert np.all(near > far) and np.all(far >= reward.floor)
    assert reward(obs + 100 * reward.obs_scale, acts, next_obs) == pytest.approx(np.full(len(obs), reward.floor))
    assert np.mean(near) > np.mean(reward(obs, 1 - acts, next_obs)) + 1.0  # the expert's actions
    rnd = collect_demos("CartPole-v1", random_policy("CartPole-v1", 0), 5, seed=100)
    assert np.mean(near) > np.mean(np.concatenate([reward(t.obs[:-1], t.acts, t.obs[1:]) for t in rnd]))
    assert reward.absorbing_reward == reward.floor  # the expert never falls: ending is the worst there is
    assert reward.floor == pytest.approx(reward.kde.log_norm - 12.5)


def _toy_demos():
    rng = np.random.default_rng(3)
    obs = rng.normal(size=(30, 2)) * [1.0, 5.0] + [2.0, -1.0]
    acts = rng.integers(0, 3, size=30)
    next_obs = obs + rng.normal(size=(30, 2))
    dones = np.zeros(30, dtype=bool)
    dones[-1] = True
    return types.SimpleNamespace(obs=obs, acts=acts, next_obs=next_obs, dones=dones)


TOY_SPACES = (spaces.Box(-np.inf, np.inf, (2,)), spaces.Discrete(3))


@pytest.mark.parametrize("density_type,width", [("state", 2), ("state_action", 5), ("state_state", 4)])
def test_each_density_type_uses_its_inputs(density_type, width):
    demos = _toy_demos()
    config = density.Config(density_type=density_type, bandwidth=0.5, absorbing_mass="once")
    plain = density.fit_reward(TOY_SPACES, demos, config.replace(absorbing=False))
    assert plain.kde.points.shape == (30, width)
    z = (demos.obs - demos.obs.mean(0)) / demos.obs.std(0)
    np.testing.assert_allclose(plain.kde.points[:, :2], z)
    if density_type == "state_action":
        np.testing.assert_array_equal(plain.kde.points[:, 2:], np.eye(3)[demos.acts])
    if density_type == "state_state":
        np.testing.assert_allclose(plain.kde.points[:, 2:], (demos.next_obs - demos.obs.mean(0)) / demos.obs.std(0))

    reward = density.fit_reward(TOY_SPACES, demos, config)  # absorbing: a flag per state, one row per termination
    assert reward.kde.points.shape == (31, width + (2 if density_type == "state_state" else 1))
    np.testing.assert_array_equal(reward.kde.points[-1], reward.absorbing_inputs(1)[0])
    if density_type == "state_state":  # the terminal transition's s' is the absorbing state
        np.testing.assert_array_equal(reward.kde.points[29, 3:], reward.absorbing_inputs(1)[0, 3:])
    # the one termination's row is s_a's density, away from the real states' rows
    assert reward.absorbing_reward == pytest.approx(reward.kde.log_norm)
    assert reward.absorbing_inputs(1)[0, 2] == density.ABSORBING_FLAG

    obs, acts, next_obs = demos.obs[:5], demos.acts[:5], demos.next_obs[:5]
    base = reward(obs, acts, next_obs)
    other_acts, other_next = (acts + 1) % 3, next_obs + 2.0
    assert np.array_equal(reward(obs, other_acts, next_obs), base) == (density_type != "state_action")
    assert np.array_equal(reward(obs, acts, other_next), base) == (density_type != "state_state")
    assert not np.allclose(reward(obs + 2.0, acts, next_obs), base)
    if density_type == "state_state":
        with pytest.raises(ValidationError, match="next_obs=None"):
            reward(obs, acts)
    else:
        np.testing.assert_array_equal(reward(obs, acts), base)


def test_weights_equal_repeated_rows():
    rng = np.random.default_rng(4)
    points, query = rng.normal(size=(6, 3)), rng.normal(size=(11, 3))
    repeats = np.array([1, 3, 1, 7, 2, 1])
    weighted = density.GaussianKDE(points, 0.6, weights=repeats.astype(float))
    repeated = density.GaussianKDE(np.repeat(points, repeats, axis=0), 0.6)
    np.testing.assert_allclose(weighted.log_density(query, max_block=4), repeated.log_density(query), rtol=1e-12)
    assert weighted.log_norm == pytest.approx(repeated.log_norm)
    for bad in (np.ones(5), np.array([1, 1, 1, 0, 1, 1.0]), np.array([1, 1, np.nan, 1, 1, 1])):
        with pytest.raises(ValidationError, match=r"weights: shape .*; expected \(6,\) finite numbers > 0"):
            density.GaussianKDE(points, 0.6, weights=bad)


def test_absorbing_mass_pads_each_ended_demo_to_the_time_limit(gym_demos):
    demos = gym_demos("Acrobot-v1", 2, 0)  # the scripted expert swings up in well under 500 steps
    lengths = [len(t) for t in demos]
    assert all(t.terminal for t in demos) and max(lengths) < 500
    horizon = density.fit_reward("Acrobot-v1", demos)
    once = density.fit_reward("Acrobot-v1", demos, density.Config(absorbing_mass="once"))
    assert density.absorbing_mass("Acrobot-v1", demos, density.Config()) == sum(500 - n for n in lengths)
    assert density.absorbing_mass("Acrobot-v1", demos, density.Config(horizon=100)) == sum(100 - n for n in lengths)
    # one kernel for s_a either way, the same bandwidth; its weight sets r(s_a) = log w + log_norm
    assert horizon.kde.points.shape == once.kde.points.shape == (sum(lengths) + 1, 6 + 1 + 3)
    assert horizon.kde.bandwidth == once.kde.bandwidth
    assert once.absorbing_reward == pytest.approx(np.log(2) + once.kde.log_norm)
    assert horizon.absorbing_reward == pytest.approx(np.log(1000 - sum(lengths)) + horizon.kde.log_norm)
    # padded to H, ending beats hanging at the start, the densest demonstrated state; counted once, it does not
    start = demos[0]
    at_start = horizon(start.obs[:1], start.acts[:1], start.obs[1:2])[0]
    assert horizon.absorbing_reward > at_start
    assert once.absorbing_reward < once(start.obs[:1], start.acts[:1], start.obs[1:2])[0]


def test_absorbing_mass_errors(gym_demos):
    demos = gym_demos("Acrobot-v1", 1, 0)
    with pytest.raises(ValidationError, match="absorbing_mass='horizon' needs each episode's length"):
        density.fit_reward("Acrobot-v1", flatten_trajectories(demos))
    spaces_only = (spaces.Box(-np.inf, np.inf, (6,)), spaces.Discrete(3))
    with pytest.raises(ValidationError, match="has no max_episode_steps; absorbing_mass='horizon' expects Config.hor"):
        density.fit_reward(spaces_only, demos)
    assert density.fit_reward(spaces_only, demos, density.Config(horizon=500)).absorbing_reward == pytest.approx(
        density.fit_reward("Acrobot-v1", demos).absorbing_reward)
    with pytest.raises(ValidationError, match="absorbing_mass='twice': expected one of"):
        density.Config(absorbing_mass="twice")
    with pytest.raises(ValidationError, match="horizon"):
        density.Config(horizon=0)


def test_time_kde_is_one_kde_per_step():
    rng = np.random.default_rng(5)
    points, x = rng.normal(size=(4, 3, 2)), rng.normal(size=(9, 2))
    valid = np.ones((4, 3), bool)
    valid[2, 1] = valid[3] = False
    kde = density.TimeKDE(points, 0.7, valid)
    t = rng.integers(0, 3, size=9)
    expected = [density.GaussianKDE(points[s][valid[s]], 0.7).log_density(x[i:i + 1])[0] for i, s in enumerate(t)]
    np.testing.assert_allclose(kde.log_density(x, t, max_block=6), expected, rtol=1e-12)
    assert np.all(kde.log_density(x, np.full(9, 3)) == -np.inf)  # no valid row at t = 3
    assert kde.log_norm == pytest.approx(-np.log(3) - np.log(2 * np.pi * 0.49))
    for bad_t in (np.full(9, 4), np.full(9, -1), np.zeros(8, int), np.zeros(9)):
        with pytest.raises(ValidationError, match=r"timesteps: .*; expected \(9,\) ints in \[0, 4\)"):
            kde.log_density(x, bad_t)


def test_per_time_step_density_pads_ended_demos_with_the_absorbing_state(gym_demos):
    demos = gym_demos("Acrobot-v1", 2, 0)
    lengths = [len(t) for t in demos]
    reward = density.fit_reward("Acrobot-v1", demos, density.Config(stationary=False))
    kde = reward.kde
    assert kde.points.shape == (500, 2, 6 + 1 + 3) and kde.valid.all()
    assert kde.bandwidth == pytest.approx(2 ** (-1 / 14))  # Scott's rule on N = 2 rows per step, d = 10
    s_a = reward.absorbing_inputs(1)[0]
    for i, n in enumerate(lengths):
        np.testing.assert_array_equal(kde.points[n:, i], np.broadcast_to(s_a, (500 - n, len(s_a))))
        assert kde.points[n - 1, i, 6] == 0 and kde.points[n, i, 6] == density.ABSORBING_FLAG  # column 6: flag
    demo = demos[0]
    stationary_inputs = reward.inputs(demo.obs[:-1], demo.acts, demo.obs[1:])
    np.testing.assert_array_equal(kde.points[:lengths[0], 0], stationary_inputs)
    # without the absorbing state an ended demonstration's later steps are missing, not s_a
    plain = density.fit_reward("Acrobot-v1", demos, density.Config(stationary=False, absorbing=False)).kde
    assert plain.valid[:min(lengths)].all() and not plain.valid[max(lengths):].any()
    # timesteps are required; steps past H score as H - 1
    with pytest.raises(ValidationError, match="timesteps=None with a per-time-step density"):
        reward(demo.obs[:2], demo.acts[:2], demo.obs[1:3])
    late = reward.batch(demo.obs[:2], demo.acts[:2], demo.obs[1:3], None, timesteps=np.array([499, 5000]))
    assert late[0] == late[1] == reward.floor  # every demonstration has ended by then: only s_a is dense
    with pytest.raises(ValidationError, match="stationary=False needs each episode's length"):
        density.fit_reward("Acrobot-v1", flatten_trajectories(demos), density.Config(stationary=False))


def test_absorbing_values_are_the_discounted_tail(gym_demos):
    demos = gym_demos("Acrobot-v1", 2, 0)
    gamma = 0.9
    reward = density.fit_reward("Acrobot-v1", demos, density.Config(stationary=False))
    r = np.maximum(reward.kde.log_density(reward.absorbing_inputs(500), np.arange(500)), reward.floor)
    v = reward.absorbing_values(gamma)
    for t in (0, 150, 498, 499):
        steps = np.minimum(np.arange(t, t + 400), 499)  # gamma^400 < 1e-18
        assert v[t] == pytest.approx(np.sum(gamma ** np.arange(400) * r[steps]), rel=1e-9)
    assert reward.absorbing_reward == pytest.approx(r[-1])
    stationary = density.fit_reward("Acrobot-v1", demos)
    assert stationary.absorbing_values(gamma) == pytest.approx([stationary.absorbing_reward / (1 - gamma)])
    assert density.fit_reward("Acrobot-v1", demos, density.Config(absorbing=False)).absorbing_values(gamma) is None


def test_tiny_per_time_step_run(gym_demos):
    demos = gym_demos("Acrobot-v1", 1, 0)
    config = density.Config(stationary=False, total_timesteps=256, log_every=256, rl_kwargs={"n_steps": 16})
    result = density.train("Acrobot-v1", demos, config)
    assert [r["timesteps"] for r in result.history] == [256]
    assert result.history[0]["mean_log_density"] >= result.reward.floor


def test_bc_warm_start_starts_ppo_from_behaviour_cloning(cartpole_demos):
    from irlhf.rl.pretrain import warm_start_policy

    config = density.Config(bc_warm_start=True, total_timesteps=256, log_every=256,
                            rl_kwargs={"learning_rate": 0.0})  # no PPO update: the actor stays the BC one
    result = density.train("CartPole-v1", cartpole_demos, config)
    obs = np.concatenate([t.obs[:50] for t in cartpole_demos])
    np.testing.assert_array_equal(result.policy(obs), warm_start_policy("CartPole-v1", cartpole_demos, 0)(obs))
    with pytest.raises(ValidationError, match="bc_warm_start=True with algo='sac': expected algo='ppo'"):
        density.Config(algo="sac", bc_warm_start=True)
    assert density.Config().bc_warm_start and not density.Config(algo="sac").bc_warm_start


def test_box_actions_are_standardised(gym_demos):
    demos = gym_demos("Pendulum-v1", 1, 0)
    reward = density.fit_reward("Pendulum-v1", demos, density.Config(absorbing=False))
    points = reward.kde.points
    assert points.shape[1] == 3 + 1
    np.testing.assert_allclose(points.mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(points.std(0), 1.0, rtol=1e-9)
    assert reward.kde.bandwidth == pytest.approx(len(points) ** (-1 / 8))  # Scott's rule, d = 4


def test_tiny_pendulum_run_with_sac(gym_demos):
    demos = gym_demos("Pendulum-v1", 1, 0)
    result = density.train("Pendulum-v1", demos, density.Config(algo="sac", total_timesteps=200, log_every=100))
    assert [r["timesteps"] for r in result.history] == [100, 200]
    assert result.policy(demos[0].obs[:3]).shape == (3, 1)
    assert result.reward.absorbing_reward == result.reward.floor  # Pendulum never terminates


def test_subset_is_seeded(cartpole_demos):
    config = density.Config(max_points=100)
    a = density.fit_reward("CartPole-v1", cartpole_demos, config).kde.points
    b = density.fit_reward("CartPole-v1", cartpole_demos, config).kde.points
    c = density.fit_reward("CartPole-v1", cartpole_demos, config.replace(seed=1)).kde.points
    assert a.shape == (100, 7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_tiny_cartpole_run_is_deterministic(cartpole_demos):
    config = density.Config(total_timesteps=512, log_every=256, seed=0)
    seen = []
    first = density.train("CartPole-v1", cartpole_demos, config, callback=lambda record, policy: seen.append(record))
    second = density.train("CartPole-v1", cartpole_demos, config)
    assert [r["timesteps"] for r in first.history] == [256, 512] and seen == first.history
    assert set(first.history[0]) == {"timesteps", "mean_log_density", "mean_return", "mean_length", "seconds"}
    for a, b in zip(first.history, second.history):
        assert a["mean_log_density"] == b["mean_log_density"] and a["mean_return"] == b["mean_return"]
    obs = np.stack([t.obs[0] for t in cartpole_demos] + [cartpole_demos[0].obs[40]])
    np.testing.assert_array_equal(first.policy(obs), second.policy(obs))
    assert first.n_demo_transitions == sum(len(t.acts) for t in cartpole_demos)
    assert first.bandwidth == pytest.approx(first.n_demo_transitions ** (-1 / 11))  # Scott, d = 4 + flag + 2
    stopped = density.train("CartPole-v1", cartpole_demos, config, callback=lambda record, policy: True)
    assert len(stopped.history) == 1


def test_bad_input(gym_demos, cartpole_demos):
    pend = gym_demos("Pendulum-v1", 1, 0)
    with pytest.raises(ValidationError, match=r"demos.obs: shape \(200, 3\); expected \(N, \*\(4,\)\)"):
        density.fit_reward("CartPole-v1", pend)
    with pytest.raises(ValidationError, match="empty"):
        density.train("CartPole-v1", [], density.Config(total_timesteps=256))
    for bad in (0, -0.5, float("inf"), "scot", True):
        with pytest.raises(ValidationError, match="bandwidth="):
            density.Config(bandwidth=bad)
    with pytest.raises(ValidationError, match="bandwidth=0: expected a number > 0"):
        density.GaussianKDE(np.zeros((3, 1)), 0)
    with pytest.raises(ValidationError, match="density_type='states': expected one of"):
        density.Config(density_type="states")
    with pytest.raises(ValidationError, match="max_block"):
        density.Config(max_block=0)
    with pytest.raises(ValidationError, match="sac"):
        density.train("CartPole-v1", cartpole_demos, density.Config(algo="sac", total_timesteps=256))
    with pytest.raises(ValidationError, match="gymnasium environment id"):
        density.train(None, cartpole_demos)
    with pytest.raises(ValidationError, match="expected irlhf.irl.density.Config"):
        density.fit_reward("CartPole-v1", cartpole_demos, object())
    with pytest.raises(ValidationError, match=r"x: shape \(2, 3\); expected \(N, 7\)"):
        density.fit_reward("CartPole-v1", cartpole_demos).kde.log_density(np.zeros((2, 3)))
