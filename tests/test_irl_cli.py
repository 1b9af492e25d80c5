"""``irlhf irl``: run directories for maxent and deep-maxent on tiny worlds, options, and clean errors."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from irlhf import cli
from irlhf.core.errors import IrlhfError
from irlhf.data import load_trajectories
from irlhf.jobs._common import parse_set
from irlhf.jobs.irl import IrlJobConfig

TINY = ["--size", "6", "--demos", "8", "--horizon", "4", "--no-progress"]


def run_one(tmp_path, argv):
    out = tmp_path / "out"
    assert cli.main(["irl", *argv, "--out", str(out)]) == 0
    (run,) = list(out.iterdir())
    return run


def test_maxent_run_directory(tmp_path, capsys):
    run = run_one(tmp_path, ["maxent", *TINY])
    assert run.name.startswith("irl-maxent-")
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "learned_reward.npy", "true_reward.npy", "demos.npz", "weights.npy",
            "rewards.png", "training.png", "report.html", "summary.txt"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    config = json.loads((run / "config.json").read_text())
    assert config["algorithm"] == "maxent" and config["size"] == 6 and config["algorithm_config"]["l2"] == 0.1
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {m["phase"] for m in lines[:-1]} == {"train"} and lines[-1]["phase"] == "final"
    final = lines[-1]
    assert final["evd"] >= -1e-9 and -1 <= final["reward_correlation"] <= 1
    assert final["uniform_demo_log_likelihood"] == pytest.approx(4 * np.log(1 / 5))
    assert np.load(run / "learned_reward.npy").shape == (36,)
    trajs = load_trajectories(run / "demos.npz")
    assert len(trajs) == 8 and all(len(t) == 4 for t in trajs)
    out = capsys.readouterr().out
    assert f"EVD {final['evd']:.4f}" in out and (run / "summary.txt").read_text().strip() in out
    page = (run / "report.html").read_text()
    assert 'src="rewards.png"' in page and 'src="training.png"' in page


def test_deep_maxent_run_with_overrides_saves_the_network(tmp_path):
    from safetensors.numpy import load_file

    run = run_one(tmp_path, ["deep-maxent", *TINY, "--continuous", "--set", "iterations=5",
                             "--set", "hidden_sizes=[8]", "--seed", "3"])
    assert run.name.startswith("irl-deep-maxent-")
    config = json.loads((run / "config.json").read_text())
    assert config["algorithm_config"]["hidden_sizes"] == [8] and config["algorithm_config"]["seed"] == 3
    assert config["options"] == {"iterations": 5, "hidden_sizes": [8]} and config["continuous"] is True
    tensors = load_file(run / "reward_net.safetensors")
    assert tensors["0.weight"].shape == (8, 4) and tensors["feature_mean"].shape == (4,)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in lines if m["phase"] == "train"] == list(range(6))


@pytest.mark.parametrize("world", [["--world", "gridworld", "--macrocell", "3"], ["--world", "binaryworld"],
                                   ["--world", "gridworld"]])
def test_other_worlds(tmp_path, world):
    run = run_one(tmp_path, ["maxent", *TINY, *world])
    final = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(final["evd"])


def test_same_seed_same_reward(tmp_path):
    argv = ["deep-maxent", *TINY, "--set", "iterations=10", "--seed", "2"]
    a = run_one(tmp_path / "a", argv)
    b = run_one(tmp_path / "b", argv)
    np.testing.assert_array_equal(np.load(a / "learned_reward.npy"), np.load(b / "learned_reward.npy"))


def test_command_reproduces_the_config():
    job = IrlJobConfig(algorithm="deep-maxent", world="objectworld", size=8, demos=5, horizon=3, discount=0.8,
                       continuous=True, seed=4, options={"hidden_sizes": [8, 8], "optimizer": "sgd"})
    args = cli.build_parser().parse_args(shlex.split(job.command())[1:])
    assert args.run.__module__ == "irlhf.jobs.irl"
    again = IrlJobConfig(algorithm=args.algorithm, world=args.world, size=args.size, demos=int(args.demos),
                         horizon=args.horizon, discount=args.discount, continuous=args.continuous,
                         macrocell=args.macrocell, seed=args.seed, options=parse_set(args.options))
    assert again == job


def test_parse_set():
    assert parse_set(["lr=0.5", "hidden_sizes=[4, 4]", "optimizer=adam", "horizon=null"]) == {
        "lr": 0.5, "hidden_sizes": [4, 4], "optimizer": "adam", "horizon": None}
    with pytest.raises(IrlhfError, match="KEY=VALUE"):
        parse_set(["lr"])


@pytest.mark.parametrize(
    "argv, message",
    [(["maxent", "--set", "foo=1"], "unknown field(s) ['foo']"),
     (["maxent", "--set", "lr"], "expected KEY=VALUE"),
     (["maxent", "--set", "l2=-1"], "l2=-1"),
     (["deep-maxent", "--set", "activation=swish"], "activation='swish'"),
     (["deep-maxent", "--set", "horizon=3"], "do not match horizon=3"),  # rejected by train: still no run dir
     (["maxent", "--world", "gridworld", "--continuous"], "continuous=True"),
     (["maxent", "--world", "gridworld", "--size", "6", "--macrocell", "4"], "macrocell=4"),
     (["maxent", "--macrocell", "2"], "macrocell=2"),
     (["maxent", "--demos", "0"], "demos=0"),
     (["maxent", "--demos", "demos.npz"], "expected an integer number of demonstrations"),
     (["maxent", "--size", "1"], "size=1"),
     (["maxent", "--horizon", "0"], "horizon=0"),
     (["maxent", "--discount", "1.5"], "discount=1.5")],
)
def test_bad_options_are_one_line_and_leave_no_run(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    tiny = ["--size", "6", "--demos", "4", "--horizon", "4", "--no-progress"]
    assert cli.main(["irl", *tiny, *argv, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("irlhf: error: ") and message in err[0], captured.err
    assert captured.out == "" and not out.exists()


def test_unknown_algorithm_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["irl", "nosuch", "--out", str(tmp_path / "out")]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_help_lists_algorithms_and_options(capsys):
    assert cli.main(["irl", "--help"]) == 0
    out = capsys.readouterr().out
    for word in ("apprenticeship", "mmp", "maxent", "deep-maxent", "--world", "--demos", "--size", "--horizon",
                 "--continuous", "--macrocell", "--set", "--seed", "--out"):
        assert word in out
