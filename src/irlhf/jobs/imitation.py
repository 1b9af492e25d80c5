"""``irlhf bc`` and ``irlhf dagger``: imitation learning on a gymnasium environment, with metrics and a report.

    irlhf bc --env CartPole-v1 --episodes 4                      # collect 4 expert demos, clone them
    irlhf bc --env CartPole-v1 --demos demos.npz --set epochs=50 # clone saved demos (irlhf.data format)
    irlhf dagger --env CartPole-v1 --rounds 10 --episodes-per-round 4 --schedule linear

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
bad --set fields) is one ``irlhf: error:`` line, exit code 2, and no run directory.

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
import json
import time
from typing import Any

from irlhf.core.config import BaseConfig, check_choice, check_number
from irlhf.core.errors import ValidationError
from irlhf.core.rundir import RunDir
from irlhf.jobs.irl import parse_set
from irlhf.jobs.label import WEB, WebSession, add_server_options, web_options
from irlhf.report import Report

EXPERTS = ("scripted", "ppo", "dqn", "sac")  # --expert: one of these, or a path to an SB3 .zip / irlhf .safetensors
SCHEDULES = ("linear", "exponential", "constant")


def _check_env(env: Any) -> None:
    if not isinstance(env, str) or not env.strip():
        raise ValidationError(f"env={env!r}: expected a gymnasium environment id (e.g. CartPole-v1)")


def _check_expert(expert: Any, web: bool = False) -> None:
    """An expert kind of ``irlhf.rl.experts.make_expert``: one of EXPERTS or a .zip / .safetensors path (or, with
    ``web``, "web": people on the labelling page)."""
    if web and expert == WEB:
        return
    if not (isinstance(expert, str) and (expert in EXPERTS or expert.endswith((".zip", ".safetensors")))):
        raise ValidationError(f"expert={expert!r}: expected one of {list(EXPERTS)} or a path ending in .zip "
                              "(SB3 model) or .safetensors (irlhf policy)")


@dataclasses.dataclass(frozen=True)
class BcJobConfig(BaseConfig):
    """Options of ``irlhf bc``.

    env: gymnasium id.  demos: path of a trajectories .npz, or None to collect from the expert.
    expert: which expert (scripted, ppo, dqn, sac or a model path; see make_expert).
    episodes: demos to collect when demos is None, >= 1.
    eval_episodes: evaluation episodes, >= 1.  seed: collection, training and evaluation seed.
    options: overrides of ``irlhf.imitation.bc.Config`` fields.
    """

    env: str = "CartPole-v1"
    demos: str | None = None
    expert: str = "scripted"
    episodes: int = 4
    eval_episodes: int = 20
    seed: int = 0
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_demo_job(self)

    def command(self) -> str:
        return demo_job_command(f"irlhf bc --env {self.env}", self)


def check_demo_job(job: Any) -> None:
    """Validate the fields every demos-from-file-or-expert job has (``irlhf bc``, ``irlhf irl gail`` ...): env,
    demos, expert, episodes, eval_episodes, seed, options."""
    _check_env(job.env)
    if job.demos is not None and (not isinstance(job.demos, str) or not job.demos):
        raise ValidationError(f"demos={job.demos!r}: expected a path to demonstrations (.npz, .parquet, "
                              ".jsonl or a saved dataset directory)")
    _check_expert(job.expert)
    check_number("episodes", job.episodes, low=1, integer=True)
    check_number("eval_episodes", job.eval_episodes, low=1, integer=True)
    check_number("seed", job.seed, low=0, integer=True)
    if not isinstance(job.options, dict):
        raise ValidationError(f"options={job.options!r}: expected a dict of Config overrides")


def demo_job_command(head: str, job: Any) -> str:
    """``head`` plus the demos source, --eval-episodes, --set overrides and --seed of such a job."""
    parts = [head]
    parts.append(f"--demos {job.demos}" if job.demos else f"--expert {job.expert} --episodes {job.episodes}")
    parts.append(f"--eval-episodes {job.eval_episodes}")
    parts += [f"--set {k}={json.dumps(v, separators=(',', ':'))}" for k, v in job.options.items()]
    parts.append(f"--seed {job.seed}")
    return " ".join(parts)


@dataclasses.dataclass(frozen=True)
class DaggerJobConfig(BaseConfig):
    """Options of ``irlhf dagger``: env, rounds (>= 1), episodes_per_round (>= 1), schedule (one of
    SCHEDULES), expert (as for bc), eval_episodes (>= 1), seed, options (``dagger.Config`` / ``bc.<field>``
    overrides)."""

    env: str = "CartPole-v1"
    rounds: int = 10
    episodes_per_round: int = 4
    schedule: str = "linear"
    expert: str = "scripted"
    eval_episodes: int = 20
    seed: int = 0
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_env(self.env)
        check_number("rounds", self.rounds, low=1, integer=True)
        check_number("episodes_per_round", self.episodes_per_round, low=1, integer=True)
        check_choice("schedule", self.schedule, SCHEDULES)
        _check_expert(self.expert, web=True)
        check_number("eval_episodes", self.eval_episodes, low=1, integer=True)
        check_number("seed", self.seed, low=0, integer=True)
        if not isinstance(self.options, dict):
            raise ValidationError(f"options={self.options!r}: expected a dict of Config overrides")

    def command(self) -> str:
        parts = [f"irlhf dagger --env {self.env} --rounds {self.rounds} --episodes-per-round "
                 f"{self.episodes_per_round} --schedule {self.schedule} --expert {self.expert} "
                 f"--eval-episodes {self.eval_episodes}"]
        parts += [f"--set {k}={json.dumps(v, separators=(',', ':'))}" for k, v in self.options.items()]
        parts.append(f"--seed {self.seed}")
        return " ".join(parts)


# -- shared helpers ------------------------------------------------------------------------------
def bc_config(options: dict[str, Any], seed: int, progress: bool) -> Any:
    """``bc.Config``: defaults, then seed / progress, then the overrides (validated)."""
    from irlhf.imitation import bc

    return bc.Config.from_dict({"seed": seed, "progress": progress, **options})


def dagger_config(job: DaggerJobConfig, progress: bool) -> Any:
    """``dagger.Config`` from the job: rounds, episodes, schedule, seed, progress, then the overrides;
    ``bc.KEY`` keys (and keys only bc.Config has) go to the per-round bc settings (based on DEFAULT_BC)."""
    from irlhf.imitation import bc, dagger

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


def evaluate_all(env: str, policy: Any, expert: Any, n_episodes: int, seed: int,
                 expert_fallback: float | None = None) -> dict[str, Any]:
    """Learned policy's mean / std return, the expert's and a random policy's mean return, normalised score."""
    from irlhf.envs.gym import evaluate, normalized_score, random_return

    mean, std = evaluate(env, policy, n_episodes=n_episodes, seed=seed)
    expert_mean = evaluate(env, expert, n_episodes=n_episodes, seed=seed)[0] if expert is not None else expert_fallback
    random_mean = random_return(env, n_episodes=n_episodes, seed=seed)
    score = None
    if expert_mean is not None and expert_mean != random_mean:
        score = normalized_score(env, mean, float(expert_mean), random_mean)
    return {"eval_return_mean": mean, "eval_return_std": std, "expert_return_mean": expert_mean,
            "random_return_mean": random_mean, "normalized_score": score, "eval_episodes": n_episodes}


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def _score_line(m: dict[str, Any]) -> str:
    return (f"return {m['eval_return_mean']:.2f} +- {m['eval_return_std']:.2f} over {m['eval_episodes']} episodes; "
            f"expert {_fmt(m['expert_return_mean'])}, random {m['random_return_mean']:.2f}; "
            f"normalized score {_fmt(m['normalized_score'], '.3f')}")


def _result_table(m: dict[str, Any]) -> list[list[Any]]:
    return [["learned policy: mean return", m["eval_return_mean"]],
            ["learned policy: std of return", m["eval_return_std"]],
            ["expert: mean return", _fmt(m["expert_return_mean"], ".4g")],
            ["random policy: mean return", m["random_return_mean"]],
            ["normalized score (1 = expert, 0 = random)", _fmt(m["normalized_score"], ".4g")],
            ["evaluation episodes", m["eval_episodes"]]]


def _options_table(config: Any) -> list[tuple[str, Any]]:
    return sorted((k, json.dumps(v) if isinstance(v, (dict, list, tuple)) else v) for k, v in config.to_dict().items())


# -- bc --------------------------------------------------------------------------------------------
def plot_learning_curve(run: RunDir, history: list[dict], best_epoch: int, name: str = "learning_curve.png") -> str:
    from irlhf.report import plots

    fig, (ax,) = plots.figure_row(1, panel_size=4.2)
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r["train_loss"] for r in history], label="train loss", color="tab:blue")
    val = [(r["epoch"], r["val_loss"]) for r in history if r.get("val_loss") is not None]
    if val:
        ax.plot(*zip(*val), label="validation loss", color="tab:orange")
    ax.axvline(best_epoch, color="gray", ls="--", lw=1, label=f"kept epoch {best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    run.save_figure(name, fig)
    return name


def run_bc(job: BcJobConfig, out: str = "runs", *, progress: bool = True) -> tuple[RunDir, dict[str, Any], list[str]]:
    """Validate, load or collect demos, train, evaluate, then write the run directory."""
    import numpy as np

    from irlhf.data import load_demos, save_trajectories
    from irlhf.envs.gym import SCRIPTED_EXPERTS, collect_demos
    from irlhf.rl.experts import make_expert
    from irlhf.imitation import bc

    config = bc_config(job.options, job.seed, progress)
    bc.resolve_spaces(job.env)  # unknown env / unsupported spaces -> ValidationError
    expert = (make_expert(job.env, seed=job.seed, kind=job.expert)
              if (job.demos is None or job.env in SCRIPTED_EXPERTS) else None)
    t0 = time.perf_counter()
    if job.demos is not None:
        demos = load_demos(job.demos)
        if not demos:
            raise ValidationError(f"demos={job.demos!r}: holds no trajectories; expected at least one")
    else:
        demos = collect_demos(job.env, expert, n_episodes=job.episodes, seed=job.seed)
    t_train = time.perf_counter()
    result = bc.train(job.env, demos, config)  # demos that do not fit the env's spaces -> ValidationError
    train_seconds = time.perf_counter() - t_train
    demo_returns = [float(t.rews.sum()) for t in demos if t.rews is not None]
    fallback = float(np.mean(demo_returns)) if demo_returns and expert is None else None
    metrics = evaluate_all(job.env, result.policy, expert, job.eval_episodes, job.seed, fallback)
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
    curve = plot_learning_curve(run, result.history, result.best_epoch)
    files += [curve, "summary.txt", "report.html"]

    source = (f"{job.demos} ({len(demos)} demonstrations)" if job.demos else
              f"{len(demos)} episodes of the {job.expert} expert (reset seeds {job.seed}..{job.seed + len(demos) - 1}, "
              "demos.npz)")
    report = Report(f"irlhf bc: {job.env}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(
        job.command()).table(_options_table(config), header=["bc option", "value"])
    report.section("Setup").text(f"Environment {job.env}. Demonstrations: {source}; {n_samples} (state, action) "
                                 f"pairs, {result.n_train} for training and {result.n_val} held out.")
    report.section("Result").text(
        f"Returns over {job.eval_episodes} episodes (reset seeds from {job.seed}). Normalised score: "
        "(learned - random) / (expert - random).").table(
        _result_table(metrics) + [["best epoch (weights kept)", result.best_epoch],
                                  ["training seconds", train_seconds]], header=["metric", "value"])
    report.section("Training").image(curve, caption="Training and validation loss per epoch; the dashed line "
                                     "marks the epoch whose weights were kept.")
    summary = [
        f"irlhf bc -> {run.path}",
        f"env: {job.env}; demos: {len(demos)} ({n_samples} samples); epochs {len(result.history)} "
        f"(best {result.best_epoch})",
        _score_line(metrics),
        f"time: {metrics['seconds']:.2f} s (training {train_seconds:.2f} s)",
        f"report: {run.file('report.html')}",
    ]
    report.finish(run, files, summary)
    return run, metrics, summary


# -- dagger --------------------------------------------------------------------------------------
def plot_rounds(run: RunDir, history: list[dict], name: str = "rounds.png") -> str:
    from irlhf.report import plots

    fig, axes = plots.figure_row(2, panel_size=3.6)
    rounds = [r["round"] for r in history]
    for ax, key, title, color in ((axes[0], "rollout_return_mean", "mean rollout return", "tab:blue"),
                                  (axes[1], "n_samples", "dataset size (samples)", "tab:green")):
        ax.plot(rounds, [r[key] for r in history], marker="o", color=color)
        ax.set_xlabel("round")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    run.save_figure(name, fig)
    return name


def run_dagger(job: DaggerJobConfig, out: str = "runs", *, progress: bool = True,
               web: WebSession | None = None) -> tuple[RunDir, dict[str, Any], list[str]]:
    """Validate, run DAgger, evaluate, then write the run directory. ``web`` (with ``job.expert == "web"``):
    people are the expert, through that session's labelling page (started after validation)."""
    import gymnasium as gym

    from irlhf.envs.gym import SCRIPTED_EXPERTS, make_env

    from irlhf.rl.experts import make_expert
    from irlhf.imitation import bc, dagger

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
    metrics = evaluate_all(job.env, result.policy, reference, job.eval_episodes, job.seed)
    metrics.update(n_samples=len(result.dataset), rounds=len(result.history), train_seconds=train_seconds,
                   seconds=time.perf_counter() - t0)

    run = web.run if web is not None else RunDir.create("dagger", out)
    run.write_json("config.json", {**job.to_dict(), "dagger_config": config.to_dict(),
                                   **({"web": web.options.to_dict()} if web is not None else {})})
    for record in result.history:
        run.log(phase="round", **record)
    run.log(phase="final", **metrics)
    bc.save_policy(run.file("policy.safetensors"), result.policy)
    png = plot_rounds(run, result.history)
    files = ["config.json", "metrics.jsonl", "policy.safetensors", png, "summary.txt", "report.html"]
    people = web.export() if web is not None else None
    if people is not None:
        files.insert(-2, people[0])

    report = Report(f"irlhf dagger: {job.env}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(
        job.command()).table(_options_table(config), header=["dagger option", "value"])
    report.section("Setup").text(
        f"Environment {job.env}, {job.expert} expert. {config.rounds} rounds of {config.episodes_per_round} "
        f"episodes of the mixture policy (schedule {config.schedule}); every visited state labelled by the "
        f"expert; the learner retrained from scratch by behaviour cloning on the aggregate "
        f"({len(result.dataset)} samples at the end).")
    report.section("Result").text(
        f"Returns of the final learner over {job.eval_episodes} episodes (reset seeds from {job.seed}).").table(
        _result_table(metrics) + [["training seconds", train_seconds]], header=["metric", "value"])
    report.section("Rounds").table(
        [[r["round"], r["beta"], r["n_samples"], r["expert_fraction"], r["rollout_return_mean"]]
         for r in result.history],
        header=["round", "beta", "samples", "expert fraction", "rollout return"]).image(
        png, caption="Per round: mean return of the mixture policy's rollouts and the size of the aggregate dataset.")
    summary = [
        f"irlhf dagger -> {run.path}",
        f"env: {job.env}; {config.rounds} rounds x {config.episodes_per_round} episodes ({config.schedule}); "
        f"{len(result.dataset)} samples",
        _score_line(metrics),
        f"time: {metrics['seconds']:.2f} s (training {train_seconds:.2f} s)",
        *([people[1]] if people is not None else []),
        f"report: {run.file('report.html')}",
    ]
    report.finish(run, files, summary)
    return run, metrics, summary


# -- command line ----------------------------------------------------------------------------------
def _common(parser: argparse.ArgumentParser, eval_default: int) -> None:
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium environment id")
    parser.add_argument("--eval-episodes", type=int, default=eval_default, help="evaluation episodes")
    parser.add_argument("--set", dest="options", action="append", metavar="KEY=VALUE", default=None,
                        help="override a Config field (VALUE as JSON), e.g. --set epochs=20; repeatable")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_parser(subparsers: Any) -> None:
    from irlhf.cli import add_job

    b = BcJobConfig()
    parser = add_job(subparsers, "bc", run_bc_command,
                     help="behaviour cloning on a gymnasium environment, with evaluation and a report",
                     description="Load (--demos) or collect expert demonstrations, fit a policy by behaviour "
                     "cloning (irlhf.imitation.bc), evaluate it against the expert and a random policy, and write "
                     "the policy, metrics, learning curve and report.html.")
    _common(parser, b.eval_episodes)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--demos", default=None, metavar="PATH",
                        help="demonstrations: .npz, .parquet, .jsonl or a saved dataset directory")
    source.add_argument("--expert", default=b.expert, metavar="KIND|PATH",
                        help="expert to collect demos from: scripted, ppo, dqn, sac (cached, `irlhf expert train`) "
                        "or a path to an SB3 .zip / irlhf .safetensors policy")
    parser.add_argument("--episodes", type=int, default=b.episodes,
                        help="demonstrations to collect from the expert when no --demos")

    d = DaggerJobConfig()
    parser = add_job(subparsers, "dagger", run_dagger_command,
                     help="DAgger with an expert (scripted or SB3-trained) on a gymnasium environment, with a report",
                     description="Run DAgger (irlhf.imitation.dagger): roll out the expert/learner mixture, label "
                     "visited states with the expert, retrain by behaviour cloning each round; evaluate and write "
                     "the policy, per-round metrics, plot and report.html. --set bc.KEY=VALUE sets a per-round "
                     "behaviour-cloning option.")
    _common(parser, d.eval_episodes)
    parser.add_argument("--rounds", type=int, default=d.rounds, help="DAgger rounds")
    parser.add_argument("--episodes-per-round", type=int, default=d.episodes_per_round,
                        help="mixture-policy rollouts per round")
    parser.add_argument("--schedule", choices=SCHEDULES, default=d.schedule, help="beta schedule")
    parser.add_argument("--expert", default=d.expert, metavar="KIND|PATH",
                        help="the expert: scripted, ppo, dqn, sac (cached, `irlhf expert train`), a path to an "
                        "SB3 .zip / irlhf .safetensors policy, or web (people, on the labelling page the job serves)")
    add_server_options(parser, live=True)


def run_bc_command(args: argparse.Namespace) -> int:
    job = BcJobConfig(env=args.env, demos=args.demos, expert=args.expert, episodes=args.episodes,
                      eval_episodes=args.eval_episodes, seed=args.seed, options=parse_set(args.options))
    _, _, summary = run_bc(job, args.out, progress=not args.no_progress)
    print("\n".join(summary))
    return 0


def run_dagger_command(args: argparse.Namespace) -> int:
    job = DaggerJobConfig(env=args.env, rounds=args.rounds, episodes_per_round=args.episodes_per_round,
                          schedule=args.schedule, expert=args.expert, eval_episodes=args.eval_episodes,
                          seed=args.seed,
                          options=parse_set(args.options))
    options = web_options(args, job.expert == WEB, "--expert web")
    with WebSession(options, "dagger", args.out) if options is not None else contextlib.nullcontext() as web:
        _, _, summary = run_dagger(job, args.out, progress=not args.no_progress, web=web)
    print("\n".join(summary))
    return 0
