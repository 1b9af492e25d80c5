"""Offline IQ-Learn on CartPole-v1 from ONE expert trajectory subsampled every 20 steps (Garg et al. 2021's figure).

The authors report that offline IQ-Learn reaches the expert's 500 from a single trajectory subsampled every 20
steps (25 transitions) within about 3,000 updates and under 30 seconds. Here: one episode of the scripted expert
(``collect_demos(env, make_expert(env), 1, seed=0)``, return 500), transitions 0, 20, 40, ... (25 of them),
``iq_learn.train`` offline for ``--updates`` updates per setting and seed; every ``--every`` updates the greedy
policy is evaluated (``evaluate(env, policy, 5, seed=100)``; outside the training clock). Settings:

* ``default``: ``iq_learn.Config()`` (alpha 0.01, chi^2, Q-MLP 64-64 ELU, lr 1e-3, batch 32, standardised obs);
* ``alpha=0.001``: the authors' temperature (``agent.init_temp=0.001``), otherwise the same.

    python benchmarks/iq_learn_one_trajectory.py [--seeds 5] [--updates 3000]

Prints, per setting, the final return per seed, how many seeds reached 500 and after how many updates, and
the training seconds; writes benchmarks/out/iq_learn_one_trajectory.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"
SETTINGS = {"default": {}, "alpha=0.001": {"alpha": 0.001}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--every", type=int, default=250)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from irlhf.data.types import Transitions, flatten_trajectories
    from irlhf.envs.gym import collect_demos, evaluate
    from irlhf.rl.experts import make_expert
    from irlhf.irl import iq_learn

    demos = collect_demos("CartPole-v1", make_expert("CartPole-v1"), n_episodes=1, seed=0)
    flat = flatten_trajectories(demos)
    idx = np.arange(0, len(flat.obs), 20)
    sub = Transitions(obs=flat.obs[idx], acts=flat.acts[idx], next_obs=flat.next_obs[idx], dones=flat.dones[idx])
    runs = []
    for name, overrides in SETTINGS.items():
        for seed in range(args.seeds):
            curve: list[tuple[int, float]] = []

            def record(rec: dict, policy) -> None:
                curve.append((rec["update"], float(evaluate("CartPole-v1", policy, 5, seed=100)[0])))

            t0 = time.perf_counter()
            result = iq_learn.train("CartPole-v1", sub, iq_learn.Config(seed=seed, updates=args.updates,
                                                                        log_every=args.every, **overrides),
                                    callback=record)
            train_seconds = result.history[-1]["seconds"]
            final = float(evaluate("CartPole-v1", result.policy, 20, seed=10_000 + seed)[0])
            first = next((u for u, r in curve if r >= 500), None)
            runs.append({"setting": name, "seed": seed, "curve": curve, "final_return": final,
                         "first_update_at_500": first, "train_seconds": train_seconds,
                         "wall_seconds": time.perf_counter() - t0})
            print(f"{name} seed {seed}: final {final:.1f}, first 500 at {first}, {train_seconds:.1f} s training",
                  flush=True)
    print(f"\n{len(idx)} expert transitions; {args.updates} updates\n")
    print("| setting | final return per seed (20 episodes) | seeds at 500 (final) | first update at 500 (5-episode "
          "check) | training s / run |")
    print("|---|---|---|---|---|")
    for name in SETTINGS:
        sel = [r for r in runs if r["setting"] == name]
        finals = [r["final_return"] for r in sel]
        firsts = [r["first_update_at_500"] for r in sel]
        print(f"| {name} | {', '.join(f'{x:.0f}' for x in finals)} | {sum(x >= 500 for x in finals)} / {len(sel)} | "
              f"{', '.join('-' if x is None else str(x) for x in firsts)} | "
              f"{np.mean([r['train_seconds'] for r in sel]):.1f} |")
    OUT.mkdir(exist_ok=True)
    (OUT / "iq_learn_one_trajectory.json").write_text(json.dumps(
        {"transitions": len(idx), "updates": args.updates, "runs": runs}, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SETTINGS), figsize=(4.5 * len(SETTINGS), 3.4), squeeze=False)
    for ax, name in zip(axes[0], SETTINGS):
        for r in (r for r in runs if r["setting"] == name):
            ax.plot(*zip(*r["curve"]), marker=".", label=f"seed {r['seed']}")
        ax.set_title(f"IQ-Learn offline, 1 trajectory / 20: {name}", fontsize=9)
        ax.set_xlabel("updates")
        ax.set_ylabel("return (5 episodes)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "iq_learn_one_trajectory.png", dpi=120)


if __name__ == "__main__":
    main()
