"""TAMER with a synthetic trainer vs. learning from the environment reward alone, on MountainCar-v0.

Protocol (5 seeds, s = 0..4, the first N = 100 episodes of each learner; episode e resets with seed s + e):

* TAMER (``irlhf.preference.tamer``), defaults: linear H_hat on tile coding (8 tilings of 8 x 8 tiles per
  action), lr 0.2, credit by the uniform delay model on [0.2, 4] s with 0.25 s per step. The trainer is
  ``make_synthetic_trainer("MountainCar-v0", seed=s)``: it rates a step +1 when the action is optimal under
  Q* (value iteration on a 150 x 150 grid of the known dynamics, within 0.5 steps), -1 otherwise, rates a
  step with probability 0.5, no noise, delay uniform on [0.3, 1.0] s, no rating when all actions are within
  0.5 steps of each other.
* TAMER, "window" credit: the same with the last 4 steps credited equally.
* SARSA(lambda) from the reward (-1 per step) alone: the same tile features, Q(s, a) = w_a . phi(s),
  step size 0.5 (features have norm 1, i.e. 0.5 / 8 per binary tile), lambda 0.9, replacing traces,
  gamma 1, greedy (epsilon 0) with optimistic initial values Q = 0 (Sutton & Barto, Example 10.1 / 12.10);
  episodes cut at the environment's 200 steps (the truncation does not bootstrap to 0: the last update
  bootstraps on Q(s', a')).
* Q-learning from the reward: as SARSA(lambda) with lambda 0 and the max over next actions.

Per learner: return per episode (mean +- std over seeds), mean of the first 10 and of episodes 91-100, the
first episode that reached the goal, and "episodes until the goal is reached in k consecutive episodes"
(the last episode of the first run of k goals; "never" counts as > N).
* SB3 DQN from the reward, rl-baselines3-zoo's MountainCar-v0 settings (``irlhf.rl.sb3.make_model("dqn", ...)``:
  lr 4e-3, 256-256 MLP, buffer 10k, learning starts 1000, train every 16 steps x 8 gradient steps, target
  update 600, epsilon 1 -> 0.07 over 20% of the zoo's 120k steps); the run is stopped after N episodes,
  so its exploration schedule is the zoo's, not squeezed into N episodes.

    python benchmarks/tamer_mountaincar.py                       # 4 learners x 5 seeds x 100 episodes
    python benchmarks/tamer_mountaincar.py --seeds 2 --episodes 30

Each (learner, seed) is one run through ``irlhf.core.parallel.run_many`` (Ray tasks when ray is installed,
locally or on ``--address``, else a process pool): every finished run (its per-episode history) is appended to
benchmarks/out/tamer_mountaincar.jsonl at once and runs already there are not run again, so an interrupted run
resumes (``--fresh`` starts over; failed runs go to tamer_mountaincar.failed.jsonl with their traceback).

Writes benchmarks/out/tamer_mountaincar.{json,png}, prints a markdown table and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import gymnasium as gym
import numpy as np

from irlhf.core.parallel import add_arguments, run_many
from irlhf.preference import tamer

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
K_CONSECUTIVE = (1, 3, 5)


def run_tamer(seed: int, episodes: int, credit: str) -> list[dict]:
    trainer = tamer.make_synthetic_trainer("MountainCar-v0", seed=seed)
    return tamer.train("MountainCar-v0", trainer, tamer.Config(episodes=episodes, seed=seed, credit=credit)).history


def run_td(seed: int, episodes: int, lam: float, q_learning: bool, alpha: float = 0.5) -> list[dict]:
    """Tile-coded SARSA(lambda) (q_learning=False) or Q-learning (lam = 0, max target) from the reward."""
    env = gym.make("MountainCar-v0")
    phi = tamer.Features(env.observation_space, tamer.Config(features="tiles"))
    w = np.zeros((3, phi.n_features))
    rng = np.random.default_rng(seed)

    def greedy(q: np.ndarray) -> int:
        best = np.flatnonzero(q >= q.max() - 1e-12)
        return int(best[0] if len(best) == 1 else rng.choice(best))

    history = []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        x = phi(obs[None])[0]
        a = greedy(w @ x)
        z = np.zeros_like(w)
        total, steps, done = 0.0, 0, False
        while not done:
            obs, r, terminated, truncated, _ = env.step(a)
            total, steps, done = total + r, steps + 1, terminated or truncated
            q_sa = w[a] @ x
            z *= lam
            z[a] = np.maximum(z[a], x)          # replacing traces (features >= 0)
            if terminated:
                target = r
            else:
                x2 = phi(obs[None])[0]
                q2 = w @ x2
                a2 = greedy(q2)
                target = r + (q2.max() if q_learning else q2[a2])
            w += alpha * (target - q_sa) * z
            if not terminated:
                x, a = x2, a2
        history.append({"episode": e, "return": total, "steps": steps, "reached_goal": bool(terminated)})
    env.close()
    return history


LEARNERS = {
    "TAMER (uniform delay credit)": lambda s, n: run_tamer(s, n, "uniform"),
    "TAMER (window credit, 4 steps)": lambda s, n: run_tamer(s, n, "window"),
    "SARSA(0.9), reward only": lambda s, n: run_td(s, n, 0.9, False),
    "Q-learning, reward only": lambda s, n: run_td(s, n, 0.0, True),
    "SB3 DQN (zoo settings), reward only": lambda s, n: run_dqn(s, n),
}


def run_dqn(seed: int, episodes: int) -> list[dict]:
    """SB3 DQN with the zoo's MountainCar settings, stopped after ``episodes`` episodes (returns from Monitor)."""
    from stable_baselines3.common.callbacks import BaseCallback

    from irlhf.rl.sb3 import hyperparams, make_model

    history: list[dict] = []

    class StopAfter(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    r = float(info["episode"]["r"])
                    history.append({"episode": len(history) + 1, "return": r, "reached_goal": r > -200.0})
            return len(history) < episodes

    model = make_model("dqn", "MountainCar-v0", seed=seed)
    model.learn(hyperparams("MountainCar-v0", "dqn")["n_timesteps"], callback=StopAfter())
    return history[:episodes]


def _job(job: dict) -> dict:
    """One learner and seed (in a worker, one torch / BLAS thread): its per-episode history and seconds."""
    name, seed, n = job["learner"], job["seed"], job["episodes"]
    if name.startswith("TAMER"):
        tamer.mountaincar_q(150)  # the trainer's value-iteration cache, once per worker process: not timed
    t0 = time.perf_counter()
    history = LEARNERS[name](seed, n)
    seconds = time.perf_counter() - t0
    # numpy scalars as plain numbers, so the results log reads back the same
    history = json.loads(json.dumps(history, default=lambda x: x.item() if hasattr(x, "item") else str(x)))
    return {"history": history, "seconds": seconds}


def episodes_until(goals: list[bool], k: int) -> int | None:
    run = 0
    for e, g in enumerate(goals):
        run = run + 1 if g else 0
        if run >= k:
            return e + 1
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=100)
    add_arguments(parser)
    parser.add_argument("--fresh", action="store_true", help="ignore (and delete) earlier runs in the log")
    parser.add_argument("--out", default=OUT, help="folder of the results log, JSON and plot")
    args = parser.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    log = os.path.join(out, "tamer_mountaincar.jsonl")
    t0 = time.perf_counter()
    jobs = [{"learner": name, "seed": s, "episodes": args.episodes} for name in LEARNERS for s in range(args.seeds)]
    batch = run_many(_job, jobs, log=log, backend=args.backend, workers=args.workers, address=args.address,
                     fresh=args.fresh, desc="tamer_mountaincar")
    wall = time.perf_counter() - t0
    if batch.failed:
        sys.exit(f"{len(batch.failed)} runs failed (finished runs are kept in {log}; run again to resume), "
                 f"first: {batch.failed[0]['error']}\n{batch.failed[0].get('traceback') or ''}")

    results: dict[str, dict] = {}
    for name in LEARNERS:
        runs = [(r["seed"], r["history"], r["seconds"]) for r in batch.rows if r["learner"] == name]
        returns = np.array([[r["return"] for r in h] for _, h, _ in runs])
        goals = [[r["reached_goal"] for r in h] for _, h, _ in runs]
        entry = {"returns": returns.tolist(), "seconds": [sec for *_, sec in runs],
                 "feedback": [int(sum(r.get("feedback", 0) for r in h)) for _, h, _ in runs]}
        for k in K_CONSECUTIVE:
            entry[f"until_{k}"] = [episodes_until(g, k) for g in goals]
        results[name] = entry

    def fmt_until(values: list[int | None]) -> str:
        hits = [v for v in values if v is not None]
        never = len(values) - len(hits)
        text = f"{np.mean(hits):.1f} +- {np.std(hits):.1f}" if hits else "-"
        return text + (f" ({never} never)" if never else "")

    head = (f"| learner | return ep 1-10 | return ep {args.episodes - 9}-{args.episodes} | "
            + " | ".join(f"episodes until {k} consecutive goals" for k in K_CONSECUTIVE)
            + " | feedback events | seconds / run |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in results.items():
        ret = np.array(r["returns"])
        first, last = ret[:, :10].mean(1), ret[:, -10:].mean(1)
        lines.append(f"| {name} | {first.mean():.1f} +- {first.std():.1f} | {last.mean():.1f} +- {last.std():.1f} | "
                     + " | ".join(fmt_until(r[f"until_{k}"]) for k in K_CONSECUTIVE)
                     + f" | {np.mean(r['feedback']):.0f} | {np.mean(r['seconds']):.1f} |")
    table = "\n".join(lines)
    print(f"MountainCar-v0, {args.seeds} seeds x {args.episodes} episodes (mean +- std over seeds; "
          "'until k' over the seeds that got there)\n")
    print(table)
    print(f"\nwall time {wall:.1f} s ({args.workers} workers)")

    with open(os.path.join(out, "tamer_mountaincar.json"), "w") as handle:
        json.dump({"seeds": args.seeds, "episodes": args.episodes, "results": results, "table": table,
                   "wall_seconds": wall, "python": platform.python_version(), "machine": platform.machine()},
                  handle, indent=1)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    x = np.arange(1, args.episodes + 1)
    for name, r in results.items():
        ret = np.array(r["returns"])
        m, s = ret.mean(0), ret.std(0)
        ax.plot(x, m, label=name)
        ax.fill_between(x, m - s, m + s, alpha=0.15)
    ax.set_xlabel("episode")
    ax.set_ylabel("return (mean +- std over seeds)")
    ax.set_title("MountainCar-v0: TAMER (synthetic trainer) vs reward-only TD")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(os.path.join(out, "tamer_mountaincar.png"), dpi=110)


if __name__ == "__main__":
    main()
