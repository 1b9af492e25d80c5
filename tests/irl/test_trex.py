"""T-REX and D-REX: the snippet sampler's rules, the loss on a hand-computed case, reward fits on synthetic ranked
trajectories, D-REX's noise ranking, ranked-data I/O, tiny CartPole runs and bad input."""

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from irlhf.core.errors import ValidationError
from irlhf.data import save_trajectories
from irlhf.data.types import Trajectory
from irlhf.irl import drex, trex

torch.set_num_threads(1)


def synthetic(seed: int, n_per_rank: int = 3, n_ranks: int = 5, steps: int = 30) -> list:
    """1-D trajectories whose states are drawn around 0.5 * rank; the true reward is the state itself, so the
    true return grows with the rank (noisily)."""
    rng = np.random.default_rng(seed)
    out = []
    for rank in range(n_ranks):
        for _ in range(n_per_rank):
            obs = rng.normal(0.5 * rank, 1.0, (steps + 1, 1))
            out.append((Trajectory(obs=obs, acts=np.zeros(steps, dtype=np.int64), rews=obs[1:, 0]), rank))
    return out


SMALL = dict(n_pairs=500, epochs=3, hidden_sizes=(16,), snippet_min=5, snippet_max=20, total_timesteps=0)


def test_snippet_pairs_obey_the_rank_and_start_rules():
    lengths = np.array([5, 40, 12, 30, 8, 25])
    ranks = np.array([0, 0, 1, 1, 2, 3])  # ties within ranks 0 and 1
    p = trex.sample_snippet_pairs(lengths, ranks, 4000, 6, 20, seed=0)
    assert len(p) == 4000
    assert np.all(ranks[p.worse] < ranks[p.better])  # never a tie, the worse one first
    assert np.all(p.better_start >= p.worse_start)  # the paper's rule: the better snippet starts no earlier
    assert np.all(p.worse_start + p.length <= lengths[p.worse])
    assert np.all(p.better_start + p.length <= lengths[p.better])
    shortest = np.minimum(lengths[p.worse], lengths[p.better])
    assert np.all(p.length <= np.minimum(20, shortest)) and np.all(p.length >= np.minimum(6, shortest))
    assert np.any(p.length == 5)  # clipped to the 5-state trajectory, not an error
    valid = {(i, j) for i in range(6) for j in range(6) if ranks[i] < ranks[j]}
    assert set(zip(p.worse.tolist(), p.better.tolist())) == valid  # every ranked pair is drawn
    q = trex.sample_snippet_pairs(lengths, ranks, 4000, 6, 20, seed=0)
    assert all(np.array_equal(getattr(p, f), getattr(q, f)) for f in ("worse", "better", "worse_start",
                                                                         "better_start", "length"))


def test_loss_and_snippet_sums_on_a_hand_computed_case():
    rw, rb = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.0])
    p_better = [math.exp(3) / (math.exp(1) + math.exp(3)), math.exp(0) / (math.exp(2) + math.exp(0))]
    assert trex.snippet_loss(rw, rb).item() == pytest.approx(-np.mean(np.log(p_better)), rel=1e-6)
    # states of two trajectories back to back (3 and 4 states); the score of a state is its value
    states = torch.tensor([[1.0], [2.0], [3.0], [10.0], [20.0], [30.0], [40.0]])
    sums = trex.snippet_sums(lambda x: x[:, 0], states, np.array([0, 3]), np.array([0, 1, 1]),
                             np.array([1, 0, 2]), np.array([2, 3, 2]))
    torch.testing.assert_close(sums, torch.tensor([2.0 + 3.0, 10.0 + 20.0 + 30.0, 30.0 + 40.0]))


def test_snippet_sums_pay_r_abs_past_a_trajectorys_end():
    states = torch.tensor([[1.0], [2.0], [3.0], [10.0], [20.0], [30.0], [40.0]])
    r_abs = torch.tensor(-5.0)
    # trajectory 0 (3 real states) padded: positions 3, 4, ... are absorbing; trajectory 1 is all real
    sums = trex.snippet_sums(lambda x: x[:, 0], states, np.array([0, 3]), np.array([0, 0, 0, 1]),
                             np.array([1, 2, 4, 1]), np.array([3, 2, 3, 3]), np.array([3, 4]), r_abs)
    torch.testing.assert_close(sums, torch.tensor([2.0 + 3.0 - 5.0, 3.0 - 5.0, -15.0, 20.0 + 30.0 + 40.0]))


def ended_early_is_better(seed: int) -> list:
    """1-D trajectories of states ~ N(0, 1) to a horizon of 40: the better-ranked ones terminate after 10 steps,
    the worse run to the limit, so only ending can explain the ranking."""
    rng = np.random.default_rng(seed)
    out = []
    for rank, (steps, terminal) in enumerate([(40, False), (10, True)]):
        for _ in range(4):
            obs = rng.normal(0.0, 1.0, (steps + 1, 1))
            out.append((Trajectory(obs=obs, acts=np.zeros(steps, dtype=np.int64), terminal=terminal), rank))
    return out


def test_absorbing_state_learns_that_ending_is_better():
    config = trex.Config(**{**SMALL, "epochs": 10})
    fit = trex.fit_reward(ended_early_is_better(0), config, horizon=40)
    assert fit.padded and fit.history[-1]["accuracy"] > 0.9
    with torch.no_grad():
        r_states = fit.net(torch.linspace(-2, 2, 9)[:, None].double()).numpy()
        r_abs = fit.net.absorbing_rewards().item()
    assert r_abs > r_states.max()  # every real state is worse than having ended
    plain = trex.fit_reward(ended_early_is_better(0), config)  # no horizon: no padding
    assert not plain.padded
    assert not trex.fit_reward(ended_early_is_better(0), config.replace(absorbing=False), horizon=40).padded
    # the agent's terminal step is paid the discounted tail of transform(r_abs)
    reward = trex.StateReward(fit.net, spaces.Discrete(1), "sigmoid", tail=99.0)
    obs, dones = np.zeros((2, 1)), np.array([False, True])
    paid = reward(obs, np.zeros(2, dtype=np.int64), obs, dones)
    r0 = 1 / (1 + math.exp(-fit.net(torch.zeros(1, 1).double()).item()))
    np.testing.assert_allclose(paid, [r0, r0 + 99.0 / (1 + math.exp(-r_abs))], rtol=1e-5)
    assert reward.absorbing_reward == pytest.approx(1 / (1 + math.exp(-r_abs)))
    # predicted returns pad a terminated trajectory to H with r_abs, as its snippets were scored
    raw = trex.StateReward(fit.net, spaces.Discrete(1))
    ended, cut = ended_early_is_better(1)[-1][0], ended_early_is_better(1)[0][0]
    unpadded = trex.predicted_returns(raw, [ended, cut])
    raw.horizon = 40
    np.testing.assert_allclose(trex.predicted_returns(raw, [ended, cut]), unpadded + [30 * r_abs, 0.0], rtol=1e-5)


def test_reward_fit_on_synthetic_rankings_predicts_true_returns():
    fit = trex.fit_reward(synthetic(0), trex.Config(**SMALL))
    assert [h["epoch"] for h in fit.history] == [1, 2, 3]
    assert fit.history[-1]["accuracy"] > 0.9 and fit.history[-1]["val_accuracy"] > 0.9
    assert fit.history[-1]["loss"] < fit.history[0]["loss"]
    held_out = [t for t, _ in synthetic(1)]
    reward = trex.StateReward(fit.net, spaces.Discrete(1))
    corr = trex.return_correlation(reward, held_out)
    assert corr["pearson"] > 0.9 and corr["spearman"] > 0.9
    returns = trex.predicted_returns(reward, held_out[:2])
    t = held_out[0]
    with torch.no_grad():
        assert returns.shape == (2,) and returns[0] == pytest.approx(float(fit.net(t.obs[1:]).sum()), rel=1e-5)


def test_same_seed_same_reward_and_an_ensemble():
    a = trex.fit_reward(synthetic(0), trex.Config(**SMALL, seed=3))
    b = trex.fit_reward(synthetic(0), trex.Config(**SMALL, seed=3))
    c = trex.fit_reward(synthetic(0), trex.Config(**SMALL, seed=4))
    x = np.linspace(-2, 4, 9)[:, None]
    with torch.no_grad():
        assert torch.equal(a.net(x), b.net(x)) and not torch.equal(a.net(x), c.net(x))
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    e = trex.fit_reward(synthetic(0), trex.Config(**{**SMALL, "epochs": 5}, ensemble_size=3))
    with torch.no_grad():
        torch.testing.assert_close(e.net(x), e.net.members(e.net.encode(x)).mean(dim=0))
    assert len(e.net.nets) == 3 and e.history[-1]["accuracy"] > 0.85


def test_snippets_longer_than_every_trajectory_are_clipped():
    fit = trex.fit_reward(synthetic(0, steps=8), trex.Config(**{**SMALL, "snippet_min": 50, "snippet_max": 80}))
    assert fit.history[-1]["accuracy"] > 0.8


def test_read_ranked_accepts_pairs_and_mappings_and_says_what_it_read():
    data = synthetic(0, n_per_rank=2, n_ranks=3)
    by_pairs = trex.read_ranked(data[::-1])
    mapping = {2: [t for t, r in data if r == 2], 0: [t for t, r in data if r == 0], 1: data[2][0]}
    by_map = trex.read_ranked(mapping)
    assert by_pairs.ranks.tolist() == [0, 0, 1, 1, 2, 2]
    assert by_map.ranks.tolist() == [0, 0, 1, 2, 2]
    assert by_pairs.summary == "ranks read: 0 (2 trajectories), 1 (2), 2 (2)"
    assert by_map.summary == "ranks read: 0 (2 trajectories), 1 (1), 2 (2)"
    assert trex.read_ranked({0.5: data[0][0], -1: data[1][0]}).summary == "ranks read: -1 (1 trajectories), 0.5 (1)"


def test_ranked_files_round_trip(tmp_path):
    data = synthetic(0, n_per_rank=2, n_ranks=3)
    trex.save_ranked(tmp_path / "ranked", data)
    assert sorted(p.name for p in (tmp_path / "ranked").iterdir()) == ["rank_0", "rank_1", "rank_2"]
    loaded = trex.load_ranked(tmp_path / "ranked")
    assert loaded.ranks.tolist() == [0, 0, 1, 1, 2, 2]
    assert all(a == b for a, b in zip(loaded.trajectories, trex.read_ranked(data).trajectories))
    save_trajectories(tmp_path / "all.npz", [t for t, _ in data])
    from_file = trex.load_ranked(tmp_path / "all.npz", ranks=[r for _, r in data])
    assert from_file.summary == loaded.summary
    with pytest.raises(ValidationError, match="no 'ranks' array"):
        trex.load_ranked(tmp_path / "all.npz")
    with pytest.raises(ValidationError, match="5 values for 6 trajectories"):
        trex.load_ranked(tmp_path / "all.npz", ranks=[0, 1, 2, 3, 4])
    with pytest.raises(ValidationError, match="no rank_<number> folders"):
        trex.load_ranked(tmp_path / "ranked" / "rank_0")


def test_bad_input(gym_demos):
    data = synthetic(0, n_per_rank=2, n_ranks=2)
    with pytest.raises(ValidationError, match=r"all 3 trajectories have rank 1 \(ties only\)"):
        trex.read_ranked({1: [t for t, _ in data[:3]]})
    with pytest.raises(ValidationError, match="1 trajectory; T-REX needs at least 2"):
        trex.fit_reward([data[0]], trex.Config(**SMALL))
    with pytest.raises(ValidationError, match=r"data\[0\]: Trajectory; expected a \(Trajectory, rank\) pair"):
        trex.read_ranked([t for t, _ in data])
    with pytest.raises(ValidationError, match="rank=True of trajectory 1"):
        trex.read_ranked([(data[0][0], 0), (data[1][0], True)])
    empty = Trajectory(obs=np.zeros((1, 1)), acts=np.zeros(0, dtype=np.int64))
    with pytest.raises(ValidationError, match="no steps"):
        trex.read_ranked([(empty, 0), (data[1][0], 1)])
    cart = gym_demos("CartPole-v1", 2, 0)
    pend = gym_demos("Pendulum-v1", 2, 0)  # 3-D observations
    with pytest.raises(ValidationError, match=r"observation shape \(3,\); expected \(4,\).*'CartPole-v1'"):
        trex.train("CartPole-v1", [(pend[0], 0), (pend[1], 1)], trex.Config(**SMALL))
    with pytest.raises(ValidationError, match=r"demos.obs: shape \(\d+, 3\); expected \(N, \*\(4,\)\)"):
        drex.train("CartPole-v1", pend, drex.Config(**SMALL))
    with pytest.raises(ValidationError, match="snippet_min=30: larger than snippet_max=20"):
        trex.Config(snippet_min=30, snippet_max=20)
    with pytest.raises(ValidationError, match="noise_levels"):
        drex.Config(noise_levels=(1.0, 1.5))
    with pytest.raises(ValidationError, match="include_demos=False: one rank only"):
        drex.Config(noise_levels=(0.5,), include_demos=False)
    with pytest.raises(ValidationError, match="reward_transform"):
        trex.Config(reward_transform="tanh")
    with pytest.raises(ValidationError, match="expected irlhf.irl.trex.Config"):
        trex.train("CartPole-v1", [(cart[0], 0), (cart[1], 1)], object())
    with pytest.raises(ValidationError, match="gymnasium environment id"):
        trex.train(None, [(cart[0], 0), (cart[1], 1)])


def test_drex_noise_rollouts_are_ranked_by_noise(cartpole_expert):
    assert drex.noise_ranks((0.02, 1.0, 0.5)) == {1.0: 0, 0.5: 1, 0.02: 2}
    ranked = drex.noise_rollouts("CartPole-v1", cartpole_expert, (0.0, 1.0, 0.5), 3, seed=0)
    assert ranked.summary == "ranks read: 0 (3 trajectories), 1 (3), 2 (3)"
    mean_length = {r: np.mean([len(t) for t in ts]) for r, ts in ranked.by_rank().items()}
    assert mean_length[0] < mean_length[1] < mean_length[2] == 500  # noise 1.0 < 0.5 < 0.0 (the expert)
    again = drex.noise_rollouts("CartPole-v1", cartpole_expert, (0.0, 1.0, 0.5), 3, seed=0)
    assert all(a == b for a, b in zip(ranked.trajectories, again.trajectories))


def test_drex_bc_warm_start_starts_ppo_from_its_bc_policy(gym_demos):
    demos = gym_demos("CartPole-v1", 2, 0)
    config = drex.Config(**{**SMALL, "n_pairs": 100, "epochs": 1, "total_timesteps": 256}, noise_levels=(1.0, 0.5),
                         rollouts_per_level=1, bc_epochs=3, bc_warm_start=True, rl_kwargs={"learning_rate": 0.0})
    result = drex.train("CartPole-v1", demos, config)  # lr 0: PPO's actor is still the BC one
    obs = np.concatenate([t.obs[:100] for t in demos])
    np.testing.assert_array_equal(result.policy(obs), result.bc_policy(obs))
    with pytest.raises(ValidationError, match="bc_warm_start=True with algo='sac': expected algo='ppo'"):
        drex.Config(algo="sac", bc_warm_start=True)
    assert drex.Config().bc_warm_start and not drex.Config(algo="sac").bc_warm_start


@pytest.mark.usefixtures("torch_warns_every_time")  # read-only trajectory arrays must not warn
def test_tiny_cartpole_runs_end_to_end(gym_demos):
    demos = gym_demos("CartPole-v1", 2, 0)
    records = []
    config = drex.Config(**{**SMALL, "n_pairs": 200, "epochs": 1, "total_timesteps": 512}, noise_levels=(1.0, 0.5),
                         rollouts_per_level=2, bc_epochs=3, seed=0, reward_transform="sigmoid")
    result = drex.train("CartPole-v1", demos, config, callback=lambda rec, policy: records.append(rec))
    assert records == result.history
    assert [r["phase"] for r in records] == ["reward", "rl", "rl"]  # two 256-step PPO rollouts
    assert result.ranked.summary == "ranks read: 0 (2 trajectories), 1 (2), 2 (2)"  # the demos ranked best
    assert result.model.num_timesteps == 512 and result.bc_policy is not None
    t = demos[0]
    r = result.reward(t.obs[:-1], t.acts, t.obs[1:])
    paid = result.rl_reward(t.obs[:-1], t.acts, t.obs[1:])
    assert r.shape == (len(t),) and r.dtype == np.float64
    np.testing.assert_allclose(paid, 1 / (1 + np.exp(-r)), rtol=1e-5)  # the sigmoid the agent is paid
    assert isinstance(result.reward(t.obs[0], t.acts[0], t.obs[1]), float)
    assert result.policy(t.obs[:3]).shape == (3,)
    only_reward = trex.train("CartPole-v1", result.ranked, trex.Config(**SMALL, reward_transform="standard"))
    assert only_reward.policy is None and only_reward.model is None
    assert [r["phase"] for r in only_reward.history] == ["reward"] * 3
    paid = only_reward.rl_reward(t.obs[:-1], t.acts, t.obs[1:])
    assert abs(np.mean(only_reward.rl_reward(*(np.concatenate(x) for x in zip(
        *[(u.obs[:-1], u.acts, u.obs[1:]) for u in result.ranked.trajectories]))))) < 1e-3  # standardised
