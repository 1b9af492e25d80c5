"""``irlhf expert train / eval / list``: smoke runs on tiny budgets and one-line errors."""

from __future__ import annotations

import json

import pytest

from irlhf import cli


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IRLHF_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def only_run(out):
    (run,) = list(out.iterdir())
    return run


def test_help(capsys):
    assert cli.main(["expert", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("train", "eval", "list", "--algo", "--timesteps", "--force", "--expert", "--episodes", "--seed"):
        assert flag in out


def test_train_eval_list(tmp_path, cache, capsys):
    out = tmp_path / "train"
    argv = ["expert", "train", "--env", "CartPole-v1", "--algo", "ppo", "--timesteps", "256", "--eval-episodes", "2",
            "--no-progress", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    zip_path = cache / "experts" / "CartPole-v1" / "ppo-seed0.zip"
    assert str(zip_path) in printed and "normalized score" in printed and zip_path.is_file()
    run = only_run(out)
    assert run.name.startswith("expert-train-")
    assert {"config.json", "metrics.jsonl", "learning_curve.png", "summary.txt", "report.html"} <= {
        p.name for p in run.iterdir()}
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["phase"] == "final" and lines[-1]["scripted_return_mean"] == 500.0
    assert lines[-1]["cached"] is False and {m["phase"] for m in lines[:-1]} == {"train"}
    config = json.loads((run / "config.json").read_text())
    assert config["action"] == "train" and config["timesteps"] == 256

    assert cli.main(argv) == 0  # second time: reused
    assert "reused from the cache" in capsys.readouterr().out

    eval_out = tmp_path / "eval"
    assert cli.main(["expert", "eval", "--env", "CartPole-v1", "--expert", "ppo", "--episodes", "2",
                     "--out", str(eval_out)]) == 0
    printed = capsys.readouterr().out
    assert "expert ppo on CartPole-v1: return" in printed and "random" in printed
    run = only_run(eval_out)
    assert {"config.json", "metrics.jsonl", "summary.txt", "report.html"} <= {p.name for p in run.iterdir()}

    assert cli.main(["expert", "list"]) == 0
    printed = capsys.readouterr().out
    assert "1 cached expert" in printed and "CartPole-v1  ppo  seed 0" in printed


def test_eval_scripted_scores_one(tmp_path, capsys):
    assert cli.main(["expert", "eval", "--env", "CartPole-v1", "--expert", "scripted", "--episodes", "2",
                     "--out", str(tmp_path / "o")]) == 0
    assert "normalized score 1.000" in capsys.readouterr().out


def test_list_empty(capsys):
    assert cli.main(["expert", "list"]) == 0
    assert "no cached experts" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["expert", "train", "--env", "CartPole-v1", "--algo", "sac"], "sac needs a Box"),
    (["expert", "train", "--env", "Pendulum-v1", "--algo", "dqn"], "dqn needs a Discrete"),
    (["expert", "train", "--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["expert", "train", "--timesteps", "0"], "timesteps=0"),
    (["expert", "eval", "--expert", "a2c"], "expert='a2c'"),
    (["expert", "eval", "--env", "Acrobot-v1", "--expert", "dqn", "--seed", "4"],
     "irlhf expert train --env Acrobot-v1 --algo dqn --seed 4"),
    (["expert", "eval", "--expert", "missing.zip"], "no such file"),
    (["expert", "eval", "--checkpoint-every", "10"], "--checkpoint-every 10: not used by expert eval"),
    (["expert", "train", "--checkpoint-every", "-1"], "checkpoint_every=-1"),
    (["bc", "--expert", "nope"], "expert='nope'"),
    (["dagger", "--expert", "ppo"], "irlhf expert train --env CartPole-v1 --algo ppo --seed 0"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert cli.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("irlhf: error:") and "\n" not in err and message in err
    assert not out.exists()


def test_bc_collects_from_a_cached_expert(tmp_path, capsys):
    from irlhf.rl.experts import train_expert

    train_expert("CartPole-v1", "ppo", seed=0, timesteps=256, eval_episodes=1)
    out = tmp_path / "bc"
    assert cli.main(["bc", "--env", "CartPole-v1", "--expert", "ppo", "--episodes", "1", "--eval-episodes", "1",
                     "--set", "epochs=1", "--no-progress", "--out", str(out)]) == 0
    config = json.loads((only_run(out) / "config.json").read_text())
    assert config["expert"] == "ppo"
