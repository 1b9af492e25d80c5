"""``irlhf irl {gcl,gail,airl,iq-learn}``: sample-based inverse RL / adversarial imitation on a gymnasium
environment, with evaluation, the learned reward network, learning curves and a report.

    irlhf irl gail --env CartPole-v1 --episodes 4 --set total_timesteps=50000
    irlhf irl airl --env Pendulum-v1 --expert scripted --set algo=sac --set total_timesteps=20000
    irlhf irl gcl --env CartPole-v1 --demos demos.npz --set total_timesteps=20000
    irlhf irl iq-learn --env CartPole-v1 --demos demos.npz --set updates=3000          # offline
    irlhf irl iq-learn --env CartPole-v1 --set online=true --set env_steps=20000         # online

(``irlhf irl`` dispatches here when the algorithm is one of SAMPLE_ALGORITHMS; the tabular algorithms
stay in ``irlhf.jobs.irl``.)

Demonstrations: ``--demos PATH`` (read with ``irlhf.data.load_demos``: .npz, .parquet, .jsonl or a saved
dataset directory) or ``--episodes`` episodes collected from ``--expert`` (``irlhf.rl.experts.make_expert``:
scripted, ppo, dqn, sac or a model path; reset seeds --seed, --seed+1, ...). The learner is
``irlhf.irl.<algorithm>.train`` with its ``Config`` defaults, then ``seed`` / ``progress`` from --seed /
--no-progress, then ``--set KEY=VALUE`` (VALUE parsed as JSON, else a string; unknown keys are an error).
GAIL, AIRL and GCL train an SB3 generator (PPO by default, ``--set algo=sac`` for Box actions) for
``total_timesteps`` steps; IQ-Learn is offline by default (``updates`` gradient steps, no environment
steps), ``--set online=true`` makes it act for ``env_steps`` steps.

Evaluation (as ``irlhf bc``): mean / std return of the learned (deterministic) policy over
--eval-episodes episodes (reset seeds from --seed), the expert's and a uniformly random policy's mean
return, and the normalised score (learned - random) / (expert - random). Without a scripted expert for
--env and with --demos, the expert's return is the demonstrations' mean return.

Everything (validation, loading or collecting, training, evaluation) happens before the run directory is
made, so bad input (unknown env, a missing --demos file, demos that do not fit the env's spaces, bad or
unknown --set fields) is one ``irlhf: error:`` line, exit code 2, and no run directory.

Artifacts in ``<out>/irl-<algorithm>-<timestamp>/``: config.json (the job and ``algorithm_config``),
metrics.jsonl (one line per training record, phase "train", then the final metrics, phase "final"), the
policy (gail / airl / gcl: ``policy.zip``, the SB3 generator; iq-learn: ``q_net.safetensors``, plus
``policy.safetensors`` (``irlhf.nn.policies.load_policy``) for Discrete actions or ``actor.safetensors``
for Box actions), ``reward_net.safetensors`` (the discriminator / cost network / Q network weights; the
adversarial discriminator's input normalisation under ``features.``), demos.npz (when collected),
training.png (learning curves), summary.txt (also printed) and report.html.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from irlhf.core.config import BaseConfig, check_choice
from irlhf.core.errors import ValidationError
from irlhf.core.rundir import RunDir
from irlhf.jobs.imitation import (_options_table, _result_table, _score_line, check_demo_job, demo_job_command,
                                 evaluate_all)
from irlhf.jobs.irl import algorithm_config, algorithm_module  # algorithm_config reads .seed / .options
from irlhf.report import Report

JOB = "irl"
SAMPLE_ALGORITHMS = ("gcl", "gail", "airl", "iq-learn")
LABELS = {"gcl": "GCL", "gail": "GAIL", "airl": "AIRL", "iq-learn": "IQ-Learn"}
DESCRIPTIONS = {
    "gail": "GAIL (Ho & Ermon 2016): a discriminator D(s, a) separates expert from policy state-actions and an "
            "SB3 generator is trained by RL on a reward that grows with D (irlhf.irl.gail).",
    "airl": "AIRL (Fu, Luo & Levine 2018): a discriminator of the form exp(f) / (exp(f) + pi) with a shaped "
            "reward f(s, a, s') = g(s) + gamma h(s') - h(s); the generator is trained by RL on log D - log(1 - D) "
            "(irlhf.irl.airl).",
    "gcl": "Guided cost learning (Finn, Levine & Abbeel 2016): sample-based MaxEnt IOC with a neural cost "
           "c(s, a), the partition function estimated by importance sampling from the generator's episodes; the "
           "SB3 generator learns on -c (irlhf.irl.gcl).",
    "iq-learn": "IQ-Learn (Garg et al. 2021): inverse soft-Q learning; one Q network stands for both the policy "
                "(softmax of Q / alpha) and the reward r = Q(s, a) - gamma V(s') (irlhf.irl.iq_learn).",
}
# training.png per algorithm: (x key, x label, [(panel title, [history keys])])
CURVES = {
    "gail": ("timesteps", "environment steps", [("discriminator loss", ["disc_loss"]),
                                                ("discriminator accuracy", ["acc_expert", "acc_policy"]),
                                                ("mean episode return (true reward)", ["mean_return"]),
                                                ("mean episode length (steps)", ["mean_length"])]),
    "gcl": ("timesteps", "environment steps", [("IOC loss", ["ioc_loss"]),
                                               ("mean trajectory cost", ["demo_cost", "sample_cost"]),
                                               ("mean episode return (true reward)", ["mean_true_return"])]),
    "iq-learn": ("update", "update", [("IQ-Learn loss", ["loss"]),
                                      ("expert action accuracy", ["expert_accuracy"]),
                                      ("return (true reward)", ["episode_return", "eval_return"])]),
}
CURVES["airl"] = CURVES["gail"]


@dataclasses.dataclass(frozen=True)
class IrlEnvJobConfig(BaseConfig):
    """Options of ``irlhf irl {gcl,gail,airl,iq-learn}``.

    algorithm: one of SAMPLE_ALGORITHMS.  env: gymnasium id.  demos: path of demonstrations, or None to
    collect from the expert.  expert: scripted, ppo, dqn, sac or a model path (see make_expert).
    episodes: demos to collect when demos is None, >= 1.  eval_episodes: evaluation episodes, >= 1.
    seed: collection, training and evaluation seed.  options: overrides of the algorithm's Config fields.
    """

    algorithm: str = "gail"
    env: str = "CartPole-v1"
    demos: str | None = None
    expert: str = "scripted"
    episodes: int = 4
    eval_episodes: int = 20
    seed: int = 0
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("algorithm", self.algorithm, SAMPLE_ALGORITHMS)
        check_demo_job(self)

    def command(self) -> str:
        """The command line that reproduces this run."""
        return demo_job_command(f"irlhf irl {self.algorithm} --env {self.env}", self)


def _state_dict(module: Any, prefix: str = "") -> dict[str, Any]:
    return {f"{prefix}{k}": v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def save_tensors(run: RunDir, name: str, tensors: dict[str, Any]) -> str:
    """Write a dict of torch tensors as ``name`` (safetensors, atomic); returns the file name."""
    from safetensors.torch import save

    from irlhf.core.io import atomic_open

    with atomic_open(run.file(name), "wb") as handle:
        handle.write(save(tensors))
    return name


def save_model(run: RunDir, algorithm: str, result: Any) -> list[str]:
    """The policy and reward network files of a result; returns their names."""
    if algorithm == "iq-learn":
        files = [save_tensors(run, "q_net.safetensors", _state_dict(result.q_net))]
        if result.actor is not None:
            files.append(save_tensors(run, "actor.safetensors", _state_dict(result.actor)))
        else:
            from irlhf.nn.policies import save_policy

            save_policy(run.file("policy.safetensors"), result.policy)
            files.append("policy.safetensors")
        files.append(save_tensors(run, "reward_net.safetensors", _state_dict(result.q_net)))
        return files
    result.model.save(str(run.file("policy.zip")))
    if algorithm == "gcl":
        reward = _state_dict(result.cost_net)
    else:
        reward = {**_state_dict(result.discriminator), **_state_dict(result.features, "features.")}
    return ["policy.zip", save_tensors(run, "reward_net.safetensors", reward)]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def plot_training(run: RunDir, algorithm: str, history: list[dict], name: str = "training.png") -> str | None:
    """Learning curves (CURVES) against timesteps or updates; None when the history has nothing to draw."""
    from irlhf.report import plots

    x_key, x_label, panels = CURVES[algorithm]
    rows = [r for r in history if _finite(r.get(x_key))]
    if algorithm == "iq-learn" and rows and "env_steps" in rows[0]:
        x_key, x_label = "env_steps", "environment steps"
    panels = [(title, [k for k in keys if any(_finite(r.get(k)) for r in rows)]) for title, keys in panels]
    panels = [(title, keys) for title, keys in panels if keys]
    if not panels:
        return None
    fig, axes = plots.figure_row(len(panels), panel_size=3.6)
    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            points = [(r[x_key], r[key]) for r in rows if _finite(r.get(key))]
            ax.plot(*zip(*points), marker="." if len(points) < 30 else None, label=key.replace("_", " "))
        if len(keys) > 1:
            ax.legend(fontsize=7)
        ax.set_xlabel(x_label)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    run.save_figure(name, fig)
    return name


def _progress_line(algorithm: str, config: Any, history: list[dict]) -> str:
    last = history[-1] if history else {}
    if not history:
        unit = "update" if algorithm == "iq-learn" else "round" if algorithm in ("gail", "airl") else "iteration"
        return f"no training record (the run was shorter than one {unit} or one log_every)"
    if algorithm in ("gail", "airl"):
        return (f"{config.algo} generator, {last.get('timesteps', 0)} steps, {last.get('round', 0)} rounds; "
                f"discriminator loss {last.get('disc_loss', float('nan')):.3f}")
    if algorithm == "gcl":
        return (f"{config.algo} generator, {last.get('timesteps', 0)} steps, {last.get('iteration', 0)} iterations; "
                f"IOC loss {last.get('ioc_loss', float('nan')):.3f}")
    mode = f"online, {last.get('env_steps', 0)} env steps" if config.online else "offline"
    return f"{mode}, {last.get('update', 0)} updates; loss {last.get('loss', float('nan')):.4f}"


def run_irl_env(job: IrlEnvJobConfig, out: str = "runs", *,
                progress: bool = True) -> tuple[RunDir, dict[str, Any], list[str]]:
    """Validate, load or collect demos, train, evaluate, then write the run directory."""
    import numpy as np

    from irlhf.data import load_demos, save_trajectories
    from irlhf.envs.gym import SCRIPTED_EXPERTS, collect_demos
    from irlhf.rl.experts import make_expert
    from irlhf.imitation.bc import resolve_spaces
    from irlhf.rl.sb3 import one_thread

    module = algorithm_module(job.algorithm)
    config = algorithm_config(module, job, progress)  # validates the overrides
    resolve_spaces(job.env)  # unknown env -> ValidationError
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
    with one_thread():  # small networks: extra threads only contend
        result = module.train(job.env, demos, config)  # demos that do not fit the env -> ValidationError
    train_seconds = time.perf_counter() - t_train
    demo_returns = [float(t.rews.sum()) for t in demos if t.rews is not None]
    fallback = float(np.mean(demo_returns)) if demo_returns and expert is None else None
    metrics = evaluate_all(job.env, result.policy, expert, job.eval_episodes, job.seed, fallback)
    history = list(result.history or [])
    n_samples = int(sum(len(t) for t in demos))
    metrics.update(n_samples=n_samples, n_demos=len(demos),
                   demo_return_mean=float(np.mean(demo_returns)) if demo_returns else None,
                   train_records=len(history), train_seconds=train_seconds, seconds=time.perf_counter() - t0)

    run = RunDir.create(f"{JOB}-{job.algorithm}", out)
    run.write_json("config.json", {**job.to_dict(), "algorithm_config": config.to_dict()})
    for record in history:
        run.log(phase="train", **record)
    run.log(phase="final", **metrics)
    files = ["config.json", "metrics.jsonl", *save_model(run, job.algorithm, result)]
    if job.demos is None:
        save_trajectories(run.file("demos.npz"), demos)
        files.append("demos.npz")
    curves = plot_training(run, job.algorithm, history)
    files += [f for f in (curves,) if f] + ["summary.txt", "report.html"]

    label = LABELS[job.algorithm]
    source = (f"{job.demos} ({len(demos)} demonstrations)" if job.demos else
              f"{len(demos)} episodes of the {job.expert} expert (reset seeds {job.seed}..{job.seed + len(demos) - 1}, "
              "demos.npz)")
    report = Report(f"irlhf irl {job.algorithm}: {job.env}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(
        job.command()).table(_options_table(config), header=[f"{label} option", "value"])
    report.section("Setup").text(
        f"Environment {job.env}. Demonstrations: {source}; {n_samples} transitions. {DESCRIPTIONS[job.algorithm]}")
    report.section("Result").text(
        f"Returns of the learned policy (deterministic actions) over {job.eval_episodes} episodes (reset seeds from "
        f"{job.seed}), under the environment's true reward. Normalised score: (learned - random) / "
        "(expert - random).").table(
        _result_table(metrics) + [["training records", len(history)], ["training seconds", train_seconds]],
        header=["metric", "value"])
    if curves:
        report.section("Training").image(curves, caption="Learning curves per training record (metrics.jsonl, "
                                         "phase 'train').")
    summary = [
        f"irlhf irl {job.algorithm} -> {run.path}",
        f"env: {job.env}; demos: {len(demos)} ({n_samples} samples); {_progress_line(job.algorithm, config, history)}",
        _score_line(metrics),
        f"time: {metrics['seconds']:.2f} s (training {train_seconds:.2f} s)",
        f"report: {run.file('report.html')}",
    ]
    report.finish(run, files, summary)
    return run, metrics, summary
