"""MaxEnt IRL speed: irlhf per-iteration time vs imitation's MCEIRL on the same MDP, same run.

One MaxEnt iteration = reward from linear features, soft value iteration, occupancy, feature
expectations (the exact gradient). imitation's MCEIRL iteration = reward-net forward pass,
mce_partition_fh + mce_occupancy_measures, backward and Adam step (imitation 1.0.1 in its own
virtualenv: ``bash benchmarks/setup_imitation_venv.sh``). Discount 1.0 (imitation's MCEIRL plans
undiscounted whatever the discount, see imitation_baseline.py), finite horizon H.

    python benchmarks/irl_speed.py                       # objectworld 32 x 32, H = 8 and 50
    python benchmarks/irl_speed.py --size 64 --horizons 50

Also reports irlhf MaxEnt (L-BFGS) to convergence on the default 32 x 32 objectworld protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from irlhf.envs.tabular import objectworld, sample_trajectories
from irlhf.irl import maxent
from irlhf.planning import occupancy_measure, soft_value_iteration

HERE = Path(__file__).resolve().parent
IMITATION_PYTHON = HERE / ".venv-imitation" / "bin" / "python"


def irlhf_seconds_per_iteration(mdp, features: np.ndarray, H: int, iterations: int) -> float:
    rng = np.random.default_rng(0)
    mu_E = rng.standard_normal(features.shape[1])
    w = np.zeros(features.shape[1])
    maxent.objective_and_gradient(mdp, features, mu_E, w, H)  # warm-up (caches P^T)
    t0 = time.perf_counter()
    for _ in range(iterations):
        _, grad, *_ = maxent.objective_and_gradient(mdp, features, mu_E, w, H)
        w = w + 0.01 * grad
    return (time.perf_counter() - t0) / iterations


def imitation_seconds_per_iteration(mdp, features: np.ndarray, H: int, iterations: int, tmp: Path) -> float:
    _, _, pi = soft_value_iteration(mdp, mdp.true_reward, horizon=H)
    rho = occupancy_measure(mdp, pi, horizon=H)
    path = tmp / f"mdp_{mdp.n_states}_{H}.npz"
    np.savez(path, transitions=mdp.dense_transitions(max_entries=None), reward=mdp.true_reward, initial=mdp.initial, horizon=H,
             discount=mdp.discount, features=features, demo_state_om=rho)
    cmd = [str(IMITATION_PYTHON), str(HERE / "imitation_baseline.py"), "--npz", str(path), "--job", "mceirl",
           "--repeats", str(iterations)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds_per_iter"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--horizons", type=int, nargs="*", default=[8, 50])
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores")
    print(f"\nMaxEnt IRL seconds per iteration, {args.size}x{args.size} objectworld, discount 1.0")
    print("| features | F | H | irlhf s/iter | imitation MCEIRL s/iter | speed-up |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for continuous in (True, False):
            mdp = objectworld(args.size, seed=0, continuous=continuous, discount=1.0)
            for H in args.horizons:
                ours = irlhf_seconds_per_iteration(mdp, mdp.features, H, args.iterations)
                theirs = (imitation_seconds_per_iteration(mdp, mdp.features, H, args.iterations, Path(tmp))
                          if IMITATION_PYTHON.exists() else float("nan"))
                print(f"| {'continuous' if continuous else 'discrete'} | {mdp.n_features} | {H} | {ours:.4f} | "
                      f"{theirs:.3f} | {theirs / ours:.0f}x |")
    if not IMITATION_PYTHON.exists():
        print(f"(imitation column empty: {IMITATION_PYTHON} missing; run benchmarks/setup_imitation_venv.sh)")

    print("\nirlhf MaxEnt (L-BFGS, default Config) to convergence, 32x32 objectworld, discount 0.9, H = 8")
    print("| features | demos | seconds | evaluations | converged |")
    print("|---|---|---|---|---|")
    for continuous in (True, False):
        mdp = objectworld(32, seed=0, continuous=continuous)
        _, _, pi = soft_value_iteration(mdp, mdp.true_reward, horizon=8)
        for n in (16, 128):
            demos = sample_trajectories(mdp, pi, n=n, horizon=8, seed=n)
            t0 = time.perf_counter()
            result = maxent.train(mdp, demos)
            print(f"| {'continuous' if continuous else 'discrete'} | {n} | {time.perf_counter() - t0:.2f} | "
                  f"{len(result.history)} | {result.converged} |")


if __name__ == "__main__":
    main()
