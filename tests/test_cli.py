"""The ``irlhf`` command: help, the demo job's artifacts, and clean one-line errors."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from irlhf import __version__, cli
from irlhf.core.errors import ValidationError
from irlhf.core.rundir import RunDir
from irlhf.data import load_trajectories
from irlhf.jobs import demo as demo_job
from irlhf.jobs.demo import DemoConfig
from irlhf.report import Report


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_top_level_help_lists_jobs(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: irlhf" in out and "demo" in out


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"irlhf {__version__}"


def test_demo_help(capsys):
    assert cli.main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--seed", "--out", "--n-demos", "--horizon", "--size", "--deep-iters", "--imitation-demos",
                 "--gail-steps", "--iq-updates",
                 "--preference-labels", "--dpo-prompts", "--lm-pretrain-steps"):
        assert flag in out


def _leaf_jobs(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Runnable (sub-)commands: a job with nested actions (``irlhf prefs fit``) contributes its actions."""
    leaves = {}
    for name, sub in _subparsers(parser).items():
        nested = any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
        leaves.update(_leaf_jobs(sub, f"{prefix}{name} ") if nested else {f"{prefix}{name}": sub})
    return leaves


def test_every_job_has_help_seed_and_out():
    root = cli.build_parser()
    jobs = _leaf_jobs(root)
    assert set(jobs) >= {"demo", "irl", "prefs fit", "demos collect"}
    checked = 0
    for name in jobs:
        try:
            args = root.parse_args(name.split())
        except SystemExit:  # an action with required positional arguments (e.g. `demos info PATH`)
            continue
        assert args.seed == 0 and args.out == ("demos" if name.startswith("demos") else "runs"), name
        assert callable(args.run)
        checked += 1
    assert checked >= 6


@pytest.mark.heavy
def test_demo_writes_one_complete_run(tmp_path, capsys, monkeypatch):
    from irlhf.jobs.demo import alignment

    # fewer MaxEnt reward steps and held-out prompts than the demo's (they are module constants, not options):
    # every step still runs end to end, in about 8 s less
    monkeypatch.setattr(alignment, "MAXENT_STEPS", 4)
    monkeypatch.setattr(alignment, "DPO_EVAL_PROMPTS", 8)
    out = tmp_path / "out"
    assert cli.main(["demo", "--out", str(out), "--n-demos", "8", "--deep-iters", "20", "--imitation-demos", "1",
                     "--gail-steps", "512", "--iq-updates", "300", "--preference-labels", "60", "--dpo-prompts", "16",
                     "--lm-pretrain-steps", "40",
                     "--no-progress"]) == 0
    runs = list(out.iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("demo-")
    run = runs[0]
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "demos.npz", "heatmaps.png", "report.html", "summary.txt",
            "true_reward.npy", "occupancy.npy", "irl_rewards.png", "maxent_reward.npy", "deep_maxent_reward.npy",
            "deep_maxent_distances_reward.npy", "preferences.png", "preference_reward.safetensors",
            "dpo_curves.png", "dpo_pairs.jsonl", "dpo_model", "cartpole_demos.npz", "gail_policy.zip",
            "gail_reward.safetensors", "gail_training.png", "iq_learn_policy.safetensors",
            "iq_learn_training.png", "routes_map.png"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    assert json.loads((run / "run.json").read_text())["status"] == "finished"

    config = DemoConfig.from_dict(json.loads((run / "config.json").read_text()))
    assert config == DemoConfig(n_demos=8, deep_iterations=20, imitation_demos=1, gail_steps=512, iq_updates=300,
                                preference_labels=60,
                                dpo_prompts=16, lm_pretrain_steps=40)
    trajs = load_trajectories(run / "demos.npz")
    assert len(trajs) == 8 and all(len(t) == config.horizon for t in trajs)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == ["world", "expert", "demos", "figure", "irl", "routes", "imitation", "gail",
                                            "iq_learn", "preferences", "alignment", "lm_irl", "total"]
    metrics = {k: v for m in lines for k, v in m.items()}
    assert metrics["optimal_return"] >= metrics["expert_return"] > metrics["random_return"]
    for key in ("maxent", "deep_maxent", "deep_maxent_distances"):  # every learned reward beats a constant one
        assert 0 <= metrics[f"{key}_evd"] < metrics["irl_evd_constant_reward"]
        assert np.load(run / f"{key}_reward.npy").shape == (32 * 32,)
    assert metrics["imitation_expert_episodes"] == 1
    assert metrics["imitation_expert_return"] > metrics["imitation_random_return"]
    for key in ("bc", "dagger"):
        assert metrics[f"{key}_samples"] > 0 and np.isfinite(metrics[f"{key}_return"])
        assert np.isclose(metrics[f"{key}_score"], (metrics[f"{key}_return"] - metrics["imitation_random_return"])
                          / (metrics["imitation_expert_return"] - metrics["imitation_random_return"]))
    assert len(load_trajectories(run / "cartpole_demos.npz")) == 4
    for key in ("gail", "iq_learn"):  # return vs expert vs random, normalised
        assert metrics[f"{key}_expert_return"] == 500.0 and np.isfinite(metrics[f"{key}_return"])
        assert np.isclose(metrics[f"{key}_score"], (metrics[f"{key}_return"] - metrics[f"{key}_random_return"])
                          / (metrics[f"{key}_expert_return"] - metrics[f"{key}_random_return"]))
    assert metrics["gail_timesteps"] == 512 and metrics["gail_rounds"] >= 1
    assert metrics["iq_learn_updates"] == 300 and metrics["iq_learn_score"] > 0.2  # offline IQ-Learn learns fast
    assert metrics["preference_labels"] == 60
    assert metrics["routes_cost_correlation"] > 0.9 and metrics["routes_maxent_log_prob"] < 0
    assert metrics["routes_maxent_matched_90"] >= metrics["routes_shortest_time_matched_90"]
    assert metrics["preference_heldout_accuracy"] > metrics["preference_untrained_heldout_accuracy"]
    assert metrics["preference_heldout_accuracy"] > 0.6 and metrics["preference_return_correlation"] > 0.5
    occupancy = np.load(run / "occupancy.npy")
    assert occupancy.shape == (32 * 32,) and np.isclose(occupancy.sum(), sum(0.9**t for t in range(8)))
    assert np.load(run / "true_reward.npy").shape == (32 * 32,)
    summary = (run / "summary.txt").read_text()
    assert summary.strip() in capsys.readouterr().out and "expected return" in summary
    page = (run / "report.html").read_text()
    assert 'src="heatmaps.png"' in page and "<h2>Expert</h2>" in page
    assert 'src="irl_rewards.png"' in page and "<h2>Inverse RL</h2>" in page and "irl: EVD" in summary
    assert 'src="gail_training.png"' in page and "<h2>Adversarial IRL: GAIL</h2>" in page
    assert "gail: CartPole-v1" in summary
    assert 'src="iq_learn_training.png"' in page and "iq_learn: CartPole-v1, offline" in summary
    assert "<h2>Imitation: BC vs DAgger</h2>" in page and "imitation: CartPole-v1" in summary and "DAgger" in summary
    assert 'src="preferences.png"' in page and "<h2>Reward from preferences</h2>" in page
    assert "preferences: Pendulum-v1, 60 oracle labels" in summary
    assert metrics["dpo_pairs"] > 0 and metrics["dpo_final_loss"] < np.log(2)  # DPO moved off log 2
    assert metrics["dpo_kl_after"] > 0 and (run / "dpo_model" / "model.safetensors").exists()
    assert 'src="dpo_curves.png"' in page and "alignment: DPO on" in summary
    assert "<h2>Inverse RL for the language model</h2>" in page and "lm_irl: 16 demos" in summary
    assert metrics["lm_irl_demos"] == 16 and 0 < metrics["maxent_lm_ess_fraction"] <= 1
    for name in ("iq_learn", "maxent"):  # a learned reward that ranks held-out samples like the true one, or not
        assert -1 <= metrics[f"{name}_lm_reward_spearman"] <= 1 and metrics[f"{name}_lm_kl"] > 0
    for directory in ("iq_learn_lm", "maxent_policy", "maxent_reward_model"):
        assert (run / directory / "model.safetensors").exists()


@pytest.mark.slow  # two whole demo runs (~7 s); test_demo_writes_one_complete_run covers a full run in the default suite
def test_demo_same_seed_same_demos(tmp_path):
    argv = ["demo", "--size", "8", "--n-demos", "4", "--seed", "3", "--deep-iters", "5", "--imitation-demos", "1",
            "--gail-steps", "256", "--iq-updates", "20",
            "--preference-labels", "20", "--dpo-prompts", "4", "--lm-pretrain-steps", "5", "--no-progress"]
    assert cli.main(argv + ["--out", str(tmp_path / "a")]) == 0
    assert cli.main(argv + ["--out", str(tmp_path / "b")]) == 0
    (a,), (b,) = (list((tmp_path / d).iterdir()) for d in "ab")
    assert load_trajectories(a / "demos.npz") == load_trajectories(b / "demos.npz")
    for name in ("maxent_reward.npy", "deep_maxent_reward.npy"):
        np.testing.assert_array_equal(np.load(a / name), np.load(b / name))
    for step, timing in (("preferences", "preference_fit_seconds"), ("iq_learn", "iq_learn_seconds")):
        lines = [next(json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()
                      if json.loads(line)["step"] == step) for d in (a, b)]
        assert {k: v for k, v in lines[0].items() if k not in ("seconds", timing)} == \
            {k: v for k, v in lines[1].items() if k not in ("seconds", timing)}
    assert (a / "dpo_pairs.jsonl").read_text() == (b / "dpo_pairs.jsonl").read_text()
    # same weights and metadata (safetensors writes its metadata map in a per-process order, so not the bytes)
    from safetensors import safe_open

    with safe_open(str(a / "preference_reward.safetensors"), "pt") as fa, \
            safe_open(str(b / "preference_reward.safetensors"), "pt") as fb:
        assert fa.metadata() == fb.metadata() and set(fa.keys()) == set(fb.keys())
        for key in fa.keys():
            assert fa.get_tensor(key).equal(fb.get_tensor(key)), key


@pytest.mark.parametrize(
    "flags, field",
    [(["--horizon", "0"], "horizon=0"), (["--size", "1"], "size=1"), (["--n-demos", "0"], "n_demos=0"),
     (["--seed", "-1"], "seed=-1"), (["--discount", "0"], "discount=0.0"), (["--size", "100000"], "size=100000"),
     (["--deep-iters", "-1"], "deep_iterations=-1"), (["--imitation-demos", "0"], "imitation_demos=0"),
     (["--gail-steps", "0"], "gail_steps=0"), (["--iq-updates", "0"], "iq_updates=0"),
     (["--preference-labels", "0"], "preference_labels=0"), (["--dpo-prompts", "0"], "dpo_prompts=0"),
     (["--lm-pretrain-steps", "0"], "lm_pretrain_steps=0")],
)
def test_bad_option_is_one_clean_line_and_no_run_dir(tmp_path, capsys, flags, field):
    out = tmp_path / "out"
    assert cli.main(["demo", "--out", str(out), *flags]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("irlhf: error: ") and field in err[0]
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists()


@pytest.mark.parametrize("argv", [["demo", "--horizon", "x"], ["nojob"], [], ["demo", "--bogus"]])
def test_argparse_errors_exit_nonzero(tmp_path, capsys, argv):
    code = cli.main(argv + (["--out", str(tmp_path / "out")] if argv[:1] == ["demo"] else []))
    assert code != 0
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_out_is_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["demo", "--out", str(blocker), "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith("irlhf: error: out=")


def _fake_job(exc: BaseException):
    """A job's parser builder as a later issue would write one, whose run raises ``exc``."""

    def run(args):
        raise exc

    return lambda subparsers: cli.add_job(subparsers, "fake", run, help="a test job")


@pytest.mark.parametrize(
    "exc, code, err",
    [(ValidationError("x=1: expected\nsomething else"), 2, "irlhf: error: x=1: expected something else\n"),
     (KeyboardInterrupt(), 130, "irlhf: interrupted\n"),
     (PermissionError(13, "Permission denied", "/nope"), 1, "irlhf: error: Permission denied: /nope\n")],
)
def test_registered_job_errors(monkeypatch, capsys, exc, code, err):
    monkeypatch.setattr(cli, "JOBS", cli.JOBS + (_fake_job(exc),))
    assert cli.main(["fake", "--seed", "1"]) == code
    assert capsys.readouterr().err == err


def _interrupting_step(demo):
    raise KeyboardInterrupt  # what Ctrl-C raises in the middle of a step


def test_demo_interrupted_marks_its_run_and_exits_130(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo_job, "STEPS", [demo_job.STEPS[0], ("expert", _interrupting_step)])
    out = tmp_path / "out"
    assert cli.main(["demo", "--out", str(out), "--size", "4", "--no-progress"]) == 130
    (run,) = list(out.iterdir())
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "interrupted" and status["step"] == "expert" and status["job"] == "demo"
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err == (f"irlhf: interrupted during step 'expert'; run directory {run} is unfinished (status "
                   "'interrupted' in run.json)\n")
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == ["world"]
    page = (run / "report.html").read_text()  # what the finished steps made, flagged as unfinished at the top
    assert page.index('class="unfinished"') < page.index("<h2>Objectworld</h2>") and "<h2>Expert</h2>" not in page


def test_every_job_marks_its_run_interrupted_or_failed(tmp_path, monkeypatch, capsys):
    def job(exc):
        def run(args):
            RunDir.create("fake", args.out).write_text("partial.txt", "half")
            raise exc
        return lambda subparsers: cli.add_job(subparsers, "fake", run, help="a test job")

    monkeypatch.setattr(cli, "JOBS", cli.JOBS + (job(KeyboardInterrupt()),))
    assert cli.main(["fake", "--out", str(tmp_path / "a")]) == 130
    (run,) = list((tmp_path / "a").iterdir())
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    assert capsys.readouterr().err == (f"irlhf: interrupted; run directory {run} is unfinished (status "
                                       "'interrupted' in run.json)\n")
    monkeypatch.setattr(cli, "JOBS", cli.JOBS[:-1] + (job(ValidationError("x=1: expected 2")),))
    assert cli.main(["fake", "--out", str(tmp_path / "b")]) == 2
    (run,) = list((tmp_path / "b").iterdir())
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "failed" and status["error"] == "ValidationError: x=1: expected 2"


def test_a_finished_job_marks_its_run_finished(tmp_path, monkeypatch):
    def run(args):
        RunDir.create("fake", args.out)

    monkeypatch.setattr(cli, "JOBS", cli.JOBS + (lambda sub: cli.add_job(sub, "fake", run, help="a test job"),))
    assert cli.main(["fake", "--out", str(tmp_path)]) == 0
    (run_dir,) = list(tmp_path.iterdir())
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


def test_alignment_step_shows_bars_that_end_at_their_totals(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo_job.alignment, "DPO_EVAL_PROMPTS", 2)  # keep it fast: the bars are the point here
    config = DemoConfig(dpo_prompts=4, lm_pretrain_steps=3)
    demo = demo_job.Demo(config=config, run=RunDir.create("demo", tmp_path), report=Report("t"), progress=True)
    metrics = demo_job.align_language_model(demo)
    bars = re.findall(r"(pretraining|dpo): +\d+%\|[^|]*\| *(\d+)/(\d+)", capsys.readouterr().err)
    final = {desc: (int(n), int(total)) for desc, n, total in bars}  # each bar's last state
    assert final == {"pretraining": (3, 3), "dpo": (metrics["dpo_steps"], metrics["dpo_steps"])}


@pytest.mark.heavy
def test_real_process_error_and_light_imports(tmp_path):
    """As a process: the one-line error and exit code 2; building the parser imports no heavy library."""
    # a light job (no torch import) for the error path: the process starts in about 1 s, not 4
    proc = subprocess.run([sys.executable, "-m", "irlhf.cli", "routes", "fit", "--map", "missing.osm", "--synthetic",
                           "5", "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("irlhf: error: path='missing.osm' does not exist") and proc.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()
    check = ("import sys; from irlhf import cli; cli.build_parser(); "
             "print(sorted(m for m in ('matplotlib', 'torch', 'gymnasium', 'scipy', 'tqdm') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


@pytest.mark.parametrize("argv, module, config, fields", [
    (["demo"], "demo", "DemoConfig", {"size": "size", "horizon": "horizon", "n_demos": "n_demos",
                                      "discount": "discount", "deep_iters": "deep_iterations",
                                      "imitation_demos": "imitation_demos", "gail_steps": "gail_steps",
                                      "iq_updates": "iq_updates", "preference_labels": "preference_labels",
                                      "dpo_prompts": "dpo_prompts", "lm_pretrain_steps": "lm_pretrain_steps"}),
    (["irl"], "irl", "IrlJobConfig", {k: k for k in ("algorithm", "world", "size", "horizon", "discount",
                                                     "continuous", "macrocell")}),
    (["irl"], "irl", "IrlEnvJobConfig", {k: k for k in ("env", "expert", "episodes", "eval_episodes")}),
    (["bc"], "imitation", "BcJobConfig", {k: k for k in ("env", "demos", "expert", "episodes", "eval_episodes")}),
    (["dagger"], "imitation", "DaggerJobConfig", {k: k for k in ("env", "rounds", "episodes_per_round", "schedule",
                                                                 "expert", "eval_episodes")}),
    (["prefs", "rl"], "prefs", "RlJobConfig", {k: k for k in ("env", "labels", "timesteps", "labeller",
                                                              "eval_episodes")}),
    (["prefs", "fit", "--synthetic", "2"], "prefs", "FitJobConfig", {k: k for k in (
        "comparisons", "rankings", "synthetic_comparisons", "n_items", "model", "alpha")}),
    (["expert"], "expert", "ExpertJobConfig", {k: k for k in ("action", "env", "algo", "timesteps", "force",
                                                              "checkpoint_every", "expert", "eval_episodes")}),
    (["tamer"], "tamer", "TamerJobConfig", {k: k for k in ("env", "episodes", "trainer", "eval_episodes")}),
])
def test_parser_defaults_are_the_job_configs_defaults(argv, module, config, fields):
    """cli.py spells the defaults out (it imports no job module); they must stay the job configs' defaults."""
    import importlib

    args = cli.build_parser().parse_args(argv)
    cls = getattr(importlib.import_module(f"irlhf.jobs.{module}"), config)
    defaults = cls(synthetic=2) if config == "FitJobConfig" else cls()
    assert {dest: getattr(args, dest) for dest in fields} == {dest: getattr(defaults, f) for dest, f in fields.items()}
    assert args.seed == defaults.seed


def test_server_option_defaults_are_the_web_options_defaults():
    from irlhf.label.live import SERVER_OPTIONS, WebOptions

    for argv in (["dagger"], ["tamer"], ["prefs", "rl"]):
        args = cli.build_parser().parse_args(argv)
        defaults = WebOptions()
        assert {n: getattr(args, n) for n in SERVER_OPTIONS} == {
            n: getattr(defaults, "timeout" if n == "label_timeout" else n) for n in SERVER_OPTIONS}
    from irlhf.jobs.irl import IrlJobConfig

    irl_help = " ".join(_subparsers(cli.build_parser())["irl"].format_help().split())
    assert f"({IrlJobConfig().demos} if not given)" in irl_help  # --demos N of the tabular algorithms
