"""Why AIRL fails from one CartPole trajectory, and what fixes it: the library defaults against discriminator
regularisers, with the generator's rewards that explain each outcome.

In the classic-control table (``irl_classic_control.py``) AIRL drops the pole at once on every seed from one
expert trajectory (return 9.4) but reaches the expert from four. The expert never fails, so the absorbing state
s_a (``irlhf.irl.adversarial``) occurs in the policy's data only, as do all the policy's states: the
discriminator separates both from the 500 expert transitions perfectly, the logistic loss saturates, and the
size of their (very negative) logits is left to the network's extrapolation, not to any data. Whether ending an
episode pays is decided by that arbitrary size: it pays when the terminal reward (absorbing tail included) is
above the discounted sum of the per-step rewards, r_T > r_step / (1 - gamma). The script prints both, averaged
over the last 10 rounds, beside the returns. Variants (everything else as in the table: same demos, seeds,
50,000 PPO steps, scoring on 20 episodes):

* defaults: ``airl.Config()`` (32 discriminator steps per round at lr 3e-3);
* gradient penalty: ``grad_penalty=10`` (Gulrajani et al.; DAC uses it with the absorbing state);
* entropy bonus: ``entropy_bonus=1e-3`` (OpenAI baselines' GAIL);
* weaker discriminator: ``disc_updates=8, disc_lr=1e-3``;
* raw observations: ``normalize_obs=False`` (one trajectory's std is tiny, so standardised policy states lie
  far out and s_a, all zeros, sits at the expert's mean);
* label smoothing: ``label_smoothing=0.2`` / ``0.3`` (targets 1 - eps / eps: logits bounded by
  log((1 - eps) / eps), so s_a and the policy's worst states get the same bounded reward, and the policy's
  entropy term, part of AIRL's reward f - log pi and absent at s_a, makes staying alive pay).

``--env Acrobot-v1`` runs the same on Acrobot (100,000 steps, the table's budget), where ending the episode is
the goal, so the comparison of r_T and r_step / (1 - gamma) reads the other way: failing means never ending.

    python benchmarks/airl_one_trajectory.py --seeds 5 --workers 2 [--variants ...] [--method airl|gail]
        [--trajectories N] [--env Acrobot-v1]  # writes benchmarks/out/{method}_{N}_trajectory[_{env}].json

The runs go through ``irlhf.core.parallel.run_many`` (Ray tasks when ray is installed, locally or on
``--address``, else a process pool; one torch thread each); a failed run stops the script before it writes the
JSON.
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
#: env -> (PPO steps, random return, expert return): the table's budget and normalisation (irl_classic_control.py)
ENVS = {"CartPole-v1": (50_000, 21.8, 500.0), "Acrobot-v1": (100_000, -498.85, -81.6)}
VARIANTS = {"defaults": {}, "grad_penalty=10": {"grad_penalty": 10.0}, "entropy_bonus=1e-3": {"entropy_bonus": 1e-3},
            "disc_updates=8, disc_lr=1e-3": {"disc_updates": 8, "disc_lr": 1e-3},
            "normalize_obs=False": {"normalize_obs": False},
            "label_smoothing=0.2": {"label_smoothing": 0.2}, "label_smoothing=0.3": {"label_smoothing": 0.3},
            "normalize_obs=False, label_smoothing=0.3": {"normalize_obs": False, "label_smoothing": 0.3},
            "bc_warm_start": {"bc_warm_start": True}, "grad_penalty=10, disc_updates=8": {"grad_penalty": 10.0,
                                                                                        "disc_updates": 8}}


def run_job(job: dict) -> dict:
    """One (variant, seed) run in a worker (one torch thread): train, evaluate, time."""
    from irlhf.envs.gym import collect_demos, evaluate
    from irlhf.rl.experts import make_expert
    from irlhf.irl import airl, gail

    seed, module, env = job["seed"], {"airl": airl, "gail": gail}[job["method"]], job["env"]
    demos = collect_demos(env, make_expert(env), n_episodes=job["trajectories"], seed=1000 * seed)  # as the table
    t0 = time.perf_counter()
    config = module.Config(total_timesteps=ENVS[env][0], seed=seed, **VARIANTS[job["variant"]])
    result = module.train(env, demos, config)
    seconds = time.perf_counter() - t0
    ret = evaluate(env, result.policy, n_episodes=20, seed=10_000 + seed)[0]
    last = result.history[-10:]
    means = {key: float(np.mean([r[key] for r in last if r.get(key) is not None] or [np.nan]))
             for key in ("reward_step", "reward_terminal")}
    return {**job, "return": float(ret), "seconds": seconds, **means, "gamma": float(result.model.gamma)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    add_arguments(parser)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--method", choices=("airl", "gail"), default="airl")
    parser.add_argument("--trajectories", type=int, default=1, help="expert trajectories (the table's N)")
    parser.add_argument("--env", choices=list(ENVS), default="CartPole-v1")
    args = parser.parse_args()
    steps, random, expert = ENVS[args.env]
    jobs = [{"variant": v, "seed": s, "method": args.method, "trajectories": args.trajectories, "env": args.env}
            for s in range(args.seeds) for v in args.variants]
    batch = run_many(run_job, jobs, backend=args.backend, workers=args.workers, address=args.address,
                     desc=f"{args.method}_{args.trajectories}_trajectory",
                     on_row=lambda r: print(f"{r['variant']} seed {r['seed']}: {r['return']:.1f}", flush=True))
    if batch.failed:
        first = batch.failed[0]
        sys.exit(f"{len(batch.failed)} of {len(jobs)} runs failed, nothing written; the first, "
                 f"{first['variant']} seed {first['seed']}: {first['error']}\n{first.get('traceback') or ''}")
    rows = batch.rows
    print(f"\n{args.method.upper()} on {args.env} from {args.trajectories} trajectories, {steps} PPO steps; "
          f"{platform.machine()}, {os.cpu_count()} cores")
    print("| variant | return per seed | mean | score | r_step | r_step / (1 - gamma) | r_T | s / run |\n"
          "|---|---|---|---|---|---|---|---|")
    for variant in args.variants:
        sel = sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["seed"])
        rets = [r["return"] for r in sel]
        step, term = np.nanmean([r["reward_step"] for r in sel]), np.nanmean([r["reward_terminal"] for r in sel])
        print(f"| {variant} | {' / '.join(f'{x:.1f}' for x in rets)} | {np.mean(rets):.1f} | "
              f"{(np.mean(rets) - random) / (expert - random):.2f} | {step:.2f} | {step / (1 - sel[0]['gamma']):.1f} | "
              f"{term:.1f} | {np.mean([r['seconds'] for r in sel]):.0f} |")
    OUT.mkdir(exist_ok=True)
    stem = f"{args.method}_{args.trajectories}_trajectory" + ("" if args.env == "CartPole-v1" else f"_{args.env}")
    (OUT / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
