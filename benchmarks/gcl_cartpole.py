"""Guided cost learning on CartPole-v1 (or the 2-D point-mass reaching task of the paper's class, ``--env
irlhf/PointMassReach-v0``), with and without the BC warm start of its PPO policy, and with per-step weights.

GCL's sample-based MaxEnt gradient weights each background trajectory by exp(-c(tau)) / z(tau). When the
policy is far from the demonstrations, the demonstrations (added to the background, as in the paper) take
almost all of that weight and the cost gradient sees few samples; starting the policy from behaviour cloning
keeps it near them. This script measures, per variant and seed (same demos and scoring as
``irl_classic_control.py``: N scripted-expert trajectories ``collect_demos(env, expert, N, seed=1000 * s)``,
20 evaluation episodes with reset seeds 10,000 + s):

* return: GCL's own policy after ``--timesteps`` (50,000) environment steps;
* ESS: the effective sample size of the importance weights over the background set (mean of the last 10
  cost phases) against the set's size;
* AUC: P(c(expert step) < c(random-policy step)) over 20 fresh expert and 20 random episodes: does the cost
  rank expert behaviour first;
* re-optimised: a fresh PPO (rl-zoo settings, another seed) trained as long on the learned reward
  -c alone (with the absorbing tail), then scored on the true reward: is the cost a reward one can reuse.

* per-step weights (``weights="per_step"``): the importance weights' per-step geometric mean (costs and log
  densities divided by the horizon), so long near-deterministic demonstrations do not take all the weight.
* all past policies (``background="all_past"``, the paper's fusion): every policy sample so far in the
  background, z the mixture of all past policies (``gcl.PastPolicyMixture``); also with per-step weights.

    python benchmarks/gcl_cartpole.py --seeds 3 --workers 2 [--env irlhf/PointMassReach-v0] [--variants ...]

The runs go through ``irlhf.core.parallel.run_many`` (Ray tasks when ray is installed, locally or on
``--address``, else a process pool; one torch thread each); a failed run stops the script before it writes
benchmarks/out/gcl_{env}_{timesteps}.json.
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
ENVS = ("CartPole-v1", "irlhf/PointMassReach-v0")
STEPS = 50_000
VARIANTS = {"BC warm start (default)": {"bc_warm_start": True}, "no warm start": {"bc_warm_start": False},
            "per-step weights": {"weights": "per_step"}, "all past policies": {"background": "all_past"},
            "all past, per-step": {"background": "all_past", "weights": "per_step"}}


def cost_auc(cost_net, expert: list, random: list) -> float:
    """P(c(expert step) < c(random step)) over two lists of trajectories, ties counted half (the Mann-Whitney U
    statistic / (n m))."""
    import torch

    from irlhf.data.types import flatten_trajectories

    e, r = flatten_trajectories(expert), flatten_trajectories(random)
    with torch.no_grad():
        c_e = cost_net(e.obs, e.acts).numpy()
        c_r = cost_net(r.obs, r.acts).numpy()
    return float(((c_e[:, None] < c_r[None, :]).mean() + 0.5 * (c_e[:, None] == c_r[None, :]).mean()))


def run_job(job: dict) -> dict:
    """One (variant, seed) run in a worker (one torch thread): train, evaluate, re-optimise, time."""
    from irlhf.envs.gym import collect_demos, evaluate, random_policy
    from irlhf.rl.experts import make_expert
    from irlhf.irl import gcl
    from irlhf.rl.sb3 import SB3Policy, make_model
    from irlhf.rl.wrappers import RewardVecEnvWrapper

    seed, n, ENV = job["seed"], job["n_demos"], job["env"]
    expert = make_expert(ENV)
    demos = collect_demos(ENV, expert, n_episodes=n, seed=1000 * seed)
    t0 = time.perf_counter()
    config = gcl.Config(total_timesteps=job["timesteps"], seed=seed, **VARIANTS[job["variant"]])
    result = gcl.train(ENV, demos, config)
    seconds = time.perf_counter() - t0
    ret = evaluate(ENV, result.policy, n_episodes=20, seed=10_000 + seed)[0]
    ess = [(h["ess"], h["n_background"]) for h in result.history[-10:]] or [(float("nan"), float("nan"))]
    auc = cost_auc(result.cost_net, collect_demos(ENV, expert, 20, seed=50_000 + seed),
                   collect_demos(ENV, random_policy(ENV, seed=seed), 20, seed=60_000 + seed))
    # re-optimise: a fresh PPO on -c (plus the absorbing tail at real terminations), true reward unseen
    model = make_model("ppo", ENV, seed=100 + seed)
    model.set_env(RewardVecEnvWrapper(model.get_env(), result.reward, with_dones=True))
    model.learn(job["timesteps"])
    reopt = evaluate(ENV, SB3Policy(model, "ppo"), n_episodes=20, seed=10_000 + seed)[0]
    return {**job, "return": float(ret), "reoptimised_return": float(reopt), "auc": auc,
            "ess": float(np.mean([e for e, _ in ess])), "n_background": float(np.mean([b for _, b in ess])),
            "seconds": seconds, "machine": f"{platform.node()} ({os.cpu_count()} cores)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--demos", type=int, default=4, help="expert trajectories")
    add_arguments(parser)
    parser.add_argument("--timesteps", type=int, default=STEPS, help="GCL's and the re-optimising PPO's steps")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--env", choices=ENVS, default=ENVS[0])
    args = parser.parse_args()
    jobs = [{"variant": v, "seed": s, "n_demos": args.demos, "timesteps": args.timesteps, "env": args.env}
            for s in range(args.seeds) for v in args.variants]
    start = time.perf_counter()
    batch = run_many(run_job, jobs, backend=args.backend, workers=args.workers, address=args.address, desc="gcl",
                     on_row=lambda r: print(f"{r['variant']} seed {r['seed']}: return {r['return']:.1f}, "
                                            f"re-optimised {r['reoptimised_return']:.1f}, AUC {r['auc']:.3f}, ESS "
                                            f"{r['ess']:.1f}/{r['n_background']:.0f} ({r['seconds']:.0f} s)",
                                            flush=True))
    if batch.failed:
        first = batch.failed[0]
        sys.exit(f"{len(batch.failed)} of {len(jobs)} runs failed, nothing written; the first, "
                 f"{first['variant']} seed {first['seed']}: {first['error']}\n{first.get('traceback') or ''}")
    rows = batch.rows
    print(f"\nGCL on {args.env}, {args.demos} expert trajectories, {args.timesteps} steps; {platform.machine()}, "
          f"{os.cpu_count()} cores, {(time.perf_counter() - start) / 60:.1f} min")
    print("| variant | return per seed | mean | re-optimised PPO per seed | mean | cost AUC | ESS / background "
          "| s / run |\n|---|---|---|---|---|---|---|---|")
    for variant in args.variants:
        sel = sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["seed"])
        rets, reopt = [r["return"] for r in sel], [r["reoptimised_return"] for r in sel]
        print(f"| {variant} | {' / '.join(f'{x:.1f}' for x in rets)} | {np.mean(rets):.1f} | "
              f"{' / '.join(f'{x:.1f}' for x in reopt)} | {np.mean(reopt):.1f} | "
              f"{np.mean([r['auc'] for r in sel]):.3f} | {np.mean([r['ess'] for r in sel]):.1f} / "
              f"{np.mean([r['n_background'] for r in sel]):.0f} | {np.mean([r['seconds'] for r in sel]):.0f} |")
    OUT.mkdir(exist_ok=True)
    name = f"gcl_{args.env.split('/')[-1]}_{args.timesteps}.json"
    (OUT / name).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
