"""``irlhf irl {gcl,gail,airl,iq-learn}``: run directories on CartPole (tiny budgets), reloadable artifacts,
the reproducing command, and clean one-line errors."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
import torch

from irlhf import cli
from irlhf.data import load_trajectories, save_trajectories
from irlhf.jobs._common import parse_set
from irlhf.jobs.irl import IrlEnvJobConfig

FAST = ["--eval-episodes", "2", "--no-progress"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_one(tmp_path, argv):
    out = tmp_path / "out"
    assert cli.main(["irl", *argv, "--out", str(out)]) == 0
    (run,) = list(out.iterdir())
    return run


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def check_final(final):
    assert final["phase"] == "final" and final["expert_return_mean"] == 500.0 and final["eval_episodes"] == 2
    assert np.isfinite(final["normalized_score"]) and final["train_seconds"] > 0
    assert final["normalized_score"] == pytest.approx(
        (final["eval_return_mean"] - final["random_return_mean"]) / (500.0 - final["random_return_mean"]))


@pytest.fixture(scope="module")
def cartpole_demos(tmp_path_factory):
    from irlhf.envs.gym import collect_demos
    from irlhf.rl.experts import make_expert

    path = tmp_path_factory.mktemp("demos") / "cartpole.npz"
    save_trajectories(path, collect_demos("CartPole-v1", make_expert("CartPole-v1"), n_episodes=2, seed=3))
    return path


def test_help_lists_the_sample_based_algorithms(capsys):
    assert cli.main(["irl", "--help"]) == 0
    out = capsys.readouterr().out
    for word in ("gcl", "gail", "airl", "iq-learn", "--env", "--expert", "--episodes", "--eval-episodes", "--demos",
                 "sample-based algorithms", "tabular algorithms"):
        assert word in out


def test_gail_collects_demos_and_writes_everything(tmp_path, capsys):
    from safetensors.torch import load_file
    from stable_baselines3 import PPO

    run = run_one(tmp_path, ["gail", "--env", "CartPole-v1", "--set", "total_timesteps=512", "--episodes", "1",
                             *FAST])
    assert run.name.startswith("irl-gail-")
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "policy.zip", "reward_net.safetensors", "demos.npz", "training.png",
            "summary.txt", "report.html"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    config = json.loads((run / "config.json").read_text())
    assert config["algorithm"] == "gail" and config["env"] == "CartPole-v1" and config["demos"] is None
    assert config["options"] == {"total_timesteps": 512}
    assert config["algorithm_config"]["total_timesteps"] == 512 and config["algorithm_config"]["progress"] is False
    lines = read_metrics(run)
    train = [m for m in lines if m["phase"] == "train"]
    assert train and [m["round"] for m in train] == list(range(1, len(train) + 1))
    assert all(np.isfinite(m["disc_loss"]) and m["timesteps"] <= 512 for m in train)
    final = lines[-1]
    check_final(final)
    assert final["n_demos"] == 1 and final["n_samples"] == 500 and final["train_records"] == len(train)
    assert len(load_trajectories(run / "demos.npz")) == 1
    model = PPO.load(run / "policy.zip", device="cpu")
    action, _ = model.predict(np.zeros(4, dtype=np.float32), deterministic=True)
    assert int(action) in (0, 1)
    tensors = load_file(run / "reward_net.safetensors")
    assert any(k.startswith("features.") for k in tensors) and any(k.startswith("net.") for k in tensors)
    out = capsys.readouterr().out
    assert (run / "summary.txt").read_text().strip() in out and "normalized score" in out
    page = (run / "report.html").read_text()
    assert 'src="training.png"' in page and "GAIL" in page and "policy.zip" in page


def test_iq_learn_offline_from_a_demos_file(tmp_path, cartpole_demos):
    from irlhf.nn.policies import load_policy

    run = run_one(tmp_path, ["iq-learn", "--demos", str(cartpole_demos), "--set", "updates=50",
                             "--set", "log_every=10", *FAST])
    assert run.name.startswith("irl-iq-learn-")
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "q_net.safetensors", "policy.safetensors", "reward_net.safetensors",
            "training.png", "summary.txt", "report.html"} <= names
    assert "demos.npz" not in names and "actor.safetensors" not in names
    config = json.loads((run / "config.json").read_text())
    assert config["demos"] == str(cartpole_demos) and config["algorithm_config"]["updates"] == 50
    assert config["algorithm_config"]["online"] is False
    lines = read_metrics(run)
    assert [m["update"] for m in lines if m["phase"] == "train"] == [10, 20, 30, 40, 50]
    final = lines[-1]
    check_final(final)
    assert final["n_demos"] == 2 and final["n_samples"] == 1000
    actions = load_policy(run / "policy.safetensors")(np.zeros((5, 4), dtype=np.float32))
    assert actions.shape == (5,) and set(np.unique(actions)) <= {0, 1}


def test_gcl_tiny_run(tmp_path):
    run = run_one(tmp_path, ["gcl", "--set", "total_timesteps=2048", "--set", "steps_per_iteration=256",
                             "--episodes", "1", *FAST])
    assert run.name.startswith("irl-gcl-")
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "policy.zip", "reward_net.safetensors", "demos.npz", "summary.txt",
            "report.html"} <= names
    lines = read_metrics(run)
    train = [m for m in lines if m["phase"] == "train"]
    assert all("iteration" in m and "ioc_loss" in m for m in train)
    if train:
        assert "training.png" in names
    check_final(lines[-1])
    config = json.loads((run / "config.json").read_text())["algorithm_config"]
    assert config["total_timesteps"] == 2048 and config["steps_per_iteration"] == 256


def test_airl_tiny_run(tmp_path):
    run = run_one(tmp_path, ["airl", "--set", "total_timesteps=512", "--episodes", "1", "--seed", "2", *FAST])
    assert run.name.startswith("irl-airl-")
    names = {p.name for p in run.iterdir()}
    assert {"policy.zip", "reward_net.safetensors", "training.png", "report.html"} <= names
    config = json.loads((run / "config.json").read_text())
    assert config["seed"] == 2 and config["algorithm_config"]["seed"] == 2
    lines = read_metrics(run)
    assert any(m["phase"] == "train" and "acc_expert" in m for m in lines)
    check_final(lines[-1])


def test_command_reproduces_the_config():
    job = IrlEnvJobConfig(algorithm="iq-learn", env="CartPole-v1", demos="some/demos.npz", eval_episodes=3, seed=4,
                          options={"updates": 10, "hidden_sizes": [8, 8], "online": True})
    args = cli.build_parser().parse_args(shlex.split(job.command())[1:])
    again = IrlEnvJobConfig(algorithm=args.algorithm, env=args.env, demos=args.demos, expert=args.expert,
                            episodes=args.episodes, eval_episodes=args.eval_episodes, seed=args.seed,
                            options=parse_set(args.options))
    assert again == job
    job = IrlEnvJobConfig(algorithm="gail", env="Pendulum-v1", expert="sac", episodes=7)
    assert "--expert sac --episodes 7" in job.command() and "--demos" not in job.command()


@pytest.mark.parametrize(
    "argv, message",
    [(["gail", "--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
     (["iq-learn", "--demos", "MISSING"], "no such file"),
     (["gail", "--demos", "PENDULUM"], "demos"),
     (["iq-learn", "--demos", "PENDULUM"], "demos"),
     (["airl", "--set", "bogus=1"], "unknown field(s) ['bogus']"),
     (["gail", "--set", 'algo="dqn"'], "algo='dqn'"),
     (["gcl", "--episodes", "0"], "episodes=0"),
     (["iq-learn", "--eval-episodes", "0"], "eval_episodes=0"),
     (["gail", "--expert", "nobody"], "expert='nobody'"),
     (["maxent", "--demos", "notanint"], "expected an integer number of demonstrations")],
)
def test_bad_input_is_one_line_and_leaves_no_run(tmp_path, capsys, argv, message):
    pendulum = tmp_path / "pendulum.npz"
    if "PENDULUM" in argv:
        from irlhf.envs.gym import collect_demos
        from irlhf.rl.experts import make_expert

        save_trajectories(pendulum, collect_demos("Pendulum-v1", make_expert("Pendulum-v1"), n_episodes=1))
    subst = {"MISSING": str(tmp_path / "missing.npz"), "PENDULUM": str(pendulum)}
    argv = [subst.get(a, a) for a in argv]
    out = tmp_path / "out"
    fast = {"iq-learn": ["--set", "updates=5"], "maxent": ["--size", "6", "--horizon", "4"]}.get(
        argv[0], ["--set", "total_timesteps=256"])
    common = ["--no-progress"] if argv[0] == "maxent" else FAST  # maxent is tabular: --eval-episodes is an error
    code = cli.main(["irl", argv[0], *common, *fast, *argv[1:], "--out", str(out)])  # argv's options last: they win
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("irlhf: error: ") and message in err[0], captured.err
    assert captured.out == "" and not out.exists()
