"""Objectworld 32 x 32: EVD against the number of demonstrations, four tabular IRL algorithms.

Protocol (Levine, Popovic & Koltun 2011; Wulfmeier et al. 2015): for each seed, a 32 x 32
objectworld (2 colours, density 0.05, determinism 0.7, discount 0.9) with continuous or discrete
features; the expert is soft-optimal for the true reward at horizon 8; N demonstrations of length 8
(N = 4 .. 128). Each algorithm runs with its default Config (finite horizon 8, the demos' start
states). EVD = value of the true-optimal policy minus value of the policy optimal for the learned
reward, both under the true reward, infinite-horizon discounted from the uniform start; "transfer"
applies the learned reward function to a re-randomised layout (a new objectworld, new seed).

    python benchmarks/irl_objectworld.py                         # all algorithms, 5 seeds
    python benchmarks/irl_objectworld.py --algorithms maxent --seeds 2 --demos 8 64

Each (seed, features, N, algorithm) is one run through ``irlhf.core.parallel.run_many`` (Ray tasks when ray is
installed, locally or on ``--address``, else a process pool): every finished run is appended to
benchmarks/out/irl_objectworld.jsonl at once and runs already there are not run again, so an interrupted run
resumes (``--fresh`` starts over; failed runs go to irl_objectworld.failed.jsonl with their traceback).

Writes benchmarks/out/irl_objectworld.{json,png} and prints a markdown table (mean +- std).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from irlhf.core.parallel import add_arguments, run_many

HERE = Path(__file__).resolve().parent
ALGORITHMS = ("maxent", "deep_maxent", "mmp", "apprenticeship")
CONSTANT = "constant reward"  # reference point: a constant (uninformative) reward, its optimal policy ignores objects


def transfer_reward(result, features: np.ndarray) -> np.ndarray:
    """The learned reward function applied to another world's features."""
    if hasattr(result, "reward_fn"):
        return np.asarray(result.reward_fn(features))
    return features @ result.weights


def run_one(job: dict) -> dict:
    """One seed, feature type, N and algorithm (or the constant reward): build the world and its re-randomised
    twin, sample the N demos, train, score. Runs in a worker (one BLAS / torch thread)."""
    seed, n, name, horizon = job["seed"], job["n_demos"], job["algorithm"], job["horizon"]
    continuous = job["features"] == "continuous"
    from irlhf.envs.tabular import objectworld, sample_trajectories
    from irlhf.eval import expected_value_difference
    from irlhf.planning import soft_value_iteration

    mdp = objectworld(32, seed=seed, continuous=continuous)
    other = objectworld(32, seed=10_000 + seed, continuous=continuous)
    if name == CONSTANT:
        return {"seconds": 0.0, "evd": expected_value_difference(mdp, np.zeros(mdp.n_states)),
                "evd_transfer": expected_value_difference(other, np.zeros(other.n_states))}
    _, _, pi_expert = soft_value_iteration(mdp, mdp.true_reward, horizon=horizon)
    demos = sample_trajectories(mdp, pi_expert, n=n, horizon=horizon, seed=1000 * seed + n)
    module = importlib.import_module(f"irlhf.irl.{name}")
    t0 = time.perf_counter()
    result = module.train(mdp, demos, module.Config())
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "evd": expected_value_difference(mdp, result.reward),
            "evd_transfer": expected_value_difference(other, transfer_reward(result, other.features))}


def summarise(rows: list[dict], key: str) -> dict:
    table: dict = {}
    for row in rows:
        table.setdefault((row["features"], row["algorithm"], row["n_demos"]), []).append(row[key])
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in table.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algorithms", nargs="*", default=list(ALGORITHMS), choices=ALGORITHMS)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--demos", type=int, nargs="*", default=[4, 8, 16, 32, 64, 128])
    parser.add_argument("--features", nargs="*", default=["continuous", "discrete"],
                        choices=["continuous", "discrete"])
    parser.add_argument("--horizon", type=int, default=8)
    add_arguments(parser)
    parser.add_argument("--fresh", action="store_true", help="ignore (and delete) earlier runs in the log")
    parser.add_argument("--out", default=str(HERE / "out"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    worlds = [(kind, seed) for kind in args.features for seed in range(args.seeds)]
    # per world: the constant reward at every N, then every N x algorithm (the rows' order in the JSON)
    jobs = [{"seed": seed, "features": kind, "n_demos": n, "algorithm": name, "horizon": args.horizon}
            for kind, seed in worlds
            for n, name in [(n, CONSTANT) for n in args.demos] + [(n, a) for n in args.demos for a in args.algorithms]]
    log = out / "irl_objectworld.jsonl"
    t0 = time.perf_counter()
    batch = run_many(run_one, jobs, log=log, backend=args.backend, workers=args.workers, address=args.address,
                     fresh=args.fresh, desc="irl_objectworld")
    wall = time.perf_counter() - t0
    if batch.failed:
        sys.exit(f"{len(batch.failed)} runs failed (finished runs are kept in {log}; run again to resume), "
                 f"first: {batch.failed[0]['error']}\n{batch.failed[0].get('traceback') or ''}")
    rows = [{k: v for k, v in row.items() if k != "horizon"} for row in batch.rows]  # the JSON's rows as before
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {len(worlds)} worlds x {len(args.demos)} N x "
          f"{len(args.algorithms)} algorithms in {wall:.0f} s wall ({args.workers} workers)")
    (out / "irl_objectworld.json").write_text(json.dumps(rows, indent=1))

    for key, label in (("evd", "EVD (training layout)"), ("evd_transfer", "EVD (transfer to a new layout)")):
        stats = summarise(rows, key)
        for kind in args.features:
            print(f"\n{label}, {kind} features, mean +- std over {args.seeds} seeds")
            print("| algorithm | " + " | ".join(f"N={n}" for n in args.demos) + " |")
            print("|---|" + "---|" * len(args.demos))
            for name in [*args.algorithms, CONSTANT]:
                cells = [f"{stats[(kind, name, n)][0]:.2f} +- {stats[(kind, name, n)][1]:.2f}" for n in args.demos]
                print(f"| {name} | " + " | ".join(cells) + " |")
    seconds = summarise(rows, "seconds")
    print("\nmean seconds per training run: " + ", ".join(
        f"{name} {np.mean([seconds[(k, name, n)][0] for k in args.features for n in args.demos]):.2f}"
        for name in args.algorithms))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(args.features), figsize=(5 * len(args.features), 7), squeeze=False)
    for row_k, key in enumerate(("evd", "evd_transfer")):
        stats = summarise(rows, key)
        for col, kind in enumerate(args.features):
            ax = axes[row_k][col]
            for name in args.algorithms:
                mean = np.array([stats[(kind, name, n)][0] for n in args.demos])
                std = np.array([stats[(kind, name, n)][1] for n in args.demos])
                ax.plot(args.demos, mean, "o-", label=name)
                ax.fill_between(args.demos, mean - std, mean + std, alpha=0.15)
            ax.set_xscale("log", base=2)
            ax.set(xlabel="demonstrations", ylabel="EVD",
                   title=f"{kind} features, {'transfer' if row_k else 'training'}")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(out / "irl_objectworld.png", dpi=110)
    print(f"\nplot: {out / 'irl_objectworld.png'}")


if __name__ == "__main__":
    main()
