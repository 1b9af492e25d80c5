"""SQIL and density-based imitation: irlhf vs. the ``imitation`` library on the same demonstrations, budget and
seeds, with the wall-clock time each needs to reach expert level.

Goal (issue): side by side with imitation's SQIL and its density-based reward (``DensityAlgorithm``): final
normalised score, wall-clock per run, and the training seconds to expert level (ratio imitation / irlhf).

Protocol. CartPole-v1, the scripted expert ``irlhf.rl.experts.make_expert``. Per seed s in 0..S-1 (default 3):
N expert trajectories (default 4) ``collect_demos("CartPole-v1", expert, N, seed=1000 * s)`` (as
``sqil_cartpole.py`` / ``density_cartpole.py``), flattened with ``irlhf.data.types.flatten_trajectories`` and
written to an .npz (obs, acts, next_obs, dones, ep_lens) that both libraries read. Budget T environment steps:
SQIL 50_000 DQN steps, density 50_000 PPO steps (``--timesteps`` sets both). Per seed, first imitation's side
runs as ONE subprocess (both methods), then irlhf's side in this process; they never overlap, both use
``torch.set_num_threads(1)``, and each side has an untimed warm-up run per method (SQIL 1280 steps, density 512)
before its first timed run.

* irlhf: ``sqil.train(env, demos, sqil.Config(total_timesteps=T, seed=s, log_every=...))`` (all defaults: DQN
  with the zoo's CartPole settings under SQIL's ``DQN_DEFAULTS``, lr 1e-4, target update every 1000 steps, half
  demonstration batches) and ``density.train(env, demos, density.Config(density_type="state_action",
  total_timesteps=T, seed=s, log_every=...))`` (all defaults: Gaussian KDE with Scott's bandwidth, absorbing
  state, reward floor, PPO with ``hyperparams("CartPole-v1", "ppo")`` and reward normalisation). ``log_every``
  (history records only) is set so that a record falls on the first rollout end past each evaluation point.
* imitation (own venv, ``setup_imitation_venv.sh``): ``benchmarks/imitation_sqil_density_baseline.py``:
  ``imitation.algorithms.sqil.SQIL`` with DQN and the SAME effective DQN settings as irlhf's SQIL
  (``hyperparams("CartPole-v1", "dqn", **sqil.DQN_DEFAULTS)``); ``DensityAlgorithm`` (state-action, Gaussian
  kernel, bandwidth = irlhf's Scott h on the same demos, PPO with the same settings, trained on imitation's
  fixed-horizon ``seals/CartPole-v0`` since it refuses variable horizons). Its docstring lists the knobs that
  cannot be matched; the effective settings of both sides are printed.

Time to expert level: both sides evaluate the greedy policy at the first rollout end past every multiple of
``--eval-every`` env steps (default 5000; SQIL's last point after its final training step) on 10 episodes of
CartPole-v1 reset with seeds 20_000 + k (irlhf: ``evaluate(env, policy, 10, seed=20_000)``; imitation: the same
reset seeds in its own loop), the evaluation time excluded from the clock (irlhf: its train functions' own
``callback`` argument, whose time the history's ``seconds`` exclude). Seconds to expert level = training seconds
at the first evaluation with normalised score >= 0.9 (None if never). Clocks start at ``learn``: the density
fit is outside on both sides. Wall s / run: irlhf the whole train call, imitation building + fit + learn +
export, evaluations excluded on both sides.

Final scoring (untimed): every final policy with irlhf's ``evaluate(env, policy, 20, seed=10_000 + s)`` on
CartPole-v1; imitation's exported actor is rebuilt in numpy (argmax of DQN's ReLU Q-net / PPO's tanh actor) and
checked against imitation's own ``predict(deterministic=True)`` on 256 demonstration observations. Normalised
score = (R - R_random) / (R_expert - R_random), R_expert = ``evaluate(env, expert, 20, seed=10_000)``,
R_random = ``random_return(env, 20, seed=10_000)`` (``sqil_cartpole.py``). Table: mean +- std over seeds.

    bash benchmarks/setup_imitation_venv.sh                   # once: benchmarks/.venv-imitation
    python benchmarks/sqil_density_vs_imitation.py            # N=4, 3 seeds, 50k steps each, both methods
    python benchmarks/sqil_density_vs_imitation.py --seeds 1 --methods sqil
    python benchmarks/sqil_density_vs_imitation.py --quick    # 3000 steps, 1 seed (smoke check, not a result)

Writes benchmarks/out/sqil_density_vs_imitation.json (after every seed) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
# this directory is on sys.path when run as a script
from adversarial_vs_imitation import (TRAIN_EVAL_EPISODES, TRAIN_EVAL_SEED, periodic_evaluation, ratio_text,
                                     run_imitation)

HERE = Path(__file__).resolve().parent
IMITATION_PYTHON = HERE / ".venv-imitation" / "bin" / "python"
IMITATION_SCRIPT = HERE / "imitation_sqil_density_baseline.py"
ENV = "CartPole-v1"
METHODS = ("sqil", "density")
BUDGET = {"sqil": 50_000, "density": 50_000}
WARMUP = {"sqil": 1280, "density": 512}
EXPERT_LEVEL = 0.9
DQN_REPORTED = ("learning_rate", "batch_size", "buffer_size", "learning_starts", "gamma", "tau",
                "target_update_interval", "gradient_steps", "exploration_fraction", "exploration_initial_eps",
                "exploration_final_eps", "max_grad_norm", "n_envs")
PPO_REPORTED = ("n_steps", "batch_size", "gae_lambda", "gamma", "n_epochs", "ent_coef", "vf_coef", "max_grad_norm",
                "n_envs", "normalize_advantage")


class ArgmaxMLP:
    """Greedy policy from exported weights: relu / tanh hidden layers, argmax of the last layer."""

    def __init__(self, weights: list[tuple[np.ndarray, np.ndarray]], activation: str):
        self.weights, self.activation = weights, activation

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        for k, (W, b) in enumerate(self.weights):
            x = x @ W.T + b
            if k < len(self.weights) - 1:
                x = np.maximum(x, 0.0) if self.activation == "relu" else np.tanh(x)
        return x.argmax(axis=1).astype(np.int64)


def load_policy(path: str) -> tuple[ArgmaxMLP, float]:
    """The rebuilt policy and its agreement with imitation's own predict() on the check observations."""
    with np.load(path) as z:
        n = sum(1 for k in z.files if k.startswith("W"))
        policy = ArgmaxMLP([(z[f"W{i}"], z[f"b{i}"]) for i in range(n)], str(z["activation"]))
        agree = float(np.mean(policy(z["check_obs"]) == z["check_acts"].reshape(-1)))
    return policy, agree


def fmt(values, digits=1) -> str:
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}" if len(values) else "-"


def settings_of(model, names) -> dict:
    """Effective hyperparameters of an SB3 model, as the imitation side reports them."""
    out = {}
    for name in names:
        value = getattr(model, name, None)
        if name == "learning_rate" and callable(value):
            value = f"schedule, {model.lr_schedule(1.0):g} at start"
        out[name] = value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)
    if hasattr(model, "train_freq"):
        out["train_freq"] = f"{model.train_freq.frequency} {model.train_freq.unit.value}"
    if hasattr(model, "clip_range"):
        out["clip_range"] = f"schedule, {model.clip_range(1.0):g} at start"
    out["learning_rate_at_start"] = float(model.lr_schedule(1.0))
    out["net_arch"] = repr(getattr(model.policy, "net_arch", None))
    out["device"] = str(model.device)
    return out


def write_demos(n: int, seed: int, path: Path) -> dict:
    from irlhf.data.types import flatten_trajectories
    from irlhf.envs.gym import collect_demos
    from irlhf.rl.experts import make_expert

    demos = collect_demos(ENV, make_expert(ENV), n, seed=1000 * seed)
    t = flatten_trajectories(demos)
    np.savez(path, obs=t.obs, acts=t.acts, next_obs=t.next_obs, dones=t.dones,
             ep_lens=np.array([len(d) for d in demos], dtype=np.int64))
    return {"demos": demos, "n_samples": int(len(t.obs)),
            "expert_demo_return": float(np.mean([d.rews.sum() for d in demos]))}


def imitation_config(args, jobs: list) -> dict:
    from irlhf.imitation import sqil
    from irlhf.rl.sb3 import hyperparams

    dqn = hyperparams(ENV, "dqn", **sqil.DQN_DEFAULTS)  # what sqil.train builds with the default Config
    dqn.pop("n_timesteps")
    ppo = hyperparams(ENV, "ppo")
    ppo.pop("n_timesteps")
    return {"threads": args.threads, "eval_env": ENV, "eval_every": args.eval_every,
            "eval_episodes": TRAIN_EVAL_EPISODES, "eval_seed": TRAIN_EVAL_SEED,
            "dqn_n_envs": dqn.pop("n_envs"), "dqn_kwargs": dqn, "ppo_n_envs": ppo.pop("n_envs"), "ppo_kwargs": ppo,
            "density_horizon": args.imitation_density_horizon, "kernel": "gaussian",
            "warmup_timesteps": WARMUP, "jobs": jobs}


def time_to_expert(evals: list, expert: float, random: float) -> tuple[float | None, int | None]:
    from irlhf.envs.gym import normalized_score

    for e in evals:
        if normalized_score(ENV, e["return"], expert, random) >= EXPERT_LEVEL:
            return e["train_seconds"], e["timesteps"]
    return None, None


def irlhf_run(method: str, demos: list, steps: int, seed: int, eval_every: int) -> dict:
    """One irlhf run with the periodic evaluation as its train function's callback (time excluded)."""
    from irlhf.imitation import sqil
    from irlhf.irl import density

    every = eval_every if eval_every > 0 else None
    t0, c0 = time.perf_counter(), time.process_time()
    callback, evals, spent = periodic_evaluation(ENV, eval_every, t0)
    if method == "sqil":
        log_every = 1000 if every is None or every % 1000 == 0 else every
        result = sqil.train(ENV, demos, sqil.Config(total_timesteps=steps, seed=seed, log_every=log_every),
                            callback=callback)
        extra = {k: result.history[-1][k] for k in ("demo_q", "agent_q", "loss")} if result.history else {}
        settings = settings_of(result.model, DQN_REPORTED)
        settings["expert_rows_per_batch"] = result.model.replay_buffer.n_demo(result.model.batch_size)
        settings.update(time_limit_cut="not terminal (SB3 timeout handling)", train_env=ENV)
    else:
        log_every = 2048 if every is None or every % 2048 == 0 else every
        config = density.Config(density_type="state_action", total_timesteps=steps, seed=seed, log_every=log_every,
                                bc_warm_start=False)  # imitation's density starts PPO at random
        result = density.train(ENV, demos, config, callback=callback)
        extra = {"h": result.bandwidth, "kde_rows": len(result.reward.kde.points)}
        settings = settings_of(result.model, PPO_REPORTED)
        settings.update(kernel="gaussian", kernel_bandwidth=result.bandwidth, standardise_inputs="observations only",
                        density_type=config.density_type, is_stationary=True, normalize_reward=True,
                        absorbing=config.absorbing, floor_distance=config.floor_distance, train_env=ENV)
    wall = time.perf_counter() - t0 - spent["wall"]
    cpu = time.process_time() - c0 - spent["cpu"]
    return {"policy": result.policy, "seconds": wall, "cpu_seconds": cpu, "eval_seconds": spent["wall"],
            "loop_seconds": result.history[-1]["seconds"] if result.history else None,
            "agent_timesteps": int(result.model.num_timesteps), "evals": evals, "settings": settings, **extra}


def diff_settings(a: dict, b: dict) -> list[str]:
    return [k for k in sorted(set(a) | set(b)) if k != "device" and a.get(k) != b.get(k)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--demos", type=int, default=4, help="expert trajectories per seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--timesteps", type=int, help="env steps of both methods (default: SQIL 50k, density 50k)")
    parser.add_argument("--eval-every", type=int, default=5000, help="env steps between evaluations in training")
    parser.add_argument("--eval-episodes", type=int, default=20, help="episodes of the final scoring")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    parser.add_argument("--imitation-bandwidth", default="irlhf",
                        help="imitation's kernel_bandwidth: 'irlhf' (irlhf's Scott h on the same demos) or a number "
                             "(imitation's default is 0.5)")
    parser.add_argument("--imitation-density-horizon", default="absorb", choices=("absorb", "variable"),
                        help="absorb: seals/CartPole-v0 (fixed horizon); variable: CartPole-v1, "
                             "allow_variable_horizon=True")
    parser.add_argument("--quick", action="store_true", help="3000 steps, 1 seed, eval every 1000 (smoke check)")
    parser.add_argument("--out", default=str(HERE / "out"))
    args = parser.parse_args()
    if args.quick:
        args.timesteps, args.seeds, args.eval_every = 3000, 1, 1000
    if not IMITATION_PYTHON.exists():
        sys.exit(f"{IMITATION_PYTHON} missing; run `bash benchmarks/setup_imitation_venv.sh` first")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    out_file = out / ("sqil_density_vs_imitation_quick.json" if args.quick else "sqil_density_vs_imitation.json")
    t_start = time.perf_counter()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")

    import torch

    torch.set_num_threads(args.threads)
    from irlhf.envs.gym import evaluate, normalized_score, random_return
    from irlhf.irl import density
    from irlhf.rl.experts import make_expert

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:.0f}s, load {os.getloadavg()[0]:.2f}] {msg}", file=sys.stderr,
              flush=True)

    steps = {m: args.timesteps or BUDGET[m] for m in args.methods}
    seeds = list(range(args.seeds))
    ref = {"expert": evaluate(ENV, make_expert(ENV), args.eval_episodes, seed=10_000)[0],
           "random": random_return(ENV, args.eval_episodes, seed=10_000)}
    rows, meta, settings, loads = [], {}, {}, []
    warmed = False

    def norm(ret: float) -> float:
        return normalized_score(ENV, ret, ref["expert"], ref["random"])

    def save() -> None:
        out_file.write_text(json.dumps(
            {"protocol": __doc__, "config": vars(args), "started": started, "references": ref, "meta": meta,
             "settings": settings, "loads": loads, "rows": rows, "summary": summary(),
             "total_seconds": time.perf_counter() - t_start}, indent=2, default=str))

    def summary() -> list[dict]:
        out_rows = []
        for m in args.methods:
            per = {lib: [r for r in rows if r["method"] == m and r["library"] == lib] for lib in ("irlhf", "imitation")}
            ratios = []
            for s in seeds:
                a = [r["seconds_to_expert"] for r in per["imitation"] if r["seed"] == s]
                b = [r["seconds_to_expert"] for r in per["irlhf"] if r["seed"] == s]
                if a and b and a[0] is not None and b[0] is not None:
                    ratios.append({"seed": s, "ratio": a[0] / b[0]})
            for lib, sel in per.items():
                if not sel:
                    continue
                out_rows.append({
                    "method": m, "library": lib, "seeds": [r["seed"] for r in sel],
                    "returns": [r["return"] for r in sel], "return_mean": float(np.mean([r["return"] for r in sel])),
                    "return_std": float(np.std([r["return"] for r in sel])),
                    "normalized_mean": float(np.mean([r["normalized"] for r in sel])),
                    "normalized_std": float(np.std([r["normalized"] for r in sel])),
                    "seconds_mean": float(np.mean([r["seconds"] for r in sel])),
                    "cpu_seconds_mean": float(np.mean([r["cpu_seconds"] for r in sel])),
                    "seconds_to_expert": [r["seconds_to_expert"] for r in sel],
                    "time_to_expert_ratios": ratios})
        return out_rows

    with tempfile.TemporaryDirectory(prefix="sqil-density-vs-imitation-") as tmp:
        tmp = Path(tmp)
        for s in seeds:
            info = write_demos(args.demos, s, tmp / f"demos_s{s}.npz")
            h = density.fit_reward(ENV, info["demos"], density.Config(density_type="state_action")).kde.bandwidth
            h_imitation = h if args.imitation_bandwidth == "irlhf" else float(args.imitation_bandwidth)

            # -- imitation: one subprocess for this seed (both methods); timed inside --
            jobs = [{"method": m, "env": ENV, "demos": str(tmp / f"demos_s{s}.npz"), "total_timesteps": steps[m],
                     "seed": s, "bandwidth": h_imitation, "out": str(tmp / f"{m}_s{s}_imitation.npz")}
                    for m in args.methods]
            cfg = imitation_config(args, jobs)
            (tmp / "jobs.json").write_text(json.dumps(cfg))
            log(f"seed {s}: imitation ({', '.join(args.methods)}) in one subprocess ...")
            load0 = os.getloadavg()
            theirs, records = run_imitation(IMITATION_SCRIPT, tmp / "jobs.json")
            meta["imitation"] = theirs
            meta["imitation_job_settings"] = {k: v for k, v in cfg.items() if k != "jobs"}
            loads.append({"seed": s, "side": "imitation", "loadavg_before": load0, "loadavg_after": os.getloadavg()})
            for rec in records:
                log(f"imitation {rec['method']} seed {s}: {rec['train_seconds']:.0f} s train")

            # -- irlhf: in this process, after imitation's subprocess has ended --
            if not warmed:  # untimed warm-up per method, as the imitation side's warmup_timesteps
                for m in args.methods:
                    irlhf_run(m, info["demos"], WARMUP[m], 0, 0)
                warmed = True
            load0 = os.getloadavg()
            ours = {}
            for m in args.methods:
                ours[m] = irlhf_run(m, info["demos"], steps[m], s, args.eval_every)
                log(f"irlhf {m} seed {s}: {ours[m]['seconds']:.0f} s")
            loads.append({"seed": s, "side": "irlhf", "loadavg_before": load0, "loadavg_after": os.getloadavg()})

            # -- untimed: final scoring on CartPole-v1 --
            for rec in records:
                m = rec["method"]
                policy, agree = load_policy(rec["out"])
                mean, std = evaluate(ENV, policy, args.eval_episodes, seed=10_000 + s)
                tte, tte_steps = time_to_expert(rec["evals"], ref["expert"], ref["random"])
                settings.setdefault(m, {})["imitation"] = rec["settings"]
                rows.append({"method": m, "library": "imitation", "seed": s, "timesteps": rec["agent_timesteps"],
                             "return": mean, "return_std": std, "normalized": norm(mean),
                             "seconds": rec["total_seconds"], "cpu_seconds": rec["total_cpu_seconds"],
                             "train_seconds": rec["train_seconds"], "fit_seconds": rec["fit_seconds"],
                             "eval_seconds": rec["eval_seconds"], "seconds_to_expert": tte,
                             "timesteps_to_expert": tte_steps, "evals": rec["evals"], "predict_agreement": agree,
                             "horizon": rec["horizon"], "train_env": rec["train_env"], "bandwidth": h_imitation,
                             "n_samples": info["n_samples"]})
            for m, o in ours.items():
                mean, std = evaluate(ENV, o["policy"], args.eval_episodes, seed=10_000 + s)
                tte, tte_steps = time_to_expert(o["evals"], ref["expert"], ref["random"])
                settings.setdefault(m, {})["irlhf"] = o["settings"]
                rows.append({"method": m, "library": "irlhf", "seed": s, "timesteps": o["agent_timesteps"],
                             "return": mean, "return_std": std, "normalized": norm(mean), "seconds": o["seconds"],
                             "cpu_seconds": o["cpu_seconds"], "train_seconds": o["loop_seconds"],
                             "eval_seconds": o["eval_seconds"], "seconds_to_expert": tte,
                             "timesteps_to_expert": tte_steps, "evals": o["evals"],
                             **{k: o[k] for k in ("demo_q", "agent_q", "loss", "h", "kde_rows") if k in o},
                             "n_samples": info["n_samples"]})
            save()
    total = time.perf_counter() - t_start

    # -- report --
    imit = meta.get("imitation", {})
    print(f"started {started}; machine: {platform.platform()}, {os.cpu_count()} CPUs, load average now "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; torch {torch.__version__} (irlhf) / "
          f"{imit.get('torch_version')} (imitation {imit.get('imitation_version')}, SB3 "
          f"{imit.get('stable_baselines3_version')}); torch threads {args.threads} on both sides")
    print(f"{ENV}, {args.demos} expert trajectories, {args.seeds} seed(s), steps {steps}, training evaluations every "
          f"{args.eval_every} steps on {TRAIN_EVAL_EPISODES} episodes, final scoring {args.eval_episodes} episodes; "
          f"R_expert {ref['expert']:.1f}, R_random {ref['random']:.1f}; expert level = normalised >= {EXPERT_LEVEL}\n")
    for m in args.methods:
        a, b = settings.get(m, {}).get("irlhf", {}), settings.get(m, {}).get("imitation", {})
        print(f"{m} effective settings (irlhf | imitation):")
        for k in sorted(set(a) | set(b)):
            mark = "" if a.get(k) == b.get(k) else "   <-- differs"
            print(f"  {k}: {a.get(k)} | {b.get(k)}{mark}")
        print(f"  differing: {diff_settings(a, b)}")
    print()
    print("| method | library | return (mean ± std; per seed) | normalised | wall s / run | "
          "s to expert level (per seed) | time-to-expert ratio imitation / irlhf |")
    print("|---|---|---|---|---|---|---|")
    for srow in summary():
        ttes = ", ".join("never" if x is None else f"{x:.0f}" for x in srow["seconds_to_expert"])
        ratio_cell = ratio_text(srow["library"], srow["time_to_expert_ratios"])
        print(f"| {srow['method'].upper()} | {srow['library']} | {fmt(srow['returns'])}; "
              f"{', '.join(f'{x:.1f}' for x in srow['returns'])} | {srow['normalized_mean']:.2f} ± "
              f"{srow['normalized_std']:.2f} | {srow['seconds_mean']:.1f} | {ttes} | {ratio_cell} |")
    agree = [r["predict_agreement"] for r in rows if "predict_agreement" in r]
    if agree:
        print(f"\nimitation actor rebuild: agreement with predict(deterministic=True) min {min(agree):.4f}")
    print(f"total runtime {total:.0f} s")
    save()
    print(f"wrote {out_file}")


if __name__ == "__main__":
    main()
