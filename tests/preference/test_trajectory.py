"""Trajectory preferences (Christiano et al. 2017): segments, ensemble reward model, queries, schedule, loop."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from irlhf.core.errors import ValidationError
from irlhf.data.types import Trajectory
from irlhf.preference import trajectory as T
from irlhf.preference.labellers import make_labeller


def episode(n, terminal, seed=0, dim=2):
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, size=(n + 1, dim)).astype(np.float32)
    return Trajectory(obs, rng.integers(0, 2, n), obs[:-1, 0].astype(np.float64), terminal=terminal)


def test_segments_shapes_padding_and_determinism():
    eps = [episode(3, True, 0), episode(40, False, 1)]
    s = T.sample_segments(eps, 64, 10, seed=5)
    assert s.obs.shape == (64, 10, 2) and s.acts.shape == (64, 10) and s.true_rews.shape == (64, 10)
    assert s.mask.shape == (64, 10) and s.mask[:, 0].all()
    np.testing.assert_array_equal(s.obs, T.sample_segments(eps, 64, 10, seed=5).obs)
    assert not np.array_equal(s.obs, T.sample_segments(eps, 64, 10, seed=6).obs)
    padded = ~s.mask.all(axis=1)
    assert padded.any()  # the short terminated episode is padded ...
    assert np.all(s.true_rews[~s.mask] == 0)
    assert np.all(s.mask.sum(axis=1)[padded] <= 3)  # ... the truncated one never is
    with pytest.raises(ValidationError, match="segment_length=50"):
        T.sample_segments([episode(40, False)], 4, 50)


def linear_model(weight, ensemble=1):
    model = T.RewardModel(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(2), ensemble, hidden_sizes=())
    with torch.no_grad():
        for net in model.nets:
            net[0].weight.copy_(torch.tensor([weight]))
            net[0].bias.zero_()
    return model


def test_loss_on_hand_computed_batch_with_ties():
    model = linear_model([1.0, 0.0, 0.0, 0.0])  # r(s, a) = s[0]
    obs = np.zeros((2, 2, 2), dtype=np.float32)
    obs[0, :, 0] = [1.0, 1.0]  # R_a = 2
    obs[1, :, 0] = [1.0, 5.0]  # R_b = 1: the second step is padding, masked out
    mask = np.array([[True, True], [True, False]])
    segs = T.Segments(obs, np.zeros((2, 2), dtype=np.int64), np.zeros((2, 2)), mask)
    returns = model.segment_returns(segs)[0]
    np.testing.assert_allclose(returns.numpy(), [2.0, 1.0])
    ra, rb = returns[:1].repeat(3), returns[1:].repeat(3)
    mu = torch.tensor([1.0, 0.5, 0.0])
    sig = 1 / (1 + math.exp(-1.0))
    expected = [-math.log(sig), -0.5 * math.log(sig) - 0.5 * math.log(1 - sig), -math.log(1 - sig)]
    for k in range(3):
        assert float(T.segment_loss(ra[k:k + 1], rb[k:k + 1], mu[k:k + 1])) == pytest.approx(expected[k], rel=1e-6)
    assert float(T.segment_loss(ra, rb, mu)) == pytest.approx(np.mean(expected), rel=1e-6)


def test_bootstrap_differs_per_member_but_is_seeded():
    a = T.bootstrap_indices(50, 3, seed=0)
    b = T.bootstrap_indices(50, 3, seed=0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])
    assert all(len(x) == 50 and x.min() >= 0 and x.max() < 50 for x in a)


def test_disagreement_picks_max_variance_pairs():
    # 3 members x 5 pairs; pairs 3 and 1 have members disagreeing most
    ra = torch.tensor([[0.0, 5.0, 1.0, -4.0, 2.0], [0.0, -5.0, 1.0, 4.0, 2.0], [0.0, 0.0, 1.2, 4.0, 2.0]])
    rb = torch.zeros(3, 5)
    picked = set(T.select_disagreement(ra, rb, 2).tolist())
    assert picked == {1, 3}
    assert sorted(T.select_random(5, 3, seed=0).tolist()) == sorted(T.select_random(5, 3, seed=0).tolist())


def test_information_is_the_mutual_information_and_prefers_confident_disagreement():
    """Pair 0: every member says 50/50 (no information in the answer); pair 1: two members sure of opposite
    answers (log 2 nats); pair 2: all sure and agreeing (none); pair 3: mild disagreement."""
    ra = torch.tensor([[0.0, 8.0, 8.0, 1.0], [0.0, -8.0, 8.0, -1.0]])
    rb = torch.zeros(2, 4)
    assert T.select_information(ra, rb, 2).tolist() == [1, 3]
    p = torch.sigmoid(ra).double()
    h = lambda q: -(q * q.log() + (1 - q) * (1 - q).log())  # noqa: E731  binary entropy, nats
    mi = h(p.mean(0)) - h(p).mean(0)
    assert mi[0] == 0 and abs(float(mi[1]) - np.log(2)) < 5e-3 and float(mi[2]) < 5e-3  # members at sigma(8)
    assert T.select_information(ra, rb, 2).tolist() == np.argsort(-mi.numpy(), kind="stable")[:2].tolist()
    # disagreement (variance) ranks the same confident split first too, but cannot tell pair 0 from pair 2
    assert T.select_disagreement(ra, rb, 1).tolist() == [1]


def test_label_schedule_sums_to_budget_and_decays():
    counts = T.label_schedule(200, np.arange(10) * 5000, initial_fraction=0.25, tau=5000)
    assert counts.sum() == 200 and counts[0] >= 50
    assert np.all(np.diff(counts[1:]) <= 0)
    for n in (1, 7, 33):
        assert T.label_schedule(n, [0, 10, 20], 0.5, 10).sum() == n


def test_reward_model_learns_true_reward_on_toy_problem():
    eps = [episode(30, False, seed=k) for k in range(40)]  # true reward = obs[0]
    rng = np.random.default_rng(0)
    segs = T.sample_segments(eps, 600, 5, seed=rng)
    a, b = segs[np.arange(300)], segs[np.arange(300, 600)]
    mu = make_labeller("oracle").label_batch(a, b)
    data = T.Preferences(a, b, mu, np.zeros(300, dtype=np.int64))
    model = T.RewardModel(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(2), 3, (32, 32), seed=0)
    model.set_input_stats(segs)
    fit = T.fit_reward(model, data, T.Config(reward_epochs=40, progress=False), seed=0)
    assert fit["accuracy"] > 0.9
    test = episode(500, False, seed=99)
    corr = np.corrcoef(model(test.obs[:-1], test.acts), test.obs[:-1, 0])[0, 1]
    assert corr > 0.9


@pytest.mark.parametrize("mode", ["scale", "standard", "none"])
def test_reward_normalization_modes(mode):
    model = T.RewardModel(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(2), 2, (8,), seed=3)
    obs, acts = np.random.default_rng(1).normal(size=(200, 2)), np.arange(200) % 2
    with torch.no_grad():  # give the raw reward a large offset: 90 +- small, as a CartPole model learns
        for member in model.nets:
            member[-1].bias += 90.0
    raw = model(obs, acts)
    model.set_normalization(obs, acts, mode)
    r = model(obs, acts)
    if mode == "scale":  # zero stays zero, the root mean square becomes 1 (not the std: that would give ~90)
        np.testing.assert_allclose(np.sqrt(np.mean(r.astype(np.float64) ** 2)), 1.0, rtol=1e-5)
        np.testing.assert_allclose(r * np.sqrt(np.mean(raw.astype(np.float64) ** 2)), raw, rtol=1e-4)
    elif mode == "standard":
        assert abs(r.mean()) < 1e-4 and abs(r.std(ddof=1) - 1) < 1e-4
    else:
        np.testing.assert_array_equal(r, raw)


def test_save_load_reward_model(tmp_path):
    model = T.RewardModel(gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(2), 2, (8,), seed=1)
    model.set_normalization(np.zeros((4, 2)), np.array([0, 1, 0, 1]), "standard")
    T.save_reward_model(tmp_path / "r.safetensors", model)
    loaded = T.load_reward_model(tmp_path / "r.safetensors")
    obs, acts = np.random.default_rng(0).normal(size=(10, 2)), np.arange(10) % 2
    np.testing.assert_allclose(loaded(obs, acts), model(obs, acts), rtol=1e-6)
    with pytest.raises(ValidationError, match="no such file"):
        T.load_reward_model(tmp_path / "missing.safetensors")


def test_full_loop_tiny_budget():
    config = T.Config(total_timesteps=1200, n_labels=12, rounds=3, reward_epochs=2, random_rollout_steps=200,
                      progress=False, rl_kwargs=dict(n_envs=2, n_steps=64, batch_size=64, n_epochs=1))
    result = T.train("CartPole-v1", make_labeller("oracle", seed=0), config)
    h = result.history
    assert [r["round"] for r in h] == [0, 1, 2, 3]
    keys = {"round", "timesteps", "queries", "labels", "new_labels", "heldout_accuracy", "train_loss",
            "train_accuracy", "reward_correlation", "mean_true_return"}
    assert keys <= set(h[1])
    assert h[-1]["queries"] == 12 and h[-1]["timesteps"] >= 1200 and len(result.dataset) == h[-1]["labels"]
    obs = np.zeros((4, 4), dtype=np.float32)
    assert result.policy(obs).shape == (4,) and result.reward(obs, np.zeros(4, dtype=np.int64)).shape == (4,)


def test_bad_input():
    oracle = make_labeller("oracle")
    with pytest.raises(ValidationError, match="n_labels=0"):
        T.Config(n_labels=0)
    with pytest.raises(ValidationError, match="selection"):
        T.Config(selection="max")
    with pytest.raises(ValidationError, match="segment_length=250"):
        T.train("Pendulum-v1", oracle, T.Config(segment_length=250, algo="sac", progress=False))
    with pytest.raises(ValidationError, match="observation space"):
        T.train("Blackjack-v1", oracle, T.Config(progress=False))
    with pytest.raises(ValidationError, match="sac"):
        T.train("CartPole-v1", oracle, T.Config(algo="sac", progress=False))
    with pytest.raises(ValidationError, match="labeller"):
        T.train("CartPole-v1", object(), T.Config(progress=False))


def test_auto_normalization_scales_once_an_episode_end_is_labelled():
    def prefs(mask_a):
        seg = lambda mask: T.Segments(np.zeros((1, 3, 2)), np.zeros((1, 3), dtype=np.int64), np.zeros((1, 3)),
                                      np.array([mask]))
        return T.Preferences(seg(mask_a), seg([True, True, True]), np.array([1.0]), np.array([0]))

    assert T._normalization("auto", prefs([True, True, True])) == "standard"  # no ends: the offset is arbitrary
    assert T._normalization("auto", prefs([True, False, False])) == "scale"  # zero = "over" must stay zero
    assert T._normalization("none", prefs([True, True, True])) == "none"
