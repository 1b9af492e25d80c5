"""Behaviour cloning: irlhf vs. the ``imitation`` library on the same demonstrations and network.

Goal: against imitation's BC on the same demonstrations and network size, in the same run, an equal
or better score and at least 2x the training throughput (samples per second).

Protocol. Envs CartPole-v1, Acrobot-v1, MountainCar-v0, LunarLander-v3 with the scripted experts of
``irlhf.rl.experts.make_expert``; N in (1, 10) expert trajectories; seeds 0..4. For each (env, N, seed)
the demos ``collect_demos(env, expert, N, seed=1000 * seed)`` are written once with
``irlhf.data.io.save_trajectories`` to a temporary .npz that both libraries read.

* imitation (its own venv, gymnasium 0.29, see ``setup_imitation_venv.sh``): one subprocess runs
  ``benchmarks/imitation_bc_baseline.py`` on all jobs (so its import time is paid once and never
  timed): ``imitation.algorithms.bc.BC`` with an SB3 ``ActorCriticPolicy(net_arch=[32, 32])`` (tanh,
  no observation normalisation; = imitation's default ``FeedForward32Policy``), Adam lr 1e-3,
  ``ent_weight`` 1e-3, ``l2_weight`` 0, batch size B = 32, ``train(n_epochs=E)`` with E = 50.
  Throughput = samples seen (optimiser steps x B) / seconds of ``train()`` alone (wall clock, and
  process CPU time, which is robust to other load on a shared machine).
* irlhf "matched": ``bc.train`` with ``bc.Config(hidden_sizes=(32, 32), activation="tanh", lr=1e-3,
  batch_size=32, epochs=50, entropy_coef=1e-3, l2=0, validation_fraction=0, patience=None,
  normalize_obs=False, seed=seed)`` in this process. Throughput = E x n / seconds of the whole
  ``bc.train`` call (spaces passed as a pair, so no env is made inside the timing).
* irlhf "default" (extra row, score only): ``bc.Config(seed=seed)`` (MLP 64-64 relu, normalised
  observations, 10% validation split, early stopping) -- not matched, not part of the comparison.

Both libraries use ``torch.set_num_threads(1)``. Timed phases never overlap with each other or with
this script's other work: per (env, N) one imitation subprocess trains the 5 seeds, then irlhf trains
them here (interleaved so both see similar background load); each side has an untimed warm-up.
Only then are the policies scored, in parallel, all with irlhf's
``evaluate(env, policy, n_episodes=20, seed=10_000 + seed)``: imitation's trained actor is exported
(policy_net linear layers + action_net) and rebuilt here as a deterministic argmax policy in numpy
(verified against imitation's own ``policy.predict(deterministic=True)`` on 256 demo observations).
Normalised score = (R - R_random) / (R_expert - R_random), R_expert = ``evaluate(env, expert, 20,
seed=10_000)``, R_random = ``random_return(env, 20, seed=10_000)``. Tables: mean +- std over seeds.

The untimed jobs (references, demo writing before the timed phase; scoring after it) go through
``irlhf.core.parallel.run_many`` (``--backend``: Ray tasks when ray is installed, else a process pool; one torch
thread each; they share temporary files, so one machine); Ray is shut down before the timed phase.

Epoch caveat: imitation's data loader drops the incomplete last batch (floor(n / B) * B samples per
epoch, reshuffled); irlhf keeps it (n samples per epoch). Samples are counted as each library saw them.

    python benchmarks/bc_vs_imitation.py            # 4 envs x N in (1, 10) x 5 seeds, ~10 min on 2 cores
    python benchmarks/bc_vs_imitation.py --quick    # CartPole-v1, 1 seed, 10 epochs (smoke check)

Writes benchmarks/out/bc_vs_imitation.{json,png} and prints markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from irlhf.core.parallel import BACKENDS, run_many

HERE = Path(__file__).resolve().parent
IMITATION_PYTHON = HERE / ".venv-imitation" / "bin" / "python"
ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3")
METHODS = ("imitation", "irlhf matched", "irlhf default")


class ArgmaxMLP:
    """Deterministic policy from exported SB3 actor weights: tanh hidden layers, argmax of the logits."""

    def __init__(self, weights: list[tuple[np.ndarray, np.ndarray]]):
        self.weights = weights

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        for k, (W, b) in enumerate(self.weights):
            x = x @ W.T + b
            if k < len(self.weights) - 1:
                x = np.tanh(x)
        return x.argmax(axis=1).astype(np.int64)


def prepare_run(out: str, threads: int) -> Path:
    """The *_vs_imitation scripts' start: exit unless the imitation venv exists; make ``out``; set torch's
    threads (both sides run with the same count). Returns ``out`` as a Path."""
    if not IMITATION_PYTHON.exists():
        sys.exit(f"{IMITATION_PYTHON} missing; run `bash benchmarks/setup_imitation_venv.sh` first")
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(threads)
    return path


def load_argmax(path: str) -> tuple[ArgmaxMLP, float]:
    """The rebuilt policy and its agreement with imitation's own predict() on the check observations."""
    with np.load(path) as z:
        n = sum(1 for k in z.files if k.startswith("W"))
        policy = ArgmaxMLP([(z[f"W{i}"], z[f"b{i}"]) for i in range(n)])
        agree = float(np.mean(policy(z["check_obs"]) == z["check_acts"].reshape(-1)))
    return policy, agree


def spaces_of(env_id: str):
    import gymnasium

    env = gymnasium.make(env_id)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def matched_config(args, seed: int):
    from irlhf.imitation import bc

    return bc.Config(hidden_sizes=tuple(args.hidden), activation="tanh", lr=args.lr, batch_size=args.batch_size,
                     epochs=args.epochs, validation_fraction=0.0, patience=None, entropy_coef=1e-3, l2=0.0,
                     normalize_obs=False, seed=seed)


# -- trial jobs (untimed; run_many, one torch thread each) -----------------------------------------
def ref_job(p: dict) -> dict:
    from irlhf.envs.gym import evaluate, random_return
    from irlhf.rl.experts import make_expert

    env_id = p["env"]
    return {"env": env_id, "expert": evaluate(env_id, make_expert(env_id), 20, seed=10_000)[0],
            "random": random_return(env_id, 20, seed=10_000)}


def demo_job(p: dict) -> dict:
    from irlhf.data.io import save_trajectories
    from irlhf.envs.gym import collect_demos
    from irlhf.rl.experts import make_expert

    env_id, n, seed = p["env"], p["n_demos"], p["seed"]
    demos = collect_demos(env_id, make_expert(env_id), n, seed=1000 * seed)
    save_trajectories(p["path"], demos)
    return {"env": env_id, "n_demos": n, "seed": seed, "n_samples": int(sum(len(t) for t in demos)),
            "expert_demo_return": float(np.mean([t.rews.sum() for t in demos]))}


def eval_imitation_job(p: dict) -> dict:
    from irlhf.envs.gym import evaluate

    policy, agree = load_argmax(p["weights"])
    mean, std = evaluate(p["env"], policy, n_episodes=20, seed=10_000 + p["seed"])
    return {"return": mean, "return_std": std, "predict_agreement": agree}


def eval_matched_job(p: dict) -> dict:
    import torch

    from irlhf.envs.gym import evaluate
    from irlhf.nn.policies import MLPPolicy, Policy

    module = MLPPolicy(*spaces_of(p["env"]), tuple(p["hidden"]), "tanh")
    module.load_state_dict(torch.load(p["state"]))
    module.eval()
    mean, std = evaluate(p["env"], Policy(module), n_episodes=20, seed=10_000 + p["seed"])
    return {"return": mean, "return_std": std}


def default_job(p: dict) -> dict:
    from irlhf.data.io import load_trajectories
    from irlhf.envs.gym import evaluate
    from irlhf.imitation import bc

    env_id, seed = p["env"], p["seed"]
    demos = load_trajectories(p["path"])
    t0 = time.perf_counter()
    fit = bc.train(spaces_of(env_id), demos, bc.Config(seed=seed))
    seconds = time.perf_counter() - t0
    mean, std = evaluate(env_id, fit.policy, n_episodes=20, seed=10_000 + seed)
    samples = len(fit.history) * fit.n_train
    return {"return": mean, "return_std": std, "seconds": seconds, "samples": samples,
            "epochs_run": len(fit.history), "best_epoch": fit.best_epoch}


JOBS = {"reference": ref_job, "demos": demo_job, "imitation": eval_imitation_job, "irlhf matched": eval_matched_job,
        "irlhf default": default_job}


def untimed_job(p: dict) -> dict:
    """One untimed job (run_many's trial function): ``JOBS[p["job"]](p)``."""
    return JOBS[p["job"]](p)


# -- main -----------------------------------------------------------------------------------------
def untimed(args, params: list, desc: str) -> list:
    """The rows of ``untimed_job`` over ``params`` (in order) through run_many (no log: cheap jobs, made again each
    run); a failed job ends the script, as the pool's exception did."""
    batch = run_many(untimed_job, params, backend=args.backend, workers=args.workers, address=args.address,
                     desc=desc, echo=lambda line: print(line, file=sys.stderr))
    if batch.failed:
        sys.exit(f"{desc}: {len(batch.failed)} job(s) failed; first: {batch.failed[0]['error']}\n"
                 f"{batch.failed[0].get('traceback') or ''}")
    return batch.rows


def stop_ray() -> None:
    """Shut a Ray instance started by run_many down (its daemons would otherwise run beside the timed phase)."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def fmt(values, digits=2) -> str:
    return f"{np.mean(values):.{digits}f} +- {np.std(values):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(ENVS))
    parser.add_argument("--demos", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, nargs="+", default=[32, 32])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="for the untimed evaluations")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="where the untimed jobs run "
                        "(irlhf.core.parallel: auto = Ray tasks when ray is installed, else a local process pool)")
    parser.add_argument("--address", help="an existing Ray cluster on this machine (the jobs share temporary files; "
                        "default RAY_ADDRESS, else a local instance)")
    parser.add_argument("--quick", action="store_true", help="CartPole-v1, 1 seed, 10 epochs")
    parser.add_argument("--out", default=str(HERE / "out"))
    args = parser.parse_args()
    if args.quick:
        args.envs, args.seeds, args.epochs = ["CartPole-v1"], 1, 10
    out = prepare_run(args.out, args.threads)
    t_start = time.perf_counter()

    import torch

    from irlhf.data.io import load_trajectories
    from irlhf.envs.gym import normalized_score
    from irlhf.imitation import bc

    keys = [(env, n, seed) for env in args.envs for n in args.demos for seed in range(args.seeds)]
    spaces = {env: spaces_of(env) for env in args.envs}
    with tempfile.TemporaryDirectory(prefix="bc-vs-imitation-") as tmp:
        tmp = Path(tmp)
        npz = {k: str(tmp / f"{k[0]}_N{k[1]}_s{k[2]}.npz") for k in keys}
        wts = {k: str(tmp / f"{k[0]}_N{k[1]}_s{k[2]}_imitation.npz") for k in keys}
        pts = {k: str(tmp / f"{k[0]}_N{k[1]}_s{k[2]}_irlhf.pt") for k in keys}
        prep = untimed(args, [{"job": "reference", "env": env} for env in args.envs]
                       + [{"job": "demos", "env": k[0], "n_demos": k[1], "seed": k[2], "path": npz[k]} for k in keys],
                       "references and demos")
        refs = {r["env"]: {"env": r["env"], "expert": r["expert"], "random": r["random"]}
                for r in prep[:len(args.envs)]}
        demo_info = dict(zip(keys, prep[len(args.envs):]))
        print(f"[{time.perf_counter() - t_start:.0f}s] demos written", file=sys.stderr)
        stop_ray()
        torch.set_num_threads(args.threads)  # again: a serial backend ran the jobs above here with one thread

        # timed: per (env, N) group, imitation's seeds in one subprocess, then irlhf's seeds in this process
        # (interleaved so both see similar machine load; nothing else of this script runs meanwhile)
        demos = {k: load_trajectories(npz[k]) for k in keys}
        bc.train(spaces[keys[0][0]], demos[keys[0]], dataclasses.replace(matched_config(args, 0), epochs=2))  # warm-up
        theirs, ours, states, theirs_all = {}, {}, {}, {}
        for env in args.envs:
            for n in args.demos:
                group = [k for k in keys if k[0] == env and k[1] == n]
                jobs = {"hidden_sizes": args.hidden, "batch_size": args.batch_size, "epochs": args.epochs,
                        "lr": args.lr, "ent_weight": 1e-3, "l2_weight": 0.0, "threads": args.threads,
                        "jobs": [{"npz": npz[k], "n_actions": int(spaces[env][1].n), "seed": k[2], "out": wts[k]}
                                 for k in group]}
                (tmp / "jobs.json").write_text(json.dumps(jobs))
                done = subprocess.run([str(IMITATION_PYTHON), str(HERE / "imitation_bc_baseline.py"), "--jobs",
                                       str(tmp / "jobs.json")], capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"imitation baseline failed:\n{done.stderr[-4000:]}")
                theirs_all = json.loads(done.stdout.strip().splitlines()[-1])
                theirs.update(zip(group, theirs_all.pop("records")))
                for k in group:
                    t0, c0 = time.perf_counter(), time.process_time()
                    fit = bc.train(spaces[env], demos[k], matched_config(args, k[2]))
                    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
                    ours[k] = {"seconds": seconds, "cpu_seconds": cpu, "loop_seconds": fit.history[-1]["seconds"],
                               "samples": args.epochs * fit.n_train,
                               "final_train_loss": fit.history[-1]["train_loss"]}
                    states[k] = {name: t.clone() for name, t in fit.policy.module.state_dict().items()}
                print(f"[{time.perf_counter() - t_start:.0f}s] {env} N={n} trained", file=sys.stderr)

        # untimed: scoring (and the default-config extra row), in parallel
        for k in keys:
            torch.save(states[k], pts[k])
        extra = {"imitation": lambda k: {"weights": wts[k]}, "irlhf default": lambda k: {"path": npz[k]},
                 "irlhf matched": lambda k: {"hidden": list(args.hidden), "state": pts[k]}}
        scored = untimed(args, [{"job": method, "env": k[0], "seed": k[2], **extra[method](k)}
                                for method in METHODS for k in keys], "scoring")
        scores = {method: dict(zip(keys, scored[i * len(keys):(i + 1) * len(keys)]))
                  for i, method in enumerate(METHODS)}

    rows = []
    for k in keys:
        env, n, seed = k
        ref = refs[env]
        for method in METHODS:
            s = scores[method][k]
            row = {"env": env, "n_demos": n, "seed": seed, "method": method, "n_samples": demo_info[k]["n_samples"],
                   "return": s["return"], "return_std": s["return_std"],
                   "normalized": normalized_score(env, s["return"], ref["expert"], ref["random"])}
            if method == "imitation":
                t = theirs[k]
                row.update(samples=t["samples"], seconds=t["train_seconds"], cpu_seconds=t["train_cpu_seconds"],
                           seconds_with_setup=t["total_seconds"],
                           predict_agreement=s["predict_agreement"])
            elif method == "irlhf matched":
                row.update(samples=ours[k]["samples"], seconds=ours[k]["seconds"], cpu_seconds=ours[k]["cpu_seconds"],
                           loop_seconds=ours[k]["loop_seconds"], final_train_loss=ours[k]["final_train_loss"])
            else:
                row.update(samples=s["samples"], seconds=s["seconds"], epochs_run=s["epochs_run"],
                           best_epoch=s["best_epoch"])
            row["samples_per_s"] = row["samples"] / row["seconds"]
            if "cpu_seconds" in row:
                row["samples_per_cpu_s"] = row["samples"] / row["cpu_seconds"]
            rows.append(row)
    total = time.perf_counter() - t_start

    def pick(env, n, method, field):
        return [r[field] for r in rows if r["env"] == env and r["n_demos"] == n and r["method"] == method]

    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch_irlhf": torch.__version__,
               "numpy_irlhf": np.__version__, "torch_threads_both": args.threads, **{f"imitation_side_{k}": v
                                                                                    for k, v in theirs_all.items()}}
    print(f"machine: {machine['platform']}, {machine['cpu_count']} CPUs, torch {torch.__version__} (irlhf) / "
          f"{theirs_all['torch_version']} (imitation {theirs_all['imitation_version']}, SB3 "
          f"{theirs_all['stable_baselines3_version']}, gymnasium {theirs_all['gymnasium_version']}), "
          f"torch threads {args.threads} on both sides")
    print(f"matched setting: MLP {args.hidden} tanh, Adam lr {args.lr}, batch {args.batch_size}, {args.epochs} epochs, "
          f"ent 1e-3, l2 0, no obs normalisation, no validation; {args.seeds} seeds; eval 20 episodes")
    print("\nScores (mean +- std over seeds): return / normalised score")
    print("| env | N | samples | R_expert | R_random | imitation | irlhf matched | irlhf default (extra) |")
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    for env in args.envs:
        for n in args.demos:
            cells = []
            for method in METHODS:
                cells.append(f"{fmt(pick(env, n, method, 'return'), 1)} / {fmt(pick(env, n, method, 'normalized'))}")
            print(f"| {env} | {n} | {np.mean(pick(env, n, 'imitation', 'n_samples')):.0f} | "
                  f"{refs[env]['expert']:.1f} | {refs[env]['random']:.1f} | " + " | ".join(cells) + " |")
            theirs_sps = pick(env, n, "imitation", "samples_per_s")
            ours_sps = pick(env, n, "irlhf matched", "samples_per_s")
            summary.append({"env": env, "n_demos": n,
                            **{f"{m}_normalized_mean": float(np.mean(pick(env, n, m, "normalized"))) for m in METHODS},
                            **{f"{m}_normalized_std": float(np.std(pick(env, n, m, "normalized"))) for m in METHODS},
                            **{f"{m}_return_mean": float(np.mean(pick(env, n, m, "return"))) for m in METHODS},
                            "imitation_samples_per_s": float(np.mean(theirs_sps)),
                            "irlhf_samples_per_s": float(np.mean(ours_sps)),
                            "speedup": float(np.mean(ours_sps) / np.mean(theirs_sps))})
    print("\nTraining throughput, matched setting (samples/s, mean +- std over seeds; imitation: train() only, "
          "irlhf: whole bc.train; wall = perf_counter, CPU = process_time)")
    print("| env | N | imitation wall | irlhf wall | ratio wall | imitation CPU | irlhf CPU | ratio CPU |")
    print("|---|---|---|---|---|---|---|---|")
    for s in summary:
        env, n = s["env"], s["n_demos"]
        ti, to = pick(env, n, "imitation", "samples_per_cpu_s"), pick(env, n, "irlhf matched", "samples_per_cpu_s")
        s.update(imitation_samples_per_cpu_s=float(np.mean(ti)), irlhf_samples_per_cpu_s=float(np.mean(to)),
                 speedup_cpu=float(np.mean(to) / np.mean(ti)))
        print(f"| {env} | {n} | {fmt(pick(env, n, 'imitation', 'samples_per_s'), 0)} | "
              f"{fmt(pick(env, n, 'irlhf matched', 'samples_per_s'), 0)} | {s['speedup']:.2f}x | "
              f"{fmt(ti, 0)} | {fmt(to, 0)} | {s['speedup_cpu']:.2f}x |")

    def total_rate(method, field):
        return sum(r["samples"] for r in rows if r["method"] == method) / sum(r[field] for r in rows
                                                                             if r["method"] == method)

    overall = total_rate("irlhf matched", "seconds") / total_rate("imitation", "seconds")
    overall_cpu = total_rate("irlhf matched", "cpu_seconds") / total_rate("imitation", "cpu_seconds")
    print(f"| all (total samples / total s) | - | {total_rate('imitation', 'seconds'):.0f} | "
          f"{total_rate('irlhf matched', 'seconds'):.0f} | {overall:.2f}x | "
          f"{total_rate('imitation', 'cpu_seconds'):.0f} | "
          f"{total_rate('irlhf matched', 'cpu_seconds'):.0f} | {overall_cpu:.2f}x |")
    agree = [r["predict_agreement"] for r in rows if r["method"] == "imitation"]
    print(f"\nimitation policy rebuild: agreement with policy.predict(deterministic=True) min {min(agree):.4f}")
    n_score = sum(1 for s in summary if s["irlhf matched_normalized_mean"] >= s["imitation_normalized_mean"] - 1e-9)
    print(f"irlhf matched >= imitation (mean normalised score) in {n_score}/{len(summary)} (env, N) cells; "
          f"overall throughput ratio {overall:.2f}x wall, {overall_cpu:.2f}x CPU")
    print(f"total runtime {total:.0f} s")

    (out / "bc_vs_imitation.json").write_text(json.dumps(
        {"protocol": __doc__, "config": vars(args), "machine": machine, "references": refs, "summary": summary,
         "overall_throughput_ratio": overall,
         "overall_throughput_ratio_cpu": overall_cpu, "rows": rows, "total_seconds": total}, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{s['env'].split('-')[0]}\nN={s['n_demos']}" for s in summary]
    x = np.arange(len(summary))
    fig, ax = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(summary) + 2), 4))
    w = 0.27
    for i, m in enumerate(METHODS):
        ax[0].bar(x + (i - 1) * w, [s[f"{m}_normalized_mean"] for s in summary], w,
                  yerr=[s[f"{m}_normalized_std"] for s in summary], label=m, capsize=2)
    ax[0].axhline(1.0, color="k", lw=0.6, ls="--")
    ax[0].set(xticks=x, xticklabels=labels, ylabel="normalised score", title="score (1 = expert, 0 = random)")
    ax[0].legend(fontsize=8)
    ax[1].bar(x - w / 2, [s["imitation_samples_per_s"] for s in summary], w, label="imitation")
    ax[1].bar(x + w / 2, [s["irlhf_samples_per_s"] for s in summary], w, label="irlhf matched")
    ax[1].set(xticks=x, xticklabels=labels, ylabel="samples / s", title=f"training throughput ({args.threads} thread)")
    ax[1].legend(fontsize=8)
    for a in ax:
        a.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "bc_vs_imitation.png", dpi=110)
    print(f"plot: {out / 'bc_vs_imitation.png'}")


if __name__ == "__main__":
    main()
