"""``irlhf bc`` / ``irlhf dagger``: help, run directories on CartPole, loadable policies, and clean errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from irlhf import cli
from irlhf.data import load_trajectories, save_trajectories

FAST = ["--eval-episodes", "2", "--no-progress"]


def run_one(tmp_path, argv):
    out = tmp_path / "out"
    assert cli.main([*argv, "--out", str(out)]) == 0
    (run,) = list(out.iterdir())
    return run


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("job, option", [("bc", "--demos"), ("dagger", "--episodes-per-round")])
def test_help(capsys, job, option):
    assert cli.main([job, "--help"]) == 0
    out = capsys.readouterr().out
    assert option in out and "--set" in out and "--eval-episodes" in out


def test_bc_collects_demos_and_writes_everything(tmp_path, capsys):
    from irlhf.imitation import bc

    run = run_one(tmp_path, ["bc", "--env", "CartPole-v1", "--episodes", "1", "--set", "epochs=5", *FAST])
    assert run.name.startswith("bc-")
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "policy.safetensors", "demos.npz", "learning_curve.png",
            "summary.txt", "report.html"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    config = json.loads((run / "config.json").read_text())
    assert config["env"] == "CartPole-v1" and config["bc_config"]["epochs"] == 5 and config["options"] == {"epochs": 5}
    lines = read_metrics(run)
    assert [m["epoch"] for m in lines[:-1]] == list(range(1, 6)) and {m["phase"] for m in lines[:-1]} == {"train"}
    final = lines[-1]
    assert final["phase"] == "final" and final["n_samples"] == 500 and final["expert_return_mean"] == 500.0
    assert final["eval_episodes"] == 2 and np.isfinite(final["normalized_score"])
    assert final["normalized_score"] == pytest.approx(
        (final["eval_return_mean"] - final["random_return_mean"]) / (500.0 - final["random_return_mean"]))
    assert len(load_trajectories(run / "demos.npz")) == 1
    policy = bc.load_policy(run / "policy.safetensors")
    actions = policy(np.zeros((7, 4), dtype=np.float32))
    assert actions.shape == (7,) and set(np.unique(actions)) <= {0, 1}
    out = capsys.readouterr().out
    assert (run / "summary.txt").read_text().strip() in out and "normalized score" in out
    assert 'src="learning_curve.png"' in (run / "report.html").read_text()


def test_bc_from_a_demos_file(tmp_path):
    from irlhf.envs.gym import collect_demos
    from irlhf.rl.experts import make_expert

    path = tmp_path / "demos.npz"
    save_trajectories(path, collect_demos("CartPole-v1", make_expert("CartPole-v1"), n_episodes=1, seed=3))
    run = run_one(tmp_path, ["bc", "--demos", str(path), "--set", "epochs=3", "--set", "hidden_sizes=[16]", *FAST])
    assert "demos.npz" not in {p.name for p in run.iterdir()}
    config = json.loads((run / "config.json").read_text())
    assert config["demos"] == str(path) and config["bc_config"]["hidden_sizes"] == [16]
    final = read_metrics(run)[-1]
    assert final["n_demos"] == 1 and final["n_samples"] == 500 and final["epochs_run"] == 3


def test_dagger_writes_its_artifacts(tmp_path):
    from irlhf.imitation import bc

    run = run_one(tmp_path, ["dagger", "--rounds", "2", "--episodes-per-round", "1", "--schedule", "exponential",
                             "--set", "bc.epochs=3", "--set", "hidden_sizes=[16]", *FAST])
    assert run.name.startswith("dagger-")
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "policy.safetensors", "rounds.png", "summary.txt", "report.html"} <= names
    config = json.loads((run / "config.json").read_text())["dagger_config"]
    assert config["rounds"] == 2 and config["schedule"] == "exponential"
    assert config["bc"]["epochs"] == 3 and config["bc"]["hidden_sizes"] == [16] and config["bc"]["batch_size"] == 64
    lines = read_metrics(run)
    rounds = [m for m in lines if m["phase"] == "round"]
    assert [m["round"] for m in rounds] == [0, 1] and rounds[0]["beta"] == 1.0
    assert rounds[1]["n_samples"] > rounds[0]["n_samples"]
    final = lines[-1]
    assert final["phase"] == "final" and final["n_samples"] == rounds[-1]["n_samples"]
    assert final["expert_return_mean"] == 500.0 and np.isfinite(final["normalized_score"])
    assert bc.load_policy(run / "policy.safetensors")(np.zeros((3, 4), dtype=np.float32)).shape == (3,)
    assert 'src="rounds.png"' in (run / "report.html").read_text()


@pytest.mark.parametrize(
    "argv, message",
    [(["bc", "--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
     (["dagger", "--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
     (["bc", "--demos", "MISSING"], "no such file"),
     (["bc", "--demos", "CORRUPT"], "not a readable .npz"),
     (["bc", "--demos", "PENDULUM"], "demos."),
     (["bc", "--episodes", "0"], "episodes=0"),
     (["bc", "--eval-episodes", "0"], "eval_episodes=0"),
     (["bc", "--set", "foo=1"], "unknown field(s) ['foo']"),
     (["dagger", "--rounds", "0"], "rounds=0"),
     (["dagger", "--set", "bc.lr=-1"], "lr=-1"),
     (["dagger", "--env", "FrozenLake-v1"], "no expert")],
)
def test_bad_input_is_one_line_and_leaves_no_run(tmp_path, capsys, argv, message):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"this is not a zip file")
    pendulum = tmp_path / "pendulum.npz"
    if "PENDULUM" in argv:
        from irlhf.envs.gym import collect_demos
        from irlhf.rl.experts import make_expert

        save_trajectories(pendulum, collect_demos("Pendulum-v1", make_expert("Pendulum-v1"), n_episodes=1))
    subst = {"MISSING": str(tmp_path / "missing.npz"), "CORRUPT": str(corrupt), "PENDULUM": str(pendulum)}
    argv = [subst.get(a, a) for a in argv]
    out = tmp_path / "out"
    fast = [*FAST, "--set", "epochs=2"] if argv[0] == "bc" and "--set" not in argv else FAST
    assert cli.main([argv[0], *fast, *argv[1:], "--out", str(out)]) == 2  # argv's options last: they win
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("irlhf: error: ") and message in err[0], captured.err
    assert captured.out == "" and not out.exists()
