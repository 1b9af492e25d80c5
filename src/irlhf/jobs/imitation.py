"""``irlhf bc`` and ``irlhf dagger``: imitation learning on a gymnasium environment, with metrics and a report.

    irlhf bc --env CartPole-v1 --episodes 4                      # collect 4 expert demos, clone them
    irlhf bc --env CartPole-v1 --demos demos.npz --set epochs=50 # clone saved demos (irlhf.data format)
    irlhf dagger --env CartPole-v1 --rounds 10 --episodes-per-round 4 --schedule linear
    irlhf imitate bc --episodes 4                                # the same job as `irlhf bc` (any imitate METHOD)

bc: the demonstrations are ``--demos`` (read with ``irlhf.data.load_demos``) or ``--episodes``
episodes collected from the scripted expert (``irlhf.rl.experts.make_expert``, reset seeds --seed, --seed+1,
...); ``irlhf.imitation.bc.train`` fits a policy with its ``Config`` defaults plus ``--set KEY=VALUE``
(VALUE parsed as JSON, else a string; ``seed`` and ``progress`` follow --seed and --no-progress).

dagger: ``irlhf.imitation.dagger.train`` with the scripted expert; ``--set KEY=VALUE`` sets a field of
``dagger.Config``, ``--set bc.KEY=VALUE`` (or a KEY that only ``bc.Config`` has) one of the per-round
behaviour-cloning settings.

Evaluation (both): mean / std return of the learned policy over --eval-episodes episodes (reset seeds
from --seed), the expert's mean return and a uniformly random policy's, and the normalised score
(learned - random) / (expert - random): 1 = expert, 0 = random. For bc on an environment without a
scripted expert, the expert's return is the demonstrations' mean return (when they have rewards).

Everything (loading, training, evaluation) happens before the run directory is made, so bad input
(unknown env, --episodes 0, a missing or corrupt --demos file, demos that do not fit the env's spaces,
bad --set fields) is one ``irlhf: error:`` line, exit code 2, and no run directory. The evaluation is
``irlhf.eval.returns.score_policy``.

Artifacts in ``<out>/bc-<timestamp>/``: config.json, metrics.jsonl (one line per epoch, then the final
metrics), policy.safetensors (``bc.load_policy``), demos.npz (when collected), learning_curve.png,
summary.txt (also printed) and report.html. In ``<out>/dagger-<timestamp>/``: config.json, metrics.jsonl
(one line per round, then the final metrics), policy.safetensors, rounds.png (rollout return and dataset
size per round), summary.txt and report.html.

    irlhf dagger --env CartPole-v1 --expert web --rounds 3 --episodes-per-round 1 --label-timeout 300

``dagger --expert web``: a person is the expert (``irlhf.label.people.WebExpert``, Discrete action spaces):
each state to label becomes a frame on a labelling page the job serves (server options as for ``irlhf label``)
and training waits for the chosen action. The run directory is made first (its name is the label session;
``--db`` defaults to ``<run dir>/labels.sqlite``) and gets ``labels.jsonl``; the evaluation compares with the
scripted expert where one exists.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time
from typing import Annotated, Any

import gymnasium as gym
import numpy as np

from irlhf.core.config import BaseConfig, OneOf, PositiveInt, Seed
from irlhf.core.errors import ValidationError
from irlhf.core.rundir import RunDir
from irlhf.data import load_demos, save_trajectories
from irlhf.envs.gym import SCRIPTED_EXPERTS, collect_demos, make_env
from irlhf.eval.returns import score_policy
from irlhf.imitation import bc, dagger
from irlhf.jobs._common import (SCHEDULES, WEB, DemosPath, EnvId, ExpertKind, ExpertOrWeb, Overrides,
                                demo_job_command, options_table, parse_set, print_summary, reject_options, result_table,
                                score_line, set_flags)
from irlhf.label.live import WebSession, web_options
from irlhf.report import Report
from irlhf.report.curves import loss_curve, round_curves
from irlhf.rl.experts import make_expert


@dataclasses.dataclass(frozen=True)
class BcJobConfig(BaseConfig):
    """Options of ``irlhf bc``.

    env: gymnasium id.  demos: path of demonstrations, or None to collect from the expert.
    expert: which expert (scripted, ppo, dqn, sac or a model path; see make_expert).
    episodes: demos to collect when demos is None.  eval_episodes: evaluation episodes.
    seed: collection, training and evaluation seed.  options: overrides of ``irlhf.imitation.bc.Config`` fields.
    """

    env: EnvId = "CartPole-v1"
    demos: DemosPath | None = None
    expert: ExpertKind = "scripted"
    episodes: PositiveInt = 4
    eval_episodes: PositiveInt = 20
    seed: Seed = 0
    options: Overrides = dataclasses.field(default_factory=dict)

    def command(self) -> str:
        return demo_job_command(f"irlhf bc --env {self.env}", self)


@dataclasses.dataclass(frozen=True)
class DaggerJobConfig(BaseConfig):
    """Options of ``irlhf dagger``: env, rounds, episodes_per_round, schedule (one of SCHEDULES), expert (as for
    bc, or "web": people on the labelling page), eval_episodes, seed, options (``dagger.Config`` /
    ``bc.<field>`` overrides)."""

    env: EnvId = "CartPole-v1"
    rounds: PositiveInt = 10
    episodes_per_round: PositiveInt = 4
    schedule: Annotated[str, OneOf(SCHEDULES)] = "linear"
    expert: ExpertOrWeb = "scripted"
    eval_episodes: PositiveInt = 20
    seed: Seed = 0
    options: Overrides = dataclasses.field(default_factory=dict)

    def command(self) -> str:
        parts = [f"irlhf dagger --env {self.env} --rounds {self.rounds} --episodes-per-round "
                 f"{self.episodes_per_round} --schedule {self.schedule} --expert {self.expert} "
                 f"--eval-episodes {self.eval_episodes}"]
        return " ".join(parts + set_flags(self.options) + [f"--seed {self.seed}"])


def bc_config(options: dict[str, Any], seed: int, progress: bool) -> Any:
    """``bc.Config``: defaults, then seed / progress, then the overrides (validated)."""
    return bc.Config.from_dict({"seed": seed, "progress": progress, **options})


def dagger_config(job: DaggerJobConfig, progress: bool) -> Any:
    """``dagger.Config`` from the job: rounds, episodes, schedule, seed, progress, then the overrides;
    ``bc.KEY`` keys (and keys only bc.Config has) go to the per-round bc settings (based on DEFAULT_BC)."""
    dagger_fields = {f.name for f in dataclasses.fields(dagger.Config)}
    bc_fields = {f.name for f in dataclasses.fields(bc.Config)}
    top: dict[str, Any] = {}
    bc_over: dict[str, Any] = {}
    for key, value in job.options.items():
        if key.startswith("bc."):
            bc_over[key[3:]] = value
        elif key in dagger_fields:
            top[key] = value
        elif key in bc_fields:
            bc_over[key] = value
        else:
            top[key] = value  # from_dict reports it as unknown
    base_bc = dagger.DEFAULT_BC.to_dict()
    base_bc.update(seed=job.seed, progress=False)
    if isinstance(top.get("bc"), dict):
        base_bc.update(top.pop("bc"))
    base_bc.update(bc_over)
    values = {"rounds": job.rounds, "episodes_per_round": job.episodes_per_round, "schedule": job.schedule,
              "seed": job.seed, "progress": progress, **top}
    values["bc"] = bc.Config.from_dict(base_bc)
    return dagger.Config.from_dict(values)


def demos_and_expert(env: str, demos_path: str | None, expert_kind: str, episodes: int,
                     seed: int) -> tuple[list, Any]:
    """(demonstrations, expert or None): ``demos_path`` loaded, else ``episodes`` episodes collected from the
    expert (reset seeds seed, seed + 1, ...); the expert is made when collecting or when ``env`` has a scripted
    one (to evaluate against)."""
    expert = (make_expert(env, seed=seed, kind=expert_kind)
              if (demos_path is None or env in SCRIPTED_EXPERTS) else None)
    if demos_path is None:
        return collect_demos(env, expert, n_episodes=episodes, seed=seed), expert
    demos = load_demos(demos_path)
    if not demos:
        raise ValidationError(f"demos={demos_path!r}: holds no trajectories; expected at least one")
    return demos, expert


def run_bc(job: BcJobConfig, out: str = "runs", *, progress: bool = True) -> tuple[RunDir, dict[str, Any], list[str]]:
    """Validate, load or collect demos, train, evaluate, then write the run directory."""
    config = bc_config(job.options, job.seed, progress)
    bc.resolve_spaces(job.env)  # unknown env / unsupported spaces -> ValidationError
    t0 = time.perf_counter()
    demos, expert = demos_and_expert(job.env, job.demos, job.expert, job.episodes, job.seed)
    t_train = time.perf_counter()
    result = bc.train(job.env, demos, config)  # demos that do not fit the env's spaces -> ValidationError
    train_seconds = time.perf_counter() - t_train
    demo_returns = [float(t.rews.sum()) for t in demos if t.rews is not None]
    fallback = float(np.mean(demo_returns)) if demo_returns and expert is None else None
    metrics = score_policy(job.env, result.policy, expert, job.eval_episodes, job.seed, fallback)
    n_samples = int(sum(len(t) for t in demos))
    metrics.update(n_samples=n_samples, n_demos=len(demos), n_train=result.n_train, n_val=result.n_val,
                   best_epoch=result.best_epoch, epochs_run=len(result.history),
                   demo_return_mean=float(np.mean(demo_returns)) if demo_returns else None,
                   train_seconds=train_seconds, seconds=time.perf_counter() - t0)

    run = RunDir.create("bc", out)
    run.write_json("config.json", {**job.to_dict(), "bc_config": config.to_dict()})
    for record in result.history:
        run.log(phase="train", **record)
    run.log(phase="final", **metrics)
    bc.save_policy(run.file("policy.safetensors"), result.policy)
    files = ["config.json", "metrics.jsonl", "policy.safetensors"]
    if job.demos is None:
        save_trajectories(run.file("demos.npz"), demos)
        files.append("demos.npz")
    curve = "learning_curve.png"
    run.save_figure(curve, loss_curve(result.history, result.best_epoch))
    files += [curve, "summary.txt", "report.html"]

    source = (f"{job.demos} ({len(demos)} demonstrations)" if job.demos else
              f"{len(demos)} episodes of the {job.expert} expert (reset seeds {job.seed}..{job.seed + len(demos) - 1}, "
              "demos.npz)")
    report = Report(f"irlhf bc: {job.env}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(
        job.command()).table(options_table(config), header=["bc option", "value"])
    report.section("Setup").text(f"Environment {job.env}. Demonstrations: {source}; {n_samples} (state, action) "
                                 f"pairs, {result.n_train} for training and {result.n_val} held out.")
    report.section("Result").text(
        f"Returns over {job.eval_episodes} episodes (reset seeds from {job.seed}). Normalised score: "
        "(learned - random) / (expert - random).").table(
        result_table(metrics) + [["best epoch (weights kept)", result.best_epoch],
                                  ["training seconds", train_seconds]], header=["metric", "value"])
    report.section("Training").image(curve, caption="Training and validation loss per epoch; the dashed line "
                                     "marks the epoch whose weights were kept.")
    summary = [
        f"irlhf bc -> {run.path}",
        f"env: {job.env}; demos: {len(demos)} ({n_samples} samples); epochs {len(result.history)} "
        f"(best {result.best_epoch})",
        score_line(metrics),
        f"time: {metrics['seconds']:.2f} s (training {train_seconds:.2f} s)",
        f"report: {run.file('report.html')}",
    ]
    report.finish(run, files, summary)
    return run, metrics, summary


# -- dagger --------------------------------------------------------------------------------------
def run_dagger(job: DaggerJobConfig, out: str = "runs", *, progress: bool = True,
               web: WebSession | None = None) -> tuple[RunDir, dict[str, Any], list[str]]:
    """Validate, run DAgger, evaluate, then write the run directory. ``web`` (with ``job.expert == "web"``):
    people are the expert, through that session's labelling page (started after validation)."""
    config = dagger_config(job, progress)
    env = make_env(job.env)  # unknown env -> ValidationError
    action_space = env.action_space
    env.close()
    if (job.expert == WEB) != (web is not None):
        raise ValidationError(f"expert={job.expert!r}: a WebSession is needed exactly with --expert web")
    if web is not None:
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ValidationError(f"--expert web on {job.env}: action space {action_space}; expected a Discrete "
                                  "action space (people pick one of the named actions)")
        web.start()
        expert = web.expert(job.env)
        reference = SCRIPTED_EXPERTS.get(job.env)  # evaluate against the scripted expert, never ask people again
    else:
        expert = reference = make_expert(job.env, seed=job.seed, kind=job.expert)
    t0 = time.perf_counter()
    result = dagger.train(job.env, expert, config)
    train_seconds = time.perf_counter() - t0
    metrics = score_policy(job.env, result.policy, reference, job.eval_episodes, job.seed)
    metrics.update(n_samples=len(result.dataset), rounds=len(result.history), train_seconds=train_seconds,
                   seconds=time.perf_counter() - t0)

    run = web.run if web is not None else RunDir.create("dagger", out)
    run.write_json("config.json", {**job.to_dict(), "dagger_config": config.to_dict(),
                                   **({"web": web.options.to_dict()} if web is not None else {})})
    for record in result.history:
        run.log(phase="round", **record)
    run.log(phase="final", **metrics)
    bc.save_policy(run.file("policy.safetensors"), result.policy)
    png = "rounds.png"
    run.save_figure(png, round_curves(result.history))
    files = ["config.json", "metrics.jsonl", "policy.safetensors", png, "summary.txt", "report.html"]
    people = web.export() if web is not None else None
    if people is not None:
        files.insert(-2, people[0])

    report = Report(f"irlhf dagger: {job.env}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(
        job.command()).table(options_table(config), header=["dagger option", "value"])
    report.section("Setup").text(
        f"Environment {job.env}, {job.expert} expert. {config.rounds} rounds of {config.episodes_per_round} "
        f"episodes of the mixture policy (schedule {config.schedule}); every visited state labelled by the "
        f"expert; the learner retrained from scratch by behaviour cloning on the aggregate "
        f"({len(result.dataset)} samples at the end).")
    report.section("Result").text(
        f"Returns of the final learner over {job.eval_episodes} episodes (reset seeds from {job.seed}).").table(
        result_table(metrics) + [["training seconds", train_seconds]], header=["metric", "value"])
    report.section("Rounds").table(
        [[r["round"], r["beta"], r["n_samples"], r["expert_fraction"], r["rollout_return_mean"]]
         for r in result.history],
        header=["round", "beta", "samples", "expert fraction", "rollout return"]).image(
        png, caption="Per round: mean return of the mixture policy's rollouts and the size of the aggregate dataset.")
    summary = [
        f"irlhf dagger -> {run.path}",
        f"env: {job.env}; {config.rounds} rounds x {config.episodes_per_round} episodes ({config.schedule}); "
        f"{len(result.dataset)} samples",
        score_line(metrics),
        f"time: {metrics['seconds']:.2f} s (training {train_seconds:.2f} s)",
        *([people[1]] if people is not None else []),
        f"report: {run.file('report.html')}",
    ]
    report.finish(run, files, summary)
    return run, metrics, summary


# -- command line ----------------------------------------------------------------------------------
def run_bc_command(args: argparse.Namespace) -> int:
    if args.demos is not None:
        reject_options(args, ("episodes",), "not used with --demos PATH (nothing is collected)")
    job = BcJobConfig(env=args.env, demos=args.demos, expert=args.expert, episodes=args.episodes,
                      eval_episodes=args.eval_episodes, seed=args.seed, options=parse_set(args.options))
    return print_summary(run_bc(job, args.out, progress=not args.no_progress)[2])


def run_dagger_command(args: argparse.Namespace) -> int:
    job = DaggerJobConfig(env=args.env, rounds=args.rounds, episodes_per_round=args.episodes_per_round,
                          schedule=args.schedule, expert=args.expert, eval_episodes=args.eval_episodes,
                          seed=args.seed,
                          options=parse_set(args.options))
    options = web_options(args, job.expert == WEB, "--expert web")
    with WebSession(options, "dagger", args.out) if options is not None else contextlib.nullcontext() as web:
        _, _, summary = run_dagger(job, args.out, progress=not args.no_progress, web=web)
    return print_summary(summary)
