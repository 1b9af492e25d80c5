"""``irlhf expert``: train, evaluate and list experts trained with Stable-Baselines3 (a disk cache).

    irlhf expert train --env CartPole-v1 --algo ppo               # zoo defaults; reuses the cache unless --force
    irlhf expert train --env Pendulum-v1 --algo sac --timesteps 20000 --force
    irlhf expert eval --env CartPole-v1 --expert ppo --episodes 20 # or scripted, dqn, sac, PATH (.zip, .safetensors)
    irlhf expert list                                              # cached experts, unfinished runs
    irlhf expert train --env Hopper-v5 --algo sac                 # 1M steps, checkpointed: rerun to resume

train: ``irlhf.rl.experts.train_expert`` (cache ``<cache>/experts/<env>/<algo>-seed<seed>.zip`` + sidecar
``.json``, see ``irlhf.rl.experts.cache_dir``); --seed is the training seed and names the cached entry.
Every --checkpoint-every steps the run is checkpointed beside the cache entry, and the same command
resumes an interrupted run from its newest checkpoint (--no-resume starts over).
The expert is evaluated over --eval-episodes episodes (reset seeds 0..); the normalised score is
(expert - random) / (scripted - random) against the scripted expert when the env has one.
eval: ``make_expert(env, seed=--seed, kind=--expert)`` (--seed also picks the cached seed) evaluated over
--episodes episodes (reset seeds from --seed), against a random policy and the scripted expert.

Artifacts in ``<out>/expert-train-<timestamp>/``: config.json, metrics.jsonl (one line per training
episode, then the final metrics), learning_curve.png, summary.txt (also printed) and report.html; in
``<out>/expert-eval-<timestamp>/``: config.json, metrics.jsonl, summary.txt and report.html. Bad input is
one ``irlhf: error:`` line (exit 2) and no run directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Annotated, Any

from irlhf.core.config import BaseConfig, NonNegativeInt, OneOf, PositiveInt, Seed
from irlhf.core.rundir import RunDir
from irlhf.envs.gym import SCRIPTED_EXPERTS, evaluate, make_env, normalized_score, random_return
from irlhf.jobs._common import (EXPERT_ACTIONS, SB3_ALGOS, EnvId, ExpertKind, fmt, print_summary,
                                reject_options)
from irlhf.report import Report
from irlhf.report.curves import training_returns
from irlhf.rl.experts import CHECKPOINT_EVERY, cache_dir, list_checkpoints, list_experts, make_expert, train_expert
from irlhf.rl.sb3 import check_algo_space

JOB = "expert"
ACTIONS = EXPERT_ACTIONS
ALGOS = SB3_ALGOS


@dataclasses.dataclass(frozen=True)
class ExpertJobConfig(BaseConfig):
    """Options of ``irlhf expert``: action (train / eval / list), env, algo (train), timesteps (train; None =
    the default), force, checkpoint_every and resume (train), expert (eval: a kind or path), eval_episodes, seed."""

    action: Annotated[str, OneOf(ACTIONS)] = "list"
    env: EnvId = "CartPole-v1"
    algo: Annotated[str, OneOf(ALGOS)] = "ppo"
    timesteps: PositiveInt | None = None
    force: bool = False
    checkpoint_every: NonNegativeInt = CHECKPOINT_EVERY
    resume: bool = True
    expert: ExpertKind = "scripted"
    eval_episodes: PositiveInt = 20
    seed: Seed = 0

    def command(self) -> str:
        if self.action == "train":
            parts = [f"irlhf expert train --env {self.env} --algo {self.algo}"]
            if self.timesteps is not None:
                parts.append(f"--timesteps {self.timesteps}")
            if self.force:
                parts.append("--force")
            if self.checkpoint_every != CHECKPOINT_EVERY:
                parts.append(f"--checkpoint-every {self.checkpoint_every}")
            if not self.resume:
                parts.append("--no-resume")
            parts.append(f"--eval-episodes {self.eval_episodes}")
        elif self.action == "eval":
            parts = [f"irlhf expert eval --env {self.env} --expert {self.expert} --episodes {self.eval_episodes}"]
        else:
            return "irlhf expert list"
        parts.append(f"--seed {self.seed}")
        return " ".join(parts)


def _references(env: str, n_episodes: int, seed: int) -> tuple[float, float | None]:
    """Random policy's mean return and the scripted expert's (None without one)."""
    random_mean = random_return(env, n_episodes=n_episodes, seed=seed)
    scripted = evaluate(env, SCRIPTED_EXPERTS[env], n_episodes=n_episodes, seed=seed)[0] \
        if env in SCRIPTED_EXPERTS else None
    return random_mean, scripted


def _score(env: str, mean: float, scripted: float | None, random_mean: float) -> float | None:
    if scripted is None or scripted == random_mean:
        return None
    return normalized_score(env, mean, scripted, random_mean)


def run_train(job: ExpertJobConfig, out: str = "runs", *,
              progress: bool = True) -> tuple[RunDir, dict[str, Any], list[str]]:
    """Train (or reuse) the cached expert, evaluate it against references, write the run directory."""
    env = make_env(job.env)  # unknown env -> ValidationError before any training
    check_algo_space(job.algo, job.env, env.action_space)
    env.close()
    t0 = time.perf_counter()
    _, info = train_expert(job.env, job.algo, job.seed, job.timesteps, force=job.force, progress=progress,
                           eval_episodes=job.eval_episodes, checkpoint_every=job.checkpoint_every,
                           resume=job.resume)
    random_mean, scripted = _references(job.env, info["eval_episodes"], 0)
    mean, std = info["eval_return_mean"], info["eval_return_std"]
    metrics = {"eval_return_mean": mean, "eval_return_std": std, "eval_episodes": info["eval_episodes"],
               "random_return_mean": random_mean, "scripted_return_mean": scripted,
               "normalized_score": _score(job.env, mean, scripted, random_mean), "cached": info["cached"],
               "cache_path": info["path"], "timesteps": info["timesteps"], "train_seconds": info["train_seconds"],
               "training_episodes": len(info["training_episodes"]), "seconds": time.perf_counter() - t0}

    run = RunDir.create(f"{JOB}-train", out)
    run.write_json("config.json", {**job.to_dict(), "hyperparameters": info["hyperparameters"]})
    for episode in info["training_episodes"]:
        run.log(phase="train", **episode)
    run.log(phase="final", **metrics)
    png = "learning_curve.png"
    run.save_figure(png, training_returns(info["training_episodes"], random_mean, scripted))
    files = ["config.json", "metrics.jsonl", png, "summary.txt", "report.html"]

    report = Report(f"irlhf expert train: {job.algo} on {job.env}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(
        job.command()).table(sorted((k, str(v)) for k, v in info["hyperparameters"].items()),
                             header=[f"{job.algo} hyperparameter", "value"])
    origin = ("Reused from the cache (trained earlier" + (f"; {info['note']}" if info.get("note") else "") + ")."
              if info["cached"] else "Trained now.")
    report.section("Setup").text(
        f"Stable-Baselines3 {job.algo} on {job.env}, seed {job.seed}, {info['timesteps']} timesteps, defaults "
        f"from rl-baselines3-zoo (irlhf.rl.sb3.DEFAULT_HYPERPARAMS). {origin} Cached model: {info['path']} "
        f"(created {info.get('created')}).")
    report.section("Result").text(
        f"Deterministic policy, {info['eval_episodes']} evaluation episodes (reset seeds 0..). Normalised "
        "score: (expert - random) / (scripted - random).").table([
            ["expert: mean return", mean], ["expert: std of return", std],
            ["random policy: mean return", random_mean],
            ["scripted expert: mean return", fmt(scripted, ".4g")],
            ["normalized score (1 = scripted, 0 = random)", fmt(metrics["normalized_score"], ".4g")],
            ["training seconds", info["train_seconds"]]], header=["metric", "value"]).image(
        png, caption="Return of each training episode (Monitor) against environment steps, with a moving mean.")
    summary = [
        f"irlhf expert train -> {run.path}",
        f"expert: {job.algo} on {job.env}, seed {job.seed}, {info['timesteps']} timesteps "
        + ("(reused from the cache)" if info["cached"] else f"(trained in {info['train_seconds']:.1f} s)"),
        f"cache: {info['path']}",
        f"return {mean:.2f} +- {std:.2f} over {info['eval_episodes']} episodes; random {random_mean:.2f}, "
        f"scripted {fmt(scripted)}; normalized score {fmt(metrics['normalized_score'], '.3f')}",
    ] + ([f"note: {info['note']}"] if info.get("note") else []) + [f"report: {run.file('report.html')}"]
    report.finish(run, files, summary)
    return run, metrics, summary


def run_eval(job: ExpertJobConfig, out: str = "runs") -> tuple[RunDir, dict[str, Any], list[str]]:
    """Evaluate ``make_expert(env, seed, kind=expert)`` against a random policy and the scripted expert."""
    make_env(job.env).close()
    expert = make_expert(job.env, seed=job.seed, kind=job.expert)
    t0 = time.perf_counter()
    mean, std = evaluate(job.env, expert, n_episodes=job.eval_episodes, seed=job.seed)
    random_mean, scripted = _references(job.env, job.eval_episodes, job.seed)
    metrics = {"eval_return_mean": mean, "eval_return_std": std, "eval_episodes": job.eval_episodes,
               "random_return_mean": random_mean, "scripted_return_mean": scripted,
               "normalized_score": _score(job.env, mean, scripted, random_mean),
               "seconds": time.perf_counter() - t0}
    run = RunDir.create(f"{JOB}-eval", out)
    run.write_json("config.json", job.to_dict())
    run.log(phase="final", **metrics)
    report = Report(f"irlhf expert eval: {job.expert} on {job.env}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(
        job.command())
    report.section("Result").text(
        f"Expert {job.expert!r} acting deterministically, {job.eval_episodes} episodes (reset seeds from "
        f"{job.seed}). Normalised score: (expert - random) / (scripted - random).").table([
            ["expert: mean return", mean], ["expert: std of return", std],
            ["random policy: mean return", random_mean],
            ["scripted expert: mean return", fmt(scripted, ".4g")],
            ["normalized score (1 = scripted, 0 = random)", fmt(metrics["normalized_score"], ".4g")]],
        header=["metric", "value"])
    files = ["config.json", "metrics.jsonl", "summary.txt", "report.html"]
    summary = [
        f"irlhf expert eval -> {run.path}",
        f"expert {job.expert} on {job.env}: return {mean:.2f} +- {std:.2f} over {job.eval_episodes} episodes; "
        f"random {random_mean:.2f}, scripted {fmt(scripted)}; normalized score "
        f"{fmt(metrics['normalized_score'], '.3f')}",
        f"report: {run.file('report.html')}",
    ]
    report.finish(run, files, summary)
    return run, metrics, summary


def list_lines() -> list[str]:
    experts, unfinished = list_experts(), list_checkpoints()
    if not experts:
        lines = [f"no cached experts in {cache_dir() / 'experts'}; train one with "
                 "`irlhf expert train --env CartPole-v1 --algo ppo`"]
    else:
        lines = [f"{len(experts)} cached expert(s) in {cache_dir() / 'experts'}:"]
    for e in experts:
        lines.append(f"  {e.get('env_id')}  {e.get('algo')}  seed {e.get('seed')}  {e.get('timesteps')} steps  "
                     f"return {fmt(e.get('eval_return_mean'))} +- {fmt(e.get('eval_return_std'))}  "
                     f"created {e.get('created')}  {e.get('path')}")
    if unfinished:
        lines.append(f"{len(unfinished)} unfinished training run(s), checkpointed:")
    for c in unfinished:
        lines.append(f"  {c['env_id']}  {c['algo']}  seed {c['seed']}  {c['num_timesteps']} of "
                     f"{c.get('target_timesteps', '?')} steps  {fmt(c.get('train_seconds'), '.0f')} s so far  "
                     f"resume: {c['resume']}")
    return lines


# the options each action ignores (argparse dests); --no-progress only hides a bar, so it is never refused
TRAIN_ONLY = ("timesteps", "force", "checkpoint_every", "no_resume")
UNUSED = {"list": ("env", "algo", "expert", "eval_episodes", "seed", "out") + TRAIN_ONLY,
          "train": ("expert",),
          "eval": ("algo",) + TRAIN_ONLY}


def run(args: argparse.Namespace) -> int:
    reject_options(args, UNUSED[args.action], f"not used by expert {args.action}")
    job = ExpertJobConfig(action=args.action, env=args.env, algo=args.algo, timesteps=args.timesteps,
                          force=args.force, resume=not args.no_resume,
                          checkpoint_every=args.checkpoint_every,
                          expert=args.expert, eval_episodes=args.eval_episodes, seed=args.seed)
    if job.action == "list":
        return print_summary(list_lines())
    if job.action == "train":
        return print_summary(run_train(job, args.out, progress=not args.no_progress)[2])
    return print_summary(run_eval(job, args.out)[2])
