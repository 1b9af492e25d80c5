"""Continuous control (Hopper-v5, Pendulum-v1): irlhf's BC, GAIL, AIRL and SQIL vs. the ``imitation`` library on the
same demonstrations, budget and seeds.

Goal (issue 24): "one continuous-control MuJoCo task (Hopper-v5) for BC, GAIL, AIRL and SQIL at 3 seeds, beside
imitation's run with the same demonstrations and budget", and "SQIL with SAC side by side with imitation's SQIL on
the same demonstrations, budget and seeds" (Pendulum-v1).

Protocol. ``--env Hopper-v5`` (methods bc gail airl sqil; N = 10 expert trajectories, T = 50_000 env steps) or
``--env Pendulum-v1`` (method sqil, all four allowed; N = 4, T = 30_000). Expert: Hopper-v5 the SB3 SAC expert shipped
beside this script, ``experts/Hopper-v5-sac-seed0.zip`` (``irlhf expert train --env Hopper-v5 --algo sac --timesteps
300000``, docs/RESULTS.md; ``make_expert(env, kind=<that path>)``), Pendulum-v1 the scripted ``make_expert(env)``
(as ``irl_classic_control.py``). Per seed s in 0..S-1 (default 3):
``collect_demos(env, expert, N, seed=1000 * s)``, flattened and written once to an .npz (obs, acts (n, act_dim)
float32, next_obs, dones (real terminations only), ep_lens) under ``<out>/continuous_vs_imitation_<env>_demos/``
that both libraries read (its sha256 is part of every run's key, so a changed expert means new runs).

* irlhf (this venv), one run per (method, seed): ``bc.train(env, demos, bc.Config(seed=s))``;
  ``gail.train`` / ``airl.train(env, demos, <module>.Config(algo="sac", total_timesteps=T, seed=s))``;
  ``sqil.train(env, demos, sqil.Config(total_timesteps=T, seed=s))``: all library defaults (SAC with
  ``hyperparams(env, "sac")``, the rl-zoo settings: Hopper learning_starts 10_000, Pendulum lr 1e-3; SQIL's
  ``SAC_DEFAULTS`` tau 1e-3, lr 3e-4 over them; adversarial: rounds of 1000 SAC steps, discriminator 64-64 ReLU, 32
  Adam steps at 3e-3 per round, demo batch 256, absorbing state; BC: 64-64 ReLU Gaussian policy, Adam 1e-3, batch
  64, 200 epochs on all the demonstrations, no validation split). Timed: the whole train call (``perf_counter`` /
  ``process_time``), after an untimed warm-up run of the same method (1000 steps; BC one epoch).
* imitation (own venv, ``setup_imitation_venv.sh``, with MuJoCo): ``benchmarks/imitation_continuous_baseline.py``,
  one subprocess per run (after its own untimed warm-up), SB3 SAC with the SAME effective settings (read here from
  ``hyperparams`` and the irlhf Configs' defaults and passed in the job file), BC with irlhf's BC settings where
  imitation has the knob (net, activation, batch, lr, epochs, entropy weight, l2; no early stopping there).
  imitation's GAIL / AIRL refuse variable-horizon episodes: they train on seals' fixed-horizon ``seals/Hopper-v1``
  (imitation's own benchmark env; its x-position observation left out); its SQIL trains on plain ``Hopper-v4``
  (gymnasium 0.29 has no v5; same 11-d observation, 3-d action). Pendulum-v1 throughout on Pendulum-v1. Timed:
  ``train()`` only (``seconds``; ``seconds_with_setup`` adds building and export). Its docstring and the JSON's
  ``unmatched`` list the knobs that cannot be matched.

The runs go through ``irlhf.core.parallel.run_many`` (``--backend`` / ``--workers`` (default 1) / ``--address``):
each finished run is appended at once to ``<out>/continuous_vs_imitation_<env>.jsonl`` and runs already there (same
side, method, seed, N, T, demos, settings) are reused, so an interrupted benchmark resumes (``--fresh``: start over).
All imitation runs first, then all irlhf runs: the sides never overlap in time; one torch thread each.

Scoring (untimed, inside each run, both sides identical): ``evaluate(env, policy, 20, seed=10_000 + s)`` on irlhf's
env (Hopper-v5 / Pendulum-v1). imitation's deterministic actor is rebuilt in numpy (SAC: ReLU latent_pi -> mu ->
tanh -> the action bounds, ``pref_label_efficiency.load_sac``; BC: the ActorCriticPolicy's policy net and
action_net mean, clipped to the bounds) and checked against its own ``predict(obs, deterministic=True)`` on 256
demonstration observations (assert max abs diff < 1e-4). Normalised score = (R - R_random) / (R_expert - R_random),
R_expert = ``evaluate(env, expert, 20, seed=10_000)``, R_random = ``random_return(env, 20, seed=10_000)``. Time to
expert level is not measured here (see adversarial_vs_imitation.py / sqil_density_vs_imitation.py).

    python benchmarks/continuous_vs_imitation.py --env Hopper-v5               # bc gail airl sqil, 3 seeds
    python benchmarks/continuous_vs_imitation.py --env Pendulum-v1             # sqil, 3 seeds, 30k steps
    python benchmarks/continuous_vs_imitation.py --env Hopper-v5 --methods sqil --seeds 1 --side irlhf
    python benchmarks/continuous_vs_imitation.py --env Hopper-v5 --quick --out /tmp/cont/out   # smoke, not a result

Writes ``<out>/continuous_vs_imitation_<env>.json`` (rows of both sides, versions, settings, unmatched knobs,
machine; ``_quick`` in the names with --quick) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
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
IMITATION_PYTHON = HERE / ".venv-imitation" / "bin" / "python"
IMITATION_SCRIPT = HERE / "imitation_continuous_baseline.py"
HOPPER_EXPERT = HERE / "experts" / "Hopper-v5-sac-seed0.zip"  # trained 300,000 steps: a 1M-step run outlasts a session
ENVS = {"Hopper-v5": {"expert": str(HOPPER_EXPERT), "methods": ("bc", "gail", "airl", "sqil"), "demos": 10,
                      "timesteps": 50_000},
        "Pendulum-v1": {"expert": "scripted", "methods": ("sqil",), "demos": 4, "timesteps": 30_000}}
METHODS = ("bc", "gail", "airl", "sqil")
QUICK = {"timesteps": 2000, "demos": 2, "seeds": 1}
WARMUP_TIMESTEPS = 1000
SAC_REPORTED = ("learning_rate", "batch_size", "buffer_size", "learning_starts", "gamma", "tau", "gradient_steps",
                "target_update_interval", "ent_coef", "target_entropy", "n_envs")


def expert_of(env_id: str):
    from irlhf.rl.experts import make_expert

    return make_expert(env_id, kind=ENVS[env_id]["expert"])


def write_demos(env_id: str, n: int, seed: int, path: Path) -> dict:
    """The seed's demonstrations as the .npz both sides read; (samples, mean demo return, sha256 of the file)."""
    from irlhf.data.types import flatten_trajectories
    from irlhf.envs.gym import collect_demos

    demos = collect_demos(env_id, expert_of(env_id), n_episodes=n, seed=1000 * seed)
    t = flatten_trajectories(demos)
    np.savez(path, obs=t.obs, acts=np.asarray(t.acts, dtype=np.float32).reshape(len(t.obs), -1),
             next_obs=t.next_obs, dones=t.dones, ep_lens=np.array([len(d) for d in demos], dtype=np.int64))
    return {"n_samples": int(len(t.obs)), "demo_return": float(np.mean([d.rews.sum() for d in demos])),
            "sha": hashlib.sha256(path.read_bytes()).hexdigest()[:16]}


def load_transitions(path: str):
    from irlhf.data.types import Transitions

    with np.load(path) as z:
        return Transitions(obs=z["obs"], acts=z["acts"], next_obs=z["next_obs"], dones=z["dones"])


def imitation_settings(env_id: str) -> dict:
    """imitation's job-file settings: irlhf's effective values wherever imitation has the knob."""
    from irlhf.imitation import bc, sqil
    from irlhf.irl.adversarial import Config
    from irlhf.rl.sb3 import hyperparams

    sac = hyperparams(env_id, "sac")  # what gail / airl build with algo="sac" and the default Config
    sac.pop("n_timesteps")
    sqil_sac = hyperparams(env_id, "sac", **sqil.SAC_DEFAULTS)  # what sqil.train builds with the default Config
    sqil_sac.pop("n_timesteps")
    sqil_sac.pop("n_envs")
    b, d = bc.Config(), Config()
    return {"threads": 1, "n_envs": sac.pop("n_envs"), "sac_kwargs": sac, "sqil_sac_kwargs": sqil_sac,
            "bc": {"hidden_sizes": list(b.hidden_sizes), "activation": b.activation, "batch_size": b.batch_size,
                   "epochs": b.epochs, "lr": b.lr, "ent_weight": b.entropy_coef, "l2_weight": b.l2},
            "horizon": "absorb", "reward_output_norm": "running", "demo_batch_size": d.demo_batch_size,
            "n_disc_updates_per_round": d.disc_updates, "disc_lr": d.disc_lr,
            "disc_hidden_sizes": list(d.disc_hidden_sizes), "gen_train_timesteps": d.round_steps or 1000,
            "gen_replay_buffer_capacity": None, "airl_state_only": True, "sqil_demo_actions": "raw",
            "warmup_timesteps": WARMUP_TIMESTEPS}


def irlhf_config(method: str, timesteps: int, seed: int, warmup: bool = False):
    from irlhf.imitation import bc, sqil
    from irlhf.irl import airl, gail

    if method == "bc":
        return bc, bc.Config(seed=seed, epochs=1) if warmup else bc.Config(seed=seed)
    module = {"gail": gail, "airl": airl, "sqil": sqil}[method]
    steps = WARMUP_TIMESTEPS if warmup else timesteps
    if method == "sqil":
        return module, sqil.Config(total_timesteps=steps, seed=seed)
    return module, module.Config(algo="sac", total_timesteps=steps, seed=seed)


def irlhf_job(p: dict) -> dict:
    """One irlhf run (a run_many trial): untimed warm-up, the timed train call, the untimed scoring."""
    import dataclasses

    import torch

    from irlhf.envs.gym import evaluate
    from sqil_density_vs_imitation import settings_of

    torch.set_num_threads(1)
    env_id, method, seed = p["env"], p["method"], p["seed"]
    demos = load_transitions(p["demos"])
    module, warm = irlhf_config(method, p["timesteps"], 0, warmup=True)
    module.train(env_id, demos, warm)
    module, config = irlhf_config(method, p["timesteps"], seed)
    t0, c0 = time.perf_counter(), time.process_time()
    result = module.train(env_id, demos, config)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ret, std = evaluate(env_id, result.policy, p["eval_episodes"], seed=10_000 + seed)
    row = {"return": ret, "return_std": std, "seconds": wall, "cpu_seconds": cpu, "train_env": env_id,
           "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "progress"}}
    if method == "bc":
        row.update(best_epoch=result.best_epoch, epochs_run=len(result.history), n_train=result.n_train)
    else:
        row.update(agent_timesteps=int(result.model.num_timesteps), settings=settings_of(result.model, SAC_REPORTED))
    return row


def load_bc(path: str, low: np.ndarray, high: np.ndarray, act: str):
    """imitation's BC actor (ReLU / tanh policy net, then action_net: the Gaussian mean) clipped to the action
    bounds, in numpy; and its max abs difference from imitation's predict(deterministic=True)."""
    with np.load(path) as z:
        n = sum(1 for k in z.files if k.startswith("W"))
        layers = [(z[f"W{i}"].astype(np.float64), z[f"b{i}"].astype(np.float64)) for i in range(n)]
        check_obs, check_acts = z["check_obs"], z["check_acts"]

    def policy(obs: np.ndarray) -> np.ndarray:
        h = np.asarray(obs, dtype=np.float64).reshape(len(obs), -1)
        for i, (w, b) in enumerate(layers):
            h = h @ w.T + b
            if i < n - 1:
                h = np.maximum(h, 0.0) if act == "relu" else np.tanh(h)
        return np.clip(h, low, high).astype(np.float32)

    return policy, float(np.max(np.abs(policy(check_obs) - check_acts)))


def imitation_job(p: dict) -> dict:
    """One imitation run (a run_many trial): its subprocess (timed inside), then the untimed numpy rebuild and
    scoring with irlhf's ``evaluate``."""
    import gymnasium as gym

    from adversarial_vs_imitation import run_imitation
    from irlhf.envs.gym import evaluate
    from pref_label_efficiency import load_sac

    env_id, method, seed = p["env"], p["method"], p["seed"]
    with tempfile.TemporaryDirectory(prefix="continuous-vs-imitation-") as tmp:
        out = Path(tmp) / "policy.npz"
        job = {"method": method, "env": env_id, "demos": p["demos"], "total_timesteps": p["timesteps"],
               "seed": seed, "out": str(out)}
        (Path(tmp) / "jobs.json").write_text(json.dumps({**p["job_settings"], "jobs": [job]}))
        try:
            theirs, records = run_imitation(IMITATION_SCRIPT, Path(tmp) / "jobs.json")
        except SystemExit as exc:  # run_imitation exits on a failed subprocess; a trial should fail instead
            raise RuntimeError(str(exc)) from None
        rec = records[0]
        if method == "bc":
            space = gym.make(env_id).action_space
            policy, diff = load_bc(str(out), space.low, space.high, p["job_settings"]["bc"]["activation"])
        else:
            policy, diff = load_sac(str(out))
        assert diff < 1e-4, f"numpy rebuild of imitation's {method} actor differs from predict by {diff}"
        ret, std = evaluate(env_id, policy, p["eval_episodes"], seed=10_000 + seed)
    versions = {k: v for k, v in theirs.items() if k != "unmatched"}
    keep = ("train_env", "horizon", "agent_timesteps", "rounds", "gen_train_timesteps", "optimizer_steps", "samples",
            "settings", "n_demo_transitions")
    return {"return": ret, "return_std": std, "seconds": rec["train_seconds"], "cpu_seconds": rec["train_cpu_seconds"],
            "seconds_with_setup": rec["total_seconds"], "predict_max_abs_diff": diff, "versions": versions,
            "unmatched": theirs["unmatched"].get(method), **{k: rec[k] for k in keep if k in rec}}


def run_job(p: dict) -> dict:
    sys.path.insert(0, str(HERE))  # a Ray worker unpickles this function without the script's sys.path
    return imitation_job(p) if p["side"] == "imitation" else irlhf_job(p)


def fmt(values, digits=2) -> str:
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}" if len(values) else "-"


def print_settings(rows: list, methods: list) -> dict:
    """The effective settings of both sides per method (first seed), the differing keys marked; returns them."""
    from sqil_density_vs_imitation import diff_settings

    out = {}
    for m in methods:
        a = next((r for r in rows if r["method"] == m and r["side"] == "irlhf"), {})
        b = next((r for r in rows if r["method"] == m and r["side"] == "imitation"), {})
        if m == "bc":
            ours, theirs = a.get("config", {}), b.get("job_settings", {}).get("bc", {})
        else:  # SAC's effective settings (both sides); gail / airl: then the loop's / discriminator's
            ours, theirs = a.get("settings", {}), b.get("settings", {})
        out[m] = {"irlhf": ours, "imitation": theirs}
        print(f"{m} effective settings:\n  irlhf: {json.dumps(ours, default=str)}\n  imitation: "
              f"{json.dumps(theirs, default=str)}")
        if m != "bc" and ours and theirs:
            print(f"  SAC settings differing: {diff_settings(ours, theirs)}")
        if m in ("gail", "airl"):
            s = b.get("job_settings", {})
            loop = {k: v for k, v in a.get("config", {}).items() if k not in ("rl_kwargs", "seed", "total_timesteps")}
            theirs_loop = {k: s.get(k) for k in ("demo_batch_size", "n_disc_updates_per_round", "disc_lr",
                                                 "disc_hidden_sizes", "gen_train_timesteps", "reward_output_norm",
                                                 "airl_state_only", "horizon")}
            out[m].update(irlhf_loop=loop, imitation_loop=theirs_loop)
            print(f"  irlhf loop: {json.dumps(loop)}\n  imitation loop: {json.dumps(theirs_loop)}")
    return out


def main() -> None:
    from irlhf.core.parallel import add_arguments, run_many

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="Hopper-v5", choices=sorted(ENVS))
    parser.add_argument("--methods", nargs="+", choices=METHODS,
                        help="default: Hopper bc gail airl sqil, Pendulum sqil")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--demos", type=int, help="expert trajectories per seed (default: Hopper 10, Pendulum 4)")
    parser.add_argument("--timesteps", type=int, help="env steps of gail / airl / sqil (default: Hopper 50k, "
                        "Pendulum 30k)")
    parser.add_argument("--side", default="both", choices=("irlhf", "imitation", "both"))
    parser.add_argument("--eval-episodes", type=int, default=20, help="episodes of the final scoring")
    add_arguments(parser, workers=1)
    parser.add_argument("--fresh", action="store_true", help="ignore (and overwrite) earlier runs in the log")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK['timesteps']} steps, {QUICK['demos']} demos, "
                        "1 seed (smoke check, not a result)")
    parser.add_argument("--out", default=str(HERE / "out"))
    args = parser.parse_args()
    spec = ENVS[args.env]
    args.methods = args.methods or list(spec["methods"])
    args.demos = args.demos or spec["demos"]
    args.timesteps = args.timesteps or spec["timesteps"]
    if args.quick:
        args.timesteps, args.demos, args.seeds = QUICK["timesteps"], min(args.demos, QUICK["demos"]), QUICK["seeds"]
    sides = ["imitation", "irlhf"] if args.side == "both" else [args.side]
    if "imitation" in sides and not IMITATION_PYTHON.exists():
        sys.exit(f"{IMITATION_PYTHON} missing; run `bash benchmarks/setup_imitation_venv.sh` first")
    out = Path(args.out)
    stem = f"continuous_vs_imitation_{args.env}" + ("_quick" if args.quick else "")
    demo_dir = out / f"continuous_vs_imitation_{args.env}_demos"
    demo_dir.mkdir(parents=True, exist_ok=True)
    t_start, started = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M:%S %Z")

    import torch

    from irlhf.envs.gym import evaluate, normalized_score, random_return

    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    ref = {"expert": evaluate(args.env, expert_of(args.env), args.eval_episodes, seed=10_000)[0],
           "random": random_return(args.env, args.eval_episodes, seed=10_000)}
    demo_info = {s: write_demos(args.env, args.demos, s, demo_dir / f"s{s}_n{args.demos}.npz") for s in seeds}
    settings_in = imitation_settings(args.env)
    # irlhf draws min(demo_batch_size, demo rows) expert rows per step; imitation needs a full batch of demos
    settings_in["demo_batch_size"] = min(settings_in["demo_batch_size"], *(d["n_samples"] for d in demo_info.values()))
    rows = []
    for side in sides:  # imitation's runs first, then irlhf's: the sides never overlap in time
        params = [{"side": side, "env": args.env, "method": m, "seed": s, "n_demos": args.demos,
                   "timesteps": 0 if m == "bc" else args.timesteps, "eval_episodes": args.eval_episodes,
                   "demos": str(demo_dir / f"s{s}_n{args.demos}.npz"), "demo_sha": demo_info[s]["sha"],
                   **({"job_settings": settings_in} if side == "imitation" else {})}
                  for s in seeds for m in args.methods]
        batch = run_many(run_job, params, log=out / f"{stem}.jsonl", backend=args.backend, workers=args.workers,
                         address=args.address, fresh=args.fresh and side == sides[0], desc=f"{side} {args.env}",
                         on_row=lambda r: print(f"[{time.perf_counter() - t_start:.0f}s] {r['side']} {r['method']} "
                                                f"seed {r['seed']}: return {r['return']:.1f}, {r['seconds']:.1f} s",
                                                file=sys.stderr, flush=True))
        for r in batch.rows:
            r["normalized"] = normalized_score(args.env, r["return"], ref["expert"], ref["random"])
            r["demo_return"] = demo_info[r["seed"]]["demo_return"]
            r["n_samples"] = demo_info[r["seed"]]["n_samples"]
            rows.append(r)
        if batch.failed:
            print(f"{len(batch.failed)} {side} run(s) failed: see {out / (stem + '.failed.jsonl')}", file=sys.stderr)
    total = time.perf_counter() - t_start

    # -- report --
    imit = next((r["versions"] for r in rows if r["side"] == "imitation"), {})
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
               "torch_irlhf": torch.__version__, "numpy_irlhf": np.__version__, "torch_threads_both": 1,
               "loadavg_end": os.getloadavg(), **{f"imitation_side_{k}": v for k, v in imit.items()}}
    print(f"started {started}; machine: {machine['platform']}, {os.cpu_count()} CPUs, load average now "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; torch {torch.__version__} (irlhf) / "
          f"{imit.get('torch_version')} (imitation {imit.get('imitation_version')}, SB3 "
          f"{imit.get('stable_baselines3_version')}, gymnasium {imit.get('gymnasium_version')}, mujoco "
          f"{imit.get('mujoco_version')}); one torch thread on both sides")
    print(f"{args.env}: {args.demos} expert trajectories ({ENVS[args.env]['expert']} expert, demo return "
          f"{np.mean([d['demo_return'] for d in demo_info.values()]):.1f}), {args.seeds} seed(s), T = {args.timesteps} "
          f"env steps (gail / airl / sqil), final scoring {args.eval_episodes} episodes; R_expert {ref['expert']:.1f}, "
          f"R_random {ref['random']:.1f}; s / run: irlhf the whole train call, imitation train() only\n")
    settings = print_settings(rows, args.methods)
    print("\n| method | irlhf score | imitation score | irlhf s / run | imitation s / run | "
          "ratio imitation / irlhf s |")
    print("|---|---|---|---|---|---|")
    summary = []
    for m in args.methods:
        pick = {lib: [r for r in rows if r["method"] == m and r["side"] == lib] for lib in ("irlhf", "imitation")}
        secs = {lib: float(np.mean([r["seconds"] for r in sel])) if sel else None for lib, sel in pick.items()}
        ratio = secs["imitation"] / secs["irlhf"] if secs["imitation"] and secs["irlhf"] else None
        summary.append({"method": m, "ratio_seconds": ratio, **{
            f"{lib}_{k}": v for lib, sel in pick.items() for k, v in (
                ("normalized", [r["normalized"] for r in sel]), ("returns", [r["return"] for r in sel]),
                ("seconds_mean", secs[lib]), ("cpu_seconds_mean", float(np.mean([r["cpu_seconds"] for r in sel]))
                                              if sel else None))}})
        s = summary[-1]
        cell = {lib: "-" if secs[lib] is None else f"{secs[lib]:.1f}" for lib in secs}
        print(f"| {m.upper()} | {fmt(s['irlhf_normalized'])} | {fmt(s['imitation_normalized'])} | {cell['irlhf']} | "
              f"{cell['imitation']} | {'-' if ratio is None else f'{ratio:.2f}x'} |")
    print("\nscores: normalised, mean ± std over seeds; returns per seed:")
    for s in summary:
        print(f"  {s['method']}: irlhf {[round(x, 1) for x in s['irlhf_returns']]}, imitation "
              f"{[round(x, 1) for x in s['imitation_returns']]}")
    diffs = [r["predict_max_abs_diff"] for r in rows if "predict_max_abs_diff" in r]
    if diffs:
        print(f"imitation actor rebuild: max abs diff from predict(deterministic=True) {max(diffs):.1e}")
    unmatched = {m: next((r["unmatched"] for r in rows if r["side"] == "imitation" and r["method"] == m), None)
                 for m in args.methods}
    for m, knobs in unmatched.items():
        for k, v in (knobs or {}).items():
            print(f"unmatched ({m}) {k}: {v}")
    print(f"total runtime {total:.0f} s")
    (out / f"{stem}.json").write_text(json.dumps(
        {"protocol": __doc__, "config": vars(args), "started": started, "machine": machine, "references": ref,
         "demos": demo_info, "imitation_job_settings": settings_in, "settings": settings, "unmatched": unmatched,
         "summary": summary, "rows": rows, "total_seconds": total}, indent=2, default=str))
    print(f"wrote {out / (stem + '.json')}")


if __name__ == "__main__":
    main()
