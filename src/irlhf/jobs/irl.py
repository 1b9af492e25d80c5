"""``irlhf irl ALGORITHM``: inverse RL end to end, with metrics and a report. Tabular algorithms
(apprenticeship, mmp, maxent, deep-maxent) recover a reward on a classic world and are scored by EVD; the
sample-based ones (gcl, gail, airl, iq-learn) learn on a gymnasium environment from demonstrations and are
scored by the learned policy's returns. ``run`` dispatches on the algorithm.

    irlhf irl maxent --world objectworld --size 16 --demos 64
    irlhf irl deep-maxent --world objectworld --continuous --set hidden_sizes=[32,32] --set iterations=300
    irlhf irl maxent --world gridworld --size 16 --macrocell 4
    irlhf irl gail --env CartPole-v1 --episodes 4 --set total_timesteps=50000
    irlhf irl airl --env Pendulum-v1 --expert scripted --set algo=sac --set total_timesteps=20000
    irlhf irl iq-learn --env CartPole-v1 --demos demos.npz --set updates=3000          # offline
    irlhf irl iq-learn --env CartPole-v1 --set online=true --set env_steps=20000         # online

The learner is ``irlhf.irl.<algorithm>`` (``-`` -> ``_``) with its ``Config`` defaults, then ``seed`` /
``progress`` from --seed / --no-progress when the Config has them, then ``--set KEY=VALUE`` (VALUE parsed as
JSON, else a string; unknown keys are an error).

Tabular: build the world (seeded by --seed); the expert is the soft-optimal policy of the true reward over
--horizon steps; sample --demos demonstrations of that length (same seed); train; evaluate the learned reward
(``irlhf.eval.evaluate_reward``: EVD, reward correlation, demo log-likelihood, with the expert's and a constant
reward's values for scale). Artifacts in ``<out>/irl-<algorithm>-<timestamp>/``: config.json, metrics.jsonl
(one line per training evaluation, then the final metrics), true_reward.npy, learned_reward.npy, demos.npz,
the learned parameters (weights.npy, or reward_net.safetensors for a network), rewards.png, training.png,
summary.txt (also printed) and report.html.

Sample-based: demonstrations from ``--demos PATH`` (``irlhf.data.load_demos``) or ``--episodes`` episodes of
``--expert`` (``irlhf.rl.experts.make_expert``; reset seeds --seed, --seed+1, ...). GAIL, AIRL and GCL train an
SB3 generator (PPO by default, ``--set algo=sac`` for Box actions) for ``total_timesteps`` steps; IQ-Learn is
offline by default (``updates`` gradient steps), ``--set online=true`` makes it act for ``env_steps`` steps.
Evaluation (``irlhf.eval.returns.score_policy``): the learned policy's mean / std return over --eval-episodes
episodes, the expert's (without a scripted expert for --env and with --demos: the demonstrations' mean return)
and a random policy's, and the normalised score (learned - random) / (expert - random). Artifacts in
``<out>/irl-<algorithm>-<timestamp>/``: config.json, metrics.jsonl (phase "train" records, then "final"), the
policy (gail / airl / gcl: ``policy.zip``; iq-learn: ``q_net.safetensors`` plus ``policy.safetensors`` for
Discrete actions or ``actor.safetensors`` for Box actions), ``reward_net.safetensors`` (discriminator / cost
network / Q network; the adversarial discriminator's input normalisation under ``features.``), demos.npz (when
collected), training.png, summary.txt and report.html.

Everything (validation, loading or collecting, training, evaluation) happens before the run directory is made,
so bad input is one ``irlhf: error:`` line, exit code 2, and no run directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import time
from typing import Annotated, Any

import numpy as np

from irlhf.core.config import BaseConfig, OneOf, PositiveInt, Range, Seed
from irlhf.core.errors import ValidationError
from irlhf.core.rundir import RunDir
from irlhf.data import load_demos, save_trajectories
from irlhf.envs.gym import SCRIPTED_EXPERTS, collect_demos
from irlhf.envs.tabular import TabularMDP, binaryworld, gridworld, objectworld, sample_trajectories
from irlhf.eval import evaluate_reward
from irlhf.eval.returns import score_policy
from irlhf.envs.spaces import resolve_spaces
from irlhf.jobs._common import (IRL_SAMPLE, IRL_TABULAR, MAX_WORLD_SIZE, WORLDS, DemosPath, EnvId, ExpertKind,
                                Overrides, demo_job_command, options_table, parse_set, print_summary, reject_options,
                                result_table, score_line, set_flags)
from irlhf.nn.policies import save_policy
from irlhf.planning import soft_value_iteration
from irlhf.report import Report
from irlhf.report.artifacts import save_arrays, save_tensors, state_dict_tensors
from irlhf.report.curves import evaluation_curves, irl_curves
from irlhf.report.rewards import reward_maps
from irlhf.rl.experts import make_expert
from irlhf.rl.sb3 import one_thread

JOB = "irl"
ALGORITHMS = IRL_TABULAR
SAMPLE_ALGORITHMS = IRL_SAMPLE
MAX_SIZE = MAX_WORLD_SIZE


# -- shared by both families --------------------------------------------------------------------------------
def algorithm_module(name: str) -> Any:
    """The learner module ``irlhf.irl.<name>`` (``deep-maxent`` -> ``irlhf.irl.deep_maxent``)."""
    return importlib.import_module(f"irlhf.irl.{name.replace('-', '_')}")


def algorithm_config(module: Any, job: Any, progress: bool) -> Any:
    """The learner's Config: its defaults, then seed / progress from the job, then the --set overrides."""
    fields = {f.name for f in dataclasses.fields(module.Config)}
    values: dict[str, Any] = {}
    if "seed" in fields:
        values["seed"] = job.seed
    if "progress" in fields:
        values["progress"] = progress
    values.update(job.options)
    return module.Config.from_dict(values)


# -- tabular ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class IrlJobConfig(BaseConfig):
    """Options of ``irlhf irl`` with a tabular algorithm.

    algorithm: one of ALGORITHMS.  world: one of WORLDS.  size: grid side (size * size states).
    demos: number of expert demonstrations.  horizon: expert horizon and demo length.  discount: in (0, 1].
    continuous: objectworld's continuous distance features instead of the indicator features.
    macrocell: gridworld's k x k block features (k divides size); None = the plain gridworld.
    seed: world layout, demonstrations and the learner's seed.  options: overrides of the algorithm's Config.
    """

    algorithm: Annotated[str, OneOf(ALGORITHMS)] = "maxent"
    world: Annotated[str, OneOf(WORLDS)] = "objectworld"
    size: Annotated[int, Range(2, MAX_SIZE)] = 16
    demos: PositiveInt = 64
    horizon: PositiveInt = 8
    discount: Annotated[float, Range(0, 1, low_open=True)] = 0.9
    continuous: bool = False
    macrocell: PositiveInt | None = None
    seed: Seed = 0
    options: Overrides = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        if self.continuous and self.world != "objectworld":
            raise ValidationError(
                f"continuous=True: only objectworld has continuous features, not world={self.world!r}")
        if self.macrocell is not None:
            if self.world != "gridworld":
                raise ValidationError(f"macrocell={self.macrocell!r}: only for world='gridworld', not {self.world!r}")
            if self.macrocell > self.size:
                raise ValidationError(f"macrocell={self.macrocell!r}: expected <= {self.size}")
            if self.size % self.macrocell:
                raise ValidationError(f"macrocell={self.macrocell}: expected a divisor of size={self.size}")

    def command(self) -> str:
        """The command line that reproduces this run."""
        parts = [f"irlhf irl {self.algorithm} --world {self.world} --size {self.size} --demos {self.demos}",
                 f"--horizon {self.horizon} --discount {self.discount:g}"]
        if self.continuous:
            parts.append("--continuous")
        if self.macrocell is not None:
            parts.append(f"--macrocell {self.macrocell}")
        return " ".join(parts + set_flags(self.options) + [f"--seed {self.seed}"])


def build_world(job: IrlJobConfig) -> TabularMDP:
    """The TabularMDP of the job's world (validated by the builder)."""
    if job.world == "objectworld":
        return objectworld(job.size, discount=job.discount, continuous=job.continuous, seed=job.seed)
    if job.world == "gridworld":
        return gridworld(job.size, macrocell=job.macrocell, discount=job.discount, seed=job.seed)
    return binaryworld(job.size, discount=job.discount, seed=job.seed)


def save_weights(run: RunDir, weights: Any) -> str | None:
    """weights.npy for an array, reward_net.safetensors for a dict of named arrays; returns the file name."""
    if weights is None:
        return None
    if isinstance(weights, dict):
        save_arrays(run.file("reward_net.safetensors"), weights)
        return "reward_net.safetensors"
    run.save_array("weights.npy", np.asarray(weights))
    return "weights.npy"


def run_irl(job: IrlJobConfig, out: str = "runs", *, progress: bool = True) -> tuple[RunDir, dict[str, Any], list[str]]:
    """Validate, build, train, evaluate and write the run directory; returns (run, final metrics, summary lines)."""
    module = algorithm_module(job.algorithm)
    config = algorithm_config(module, job, progress)  # validates the overrides
    mdp = build_world(job)  # validates the world options

    t0 = time.perf_counter()
    _, _, pi_expert = soft_value_iteration(mdp, mdp.true_reward, horizon=job.horizon)
    demos = sample_trajectories(mdp, pi_expert, n=job.demos, horizon=job.horizon, seed=job.seed)
    t_train = time.perf_counter()
    result = module.train(mdp, demos, config)  # may still reject the options: the run directory comes after
    train_seconds = time.perf_counter() - t_train
    learned = np.asarray(result.reward, dtype=np.float64)

    run = RunDir.create(f"{JOB}-{job.algorithm}", out)
    run.write_json("config.json", {**job.to_dict(), "algorithm_config": config.to_dict()})
    save_trajectories(run.file("demos.npz"), demos)
    run.save_array("true_reward.npy", mdp.true_reward)
    run.save_array("learned_reward.npy", learned)
    weights_file = save_weights(run, getattr(result, "weights", None))
    history = list(getattr(result, "history", []) or [])
    for record in history:
        run.log(phase="train", **record)

    metrics = evaluate_reward(mdp, learned, demos, job.horizon)
    metrics["train_seconds"] = train_seconds
    metrics["seconds"] = time.perf_counter() - t0
    run.log(phase="final", **metrics)

    label = {"deep-maxent": "deep MaxEnt", "maxent": "MaxEnt", "mmp": "MMP"}.get(job.algorithm, job.algorithm)
    world = f"{job.size}x{job.size} {job.world}" + (" (continuous features)" if job.continuous else "") + \
        (f" (macrocell {job.macrocell})" if job.macrocell else "")
    rewards_png = "rewards.png"
    run.save_figure(rewards_png, reward_maps(mdp, [(f"learned reward, {label} (minus its mean)", learned)]))
    curves = evaluation_curves(history)
    training_png = "training.png" if curves is not None else None
    if curves is not None:
        run.save_figure(training_png, curves)

    report = Report(f"irlhf irl {job.algorithm}: {world}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(
        job.command()).table(options_table(config), header=[f"{label} option", "value"])
    report.section("Setup").text(
        f"World: {world}, {mdp.n_states} states, {mdp.n_actions} actions, {mdp.n_features} features, discount "
        f"{job.discount:g}. The expert is soft-optimal for the true reward over {job.horizon} steps; "
        f"{job.demos} demonstrations of {job.horizon} actions were sampled from it (seed {job.seed}, demos.npz)."
    )
    report.section("Result").text(
        "EVD: value of the optimal policy under the true reward minus the value (true reward) of the policy "
        "optimal for the learned reward, from the start distribution over the horizon; 0 is perfect. "
        "Log-likelihood: mean over demonstrations of sum_t log pi(a_t | s_t) for the soft-optimal policy of "
        "each reward."
    ).table([
        ["expected value difference (EVD)", metrics["evd"]],
        ["EVD of a constant reward (for scale)", metrics["evd_constant_reward"]],
        ["correlation of learned and true reward", metrics["reward_correlation"]],
        ["demo log-likelihood, learned reward", metrics["demo_log_likelihood"]],
        ["demo log-likelihood, true reward (expert)", metrics["expert_demo_log_likelihood"]],
        ["demo log-likelihood, uniform policy", metrics["uniform_demo_log_likelihood"]],
        ["training seconds", train_seconds],
    ], header=["metric", "value"])
    report.image(rewards_png, caption="Left: the true reward. Right: the learned reward minus its mean (rewards "
                 "are identified only up to a shift and scale). Objects marked by outer colour on objectworld.")
    if training_png:
        report.section("Training").image(training_png, caption="Per training evaluation: the objective and the "
                                         "gap between expert and learner statistics.")
    files = ["config.json", "metrics.jsonl", "demos.npz", "true_reward.npy", "learned_reward.npy", rewards_png]
    files += [f for f in (weights_file, training_png) if f] + ["summary.txt", "report.html"]
    summary = [
        f"irlhf irl {job.algorithm} -> {run.path}",
        f"world: {world}; {job.demos} demos x {job.horizon} steps",
        f"EVD {metrics['evd']:.4f} (constant reward {metrics['evd_constant_reward']:.4f}); reward correlation "
        f"{metrics['reward_correlation']:.3f}; demo log-likelihood {metrics['demo_log_likelihood']:.3f} "
        f"(expert {metrics['expert_demo_log_likelihood']:.3f})",
        f"time: {metrics['seconds']:.2f} s (training {train_seconds:.2f} s)",
        f"report: {run.file('report.html')}",
    ]
    report.finish(run, files, summary)
    return run, metrics, summary


def tabular_demos(text: str | None, algorithm: str) -> int:
    """--demos of a tabular algorithm: a number of demonstrations (default IrlJobConfig's)."""
    if text is None:
        return IrlJobConfig().demos
    try:
        return int(text)
    except (TypeError, ValueError):
        raise ValidationError(f"--demos {text!r}: {algorithm} is tabular and samples its demonstrations; expected "
                              "an integer number of demonstrations (a demonstrations file is for "
                              "gcl, gail, airl, iq-learn)") from None


# -- sample-based ---------------------------------------------------------------------------------------------
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
@dataclasses.dataclass(frozen=True)
class IrlEnvJobConfig(BaseConfig):
    """Options of ``irlhf irl {gcl,gail,airl,iq-learn}``.

    algorithm: one of SAMPLE_ALGORITHMS.  env: gymnasium id.  demos: path of demonstrations, or None to
    collect from the expert.  expert: scripted, ppo, dqn, sac or a model path (see make_expert).
    episodes: demos to collect when demos is None.  eval_episodes: evaluation episodes.
    seed: collection, training and evaluation seed.  options: overrides of the algorithm's Config fields.
    """

    algorithm: Annotated[str, OneOf(SAMPLE_ALGORITHMS)] = "gail"
    env: EnvId = "CartPole-v1"
    demos: DemosPath | None = None
    expert: ExpertKind = "scripted"
    episodes: PositiveInt = 4
    eval_episodes: PositiveInt = 20
    seed: Seed = 0
    options: Overrides = dataclasses.field(default_factory=dict)

    def command(self) -> str:
        """The command line that reproduces this run."""
        return demo_job_command(f"irlhf irl {self.algorithm} --env {self.env}", self)


def save_model(run: RunDir, algorithm: str, result: Any) -> list[str]:
    """The policy and reward network files of a result; returns their names."""
    if algorithm == "iq-learn":
        save_tensors(run.file("q_net.safetensors"), state_dict_tensors(result.q_net))
        files = ["q_net.safetensors"]
        if result.actor is not None:
            save_tensors(run.file("actor.safetensors"), state_dict_tensors(result.actor))
            files.append("actor.safetensors")
        else:
            save_policy(run.file("policy.safetensors"), result.policy)
            files.append("policy.safetensors")
        save_tensors(run.file("reward_net.safetensors"), state_dict_tensors(result.q_net))
        return files + ["reward_net.safetensors"]
    result.model.save(str(run.file("policy.zip")))
    if algorithm == "gcl":
        reward = state_dict_tensors(result.cost_net)
    else:
        reward = {**state_dict_tensors(result.discriminator), **state_dict_tensors(result.features, "features.")}
    save_tensors(run.file("reward_net.safetensors"), reward)
    return ["policy.zip", "reward_net.safetensors"]


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
    metrics = score_policy(job.env, result.policy, expert, job.eval_episodes, job.seed, fallback)
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
    figure = irl_curves(job.algorithm, history)
    curves = "training.png" if figure is not None else None
    if figure is not None:
        run.save_figure(curves, figure)
    files += [f for f in (curves,) if f] + ["summary.txt", "report.html"]

    label = LABELS[job.algorithm]
    source = (f"{job.demos} ({len(demos)} demonstrations)" if job.demos else
              f"{len(demos)} episodes of the {job.expert} expert (reset seeds {job.seed}..{job.seed + len(demos) - 1}, "
              "demos.npz)")
    report = Report(f"irlhf irl {job.algorithm}: {job.env}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(
        job.command()).table(options_table(config), header=[f"{label} option", "value"])
    report.section("Setup").text(
        f"Environment {job.env}. Demonstrations: {source}; {n_samples} transitions. {DESCRIPTIONS[job.algorithm]}")
    report.section("Result").text(
        f"Returns of the learned policy (deterministic actions) over {job.eval_episodes} episodes (reset seeds from "
        f"{job.seed}), under the environment's true reward. Normalised score: (learned - random) / "
        "(expert - random).").table(
        result_table(metrics) + [["training records", len(history)], ["training seconds", train_seconds]],
        header=["metric", "value"])
    if curves:
        report.section("Training").image(curves, caption="Learning curves per training record (metrics.jsonl, "
                                         "phase 'train').")
    summary = [
        f"irlhf irl {job.algorithm} -> {run.path}",
        f"env: {job.env}; demos: {len(demos)} ({n_samples} samples); {_progress_line(job.algorithm, config, history)}",
        score_line(metrics),
        f"time: {metrics['seconds']:.2f} s (training {train_seconds:.2f} s)",
        f"report: {run.file('report.html')}",
    ]
    report.finish(run, files, summary)
    return run, metrics, summary


# -- command line -----------------------------------------------------------------------------------------------
TABULAR_OPTIONS = ("world", "size", "horizon", "discount", "continuous", "macrocell")  # argparse dests
SAMPLE_OPTIONS = ("env", "expert", "episodes", "eval_episodes")


def reject_other_family(args: argparse.Namespace) -> None:
    """Options of the other family (or --episodes beside --demos PATH) would be ignored: an error instead."""
    if args.algorithm in SAMPLE_ALGORITHMS:
        reject_options(args, TABULAR_OPTIONS, f"not used by irl {args.algorithm} (a sample-based algorithm); "
                       f"expected them only with a tabular one ({', '.join(ALGORITHMS)})")
        if args.demos is not None:
            reject_options(args, ("episodes",), "not used with --demos PATH (nothing is collected)")
    else:
        reject_options(args, SAMPLE_OPTIONS, f"not used by irl {args.algorithm} (a tabular algorithm); expected "
                       f"them only with a sample-based one ({', '.join(SAMPLE_ALGORITHMS)})")


def run(args: argparse.Namespace) -> int:
    """``irlhf irl``: the sample-based job for SAMPLE_ALGORITHMS, else the tabular one."""
    reject_other_family(args)
    if args.algorithm in SAMPLE_ALGORITHMS:
        env_job = IrlEnvJobConfig(algorithm=args.algorithm, env=args.env, demos=args.demos, expert=args.expert,
                                  episodes=args.episodes, eval_episodes=args.eval_episodes, seed=args.seed,
                                  options=parse_set(args.options))
        return print_summary(run_irl_env(env_job, args.out, progress=not args.no_progress)[2])
    job = IrlJobConfig(algorithm=args.algorithm, world=args.world, size=args.size,
                       demos=tabular_demos(args.demos, args.algorithm), horizon=args.horizon,
                       discount=args.discount, continuous=args.continuous, macrocell=args.macrocell, seed=args.seed,
                       options=parse_set(args.options))
    return print_summary(run_irl(job, args.out, progress=not args.no_progress)[2])
