"""Normalised score of BC and DAgger on classic-control tasks vs. the number of expert trajectories.

Protocol: the expert is the scripted controller ``irlhf.rl.experts.make_expert(env)``. For each env
(CartPole-v1, Acrobot-v1, MountainCar-v0, LunarLander-v3), N in (1, 4, 7, 10) expert trajectories and seed in 0..4:

* BC: ``bc.train`` on ``collect_demos(env, expert, N, seed=1000 * seed)`` with ``bc.Config(seed=seed)``
  (the defaults: MLP 64-64, at most 100 epochs, patience 10).
* DAgger with the same budget of N trajectories: ``dagger.Config(rounds=N, episodes_per_round=1,
  seed=seed, bc=dagger.DEFAULT_BC with seed=seed)`` (linear beta schedule, beta_0 = 1, so round 0 is
  a pure expert rollout; every later round's states are labelled by the queried expert).

Each policy is scored with ``evaluate(env, policy, n_episodes=20, seed=10_000 + seed)``; the expert's
return is ``evaluate(env, expert, 20, seed=10_000)`` and the random return
``random_return(env, 20, seed=10_000)``; normalised score = (R - R_random) / (R_expert - R_random).
Tables give mean +- std over seeds.

LunarLander-v3's expert is gymnasium's own heuristic lander controller (``_lunarlander_expert``), not a
trained policy; Ho & Ermon did not report LunarLander.

Reference: Ho & Ermon 2016 (GAIL), Table 1, BC rows: CartPole 72.02 +- 35.82 with 1 trajectory,
177 with 10; Acrobot -130.6 with 1; MountainCar -136.8 with 1; their experts scored 200 (CartPole),
-75 (Acrobot), -99 (MountainCar). Not directly comparable: their CartPole was v0 (200-step limit,
expert 200) while ours is CartPole-v1 (500 steps, our scripted expert gets 500), and their experts
were TRPO policies, not these scripted controllers.

    python benchmarks/imitation_scores.py                       # 3 envs x 4 N x 5 seeds x {BC, DAgger}
    python benchmarks/imitation_scores.py --envs CartPole-v1 --seeds 2 --demos 1 10

The runs go through ``irlhf.core.parallel.run_many`` (Ray tasks when ray is installed, locally or on
``--address``, else a process pool): every finished (env, N, seed) run is appended to
benchmarks/out/imitation_scores.jsonl at once and runs already there are not run again, so an interrupted run
resumes (``--fresh`` starts over; failed runs go to imitation_scores.failed.jsonl with their traceback).

Writes benchmarks/out/imitation_scores.{json,png} and prints markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from irlhf.core.parallel import add_arguments, run_many

HERE = Path(__file__).resolve().parent
ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3")
METHODS = ("BC", "DAgger")

# Ho & Ermon 2016, Table 1 (behavioural cloning), keyed by (env, N); and their expert scores.
HO_ERMON_BC = {
    ("CartPole-v1", 1): "72.02 +- 35.82",
    ("CartPole-v1", 10): "177",
    ("Acrobot-v1", 1): "-130.6",
    ("MountainCar-v0", 1): "-136.8",
}
HO_ERMON_EXPERT = {"CartPole-v1": 200.0, "Acrobot-v1": -75.0, "MountainCar-v0": -99.0, "LunarLander-v3": None}


def run_job(job: dict) -> dict:
    """One env, N and seed: BC and DAgger (``{"rows": [BC row, DAgger row]}``). Runs in a worker (one torch
    thread)."""
    env_id, n, seed = job["env"], job["n_demos"], job["seed"]
    from irlhf.envs.gym import collect_demos, evaluate
    from irlhf.rl.experts import make_expert
    from irlhf.imitation import bc, dagger

    expert = make_expert(env_id)
    rows = []
    t0 = time.perf_counter()
    demos = collect_demos(env_id, expert, n_episodes=n, seed=1000 * seed)
    fit = bc.train(env_id, demos, bc.Config(seed=seed))
    mean, std = evaluate(env_id, fit.policy, n_episodes=20, seed=10_000 + seed)
    rows.append({"env": env_id, "n_demos": n, "seed": seed, "method": "BC", "return": mean, "return_std": std,
                 "n_samples": int(sum(len(t) for t in demos)), "seconds": time.perf_counter() - t0})
    t0 = time.perf_counter()
    config = dagger.Config(rounds=n, episodes_per_round=1, seed=seed,
                           bc=dataclasses.replace(dagger.DEFAULT_BC, seed=seed))
    res = dagger.train(env_id, expert, config)
    mean, std = evaluate(env_id, res.policy, n_episodes=20, seed=10_000 + seed)
    rows.append({"env": env_id, "n_demos": n, "seed": seed, "method": "DAgger", "return": mean, "return_std": std,
                 "n_samples": len(res.dataset), "seconds": time.perf_counter() - t0})
    return {"rows": rows}


def references(job: dict) -> dict:
    """The expert's and the random policy's return on ``job["env"]``."""
    from irlhf.envs.gym import evaluate, random_return
    from irlhf.rl.experts import make_expert

    env_id = job["env"]
    return {"expert_return": evaluate(env_id, make_expert(env_id), n_episodes=20, seed=10_000)[0],
            "random_return": random_return(env_id, 20, seed=10_000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="*", default=list(ENVS), choices=ENVS)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--demos", type=int, nargs="*", default=[1, 4, 7, 10])
    add_arguments(parser)
    parser.add_argument("--fresh", action="store_true", help="ignore (and delete) earlier runs in the log")
    parser.add_argument("--out", default=str(HERE / "out"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from irlhf.envs.gym import normalized_score

    # longest jobs first (large N) so the two workers finish together
    jobs = sorted(({"env": env, "n_demos": n, "seed": seed} for env in args.envs for n in args.demos
                   for seed in range(args.seeds)), key=lambda j: -j["n_demos"])
    log = out / "imitation_scores.jsonl"
    parallel = {"backend": args.backend, "workers": args.workers, "address": args.address}
    t0 = time.perf_counter()
    # the references are cheap: a second batch, not logged
    ref_batch = run_many(references, [{"env": env} for env in args.envs], desc="references", **parallel)
    batch = run_many(run_job, jobs, log=log, fresh=args.fresh, desc="imitation_scores", **parallel)
    wall = time.perf_counter() - t0
    for failed in (ref_batch.failed, batch.failed):
        if failed:
            sys.exit(f"{len(failed)} runs failed (finished runs are kept in {log}; run again to resume), "
                     f"first: {failed[0]['error']}\n{failed[0].get('traceback') or ''}")
    refs = {r["env"]: (r["expert_return"], r["random_return"]) for r in ref_batch.rows}
    rows = [row for chunk in batch.rows for row in chunk["rows"]]
    for row in rows:
        expert_r, random_r = refs[row["env"]]
        row["score"] = normalized_score(row["env"], row["return"], expert_r, random_r)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {len(args.envs)} envs x {len(args.demos)} N x "
          f"{args.seeds} seeds x 2 methods in {wall:.0f} s wall ({args.workers} workers)")
    (out / "imitation_scores.json").write_text(json.dumps(
        {"references": {env: {"expert_return": e, "random_return": r} for env, (e, r) in refs.items()},
         "rows": rows}, indent=1))

    def stats(env, method, n, key):
        v = [r[key] for r in rows if r["env"] == env and r["method"] == method and r["n_demos"] == n]
        return float(np.mean(v)), float(np.std(v))

    for env in args.envs:
        expert_r, random_r = refs[env]
        print(f"\n### {env}: expert {expert_r:.1f}, random {random_r:.1f} (20 episodes, seed 10000); "
              f"mean +- std over {args.seeds} seeds")
        print("| method | metric | " + " | ".join(f"N={n}" for n in args.demos) + " |")
        print("|---|---|" + "---|" * len(args.demos))
        for method in METHODS:
            for key, label, fmt in (("return", "return", "{:.1f} +- {:.1f}"),
                                    ("score", "normalised", "{:.2f} +- {:.2f}")):
                cells = [fmt.format(*stats(env, method, n, key)) for n in args.demos]
                print(f"| {method} | {label} | " + " | ".join(cells) + " |")
        if HO_ERMON_EXPERT[env] is not None:
            cells = [HO_ERMON_BC.get((env, n), "-") for n in args.demos]
            print(f"| Ho & Ermon 2016 BC (expert {HO_ERMON_EXPERT[env]:.0f}) | return | " + " | ".join(cells) + " |")
    print("\nHo & Ermon 2016 numbers are quoted, not reproduced: their CartPole was v0 (200-step limit, expert 200;"
          " ours is v1, 500 steps, our expert 500) and their experts were TRPO policies, not scripted controllers.")
    sec = {m: np.mean([r["seconds"] for r in rows if r["method"] == m]) for m in METHODS}
    print("mean seconds per run (train + evaluate): " + ", ".join(f"{m} {s:.1f}" for m, s in sec.items()))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.envs), figsize=(4.5 * len(args.envs), 3.8), squeeze=False)
    for ax, env in zip(axes[0], args.envs):
        for method in METHODS:
            mean = np.array([stats(env, method, n, "score")[0] for n in args.demos])
            std = np.array([stats(env, method, n, "score")[1] for n in args.demos])
            ax.plot(args.demos, mean, "o-", label=method)
            ax.fill_between(args.demos, mean - std, mean + std, alpha=0.15)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.axhline(0.0, color="gray", lw=0.8, ls=":")
        ax.set(xlabel="expert trajectories", ylabel="normalised score", title=env, xticks=args.demos)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(out / "imitation_scores.png", dpi=110)
    print(f"\nplot: {out / 'imitation_scores.png'}")


if __name__ == "__main__":
    main()
