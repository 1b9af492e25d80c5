"""Label efficiency of deep RL from preferences (Christiano et al. 2017) with a synthetic oracle.

Protocol: for each environment, number of oracle labels and seed, ``irlhf.preference.trajectory.train`` runs
with its defaults (3-member reward ensemble, 25-step segments, disagreement queries from 10x candidates,
10 rounds with 25% of the labels up front and a decaying rate after) and the given algorithm and timesteps;
the learned policy is then evaluated (deterministic, 20 episodes, reset seeds 1000 + 100 * seed + k) on the
*true* reward. Beside it, the same SB3 algorithm with the same hyperparameters and timesteps trained on the
true reward (the upper reference), and a uniformly random policy (the lower one).

    CartPole-v1  (Discrete): PPO, 50_000 timesteps;  labels 50, 100, 200, 400, 700;  seeds 0, 1, 2
    Pendulum-v1  (Box):      SAC, 20_000 timesteps;  labels 50, 100, 200, 400, 700;  seeds 0, 1, 2

Full run (the table in docs/RESULTS.md):   python benchmarks/pref_label_efficiency.py [--envs CartPole-v1] [--workers 2]
Smoke run (minutes; not a result):         python benchmarks/pref_label_efficiency.py --quick
  (--quick: 1 seed, labels 50 and 200, 8_000 CartPole / 3_000 Pendulum timesteps, 5 evaluation episodes)

--with-imitation adds the ``imitation`` library's preference comparisons at the same budgets and seeds (PPO on
Discrete actions, i.e. CartPole-v1, and SAC on Box actions, i.e. Pendulum-v1; others are skipped with a note),
alongside irlhf's runs (on 2 cores pass --workers 1 so each side has one): per env one subprocess of
``benchmarks/imitation_prefs_baseline.py`` in its own venv (``setup_imitation_venv.sh``; its import time is paid
once) trains every (labels, seed) one after the other, with the same SB3 algorithm and hyperparameters
(``irlhf.rl.sb3.hyperparams``, n_envs included), timesteps, segment length, number of rounds, initial label share,
label-rate schedule and reward-net width as irlhf, a noiseless oracle (temperature 0) and imitation's own
reward-training defaults; see that file for the mapping and what could not be matched. Pendulum-v1 never terminates
(200-step TimeLimit), so it meets imitation's fixed-horizon requirement as it is (no wrapper, no seals port). For
SAC, imitation relabels each sampled replay batch with the current reward net (its ``ReplayBufferRewardWrapper``,
as its own script sets up; irlhf rewrites the buffer after each refit instead), but feeds the net SAC's
[-1, 1]-scaled buffer actions (see that file). The final actors are exported, rebuilt here in numpy (PPO: argmax of an
MLP, agreement with imitation's own ``predict(deterministic=True)`` recorded; SAC: tanh(mu(latent_pi(obs)))
unscaled to the action bounds, max abs difference from ``predict`` asserted < 1e-5 there and here) and scored with
the same ``evaluate`` and seeds. The table then gains an "imitation preference_comparisons" row per budget and a
column of wall seconds per run (irlhf's runs go ``--workers`` at a time, imitation's one at a time beside them:
compare ``cpu_seconds`` in the JSON too).

irlhf's runs go through ``irlhf.core.parallel.run_many`` (``--backend``: Ray tasks when ray is installed, locally
or on ``--address``, else a process pool): each finished run is appended to benchmarks/out/pref_label_efficiency.jsonl
(``_quick.jsonl`` for --quick) at once, and runs already there (same env, algo, labels, seed, timesteps and
evaluation episodes) are reused, so an interrupted run resumes; ``--fresh`` starts over; failed runs go to
``pref_label_efficiency[_quick].failed.jsonl`` with their traceback (and the script stops before the table).
imitation's runs are not logged (run again each time).

Writes benchmarks/out/pref_label_efficiency.json (this invocation's runs) and .png (mean +- std return vs labels,
one panel per environment, with the true-reward and random references) and prints a markdown table (``--out``
moves all of these). Torch runs on one thread (small networks; on a busy machine extra threads only slow it down).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from irlhf.core.parallel import add_arguments, run_many

OUT = Path(__file__).resolve().parent / "out"
FULL = {"CartPole-v1": ("ppo", 50_000), "Pendulum-v1": ("sac", 20_000)}
QUICK = {"CartPole-v1": ("ppo", 8_000), "Pendulum-v1": ("sac", 3_000)}
IMITATION_PYTHON = Path(__file__).resolve().parent / ".venv-imitation" / "bin" / "python"
IMITATION_SCRIPT = Path(__file__).resolve().parent / "imitation_prefs_baseline.py"
IMITATION = "imitation preference_comparisons"


def run_job(job: dict) -> dict:
    """One run (a run_many trial, one torch thread): SB3 on the true reward (labels None) or the preference loop
    with n labels; the results beside the job's keys (env, algo, labels, seed, timesteps, eval_episodes)."""
    env_id, algo, timesteps, n, seed, eval_episodes = (job[k] for k in ("env", "algo", "timesteps", "labels", "seed",
                                                                        "eval_episodes"))
    from irlhf.envs.gym import evaluate
    from irlhf.preference import trajectory
    from irlhf.preference.labellers import make_labeller
    from irlhf.rl.sb3 import SB3Policy, make_model

    t0, c0 = time.perf_counter(), time.process_time()
    row = {}
    if n is None:
        model = make_model(algo, env_id, seed=seed)
        model.learn(timesteps)
        ret = evaluate(env_id, SB3Policy(model, algo), n_episodes=eval_episodes, seed=1000 + 100 * seed)[0]
        row.update(method="true reward", **{"return": ret})
    else:
        config = trajectory.Config(total_timesteps=timesteps, n_labels=n, algo=algo, seed=seed, progress=False)
        result = trajectory.train(env_id, make_labeller("oracle", seed=seed), config)
        ret = evaluate(env_id, result.policy, n_episodes=eval_episodes, seed=1000 + 100 * seed)[0]
        corr = next((r["reward_correlation"] for r in reversed(result.history)
                     if r.get("reward_correlation") is not None), None)
        row.update(method="preferences", reward_correlation=corr, **{"return": ret})
    row["seconds"] = time.perf_counter() - t0
    row["cpu_seconds"] = time.process_time() - c0
    return row


def print_run(row: dict) -> None:
    what = "true reward" if row["labels"] is None else f"{row['labels']} labels"
    print(f"{row['env']} {row['algo']} {what} seed {row['seed']}: {row['return']:.1f} ({row['seconds']:.0f} s)",
          flush=True)


def imitation_jobs_config(env_id: str, algo: str, timesteps: int, labels: list, seeds: list, out_dir: Path) -> dict:
    """The job file of ``imitation_prefs_baseline.py`` for one env: irlhf's settings where imitation has the knob."""
    from irlhf.preference import trajectory
    from irlhf.rl.sb3 import hyperparams

    defaults = trajectory.Config()
    rl = hyperparams(env_id, algo)
    rl.pop("n_timesteps")
    n_envs = rl.pop("n_envs")
    return {"threads": 1, "n_envs": n_envs, "algo": algo, f"{algo}_kwargs": rl,
            # SAC: imitation's own replay-buffer relabelling (ReplayBufferRewardWrapper), as its script does
            **({"relabel": "imitation"} if algo == "sac" else {}),
            "fragment_length": defaults.segment_length, "rounds": defaults.rounds,
            "initial_comparison_frac": defaults.initial_label_fraction, "schedule_tau": defaults.schedule_tau,
            "comparison_queue_size": None,  # irlhf keeps every label
            "reward_hidden_sizes": list(defaults.reward_hidden_sizes), "reward_lr": defaults.reward_lr,
            # imitation's own defaults (train_preference_comparisons script config / class defaults)
            "reward_epochs": 3, "reward_batch_size": 32, "initial_epoch_multiplier": 200.0, "exploration_frac": 0.0,
            "temperature": 0.0, "horizon": "absorb",
            "jobs": [{"env": env_id, "total_timesteps": timesteps, "total_comparisons": n, "seed": seed,
                      "out": str(out_dir / f"{env_id}_{n}_s{seed}.npz")} for seed in seeds for n in labels]}


def load_sac(path: str):
    """The exported SAC actor as a numpy policy (deterministic: tanh(mu(latent_pi(obs))) unscaled to the action
    bounds, ReLU hidden layers) and its max abs difference from imitation's own predict(deterministic=True)."""
    with np.load(path) as z:
        n = sum(1 for k in z.files if k.startswith("W"))
        layers = [(z[f"W{i}"].astype(np.float64), z[f"b{i}"].astype(np.float64)) for i in range(n)]
        low, high = z["low"].astype(np.float64), z["high"].astype(np.float64)
        check_obs, check_acts = z["check_obs"], z["check_acts"]

    def policy(obs: np.ndarray) -> np.ndarray:
        h = np.asarray(obs, dtype=np.float64)
        for i, (w, b) in enumerate(layers):
            h = h @ w.T + b
            if i < n - 1:
                h = np.maximum(h, 0.0)
        return (low + 0.5 * (np.tanh(h) + 1.0) * (high - low)).astype(np.float32)

    return policy, float(np.max(np.abs(policy(check_obs) - check_acts)))


def run_imitation(envs: dict, labels: list, seeds: list, eval_episodes: int) -> tuple[list, dict]:
    """imitation's preference comparisons per env (one subprocess each), scored with irlhf's ``evaluate``."""
    import gymnasium

    from irlhf.envs.gym import evaluate

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bc_vs_imitation import load_argmax

    if not IMITATION_PYTHON.exists():
        sys.exit(f"{IMITATION_PYTHON} missing; run `bash benchmarks/setup_imitation_venv.sh` first")
    runs, meta = [], {}
    with tempfile.TemporaryDirectory(prefix="imitation-prefs-") as tmp:
        tmp = Path(tmp)
        for env_id, (algo, timesteps) in envs.items():
            env = gymnasium.make(env_id)
            discrete = isinstance(env.action_space, gymnasium.spaces.Discrete)
            env.close()
            if (algo, discrete) not in (("ppo", True), ("sac", False)):
                print(f"{IMITATION}: {env_id} skipped (only PPO on Discrete actions and SAC on Box actions are "
                      "set up)", flush=True)
                continue
            cfg = imitation_jobs_config(env_id, algo, timesteps, labels, seeds, tmp)
            (tmp / "jobs.json").write_text(json.dumps(cfg))
            print(f"{IMITATION}: {env_id}, {len(cfg['jobs'])} runs in one subprocess ...", flush=True)
            done = subprocess.run([str(IMITATION_PYTHON), str(IMITATION_SCRIPT), "--jobs", str(tmp / "jobs.json")],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"imitation baseline failed:\n{done.stderr[-4000:]}")
            out = json.loads(done.stdout.strip().splitlines()[-1])
            records = out.pop("records")
            meta[env_id] = {**out, "settings": {k: v for k, v in cfg.items() if k != "jobs"}}
            for rec in records:
                if algo == "sac":
                    policy, diff = load_sac(rec["out"])
                    if not diff < 1e-5:
                        sys.exit(f"{rec['out']}: numpy SAC actor differs from imitation's predict() by {diff}")
                    check = {"predict_max_abs_diff": diff, "relabel": rec["relabel"]}
                    note = f"predict max abs diff {diff:.1e}"
                else:
                    policy, agree = load_argmax(rec["out"])
                    check, note = {"predict_agreement": agree}, f"predict agreement {agree:.3f}"
                ret = evaluate(env_id, policy, n_episodes=eval_episodes, seed=1000 + 100 * rec["seed"])[0]
                runs.append({"env": env_id, "algo": algo, "labels": rec["total_comparisons"], "seed": rec["seed"],
                             "timesteps": timesteps, "method": IMITATION, "return": ret, **check,
                             **{k: rec[k] for k in ("agent_timesteps", "comparisons", "horizon", "reward_loss",
                                                    "reward_accuracy", "seconds", "cpu_seconds")}})
                print(f"{env_id} imitation {rec['total_comparisons']} labels seed {rec['seed']}: {ret:.1f} "
                      f"({rec['seconds']:.0f} s, {note})", flush=True)
    return runs, meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes' smoke run (not a result)")
    parser.add_argument("--envs", nargs="+", default=None, help="subset of " + ", ".join(FULL))
    parser.add_argument("--labels", type=int, nargs="+", default=None,
                        help="label budgets (default 50 100 200 400 700)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3)")
    add_arguments(parser)
    parser.add_argument("--fresh", action="store_true", help="ignore (and overwrite) the runs already logged")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default benchmarks/out)")
    parser.add_argument("--with-imitation", action="store_true",
                        help="also run the imitation library's preference comparisons (own venv) at the same budgets")
    args = parser.parse_args()

    from concurrent.futures import ThreadPoolExecutor

    from irlhf.envs.gym import random_return

    envs = QUICK if args.quick else FULL
    if args.envs:
        unknown = sorted(set(args.envs) - set(envs))
        if unknown:
            parser.error(f"--envs: unknown {unknown}; expected some of {sorted(envs)}")
        envs = {k: v for k, v in envs.items() if k in args.envs}
    labels = args.labels or ([50, 200] if args.quick else [50, 100, 200, 400, 700])
    seeds = list(range(args.seeds)) if args.seeds else ([0] if args.quick else [0, 1, 2])
    eval_episodes = 5 if args.quick else 20
    jobs = [{"env": env_id, "algo": algo, "labels": n, "seed": seed, "timesteps": timesteps,
             "eval_episodes": eval_episodes}
            for env_id, (algo, timesteps) in envs.items() for seed in seeds for n in [None, *labels]]
    out = args.out
    log = out / ("pref_label_efficiency_quick.jsonl" if args.quick else "pref_label_efficiency.jsonl")
    start = time.perf_counter()
    # imitation's subprocess (one core) runs in a side thread alongside irlhf's runs: on 2 cores use --workers 1
    # (run_many's process pool spawns, not forks, so no lock held by that thread is copied into its workers)
    with ThreadPoolExecutor(max_workers=1) as side:
        imitation = side.submit(run_imitation, envs, labels, seeds, eval_episodes) if args.with_imitation else None
        batch = run_many(run_job, jobs, log=log, backend=args.backend, workers=args.workers, address=args.address,
                         fresh=args.fresh, desc="pref_label_efficiency", on_row=print_run)
        imit_runs, imit_meta = imitation.result() if imitation else ([], {})
    if batch.failed:
        sys.exit(f"{len(batch.failed)} run(s) failed (see {log.with_name(log.stem + '.failed.jsonl')}; a rerun "
                 f"retries only them): first {batch.failed[0]['error']}")
    runs = batch.rows
    randoms = {env_id: random_return(env_id, n_episodes=eval_episodes, seed=1000) for env_id in envs}
    total = time.perf_counter() - start

    rows = []
    for env_id, (algo, timesteps) in envs.items():
        for n in [*labels, None]:
            sel = [r["return"] for r in runs if r["env"] == env_id and r["labels"] == n]
            secs = [r["seconds"] for r in runs if r["env"] == env_id and r["labels"] == n]
            rows.append((env_id, algo, timesteps, "true reward" if n is None else f"{n} oracle labels",
                         float(np.mean(sel)), float(np.std(sel)), len(sel), float(np.mean(secs))))
        for n in labels:
            sel = [r for r in imit_runs if r["env"] == env_id and r["labels"] == n]
            if sel:
                rows.append((env_id, algo, timesteps, f"{IMITATION}, {n} oracle labels",
                             float(np.mean([r["return"] for r in sel])), float(np.std([r["return"] for r in sel])),
                             len(sel), float(np.mean([r["seconds"] for r in sel]))))
        rows.append((env_id, "-", 0, "random policy", randoms[env_id], 0.0, eval_episodes, float("nan")))
    print(f"\n{'quick smoke run (not a result); ' if args.quick else ''}total {total / 60:.1f} min\n")
    if args.with_imitation:
        print("| env | algo | timesteps | reward | mean return | std | seeds | wall s / run |")
        print("|---|---|---|---|---|---|---|---|")
        for env_id, algo, timesteps, what, mean, std, n, secs in rows:
            print(f"| {env_id} | {algo} | {timesteps} | {what} | {mean:.1f} | {std:.1f} | {n} | "
                  f"{'-' if np.isnan(secs) else f'{secs:.0f}'} |")
    else:
        print("| env | algo | timesteps | reward | mean return | std | seeds |")
        print("|---|---|---|---|---|---|---|")
        for env_id, algo, timesteps, what, mean, std, n, _secs in rows:
            print(f"| {env_id} | {algo} | {timesteps} | {what} | {mean:.1f} | {std:.1f} | {n} |")

    out.mkdir(parents=True, exist_ok=True)
    (out / "pref_label_efficiency.json").write_text(json.dumps(
        {"quick": args.quick, "labels": labels, "seeds": seeds, "eval_episodes": eval_episodes,
         "random_return": randoms, "seconds": total, "runs": runs,
         **({"imitation": imit_meta, "imitation_runs": imit_runs} if args.with_imitation else {})},
        indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(envs), figsize=(4.5 * len(envs), 3.6))
    for ax, (env_id, (algo, timesteps)) in zip(np.atleast_1d(axes), envs.items()):
        means = [np.mean([r["return"] for r in runs if r["env"] == env_id and r["labels"] == n]) for n in labels]
        stds = [np.std([r["return"] for r in runs if r["env"] == env_id and r["labels"] == n]) for n in labels]
        ax.errorbar(labels, means, yerr=stds, fmt="o-", capsize=3, label="learned reward (oracle labels)")
        imit = [[r["return"] for r in imit_runs if r["env"] == env_id and r["labels"] == n] for n in labels]
        if all(imit):
            ax.errorbar(labels, [np.mean(v) for v in imit], yerr=[np.std(v) for v in imit], fmt="s-", capsize=3,
                        color="tab:orange", label=IMITATION)
        truth = [r["return"] for r in runs if r["env"] == env_id and r["labels"] is None]
        ax.axhline(np.mean(truth), color="tab:green", ls="--", label=f"{algo.upper()} on the true reward")
        ax.axhline(randoms[env_id], color="gray", ls=":", label="random policy")
        ax.set_xscale("log")
        ax.set_xticks(labels, [str(n) for n in labels])
        ax.minorticks_off()  # log-scale minor labels overlap the budgets
        ax.set_xlabel("labels")
        ax.set_ylabel("mean true return")
        ax.set_title(f"{env_id} ({algo.upper()}, {timesteps} steps)", fontsize=9)
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "pref_label_efficiency.png", dpi=110)
    print(f"\nwrote {out / 'pref_label_efficiency.json'} and .png")


if __name__ == "__main__":
    main()
