"""``irlhf irl sqil|density|trex|drex`` and ``irlhf imitate METHOD``: run directories on CartPole (tiny budgets),
T-REX's ranked input and the ranks it read, the same runs through ``imitate``, and clean one-line errors."""

from __future__ import annotations

import json
import re
import shlex

import numpy as np
import pytest
import torch

from irlhf import cli
from irlhf.cli_learners import IMITATE
from irlhf.data import save_trajectories

FAST = ["--eval-episodes", "2", "--no-progress"]
TINY = {  # a few seconds each
    "sqil": ["--set", "total_timesteps=256", "--set", "log_every=256"],
    "density": ["--set", "total_timesteps=256", "--set", "log_every=256"],
    "trex": ["--set", "total_timesteps=256", "--set", "n_pairs=64", "--set", "epochs=2"],
    "drex": ["--set", "total_timesteps=256", "--set", "n_pairs=64", "--set", "epochs=2", "--set", "bc_epochs=5",
             "--set", "rollouts_per_level=1", "--set", "noise_levels=[1.0,0.5]"],
}
FILES = {  # beside config.json, metrics.jsonl, summary.txt, report.html
    "sqil": {"policy.zip", "training.png"},
    "density": {"policy.zip", "training.png"},
    "trex": {"policy.zip", "reward_net.safetensors", "training.png", "reward_fit.png"},
    "drex": {"policy.zip", "reward_net.safetensors", "bc_policy.safetensors", "training.png", "reward_fit.png"},
}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_one(tmp_path, argv, name="out"):
    out = tmp_path / name
    assert cli.main([*argv, "--out", str(out)]) == 0
    (run,) = list(out.iterdir())
    return run


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def noisy_expert(eps_levels, episodes, seed):
    from irlhf.irl import drex
    from irlhf.rl.experts import make_expert

    return drex.noise_rollouts("CartPole-v1", make_expert("CartPole-v1"), eps_levels, episodes, seed=seed)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Demonstration files: CartPole demos, ranked CartPole (a directory per rank, and one .npz with ranks),
    one rank only (ties), a single demonstration, and Pendulum demos (flat and ranked)."""
    from irlhf.envs.gym import collect_demos
    from irlhf.irl import trex
    from irlhf.rl.experts import make_expert

    root = tmp_path_factory.mktemp("data")
    cartpole = collect_demos("CartPole-v1", make_expert("CartPole-v1"), n_episodes=1, seed=3)
    save_trajectories(root / "cartpole.npz", cartpole)
    ranked = noisy_expert((1.0, 0.5, 0.0), 2, seed=1)
    trex.save_ranked(root / "ranked", ranked)
    save_trajectories(root / "ranked.npz", ranked.trajectories)
    with np.load(root / "ranked.npz") as held:
        arrays = dict(held)
    np.savez(root / "ranked.npz", **arrays, ranks=ranked.ranks)
    ties = root / "ties" / "rank_0"
    ties.mkdir(parents=True)
    save_trajectories(ties / "a.npz", ranked.trajectories[:3])
    single = root / "single" / "rank_1"
    single.mkdir(parents=True)
    save_trajectories(single / "a.npz", ranked.trajectories[-1:])
    pendulum = collect_demos("Pendulum-v1", make_expert("Pendulum-v1"), n_episodes=2)
    save_trajectories(root / "pendulum.npz", pendulum)
    trex.save_ranked(root / "pendulum_ranked", [(pendulum[0], 0), (pendulum[1], 1)])
    return root


def test_help_lists_the_new_algorithms_and_the_imitation_methods(capsys):
    assert cli.main(["irl", "--help"]) == 0
    out = capsys.readouterr().out
    for word in ("sqil", "density", "trex", "drex", "--ranked", "--noise-levels"):
        assert word in out
    assert cli.main(["imitate", "--help"]) == 0
    out = capsys.readouterr().out
    assert set(IMITATE) == {"bc", "dagger", "sqil", "gail", "airl", "gcl", "iq-learn", "density", "trex", "drex"}
    for method in IMITATE:
        assert re.search(rf"^    {re.escape(method)}\s+\S", out, re.M), method  # listed, with its one line
    assert cli.main(["imitate", "trex", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--ranked" in out and "--noise-levels" in out and "--demos" not in out and "--world" not in out


def test_parser_defaults_are_the_job_config_defaults():
    from irlhf.jobs.irl import IrlEnvJobConfig

    for argv in (["irl", "trex"], ["imitate", "trex"]):
        args = cli.build_parser().parse_args(argv)
        assert tuple(args.noise_levels) == IrlEnvJobConfig().noise_levels and args.ranked is None
    assert cli.build_parser().parse_args(["imitate", "gail"]).algorithm == "gail"


@pytest.mark.parametrize("algorithm", ["sqil", "density", "drex"])
def test_algorithm_collects_demos_and_writes_its_run(tmp_path, capsys, algorithm):
    from stable_baselines3 import DQN, PPO

    run = run_one(tmp_path, ["irl", algorithm, "--episodes", "1", *TINY[algorithm], *FAST])
    assert run.name.startswith(f"irl-{algorithm}-")
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "demos.npz", "summary.txt", "report.html", *FILES[algorithm]} <= names
    assert ("reward_net.safetensors" in names) == (algorithm == "drex")  # sqil, density: no reward network
    config = json.loads((run / "config.json").read_text())
    assert config["algorithm"] == algorithm and config["demos"] is None
    assert config["algorithm_config"]["total_timesteps"] == 256 and config["algorithm_config"]["progress"] is False
    lines = read_metrics(run)
    assert [m["phase"] for m in lines][-1] == "final" and lines[:-1]
    final = lines[-1]
    assert final["expert_return_mean"] == 500.0 and final["eval_episodes"] == 2 and final["n_demos"] == 1
    assert np.isfinite(final["normalized_score"]) and final["train_records"] == len(lines) - 1
    model = (DQN if algorithm == "sqil" else PPO).load(run / "policy.zip", device="cpu")
    assert int(model.predict(np.zeros(4, dtype=np.float32), deterministic=True)[0]) in (0, 1)
    out = capsys.readouterr().out
    assert (run / "summary.txt").read_text().strip() in out and "normalized score" in out
    page = (run / "report.html").read_text()
    assert 'src="training.png"' in page and "policy.zip" in page
    if algorithm == "drex":
        assert {m["phase"] for m in lines[:-1]} == {"reward", "rl"} and final["ranks"] == {"0": 1, "1": 1, "2": 1}
        assert "D-REX's ranking" in out and "ranks read: 0 (1 trajectories), 1 (1), 2 (1)" in out


def test_trex_reads_a_directory_per_rank_and_says_which_ranks(tmp_path, capsys, data):
    from safetensors.torch import load_file

    run = run_one(tmp_path, ["irl", "trex", "--ranked", str(data / "ranked"), *TINY["trex"], *FAST])
    assert run.name.startswith("irl-trex-")
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "summary.txt", "report.html", *FILES["trex"]} <= names
    assert "demos.npz" not in names and "ranked" not in names
    out = capsys.readouterr().out
    read = "ranks read: 0 (2 trajectories), 1 (2), 2 (2)"
    assert read in out and read in (run / "summary.txt").read_text() and str(data / "ranked") in out
    assert read in (run / "report.html").read_text()
    config = json.loads((run / "config.json").read_text())
    assert config["ranked"] == str(data / "ranked") and config["algorithm_config"]["n_pairs"] == 64
    lines = read_metrics(run)
    assert [m["epoch"] for m in lines if m["phase"] == "reward"] == [1, 2]
    assert any(m["phase"] == "rl" for m in lines)
    final = lines[-1]
    assert final["ranks"] == {"0": 2, "1": 2, "2": 2} and final["n_demos"] == 6 and final["expert_return_mean"] == 500
    assert final["ranked_return_spearman"] is None or -1 <= final["ranked_return_spearman"] <= 1
    assert load_file(run / "reward_net.safetensors")


def test_trex_reads_one_file_with_ranks(tmp_path, capsys, data):
    run_one(tmp_path, ["irl", "trex", "--ranked", str(data / "ranked.npz"), *TINY["trex"], *FAST])
    assert "ranks read: 0 (2 trajectories), 1 (2), 2 (2)" in capsys.readouterr().out


def test_trex_without_ranked_collects_a_noisy_expert_per_level(tmp_path, capsys):
    from irlhf.irl import trex
    from irlhf.jobs.irl import IrlEnvJobConfig

    run = run_one(tmp_path, ["irl", "trex", "--episodes", "2", "--noise-levels", "1", "0.5", *TINY["trex"], *FAST])
    ranked = trex.load_ranked(run / "ranked")  # a folder per rank: --ranked of a later run
    assert ranked.summary == "ranks read: 0 (2 trajectories), 1 (2)"
    assert ranked.summary in capsys.readouterr().out
    config = json.loads((run / "config.json").read_text())
    assert config["noise_levels"] == [1.0, 0.5] and config["ranked"] is None
    job = IrlEnvJobConfig(**{k: config[k] for k in ("algorithm", "env", "episodes", "eval_episodes", "seed",
                                                    "options", "noise_levels")})
    args = cli.build_parser().parse_args(shlex.split(job.command())[1:])
    assert args.noise_levels == [1.0, 0.5] and args.episodes == 2 and args.algorithm == "trex"


def test_imitate_runs_the_same_jobs(tmp_path):
    """`irlhf imitate bc` is `irlhf bc`, `irlhf imitate sqil` is `irlhf irl sqil`: same run directory, same result."""
    for direct, through in ((["bc"], ["imitate", "bc"]), (["irl", "sqil"], ["imitate", "sqil"])):
        tiny = ["--set", "epochs=3"] if direct == ["bc"] else TINY["sqil"]
        runs = [run_one(tmp_path, [*argv, "--episodes", "1", *tiny, *FAST], name=" ".join(argv))
                for argv in (direct, through)]
        assert runs[0].name.split("-20")[0] == runs[1].name.split("-20")[0] == "-".join(direct)
        assert {p.name for p in runs[0].iterdir()} == {p.name for p in runs[1].iterdir()}
        configs = [json.loads((run / "config.json").read_text()) for run in runs]
        assert configs[0] == configs[1]
        finals = [read_metrics(run)[-1] for run in runs]
        assert finals[0]["eval_return_mean"] == finals[1]["eval_return_mean"]


@pytest.mark.parametrize(
    "argv, message",
    [(["irl", "trex", "--ranked", "DATA/ties"], "all 3 trajectories have rank 0 (ties only)"),
     (["irl", "trex", "--ranked", "DATA/single"], "1 trajectory"),
     (["irl", "trex", "--ranked", "DATA/pendulum_ranked"], "observations of shape (3,); expected (4,)"),
     (["irl", "trex", "--ranked", "DATA/missing"], "DATA/missing"),
     (["irl", "sqil", "--demos", "DATA/pendulum.npz"], "demos='DATA/pendulum.npz': trajectory 0 has observations "
                                                       "of shape (3,); expected (4,)"),
     (["irl", "density", "--demos", "DATA/pendulum.npz"], "shape (3,)"),
     (["irl", "drex", "--demos", "DATA/pendulum.npz"], "shape (3,)"),
     (["imitate", "sqil", "--demos", "DATA/pendulum.npz"], "DATA/pendulum.npz"),
     (["imitate", "behaviour-cloning"], "imitate 'behaviour-cloning': unknown method; expected one of bc, dagger"),
     (["irl", "trex", "--demos", "DATA/cartpole.npz"], "expected --ranked PATH"),
     (["irl", "gail", "--ranked", "DATA/ranked"], "--ranked DATA/ranked: not used by irl gail"),
     (["irl", "trex", "--ranked", "DATA/ranked", "--episodes", "3"], "--episodes 3: not used with --ranked"),
     (["irl", "trex", "--noise-levels", "0.5"], "noise_levels=[0.5]"),
     (["irl", "trex", "--set", "total_timesteps=0"], "total_timesteps=0"),
     (["irl", "sqil", "--set", 'algo="sac"'], "algo='sac'")],
)
def test_bad_input_is_one_line_and_leaves_no_run(tmp_path, capsys, data, argv, message):
    argv = [a.replace("DATA", str(data)) for a in argv]
    out = tmp_path / "out"
    code = cli.main([*argv, *FAST, "--out", str(out)])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("irlhf: error: "), captured.err
    assert message.replace("DATA", str(data)) in err[0], err[0]
    assert captured.out == "" and not out.exists()
