"""Abbeel & Ng (2004) macrocell gridworld: apprenticeship learning, projection vs max-margin.

128 x 128 grid, 64 macrocells of 16 x 16 (one indicator feature each), 30% slip, discount 0.99,
true reward sparse random weights on the macrocells. The expert is optimal (hard value iteration,
infinite horizon); mu_E is estimated from m sampled expert trajectories of 1000 steps
(0.99^1000 = 4e-5, so truncation is negligible). Both methods plan infinite-horizon from the
known uniform start (Config(infinite_horizon=True, initial="mdp")) and stop at margin t <= 1
(feature-expectation units; mu sums to 1/(1-0.99) = 100, so this is Abbeel & Ng's 0.01 on normalised
mu) or after 20 iterations (with few trajectories the sampled mu_E is not attainable and t plateaus).
Performance = value of the found policy under the true reward / value of the expert, for the mixture and for
the best single policy found.

    python benchmarks/irl_macrocell.py                    # m = 1 .. 100, 3 seeds
    python benchmarks/irl_macrocell.py --trajectories 1 10 --seeds 1

The runs go through ``irlhf.core.parallel.run_many`` (Ray tasks when ray is installed, locally or on
``--address``, else a process pool); there is no results log: an interrupted run starts over.

Writes benchmarks/out/irl_macrocell.{json,png} and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from irlhf.core.parallel import add_arguments, run_many

HERE = Path(__file__).resolve().parent


def run(job: dict) -> dict:
    """One seed, m and method, end to end (world, expert, samples, learning, evaluation). Runs in a worker (one
    BLAS thread)."""
    seed, m, method, n, length = job["seed"], job["m"], job["method"], job["size"], job["length"]
    from irlhf.envs.tabular import gridworld, sample_trajectories
    from irlhf.eval import policy_value
    from irlhf.irl import apprenticeship
    from irlhf.planning import value_iteration

    t0 = time.perf_counter()
    mdp = gridworld(n, slip=0.3, macrocell=16, discount=0.99, seed=seed)
    _, _, pi_expert = value_iteration(mdp, mdp.true_reward)
    demos = sample_trajectories(mdp, pi_expert, n=m, horizon=length, seed=seed * 7919 + m)
    t_learn = time.perf_counter()
    config = apprenticeship.Config(method=method, infinite_horizon=True, initial="mdp", epsilon=1.0, max_iter=20,
                                   seed=seed)
    result = apprenticeship.train(mdp, demos, config)
    learn_seconds = time.perf_counter() - t_learn
    v_expert = policy_value(mdp, pi_expert, mdp.true_reward)
    # the mixture's value is linear in the mixture weights over the found policies
    v_mixture = sum(lam * policy_value(mdp, pi, mdp.true_reward) for lam, pi in zip(result.mixture, result.policies)
                    if lam > 0)
    v_best = policy_value(mdp, result.policy, mdp.true_reward)
    return {"seed": seed, "m": m, "method": method, "iterations": len(result.policies),
            "margin": float(result.margin), "converged": bool(result.converged),
            "fraction_mixture": v_mixture / v_expert, "fraction_best": v_best / v_expert,
            "learn_seconds": learn_seconds, "end_to_end_seconds": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trajectories", type=int, nargs="*", default=[1, 3, 10, 30, 100])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--length", type=int, default=1000)
    add_arguments(parser)
    parser.add_argument("--out", default=str(HERE / "out"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = ("projection", "max_margin")
    jobs = [{"seed": seed, "m": m, "method": method, "size": args.size, "length": args.length}
            for seed in range(args.seeds) for m in args.trajectories for method in methods]
    t0 = time.perf_counter()
    batch = run_many(run, jobs, backend=args.backend, workers=args.workers, address=args.address,
                     desc="irl_macrocell")
    if batch.failed:
        sys.exit(f"{len(batch.failed)} runs failed, first: {batch.failed[0]['error']}\n"
                 f"{batch.failed[0].get('traceback') or ''}")
    # the rows as before: run's dict (size and length are the same for all, not in the JSON)
    rows = [{k: v for k, v in row.items() if k not in ("size", "length")} for row in batch.rows]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {len(jobs)} runs in "
          f"{time.perf_counter() - t0:.0f} s wall ({args.workers} workers)")
    (out / "irl_macrocell.json").write_text(json.dumps(rows, indent=1))

    def stat(method: str, m: int, key: str) -> tuple[float, float]:
        values = [r[key] for r in rows if r["method"] == method and r["m"] == m]
        return float(np.mean(values)), float(np.std(values))

    print(f"\n{args.size}x{args.size} macrocell gridworld, fraction of expert value, mean +- std over "
          f"{args.seeds} seeds")
    print("| method | policy | " + " | ".join(f"m={m}" for m in args.trajectories) + " |")
    print("|---|---|" + "---|" * len(args.trajectories))
    for method in methods:
        for key, label in (("fraction_mixture", "mixture"), ("fraction_best", "best single")):
            cells = [f"{stat(method, m, key)[0]:.3f} +- {stat(method, m, key)[1]:.3f}" for m in args.trajectories]
            print(f"| {method} | {label} | " + " | ".join(cells) + " |")
    for method in methods:
        iters = [r["iterations"] for r in rows if r["method"] == method]
        e2e = [r["end_to_end_seconds"] for r in rows if r["method"] == method]
        print(f"{method}: policies found {np.mean(iters):.1f} on average; end to end {np.mean(e2e):.1f} s mean, "
              f"{np.max(e2e):.1f} s max (with {args.workers} runs in parallel on {os.cpu_count()} cores)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method in methods:
        mean = np.array([stat(method, m, "fraction_mixture")[0] for m in args.trajectories])
        std = np.array([stat(method, m, "fraction_mixture")[1] for m in args.trajectories])
        ax.errorbar(args.trajectories, mean, yerr=std, marker="o", capsize=3, label=f"{method} (mixture)")
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set(xlabel="expert trajectories m", ylabel="value / expert value",
           title=f"{args.size}x{args.size} macrocell gridworld (Abbeel & Ng 2004)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "irl_macrocell.png", dpi=110)
    print(f"\nplot: {out / 'irl_macrocell.png'}")


if __name__ == "__main__":
    main()
