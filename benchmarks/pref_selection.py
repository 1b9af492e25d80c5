"""Query selection in deep RL from preferences: random vs ensemble disagreement vs information gain.

``irlhf.preference.trajectory.train`` (Christiano et al. 2017) with its defaults except ``selection`` and a small
budget (where selection can matter): CartPole-v1, PPO, ``--timesteps`` steps, ``--labels`` oracle labels, each
seed; the same seeds for every selection. Scored by the policy's true return (20 evaluation episodes, reset
seeds 1000 + 100 * seed + k) and the reward model's correlation with true segment returns (its last value).

    python benchmarks/pref_selection.py                     # labels 25 50, seeds 0-4, 20_000 steps, 2 workers

The runs go through ``irlhf.core.parallel.run_many`` (Ray tasks when ray is installed, locally or on
``--address``, else a process pool); there is no results log: an interrupted run starts over.

Writes benchmarks/out/pref_selection.json and prints a markdown table (mean, std over seeds, per seed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from irlhf.core.parallel import add_arguments, run_many  # noqa: E402

SELECTIONS = ("random", "disagreement", "information")


def run_job(job: dict) -> dict:
    """One labels budget, seed and selection: train, evaluate (in a worker, one torch thread)."""
    env_id, timesteps, n, seed, selection = job["env"], job["timesteps"], job["labels"], job["seed"], job["selection"]
    from irlhf.envs.gym import evaluate
    from irlhf.preference import trajectory
    from irlhf.preference.labellers import make_labeller

    start = time.perf_counter()
    config = trajectory.Config(total_timesteps=timesteps, n_labels=n, seed=seed, selection=selection, progress=False)
    result = trajectory.train(env_id, make_labeller("oracle", seed=seed), config)
    ret = evaluate(env_id, result.policy, n_episodes=20, seed=1000 + 100 * seed)[0]
    corr = next((r["reward_correlation"] for r in reversed(result.history) if r.get("reward_correlation") is not None),
                None)
    return {"env": env_id, "labels": n, "seed": seed, "selection": selection, "return": ret,
            "reward_correlation": corr, "seconds": time.perf_counter() - start}


def print_row(row: dict) -> None:
    """A finished run's line (printed here, not in the worker: Ray workers' output is not shown)."""
    print(f"{row['selection']:>12} {row['labels']} labels seed {row['seed']}: return {row['return']:.1f}, "
          f"reward corr {row['reward_correlation']} ({row['seconds']:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--labels", type=int, nargs="+", default=[25, 50])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--timesteps", type=int, default=20_000)
    add_arguments(parser)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out"), help="folder of the JSON")
    args = parser.parse_args()
    jobs = [{"env": args.env, "timesteps": args.timesteps, "labels": n, "seed": seed, "selection": sel}
            for n in args.labels for seed in range(args.seeds) for sel in SELECTIONS]
    start = time.perf_counter()
    batch = run_many(run_job, jobs, backend=args.backend, workers=args.workers, address=args.address,
                     desc="pref_selection", on_row=print_row)
    if batch.failed:
        sys.exit(f"{len(batch.failed)} runs failed, first: {batch.failed[0]['error']}\n"
                 f"{batch.failed[0].get('traceback') or ''}")
    rows = [{k: v for k, v in row.items() if k != "timesteps"} for row in batch.rows]  # run_job's rows, as before
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pref_selection.json").write_text(json.dumps({"args": vars(args), "rows": rows,
                                                         "load_end": os.getloadavg()[0],
                                                         "seconds": time.perf_counter() - start}))
    print(f"\n{time.perf_counter() - start:.0f} s, load {os.getloadavg()[0]:.2f}\n")
    print("| labels | selection | mean return | std | per seed | mean reward correlation | per seed |")
    print("|---|---|---|---|---|---|---|")
    for n in args.labels:
        for sel in SELECTIONS:
            mine = [r for r in rows if r["labels"] == n and r["selection"] == sel]
            rets = np.array([r["return"] for r in mine])
            corrs = [r["reward_correlation"] for r in mine]
            valid = [c for c in corrs if c is not None]
            print(f"| {n} | {sel} | {rets.mean():.1f} | {rets.std():.1f} | {', '.join(f'{x:.0f}' for x in rets)} | "
                  f"{np.mean(valid) if valid else float('nan'):.3f} | "
                  f"{', '.join('-' if c is None else f'{c:.2f}' for c in corrs)} |")


if __name__ == "__main__":
    main()
