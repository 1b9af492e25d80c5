"""Density-based imitation (``irlhf.irl.density``) on classic control: score vs expert trajectories, per density type.

Protocol (that of ``benchmarks/irl_classic_control.py``, whose tables this one sits beside): the expert is the
scripted controller ``irlhf.rl.experts.make_expert(env)``; for each env, N in --demos (1, 4, 7, 10) expert
trajectories and seed in 0..k-1 the demos are ``collect_demos(env, expert, N, seed=1000 * seed)`` and

    density.train(env, demos, density.Config(density_type=T, total_timesteps=BUDGET[env], seed=seed,
                                              algo="sac" if env == "Pendulum-v1" else "ppo"))

runs for each density type T in --types (state, state_action, state_state; the library defaults otherwise:
Scott's bandwidth, absorbing state, floor at 5 bandwidths, the rl-zoo PPO / SAC settings of
``irlhf.rl.sb3.hyperparams``). BUDGET is irl_classic_control's GAIL / AIRL budget (CartPole-v1: 50,000 steps).
The policy is scored with ``evaluate(env, policy, n_episodes=20, seed=10_000 + seed)``; the expert's return
is ``evaluate(env, expert, 20, seed=10_000)``, the random one ``random_return(env, 20, seed=10_000)``, and the
normalised score (R - R_random) / (R_expert - R_random). Tables give mean +- std over seeds and the mean
training wall seconds per run (one torch thread per run). Baseline: the BC / GAIL / AIRL /
IQ-Learn rows of benchmarks/out/irl_classic_control.jsonl for the same envs, N and seeds, when that file
exists (run irl_classic_control.py first to fill it).

    python benchmarks/density_cartpole.py                                   # CartPole-v1, 3 types x 4 N x 5 seeds
    python benchmarks/density_cartpole.py --envs CartPole-v1 Acrobot-v1 MountainCar-v0 --seeds 3
    python benchmarks/density_cartpole.py --types state_action --demos 1 --bandwidth 0.5   # imitation's h
    python benchmarks/density_cartpole.py --quick                           # smoke run, not a result

The runs go through ``irlhf.core.parallel.run_many`` (Ray tasks when ray is installed, locally or on
``--address``, else a process pool): every finished run is appended to benchmarks/out/density_cartpole.jsonl at
once; runs already there (same env, type, N, seed, budget and bandwidth) are skipped, so an interrupted run
resumes; ``--fresh`` starts over; failed runs go to density_cartpole.failed.jsonl with their traceback. The
table (.md) and plot (.png) are written next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from irlhf.core.parallel import add_arguments, read_log, run_many

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from irl_classic_control import BUDGET, ENVS, QUICK_BUDGET, plot, references, summarize  # noqa: E402

OUT = HERE / "out"
TYPES = ("state", "state_action", "state_state")
BASELINE_LOG = OUT / "irl_classic_control.jsonl"


def method_name(density_type: str) -> str:
    return f"density-{density_type}"


def run_job(job: dict) -> dict:
    """One (env, density type, N, seed) run in a worker process (one torch thread): train, evaluate, time."""
    from irlhf.envs.gym import collect_demos, evaluate
    from irlhf.irl import density
    from irlhf.rl.experts import make_expert

    env, n, seed = job["env"], job["n_demos"], job["seed"]
    demos = collect_demos(env, make_expert(env), n_episodes=n, seed=1000 * seed)
    bandwidth = job["bandwidth"]
    config = density.Config(density_type=job["density_type"], total_timesteps=job["timesteps"], seed=seed,
                            algo="sac" if env == "Pendulum-v1" else "ppo", bc_warm_start=False,  # as in RESULTS
                            bandwidth=bandwidth if bandwidth in density.BANDWIDTH_RULES else float(bandwidth))
    t0, c0 = time.perf_counter(), time.process_time()
    result = density.train(env, demos, config)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    ret = evaluate(env, result.policy, n_episodes=20, seed=10_000 + seed)[0]
    last = result.history[-1] if result.history else {}
    return {**job, "return": float(ret), "seconds": seconds, "cpu_seconds": cpu, "h": result.bandwidth,
            "kde_rows": len(result.reward.kde.points), "final_log_density": last.get("mean_log_density"),
            "demo_return": float(sum(d.rews.sum() for d in demos) / len(demos)),
            "machine": f"{platform.node()} ({os.cpu_count()} cores)"}


def baseline_rows(envs: list[str], demos: list[int], seeds: list[int]) -> list[dict]:
    """irl_classic_control.py's finished runs for the same envs, N and seeds (any budget it logged)."""
    if not BASELINE_LOG.exists():
        return []
    rows = [json.loads(x) for x in BASELINE_LOG.read_text().splitlines() if x]
    return [r for r in rows if r["env"] in envs and r["n_demos"] in demos and r["seed"] in seeds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1"], choices=ENVS)
    parser.add_argument("--types", nargs="+", default=list(TYPES), choices=TYPES, help="density types")
    parser.add_argument("--demos", type=int, nargs="+", default=[1, 4, 7, 10])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..k-1")
    add_arguments(parser)
    parser.add_argument("--timesteps", type=int, help="RL steps instead of BUDGET[env]")
    parser.add_argument("--bandwidth", default="scott", help="'scott', 'silverman' or a number (h)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_BUDGET} timesteps, 1 seed: a smoke run")
    parser.add_argument("--fresh", action="store_true", help="ignore (and overwrite) earlier results")
    args = parser.parse_args()
    if args.bandwidth not in ("scott", "silverman"):
        try:
            if float(args.bandwidth) <= 0:
                raise ValueError
        except ValueError:
            parser.error(f"--bandwidth {args.bandwidth!r}: expected 'scott', 'silverman' or a number > 0")

    seeds = [0] if args.quick else list(range(args.seeds))
    log = OUT / ("density_cartpole_quick.jsonl" if args.quick else "density_cartpole.jsonl")

    def steps(env: str) -> int:
        return QUICK_BUDGET if args.quick else args.timesteps or BUDGET[env]

    # seed outermost: a run cut short still leaves whole tables for its first seeds
    jobs = [{"env": env, "method": method_name(density_type), "density_type": density_type, "n_demos": n,
             "seed": seed, "timesteps": steps(env), "bandwidth": args.bandwidth}
            for seed in seeds for env in args.envs for n in args.demos for density_type in args.types]
    start = time.perf_counter()
    # rows are logged as they finish (not in job order), so a run stopped at a time limit keeps all of them
    run_many(run_job, jobs, log=log, backend=args.backend, workers=args.workers, address=args.address,
             fresh=args.fresh, desc="density_cartpole",
             on_row=lambda row: print(f"{row['env']} {row['method']} N={row['n_demos']} seed {row['seed']}: "
                                      f"{row['return']:.1f} (h {row['h']:.3f}, {row['seconds']:.0f} s)", flush=True))

    rows = read_log(log)
    rows = [r for r in rows if r["timesteps"] == steps(r["env"]) and r["bandwidth"] == args.bandwidth
            and r["seed"] in seeds]
    methods = [method_name(t) for t in args.types]
    base = [] if args.quick else baseline_rows(args.envs, args.demos, seeds)
    methods += sorted({r["method"] for r in base})
    refs = references(args.envs)
    table = summarize(rows + base, refs, args.envs, methods, args.demos)
    print(f"\n{'quick smoke run (not a result); ' if args.quick else ''}this invocation: "
          f"{(time.perf_counter() - start) / 60:.1f} min; machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; bandwidth {args.bandwidth}"
          f"{'; baseline rows from ' + BASELINE_LOG.name if base else ''}")
    print(table)
    stem = log.with_suffix("")
    (stem.parent / (stem.name + ".md")).write_text(table + "\n")
    plot(rows + base, refs, args.envs, methods, args.demos, stem.parent / (stem.name + ".png"))


if __name__ == "__main__":
    main()
