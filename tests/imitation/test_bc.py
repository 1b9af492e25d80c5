"""Behaviour cloning: recovers known linear experts, early stopping, determinism, normalisation, I/O, errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from gymnasium import spaces

from irlhf.core.errors import IrlhfError
from irlhf.data.types import Trajectory, Transitions
from irlhf.imitation import bc
from irlhf.nn.policies import MLPPolicy, Policy, load_policy, save_policy

W = np.array([[1.0, -2.0, 0.5, 0.0], [-1.0, 0.5, 1.5, -1.0], [0.3, 1.0, -1.0, 2.0]])
OBS_SPACE = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
DISCRETE = (OBS_SPACE, spaces.Discrete(3))


def discrete_data(n: int, seed: int, scale: float = 1.0):
    obs = np.random.default_rng(seed).normal(size=(n, 4)) * scale
    return obs.astype(np.float32), np.argmax(obs @ W.T, axis=1)


def transitions(obs, acts) -> Transitions:
    return Transitions(obs=obs, acts=acts, next_obs=obs, dones=np.zeros(len(obs), dtype=bool))


FAST = bc.Config(hidden_sizes=(), lr=0.05, batch_size=128, epochs=60, validation_fraction=0.1, patience=10,
                 entropy_coef=0.0)


@pytest.fixture(scope="module")
def discrete_result():
    obs, acts = discrete_data(2000, seed=0)
    return bc.train(DISCRETE, transitions(obs, acts), FAST)


def test_discrete_recovers_linear_expert(discrete_result):
    res = discrete_result
    assert res.n_train == 1800 and res.n_val == 200
    best = res.history[res.best_epoch - 1]
    assert best["val_accuracy"] >= 0.99
    obs, acts = discrete_data(2000, seed=1)
    assert (res.policy(obs) == acts).mean() >= 0.98
    assert res.policy(obs[0]).shape == ()  # one observation -> one action
    assert set(res.history[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy", "entropy", "seconds"}


def test_trajectories_accepted_and_mlp_default():
    obs, acts = discrete_data(601, seed=2)
    trajs = [Trajectory(obs=obs[:301], acts=acts[:300]), Trajectory(obs=obs[300:], acts=acts[300:600])]
    res = bc.train(DISCRETE, trajs, bc.Config(epochs=3))
    assert res.n_train + res.n_val == 600
    assert len(res.history) == 3


def test_continuous_mse_recovers_affine_expert():
    rng = np.random.default_rng(0)
    A, b = rng.normal(size=(2, 3)), np.array([0.5, -1.0])
    obs = rng.normal(size=(2000, 3)) * np.array([1.0, 10.0, 0.1]) + np.array([0.0, 5.0, -3.0])
    acts = obs @ A.T + b
    act_space = spaces.Box(-100.0, 100.0, shape=(2,), dtype=np.float32)
    cfg = bc.Config(hidden_sizes=(), loss="mse", lr=0.02, batch_size=100, epochs=200, validation_fraction=0.1,
                    patience=20)
    res = bc.train((spaces.Box(-np.inf, np.inf, shape=(3,)), act_space), transitions(obs, acts), cfg)
    lin = res.policy.module.net[0]
    mean, scale = res.policy.module.obs_mean.double().numpy(), res.policy.module.obs_scale.double().numpy()
    A_hat = lin.weight.detach().double().numpy() / scale
    b_hat = lin.bias.detach().double().numpy() - A_hat @ mean
    np.testing.assert_allclose(A_hat, A, atol=1e-2)
    np.testing.assert_allclose(b_hat, b, atol=1e-2)
    assert res.history[res.best_epoch - 1]["val_mse"] < 1e-4
    out = res.policy(obs[:5].astype(np.float32))
    assert out.shape == (5, 2) and out.dtype == np.float32


def test_continuous_gaussian_actions_clipped_and_log_prob():
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(500, 2))
    acts = np.clip(obs[:, :1] * 2.0, -1, 1)
    act_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
    res = bc.train((spaces.Box(-np.inf, np.inf, shape=(2,)), act_space), transitions(obs, acts),
                   bc.Config(hidden_sizes=(32,), epochs=20))
    out = res.policy(np.array([[10.0, 0.0], [-10.0, 0.0]], dtype=np.float32))
    assert np.all(out <= 1.0) and np.all(out >= -1.0)
    m = res.policy.module
    assert m.log_prob(obs[:4], acts[:4]).shape == (4,) and m.entropy(obs[:4]).shape == (4,)
    assert "val_mse" in res.history[-1]


def test_early_stopping_restores_best_epoch():
    # noisy labels + a wide net + large lr: validation loss turns up, training stops early
    obs, acts = discrete_data(300, seed=3)
    acts = np.where(np.random.default_rng(3).random(300) < 0.3, np.random.default_rng(4).integers(0, 3, 300), acts)
    cfg = bc.Config(hidden_sizes=(256, 256), lr=0.01, batch_size=32, epochs=200, patience=5,
                    validation_fraction=0.3, entropy_coef=0.0)
    res = bc.train(DISCRETE, transitions(obs, acts), cfg)
    val = [h["val_loss"] for h in res.history]
    assert len(res.history) < 200 and len(res.history) == res.best_epoch + 5
    assert res.best_epoch == int(np.argmin(val)) + 1
    # the returned weights are the best epoch's: re-evaluating gives its validation loss
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(cfg.seed)).numpy()
    vi = perm[:res.n_val]
    with torch.no_grad():
        loss = -res.policy.module.log_prob(obs[vi], acts[vi]).mean().item()
    assert loss == pytest.approx(min(val), rel=1e-5)
    assert loss < val[-1]


def test_seeded_determinism():
    obs, acts = discrete_data(400, seed=5)
    cfg = bc.Config(hidden_sizes=(16,), epochs=5)
    s1 = bc.train(DISCRETE, transitions(obs, acts), cfg).policy.module.state_dict()
    s2 = bc.train(DISCRETE, transitions(obs, acts), cfg).policy.module.state_dict()
    s3 = bc.train(DISCRETE, transitions(obs, acts), dataclasses.replace(cfg, seed=1)).policy.module.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)


def test_obs_normalisation_applied_when_acting():
    obs, acts = discrete_data(2000, seed=0, scale=1000.0)  # same labels, features 1000x larger
    res = bc.train(DISCRETE, transitions(obs, acts), FAST)
    test_obs, test_acts = discrete_data(2000, seed=1, scale=1000.0)
    assert (res.policy(test_obs) == test_acts).mean() >= 0.98
    assert float(res.policy.module.obs_scale.mean()) > 100.0


def test_save_load_round_trip(tmp_path, discrete_result):
    path = tmp_path / "bc" / "policy.safetensors"
    save_policy(path, discrete_result.policy)
    loaded = load_policy(path)
    obs, _ = discrete_data(500, seed=7)
    np.testing.assert_array_equal(loaded(obs), discrete_result.policy(obs))
    assert loaded.action_space == discrete_result.policy.action_space
    assert [p.name for p in path.parent.iterdir()] == ["policy.safetensors"]  # no temp files left


def test_save_load_continuous_and_discrete_obs(tmp_path):
    act_space = spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 2.0], np.float32), dtype=np.float32)
    module = MLPPolicy(spaces.Discrete(5, start=1), act_space, (8,), "tanh", seed=0)
    policy = Policy(module)
    save_policy(tmp_path / "p.safetensors", policy)
    loaded = load_policy(tmp_path / "p.safetensors")
    obs = np.array([1, 2, 3, 4, 5])
    np.testing.assert_array_equal(loaded(obs), policy(obs))
    assert loaded.action_space == act_space and loaded.observation_space == spaces.Discrete(5, start=1)


def test_cartpole_spaces_by_id():
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(300, 4)).astype(np.float32)
    acts = (obs[:, 2] + obs[:, 3] > 0).astype(np.int64)
    res = bc.train("CartPole-v1", transitions(obs, acts), bc.Config(epochs=30, hidden_sizes=(), lr=0.05,
                                                                          validation_fraction=0.1))
    assert isinstance(res.policy.action_space, spaces.Discrete)
    assert res.history[res.best_epoch - 1]["val_accuracy"] >= 0.9


class _Loose:
    """A Transitions-like object that skips validation (as a user's own container might)."""

    def __init__(self, obs, acts):
        self.obs, self.acts = obs, acts


@pytest.mark.parametrize("env, demos, match", [
    (DISCRETE, _Loose(np.zeros((10, 3)), np.zeros(10, dtype=int)), "obs: shape"),
    ("CartPole-v1", _Loose(np.zeros((10, 5)), np.zeros(10, dtype=int)), "obs: shape"),
    (DISCRETE, _Loose(np.where(np.arange(40).reshape(10, 4) == 13, np.nan, 0.0), np.zeros(10, dtype=int)),
     "non-finite value in sample 3"),
    (DISCRETE, _Loose(np.zeros((10, 4)), np.array([0, 1, 2, 3, 0, 0, 0, 0, 0, 0])), r"acts\[3\]=.*\[0, 2\]"),
    (DISCRETE, _Loose(np.zeros((10, 4)), np.full(10, -1)), r"acts\[0\]"),
    (DISCRETE, _Loose(np.zeros((10, 4)), np.full(10, 0.5)), "expected an integer"),
    (DISCRETE, [], "empty"),
    (DISCRETE, _Loose(np.zeros((0, 4)), np.zeros(0, dtype=int)), "at least one sample"),
    (DISCRETE, _Loose(np.zeros((10, 4)), np.zeros(9, dtype=int)), "equal counts"),
    ((OBS_SPACE, spaces.Box(-1, 1, shape=(2,))), _Loose(np.zeros((10, 4)), np.zeros((10, 3))), "acts: shape"),
    ("NoSuchEnv-v0", _Loose(np.zeros((10, 4)), np.zeros(10, dtype=int)), "NoSuchEnv-v0"),
    ((OBS_SPACE, spaces.MultiBinary(3)), _Loose(np.zeros((10, 4)), np.zeros(10, dtype=int)), "action_space"),
    (42, _Loose(np.zeros((10, 4)), np.zeros(10, dtype=int)), "env="),
])
def test_bad_input_raises(env, demos, match):
    with pytest.raises(IrlhfError, match=match):
        bc.train(env, demos, bc.Config(epochs=1))


@pytest.mark.parametrize("field, value", [
    ("lr", 0.0), ("batch_size", 0), ("epochs", 0), ("validation_fraction", 1.0), ("patience", 0),
    ("entropy_coef", -1.0), ("l2", -0.1), ("loss", "huber"), ("activation", "swish"), ("hidden_sizes", (0,)),
    ("normalize_obs", 1), ("seed", -1),
])
def test_bad_config_raises(field, value):
    with pytest.raises(IrlhfError, match=field):
        bc.Config(**{field: value})


def test_default_holds_nothing_out_and_runs_all_epochs():
    assert (bc.Config().validation_fraction, bc.Config().epochs) == (0.0, 200)
    obs, acts = discrete_data(100, seed=8)
    res = bc.train(DISCRETE, transitions(obs, acts), bc.Config(epochs=4, hidden_sizes=()))
    assert res.n_val == 0 and len(res.history) == 4 and res.best_epoch == 4
    assert res.history[-1]["val_loss"] is None


def test_config_json_round_trip():
    cfg = bc.Config(hidden_sizes=(8, 8), patience=None)
    assert bc.Config.from_dict(cfg.to_dict()) == cfg


def test_callback_sees_each_epoch_and_changes_nothing():
    obs, acts = discrete_data(400, seed=5)
    cfg = bc.Config(hidden_sizes=(16,), epochs=5, validation_fraction=0.0, patience=None)  # the last epoch is kept
    plain = bc.train(DISCRETE, transitions(obs, acts), cfg)
    seen = []
    watched = bc.train(DISCRETE, transitions(obs, acts), cfg,
                       callback=lambda record, policy: seen.append((record["epoch"], policy(obs[:50]))))
    assert [epoch for epoch, _ in seen] == [1, 2, 3, 4, 5]
    assert [r["train_loss"] for r in watched.history] == [r["train_loss"] for r in plain.history]
    np.testing.assert_array_equal(seen[-1][1], watched.policy(obs[:50]))
    stopped = bc.train(DISCRETE, transitions(obs, acts), cfg, callback=lambda record, policy: record["epoch"] == 2)
    assert len(stopped.history) == 2
    assert stopped.history[1]["train_loss"] == plain.history[1]["train_loss"]
