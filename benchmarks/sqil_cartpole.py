"""SQIL on CartPole-v1 from N scripted-expert trajectories, beside BC: normalised score vs N.

Protocol (the demos, seeds and scoring of ``benchmarks/irl_classic_control.py``): the expert is the scripted
controller ``irlhf.rl.experts.make_expert("CartPole-v1")``. For N in --trajectories and seed in 0..k-1 the
demos are ``collect_demos("CartPole-v1", expert, N, seed=1000 * seed)`` and both methods train on them:

* SQIL: ``sqil.train("CartPole-v1", demos, sqil.Config(total_timesteps=T, seed=seed))``: SB3 DQN with the
  rl-zoo CartPole settings of ``irlhf.rl.sb3.hyperparams`` (T = 50_000 by default, the zoo's DQN budget),
  half-demonstration batches, the library defaults otherwise;
* BC (the baseline): ``bc.train("CartPole-v1", demos, bc.Config(seed=seed))``.

Each policy is scored with ``evaluate(env, policy, n_episodes=20, seed=10_000 + seed)``; the expert's return is
``evaluate(env, expert, 20, seed=10_000)`` and the random one ``random_return(env, 20, seed=10_000)``;
normalised score = (R - R_random) / (R_expert - R_random) (``irlhf.envs.gym.normalized_score``). The table
gives mean +- std over seeds and the mean training wall seconds per run (one torch thread per worker).

    python benchmarks/sqil_cartpole.py                                  # N in 1 4 7 10, seeds 0..4, 50k steps
    python benchmarks/sqil_cartpole.py --trajectories 1 4 --seeds 2 --timesteps 20000
    python benchmarks/sqil_cartpole.py --quick                          # smoke run, not a result

The runs go through ``irlhf.core.parallel.run_many`` (Ray tasks when ray is installed, locally or on
``--address``, else a process pool): every finished run is appended to benchmarks/out/sqil_cartpole.jsonl
(``--out``: another folder) at once, and runs already there (same method, N, seed and budget) are skipped, so an
interrupted run resumes; ``--fresh`` starts over; failed runs go to sqil_cartpole.failed.jsonl with their
traceback. The table (.md) and plot (.png) are written beside it.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from irlhf.core.parallel import add_arguments, read_log, run_many

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
ENV = "CartPole-v1"
METHODS = ("SQIL", "BC")
BUDGET = 50_000
QUICK_BUDGET = 2_000


def run_job(job: dict) -> dict:
    """One (method, N, seed) run in a worker process (one torch thread): train, evaluate, time."""
    from irlhf.envs.gym import collect_demos, evaluate
    from irlhf.rl.experts import make_expert

    method, n, seed, steps = job["method"], job["n_demos"], job["seed"], job["timesteps"]
    demos = collect_demos(ENV, make_expert(ENV), n_episodes=n, seed=1000 * seed)
    t0, c0 = time.perf_counter(), time.process_time()
    extra = {}
    if method == "SQIL":
        from irlhf.imitation import sqil

        result = sqil.train(ENV, demos, sqil.Config(total_timesteps=steps, seed=seed))
        policy = result.policy
        extra = {k: result.history[-1][k] for k in ("demo_q", "agent_q", "loss")}
    elif method == "BC":
        from irlhf.imitation import bc

        policy = bc.train(ENV, demos, bc.Config(seed=seed)).policy
    else:
        raise ValueError(f"method {method!r}")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    ret = evaluate(ENV, policy, n_episodes=20, seed=10_000 + seed)[0]
    return {**job, "return": float(ret), "seconds": seconds, "cpu_seconds": cpu, **extra,
            "demo_return": float(np.mean([d.rews.sum() for d in demos])),
            "machine": f"{platform.node()} ({os.cpu_count()} cores)"}


def references() -> dict[str, float]:
    from irlhf.envs.gym import evaluate, random_return
    from irlhf.rl.experts import make_expert

    return {"expert": float(evaluate(ENV, make_expert(ENV), n_episodes=20, seed=10_000)[0]),
            "random": float(random_return(ENV, n_episodes=20, seed=10_000))}


def scores(rows: list[dict], refs: dict[str, float]) -> np.ndarray:
    from irlhf.envs.gym import normalized_score

    return np.array([normalized_score(ENV, r["return"], refs["expert"], refs["random"]) for r in rows])


def summarize(rows: list[dict], refs: dict[str, float], methods: list[str], demos: list[int]) -> str:
    lines = [f"### {ENV} (expert {refs['expert']:.1f}, random {refs['random']:.1f})\n",
             "| method | timesteps | " + " | ".join(f"N={n}: return / score" for n in demos) + " | s / run |",
             "|---|---|" + "---|" * len(demos) + "---|"]
    for method in methods:
        cells, secs, steps = [], [], set()
        for n in demos:
            sel = [r for r in rows if r["method"] == method and r["n_demos"] == n]
            if not sel:
                cells.append("-")
                continue
            ret = np.array([r["return"] for r in sel])
            cells.append(f"{ret.mean():.1f} +- {ret.std():.1f} / {scores(sel, refs).mean():.2f} ({len(sel)})")
            secs += [r["seconds"] for r in sel]
            steps |= {r["timesteps"] for r in sel}
        budget = "-" if method == "BC" else ",".join(str(s) for s in sorted(steps))
        lines.append(f"| {method} | {budget} | " + " | ".join(cells) + f" | {np.mean(secs) if secs else 0:.0f} |")
    return "\n".join(lines)


def plot(rows: list[dict], refs: dict[str, float], methods: list[str], demos: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    for method in methods:
        xs, means, stds = [], [], []
        for n in demos:
            sel = [r for r in rows if r["method"] == method and r["n_demos"] == n]
            if sel:
                s = scores(sel, refs)
                xs.append(n)
                means.append(s.mean())
                stds.append(s.std())
        if xs:
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=method)
    ax.axhline(1.0, color="gray", ls="--", lw=1)
    ax.axhline(0.0, color="gray", ls=":", lw=1)
    ax.set_title(ENV)
    ax.set_xlabel("expert trajectories")
    ax.set_ylabel("normalised score")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, nargs="+", default=[1, 4, 7, 10], help="N expert trajectories")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..k-1")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--timesteps", type=int, default=BUDGET, help="SQIL environment steps")
    add_arguments(parser)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_BUDGET} timesteps, 1 seed: a smoke run")
    parser.add_argument("--fresh", action="store_true", help="ignore (and overwrite) earlier results")
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the log, table and plot")
    args = parser.parse_args()

    seeds = [0] if args.quick else list(range(args.seeds))
    steps = QUICK_BUDGET if args.quick else args.timesteps
    log = args.out / ("sqil_cartpole_quick.jsonl" if args.quick else "sqil_cartpole.jsonl")
    # seed outermost: a run cut short still leaves whole tables for its first seeds
    jobs = [{"method": method, "n_demos": n, "seed": seed, "timesteps": 0 if method == "BC" else steps}
            for seed in seeds for n in args.trajectories for method in args.methods]
    start = time.perf_counter()
    # rows are logged as they finish (not in job order), so a run stopped at a time limit keeps all of them
    run_many(run_job, jobs, log=log, backend=args.backend, workers=args.workers, address=args.address,
             fresh=args.fresh, desc="sqil_cartpole",
             on_row=lambda row: print(f"{row['method']} N={row['n_demos']} seed {row['seed']}: {row['return']:.1f} "
                                      f"({row['seconds']:.0f} s)", flush=True))
    rows = read_log(log)
    # one budget in the table (and only the requested seeds): other runs stay in the log
    rows = [r for r in rows if r["timesteps"] in (0, steps) and r["seed"] in seeds]
    refs = references()
    table = summarize(rows, refs, args.methods, args.trajectories)
    print(f"\n{'quick smoke run (not a result); ' if args.quick else ''}this invocation: "
          f"{(time.perf_counter() - start) / 60:.1f} min; machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    print(table)
    stem = log.with_suffix("")
    (stem.parent / (stem.name + ".md")).write_text(table + "\n")
    plot(rows, refs, args.methods, args.trajectories, stem.parent / (stem.name + ".png"))


if __name__ == "__main__":
    main()
