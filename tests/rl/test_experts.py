"""irlhf.rl.experts: the disk cache of SB3 experts, and make_expert's new kinds."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from irlhf.core.errors import ValidationError
from irlhf.envs import experts
from irlhf.rl.experts import make_expert

TINY = dict(timesteps=256, eval_episodes=2)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IRLHF_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def obs():
    return np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("IRLHF_CACHE_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert experts.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("IRLHF_CACHE_DIR")
    assert experts.cache_dir() == tmp_path / "x" / "irlhf"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert experts.cache_dir() == tmp_path / "home" / ".cache" / "irlhf"


def test_train_round_trip_and_reuse(cache, obs):
    policy, info = experts.train_expert("CartPole-v1", "ppo", seed=0, **TINY)
    zip_path = cache / "experts" / "CartPole-v1" / "ppo-seed0.zip"
    sidecar = zip_path.with_suffix(".json")
    assert info["path"] == str(zip_path) and zip_path.is_file() and sidecar.is_file() and not info["cached"]
    assert not [p for p in zip_path.parent.iterdir() if p.name.endswith(".tmp")]
    data = json.loads(sidecar.read_text())
    assert data["env_id"] == "CartPole-v1" and data["algo"] == "ppo" and data["seed"] == 0
    assert data["timesteps"] == 256 and data["hyperparameters"]["n_envs"] == 8
    assert data["eval_episodes"] == 2 and np.isfinite(data["eval_return_mean"])
    assert {"stable_baselines3", "gymnasium"} <= set(data["versions"]) and data["created"]
    assert data["training_episodes"] and {"timestep", "return", "length"} == set(data["training_episodes"][0])

    loaded = experts.load_expert("CartPole-v1", "ppo", seed=0)
    np.testing.assert_array_equal(loaded(obs), policy(obs))
    np.testing.assert_array_equal(make_expert("CartPole-v1", seed=0, kind="ppo")(obs), policy(obs))
    np.testing.assert_array_equal(make_expert("CartPole-v1", kind=str(zip_path))(obs), policy(obs))

    mtime = os.stat(sidecar).st_mtime_ns
    again, info2 = experts.train_expert("CartPole-v1", "ppo", seed=0, **TINY)
    assert info2["cached"] and os.stat(sidecar).st_mtime_ns == mtime
    np.testing.assert_array_equal(again(obs), policy(obs))
    _, info3 = experts.train_expert("CartPole-v1", "ppo", seed=0, timesteps=512, eval_episodes=2)
    assert info3["cached"] and "512" in info3["note"]

    _, forced = experts.train_expert("CartPole-v1", "ppo", seed=0, force=True, timesteps=512, eval_episodes=2)
    assert not forced["cached"] and json.loads(sidecar.read_text())["timesteps"] == 512

    listed = experts.list_experts()
    assert [(d["env_id"], d["algo"], d["seed"]) for d in listed] == [("CartPole-v1", "ppo", 0)]
    assert listed[0]["path"] == str(zip_path)


def test_zip_without_sidecar_loads_by_guessing_the_algo(cache, tmp_path):
    policy, info = experts.train_expert("CartPole-v1", "dqn", seed=1, timesteps=64, eval_episodes=1)
    copy = tmp_path / "model.zip"
    copy.write_bytes(open(info["path"], "rb").read())
    loaded = make_expert("CartPole-v1", kind=str(copy))
    assert loaded.algo == "dqn"
    obs = np.zeros((3, 4), dtype=np.float32)
    np.testing.assert_array_equal(loaded(obs), policy(obs))
    with pytest.raises(ValidationError, match="do not fit"):
        make_expert("Acrobot-v1", kind=str(copy))


def test_safetensors_kind(tmp_path):
    from irlhf.envs.gym import make_env
    from irlhf.nn.policies import MLPPolicy, Policy, save_policy

    env = make_env("CartPole-v1")
    policy = Policy(MLPPolicy(env.observation_space, env.action_space, (8,), seed=0))
    save_policy(tmp_path / "p.safetensors", policy)
    obs = np.ones((2, 4), dtype=np.float32)
    np.testing.assert_array_equal(make_expert("CartPole-v1", kind=str(tmp_path / "p.safetensors"))(obs), policy(obs))
    with pytest.raises(ValidationError, match="do not fit"):
        make_expert("Pendulum-v1", kind=str(tmp_path / "p.safetensors"))


def test_missing_expert_names_the_train_command():
    with pytest.raises(ValidationError) as err:
        experts.load_expert("Acrobot-v1", "dqn", seed=3)
    assert "irlhf expert train --env Acrobot-v1 --algo dqn --seed 3" in str(err.value)
    with pytest.raises(ValidationError, match="irlhf expert train --env CartPole-v1 --algo ppo --seed 2"):
        make_expert("CartPole-v1", seed=2, kind="ppo")


def test_corrupt_zip_names_the_path(cache):
    path = experts.expert_path("CartPole-v1", "ppo", 0)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a zip")
    with pytest.raises(ValidationError, match="ppo-seed0.zip"):
        experts.load_expert("CartPole-v1", "ppo", 0)
    with pytest.raises(ValidationError, match="no such file"):
        make_expert("CartPole-v1", kind=str(path.parent / "missing.zip"))


def test_bad_arguments():
    with pytest.raises(ValidationError, match="unknown algorithm"):
        experts.train_expert("CartPole-v1", "a2c")
    with pytest.raises(ValidationError, match="Discrete"):
        experts.train_expert("Pendulum-v1", "dqn", timesteps=10)
    with pytest.raises(ValidationError, match="timesteps"):
        experts.train_expert("CartPole-v1", "ppo", timesteps=0)
    with pytest.raises(ValidationError, match="unknown expert kind"):
        make_expert("CartPole-v1", kind="a2c")
    with pytest.raises(ValidationError, match="no expert for this environment"):
        make_expert("Foo-v0")


def test_interrupted_training_resumes_from_the_newest_checkpoint(cache, monkeypatch):
    import irlhf.rl.experts as rl_experts

    real_save, real_load, saved, loaded = rl_experts._save_checkpoint, rl_experts._load_checkpoint, [], []

    def save_then_stop(root, model, state):
        real_save(root, model, state)
        saved.append(state)
        if len(saved) == 2:
            raise KeyboardInterrupt  # the machine stops mid-run

    run = dict(timesteps=400, checkpoint_every=100, eval_episodes=1, train_freq=50)  # rollouts of 50 steps
    monkeypatch.setattr(rl_experts, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        rl_experts.train_expert("CartPole-v1", "dqn", seed=0, **run)
    root = rl_experts.checkpoint_dir("CartPole-v1", "dqn", 0)
    assert [p.name for p in root.iterdir()] == ["step-000000000200"]  # the older checkpoint removed
    assert sorted(p.name for p in (root / "step-000000000200").iterdir()) == [
        "model.zip", "replay_buffer.pkl", "state.json"]
    assert not rl_experts.expert_path("CartPole-v1", "dqn", 0).exists()
    state = saved[-1]
    assert state["num_timesteps"] == 200 and state["train_seconds"] > 0
    (listed,) = rl_experts.list_checkpoints()
    assert (listed["num_timesteps"], listed["target_timesteps"]) == (200, 400)
    assert listed["resume"] == "irlhf expert train --env CartPole-v1 --algo dqn --seed 0 --timesteps 400"

    with pytest.raises(ValidationError, match="other hyperparameters"):
        rl_experts.train_expert("CartPole-v1", "dqn", seed=0, learning_rate=1e-3, **run)

    def load_and_record(*args):
        model = real_load(*args)
        loaded.append((model.num_timesteps, model.replay_buffer.size()))
        return model

    monkeypatch.setattr(rl_experts, "_save_checkpoint", real_save)
    monkeypatch.setattr(rl_experts, "_load_checkpoint", load_and_record)
    _, info = rl_experts.train_expert("CartPole-v1", "dqn", seed=0, **run)
    assert loaded == [(200, 200)]  # steps and replay buffer restored
    assert info["resumed_from"] == 200 and info["trained_timesteps"] == 400 and not info["cached"]
    assert info["training_episodes"][:len(state["training_episodes"])] == state["training_episodes"]
    assert info["train_seconds"] > state["train_seconds"]
    assert not root.exists()  # checkpoints go once the expert is saved

    monkeypatch.setattr(rl_experts, "_save_checkpoint", save_then_stop)
    saved.clear()
    with pytest.raises(KeyboardInterrupt):
        rl_experts.train_expert("CartPole-v1", "dqn", seed=0, force=True, **run)
    assert root.is_dir()  # force bypasses the finished cache, and this run checkpointed again
    _, fresh = rl_experts.train_expert("CartPole-v1", "dqn", seed=0, force=True, resume=False,
                                       timesteps=100, checkpoint_every=0, eval_episodes=1,
                                       train_freq=50)
    assert fresh["resumed_from"] is None and fresh["trained_timesteps"] == 100 and not root.exists()
    with pytest.raises(ValidationError, match="checkpoint_every"):
        rl_experts.train_expert("CartPole-v1", "dqn", checkpoint_every=-1)


def test_shipped_hopper_expert_loads_and_hops():
    """benchmarks/experts/Hopper-v5-sac-seed0.zip (the Hopper benchmark's expert) loads through its sidecar and
    still hops: 3128.5 +- 5.3 over 10 episodes when trained (docs/RESULTS.md)."""
    pytest.importorskip("mujoco")
    pytest.importorskip("imageio")  # gymnasium's MuJoCo envs import it
    from pathlib import Path

    from irlhf.envs.gym import evaluate

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "experts" / "Hopper-v5-sac-seed0.zip"
    policy = make_expert("Hopper-v5", kind=str(path))
    assert policy.algo == "sac"
    mean, _ = evaluate("Hopper-v5", policy, 1, seed=10_000)
    assert mean > 3000
