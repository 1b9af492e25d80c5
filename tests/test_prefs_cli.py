"""``irlhf prefs fit``: run directories from comparisons, rankings and the synthetic example; clean errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from irlhf import cli
from irlhf.data.preferences import Comparisons, Rankings
from irlhf.preference import bradley_terry as bt


def run_one(tmp_path, argv):
    out = tmp_path / "out"
    assert cli.main([*argv, "--out", str(out)]) == 0
    (run,) = list(out.iterdir())
    return run


def read_scores(run):
    lines = (run / "scores.csv").read_text().splitlines()
    assert lines[0] == "item,score,standard_error,rank"
    return np.array([[float(x) for x in line.split(",")] for line in lines[1:]])


def test_fit_comparisons_file(tmp_path, capsys):
    path = Comparisons([0, 0, 1, 2], [1, 1, 2, 0], [1, 1, 1, 1]).save(tmp_path / "prefs.csv")
    run = run_one(tmp_path, ["prefs", "fit", "--comparisons", str(path)])
    assert run.name.startswith("prefs-fit-")
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "scores.csv", "winners.json", "scores.png", "preference_matrix.png",
            "summary.txt", "report.html"} <= names
    table = read_scores(run)
    np.testing.assert_allclose(table[:, 1], [0.419617624, -0.419617624, 0.0], atol=1e-8)
    assert table[:, 3].tolist() == [1, 3, 2]
    winners = json.loads((run / "winners.json").read_text())
    assert winners["fitted"]["condorcet"] == 0 and winners["judgements"]["condorcet"] is None  # 0-1-2 cycle
    assert "top items" in capsys.readouterr().out


def test_fit_rankings_uses_plackett_luce(tmp_path):
    path = Rankings([[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 2, 1]]).save(tmp_path / "ranks.jsonl")
    run = run_one(tmp_path, ["prefs", "fit", "--rankings", str(path)])
    metrics = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert metrics["model"] == "plackett-luce" and metrics["converged"]


def test_synthetic_is_seeded_and_recovers_scores(tmp_path):
    a = read_scores(run_one(tmp_path / "a", ["prefs", "fit", "--synthetic", "15", "--seed", "3"]))
    b = read_scores(run_one(tmp_path / "b", ["prefs", "fit", "--synthetic", "15", "--seed", "3"]))
    np.testing.assert_array_equal(a, b)
    assert np.all(a[:, 2] > 0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["prefs", "fit"], "exactly one of"),
        (["prefs", "fit", "--synthetic", "1"], "synthetic=1"),
        (["prefs", "fit", "--synthetic", "5", "--alpha", "-1"], "alpha=-1"),
        (["prefs", "fit", "--comparisons", "missing.jsonl"], "no such file"),
        (["prefs", "fit", "--synthetic", "5", "--model", "plackett-luce"], "model='plackett-luce' needs --rankings"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, argv, message):
    assert cli.main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_unidentifiable_needs_alpha(tmp_path, capsys):
    path = Comparisons([0, 1], [1, 2], [1, 1]).save(tmp_path / "chain.jsonl")
    assert cli.main(["prefs", "fit", "--comparisons", str(path), "--out", str(tmp_path)]) == 2
    assert "never lose" in capsys.readouterr().err
    run = run_one(tmp_path / "ok", ["prefs", "fit", "--comparisons", str(path), "--alpha", "0.1"])
    scores = read_scores(run)[:, 1]
    np.testing.assert_allclose(scores, bt.fit(3, Comparisons([0, 1], [1, 2], [1, 1]), alpha=0.1).scores)


# -- irlhf prefs rl (deep RL from trajectory preferences) --------------------------------------------------------
TINY_RL = ["--timesteps", "600", "--labels", "8", "--eval-episodes", "2", "--no-progress", "--set", "rounds=2",
           "--set", "reward_epochs=2", "--set", "random_rollout_steps=150",
           "--set", 'rl_kwargs={"n_envs":2,"n_steps":64,"batch_size":64,"n_epochs":1}']


def test_prefs_rl_smoke(tmp_path, capsys):
    run = run_one(tmp_path, ["prefs", "rl", "--env", "CartPole-v1", "--labeller", "mistake",
                             "--set", "labeller.eps=0.2", *TINY_RL])
    assert run.name.startswith("prefs-rl-")
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "learning_curve.png", "reward_model.safetensors", "policy.zip",
            "preferences.npz", "summary.txt", "report.html"} <= names
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows[:-1]] == [0, 1, 2] and rows[-1]["final"] is True
    assert rows[-1]["queries"] == 8 and rows[-1]["expert_return_mean"] == 500.0
    config = json.loads((run / "config.json").read_text())
    assert config["trajectory"]["rounds"] == 2 and config["job"]["labeller"] == "mistake"
    from irlhf.preference.trajectory import load_reward_model

    assert load_reward_model(run / "reward_model.safetensors").ensemble_size == 3
    assert "normalized score" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["prefs", "rl", "--labels", "0"], "labels=0"),
        (["prefs", "rl", "--set", "segment_length=600"], "segment_length=600"),
        (["prefs", "rl", "--env", "Blackjack-v1"], "observation space"),
        (["prefs", "rl", "--set", "labeller.temperature=1"], "unknown"),
        (["prefs", "rl", "--set", "nonsense=1"], "nonsense"),
        (["prefs", "rl", "--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    ],
)
def test_prefs_rl_bad_input(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert cli.main([*argv, "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("irlhf: error:") and message in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_prefs_rl_unknown_labeller_is_a_usage_error(capsys):
    assert cli.main(["prefs", "rl", "--labeller", "human"]) == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("fields", [{"comparisons": "c.jsonl", "n_items": 4}, {"synthetic": 5, "seed": 2}])
def test_the_reproducing_command_gives_only_options_the_fit_uses(fields):
    import shlex

    from irlhf.jobs.prefs import FitJobConfig, reject_unused_fit_options

    job = FitJobConfig(alpha=0.1, **fields)
    argv = shlex.split(job.command())[1:]
    args = cli.build_parser().parse_args(argv)
    args.given = cli.given_options(argv)
    reject_unused_fit_options(args)  # the command must run again as printed
    assert FitJobConfig(comparisons=args.comparisons, rankings=args.rankings, synthetic=args.synthetic,
                        synthetic_comparisons=args.synthetic_comparisons, n_items=args.n_items, model=args.model,
                        alpha=args.alpha, seed=args.seed) == job
