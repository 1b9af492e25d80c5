"""TAMER: delay-model credit, the linear update, greedy actions, the synthetic trainer, Config validation,
learning MountainCar-v0 from synthetic feedback, and the ``irlhf tamer`` job."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from irlhf import cli
from irlhf.core.errors import ValidationError
from irlhf.preference import tamer


# -- credit assignment -------------------------------------------------------------------------------
def test_uniform_delay_credit_by_hand():
    # steps of 1 s starting at 0..5; feedback at 5.5 s; delays uniform on [0.2, 4]
    starts = np.arange(6.0)
    ends = np.append(starts[1:], 5.5)
    c = tamer.credit(starts, ends, 5.5, model="uniform", delay_min=0.2, delay_max=4.0)
    # delays landing in step k: [5.5 - end_k, 5.5 - start_k] n [0.2, 4]
    by_hand = np.array([0.0, 0.5, 1.0, 1.0, 1.0, 0.3]) / 3.8
    np.testing.assert_allclose(c, by_hand)
    assert c.sum() == pytest.approx(1.0)


def test_uniform_credit_is_zero_outside_the_delay_support():
    starts = np.arange(40) * 0.25
    ends = np.append(starts[1:], 10.0)
    c = tamer.credit(starts, ends, 10.0)
    delays_end, delays_start = 10.0 - ends, 10.0 - starts
    outside = (delays_start <= 0.2) | (delays_end >= 4.0)
    assert np.all(c[outside] == 0) and np.all(c[~outside] > 0) and c.sum() == pytest.approx(1.0)
    # too early for any step (less than delay_min after the first step started): nothing credited
    assert np.all(tamer.credit(np.array([0.0]), np.array([0.1]), 0.1) == 0)


def test_window_credit_is_equal_over_the_last_steps():
    starts = np.arange(6.0)
    c = tamer.credit(starts, np.append(starts[1:], 4.5), 4.5, model="window", window=3)
    np.testing.assert_allclose(c, [0, 0, 1 / 3, 1 / 3, 1 / 3, 0])  # step 5 starts after the feedback


# -- the learner ------------------------------------------------------------------------------------
def test_one_update_equals_the_formula():
    space = gym.spaces.Discrete(4)
    config = tamer.Config(lr=0.3, step_seconds=1.0)
    agent = tamer.TamerAgent(space, 2, config)
    agent.weights[:] = [[0.1, 0.2, 0.3, 0.4], [-0.5, 0.0, 0.5, 1.0]]
    w0 = agent.weights.copy()
    states, actions = [0, 2, 3, 1], [1, 0, 1, 1]
    for k, (s, a) in enumerate(zip(states, actions)):
        agent.observe(k, float(k), np.int64(s), a)
    t_f, h = 3.6, -1.0
    c = tamer.credit(np.arange(4.0), np.array([1.0, 2.0, 3.0, 3.6]), t_f)
    expected = w0.copy()
    for k, (s, a) in enumerate(zip(states, actions)):
        phi = np.eye(4)[s]
        expected[a] += 0.3 * c[k] * (h - w0[a] @ phi) * phi
    assert agent.feedback(t_f, h) == int((c > 0).sum()) == 4
    np.testing.assert_allclose(agent.weights, expected)


def test_greedy_action_selection():
    agent = tamer.TamerAgent(gym.spaces.Discrete(3), 3, tamer.Config())
    agent.weights[:] = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, -1.0], [0.5, 1.0, 3.0]])  # (actions, states)
    np.testing.assert_array_equal(agent.policy(np.array([0, 1, 2])), [0, 1, 2])
    assert [agent.act(np.int64(s)) for s in range(3)] == [0, 1, 2]
    np.testing.assert_allclose(agent.H(np.array([1])), [[0.0, 2.0, 1.0]])


@pytest.mark.parametrize("features", ["rbf", "tiles"])
def test_box_features_have_norm_at_most_one(features):
    config = tamer.Config(features=features)
    phi = tamer.Features(gym.spaces.Box(np.array([-1.2, -0.07], dtype=np.float32), np.array([0.6, 0.07], dtype=np.float32)), config)
    rng = np.random.default_rng(0)
    x = phi(np.stack([rng.uniform(-1.3, 0.7, 50), rng.uniform(-0.08, 0.08, 50)], axis=1))
    norms = np.linalg.norm(x, axis=1)
    assert x.shape == (50, phi.n_features) and np.all(norms <= 1 + 1e-12) and np.all(norms > 0.2)
    if features == "tiles":
        assert np.all((x > 0).sum(1) == config.n_tilings)


# -- the synthetic trainer ----------------------------------------------------------------------------
def _q(obs):  # state 0: action 0 best, 1 within tol of it, 2 bad; state 1: all alike
    obs = np.asarray(obs).reshape(-1)
    return np.where(obs[:, None] == 0, np.array([0.0, -0.3, -5.0]), np.array([0.0, -0.1, -0.2]))


def _events(trainer, obs, action, n=200):
    for k in range(n):
        trainer.watch(float(k), np.int64(obs), action)
    return trainer.poll(np.inf)


def test_synthetic_trainer_sign_probability_noise_and_delay():
    t = tamer.SyntheticTrainer(_q, p=1.0, tol=0.5)
    assert [t.rate(np.int64(0), a) for a in range(3)] == [1.0, 1.0, -1.0]
    assert [t.rate(np.int64(1), a) for a in range(3)] == [0.0, 0.0, 0.0]
    good = _events(tamer.SyntheticTrainer(_q, p=1.0, delay_min=0.3, delay_max=1.0), 0, 0)
    assert len(good) == 200 and {e.h for e in good} == {1.0}
    delays = np.array([e.t for e in good]) - np.arange(200)
    assert np.all((delays >= 0.3) & (delays <= 1.0))
    assert _events(tamer.SyntheticTrainer(_q, p=1.0), 1, 2) == []      # no opinion: no event
    assert {e.h for e in _events(tamer.SyntheticTrainer(_q, p=1.0, noise=1.0), 0, 2)} == {1.0}  # all flipped
    assert _events(tamer.SyntheticTrainer(_q, p=0.0), 0, 2) == []
    half = _events(tamer.SyntheticTrainer(_q, p=0.5, seed=1), 0, 2, n=2000)
    assert 900 < len(half) < 1100
    noisy = _events(tamer.SyntheticTrainer(_q, p=1.0, noise=0.2, seed=1), 0, 2, n=2000)
    assert 300 < sum(e.h > 0 for e in noisy) < 500


def test_synthetic_trainer_is_seeded_and_polls_in_time_order():
    a = _events(tamer.SyntheticTrainer(_q, p=0.5, noise=0.3, seed=7), 0, 1)
    b = _events(tamer.SyntheticTrainer(_q, p=0.5, noise=0.3, seed=7), 0, 1)
    c = _events(tamer.SyntheticTrainer(_q, p=0.5, noise=0.3, seed=8), 0, 1)
    assert a == b and a != c
    t = tamer.SyntheticTrainer(_q, p=1.0, delay_min=0.5, delay_max=0.5)
    t.watch(0.0, np.int64(0), 0)
    t.watch(1.0, np.int64(0), 2)
    assert t.poll(0.4) == [] and t.poll(1.0) == [tamer.Feedback(0.5, 1.0)]
    assert t.poll(2.0) == [tamer.Feedback(1.5, -1.0)] and t.poll(9.0) == []


def test_mountaincar_q_is_near_optimal():
    q = tamer.mountaincar_q(150)
    env = gym.make("MountainCar-v0")
    lengths = []
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        done, n = False, 0
        while not done:
            obs, _, terminated, truncated, _ = env.step(int(np.argmax(q(obs[None])[0])))
            n, done = n + 1, terminated or truncated
        assert terminated
        lengths.append(n)
    assert max(lengths) <= 125


@pytest.mark.parametrize("field, value, match", [
    ("episodes", 0, "episodes=0"), ("lr", 0.0, "lr=0.0"), ("features", "fourier", "features='fourier'"),
    ("credit", "gamma", "credit='gamma'"), ("delay_max", 0.1, "delay_max=0.1"), ("step_seconds", -1, "step_seconds"),
    ("obs_low", [0.0], "obs_low"), ("window", 0, "window=0"), ("seed", -1, "seed=-1")])
def test_config_validation(field, value, match):
    with pytest.raises(ValidationError, match=match):
        tamer.Config(**{field: value})


def test_bad_inputs_to_train_and_trainer():
    with pytest.raises(ValidationError, match="trainer"):
        tamer.train("MountainCar-v0", object(), tamer.Config(episodes=1))
    with pytest.raises(ValidationError, match="unbounded"):  # CartPole's velocities are unbounded
        tamer.train("CartPole-v1", tamer.SyntheticTrainer(_q), tamer.Config(episodes=1))
    with pytest.raises(ValidationError, match="p=1.5"):
        tamer.SyntheticTrainer(_q, p=1.5)
    with pytest.raises(ValidationError, match="no synthetic trainer"):
        tamer.make_synthetic_trainer("CartPole-v1")


# -- learning -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_tamer_learns_mountaincar_from_synthetic_feedback(seed):
    trainer = tamer.make_synthetic_trainer("MountainCar-v0", seed=seed)
    result = tamer.train("MountainCar-v0", trainer, tamer.Config(episodes=12, seed=seed))
    goals = [r["reached_goal"] for r in result.history]
    assert any(goals[:10])                        # 10 seeds: first goal by episode 8 at the latest
    assert np.mean([r["return"] for r in result.history[-3:]]) > -160
    assert result.weights.shape == (3, result.agent.phi.n_features)
    assert result.policy(np.zeros((5, 2), dtype=np.float32)).shape == (5,)
    again = tamer.train("MountainCar-v0", tamer.make_synthetic_trainer("MountainCar-v0", seed=seed),
                        tamer.Config(episodes=2, seed=seed))
    assert [r["return"] for r in again.history] == [r["return"] for r in result.history[:2]]


# -- the job --------------------------------------------------------------------------------------------
def test_cli_tamer_writes_a_run(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["tamer", "--env", "MountainCar-v0", "--episodes", "2", "--eval-episodes", "2",
                     "--set", "credit=window", "--set", "trainer.p=0.8", "--no-progress", "--out", str(out)]) == 0
    (run,) = list(out.iterdir())
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "h_weights.npy", "learning_curve.png", "summary.txt",
            "report.html"} <= names
    config = json.loads((run / "config.json").read_text())
    assert config["tamer_config"]["credit"] == "window" and config["trainer_options"]["p"] == 0.8
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["phase"] for m in lines] == ["episode", "episode", "final"]
    assert lines[-1]["eval_episodes"] == 2 and lines[-1]["oracle_return_mean"] > -130
    assert np.load(run / "h_weights.npy").shape[0] == 3
    assert (run / "summary.txt").read_text().strip() in capsys.readouterr().out


def test_cli_tamer_bad_input_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["tamer", "--set", "lr=-1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("irlhf: error: lr=-1") and len(err.splitlines()) == 1
    assert not out.exists()
