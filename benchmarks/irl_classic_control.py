"""Ho & Ermon 2016's classic-control table for GAIL, AIRL and IQ-Learn beside BC: score vs expert trajectories.

Protocol (the same demos, seeds and scoring as ``benchmarks/imitation_scores.py``): the expert is the scripted
controller ``irlhf.rl.experts.make_expert(env)``. For each env, N in (1, 4, 7, 10) expert trajectories and seed
in 0..4, the demos are ``collect_demos(env, expert, N, seed=1000 * seed)`` and every method trains on them:

* BC: ``bc.train(env, demos, bc.Config(seed=seed))`` (defaults: MLP 64-64, 200 epochs on all the demos);
* DAgger: ``dagger.train(env, expert, dagger.Config(rounds=N, episodes_per_round=1, bc=fit, seed=seed))``: N
  episodes of expert labels as the others get N expert trajectories (round 0 is the expert's own rollout, the later
  ones the learner's states labelled by the expert); it does not use ``demos``. ``fit`` is ``dagger.DEFAULT_BC``
  (= BC's default: 200 epochs of batch 64 on all the data) with ``seed=seed``; on request (``--methods DAgger-e50``
  / ``DAgger-fast``) the same with 50 epochs / DAgger's default fit before session 41 (30 epochs of batch 256,
  early-stopped on a 10% split, patience 5);
* GCL: ``gcl.train(env, demos, gcl.Config(total_timesteps=T, seed=seed))`` (library defaults: PPO from BC);
* GAIL: ``gail.train(env, demos, gail.Config(total_timesteps=T, seed=seed))`` (PPO generator with the
  rl-zoo settings of ``irlhf.rl.sb3.hyperparams``, SAC on Pendulum-v1; the library defaults otherwise);
* AIRL: ``airl.train`` likewise (state-only g);
* on request only (``--methods GAIL+BC`` / ``GAIL-logit``): GAIL with ``bc_warm_start=True`` (PPO's actor starts
  from BC) / with ``reward_type="logit"`` (log D - log(1 - D), the reward DAC pairs with the absorbing state);
* IQ-Learn: online, ``iq_learn.Config(online=True, env_steps=T_iq, seed=seed)`` (soft Q on Discrete actions,
  soft actor-critic on Box), the library defaults otherwise;
* SQIL (``irlhf.imitation.sqil``: DQN, SAC on Pendulum-v1), density (``irlhf.irl.density``, state-action KDE
  reward, PPO started from BC / SAC) and D-REX (``irlhf.irl.drex``: BC, noise-ranked rollouts, T-REX, PPO
  started from BC / SAC), T steps each, library defaults otherwise (T-REX needs ranked demonstrations:
  ``benchmarks/trex_cartpole.py``);
* on request only: ``AIRL-raw``, AIRL with ``normalize_obs=False`` (the one-trajectory fix, RESULTS.md);
  ``AIRL+BC``: AIRL with ``bc_warm_start=True``; ``AIRL-ls``: AIRL with ``label_smoothing=0.3``; ``density-t``:
  density with ``stationary=False`` (one KDE per time step).

T (generator timesteps) per env is ``BUDGET`` below; IQ-Learn gets ``IQ_BUDGET`` environment steps. Each policy
is scored with ``evaluate(env, policy, n_episodes=20, seed=10_000 + seed)``; the expert's return is
``evaluate(env, expert, 20, seed=10_000)`` and the random one ``random_return(env, 20, seed=10_000)``;
normalised score = (R - R_random) / (R_expert - R_random). Tables give the mean return and the mean score +- the
half-width of its 95% Student-t interval over seeds (seeds in brackets), and the mean training wall seconds per run
(one torch thread per worker process).

Reference (Ho & Ermon 2016, Table 1): GAIL reached the expert with one trajectory: CartPole 200 / 200,
Acrobot -77 vs expert -75, MountainCar -102 vs -99 (CartPole-v0 with 200 steps and TRPO experts there;
CartPole-v1 with 500 steps and scripted experts here).

    python benchmarks/irl_classic_control.py --envs CartPole-v1               # METHODS x 4 N x 5 seeds
    python benchmarks/irl_classic_control.py --envs CartPole-v1 --methods GAIL --demos 1 --seeds 2
    python benchmarks/irl_classic_control.py --envs CartPole-v1 --methods GAIL --demos 1 --timesteps 200000
    python benchmarks/irl_classic_control.py --quick                          # smoke run, not a result

The runs go through ``irlhf.core.parallel.run_many`` (the sweep runner's executor: Ray tasks when ray is installed,
locally or on ``--address``, else a process pool): every finished run is appended to
benchmarks/out/irl_classic_control.jsonl at once, and runs already there (same env, method, N, seed and budget)
are skipped, so an interrupted run resumes; ``--fresh`` starts over; failed runs go to
irl_classic_control.failed.jsonl with their traceback.
The tables and plot (benchmarks/out/irl_classic_control.png) are made from that file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from irlhf.core.parallel import add_arguments, read_log, run_many
from irlhf.core.stats import t_half_width

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3", "Pendulum-v1")
METHODS = ("BC", "DAgger", "GAIL", "AIRL", "IQ-Learn", "GCL", "SQIL", "density", "D-REX")
# on request only (--methods): a method with settings other than the library defaults (DAgger-*: its per-round BC)
EXTRA_METHODS = {"GAIL+BC": {"bc_warm_start": True}, "GAIL-logit": {"reward_type": "logit"},
                 "AIRL-raw": {"normalize_obs": False}, "AIRL+BC": {"bc_warm_start": True},
                 "AIRL-ls": {"label_smoothing": 0.3},
                 "density-t": {"stationary": False}, "DAgger-e50": {"epochs": 50},
                 "DAgger-fast": {"batch_size": 256, "epochs": 30, "validation_fraction": 0.1, "patience": 5}}
BUDGET = {"CartPole-v1": 50_000, "Acrobot-v1": 100_000, "MountainCar-v0": 100_000, "LunarLander-v3": 300_000,
          "Pendulum-v1": 30_000}
IQ_BUDGET = {"CartPole-v1": 20_000, "Acrobot-v1": 30_000, "MountainCar-v0": 30_000, "LunarLander-v3": 100_000,
             "Pendulum-v1": 20_000}
QUICK_BUDGET = 4_000
HO_ERMON = {"CartPole-v1": "GAIL 200 (expert 200)", "Acrobot-v1": "GAIL -77 (expert -75)",
            "MountainCar-v0": "GAIL -102 (expert -99)"}


def budget(env: str, method: str, quick: bool = False, timesteps: int | None = None) -> int:
    """Training steps of one run: 0 for BC and DAgger; ``timesteps`` (when given) replaces GAIL's and AIRL's."""
    if method == "BC" or method.startswith("DAgger"):
        return 0
    if quick:
        return QUICK_BUDGET
    if method == "IQ-Learn":
        return IQ_BUDGET[env]
    return timesteps or BUDGET[env]


def run_job(job: dict) -> dict:
    """One (env, method, N, seed) run in a worker process (one torch thread): train, evaluate, time."""
    from irlhf.envs.gym import collect_demos, evaluate
    from irlhf.rl.experts import make_expert

    env, method, n, seed, steps = job["env"], job["method"], job["n_demos"], job["seed"], job["timesteps"]
    demos = collect_demos(env, make_expert(env), n_episodes=n, seed=1000 * seed)
    box = env == "Pendulum-v1"
    t0, c0 = time.perf_counter(), time.process_time()
    if method == "BC":
        from irlhf.imitation import bc

        policy = bc.train(env, demos, bc.Config(seed=seed)).policy
    elif method.startswith("DAgger"):
        from irlhf.imitation import bc, dagger

        fit = (bc.Config(seed=seed, **EXTRA_METHODS[method]) if method in EXTRA_METHODS
               else dataclasses.replace(dagger.DEFAULT_BC, seed=seed))
        policy = dagger.train(env, make_expert(env), dagger.Config(rounds=n, episodes_per_round=1, bc=fit,
                                                                   seed=seed)).policy
    elif method == "GCL":
        from irlhf.irl import gcl

        policy = gcl.train(env, demos, gcl.Config(algo="sac" if box else "ppo", total_timesteps=steps,
                                                  seed=seed)).policy
    elif method.startswith(("GAIL", "AIRL")):
        from irlhf.irl import airl, gail

        module = airl if method.startswith("AIRL") else gail
        policy = module.train(env, demos, module.Config(algo="sac" if box else "ppo", total_timesteps=steps,
                                                        seed=seed, **EXTRA_METHODS.get(method, {}))).policy
    elif method == "IQ-Learn":
        from irlhf.irl import iq_learn

        policy = iq_learn.train(env, demos, iq_learn.Config(online=True, env_steps=steps, seed=seed)).policy
    elif method == "SQIL":  # DQN (SAC on Pendulum) with rl-zoo settings
        from irlhf.imitation import sqil

        policy = sqil.train(env, demos, sqil.Config(total_timesteps=steps, seed=seed)).policy
    elif method.startswith(("density", "D-REX")):
        from irlhf.irl import density, drex

        module = density if method.startswith("density") else drex
        policy = module.train(env, demos, module.Config(algo="sac" if box else "ppo", total_timesteps=steps,
                                                        seed=seed, **EXTRA_METHODS.get(method, {}))).policy
    else:
        raise ValueError(f"method {method!r}")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    ret = evaluate(env, policy, n_episodes=20, seed=10_000 + seed)[0]
    return {**job, "return": float(ret), "seconds": seconds, "cpu_seconds": cpu,
            "demo_return": float(np.mean([d.rews.sum() for d in demos])),
            "machine": f"{platform.node()} ({os.cpu_count()} cores)"}


def references(envs: list[str]) -> dict[str, dict[str, float]]:
    from irlhf.envs.gym import evaluate, random_return
    from irlhf.rl.experts import make_expert

    return {env: {"expert": float(evaluate(env, make_expert(env), n_episodes=20, seed=10_000)[0]),
                  "random": float(random_return(env, n_episodes=20, seed=10_000))} for env in envs}


def summarize(rows: list[dict], refs: dict, envs: list[str], methods: list[str], demos: list[int]) -> str:
    lines = []
    for env in envs:
        ref = refs[env]
        lines += [f"\n### {env} (expert {ref['expert']:.1f}, random {ref['random']:.1f}"
                  f"{'; Ho & Ermon: ' + HO_ERMON[env] if env in HO_ERMON else ''})\n",
                  "| method | timesteps | " + " | ".join(f"N={n}: return / score +- 95%" for n in demos) + " | s / run |",
                  "|---|---|" + "---|" * len(demos) + "---|"]
        for method in methods:
            cells, secs, steps = [], [], set()
            for n in demos:
                sel = [r for r in rows if r["env"] == env and r["method"] == method and r["n_demos"] == n]
                if not sel:
                    cells.append("-")
                    continue
                ret = np.array([r["return"] for r in sel])
                score = (ret - ref["random"]) / (ref["expert"] - ref["random"])
                half = t_half_width(score)  # NaN for one seed
                cells.append(f"{ret.mean():.1f} / {score.mean():.2f} +- {half:.2f} ({len(sel)})")
                secs += [r["seconds"] for r in sel]
                steps |= {r["timesteps"] for r in sel}
            budget = "-" if not any(steps) else ",".join(str(s) for s in sorted(steps))
            lines.append(f"| {method} | {budget} | " + " | ".join(cells) + f" | {np.mean(secs) if secs else 0:.0f} |")
    return "\n".join(lines)


def plot(rows: list[dict], refs: dict, envs: list[str], methods: list[str], demos: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(envs), figsize=(4.2 * len(envs), 3.4), squeeze=False)
    for ax, env in zip(axes[0], envs):
        ref = refs[env]
        for method in methods:
            xs, means, stds = [], [], []
            for n in demos:
                ret = [r["return"] for r in rows if r["env"] == env and r["method"] == method and r["n_demos"] == n]
                if ret:
                    score = (np.array(ret) - ref["random"]) / (ref["expert"] - ref["random"])
                    xs.append(n)
                    means.append(score.mean())
                    stds.append(score.std())
            if xs:
                ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=method)
        ax.axhline(1.0, color="gray", ls="--", lw=1)
        ax.axhline(0.0, color="gray", ls=":", lw=1)
        ax.set_title(env)
        ax.set_xlabel("expert trajectories")
        ax.set_ylabel("normalised score")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1"], choices=ENVS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS + tuple(EXTRA_METHODS))
    parser.add_argument("--demos", type=int, nargs="+", default=[1, 4, 7, 10])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..k-1")
    add_arguments(parser)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_BUDGET} timesteps, 1 seed: a smoke run")
    parser.add_argument("--fresh", action="store_true", help="ignore (and overwrite) earlier results")
    parser.add_argument("--timesteps", type=int, help="GAIL / AIRL generator steps instead of BUDGET[env] (the "
                        "tables then show only runs with this budget)")
    args = parser.parse_args()

    seeds = [0] if args.quick else list(range(args.seeds))
    log = OUT / ("irl_classic_control_quick.jsonl" if args.quick else "irl_classic_control.jsonl")
    # seed outermost: a run cut short still leaves whole tables for its first seeds
    jobs = [{"env": env, "method": method, "n_demos": n, "seed": seed,
             "timesteps": budget(env, method, args.quick, args.timesteps)}
            for seed in seeds for env in args.envs for n in args.demos for method in args.methods]
    start = time.perf_counter()
    # rows are logged as they finish (not in job order), so a run stopped at a time limit keeps all of them
    run_many(run_job, jobs, log=log, backend=args.backend, workers=args.workers, address=args.address,
             fresh=args.fresh, desc="irl_classic_control",
             on_row=lambda row: print(f"{row['env']} {row['method']} N={row['n_demos']} seed {row['seed']}: "
                                      f"{row['return']:.1f} ({row['seconds']:.0f} s)", flush=True))
    rows = read_log(log)
    # one budget per (env, method) in the tables: runs at other budgets stay in the log
    rows = [r for r in rows if r["timesteps"] == budget(r["env"], r["method"], args.quick, args.timesteps)]
    refs = references(args.envs)
    table = summarize(rows, refs, args.envs, args.methods, args.demos)
    print(f"\n{'quick smoke run (not a result); ' if args.quick else ''}this invocation: "
          f"{(time.perf_counter() - start) / 60:.1f} min; machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    print(table)
    stem = log.with_suffix("")
    (stem.parent / (stem.name + ".md")).write_text(table + "\n")
    (stem.parent / (stem.name + "_refs.json")).write_text(json.dumps(refs, indent=2) + "\n")
    plot(rows, refs, args.envs, args.methods, args.demos, stem.parent / (stem.name + ".png"))


if __name__ == "__main__":
    main()
