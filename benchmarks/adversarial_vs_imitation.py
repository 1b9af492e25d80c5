"""GAIL and AIRL: irlhf vs. the ``imitation`` library on the same demonstrations, envs and timestep budgets, with
the wall-clock time each needs to reach expert level.

Goal (issue): side by side with imitation's GAIL and AIRL, in the same run, final normalised score,
wall-clock and the training seconds to expert level (ratio imitation / irlhf); irlhf should be at least as good
and faster.

Protocol. Per env (default CartPole-v1, PPO generator; Pendulum-v1 with a SAC generator on request, see below)
and seed s in 0..S-1 (default 3): N expert trajectories (default 4) ``collect_demos(env, make_expert(env), N,
seed=1000 * s)``, flattened with ``irlhf.data.types.flatten_trajectories`` and written once to an .npz (obs,
acts, next_obs, dones, ep_lens) that both libraries read. Budget T environment steps (default 50_000).

* irlhf, in this process: ``gail.train(env, demos, gail.Config(total_timesteps=T, seed=s, algo=...))`` and
  ``airl.train(..., airl.Config(...))``: all of irlhf's defaults (PPO with ``irlhf.rl.sb3.hyperparams(env,
  "ppo")``, the rl-zoo settings; disc 64-64 ReLU, 32 Adam steps at 3e-3 per PPO rollout, demo batch 256,
  absorbing state, PPO reward normalisation). Timed: the whole ``train`` call (env and model building
  included, so slightly against irlhf), ``perf_counter`` (wall) and ``process_time`` (CPU), after an untimed
  one-round warm-up run per method (imitation's side gets the same, ``warmup_timesteps``).
* imitation (own venv, ``setup_imitation_venv.sh``): ONE subprocess per env of
  ``benchmarks/imitation_adversarial_baseline.py`` with every (method, seed) job, after an untimed warm-up
  job; ``GAIL`` / ``AIRL`` with the same PPO hyperparameters (``lin_`` schedules over the whole run), the same
  discriminator sizes / steps / lr / batch where imitation has the knob, and imitation's fixed-horizon
  training env (CartPole-v1 -> seals/CartPole-v0); its docstring lists the knobs that cannot be matched.
  Timed: ``trainer.train()`` only.

Time to expert level (as ``sqil_density_vs_imitation.py``): both sides evaluate the greedy policy at the first
rollout / round end past every multiple of ``--eval-every`` env steps (default 5000) on 10 episodes of the
original env reset with seeds 20_000 + k (irlhf: ``evaluate(env, policy, 10, seed=20_000)`` in the train
functions' own ``callback(record, policy)``, called once per round, whose time the history's ``seconds``
exclude; imitation: ``AdversarialTrainer.train(total_timesteps, callback=...)``, called once per round, with the
same reset seeds in its own loop), the evaluation time excluded from the clock. Seconds to expert level =
training seconds at the first evaluation with normalised score >= 0.9 (None if never). Clocks: irlhf the loop's
(from ``learn``: env / model building and GAIL's default behaviour-cloning warm start of the PPO generator are
outside it; the JSON also holds ``seconds_to_expert_from_call``, from the start of the train call), imitation
``train()``'s. Wall / CPU s per run exclude the evaluations on both sides.

irlhf's runs and imitation's subprocess never overlap (the subprocess runs first, then irlhf's runs); both
use ``torch.set_num_threads(1)``. Then, untimed, every policy is scored with irlhf's ``evaluate(env, policy,
20, seed=10_000 + s)`` on the original env: imitation's exported actor is rebuilt in numpy (argmax of the
tanh MLP for PPO, ``load_argmax``; SAC: ``load_sac``) and checked against imitation's own
``predict(deterministic=True)`` on demonstration observations (``predict_agreement`` / max abs diff).
Normalised score = (R - R_random) / (R_expert - R_random), R_expert = ``evaluate(env, expert, 20,
seed=10_000)``, R_random = ``random_return(env, 20, seed=10_000)``. Table: mean +- std over seeds.

Pendulum-v1 (``--envs Pendulum-v1``, SAC generator, irlhf's zoo SAC setting lr 1e-3 on both sides; imitation's
trainers support SB3 SAC, with rounds of 1000 steps as irlhf's and its ``ReplayBufferRewardWrapper``
relabelling; Pendulum never terminates, so both libraries see the same fixed horizon) is implemented but not in
the default set.

    python benchmarks/adversarial_vs_imitation.py             # CartPole-v1, N=4, 3 seeds, 50k steps
    python benchmarks/adversarial_vs_imitation.py --quick     # 2048 steps, 1 seed (smoke check, not a result)

Writes benchmarks/out/adversarial_vs_imitation.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
IMITATION_PYTHON = HERE / ".venv-imitation" / "bin" / "python"
IMITATION_SCRIPT = HERE / "imitation_adversarial_baseline.py"
GENERATOR = {"CartPole-v1": "ppo", "Pendulum-v1": "sac"}
METHODS = ("gail", "airl")
EXPERT_LEVEL = 0.9
TRAIN_EVAL_EPISODES, TRAIN_EVAL_SEED = 10, 20_000


def run_imitation(script: Path, jobs_path: Path) -> tuple[dict, list]:
    """Run an imitation-side baseline script on its jobs file in imitation's venv; (its metadata, its records)."""
    done = subprocess.run([str(IMITATION_PYTHON), str(script), "--jobs", str(jobs_path)], capture_output=True,
                          text=True)
    if done.returncode:
        sys.exit(f"imitation baseline failed:\n{done.stderr[-4000:]}")
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    return theirs, theirs.pop("records")


def ratio_text(library: str, ratios: list) -> str:
    """The table's time-to-expert ratio cell: the mean of per-seed ratios imitation / irlhf, and each."""
    if library == "irlhf":
        return "-"
    if not ratios:
        return "n/a (not both reach it on any seed)"
    return (f"{np.mean([r['ratio'] for r in ratios]):.2f}x mean ("
            + ", ".join(f"s{r['seed']}: {r['ratio']:.2f}x" for r in ratios) + ")")


def fmt(values, digits=2) -> str:
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def write_demos(env_id: str, n: int, seed: int, path: Path) -> dict:
    from irlhf.data.types import flatten_trajectories
    from irlhf.envs.gym import collect_demos
    from irlhf.rl.experts import make_expert

    demos = collect_demos(env_id, make_expert(env_id), n, seed=1000 * seed)
    t = flatten_trajectories(demos)
    np.savez(path, obs=t.obs, acts=t.acts, next_obs=t.next_obs, dones=t.dones,
             ep_lens=np.array([len(d) for d in demos], dtype=np.int64))
    return {"n_samples": int(len(t.obs)), "expert_demo_return": float(np.mean([d.rews.sum() for d in demos])),
            "transitions": t}


def imitation_config(env_id: str, algo: str, args, jobs: list) -> dict:
    from irlhf.irl.adversarial import Config
    from irlhf.rl.sb3 import hyperparams

    hp = hyperparams(env_id, algo)
    hp.pop("n_timesteps")
    n_envs = hp.pop("n_envs")
    d = Config()
    cfg = {"threads": args.threads, "horizon": args.imitation_horizon, "reward_output_norm": args.imitation_output_norm,
           "gen_normalize_reward": args.imitation_gen_normalize_reward, "algo": algo, "n_envs": n_envs,
           f"{algo}_kwargs": hp, "demo_batch_size": d.demo_batch_size, "n_disc_updates_per_round": d.disc_updates,
           "disc_lr": d.disc_lr, "disc_hidden_sizes": list(d.disc_hidden_sizes), "gen_train_timesteps": None,
           "gen_replay_buffer_capacity": None, "airl_state_only": True, "eval_every": args.eval_every,
           "eval_episodes": TRAIN_EVAL_EPISODES, "eval_seed": TRAIN_EVAL_SEED, "jobs": jobs}
    if algo == "ppo":
        cfg["warmup_timesteps"] = int(hp["n_steps"]) * n_envs
    else:
        cfg["warmup_timesteps"] = 1000
    return cfg


def time_to_expert(env_id: str, evals: list, expert: float, random: float) -> tuple[float | None, int | None]:
    from irlhf.envs.gym import normalized_score

    for e in evals:
        if normalized_score(env_id, e["return"], expert, random) >= EXPERT_LEVEL:
            return e["train_seconds"], e["timesteps"]
    return None, None


def periodic_evaluation(env_id: str, eval_every: int, t0: float) -> tuple:
    """A train-function ``callback(record, policy)`` that evaluates the greedy policy on TRAIN_EVAL_EPISODES
    episodes at the first record past every multiple of ``eval_every`` steps (0: never); returns (callback, the
    evaluations list it fills, the wall / CPU seconds it spent, which the caller takes off its clocks). t0: the
    perf_counter at the start of the train call (for each evaluation's ``call_seconds``)."""
    from irlhf.envs.gym import evaluate

    evals: list = []
    spent = {"wall": 0.0, "cpu": 0.0}
    state = {"next": eval_every}

    def callback(record: dict, policy) -> None:
        t = int(record["timesteps"])
        if eval_every <= 0 or t < state["next"]:
            return None
        w, c = time.perf_counter(), time.process_time()
        mean, std = evaluate(env_id, policy, TRAIN_EVAL_EPISODES, seed=TRAIN_EVAL_SEED)
        # train_seconds: the loop's clock (history 'seconds', from learn, callbacks excluded); call_seconds: from
        # the start of the train call (env / model building and gail's BC warm start included), evaluations excluded
        evals.append({"timesteps": t, "train_seconds": float(record["seconds"]),
                      "call_seconds": w - t0 - spent["wall"], "return": mean, "return_std": std})
        state["next"] = (t // eval_every + 1) * eval_every
        spent["wall"] += time.perf_counter() - w
        spent["cpu"] += time.process_time() - c
        return None

    return callback, evals, spent


def irlhf_run(module, env_id: str, transitions, config, eval_every: int) -> dict:
    """One irlhf run with the periodic evaluation as its train function's callback (time excluded)."""
    t0, c0 = time.perf_counter(), time.process_time()
    callback, evals, spent = periodic_evaluation(env_id, eval_every, t0)
    result = module.train(env_id, transitions, config, callback=callback)
    wall = time.perf_counter() - t0 - spent["wall"]
    cpu = time.process_time() - c0 - spent["cpu"]
    return {"policy": result.policy, "seconds": wall, "cpu_seconds": cpu, "eval_seconds": spent["wall"],
            "loop_seconds": result.history[-1]["seconds"] if result.history else None,
            "agent_timesteps": int(result.model.num_timesteps), "evals": evals,
            "bc_warm_start": bool(getattr(config, "bc_warm_start", False))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1"], choices=sorted(GENERATOR))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--demos", type=int, default=4, help="expert trajectories per seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=5000, help="env steps between evaluations in training")
    parser.add_argument("--eval-episodes", type=int, default=20, help="episodes of the final scoring")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    parser.add_argument("--imitation-horizon", default="absorb", choices=("absorb", "absorb_wrapper", "variable"),
                        help="see imitation_prefs_baseline.make_venv")
    parser.add_argument("--imitation-output-norm", default="running", choices=("running", "none"))
    parser.add_argument("--imitation-gen-normalize-reward", action="store_true",
                        help="wrap imitation's generator env in VecNormalize(norm_reward) as irlhf does (not "
                             "imitation's behaviour)")
    parser.add_argument("--irlhf-no-absorbing", action="store_true",
                        help="irlhf with absorbing=False: plain episode ends, as imitation's variable horizon")
    parser.add_argument("--quick", action="store_true", help="2048 steps, 1 seed, eval every 1000 (smoke check)")
    parser.add_argument("--out", default=str(HERE / "out"))
    args = parser.parse_args()
    if args.quick:
        args.timesteps, args.seeds, args.eval_every = 2048, 1, 1000
    sys.path.insert(0, str(HERE))
    from bc_vs_imitation import load_argmax, prepare_run
    from pref_label_efficiency import load_sac

    out = prepare_run(args.out, args.threads)
    t_start = time.perf_counter()

    import torch

    from irlhf.envs.gym import evaluate, normalized_score, random_return
    from irlhf.irl import airl, gail
    from irlhf.rl.experts import make_expert

    seeds = list(range(args.seeds))
    refs = {env: {"expert": evaluate(env, make_expert(env), args.eval_episodes, seed=10_000)[0],
                  "random": random_return(env, args.eval_episodes, seed=10_000)} for env in args.envs}
    rows, meta = [], {}
    with tempfile.TemporaryDirectory(prefix="adv-vs-imitation-") as tmp:
        tmp = Path(tmp)
        for env_id in args.envs:
            algo = GENERATOR[env_id]
            demo_path = {s: tmp / f"{env_id}_s{s}_demos.npz" for s in seeds}
            demo_info = {s: write_demos(env_id, args.demos, s, demo_path[s]) for s in seeds}

            # -- imitation: one subprocess, all (method, seed) jobs; timed inside (train() only) --
            jobs = [{"method": m, "env": env_id, "demos": str(demo_path[s]), "total_timesteps": args.timesteps,
                     "seed": s, "out": str(tmp / f"{env_id}_{m}_s{s}_imitation.npz")}
                    for m in args.methods for s in seeds]
            cfg = imitation_config(env_id, algo, args, jobs)
            (tmp / "jobs.json").write_text(json.dumps(cfg))
            print(f"[{time.perf_counter() - t_start:.0f}s] imitation: {env_id}, {len(jobs)} runs in one "
                  "subprocess ...", file=sys.stderr, flush=True)
            theirs, records = run_imitation(IMITATION_SCRIPT, tmp / "jobs.json")
            meta[env_id] = {"imitation": theirs, "imitation_settings": {k: v for k, v in cfg.items() if k != "jobs"}}

            # -- irlhf: in this process, after imitation's subprocess has ended; timed: the whole train call --
            ours = {}
            for m in args.methods:
                module = gail if m == "gail" else airl
                # untimed warm-up (one round), as the imitation side's warmup_timesteps
                module.train(env_id, demo_info[seeds[0]]["transitions"],
                             module.Config(total_timesteps=cfg["warmup_timesteps"], seed=0, algo=algo))
                for s in seeds:
                    config = module.Config(total_timesteps=args.timesteps, seed=s, algo=algo,
                                           absorbing=not args.irlhf_no_absorbing)
                    ours[m, s] = irlhf_run(module, env_id, demo_info[s]["transitions"], config, args.eval_every)
                    print(f"[{time.perf_counter() - t_start:.0f}s] irlhf {m} {env_id} seed {s}: "
                          f"{ours[m, s]['seconds']:.0f} s", file=sys.stderr, flush=True)

            # -- untimed: scoring on the original env --
            ref = refs[env_id]
            for rec in records:
                m, s = rec["method"], rec["seed"]
                if algo == "sac":
                    policy, diff = load_sac(rec["out"])
                    check = {"predict_max_abs_diff": diff}
                else:
                    policy, agree = load_argmax(rec["out"])
                    check = {"predict_agreement": agree}
                mean, std = evaluate(env_id, policy, args.eval_episodes, seed=10_000 + s)
                tte, tte_steps = time_to_expert(env_id, rec["evals"], ref["expert"], ref["random"])
                rows.append({"env": env_id, "method": m, "library": "imitation", "seed": s,
                             "timesteps": rec["agent_timesteps"], "return": mean, "return_std": std,
                             "normalized": normalized_score(env_id, mean, ref["expert"], ref["random"]),
                             "seconds": rec["train_seconds"], "cpu_seconds": rec["train_cpu_seconds"],
                             "seconds_with_setup": rec["total_seconds"], "eval_seconds": rec["eval_seconds"],
                             "seconds_to_expert": tte, "timesteps_to_expert": tte_steps, "evals": rec["evals"],
                             "horizon": rec["horizon"],
                             "train_env": rec["train_env"], "n_samples": demo_info[s]["n_samples"], **check})
            for (m, s), o in ours.items():
                mean, std = evaluate(env_id, o["policy"], args.eval_episodes, seed=10_000 + s)
                tte, tte_steps = time_to_expert(env_id, o["evals"], ref["expert"], ref["random"])
                call_tte = next((e["call_seconds"] for e in o["evals"] if e["train_seconds"] == tte), None)
                rows.append({"env": env_id, "method": m, "library": "irlhf", "seed": s,
                             "timesteps": o["agent_timesteps"], "return": mean, "return_std": std,
                             "normalized": normalized_score(env_id, mean, ref["expert"], ref["random"]),
                             "seconds": o["seconds"], "cpu_seconds": o["cpu_seconds"],
                             "loop_seconds": o["loop_seconds"], "eval_seconds": o["eval_seconds"],
                             "seconds_to_expert": tte, "timesteps_to_expert": tte_steps,
                             "seconds_to_expert_from_call": call_tte, "evals": o["evals"],
                             "bc_warm_start": o["bc_warm_start"], "n_samples": demo_info[s]["n_samples"]})
    total = time.perf_counter() - t_start

    def pick(env, m, lib, field):
        return [r[field] for r in rows if r["env"] == env and r["method"] == m and r["library"] == lib]

    first = next(iter(meta.values()))["imitation"] if meta else {}
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
               "torch_irlhf": torch.__version__, "numpy_irlhf": np.__version__, "torch_threads_both": args.threads,
               "irlhf_absorbing": not args.irlhf_no_absorbing,
               **{f"imitation_side_{k}": v for k, v in first.items() if k != "unmatched"}}
    print(f"machine: {machine['platform']}, {machine['cpu_count']} CPUs, torch {torch.__version__} (irlhf) / "
          f"{first.get('torch_version')} (imitation {first.get('imitation_version')}, SB3 "
          f"{first.get('stable_baselines3_version')}), torch threads {args.threads} on both sides")
    print(f"{args.demos} expert trajectories, {args.seeds} seed(s), T = {args.timesteps}, final scoring "
          f"{args.eval_episodes} episodes; training evaluations every {args.eval_every} steps on "
          f"{TRAIN_EVAL_EPISODES} episodes, expert level = normalised >= {EXPERT_LEVEL}; wall / CPU: irlhf whole "
          "train call, imitation train() only, evaluations excluded on both sides; s to expert level: irlhf the "
          "loop's clock (from learn), imitation train()'s\n")
    print("| env | method | library | timesteps | return | normalised | wall s / run | CPU s / run | "
          "s to expert level (per seed) | ratio imitation / irlhf |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    summary = []

    def seed_of(env, m, lib, s, field):
        return next((r[field] for r in rows if r["env"] == env and r["method"] == m and r["library"] == lib
                     and r["seed"] == s), None)

    for env in args.envs:
        ref = refs[env]
        for m in args.methods:
            ratios = []
            for sd in seeds:
                a, b = (seed_of(env, m, lib, sd, "seconds_to_expert") for lib in ("imitation", "irlhf"))
                if a is not None and b is not None:
                    ratios.append({"seed": sd, "ratio": a / b})
            for lib in ("irlhf", "imitation"):
                s = {"env": env, "method": m, "library": lib,
                     "timesteps_mean": float(np.mean(pick(env, m, lib, "timesteps"))),
                     "return_mean": float(np.mean(pick(env, m, lib, "return"))),
                     "return_std": float(np.std(pick(env, m, lib, "return"))),
                     "normalized_mean": float(np.mean(pick(env, m, lib, "normalized"))),
                     "normalized_std": float(np.std(pick(env, m, lib, "normalized"))),
                     "seconds_mean": float(np.mean(pick(env, m, lib, "seconds"))),
                     "cpu_seconds_mean": float(np.mean(pick(env, m, lib, "cpu_seconds"))),
                     "seconds_to_expert": pick(env, m, lib, "seconds_to_expert"),
                     "time_to_expert_ratios": ratios}
                summary.append(s)
                ttes = ", ".join("never" if x is None else f"{x:.1f}" for x in s["seconds_to_expert"])
                ratio_cell = ratio_text(lib, ratios)
                print(f"| {env} | {m.upper()} | {lib} | {s['timesteps_mean']:.0f} | "
                      f"{fmt(pick(env, m, lib, 'return'), 1)} | {fmt(pick(env, m, lib, 'normalized'))} | "
                      f"{s['seconds_mean']:.1f} | {s['cpu_seconds_mean']:.1f} | {ttes} | {ratio_cell} |")
        print(f"\n{env}: R_expert {ref['expert']:.1f}, R_random {ref['random']:.1f}")
        for m in args.methods:  # irlhf's clock from the start of the train call (building, BC warm start included)
            calls = [seed_of(env, m, "irlhf", sd, "seconds_to_expert_from_call") for sd in seeds]
            theirs = [seed_of(env, m, "imitation", sd, "seconds_to_expert") for sd in seeds]
            ratios = [a / b for a, b in zip(theirs, calls) if a is not None and b is not None]
            print(f"{env} {m.upper()}: irlhf s to expert level from the start of the train call (BC warm start "
                  f"{'on' if seed_of(env, m, 'irlhf', seeds[0], 'bc_warm_start') else 'off'}): "
                  + ", ".join("never" if x is None else f"{x:.1f}" for x in calls)
                  + (f"; ratio imitation / irlhf on that clock {np.mean(ratios):.2f}x mean" if ratios else ""))
    comparisons = []
    for env in args.envs:
        for m in args.methods:
            a = {s["library"]: s for s in summary if s["env"] == env and s["method"] == m}
            comparisons.append({"env": env, "method": m,
                                "score_at_least_as_good": a["irlhf"]["normalized_mean"]
                                >= a["imitation"]["normalized_mean"] - 1e-9,
                                "speedup_wall": a["imitation"]["seconds_mean"] / a["irlhf"]["seconds_mean"],
                                "speedup_cpu": a["imitation"]["cpu_seconds_mean"] / a["irlhf"]["cpu_seconds_mean"],
                                "time_to_expert_ratios": a["imitation"]["time_to_expert_ratios"]})
            c = comparisons[-1]
            print(f"{env} {m.upper()}: irlhf normalised >= imitation: {c['score_at_least_as_good']}; "
                  f"speed-up (imitation s / irlhf s) {c['speedup_wall']:.2f}x wall, {c['speedup_cpu']:.2f}x CPU")
    agree = [r["predict_agreement"] for r in rows if "predict_agreement" in r]
    diffs = [r["predict_max_abs_diff"] for r in rows if "predict_max_abs_diff" in r]
    if agree:
        print(f"imitation PPO actor rebuild: agreement with predict(deterministic=True) min {min(agree):.4f}")
    if diffs:
        print(f"imitation SAC actor rebuild: max abs diff from predict(deterministic=True) {max(diffs):.1e}")
    print(f"total runtime {total:.0f} s")
    (out / "adversarial_vs_imitation.json").write_text(json.dumps(
        {"protocol": __doc__, "config": vars(args), "machine": machine, "references": refs, "meta": meta,
         "summary": summary, "comparisons": comparisons, "rows": rows, "total_seconds": total}, indent=2))
    print(f"wrote {out / 'adversarial_vs_imitation.json'}")


if __name__ == "__main__":
    main()
