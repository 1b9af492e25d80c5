"""Why AIRL fails from one CartPole trajectory: the library defaults against discriminator regularisers.

In the classic-control table (``irl_classic_control.py``) AIRL drops the pole at once on every seed from one
expert trajectory (return 9.4) but reaches the expert from four. With 500 expert transitions the discriminator
separates them from everything the policy does, AIRL's reward log D - log(1 - D) is strongly negative at every
policy step, and ending the episode becomes the best the policy can do. This script measures whether the
usual discriminator regularisers change that, with everything else as in the table (same demos, seeds, 50,000
PPO steps, scoring on 20 episodes):

* defaults: ``airl.Config()`` (32 discriminator steps per round at lr 3e-3);
* gradient penalty: ``grad_penalty=10`` (Gulrajani et al.; DAC uses it with the absorbing state);
* entropy bonus: ``entropy_bonus=1e-3`` (OpenAI baselines' GAIL);
* weaker discriminator: ``disc_updates=8, disc_lr=1e-3``.

    python benchmarks/airl_one_trajectory.py --seeds 3 --workers 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"
ENV = "CartPole-v1"
STEPS = 50_000
VARIANTS = {"defaults": {}, "grad_penalty=10": {"grad_penalty": 10.0}, "entropy_bonus=1e-3": {"entropy_bonus": 1e-3},
            "disc_updates=8, disc_lr=1e-3": {"disc_updates": 8, "disc_lr": 1e-3}}


def run_job(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from irlhf.envs.gym import collect_demos, evaluate
    from irlhf.rl.experts import make_expert
    from irlhf.irl import airl

    seed = job["seed"]
    demos = collect_demos(ENV, make_expert(ENV), n_episodes=1, seed=1000 * seed)  # as irl_classic_control.py
    t0 = time.perf_counter()
    result = airl.train(ENV, demos, airl.Config(total_timesteps=STEPS, seed=seed, **VARIANTS[job["variant"]]))
    seconds = time.perf_counter() - t0
    ret = evaluate(ENV, result.policy, n_episodes=20, seed=10_000 + seed)[0]
    return {**job, "return": float(ret), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    jobs = [{"variant": v, "seed": s} for s in range(args.seeds) for v in args.variants]
    rows = []
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for future in as_completed([pool.submit(run_job, job) for job in jobs]):
            rows.append(future.result())
            print(f"{rows[-1]['variant']} seed {rows[-1]['seed']}: {rows[-1]['return']:.1f}", flush=True)
    print(f"\nAIRL on {ENV} from 1 trajectory, {STEPS} PPO steps; {platform.machine()}, {os.cpu_count()} cores")
    print("| variant | return per seed | mean | s / run |\n|---|---|---|---|")
    for variant in args.variants:
        sel = sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["seed"])
        rets = [r["return"] for r in sel]
        print(f"| {variant} | {' / '.join(f'{x:.1f}' for x in rets)} | {np.mean(rets):.1f} | "
              f"{np.mean([r['seconds'] for r in sel]):.0f} |")
    OUT.mkdir(exist_ok=True)
    (OUT / "airl_one_trajectory.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
