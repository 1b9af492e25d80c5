"""T-REX and D-REX on CartPole-v1 (or LunarLander-v3): from suboptimal demonstrations to a learned reward, then PPO.

Demonstrators ("checkpoints" of known quality, cheap to make): the scripted CartPole expert acting
epsilon-greedily, a uniformly random action with probability eps, at eps = 1.0, 0.9, 0.8, 0.7, 0.6 (ranks 0-4,
rank 4 best; measured mean returns about 20, 40, 40, 65, 90-180: every one far below the expert's 500; on
LunarLander-v3, ``--env LunarLander-v3``, the scripted lander with the same eps, a random one of 4 actions).
Per seed s, ``--demos`` episodes per level (reset seeds 1000 s + 100 k + i).

* T-REX: all five levels, ranked by eps (``irlhf.irl.trex``);
* D-REX: only the best level's episodes, unranked (``irlhf.irl.drex``: BC, its eps-greedy rollouts at
  (1.0, 0.75, 0.5, 0.25, 0.02), ranked by noise, the demonstrations on top);
* then PPO (rl-zoo settings, ``--timesteps`` steps) on sigmoid(r_theta) (the default transform), scored on the
  true reward over 20 episodes (reset seeds 10,000 + s).

Columns: the best demonstration level's mean return; RL's return per seed, its mean, and its margin over the
best demonstrations (> 0: better than the demonstrator, the papers' claim; with the ratio where returns are
positive); D-REX's BC policy's return; the held-out
correlation of learned with true returns (Pearson / Spearman) over 30 fresh noisy-expert episodes at eps =
1.0, 0.8, 0.6, 0.4, 0.2, 0.0 (5 each; the last three better than any demonstration: extrapolation) for the
raw r_theta and for the sigmoid the agent was paid; the last epoch's held-out pair accuracy.

Read with care: CartPole's true reward is +1 per live step, so any positive per-step reward (the sigmoid is
one) already pays the agent to stay alive, and equal-length snippets leave r_theta's level unidentified (a
constant added to r changes no snippet comparison), so the raw sum over episodes of different lengths can
correlate poorly or negatively with the true return while the sigmoid's correlates well.

    python benchmarks/trex_cartpole.py --seeds 3 --workers 2                       # full size
    python benchmarks/trex_cartpole.py --env LunarLander-v3 --seeds 3 --workers 2  # PPO 300,000 steps
    python benchmarks/trex_cartpole.py --seeds 1 --timesteps 2048 --pairs 300 --epochs 1 --demos 2   # smoke

The runs go through ``irlhf.core.parallel.run_many`` (Ray tasks when ray is installed, locally or on
``--address``, else a process pool; one torch thread each); a failed run stops the script before it writes the
JSON (benchmarks/out/trex_{env}[_short].json).
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

OUT = Path(__file__).resolve().parent / "out"
STEPS = {"CartPole-v1": 100_000, "LunarLander-v3": 300_000}  # the PPO budgets of irl_classic_control.py
LEVELS = (1.0, 0.9, 0.8, 0.7, 0.6)
HELD_OUT = (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)
METHODS = ("T-REX", "D-REX")


def noisy_expert(expert, eps: float, seed: int, n_actions: int = 2):
    """The expert, with a uniformly random one of ``n_actions`` actions with probability eps."""
    rng = np.random.default_rng(seed)

    def policy(obs: np.ndarray) -> np.ndarray:
        acts = expert(obs)
        flip = rng.random(len(acts)) < eps
        return np.where(flip, rng.integers(0, n_actions, len(acts)), acts).astype(np.int64)

    return policy


def run_job(job: dict) -> dict:
    """One (method, seed) run in a worker (one torch thread): learn the reward, PPO on it, score, time."""
    import gymnasium

    from irlhf.envs.gym import collect_demos, evaluate
    from irlhf.irl import drex, trex
    from irlhf.rl.experts import make_expert

    seed, method, ENV = job["seed"], job["method"], job["env"]
    expert = make_expert(ENV)
    env = gymnasium.make(ENV)
    n_actions = int(env.action_space.n)
    env.close()
    ranked = {k: collect_demos(ENV, noisy_expert(expert, eps, 10 * seed + k, n_actions), job["demos"],
                               seed=1000 * seed + 100 * k)
              for k, eps in enumerate(LEVELS)}
    best = ranked[len(LEVELS) - 1]
    held_out = [t for k, eps in enumerate(HELD_OUT)
                for t in collect_demos(ENV, noisy_expert(expert, eps, 500 + 10 * seed + k, n_actions), 5,
                                       seed=50_000 + 1000 * seed + 100 * k)]
    common = dict(n_pairs=job["pairs"], epochs=job["epochs"], total_timesteps=job["timesteps"], seed=seed)
    t0 = time.perf_counter()
    if method == "T-REX":
        result = trex.train(ENV, ranked, trex.Config(**common))
    else:
        result = drex.train(ENV, best, drex.Config(**common, bc_warm_start=False))  # as measured in RESULTS
    seconds = time.perf_counter() - t0
    raw = trex.return_correlation(result.reward, held_out)
    paid = trex.return_correlation(result.rl_reward, held_out)
    fit = [h for h in result.history if h["phase"] == "reward"][-1]
    return {**job, "return": evaluate(ENV, result.policy, n_episodes=20, seed=10_000 + seed)[0],
            "best_demo_return": float(np.mean([float(np.sum(t.rews)) for t in best])),
            "bc_return": (evaluate(ENV, result.bc_policy, n_episodes=20, seed=10_000 + seed)[0]
                          if result.bc_policy is not None else None),
            "pearson_raw": raw["pearson"], "spearman_raw": raw["spearman"],
            "pearson_paid": paid["pearson"], "spearman_paid": paid["spearman"],
            "pair_accuracy": fit["val_accuracy"], "ranks": result.ranked.summary, "seconds": seconds,
            "machine": f"{platform.node()} ({os.cpu_count()} cores)"}


def fmt(values: list, digits: int = 1) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--demos", type=int, default=5, help="episodes per demonstrator level")
    parser.add_argument("--env", choices=list(STEPS), default="CartPole-v1")
    parser.add_argument("--timesteps", type=int, help="PPO steps on the learned reward (default: STEPS[env])")
    parser.add_argument("--pairs", type=int, default=3000, help="snippet pairs (trex.Config.n_pairs)")
    parser.add_argument("--epochs", type=int, default=5, help="reward-learning epochs")
    add_arguments(parser)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args()
    ENV = args.env
    args.timesteps = args.timesteps or STEPS[ENV]
    jobs = [{"env": ENV, "method": m, "seed": s, "demos": args.demos, "timesteps": args.timesteps,
             "pairs": args.pairs, "epochs": args.epochs} for s in range(args.seeds) for m in args.methods]
    start = time.perf_counter()
    batch = run_many(run_job, jobs, backend=args.backend, workers=args.workers, address=args.address, desc="trex",
                     on_row=lambda r: print(f"{r['method']} seed {r['seed']}: return {r['return']:.1f} (best demos "
                                            f"{r['best_demo_return']:.1f}), raw r: pearson {r['pearson_raw']:.2f}, "
                                            f"sigmoid: {r['pearson_paid']:.2f}; {r['ranks']} "
                                            f"({r['seconds']:.0f} s)", flush=True))
    if batch.failed:
        first = batch.failed[0]
        sys.exit(f"{len(batch.failed)} of {len(jobs)} runs failed, nothing written; the first, "
                 f"{first['method']} seed {first['seed']}: {first['error']}\n{first.get('traceback') or ''}")
    rows = batch.rows
    print(f"\nT-REX / D-REX on {ENV}: demonstrators = scripted expert at eps {list(LEVELS)} ({args.demos} episodes "
          f"each; D-REX gets eps {LEVELS[-1]} only), {args.pairs} pairs x {args.epochs} epochs, PPO {args.timesteps} "
          f"steps; {platform.machine()}, {os.cpu_count()} cores, {(time.perf_counter() - start) / 60:.1f} min")
    print("| method | best demos | RL return per seed | mean | - best demos (/ best) | BC | Pearson raw / sigmoid "
          "| Spearman raw / sigmoid | pair acc. | s / run |\n|---|---|---|---|---|---|---|---|---|---|")
    for method in args.methods:
        sel = sorted((r for r in rows if r["method"] == method), key=lambda r: r["seed"])
        if not sel:
            continue
        rets, best = [r["return"] for r in sel], float(np.mean([r["best_demo_return"] for r in sel]))
        bc = [r["bc_return"] for r in sel if r["bc_return"] is not None]

        def mean(key: str) -> float:
            return float(np.mean([r[key] for r in sel]))

        print(f"| {method} | {best:.1f} | {fmt(rets)} | {np.mean(rets):.1f} | {np.mean(rets) - best:+.1f}"
              f"{f' ({np.mean(rets) / best:.2f})' if best > 0 else ''} | "
              f"{f'{np.mean(bc):.1f}' if bc else '-'} | {mean('pearson_raw'):.2f} / {mean('pearson_paid'):.2f} | "
              f"{mean('spearman_raw'):.2f} / {mean('spearman_paid'):.2f} | {mean('pair_accuracy'):.3f} | "
              f"{mean('seconds'):.0f} |")
    OUT.mkdir(exist_ok=True)
    name = f"trex_{ENV.split('-')[0].lower()}{'' if args.timesteps == STEPS[ENV] else '_short'}.json"
    (OUT / name).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
