"""Episode ends on Acrobot-v1: why density and D-REX sat at -500, shown by switching one choice at a time.

Acrobot ends when the tip swings above the line: ending is the goal. A learned reward that does not say so
pays the agent to swing about for 500 steps. The protocol is ``benchmarks/irl_classic_control.py``'s (scripted
expert, ``collect_demos(env, expert, 4, seed=1000 * seed)``, 100,000 PPO steps, 20 evaluation episodes at
resets 10,000 + seed), with one Config change per row:

* density: the absorbing state's weight in the KDE, ``absorbing_mass="once"`` (one row per demonstration end,
  the earlier default) against ``"horizon"`` (H - T per end, the default); first the reward itself is printed
  (r(s_a), the demonstrated start state's, the mean along the demonstrations, along a random and a
  zero-torque episode), then the runs;
* D-REX: ``absorbing`` (snippets reach into a learned absorbing state) x ``reward_transform`` (sigmoid,
  standard, none).

    python benchmarks/episode_ends.py --seeds 2              # seeds 0 and 1; one line per run, then tables
    python benchmarks/episode_ends.py --only density-reward  # the reward table alone, seconds

SQIL's absorbing target is compared in RESULTS.md from the classic-control log (its runs take 7 min each).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

ENV = "Acrobot-v1"
STEPS = 100_000
DENSITY = {"density once": {"absorbing_mass": "once"}, "density horizon": {"absorbing_mass": "horizon"}}
DREX = {f"D-REX {transform}{'' if absorbing else ' no-absorbing'}": {"reward_transform": transform,
                                                                      "absorbing": absorbing}
        for absorbing in (False, True) for transform in ("sigmoid", "standard", "none")}
OUT = Path(__file__).resolve().parent / "out" / "episode_ends.jsonl"


def density_reward_table(seed: int = 0) -> str:
    """The density reward along reference episodes, with one absorbing row per end and with H - T per end."""
    import gymnasium as gym

    from irlhf.envs.gym import collect_demos
    from irlhf.irl import density
    from irlhf.rl.experts import make_expert

    demos = collect_demos(ENV, make_expert(ENV), n_episodes=4, seed=1000 * seed)
    episodes = {}
    for name, policy in (("random", None), ("zero torque", 1)):
        env = gym.make(ENV)
        obs, _ = env.reset(seed=10_000 + seed)
        env.action_space.seed(seed)
        rows = []
        for _ in range(500):
            act = env.action_space.sample() if policy is None else policy
            nxt, _, term, trunc, _ = env.step(act)
            rows.append((obs, act, nxt))
            obs = nxt
            if term or trunc:
                break
        episodes[name] = tuple(np.array(x) for x in zip(*rows))
    lines = ["| absorbing_mass | r(s_a) | demo start | demo mean | random | zero torque "
             "| tail gamma/(1-gamma) r(s_a) |", "|---|---|---|---|---|---|---|"]
    for mass in ("once", "horizon"):
        reward = density.fit_reward(ENV, demos, density.Config(absorbing_mass=mass))
        demo_mean = np.mean([reward(t.obs[:-1], t.acts, t.obs[1:]).mean() for t in demos])
        start = np.mean([reward(t.obs[:1], t.acts[:1], t.obs[1:2])[0] for t in demos])
        means = [reward(*episodes[k]).mean() for k in ("random", "zero torque")]
        lines.append(f"| {mass} | {reward.absorbing_reward:.2f} | {start:.2f} | {demo_mean:.2f} | {means[0]:.2f} | "
                     f"{means[1]:.2f} | {99 * reward.absorbing_reward:.0f} |")
    return "\n".join(lines)


def run(variant: str, seed: int) -> dict:
    from irlhf.envs.gym import collect_demos, evaluate
    from irlhf.irl import density, drex
    from irlhf.rl.experts import make_expert

    torch.set_num_threads(1)
    demos = collect_demos(ENV, make_expert(ENV), n_episodes=4, seed=1000 * seed)
    t0 = time.perf_counter()
    if variant in DENSITY:
        # random PPO starts, as measured in RESULTS (bc_warm_start became the default later)
        result = density.train(ENV, demos, density.Config(total_timesteps=STEPS, seed=seed, bc_warm_start=False,
                                                          **DENSITY[variant]))
        r_abs = result.reward.absorbing_reward
    else:
        result = drex.train(ENV, demos, drex.Config(total_timesteps=STEPS, seed=seed, bc_warm_start=False,
                                                    **DREX[variant]))
        r_abs = result.rl_reward.absorbing_reward if result.rl_reward.tail else None
    seconds = time.perf_counter() - t0
    return {"variant": variant, "seed": seed, "return": float(evaluate(ENV, result.policy, 20, seed=10_000 + seed)[0]),
            "r_abs_paid": r_abs, "seconds": seconds, "machine": f"{platform.node()} ({os.cpu_count()} cores)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..k-1")
    parser.add_argument("--only", choices=["density-reward", "density", "drex"], help="one part only")
    args = parser.parse_args()
    if args.only in (None, "density-reward"):
        print(density_reward_table())
    if args.only == "density-reward":
        return
    variants = {None: [*DENSITY, *DREX], "density": list(DENSITY), "drex": list(DREX)}[args.only]
    OUT.parent.mkdir(exist_ok=True)
    done = {(r["variant"], r["seed"]) for r in map(json.loads, OUT.read_text().splitlines())} if OUT.exists() else set()
    for seed in range(args.seeds):
        for variant in variants:
            if (variant, seed) in done:
                continue
            row = run(variant, seed)
            print(f"{variant} seed {seed}: {row['return']:.1f} ({row['seconds']:.0f} s)", flush=True)
            with OUT.open("a") as f:
                f.write(json.dumps(row) + "\n")
    rows = [r for r in map(json.loads, OUT.read_text().splitlines()) if r["seed"] < args.seeds]
    print("\n| variant | return per seed | r(s_a) paid |\n|---|---|---|")
    for variant in variants:
        mine = sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["seed"])
        paid = ", ".join("-" if r["r_abs_paid"] is None else f"{r['r_abs_paid']:.2f}" for r in mine)
        returns = ", ".join(f"{r['return']:.1f}" for r in mine)
        print(f"| {variant} | {returns} | {paid} |")


if __name__ == "__main__":
    main()
