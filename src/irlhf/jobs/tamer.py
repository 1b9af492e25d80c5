"""``irlhf tamer``: TAMER (learning from scalar human reinforcement) with a synthetic trainer, and a report.

    irlhf tamer --env MountainCar-v0 --episodes 20
    irlhf tamer --episodes 30 --set credit=window --set trainer.p=0.3 --set trainer.noise=0.1

``irlhf.preference.tamer.train`` runs ``--episodes`` episodes; the feedback comes from ``--trainer``
(only "synthetic" for now: ``tamer.make_synthetic_trainer``, which rates the action just taken by the
sign of its true advantage, from value iteration on the known dynamics; MountainCar-v0 only).
``--set KEY=VALUE`` sets a field of ``tamer.Config`` (VALUE parsed as JSON, else a string; ``seed`` and
``progress`` follow --seed and --no-progress); ``--set trainer.KEY=VALUE`` one of the synthetic trainer's
options (p, noise, delay_min, delay_max, tol, grid; its seed is --seed).

Evaluation: mean / std return of the greedy policy on H_hat over --eval-episodes episodes (reset seeds
from 10000 + --seed, unseen in training), and the same for a random policy and the trainer's own greedy
policy on Q* (the best a perfect learner of its ratings could do).

Everything (validation, training, evaluation) happens before the run directory is made, so bad input is
one ``irlhf: error:`` line, exit code 2, and no run directory. Artifacts in ``<out>/tamer-<timestamp>/``:
config.json, metrics.jsonl (one line per episode, then the final metrics), h_weights.npy
((n_actions, n_features)), learning_curve.png (return per episode), summary.txt (also printed) and
report.html.

    irlhf tamer --env MountainCar-v0 --episodes 5 --trainer web --label-timeout 900

``--trainer web``: a person is the trainer (``irlhf.label.people.WebTrainer``): after each episode its clip
appears on a labelling page the job serves (server options as for ``irlhf label``), the person presses good /
bad while it plays, and those events train H_hat before the next episode. The run directory is made first (its
name is the label session; ``--db`` defaults to ``<run dir>/labels.sqlite``) and gets ``labels.jsonl``; there
is no Q* reference then.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time
from typing import Annotated, Any

import numpy as np

from irlhf.core.config import BaseConfig, Check, OneOf, PositiveInt, Seed
from irlhf.core.errors import ValidationError
from irlhf.core.rundir import RunDir
from irlhf.envs.gym import evaluate, make_env, random_return
from irlhf.jobs._common import (TAMER_TRAINER_OPTIONS, TAMER_TRAINERS, WEB, Overrides, options_table, parse_set,
                                print_summary, set_flags)
from irlhf.label.live import WebSession, web_options
from irlhf.preference import tamer
from irlhf.report import Report
from irlhf.report.curves import episode_returns

TRAINERS = TAMER_TRAINERS  # WEB: people, through the labelling page
TRAINER_OPTIONS = TAMER_TRAINER_OPTIONS
EVAL_SEED_OFFSET = 10_000


@dataclasses.dataclass(frozen=True)
class TamerJobConfig(BaseConfig):
    """Options of ``irlhf tamer``: env, episodes, trainer (one of TRAINERS), eval_episodes, seed, options
    (``tamer.Config`` overrides and ``trainer.<option>`` overrides)."""

    env: Annotated[str, Check(lambda v: isinstance(v, str) and bool(v.strip()),
                              "a gymnasium environment id (e.g. MountainCar-v0)")] = "MountainCar-v0"
    episodes: PositiveInt = 20
    trainer: Annotated[str, OneOf(TRAINERS)] = "synthetic"
    eval_episodes: PositiveInt = 20
    seed: Seed = 0
    options: Overrides = dataclasses.field(default_factory=dict)

    def command(self) -> str:
        parts = [f"irlhf tamer --env {self.env} --episodes {self.episodes} --trainer {self.trainer} "
                 f"--eval-episodes {self.eval_episodes}"]
        return " ".join(parts + set_flags(self.options) + [f"--seed {self.seed}"])


def split_options(job: TamerJobConfig, progress: bool) -> tuple[Any, dict[str, Any]]:
    """``tamer.Config`` (defaults, then episodes / seed / progress, then the overrides) and the trainer's
    keyword options (``trainer.KEY`` overrides, validated by name here and by value by the trainer)."""
    top: dict[str, Any] = {}
    trainer: dict[str, Any] = {}
    for key, value in job.options.items():
        if key.startswith("trainer."):
            name = key[len("trainer."):]
            if job.trainer == WEB:
                raise ValidationError(f"--set {key}: trainer options are for the synthetic trainer; expected none "
                                      "with --trainer web")
            if name not in TRAINER_OPTIONS:
                raise ValidationError(f"--set {key}: unknown trainer option {name!r}; expected one of "
                                      f"{['trainer.' + o for o in TRAINER_OPTIONS]}")
            trainer[name] = value
        else:
            top[key] = value
    config = tamer.Config.from_dict({"episodes": job.episodes, "seed": job.seed, "progress": progress, **top})
    return config, trainer


def run_tamer(job: TamerJobConfig, out: str = "runs", *, progress: bool = True,
              web: WebSession | None = None) -> tuple[RunDir, dict[str, Any], list[str]]:
    """Validate, train, evaluate, then write the run directory. ``web`` (with ``job.trainer == "web"``): a person
    gives the feedback through that session's labelling page (started after validation)."""
    config, trainer_options = split_options(job, progress)
    make_env(job.env).close()  # unknown env -> ValidationError
    if (job.trainer == WEB) != (web is not None):
        raise ValidationError(f"trainer={job.trainer!r}: a WebSession is needed exactly with --trainer web")
    if web is not None:
        web.start()
        trainer = web.trainer(job.env)
    else:
        trainer = tamer.make_synthetic_trainer(job.env, seed=job.seed, **trainer_options)
    t0 = time.perf_counter()
    result = tamer.train(job.env, trainer, config)
    train_seconds = time.perf_counter() - t0

    def oracle(obs: Any) -> Any:
        return np.argmax(trainer.q(obs), axis=1).astype(np.int64)

    eval_seed = EVAL_SEED_OFFSET + job.seed
    mean, std = evaluate(job.env, result.policy, n_episodes=job.eval_episodes, seed=eval_seed)
    oracle_mean = (None if web is not None  # a person has no Q* to act greedily on
                   else evaluate(job.env, oracle, n_episodes=job.eval_episodes, seed=eval_seed)[0])
    random_mean = random_return(job.env, n_episodes=job.eval_episodes, seed=eval_seed)
    hist = result.history
    first_goal = next((r["episode"] + 1 for r in hist if r["reached_goal"]), None)
    metrics = {"eval_return_mean": mean, "eval_return_std": std, "oracle_return_mean": oracle_mean,
               "random_return_mean": random_mean, "eval_episodes": job.eval_episodes,
               "episodes": len(hist), "goal_episodes": int(sum(r["reached_goal"] for r in hist)),
               "first_goal_episode": first_goal, "feedback_events": int(sum(r["feedback"] for r in hist)),
               "steps": int(sum(r["steps"] for r in hist)),
               "last5_return_mean": float(np.mean([r["return"] for r in hist[-5:]])),
               "train_seconds": train_seconds, "seconds": time.perf_counter() - t0}

    run = web.run if web is not None else RunDir.create("tamer", out)
    run.write_json("config.json", {**job.to_dict(), "tamer_config": config.to_dict(),
                                   "trainer_options": {"seed": job.seed, **trainer_options},
                                   **({"web": web.options.to_dict()} if web is not None else {})})
    for record in hist:
        run.log(phase="episode", **record)
    run.log(phase="final", **metrics)
    run.save_array("h_weights.npy", result.weights)
    curve = "learning_curve.png"
    run.save_figure(curve, episode_returns(hist, oracle_mean))
    files = ["config.json", "metrics.jsonl", "h_weights.npy", curve, "summary.txt", "report.html"]
    people = web.export() if web is not None else None
    if people is not None:
        files.insert(-2, people[0])

    if web is not None:
        trainer_description = (f"The trainer is a person on the labelling page (session {web.session}): after each "
                               "episode they watch its clip and press good (+1) or bad (-1).")
    else:
        trainer_text = ", ".join(f"{k}={v}" for k, v in {"p": trainer.p, "noise": trainer.noise,
                                                         "delay": f"U[{trainer.delay_min}, {trainer.delay_max}] s",
                                                         "tol": trainer.tol}.items())
        trainer_description = (f"The {job.trainer} trainer rates a step +1 when its action is optimal under Q* (up "
                               f"to tol), -1 otherwise ({trainer_text}).")
    oracle_text = "n/a (a person)" if oracle_mean is None else f"{oracle_mean:.2f}"
    credit_text = (f"uniform delay density on [{config.delay_min}, {config.delay_max}] s integrated over each "
                   f"step ({config.step_seconds} s per step)" if config.credit == "uniform" else
                   f"the last {config.window} steps, equal credit")
    report = Report(f"irlhf tamer: {job.env}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(
        job.command()).table(options_table(config), header=["tamer option", "value"])
    report.section("Setup").text(
        f"Environment {job.env}. TAMER learns a linear model H_hat(s, a) of the trainer's reinforcement "
        f"({config.features} features, {result.weights.shape[1]} per action) and acts greedily on it. "
        f"{trainer_description} Credit assignment: {credit_text}.")
    report.section("Result").text(
        f"Greedy policy on H_hat after training, over {job.eval_episodes} episodes (reset seeds from "
        f"{eval_seed}).").table([
            ["TAMER: mean return", mean], ["TAMER: std of return", std],
            ["trainer's greedy policy on Q*: mean return", "n/a (a person)" if oracle_mean is None else oracle_mean],
            ["random policy: mean return", random_mean],
            ["training episodes that reached the goal", f"{metrics['goal_episodes']} / {len(hist)}"],
            ["first training episode that reached the goal", "never" if first_goal is None else first_goal],
            ["feedback events", metrics["feedback_events"]], ["training steps", metrics["steps"]],
            ["training seconds", train_seconds]], header=["metric", "value"])
    report.section("Learning curve").image(curve, caption="Return per training episode (green: reached the goal); "
                                           "dashed: the trainer's own greedy policy on Q*.").table(
        [[r["episode"] + 1, r["return"], r["steps"], r["feedback"], r["reached_goal"]] for r in hist],
        header=["episode", "return", "steps", "feedback events", "reached goal"])
    summary = [
        f"irlhf tamer -> {run.path}",
        f"env: {job.env}; {len(hist)} episodes, {metrics['feedback_events']} feedback events; goal reached in "
        f"{metrics['goal_episodes']} (first: {'never' if first_goal is None else f'episode {first_goal}'})",
        f"return {mean:.2f} +- {std:.2f} over {job.eval_episodes} episodes; trainer's Q* policy {oracle_text}, "
        f"random {random_mean:.2f}",
        f"time: {metrics['seconds']:.2f} s (training {train_seconds:.2f} s)",
        *([people[1]] if people is not None else []),
        f"report: {run.file('report.html')}",
    ]
    report.finish(run, files, summary)
    return run, metrics, summary


def run_command(args: argparse.Namespace) -> int:
    job = TamerJobConfig(env=args.env, episodes=args.episodes, trainer=args.trainer,
                         eval_episodes=args.eval_episodes, seed=args.seed, options=parse_set(args.options))
    options = web_options(args, job.trainer == WEB, "--trainer web")
    with WebSession(options, "tamer", args.out) if options is not None else contextlib.nullcontext() as web:
        _, _, summary = run_tamer(job, args.out, progress=not args.no_progress, web=web)
    return print_summary(summary)
