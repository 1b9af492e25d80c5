import math
import types

import numpy as np
import pytest
import torch
from gymnasium import spaces

from irlhf.core.errors import ValidationError
from irlhf.data.types import Trajectory
from irlhf.envs.gym import collect_demos, evaluate, random_policy
from irlhf.irl import gcl

torch.set_num_threads(1)


# -- (a) the IOC loss ------------------------------------------------------------------------------
def _numpy_ioc(demo_c, back_c, log_q):
    log_z = np.log(np.mean(np.exp(log_q), axis=1))
    logits = -back_c - log_z
    loss = np.mean(demo_c) + np.log(np.mean(np.exp(logits)))
    w = np.exp(logits) / np.exp(logits).sum()
    return loss, w


def test_ioc_loss_on_a_hand_computed_batch_with_demos_in_the_background():
    demo_c = np.array([1.0, 2.0])
    back_c = np.array([1.0, 2.0, 0.5, 3.0])  # the two demos, then two policy samples
    log_q = np.array([[-2.0, -3.0], [-1.0, -1.0], [-0.5, -4.0], [-2.5, -1.5]])  # K = 2 mixture components
    # by hand: log z = log((e^a + e^b) / 2); loss = mean(demo) + log(mean(exp(-c - log z)))
    z = [(math.exp(-2) + math.exp(-3)) / 2, math.exp(-1), (math.exp(-0.5) + math.exp(-4)) / 2,
         (math.exp(-2.5) + math.exp(-1.5)) / 2]
    by_hand = 1.5 + math.log(sum(math.exp(-c) / zj for c, zj in zip(back_c, z)) / 4)
    expected, w = _numpy_ioc(demo_c, back_c, log_q)
    assert by_hand == pytest.approx(expected, abs=1e-12)

    d = torch.tensor(demo_c, requires_grad=True)
    s = torch.tensor(back_c[2:], requires_grad=True)
    loss, parts = gcl.ioc_loss(d, torch.cat([d, s]), torch.tensor(log_q))
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(parts["weights"].numpy(), w, atol=1e-12)
    assert parts["ess"].item() == pytest.approx(1.0 / np.sum(w ** 2), abs=1e-10)
    assert parts["log_z_hat"].item() == pytest.approx(expected - 1.5, abs=1e-12)
    loss.backward()
    # d/dc_demo = 1/N - w (it appears in both terms); d/dc_sample = -w: samples are pushed up, demos down
    np.testing.assert_allclose(d.grad.numpy(), 0.5 - w[:2], atol=1e-12)
    np.testing.assert_allclose(s.grad.numpy(), -w[2:], atol=1e-12)
    assert np.all(s.grad.numpy() < 0)
    # a (M,) log z is used as is; K = 1 column equals it
    l1, _ = gcl.ioc_loss(d.detach(), torch.tensor(back_c), torch.tensor(log_q[:, :1]))
    l2, _ = gcl.ioc_loss(d.detach(), torch.tensor(back_c), torch.tensor(log_q[:, 0]))
    assert l1.item() == pytest.approx(l2.item(), abs=1e-12)


def test_past_policy_mixture_is_the_balance_heuristic_over_every_phase():
    # fake policies: phase k's log-density of an episode e (a number) is -(k + 1) * e; the recorded density of an
    # episode on its own phase is given separately (it differs from the phase's end-of-phase policy)
    def log_q(k, episodes):
        return np.array([-(k + 1.0) * e for e in episodes])

    mixture = gcl.PastPolicyMixture(log_q, n_demos=2)
    demo_e = np.array([0.5, 1.5])
    phases = [([1.0, 2.0], [-0.7, -2.2]), ([], []), ([3.0], [-5.5]), ([0.2, 0.4, 0.6], [-0.1, -0.9, -1.9])]
    episodes, recorded, phase_of = [], [], []
    for k, (new, rec) in enumerate(phases):
        episodes += new
        recorded += rec
        phase_of += [k] * len(new)
        cur = -(k + 1.0) * np.array(episodes)
        log_z_pool, log_z_demo = mixture.add_phase(new, np.array(rec), cur, -(k + 1.0) * demo_e)
        counts = np.array([len(p[0]) for p in phases[:k + 1]], dtype=float)
        # by brute force: z(tau_j) = sum_k' n_k' / N q_k'(tau_j), the recorded value on its own phase
        q = np.exp(np.array([[recorded[j] if phase_of[j] == kk else -(kk + 1.0) * e for kk in range(k + 1)]
                             for j, e in enumerate(episodes)]).reshape(len(episodes), k + 1))
        np.testing.assert_allclose(log_z_pool, np.log(q @ (counts / counts.sum())), atol=1e-12)
        q_demo = np.exp(-np.outer(demo_e, np.arange(1, k + 2)))
        np.testing.assert_allclose(log_z_demo, np.log(q_demo @ (counts / counts.sum())), atol=1e-12)
    assert mixture.counts == [2, 0, 1, 3] and mixture.pool.shape == (6, 4)
    with pytest.raises(ValidationError, match="one per episode"):
        mixture.add_phase([1.0], np.array([0.0]), np.zeros(3), np.zeros(2))


def test_all_past_background_keeps_every_sample_and_restores_the_policy(gym_demos):
    env = "CartPole-v1"
    demos = gym_demos(env, 2, 0)
    params = []

    def snapshot(record, policy):
        params.append(torch.cat([p.detach().reshape(-1).clone() for p in policy.model.policy.parameters()]))

    config = gcl.Config(total_timesteps=3072, steps_per_iteration=1024, cost_updates_per_iteration=5, seed=0,
                        background="all_past", sample_pool=2, bc_warm_start=False, demo_density="policy")
    result = gcl.train(env, demos, config, callback=snapshot)
    sizes = [h["n_background"] for h in result.history]
    assert sizes == sorted(sizes) and sizes[-1] > 2 + len(demos)  # every episode kept, not the last sample_pool
    assert all(math.isfinite(h["ioc_loss"]) and 1.0 <= h["ess"] <= h["n_background"] for h in result.history)
    # evaluating old snapshots must leave PPO's current policy in place: it moves on between phases
    assert len(params) >= 3 and all(not torch.equal(a, b) for a, b in zip(params, params[1:]))


def test_per_step_weights_are_the_loss_of_costs_and_log_densities_divided_by_the_horizon():
    demo_c, back_c = torch.tensor([40.0, 60.0]), torch.tensor([40.0, 60.0, 5.0, 30.0])
    log_q = torch.tensor([-20.0, -25.0, -200.0, -150.0])  # demos near-deterministic, samples not: w collapses
    H = 50.0
    tempered, parts = gcl.ioc_loss(demo_c, back_c, log_q, temperature=H)
    plain, _ = gcl.ioc_loss(demo_c / H, back_c / H, log_q / H)
    assert tempered.item() == pytest.approx(plain.item(), abs=1e-12)
    _, trajectory = gcl.ioc_loss(demo_c, back_c, log_q)
    w = np.exp([-0.4, -0.7, 3.9, 2.4])  # (-c - log z) / H
    w /= w.sum()
    assert trajectory["ess"].item() == pytest.approx(1.0, abs=1e-6)  # the trajectory weights: all on one sample
    assert parts["ess"].item() == pytest.approx(1.0 / np.sum(w ** 2), rel=1e-6)  # 1.48
    with pytest.raises(ValidationError, match="weights"):
        gcl.Config(weights="step")


def test_ioc_loss_is_stable_for_large_costs():
    loss, parts = gcl.ioc_loss(torch.tensor([1e4], dtype=torch.float64), torch.tensor([1e4, -1e4], dtype=torch.float64),
                               torch.tensor([-900.0, 0.0], dtype=torch.float64))
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(1e4 + 1e4 - math.log(2), rel=1e-9)
    assert parts["ess"].item() == pytest.approx(1.0)


def test_constant_cost_shift_invariance_and_its_failure_with_unequal_lengths():
    gen = torch.Generator().manual_seed(0)
    log_q = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    demo_lengths, sample_lengths = [4, 4], [4, 4, 4]
    steps = torch.randn(20, generator=gen, dtype=torch.float64)

    def loss_of(step_costs, lengths):
        c = gcl.trajectory_costs(step_costs, lengths)
        return gcl.ioc_loss(c[:2], c, log_q)

    base, _ = loss_of(steps, demo_lengths + sample_lengths)
    shifted, _ = loss_of(steps + 0.7, demo_lengths + sample_lengths)
    assert shifted.item() == pytest.approx(base.item(), abs=1e-10)  # equal lengths: invariant
    # unequal lengths: the change is b * (mean demo length - sum_j w_j T_j) for weights at the shifted costs
    lengths = [6, 5, 3, 4, 2]
    base, _ = loss_of(steps, lengths)
    b = 0.3
    shifted, parts = loss_of(steps + b, lengths)
    w_at_base = gcl.ioc_loss(gcl.trajectory_costs(steps, lengths)[:2], gcl.trajectory_costs(steps, lengths),
                             log_q)[1]["weights"].numpy()
    t = np.array(lengths, dtype=float)
    # exact: log sum w_j exp(-b T_j) with the base weights
    expected = b * t[:2].mean() + math.log(np.sum(w_at_base * np.exp(-b * t)))
    assert shifted.item() - base.item() == pytest.approx(expected, abs=1e-10)
    assert abs(expected) > 1e-3


def test_trajectory_costs_sums_segments():
    c = gcl.trajectory_costs(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), [1, 3, 2])
    np.testing.assert_allclose(c.numpy(), [1.0, 9.0, 11.0])


def test_padded_trajectory_costs_on_a_hand_computed_case():
    steps = torch.tensor([1.0, 2.0, 3.0, 0.5, 0.5, 4.0], dtype=torch.float64)
    lengths, terminated = [3, 2, 1], [True, True, False]
    c_abs = torch.tensor(0.25, dtype=torch.float64, requires_grad=True)
    # H = 5: (1+2+3) + 2 * 0.25; (0.5+0.5) + 3 * 0.25; a time-limit cut is not padded: 4
    out = gcl.padded_trajectory_costs(steps, lengths, terminated, 5, c_abs)
    np.testing.assert_allclose(out.detach().numpy(), [6.5, 1.75, 4.0], atol=1e-12)
    out.sum().backward()
    assert c_abs.grad.item() == pytest.approx(5.0)  # d/dc_abs = the padded steps, 2 + 3
    # a trajectory longer than the horizon gets no (negative) padding
    long = gcl.padded_trajectory_costs(torch.ones(7, dtype=torch.float64), [7], [True], 5, 1.0)
    assert long.item() == pytest.approx(7.0)


def test_padding_makes_the_loss_invariant_to_a_cost_shift_with_unequal_lengths():
    gen = torch.Generator().manual_seed(0)
    log_q = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    lengths, terminated, horizon = [6, 5, 3, 4, 2], [False, True, True, True, True], 6
    steps = torch.randn(sum(lengths), generator=gen, dtype=torch.float64)
    c_abs = torch.tensor(0.4, dtype=torch.float64)

    def loss_of(step_costs, c):
        costs = gcl.padded_trajectory_costs(step_costs, lengths, terminated, horizon, c)
        return gcl.ioc_loss(costs[:2], costs, log_q)[0].item()

    # every trajectory now spans H steps, so adding b to c(s, a) and to c_abs changes nothing (the level of c
    # is no longer identified; only c - c_abs matters) ...
    assert loss_of(steps + 0.3, c_abs + 0.3) == pytest.approx(loss_of(steps, c_abs), abs=1e-10)
    # ... while shifting c alone still does
    assert abs(loss_of(steps + 0.3, c_abs) - loss_of(steps, c_abs)) > 1e-3


def test_reward_adds_the_absorbing_tail_at_terminations():
    net = gcl.CostNet(spaces.Box(-1, 1, (2,)), spaces.Discrete(2), (4,), seed=0)
    with torch.no_grad():
        net.absorbing_cost.fill_(0.5)
    reward = gcl.CostReward(net, scale=2.0, tail=0.98 / 0.02)
    obs, acts = np.zeros((3, 2), dtype=np.float32), np.array([0, 1, 0])
    plain = reward(obs, acts, obs)
    with torch.no_grad():
        np.testing.assert_allclose(plain, -net(obs, acts).numpy() / 2.0, rtol=1e-6)
    done = reward(obs, acts, obs, np.array([False, True, False]))
    np.testing.assert_allclose(done - plain, [0.0, -49.0 * 0.5 / 2.0, 0.0], atol=1e-9)


# -- (b) regularisers ---------------------------------------------------------------------------------
def test_lcr_and_mono_on_hand_computed_sequences():
    seqs = [[1.0, 2.0, 4.0, 7.0], [0.0, 3.0, 1.0], [5.0]]
    steps = torch.tensor([x for s in seqs for x in s], dtype=torch.float64)
    lengths = [len(s) for s in seqs]
    # lcr: second differences inside each sequence only: (4-4+1, 7-8+2) = (1, 1) -> 2; (1-6+0) = -5 -> 25; 0
    assert gcl.lcr_penalty(steps, lengths).item() == pytest.approx((2 + 25 + 0) / 3, abs=1e-12)
    # mono (margin 1): rises (1, 2, 3) -> (0, 1, 2)^2 = 5; rises (3, -2) -> 2^2 = 4; none -> 0
    assert gcl.mono_penalty(steps, lengths, margin=1.0).item() == pytest.approx((5 + 4 + 0) / 3, abs=1e-12)
    assert gcl.mono_penalty(steps, lengths, margin=0.0).item() == pytest.approx((1 + 4 + 9 + 9) / 3, abs=1e-12)
    # constant or linear costs are locally constant; a decreasing one is monotone
    line = torch.tensor([3.0, 2.0, 1.0, 0.0])
    assert gcl.lcr_penalty(line, [4]).item() == 0.0 and gcl.mono_penalty(line, [4]).item() == 0.0
    # the penalties are differentiable
    x = steps.clone().requires_grad_(True)
    (gcl.lcr_penalty(x, lengths) + gcl.mono_penalty(x, lengths)).backward()
    assert torch.all(torch.isfinite(x.grad)) and x.grad.abs().sum() > 0


# -- (c) a short run ---------------------------------------------------------------------------------
def _mean_reward(reward, trajs):
    obs = np.concatenate([t.obs[:-1] for t in trajs])
    acts = np.concatenate([t.acts for t in trajs])
    return float(np.mean(reward(obs, acts, obs)))


def test_cartpole_reward_ranks_expert_above_random(gym_demos):
    env = "CartPole-v1"
    demos = gym_demos(env, 5, 100)
    seen = []
    result = gcl.train(env, demos, gcl.Config(total_timesteps=5000, steps_per_iteration=1024, seed=0,
                                              bc_warm_start=False, demo_density="policy"),
                       callback=lambda record, policy: seen.append(record["iteration"]))
    random_trajs = collect_demos(env, random_policy(env, 0), 20, seed=7)
    expert_r, random_r = _mean_reward(result.reward, demos), _mean_reward(result.reward, random_trajs)
    # measured (5 demos, 5000 steps): seeds 0, 1, 2 -> expert - random = 0.27, 0.39, 0.21 per step
    assert expert_r > random_r + 0.05
    assert len(result.history) >= 3 and seen == [h["iteration"] for h in result.history]
    h = result.history[-1]
    assert set(h) >= {"timesteps", "ioc_loss", "demo_cost", "sample_cost", "ess", "mean_true_return", "seconds"}
    assert all(math.isfinite(r["ioc_loss"]) for r in result.history)
    assert 1.0 <= h["ess"] <= h["n_background"]
    assert h["timesteps"] <= result.model.num_timesteps
    # the reward: batched (n,), single transition -> float, equal to -c
    o, a = demos[0].obs[:3], demos[0].acts[:3]
    batch = result.reward(o, a, o)
    assert batch.shape == (3,)
    assert result.reward(o[0], a[0], o[0]) == pytest.approx(batch[0], rel=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(batch, -result.cost_net(o, a).numpy(), rtol=1e-6)
    assert result.policy(o).shape == (3,)


@pytest.mark.slow  # ~5 s, a learning check; test_cartpole_reward_ranks_expert_above_random covers the loop
def test_cartpole_default_policy_beats_random(gym_demos):
    env = "CartPole-v1"
    demos = gym_demos(env, 5, 100)
    result = gcl.train(env, demos, gcl.Config(total_timesteps=4096, steps_per_iteration=1024, seed=0))
    mean_return, _ = evaluate(env, result.policy, 10, seed=100)
    random_return, _ = evaluate(env, random_policy(env, 0), 10, seed=100)
    # measured (defaults: BC warm start, BC demo density, absorbing padding; 4096 steps): seeds 0, 1, 2 -> 500,
    # random 21.3. The warm start carries it (BC alone scores 500; module docstring)
    assert mean_return > 200 > 3 * random_return
    assert all(math.isfinite(r["ioc_loss"]) for r in result.history)
    assert {"absorbing_cost", "sample_length"} <= set(result.history[-1])


def test_sac_smoke_on_pendulum(gym_demos):
    env = "Pendulum-v1"
    demos = gym_demos(env, 2, 0)
    result = gcl.train(env, demos, gcl.Config(algo="sac", total_timesteps=320, steps_per_iteration=160,
                                              cost_updates_per_iteration=3, lcr_weight=0.1, mono_weight=0.1,
                                              normalize_reward=True,
                                              rl_kwargs={"learning_starts": 100, "batch_size": 32}))
    assert len(result.history) >= 1 and all(math.isfinite(r["ioc_loss"]) for r in result.history)
    assert result.reward(demos[0].obs[:4], demos[0].acts[:4], demos[0].obs[1:5]).shape == (4,)


# -- (d) bad input -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cart_demos(gym_demos):
    return gym_demos("CartPole-v1", 1, 0)


@pytest.mark.parametrize("changes, match", [
    (dict(algo="dqn"), "algo"), (dict(algo="nope"), "algo"), (dict(lr=0.0), "lr"),
    (dict(total_timesteps=0), "total_timesteps"), (dict(sample_pool=0), "sample_pool"),
    (dict(lcr_weight=-1.0), "lcr_weight"), (dict(hidden_sizes=(0,)), "hidden_sizes"),
    (dict(rl_kwargs=[1]), "rl_kwargs"), (dict(demo_batch_size=1.5), "demo_batch_size"),
    (dict(normalize_reward=1), "normalize_reward"), (dict(demos_in_background=None), "demos_in_background"),
    (dict(demo_density="kde"), "demo_density"), (dict(horizon=0), "horizon"), (dict(absorbing=None), "absorbing"),
    (dict(algo="sac", bc_warm_start=True), "bc_warm_start"), (dict(background="all"), "background"),
])
def test_bad_config(changes, match):
    with pytest.raises(ValidationError, match=match):
        gcl.Config(**changes)


def test_bad_demos_and_env(gym_demos, cart_demos):
    with pytest.raises(ValidationError, match="empty"):
        gcl.train("CartPole-v1", [], gcl.Config())
    bad = types.SimpleNamespace(obs=np.full((3, 4), np.nan), acts=np.zeros(2, dtype=np.int64))
    with pytest.raises(ValidationError, match="non-finite"):
        gcl.train("CartPole-v1", [bad], gcl.Config())
    with pytest.raises(ValidationError, match="do not fit"):  # Pendulum demos on CartPole: obs shape (3,)
        gcl.train("CartPole-v1", gym_demos("Pendulum-v1", 1, 0), gcl.Config())
    wrong_action = Trajectory(obs=np.zeros((3, 4)), acts=np.array([0, 2]))
    with pytest.raises(ValidationError, match="do not fit"):
        gcl.train("CartPole-v1", [wrong_action], gcl.Config())
    with pytest.raises(ValidationError, match="sac"):  # sac needs Box actions
        gcl.train("CartPole-v1", cart_demos, gcl.Config(algo="sac"))
    with pytest.raises(ValidationError):
        gcl.train("NoSuchEnv-v0", cart_demos, gcl.Config())
    with pytest.raises(ValidationError, match="config"):
        gcl.train("CartPole-v1", cart_demos, {"algo": "ppo"})
    with pytest.raises(ValidationError, match="demos"):
        gcl.train("CartPole-v1", "demos", gcl.Config())


def test_ioc_loss_shape_errors():
    with pytest.raises(ValidationError):
        gcl.ioc_loss(torch.zeros(0), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValidationError):
        gcl.ioc_loss(torch.zeros(1), torch.zeros(2), torch.zeros(3, 2))
