"""Behaviour cloning and DAgger: training seconds to expert level, irlhf vs. the ``imitation`` library.

Goal (issue 24): wall-clock to expert level against imitation for each shared method, as a ratio imitation / irlhf
(GAIL / AIRL: adversarial_vs_imitation.py; SQIL / density: sqil_density_vs_imitation.py; BC / DAgger: here).

Protocol. Normalised score = (R - R_random) / (R_expert - R_random), R_expert = ``evaluate(env, expert, 20,
seed=10_000)`` (scripted expert ``irlhf.rl.experts.make_expert``), R_random = ``random_return(env, 20,
seed=10_000)``. Expert level: normalised score >= 0.9. After every epoch (BC) / round (DAgger), untimed and left
out of the clock on both sides, the deterministic policy plays 10 episodes reset with seeds 20_000 + k (irlhf:
``evaluate(env, policy, 10, seed=20_000)`` in the train function's ``callback(record, policy)``, through
adversarial_vs_imitation's ``periodic_evaluation``; imitation: ``greedy_returns`` in its venv, gymnasium 0.29, same
reset seeds). Seconds to expert = training seconds at the first epoch / round whose score reaches expert level
(None if never; the epoch / round is reported too). Final score = the score at the last epoch / round.
Clocks: irlhf the history's "seconds" (BC: ``fit_policy``'s loop, after the data checks and the network build;
DAgger: from after the env is made; the JSON also has ``call_seconds``, from the start of the train call);
imitation ``BC.train()`` (the trainer built before) / the sum of ``SimpleDAggerTrainer.train`` calls.

* BC: envs CartPole-v1, Acrobot-v1, MountainCar-v0, LunarLander-v3, N = 4 expert trajectories (``--demos``),
  seeds s = 0..4 (``--seeds``), demos ``collect_demos(env, expert, N, seed=1000 * s)`` written with
  ``save_trajectories`` to an .npz both sides read. bc_vs_imitation.py's matched setting on both sides, up to
  E = 50 epochs, no early stop: MLP 32-32 tanh, Adam 1e-3, batch 32, entropy 1e-3, l2 0, no validation, no
  observation normalisation (irlhf ``bc.train(spaces, demos, matched_config, callback=...)``; imitation ``BC``
  with an SB3 ``ActorCriticPolicy(net_arch=[32, 32])`` and ``train(n_epochs=E, on_epoch_end=...)``). imitation
  drops the incomplete last batch of an epoch, irlhf keeps it. LunarLander-v3 does not exist in imitation's
  gymnasium 0.29 (nor is Box2D installed there): its side then saves the actor after each epoch (untimed) and
  this script scores the snapshots afterwards with irlhf's ``evaluate`` (same episodes, same seeds); reported as
  ``imitation_eval_mode``.
* DAgger: CartPole-v1. irlhf ``dagger.train("CartPole-v1", expert, dagger.Config(rounds=R, episodes_per_round=k,
  bc=<matched BC, epochs e>, seed=s))``, default linear beta_n = max(0, 1 - n / 5), the learner retrained from
  scratch every round. imitation: ``SimpleDAggerTrainer`` (n_envs 1, rng seeded s) with the expert as a tiny SB3
  ``BasePolicy`` applying irlhf's CartPole rule (``int(w . obs > b)``, w and b from ``CARTPOLE_RULE`` here, checked
  on 1000 random observations against irlhf's expert before the run and again inside imitation's venv),
  ``bc_trainer`` = the matched BC, ``beta_schedule=LinearBetaSchedule(5)`` (imitation's default ramp is 15 rounds;
  5 gives the same beta_n as irlhf's), R calls of ``train(total_timesteps=1, rollout_round_min_episodes=k,
  rollout_round_min_timesteps=1, bc_train_kwargs={"n_epochs": e, "log_rollouts_venv": None})`` = one round each
  (round_num, hence beta, carries over). Defaults R = 10, k = 4 (irlhf's), e = 4 (imitation's DEFAULT_N_EPOCHS).
  Not matched: imitation's BC CONTINUES training its policy (and Adam state) each round on the aggregate, irlhf's
  retrains from scratch; imitation's learner acts stochastically in rollouts (``policy.predict`` default), irlhf's
  deterministically; its per-step coin and reset seeds come from its own rng (irlhf: seeded Generator, resets
  seed + n k + i); imitation takes at least max(1, batch 32) steps per round (more episodes if k are shorter; the
  episodes per round are recorded); it writes each episode to its scratch dir and reloads the aggregate from disk
  every round (inside its clock); ``log_rollouts_venv=None`` turns off its 5 logging rollouts per round.

Both sides use ``torch.set_num_threads(1)`` and never overlap: per env, ONE imitation subprocess
(``imitation_bc_baseline.py``, all seeds, BC and for CartPole DAgger, after an untimed warm-up each) runs first,
then irlhf's runs here (untimed warm-ups first).

    python benchmarks/bc_dagger_time_to_expert.py              # 4 envs x 5 seeds BC, CartPole DAgger 5 seeds
    python benchmarks/bc_dagger_time_to_expert.py --quick --out /tmp/bctte/out   # CartPole, 1 seed (smoke)

Writes OUT/bc_dagger_time_to_expert.json (``--out``, default benchmarks/out) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from adversarial_vs_imitation import (EXPERT_LEVEL, TRAIN_EVAL_EPISODES, TRAIN_EVAL_SEED,  # noqa: E402
                                      fmt, periodic_evaluation, ratio_text, run_imitation, time_to_expert)
from bc_vs_imitation import ArgmaxMLP, load_argmax, matched_config, prepare_run, spaces_of  # noqa: E402

IMITATION_SCRIPT = HERE / "imitation_bc_baseline.py"
ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3")
DAGGER_ENV = "CartPole-v1"
#: irlhf's scripted CartPole expert (src/irlhf/envs/gym.py ``_cartpole_expert``): action = int(w . obs > b)
CARTPOLE_RULE = {"w": [0.01, 0.1, 1.0, 0.5], "b": 0.0}


def rule_actions(obs: np.ndarray) -> np.ndarray:
    """CARTPOLE_RULE in numpy, summed term by term in float32 (as irlhf's expert and imitation's side)."""
    x = np.asarray(obs, dtype=np.float32)
    score = x[:, 0] * np.float32(CARTPOLE_RULE["w"][0])
    for i, w in enumerate(CARTPOLE_RULE["w"][1:], start=1):
        score = score + x[:, i] * np.float32(w)
    return (score > CARTPOLE_RULE["b"]).astype(np.int64)


def check_rule(n: int = 1000) -> dict:
    """CARTPOLE_RULE against irlhf's expert on ``n`` random observations (normal, scaled to CartPole's range; a
    mismatch ends the script); the observations and irlhf's actions go to imitation's side for its own check."""
    from irlhf.rl.experts import make_expert

    rng = np.random.default_rng(0)
    obs = (rng.standard_normal((n, 4)) * np.array([1.0, 1.0, 0.1, 1.0])).astype(np.float32)
    theirs = np.asarray(make_expert(DAGGER_ENV)(obs)).reshape(-1)
    if not np.array_equal(rule_actions(obs), theirs):
        sys.exit(f"CARTPOLE_RULE disagrees with irlhf's CartPole expert on {int((rule_actions(obs) != theirs).sum())}"
                 f"/{n} observations; update it from src/irlhf/envs/gym.py")
    return {**CARTPOLE_RULE, "check_obs": obs.tolist(), "check_acts": theirs.tolist()}


def counting(env_id: str, t0: float) -> tuple:
    """``periodic_evaluation`` evaluating after every call (epoch / round), counted 1, 2, ... as its timesteps."""
    callback, evals, spent = periodic_evaluation(env_id, 1, t0)
    return (lambda record, policy: callback({**record, "timesteps": len(evals) + 1}, policy)), evals, spent


def irlhf_bc(args, env_id: str, demos, seed: int) -> dict:
    from irlhf.imitation import bc

    t0, c0 = time.perf_counter(), time.process_time()
    callback, evals, spent = counting(env_id, t0)
    fit = bc.train(spaces_of(env_id), demos, matched_config(args, seed), callback=callback)
    return {"seconds": time.perf_counter() - t0 - spent["wall"], "cpu_seconds": time.process_time() - c0
            - spent["cpu"], "eval_seconds": spent["wall"], "loop_seconds": fit.history[-1]["seconds"],
            "evals": evals, "n_train": fit.n_train}


def dagger_config(args, seed: int, warmup: bool = False):
    from irlhf.imitation import dagger

    bc_config = dataclasses.replace(matched_config(args, seed), epochs=1 if warmup else args.dagger_epochs)
    return dagger.Config(rounds=1 if warmup else args.rounds, episodes_per_round=1 if warmup else args.episodes,
                         beta_rounds=args.beta_rounds, bc=bc_config, seed=seed)


def irlhf_dagger(args, expert, seed: int) -> dict:
    from irlhf.imitation import dagger

    t0, c0 = time.perf_counter(), time.process_time()
    callback, evals, spent = counting(DAGGER_ENV, t0)
    res = dagger.train(DAGGER_ENV, expert, dagger_config(args, seed), callback=callback)
    return {"seconds": time.perf_counter() - t0 - spent["wall"], "cpu_seconds": time.process_time() - c0
            - spent["cpu"], "eval_seconds": spent["wall"], "loop_seconds": res.history[-1]["seconds"],
            "evals": evals, "n_samples": len(res.dataset),
            "rounds": [{"round": h["round"], "beta": h["beta"], "episodes": args.episodes, "n_new": h["n_new"]}
                       for h in res.history]}


def score_snapshots(env_id: str, path: str, evals: list) -> None:
    """Fill ``return`` of imitation's snapshot-mode evaluations: irlhf's ``evaluate`` on each epoch's actor."""
    from irlhf.envs.gym import evaluate

    with np.load(path) as z:
        for e in evals:
            n = int(e["timesteps"])
            k = sum(1 for name in z.files if name.startswith(f"e{n}_W"))
            policy = ArgmaxMLP([(z[f"e{n}_W{i}"], z[f"e{n}_b{i}"]) for i in range(k)])
            e["return"], e["return_std"] = evaluate(env_id, policy, TRAIN_EVAL_EPISODES, seed=TRAIN_EVAL_SEED)
            e["scored_by"] = "irlhf evaluate (snapshot)"


def row_of(env_id: str, method: str, library: str, seed: int, run: dict, ref: dict) -> dict:
    from irlhf.envs.gym import normalized_score

    for e in run["evals"]:
        e["normalized"] = normalized_score(env_id, e["return"], ref["expert"], ref["random"])
    tte, at = time_to_expert(env_id, run["evals"], ref["expert"], ref["random"])
    call_tte = next((e.get("call_seconds") for e in run["evals"] if e["timesteps"] == at), None)
    last = run["evals"][-1]
    return {"env": env_id, "method": method, "library": library, "seed": seed, "seconds_to_expert": tte,
            "unit_to_expert": at, "seconds_to_expert_from_call": call_tte, "final_return": last["return"],
            "final_normalized": last["normalized"], "units": len(run["evals"]), **run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(ENVS))
    parser.add_argument("--methods", nargs="+", default=["bc", "dagger"], choices=("bc", "dagger"))
    parser.add_argument("--demos", type=int, default=4, help="expert trajectories per seed (BC)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=50, help="BC epochs (an evaluation after each)")
    parser.add_argument("--rounds", type=int, default=10, help="DAgger rounds (an evaluation after each)")
    parser.add_argument("--episodes", type=int, default=4, help="DAgger episodes per round")
    parser.add_argument("--dagger-epochs", type=int, default=4, help="BC epochs per DAgger round")
    parser.add_argument("--beta-rounds", type=int, default=5, help="linear beta ramp (both sides)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, nargs="+", default=[32, 32])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    parser.add_argument("--quick", action="store_true", help="CartPole-v1, 1 seed, 5 epochs, 3 rounds (smoke)")
    parser.add_argument("--out", default=str(HERE / "out"))
    args = parser.parse_args()
    if args.quick:
        args.envs, args.seeds, args.epochs, args.rounds, args.dagger_epochs = ["CartPole-v1"], 1, 5, 3, 2
    out = prepare_run(args.out, args.threads)
    t_start = time.perf_counter()

    import torch

    from irlhf.data.io import save_trajectories
    from irlhf.envs.gym import collect_demos, evaluate, random_return
    from irlhf.imitation import bc, dagger
    from irlhf.rl.experts import make_expert

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:.0f}s] {msg}", file=sys.stderr, flush=True)

    seeds = list(range(args.seeds))
    refs = {env: {"expert": evaluate(env, make_expert(env), 20, seed=10_000)[0],
                  "random": random_return(env, 20, seed=10_000)} for env in args.envs}
    rule = check_rule() if "dagger" in args.methods and DAGGER_ENV in args.envs else None
    rows, meta = [], {}
    with tempfile.TemporaryDirectory(prefix="bc-dagger-tte-") as tmp:
        tmp = Path(tmp)
        for env_id in args.envs:
            expert = make_expert(env_id)
            demos, jobs = {}, []
            if "bc" in args.methods:
                for s in seeds:  # untimed: demos
                    demos[s] = collect_demos(env_id, expert, args.demos, seed=1000 * s)
                    save_trajectories(tmp / f"{env_id}_s{s}.npz", demos[s])
                    jobs.append({"npz": str(tmp / f"{env_id}_s{s}.npz"), "n_actions": int(spaces_of(env_id)[1].n),
                                 "seed": s, "out": str(tmp / f"{env_id}_s{s}_imitation.npz"),
                                 "snapshots": str(tmp / f"{env_id}_s{s}_epochs.npz")})
            do_dagger = "dagger" in args.methods and env_id == DAGGER_ENV
            if do_dagger:
                jobs += [{"kind": "dagger", "env": env_id, "seed": s, "rounds": args.rounds,
                          "episodes_per_round": args.episodes, "epochs": args.dagger_epochs,
                          "beta_rounds": args.beta_rounds, "expert": rule,
                          "snapshots": str(tmp / f"{env_id}_s{s}_rounds.npz")} for s in seeds]
            if not jobs:
                continue
            cfg = {"hidden_sizes": args.hidden, "batch_size": args.batch_size, "epochs": args.epochs, "lr": args.lr,
                   "ent_weight": 1e-3, "l2_weight": 0.0, "threads": args.threads,
                   "eval": {"env": env_id, "episodes": TRAIN_EVAL_EPISODES, "seed": TRAIN_EVAL_SEED}, "jobs": jobs}
            (tmp / "jobs.json").write_text(json.dumps(cfg))
            log(f"imitation: {env_id}, {len(jobs)} runs in one subprocess ...")
            theirs, records = run_imitation(IMITATION_SCRIPT, tmp / "jobs.json")
            meta[env_id] = theirs
            torch.set_num_threads(args.threads)

            # -- irlhf, after imitation's subprocess has ended; untimed warm-ups first --
            ours = {}
            if "bc" in args.methods:
                bc.train(spaces_of(env_id), demos[0], dataclasses.replace(matched_config(args, 0), epochs=2))
                for s in seeds:
                    ours["bc", s] = irlhf_bc(args, env_id, demos[s], s)
            if do_dagger:
                dagger.train(DAGGER_ENV, expert, dagger_config(args, 0, warmup=True))
                for s in seeds:
                    ours["dagger", s] = irlhf_dagger(args, expert, s)
            log(f"irlhf: {env_id} done")

            # -- untimed: imitation's snapshots (envs its gymnasium lacks), rows --
            for job, rec in zip(jobs, records):
                method = job.get("kind", "bc")
                if theirs.get("eval_mode") == "snapshots":
                    score_snapshots(env_id, job["snapshots"], rec["evals"])
                if method == "bc":
                    rec["predict_agreement"] = load_argmax(job["out"])[1]
                rec["seconds"], rec["cpu_seconds"] = rec.pop("train_seconds"), rec.pop("train_cpu_seconds")
                rows.append(row_of(env_id, method, "imitation", job["seed"], rec, refs[env_id]))
            for (method, s), run in ours.items():
                rows.append(row_of(env_id, method, "irlhf", s, run, refs[env_id]))
    total = time.perf_counter() - t_start
    report(args, rows, refs, meta, total, out, torch.__version__)


def report(args, rows: list, refs: dict, meta: dict, total: float, out: Path, torch_version: str) -> None:
    def pick(env, m, lib, field):
        return [r[field] for r in rows if r["env"] == env and r["method"] == m and r["library"] == lib]

    first = next(iter(meta.values()), {})
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
               "torch_irlhf": torch_version, "torch_threads_both": args.threads,
               **{f"imitation_side_{k}": v for k, v in first.items() if k not in ("eval", "eval_mode")}}
    print(f"machine: {machine['platform']}, {machine['cpu_count']} CPUs, torch {torch_version} (irlhf) / "
          f"{first.get('torch_version')} (imitation {first.get('imitation_version')}, SB3 "
          f"{first.get('stable_baselines3_version')}, gymnasium {first.get('gymnasium_version')}), torch threads "
          f"{args.threads} on both sides")
    print(f"BC: N = {args.demos} demos, up to {args.epochs} epochs, MLP {args.hidden} tanh, Adam {args.lr}, batch "
          f"{args.batch_size}; DAgger ({DAGGER_ENV}): {args.rounds} rounds x {args.episodes} episodes, "
          f"{args.dagger_epochs} BC epochs / round, linear beta over {args.beta_rounds} rounds; {args.seeds} seed(s); "
          f"evaluation after every epoch / round on {TRAIN_EVAL_EPISODES} episodes (seeds {TRAIN_EVAL_SEED}+k), "
          f"expert level = normalised >= {EXPERT_LEVEL}; s to expert: irlhf the history's clock, imitation train()'s\n")
    print("| env | method | irlhf s to expert (mean ± std, reached; epoch/round) | imitation s to expert | "
          "ratio imitation / irlhf | final normalised irlhf | final normalised imitation |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    for env in args.envs:
        for m in args.methods:
            if not pick(env, m, "irlhf", "seed"):
                continue
            cells, ratios = {}, []
            for sd in pick(env, m, "irlhf", "seed"):
                a = next((r["seconds_to_expert"] for r in rows if r["env"] == env and r["method"] == m
                          and r["library"] == "imitation" and r["seed"] == sd), None)
                b = next(r["seconds_to_expert"] for r in rows if r["env"] == env and r["method"] == m
                         and r["library"] == "irlhf" and r["seed"] == sd)
                if a is not None and b is not None:
                    ratios.append({"seed": sd, "ratio": a / b})
            for lib in ("irlhf", "imitation"):
                tte = pick(env, m, lib, "seconds_to_expert")
                hit = [x for x in tte if x is not None]
                units = [u for u in pick(env, m, lib, "unit_to_expert") if u is not None]
                cells[lib] = (f"{fmt(hit, 3)} s ({len(hit)}/{len(tte)}; {'epoch' if m == 'bc' else 'round'} "
                              f"{np.mean(units):.1f})" if hit else f"never (0/{len(tte)})")
                summary.append({"env": env, "method": m, "library": lib, "seconds_to_expert": tte,
                                "reached": len(hit), "runs": len(tte),
                                "seconds_to_expert_mean": float(np.mean(hit)) if hit else None,
                                "seconds_to_expert_std": float(np.std(hit)) if hit else None,
                                "unit_to_expert": pick(env, m, lib, "unit_to_expert"),
                                "final_normalized_mean": float(np.mean(pick(env, m, lib, "final_normalized"))),
                                "final_normalized_std": float(np.std(pick(env, m, lib, "final_normalized"))),
                                "seconds_mean": float(np.mean(pick(env, m, lib, "seconds"))),
                                "cpu_seconds_mean": float(np.mean(pick(env, m, lib, "cpu_seconds"))),
                                "time_to_expert_ratios": ratios})
            print(f"| {env} | {m.upper() if m == 'bc' else 'DAgger'} | {cells['irlhf']} | {cells['imitation']} | "
                  f"{ratio_text('imitation', ratios)} | {fmt(pick(env, m, 'irlhf', 'final_normalized'))} | "
                  f"{fmt(pick(env, m, 'imitation', 'final_normalized'))} |")
    print("\nReferences and whole runs (evaluations excluded; wall s / run, mean):")
    for s in summary:
        print(f"  {s['env']} {s['method']} {s['library']}: {s['seconds_mean']:.2f} s wall, "
              f"{s['cpu_seconds_mean']:.2f} s CPU per run")
    for env in args.envs:
        print(f"  {env}: R_expert {refs[env]['expert']:.1f}, R_random {refs[env]['random']:.1f}; imitation eval "
              f"mode {meta.get(env, {}).get('eval_mode')}")
    agree = [r["predict_agreement"] for r in rows if "predict_agreement" in r]
    rule_agree = [r["expert_check_agreement"] for r in rows if "expert_check_agreement" in r]
    if agree:
        print(f"imitation BC actor rebuild (snapshot scoring): agreement with predict() min {min(agree):.4f}")
    if rule_agree:
        print(f"imitation DAgger expert rule vs irlhf's expert on 1000 observations: agreement min {min(rule_agree)}")
    print(f"total runtime {total:.0f} s")
    path = out / "bc_dagger_time_to_expert.json"
    path.write_text(json.dumps({"protocol": __doc__, "config": vars(args), "machine": machine, "references": refs,
                                "imitation_meta": {k: {kk: vv for kk, vv in v.items() if kk != "eval"}
                                                   for k, v in meta.items()},
                                "summary": summary, "rows": rows, "total_seconds": total}, indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
