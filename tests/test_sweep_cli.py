"""irlhf sweep (irlhf.jobs.sweep): the spec and its one-line errors, the trials it expands to, a real sweep of a
tiny job (results, summary with the t-interval, a failed trial recorded, resume running only what did not
finish), the serial fallback without Ray; Ray locally and on a two-node cluster (slow) give the same numbers."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from irlhf import cli
from irlhf.core.errors import ValidationError
from irlhf.core.stats import t_half_width
from irlhf.jobs import sweep

TINY = {"job": "irl maxent", "options": {"size": 6, "demos": 8, "horizon": 4, "no-progress": True},
        "metrics": ["evd"]}


def spec(**changes):
    return sweep.Spec.from_dict({**TINY, **changes}, name="tiny")


@pytest.mark.parametrize("changes, message", [
    ({"jobb": "irl"}, r"unknown key\(s\) \['jobb'\]"),
    ({"job": ""}, "job=''.*sub-command"),
    ({"grid": {"horizon": []}}, r"grid.horizon=\[\]; expected a non-empty list"),
    ({"grid": {"seed": [1, 2]}}, r"grid sets \['seed'\].*seeds"),
    ({"options": {"out": "x"}}, r"options sets \['out'\]"),
    ({"seeds": 0}, "seeds=0; expected a count >= 1"),
    ({"seeds": [1, 1]}, "repeats a seed"),
    ({"resources": {"cpu": 1.5}}, "resources.cpu=1.5"),
    ({"resources": {"cpus": 1}}, r"unknown key\(s\) \['cpus'\]"),
    ({"cases": []}, "cases=.*non-empty list"),
    ({"name": "a/b"}, "name='a/b'"),
])
def test_bad_specs_are_one_line_errors(changes, message):
    with pytest.raises(ValidationError, match=message):
        spec(**changes)


def test_trials_cross_cases_grid_and_seeds_with_stable_keys():
    s = spec(grid={"horizon": [4, 6]}, cases=[{}, {"l2": 0.5}], seeds=[0, 3])
    trials = sweep.trials_of(s)
    assert len(trials) == 2 * 2 * 2 and len({t.key for t in trials}) == 8
    assert [t.seed for t in trials[:2]] == [0, 3]
    assert trials[-1].options == {**TINY["options"], "l2": 0.5, "horizon": 6}
    assert trials[-1].argv == ("irl", "maxent", "--size", "6", "--demos", "8", "--horizon", "6", "--no-progress",
                               "--l2", "0.5")
    assert [t.key for t in sweep.trials_of(s)] == [t.key for t in trials]  # the same spec, the same directories
    assert sweep.option_arguments({"a": False, "b": [1, 2]}) == ["--no-a", "--b", "1", "2"]
    assert sweep.option_arguments({"set": ["x=1", "y=2"]}) == ["--set", "x=1", "--set", "y=2"]


def test_the_example_spec_expands_to_trials_whose_arguments_parse():
    trials = sweep.trials_of(sweep.load_spec(Path(__file__).parents[1] / "examples" / "sweep_gail.toml"))
    assert len(trials) == 2 * 3 * 5
    assert " --set total_timesteps=50000 --set reward_type=logit --episodes 10" in " ".join(trials[-1].argv)
    sweep.check_arguments(trials)


def test_unknown_job_or_option_fails_before_any_trial(tmp_path):
    for changes, message in [({"job": "irl maxentt"}, "invalid choice: 'maxentt'"),
                             ({"grid": {"horizonn": [1]}}, "unrecognized arguments: --horizonn 1")]:
        with pytest.raises(ValidationError, match=message):
            sweep.run(spec(**changes), out=tmp_path, backend="serial", progress=False)
    assert not (tmp_path / "tiny").exists()


@pytest.mark.heavy
def test_sweep_runs_records_a_failure_and_resumes(tmp_path):
    """Two configurations of a tiny job, one failing inside the job (no demos): started again, only the failed
    trial runs and the finished one keeps its numbers."""
    s = spec(grid={"demos": [8, 0]})
    first = sweep.run(s, out=tmp_path, backend="serial", progress=False, echo=lambda line: None)
    assert (first.ran, first.reused, first.failed) == (2, 0, 1)
    rows = list(csv.DictReader((tmp_path / "tiny" / "results.csv").open()))
    assert [r["status"] for r in rows] == ["finished", "failed"]
    assert "demos=0" in rows[1]["error"] and rows[1]["evd"] == "" and float(rows[0]["evd"]) >= 0
    page = (tmp_path / "tiny" / "report.html").read_text()
    assert "Trials that did not finish" in page and "demos=0" in page
    again = sweep.run(s, out=tmp_path, backend="serial", progress=False, echo=lambda line: None)
    assert (again.ran, again.reused, again.failed) == (1, 1, 1)
    assert again.rows[0]["evd"] == first.rows[0]["evd"]


def test_summary_is_the_mean_and_t_interval_over_finished_seeds(tmp_path):
    s = spec(grid={"horizon": [4, 6]}, seeds=3)
    trials = sweep.trials_of(s)
    evd = {t.key: float(i) ** 2 for i, t in enumerate(trials)}
    outcomes = {t.key: {"status": "finished", "seconds": 1.0, "metrics": {"evd": evd[t.key], "other": 1.0}}
                for t in trials[:5]}  # the last trial failed
    outcomes[trials[5].key] = {"status": "failed", "error": "boom", "metrics": {}}
    rows, summary = sweep.write_tables(tmp_path, s, trials, outcomes)
    assert [r["status"] for r in rows] == ["finished"] * 5 + ["failed"] and rows[5]["error"] == "boom"
    first, second = (np.array([evd[t.key] for t in trials[k:k + 3] if outcomes[t.key]["status"] == "finished"])
                     for k in (0, 3))
    assert (summary[0]["finished"], summary[1]["finished"], summary[1]["failed"]) == (3, 2, 1)
    assert np.isclose(summary[0]["evd_mean"], first.mean()) and np.isclose(summary[0]["evd_ci95"], t_half_width(first))
    assert np.isclose(summary[1]["evd_mean"], second.mean()) and "other_mean" not in summary[0]  # metrics = ["evd"]
    assert list(csv.DictReader((tmp_path / "summary.csv").open()))[1]["failed"] == "1"


def test_without_ray_the_trials_run_serially_and_it_says_how_to_parallelise(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    # the serial path runs real trials in test_sweep_runs_records_a_failure_and_resumes; here only who runs them
    monkeypatch.setattr(sweep, "check_arguments", lambda trials: None)
    monkeypatch.setattr(sweep, "run_trial", lambda job: {"status": "finished", "seconds": 0.0, "metrics": {"evd": 1}})
    said = []
    result = sweep.run(spec(), out=tmp_path, progress=False, echo=said.append)
    assert result.failed == 0 and said[0].startswith(sweep.NO_RAY) and "one after another" in said[1]
    with pytest.raises(ValidationError, match="ray is not installed"):
        sweep.run(spec(seeds=[5]), out=tmp_path, backend="ray", progress=False)
    with pytest.raises(ValidationError, match=r"address='127.0.0.1:6379': ray is not installed"):
        sweep.run(spec(seeds=[5]), out=tmp_path, address="127.0.0.1:6379", progress=False)
    with pytest.raises(ValidationError, match=r"with backend='serial': a cluster address needs backend 'ray'"):
        sweep.run(spec(seeds=[5]), out=tmp_path, address="127.0.0.1:6379", backend="serial", progress=False)


def test_cli_exit_codes(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text('job = "irl maxent"\n[grid]\nhorizon = []\n')
    assert cli.main(["sweep", str(path), "--out", str(tmp_path), "--serial"]) == 2
    assert "grid.horizon=[]; expected a non-empty list" in capsys.readouterr().err
    path.write_text("job = [")
    assert cli.main(["sweep", str(path), "--out", str(tmp_path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


@pytest.mark.slow
def test_serial_local_ray_and_two_node_cluster_give_the_same_numbers(tmp_path):
    """The same spec serially, on a local Ray instance and on a two-node cluster started with `ray start` here:
    the same final metrics to the last digit (each trial is a fresh process with the same threads)."""
    pytest.importorskip("ray", reason="irlhf[ray] is not installed")
    ray_cli = shutil.which("ray")
    if ray_cli is None:
        pytest.skip("the ray command is not on PATH")
    s = spec(grid={"horizon": [4, 6]}, seeds=2)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # a throwaway cluster on this machine: no token to hand out
    serial = sweep.run(s, out=tmp_path / "serial", backend="serial", progress=False, echo=lambda line: None)
    local = subprocess.run([sys.executable, "-c", "import sys; from irlhf.jobs import sweep; "
                            "r = sweep.run(sweep.Spec.from_dict(__import__('json').loads(sys.argv[1]), 'tiny'), "
                            "out=sys.argv[2], backend='ray', progress=False)",
                            json.dumps({**TINY, "grid": {"horizon": [4, 6]}, "seeds": 2}), str(tmp_path / "local")],
                           capture_output=True, text=True, timeout=300, env=env)
    assert local.returncode == 0, local.stderr[-2000:]
    port = 6390 + (hash(str(tmp_path)) % 50)
    try:
        subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                        "--disable-usage-stats"], check=True, capture_output=True, timeout=120, env=env)
        subprocess.run([ray_cli, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1"], check=True,
                       capture_output=True, timeout=120, env=env)
        cluster = subprocess.run(
            [sys.executable, "-c", "import sys; from irlhf.jobs import sweep; "
             "r = sweep.run(sweep.Spec.from_dict(__import__('json').loads(sys.argv[1]), 'tiny'), out=sys.argv[2], "
             "address=sys.argv[3], backend='ray', progress=False); "
             "import ray; print('NODES', len([n for n in ray.nodes() if n['Alive']]))",
             json.dumps({**TINY, "grid": {"horizon": [4, 6]}, "seeds": 2}), str(tmp_path / "cluster"),
             f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=300, env=env)
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120, env=env)
    assert cluster.returncode == 0, cluster.stderr[-2000:]
    assert "NODES 2" in cluster.stdout
    table = {}
    for name in ("serial", "local", "cluster"):
        rows = list(csv.DictReader((tmp_path / name / "tiny" / "results.csv").open()))
        table[name] = [(r["trial"], r["status"], r["evd"]) for r in rows]
    assert table["serial"] == table["local"] == table["cluster"]
    assert all(status == "finished" for _, status, _ in table["serial"]) and len(serial.rows) == 4
