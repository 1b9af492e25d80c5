"""The sweep runner's overhead on Ray against a plain ``concurrent.futures`` process pool, and the classic-control
table's wall-clock projected on 1, 8 and 64 nodes.

Overhead (measured). The same trials, one after another through each backend, ``--workers`` at a time:

* ``cli``: what ``irlhf sweep`` runs: ``--cli-trials`` trials of the smallest irlhf job (``irlhf irl maxent --size
  6 --demos 8 --horizon 4``, a fresh ``python -m irlhf`` process each, ``irlhf.jobs.sweep.run_trial``), through
  ``irlhf.core.parallel.execute(backend="ray")`` and through ``ProcessPoolExecutor(workers).map(run_trial, ...)``;
* ``function``: ``--trials`` trials of ``busy(seconds)`` (a numpy loop of ``--busy`` seconds) and of a zero-work
  trial, through ``irlhf.core.parallel.run_many(backend="ray")`` and ``ProcessPoolExecutor(workers).map``.

Time per trial = wall / trials, from the first submission to the last result, the pool or Ray instance already
started (its start is reported apart: ``ray.init()`` once per sweep, the pool's spawn once per script); ratio =
Ray / pool (target <= 1.2). Each pair runs back to back; ``--repeats`` alternates their order.

Projection (on paper). Per-trial seconds of the issue-24 table (10 methods x 4 envs x N in 1/4/10 x 5 seeds: 600
trials) from ``MEASURED_SECONDS`` (the s / run columns of docs/RESULTS.md, one core per trial, this 2-core
machine), or from a results log (``--times benchmarks/out/irl_classic_control.jsonl``: the mean of its rows per env
and method, where it has them). Wall-clock on k nodes of c cores = the longest-processing-time-first schedule of
the trials on k x c one-core slots, each trial plus the Ray overhead per trial measured above, plus one
``ray.init``. Assumptions (written with the table): nodes as fast per core as this machine, one trial per core
(one torch thread), no other load, the sweep directory on a shared file system whose writes are not the limit.

    python benchmarks/sweep_scaling.py                       # 100 function trials, 20 CLI trials, 2 workers
    python benchmarks/sweep_scaling.py --trials 100 --cli-trials 100 --repeats 2

Writes benchmarks/out/sweep_scaling.json and prints both tables.
"""

from __future__ import annotations

import argparse
import heapq
import json
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from irlhf.core import parallel
from irlhf.jobs import sweep

OUT = Path(__file__).resolve().parent / "out"
ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3")
DEMOS = (1, 4, 10)
SEEDS = 5
# s / run (one core per run, 2-core machine, 2 workers) from docs/RESULTS.md: the classic-control tables (BC, GAIL,
# AIRL, IQ-Learn per env); DAgger: "BC and DAgger normalised scores" (160 runs in 145 s on 2 workers: 1.8 s a run);
# on CartPole: SQIL 58.9 (10 seeds, against imitation), density 29, T-REX 78, D-REX 79, GCL 74 (trajectory weights).
# A method measured on CartPole only is scaled to another env by GAIL's ratio of that env to CartPole.
MEASURED_SECONDS = {
    ("CartPole-v1", "BC"): 4, ("Acrobot-v1", "BC"): 1, ("MountainCar-v0", "BC"): 1, ("LunarLander-v3", "BC"): 2,
    ("CartPole-v1", "GAIL"): 34, ("Acrobot-v1", "GAIL"): 37, ("MountainCar-v0", "GAIL"): 166,
    ("LunarLander-v3", "GAIL"): 167,
    ("CartPole-v1", "AIRL"): 57, ("Acrobot-v1", "AIRL"): 43, ("MountainCar-v0", "AIRL"): 342,
    ("LunarLander-v3", "AIRL"): 192,
    ("CartPole-v1", "IQ-Learn"): 46, ("Acrobot-v1", "IQ-Learn"): 67, ("MountainCar-v0", "IQ-Learn"): 102,
    ("LunarLander-v3", "IQ-Learn"): 275,
    **{(env, "DAgger"): 1.8 for env in ENVS}, ("CartPole-v1", "SQIL"): 58.9, ("CartPole-v1", "density"): 29,
    ("CartPole-v1", "T-REX"): 78, ("CartPole-v1", "D-REX"): 79, ("CartPole-v1", "GCL"): 74,
}
METHODS = ("BC", "DAgger", "GAIL", "AIRL", "IQ-Learn", "GCL", "SQIL", "density", "T-REX", "D-REX")
CLI_JOB = ("irl", "maxent", "--size", "6", "--demos", "8", "--horizon", "4", "--no-progress")


def busy(params: dict) -> dict:
    """About ``params["seconds"]`` of single-threaded numpy work (0: none)."""
    end, x = time.perf_counter() + params["seconds"], np.ones(64)
    while time.perf_counter() < end:
        x = np.sqrt(x + 1.0)
    return {"value": float(x[0])}


def _pool_run(function, items: list, workers: int) -> tuple[float, float]:
    """(start seconds, run seconds) of a fresh spawned ProcessPoolExecutor mapping ``function`` over ``items``."""
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_noop, range(workers)))  # why: the pool's processes started before the clock
        t1 = time.perf_counter()
        list(pool.map(function, items))
        return t1 - t0, time.perf_counter() - t1


def _noop(i: int) -> int:
    return i


def _ray_run(function, items: list, workers: int) -> float:
    start = time.perf_counter()
    parallel.execute(function, items, backend="ray", workers=workers, on_done=lambda i, o: None)
    return time.perf_counter() - start


def overhead(trials: int, cli_trials: int, busy_seconds: float, workers: int, repeats: int) -> list[dict]:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_start = time.perf_counter() - t0
    _ray_run(busy, [{"seconds": 0.0}] * workers * 2, workers)  # why: Ray's worker processes started before the clock
    rows = []
    with tempfile.TemporaryDirectory(prefix="sweep-scaling-") as tmp:
        cases = [("function, zero work", busy, [{"seconds": 0.0}] * trials),
                 (f"function, {busy_seconds:g} s of numpy", busy, [{"seconds": busy_seconds}] * trials)]
        if cli_trials:
            jobs = [{"argv": list(CLI_JOB), "seed": i, "dir": str(Path(tmp) / f"t{i}"), "threads": 1, "cwd": tmp}
                    for i in range(cli_trials)]
            cases.append(("irlhf sweep trial (irl maxent, fresh process)", sweep.run_trial, jobs))
        for name, function, items in cases:
            pool_s, ray_s, pool_start = [], [], []
            for r in range(repeats):
                order = ("pool", "ray") if r % 2 == 0 else ("ray", "pool")
                for which in order:
                    if which == "pool":
                        started, seconds = _pool_run(function, items, workers)
                        pool_start.append(started)
                        pool_s.append(seconds)
                    else:
                        ray_s.append(_ray_run(function, items, workers))
            pool_ms, ray_ms = (1000 * statistics.median(s) / len(items) for s in (pool_s, ray_s))
            rows.append({"trials": name, "n": len(items), "pool_ms_per_trial": pool_ms, "ray_ms_per_trial": ray_ms,
                         "ratio": ray_ms / pool_ms, "pool_start_s": statistics.median(pool_start),
                         "ray_init_s": ray_start, "ray_overhead_ms_per_trial": ray_ms - pool_ms})
            print(f"{name}: pool {pool_ms:.1f} ms / trial, Ray {ray_ms:.1f} ms / trial ({ray_ms / pool_ms:.2f}x)",
                  flush=True)
    ray.shutdown()
    return rows


def trial_seconds(times_log: str | None) -> dict[tuple[str, str], float]:
    """Seconds per trial for every (env, method) of the table: a log's mean where it has the pair, else
    MEASURED_SECONDS, else the CartPole figure scaled by GAIL's env / CartPole ratio."""
    logged: dict[tuple[str, str], list[float]] = {}
    if times_log:
        for row in parallel.read_log(Path(times_log)):
            logged.setdefault((row["env"], row["method"]), []).append(float(row["seconds"]))
    seconds = {}
    for env in ENVS:
        for method in METHODS:
            if (env, method) in logged:
                seconds[env, method] = statistics.mean(logged[env, method])
            elif (env, method) in MEASURED_SECONDS:
                seconds[env, method] = MEASURED_SECONDS[env, method]
            else:
                scale = MEASURED_SECONDS[env, "GAIL"] / MEASURED_SECONDS["CartPole-v1", "GAIL"]
                seconds[env, method] = MEASURED_SECONDS["CartPole-v1", method] * scale
    return seconds


def makespan(durations: list[float], slots: int) -> float:
    """Wall seconds of the longest-processing-time-first schedule of ``durations`` on ``slots`` slots."""
    finish = [0.0] * slots
    for d in sorted(durations, reverse=True):
        heapq.heappush(finish, heapq.heappop(finish) + d)
    return max(finish)


def projection(seconds: dict, overhead_s: float, ray_init_s: float, cores: tuple[int, ...]) -> list[dict]:
    durations = [seconds[env, m] + overhead_s for env in ENVS for m in METHODS for _ in DEMOS for _ in range(SEEDS)]
    rows = []
    for per_node in cores:
        for nodes in (1, 8, 64):
            wall = makespan(durations, nodes * per_node) + ray_init_s
            rows.append({"nodes": nodes, "cores_per_node": per_node, "trials": len(durations),
                         "core_hours": sum(durations) / 3600, "wall_hours": wall / 3600,
                         "longest_trial_s": max(durations)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="function trials per backend")
    parser.add_argument("--cli-trials", type=int, default=20, help="irlhf sweep trials per backend (0: none)")
    parser.add_argument("--busy", type=float, default=0.1, help="seconds of work of the busy function trial")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs per case (order alternates)")
    parser.add_argument("--times", help="a results log (irl_classic_control.jsonl) for per-trial seconds")
    parser.add_argument("--cores", type=int, nargs="+", default=[2, 16], help="cores per node in the projection")
    parser.add_argument("--project-only", action="store_true", help="redo the projection from the overhead "
                        "measured in benchmarks/out/sweep_scaling.json (no new measurement)")
    args = parser.parse_args()
    if args.project_only:
        measured = json.loads((OUT / "sweep_scaling.json").read_text())
        rows = measured["overhead"]
        per_trial_s = max(0.0, rows[0]["ray_overhead_ms_per_trial"]) * measured["args"]["workers"] / 1000
        print_projection(projection(trial_seconds(args.times), per_trial_s, rows[0]["ray_init_s"],
                                    tuple(args.cores)), per_trial_s)
        return

    load = os.getloadavg()[0]
    rows = overhead(args.trials, args.cli_trials, args.busy, args.workers, args.repeats)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.2f} at the start; "
          f"{args.workers} workers")
    print("| trials | n | pool ms / trial | Ray ms / trial | Ray / pool | pool start s | ray.init s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['trials']} | {r['n']} | {r['pool_ms_per_trial']:.1f} | {r['ray_ms_per_trial']:.1f} | "
              f"{r['ratio']:.2f} | {r['pool_start_s']:.1f} | {r['ray_init_s']:.1f} |")
    # the Ray cost per trial in the projection: the zero-work trials' excess over the pool (scheduling alone), per
    # worker slot; with real trials the excess was within the noise
    per_trial_s = max(0.0, rows[0]["ray_overhead_ms_per_trial"]) * args.workers / 1000
    plan = projection(trial_seconds(args.times), per_trial_s, rows[0]["ray_init_s"], tuple(args.cores))
    print_projection(plan, per_trial_s)
    OUT.mkdir(exist_ok=True)
    (OUT / "sweep_scaling.json").write_text(json.dumps(
        {"args": vars(args), "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_at_start": load,
         "overhead": rows, "projection": plan}, indent=2) + "\n")


def print_projection(plan: list[dict], per_trial_s: float) -> None:
    print(f"\nprojected wall-clock of the classic-control table ({plan[0]['trials']} trials, "
          f"{plan[0]['core_hours']:.1f} core-hours; Ray overhead {per_trial_s:.3f} s per trial):")
    print("| nodes | cores / node | wall hours | longest trial s |")
    print("|---|---|---|---|")
    for p in plan:
        print(f"| {p['nodes']} | {p['cores_per_node']} | {p['wall_hours']:.2f} | {p['longest_trial_s']:.0f} |")


if __name__ == "__main__":
    main()
