"""``irlhf sweep SPEC.toml``: any ``irlhf`` job over a grid of options x seeds, each trial in its own run directory,
run as Ray tasks (a local ``ray.init()`` by default: all cores, nothing to start) or one after another without Ray.

    name = "gail-cartpole"            # the sweep directory under --out (default: the spec file's name)
    job = "irl gail"                  # the sub-command, as typed after `irlhf`
    seeds = 5                         # 0..4 (or a list: [0, 3, 7]); each trial gets --seed S
    metrics = ["normalized_score"]    # final metrics to tabulate (default: every number the runs log)
    [options]                         # the same in every trial: --env CartPole-v1 --set total_timesteps=50000
    env = "CartPole-v1"
    set = ["total_timesteps=50000"]
    [grid]                            # every combination: --episodes 1, --episodes 4, ...
    episodes = [1, 4, 10]
    [[cases]]                         # optional: a list of option sets, each crossed with the grid
    set = ["total_timesteps=50000", "reward_type=logit"]
    [resources]                       # per trial, as Ray schedules it (default cpu = 1, gpu = 0)
    cpu = 1

Option values become arguments: ``key = v`` -> ``--key v``, ``true`` -> ``--key``, ``false`` -> ``--no-key``, a
list -> ``--key v1 v2`` (``set``: ``--set v1 --set v2``). Every trial is the job run as ``python -m irlhf JOB ... --seed S --out TRIAL_DIR`` in a
fresh process with ``cpu`` torch threads (so a trial computes the same numbers serially, on local Ray and on a
cluster), its output (progress bars included) in ``TRIAL_DIR/log.txt``. The sweep directory holds spec.toml,
trials/<key>/ (trial.json, log.txt, outcome.json, the job's run directory), results.csv (a row per trial: options,
seed, status, wall_seconds, error, final metrics), summary.csv and report.html (mean and 95% t-interval across seeds
per configuration). Started again with the same spec and --out, a sweep runs only the trials without a finished
run; a failed trial is recorded with its error and does not stop the others. On a cluster the sweep directory
must be on a file system every node sees.

Before any trial starts, the spec is checked: an unknown key or job or option, an empty grid, an unreachable
cluster, a trial that needs more CPUs or GPUs than the cluster has are one-line errors naming the value.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from irlhf.core.errors import ValidationError, describe
from irlhf.core.io import atomic_write_text
from irlhf.core.parallel import NO_RAY, choose_backend, execute, progress_bar, ray_available

__all__ = ["Spec", "Trial", "load_spec", "trials_of", "run_trial", "run", "run_command", "SweepResult"]

SPEC_KEYS = ("name", "job", "seeds", "metrics", "options", "grid", "cases", "resources")
RESERVED = ("seed", "out")  # every trial's own: from seeds and the sweep directory
REPEATED = ("set",)  # options given once per value (argparse action="append")
OUTCOME = "outcome.json"


@dataclasses.dataclass(frozen=True)
class Spec:
    """A sweep: ``job`` (the sub-command's words) with ``options`` fixed, every combination of ``grid`` crossed with
    each of ``cases``, each at every seed; ``cpu`` / ``gpu`` per trial; ``metrics`` to tabulate (None: all)."""

    name: str
    job: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    grid: Mapping[str, Sequence[Any]] = dataclasses.field(default_factory=dict)
    cases: tuple[Mapping[str, Any], ...] = ({},)
    metrics: tuple[str, ...] | None = None
    cpu: float = 1.0
    gpu: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str | None = None) -> Spec:
        """A spec from its TOML table; ``name`` is the default sweep name (the file's stem)."""
        unknown = sorted(set(data) - set(SPEC_KEYS))
        if unknown:
            raise ValidationError(f"spec: unknown key(s) {unknown}; expected some of {list(SPEC_KEYS)}")
        job = data.get("job")
        words = tuple(job.split()) if isinstance(job, str) else tuple(job) if isinstance(job, list) else ()
        if not words or not all(isinstance(w, str) and w for w in words):
            raise ValidationError(f"spec: job={describe(job)}; expected the irlhf sub-command, e.g. \"irl gail\"")
        sweep_name = data.get("name", name)
        if not isinstance(sweep_name, str) or not sweep_name.strip() or "/" in sweep_name or sweep_name in (".", ".."):
            raise ValidationError(f"spec: name={describe(sweep_name)}; expected a directory name (no '/')")
        resources = _table(data, "resources")
        unknown = sorted(set(resources) - {"cpu", "gpu"})
        if unknown:
            raise ValidationError(f"spec: resources has unknown key(s) {unknown}; expected cpu and/or gpu")
        cpu, gpu = resources.get("cpu", 1), resources.get("gpu", 0)
        if not _number(cpu) or cpu <= 0 or (cpu > 1 and cpu != int(cpu)):
            raise ValidationError(f"spec: resources.cpu={describe(cpu)}; expected a fraction in (0, 1] or a whole "
                                  "number of CPUs")
        if not _number(gpu) or gpu < 0:
            raise ValidationError(f"spec: resources.gpu={describe(gpu)}; expected a number >= 0")
        options, grid = _table(data, "options"), _table(data, "grid")
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise ValidationError(f"spec: grid.{key}={describe(values)}; expected a non-empty list of values")
        cases = data.get("cases", [{}])
        if not isinstance(cases, list) or not cases or not all(isinstance(c, dict) for c in cases):
            raise ValidationError(f"spec: cases={describe(cases)}; expected a non-empty list of option tables")
        for where, keys in [("options", options), ("grid", grid)] + [(f"cases[{i}]", c) for i, c in enumerate(cases)]:
            bad = sorted(k for k in keys if k.lstrip("-").replace("_", "-") in RESERVED)
            if bad:
                raise ValidationError(f"spec: {where} sets {bad}; every trial's --seed comes from `seeds` and its "
                                      "--out from the sweep directory")
        seeds = data.get("seeds", [0])
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            if seeds < 1:
                raise ValidationError(f"spec: seeds={seeds}; expected a count >= 1 or a list of seeds")
            seeds = list(range(seeds))
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                               for s in seeds):
            raise ValidationError(f"spec: seeds={describe(seeds)}; expected a count >= 1 or a non-empty list of ints")
        if len(set(seeds)) != len(seeds):
            raise ValidationError(f"spec: seeds={seeds} repeats a seed; expected distinct seeds")
        metrics = data.get("metrics")
        if metrics is not None and (not isinstance(metrics, list) or not metrics
                                    or not all(isinstance(m, str) for m in metrics)):
            raise ValidationError(f"spec: metrics={describe(metrics)}; expected a non-empty list of metric names")
        return cls(name=sweep_name.strip(), job=words, seeds=tuple(seeds), options=options, grid=grid,
                   cases=tuple(cases), metrics=None if metrics is None else tuple(metrics), cpu=float(cpu),
                   gpu=float(gpu))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _table(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ValidationError(f"spec: {key}={describe(value)}; expected a table ([{key}])")
    return dict(value)


def load_spec(path: str | os.PathLike[str]) -> Spec:
    """Read a sweep spec from a TOML file (module docstring)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"spec={str(path)!r}: no such file; expected a sweep spec (TOML)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"spec={str(path)!r}: not valid TOML ({exc})") from None
    return Spec.from_dict(data, name=path.stem)


# -- trials ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Trial:
    """One run of the job: ``options`` (the configuration), ``seed``, ``key`` (its directory under trials/)."""

    key: str
    options: dict[str, Any]
    seed: int
    argv: tuple[str, ...]  # after `irlhf`, without --seed / --out


def option_arguments(options: Mapping[str, Any]) -> list[str]:
    """``{"episodes": 4, "progress": False, "sizes": [1, 2], "set": ["a=1", "b=2"]}`` -> ``--episodes 4
    --no-progress --sizes 1 2 --set a=1 --set b=2`` (``set`` is irlhf's one repeatable option: a flag per value)."""
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + key.lstrip("-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + key.lstrip("-"))
        elif isinstance(value, list) and key.lstrip("-") in REPEATED:
            argv += [word for item in value for word in (flag, str(item))]
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        elif isinstance(value, (str, int, float)):
            argv += [flag, str(value)]
        else:
            raise ValidationError(f"spec: option {key}={describe(value)}; expected a string, number, boolean or list")
    return argv


def trials_of(spec: Spec) -> list[Trial]:
    """Every trial of ``spec``: each case crossed with the grid's combinations, each at every seed."""
    keys = list(spec.grid)
    trials = []
    for case in spec.cases:
        for combination in itertools.product(*(spec.grid[k] for k in keys)):
            options = {**spec.options, **case, **dict(zip(keys, combination))}
            for seed in spec.seeds:
                argv = (*spec.job, *option_arguments(options))
                digest = hashlib.sha1(json.dumps([argv, seed]).encode()).hexdigest()[:10]
                trials.append(Trial(f"seed{seed}-{digest}", options, seed, argv))
    return trials


def check_arguments(trials: Sequence[Trial]) -> None:
    """Parse every trial's arguments with the irlhf command's parser (in one child process, so this job needs
    nothing from the command's layer); a one-line error at the first that does not parse."""
    argvs = [[*t.argv, "--seed", str(t.seed), "--out", "sweep-check"] for t in trials]
    proc = subprocess.run([sys.executable, "-m", "irlhf", "--check-args"], input=json.dumps(argvs), text=True,
                          capture_output=True)
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        raise ValidationError(lines[-1].removeprefix("irlhf: error: ") if lines else
                              f"the trials' arguments do not parse (exit {proc.returncode})")


def run_trial(trial: Mapping[str, Any]) -> dict[str, Any]:
    """Run one trial (a dict: argv, seed, dir, threads, cwd) as ``python -m irlhf`` in a fresh process, its output
    in dir/log.txt; return and write its outcome (status finished / failed, seconds, error, final metrics). A
    previous attempt's files in dir are removed first. Runs wherever it is called: here or in a Ray worker."""
    trial_dir = Path(trial["dir"])
    if trial_dir.exists():
        shutil.rmtree(trial_dir)
    trial_dir.mkdir(parents=True)
    atomic_write_text(trial_dir / "trial.json", json.dumps(dict(trial), indent=2, sort_keys=True) + "\n")
    threads = str(trial["threads"])
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"}
    cwd = trial.get("cwd") if trial.get("cwd") and Path(trial["cwd"]).is_dir() else None
    start = time.perf_counter()
    with open(trial_dir / "log.txt", "w", encoding="utf-8") as log:
        code = subprocess.run([sys.executable, "-m", "irlhf", *trial["argv"], "--seed", str(trial["seed"]),
                               "--out", str(trial_dir)], stdout=log, stderr=subprocess.STDOUT, env=env,
                              cwd=cwd).returncode
    outcome = {"seconds": time.perf_counter() - start, "exit_code": code, **read_run(trial_dir)}
    if code != 0 and outcome["status"] == "finished":
        outcome["status"] = "failed"
    if outcome["status"] != "finished" and not outcome.get("error"):
        tail = [line for line in (trial_dir / "log.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
        outcome["error"] = tail[-1][:500] if tail else f"exit code {code}, no output"
    atomic_write_text(trial_dir / OUTCOME, json.dumps(outcome, indent=2, sort_keys=True) + "\n")
    return outcome


def read_run(trial_dir: Path) -> dict[str, Any]:
    """The status, error and final metrics (metrics.jsonl's lines merged, later over earlier; finite numbers
    only) of the run directory the job wrote under ``trial_dir``."""
    runs = sorted(p for p in trial_dir.iterdir() if (p / "run.json").is_file())
    if not runs:
        return {"status": "failed", "metrics": {}}
    run_dir = runs[-1]
    status = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    metrics: dict[str, float] = {}
    if (run_dir / "metrics.jsonl").is_file():
        for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
            record = json.loads(line) if line.strip() else {}
            metrics.update({k: float(v) for k, v in record.items() if _number(v)})
    return {"status": "finished" if status.get("status") == "finished" else "failed", "error": status.get("error"),
            "run": run_dir.name, "metrics": metrics}


@dataclasses.dataclass
class SweepResult:
    """directory: the sweep directory; rows: a dict per trial (results.csv); summary: a dict per configuration
    (summary.csv); ran / reused / failed: trial counts of this call."""

    directory: Path
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    ran: int
    reused: int
    failed: int


def run(spec: Spec | Mapping[str, Any] | str | os.PathLike[str], *, out: str | os.PathLike[str] = "runs",
        address: str | None = None, backend: str = "auto", progress: bool = True,
        echo: Callable[[str], None] = print) -> SweepResult:
    """Run the sweep ``spec`` (a Spec, its TOML table, or a path to its TOML file) into ``out``/<name>/.

    backend: "auto" (Ray when installed, else one trial after another, saying so), "ray", or "serial".
    address: an existing Ray cluster (default RAY_ADDRESS, else a local instance). Trials with a finished run in
    the sweep directory are not run again (resume)."""
    if backend not in ("auto", "ray", "serial"):
        raise ValidationError(f"backend={backend!r}: expected 'auto', 'ray' or 'serial'")
    if not isinstance(spec, Spec):
        spec = Spec.from_dict(spec) if isinstance(spec, Mapping) else load_spec(spec)
    if backend != "auto" or address:  # why: a backend that cannot run is named before the slower argument check
        backend = choose_backend(backend, None, echo, address)
    trials = trials_of(spec)
    check_arguments(trials)
    directory = Path(out) / spec.name
    if directory.exists() and not directory.is_dir():
        raise ValidationError(f"out: {str(directory)!r} exists and is not a directory")
    outcomes: dict[str, dict[str, Any]] = {}
    for trial in trials:
        previous = directory / "trials" / trial.key / OUTCOME
        if previous.is_file():
            recorded = json.loads(previous.read_text(encoding="utf-8"))
            if recorded.get("status") == "finished":
                outcomes[trial.key] = recorded
    todo = [t for t in trials if t.key not in outcomes]
    reused = len(outcomes)
    if todo and backend == "auto":
        backend = "ray" if ray_available() else "serial"
        if backend == "serial":
            echo(NO_RAY + "; the trials run one after another")
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(directory / "spec.json", json.dumps(dataclasses.asdict(spec), indent=2) + "\n")
    threads = max(1, int(spec.cpu))
    jobs = [{"argv": list(t.argv), "seed": t.seed, "dir": str((directory / "trials" / t.key).resolve()),
             "threads": threads, "cwd": os.getcwd()} for t in todo]
    echo(f"sweep {spec.name}: {len(trials)} trials ({reused} already finished), {len(todo)} to run "
         f"{'as Ray tasks' if backend == 'ray' else 'one after another'}; logs in {directory / 'trials'}")
    state = {"failed": 0}
    bar = progress_bar(len(trials), reused, progress, "sweep")

    def done(index: int, called: dict[str, Any]) -> None:
        # run_trial records a job's own failure; a failed call here is a lost worker or an error in run_trial
        outcome = called["result"] if called["status"] == "finished" else {**called, "metrics": {}}
        outcomes[todo[index].key] = outcome
        state["failed"] += outcome.get("status") != "finished"
        bar.update(1)
        bar.set_postfix(failed=state["failed"], refresh=False)

    try:
        execute(run_trial, jobs, backend=backend, cpu=spec.cpu, gpu=spec.gpu, address=address, on_done=done,
                on_running=lambda n: bar.set_postfix(running=n, failed=state["failed"]))
    finally:
        bar.close()
        rows, summary = write_tables(directory, spec, trials, outcomes)
    failed = sum(row["status"] != "finished" for row in rows)
    echo(f"sweep {spec.name}: {len(rows) - failed} finished, {failed} failed; {directory / 'report.html'}")
    return SweepResult(directory, rows, summary, len(todo), reused, failed)


# -- tables and report -----------------------------------------------------------------------------------------
def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_tables(directory: Path, spec: Spec, trials: Sequence[Trial],
                 outcomes: Mapping[str, Mapping[str, Any]]) -> tuple[list[dict], list[dict]]:
    """results.csv (a row per trial), summary.csv (a row per configuration: finished / failed counts, mean and
    95% t-interval half-width of each metric across its finished seeds) and report.html in ``directory``."""
    import numpy as np

    from irlhf.core.stats import t_half_width
    from irlhf.report.html import Report

    option_keys = list(dict.fromkeys(k for t in trials for k in t.options))
    rows = []
    for trial in trials:
        outcome = outcomes.get(trial.key, {"status": "not run"})
        options = {k: json.dumps(v) if isinstance(v, list) else v for k, v in trial.options.items()}
        rows.append({**outcome.get("metrics", {}), "trial": trial.key, **{k: options.get(k) for k in option_keys},
                     "seed": trial.seed, "status": outcome.get("status"), "wall_seconds": outcome.get("seconds"),
                     "error": outcome.get("error") if outcome.get("status") != "finished" else None})
    logged = list(dict.fromkeys(k for t in trials for k in outcomes.get(t.key, {}).get("metrics", {})))
    metrics = list(spec.metrics) if spec.metrics is not None else logged
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(json.dumps([row[k] for k in option_keys], default=str), []).append(row)
    summary = []
    for members in groups.values():
        finished = [r for r in members if r["status"] == "finished"]
        entry = {**{k: members[0][k] for k in option_keys}, "finished": len(finished),
                 "failed": sum(r["status"] == "failed" for r in members)}
        for metric in metrics:
            values = np.array([r[metric] for r in finished if _number(r.get(metric))], dtype=np.float64)
            entry[f"{metric}_mean"] = float(values.mean()) if len(values) else None
            entry[f"{metric}_ci95"] = float(t_half_width(values)) if len(values) > 1 else None
        summary.append(entry)
    result_columns = ["trial", *option_keys, "seed", "status", "wall_seconds", "error", *metrics]
    summary_columns = [*option_keys, "finished", "failed", *(f"{m}_{s}" for m in metrics for s in ("mean", "ci95"))]
    atomic_write_text(directory / "results.csv", _csv(rows, result_columns))
    atomic_write_text(directory / "summary.csv", _csv(summary, summary_columns))
    report = Report(f"sweep {spec.name}: irlhf {' '.join(spec.job)}")
    report.text(f"{len(trials)} trials: {len(groups)} configurations x {len(spec.seeds)} seeds "
                f"({', '.join(map(str, spec.seeds))}); {sum(r['status'] == 'finished' for r in rows)} finished. "
                "Cells: mean +- 95% t-interval half-width across the finished seeds.")
    report.section("Configurations").table(
        [[*(e[k] for k in option_keys), e["finished"], e["failed"],
          *(_cell(e[f"{m}_mean"], e[f"{m}_ci95"]) for m in metrics)] for e in summary],
        header=[*option_keys, "finished", "failed", *metrics])
    failed = [r for r in rows if r["status"] != "finished"]
    if failed:
        report.section("Trials that did not finish").table(
            [[r["trial"], r["seed"], r["status"], r["error"] or ""] for r in failed],
            header=["trial", "seed", "status", "error"])
    report.write(directory)
    return rows, summary


def _cell(mean: float | None, half: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4g}" if half is None else f"{mean:.4g} +- {half:.2g}"


def run_command(args: Any) -> int:
    """``irlhf sweep SPEC``: run it; exit 1 when some trial failed (each is in results.csv with its error)."""
    backend = "serial" if args.serial else "auto"
    result = run(args.spec, out=args.out or "runs", address=args.address, backend=backend,
                 progress=not args.no_progress)
    return 1 if result.failed else 0
