"""``irlhf irl ALGORITHM``: inverse RL end to end, with metrics and a report. Tabular algorithms
(apprenticeship, mmp, maxent, deep-maxent) recover a reward on a classic world and are scored by EVD; the
sample-based ones (gcl, gail, airl, iq-learn, sqil, density, trex, drex) learn on a gymnasium environment from
demonstrations and are scored by the learned policy's returns. ``run`` dispatches on the algorithm;
``irlhf imitate METHOD`` runs the sample-based ones through the same ``run``.

    irlhf irl maxent --world objectworld --size 16 --demos 64
    irlhf irl deep-maxent --world objectworld --continuous --set hidden_sizes=[32,32] --set iterations=300
    irlhf irl maxent --world gridworld --size 16 --macrocell 4
    irlhf irl gail --env CartPole-v1 --episodes 4 --set total_timesteps=50000
    irlhf irl airl --env Pendulum-v1 --expert scripted --set algo=sac --set total_timesteps=20000
    irlhf irl iq-learn --env CartPole-v1 --demos demos.npz --set updates=3000          # offline
    irlhf irl iq-learn --env CartPole-v1 --set online=true --set env_steps=20000         # online
    irlhf irl sqil --env CartPole-v1 --episodes 4 --set total_timesteps=50000           # DQN; Box actions: SAC
    irlhf irl density --env CartPole-v1 --demos demos.npz --set density_type=state_state
    irlhf irl trex --env CartPole-v1 --ranked ranked/        # ranked/rank_0/*.npz, ranked/rank_1/ ... (larger: better)
    irlhf irl trex --env CartPole-v1 --episodes 4 --noise-levels 1 0.9 0.8 0.7 0.6     # ranks from a noisy expert
    irlhf irl drex --env CartPole-v1 --demos demos.npz --set total_timesteps=50000

The learner is ``irlhf.irl.<algorithm>`` (``-`` -> ``_``; sqil: ``irlhf.imitation.sqil``) with its ``Config``
defaults, then ``seed`` / ``progress`` from --seed / --no-progress when the Config has them, then
``--set KEY=VALUE`` (VALUE parsed as JSON, else a string; unknown keys are an error).

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
offline by default (``updates`` gradient steps), ``--set online=true`` makes it act for ``env_steps`` steps;
SQIL trains SB3 DQN (Discrete actions) or SAC (Box) on reward 1 for demonstrated, 0 for own transitions; density
runs PPO, started from behaviour cloning (or SAC), on the demonstrations' kernel log-density; D-REX clones the
demonstrations, ranks noisy rollouts of the clone and runs T-REX on them, its PPO started from the clone. T-REX learns from ranked demonstrations: ``--ranked PATH``
(``irlhf.irl.trex.load_ranked``: a directory with a folder per rank, ``rank_0/``, ``rank_1/``, ... of
demonstration files, or one .npz with a "ranks" array; a larger rank is better), else ``--episodes`` episodes of
``--expert`` per ``--noise-levels`` epsilon (with probability epsilon a uniformly random action; the noisiest
level is rank 0, as in benchmarks/trex_cartpole.py); the ranks read are printed and in summary.txt. Demonstrations
of another observation shape than --env's are an error naming the file.
Evaluation (``irlhf.eval.returns.score_policy``): the learned policy's mean / std return over --eval-episodes
episodes, the expert's (without a scripted expert for --env and with --demos: the demonstrations' mean return;
T-REX with --ranked: the best rank's) and a random policy's, and the normalised score (learned - random) /
(expert - random). Artifacts in ``<out>/irl-<algorithm>-<timestamp>/``: config.json, metrics.jsonl (phase
"train" records, T-REX / D-REX "reward" then "rl" ones, then "final"), the policy (gail / airl / gcl / sqil /
density / trex / drex: SB3's ``policy.zip``; iq-learn: ``q_net.safetensors`` plus ``policy.safetensors`` for
Discrete actions or ``actor.safetensors`` for Box actions), ``reward_net.safetensors`` (discriminator / cost
network / Q network / T-REX's r(s); the adversarial discriminator's input normalisation under ``features.``; none
for sqil and density), D-REX's ``bc_policy.safetensors``, demos.npz (when collected; T-REX: ``ranked/``, a folder
per rank), training.png, T-REX / D-REX's reward_fit.png, summary.txt and report.html.

Everything (validation, loading or collecting, training, evaluation) happens before the run directory is made,
so bad input is one ``irlhf: error:`` line, exit code 2, and no run directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from irlhf.core.config import BaseConfig, Check, OneOf, PositiveInt, Range, Seed
from irlhf.core.errors import ValidationError
from irlhf.core.rundir import RunDir
from irlhf.data import load_demos, save_trajectories
from irlhf.data.demos import check_observation_shapes
from irlhf.envs.gym import SCRIPTED_EXPERTS, collect_demos
from irlhf.envs.tabular import TabularMDP, binaryworld, gridworld, objectworld, sample_trajectories
from irlhf.eval import evaluate_reward
from irlhf.eval.returns import score_policy
from irlhf.envs.spaces import resolve_spaces
from irlhf.jobs._common import (IRL_SAMPLE, IRL_TABULAR, MAX_WORLD_SIZE, TREX_NOISE_LEVELS, WORLDS, DemosPath, EnvId,
                                ExpertKind, Overrides, demo_job_command, fmt, options_table, parse_set, print_summary,
                                reject_options, result_table, score_line, set_flags)
from irlhf.nn.policies import save_policy
from irlhf.planning import soft_value_iteration
from irlhf.report import Report
from irlhf.report.artifacts import save_arrays, save_tensors, state_dict_tensors
from irlhf.report.curves import REWARD_FIT_CURVES, evaluation_curves, irl_curves, learning_curves
from irlhf.report.rewards import reward_maps
from irlhf.rl.experts import make_expert
from irlhf.rl.sb3 import one_thread

JOB = "irl"
ALGORITHMS = IRL_TABULAR
SAMPLE_ALGORITHMS = IRL_SAMPLE
MAX_SIZE = MAX_WORLD_SIZE


# -- shared by both families --------------------------------------------------------------------------------
MODULES = {"sqil": "irlhf.imitation.sqil"}  # learners outside irlhf.irl


def algorithm_module(name: str) -> Any:
    """The learner module ``irlhf.irl.<name>`` (``deep-maxent`` -> ``irlhf.irl.deep_maxent``), or MODULES[name]."""
    return importlib.import_module(MODULES.get(name, f"irlhf.irl.{name.replace('-', '_')}"))


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
                              f"{', '.join(SAMPLE_ALGORITHMS)})") from None


# -- sample-based ---------------------------------------------------------------------------------------------
LABELS = {"gcl": "GCL", "gail": "GAIL", "airl": "AIRL", "iq-learn": "IQ-Learn", "sqil": "SQIL", "density": "density",
          "trex": "T-REX", "drex": "D-REX"}
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
    "sqil": "SQIL (Reddy, Dragan & Levine 2020): off-policy RL (SB3 DQN for Discrete actions, SAC for Box) on a "
            "constant reward, 1 on the demonstrations' transitions and 0 on the agent's own, every replay batch "
            "mixing the two; the environment's reward is never used (irlhf.imitation.sqil). No reward network.",
    "density": "Density-based imitation (the imitation library's DensityAlgorithm, Gleave et al. 2022): a Gaussian "
               "kernel density of the demonstrations' rows, its floored log-density as a fixed reward, and an SB3 "
               "policy trained by RL on it (irlhf.irl.density). The reward is no network: irlhf.irl.density."
               "fit_reward rebuilds it from the demonstrations and the options below.",
    "trex": "T-REX (Brown, Goo, Nagarajan & Niekum 2019): a state reward r(s) (an MLP) fitted so that its sums over "
            "snippets explain the ranking (Bradley-Terry on snippet pairs from trajectories of different ranks, a "
            "larger rank is better), then an SB3 policy trained by RL on it (irlhf.irl.trex).",
    "drex": "D-REX (Brown, Goo & Niekum 2019): behaviour cloning of the demonstrations, rollouts of the cloned "
            "policy at several epsilon-noise levels ranked by noise (less noise = better, the demonstrations on "
            "top), then T-REX on that ranking (irlhf.irl.drex).",
}
RANKED = ("trex", "drex")  # results with a reward_net and the ranking learned from (irlhf.irl.trex.Result)


def _is_noise_levels(value: Any) -> bool:
    return (isinstance(value, (tuple, list)) and len(value) >= 2 and len(set(value)) == len(value)
            and all(not isinstance(v, bool) and isinstance(v, (int, float)) and 0 <= v <= 1 for v in value))


@dataclasses.dataclass(frozen=True)
class IrlEnvJobConfig(BaseConfig):
    """Options of ``irlhf irl {gcl,gail,airl,iq-learn,sqil,density,trex,drex}``.

    algorithm: one of SAMPLE_ALGORITHMS.  env: gymnasium id.  demos: path of demonstrations, or None to
    collect from the expert (not for trex).  expert: scripted, ppo, dqn, sac or a model path (see make_expert).
    episodes: demos to collect when demos is None (trex: per noise level).  eval_episodes: evaluation episodes.
    seed: collection, training and evaluation seed.  options: overrides of the algorithm's Config fields.
    ranked (trex only): ranked demonstrations, a directory per rank or one .npz with a "ranks" array
    (``irlhf.irl.trex.load_ranked``); None = collect ``episodes`` episodes of the expert per ``noise_levels``
    epsilon (with probability epsilon a uniformly random action; the noisiest level is rank 0).
    """

    algorithm: Annotated[str, OneOf(SAMPLE_ALGORITHMS)] = "gail"
    env: EnvId = "CartPole-v1"
    demos: DemosPath | None = None
    expert: ExpertKind = "scripted"
    episodes: PositiveInt = 4
    eval_episodes: PositiveInt = 20
    seed: Seed = 0
    options: Overrides = dataclasses.field(default_factory=dict)
    ranked: DemosPath | None = None
    noise_levels: Annotated[tuple, Check(_is_noise_levels, "at least two distinct numbers in [0, 1]")] = \
        TREX_NOISE_LEVELS

    def validate(self) -> None:
        object.__setattr__(self, "noise_levels", tuple(float(v) for v in self.noise_levels))
        if self.ranked is not None and self.algorithm != "trex":
            raise ValidationError(f"ranked={self.ranked!r}: only irl trex learns from ranked demonstrations; "
                                  f"expected --demos PATH for irl {self.algorithm}")
        if self.algorithm == "trex" and self.demos is not None:
            raise ValidationError(f"demos={self.demos!r}: irl trex learns from ranked demonstrations; expected "
                                  "--ranked PATH (a directory per rank or one .npz with ranks), or neither to "
                                  "collect from --expert at --noise-levels (irl drex ranks unranked demos itself)")

    def command(self) -> str:
        """The command line that reproduces this run."""
        head = f"irlhf irl {self.algorithm} --env {self.env}"
        if self.algorithm != "trex":
            return demo_job_command(head, self)
        source = (f"--ranked {self.ranked}" if self.ranked else f"--expert {self.expert} --episodes {self.episodes} "
                  f"--noise-levels {' '.join(f'{v:g}' for v in self.noise_levels)}")
        return " ".join([head, source, f"--eval-episodes {self.eval_episodes}", *set_flags(self.options),
                         f"--seed {self.seed}"])


def save_model(run: RunDir, algorithm: str, result: Any) -> list[str]:
    """The policy and reward network files of a result (and D-REX's behaviour-cloning policy); their names."""
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
    if algorithm in ("sqil", "density"):  # a constant reward; a kernel density of the demonstrations
        return ["policy.zip"]
    if algorithm == "gcl":
        reward = state_dict_tensors(result.cost_net)
    elif algorithm in RANKED:
        reward = state_dict_tensors(result.reward_net)
    else:
        reward = {**state_dict_tensors(result.discriminator), **state_dict_tensors(result.features, "features.")}
    save_tensors(run.file("reward_net.safetensors"), reward)
    if algorithm != "drex":
        return ["policy.zip", "reward_net.safetensors"]
    save_policy(run.file("bc_policy.safetensors"), result.bc_policy)
    return ["policy.zip", "reward_net.safetensors", "bc_policy.safetensors"]


def _progress_line(algorithm: str, config: Any, result: Any) -> str:
    history = list(result.history or [])
    if algorithm in RANKED:
        fit = [r for r in history if r.get("phase") == "reward"]
        rl = [r for r in history if r.get("phase") == "rl"]
        held_out = fit[-1]["val_accuracy"] if fit else None
        return (f"reward fitted {len(fit)} epochs, loss {fit[-1]['loss'] if fit else float('nan'):.3f}, held-out pair "
                f"accuracy {fmt(held_out)}; {config.algo} on the learned reward, "
                f"{rl[-1]['timesteps'] if rl else 0} steps")
    last = history[-1] if history else {}
    if not history:
        unit = ("update" if algorithm == "iq-learn" else "round" if algorithm in ("gail", "airl") else
                "iteration" if algorithm == "gcl" else "log_every")
        return f"no training record (the run was shorter than one {unit} or one log_every)"
    if algorithm in ("gail", "airl"):
        return (f"{config.algo} generator, {last.get('timesteps', 0)} steps, {last.get('round', 0)} rounds; "
                f"discriminator loss {last.get('disc_loss', float('nan')):.3f}")
    if algorithm == "gcl":
        return (f"{config.algo} generator, {last.get('timesteps', 0)} steps, {last.get('iteration', 0)} iterations; "
                f"IOC loss {last.get('ioc_loss', float('nan')):.3f}")
    if algorithm == "sqil":
        return (f"{result.algo} agent, {last['timesteps']} steps; mean Q on the demonstrations "
                f"{fmt(last['demo_q'])}, on its own steps {fmt(last['agent_q'])}")
    if algorithm == "density":
        return (f"{config.algo} on the log-density reward (bandwidth {result.bandwidth:.3g}), {last['timesteps']} "
                f"steps; mean log-density {last['mean_log_density']:.2f}")
    mode = f"online, {last.get('env_steps', 0)} env steps" if config.online else "offline"
    return f"{mode}, {last.get('update', 0)} updates; loss {last.get('loss', float('nan')):.4f}"


def ranked_demos(job: IrlEnvJobConfig, expert: Any) -> Any:
    """T-REX's ``RankedDemos``: ``job.ranked`` read by ``trex.load_ranked``, else ``job.episodes`` episodes of the
    expert per noise level (``drex.noise_rollouts``: reset seeds seed, seed + 1, ...; the noisiest level rank 0)."""
    from irlhf.irl import drex, trex  # why: torch and SB3 only for these two algorithms

    if job.ranked is None:
        return drex.noise_rollouts(job.env, expert, job.noise_levels, job.episodes, seed=job.seed)
    try:
        return trex.load_ranked(job.ranked)
    except ValidationError as exc:  # name the option: ranked='PATH' (load_ranked says path='PATH')
        named = f"ranked={job.ranked!r}"
        message = str(exc).replace(f"path={str(Path(job.ranked))!r}", named, 1)
        raise ValidationError(message if named in message else f"{named}: {message}") from None


def run_irl_env(job: IrlEnvJobConfig, out: str = "runs", *,
                progress: bool = True) -> tuple[RunDir, dict[str, Any], list[str]]:
    """Validate, load or collect demos, train, evaluate, then write the run directory."""
    module = algorithm_module(job.algorithm)
    config = algorithm_config(module, job, progress)  # validates the overrides
    if job.algorithm in RANKED and config.total_timesteps == 0:
        raise ValidationError(f"total_timesteps=0: irl {job.algorithm} would fit the reward only, but the job "
                              "evaluates the policy; expected total_timesteps > 0 (or none: the rl-zoo budget)")
    obs_space, _ = resolve_spaces(job.env)  # unknown env -> ValidationError
    collects = job.demos is None and job.ranked is None
    try:
        expert = (make_expert(job.env, seed=job.seed, kind=job.expert)
                  if (collects or job.env in SCRIPTED_EXPERTS) else None)
    except ValidationError as exc:
        if job.algorithm != "trex" or not collects:
            raise
        raise ValidationError(f"{exc}; without an expert to rank at --noise-levels, irl trex needs --ranked PATH "
                              "(a directory per rank or one .npz with ranks)") from None
    t0 = time.perf_counter()
    ranked = None
    if job.algorithm == "trex":
        ranked = ranked_demos(job, expert)
        demos = list(ranked.trajectories)
        reference = ranked.by_rank()[ranked.ranks.tolist()[-1]]  # the best rank: the expert's stand-in
    elif job.demos is not None:
        demos = reference = load_demos(job.demos)
        if not demos:
            raise ValidationError(f"demos={job.demos!r}: holds no trajectories; expected at least one")
    else:
        demos = reference = collect_demos(job.env, expert, n_episodes=job.episodes, seed=job.seed)
    if not collects:
        check_observation_shapes(demos, obs_space, job.env, f"ranked={job.ranked!r}" if job.ranked else
                           f"demos={job.demos!r}")
    t_train = time.perf_counter()
    with one_thread():  # small networks: extra threads only contend
        result = module.train(job.env, ranked if ranked is not None else demos, config)  # misfit demos: an error
    train_seconds = time.perf_counter() - t_train
    demo_returns = [float(t.rews.sum()) for t in demos if t.rews is not None]
    reference_returns = [float(t.rews.sum()) for t in reference if t.rews is not None]
    fallback = float(np.mean(reference_returns)) if reference_returns and expert is None else None
    metrics = score_policy(job.env, result.policy, expert, job.eval_episodes, job.seed, fallback)
    history = list(result.history or [])
    n_samples = int(sum(len(t) for t in demos))
    metrics.update(n_samples=n_samples, n_demos=len(demos),
                   demo_return_mean=float(np.mean(demo_returns)) if demo_returns else None,
                   train_records=len(history), train_seconds=train_seconds, seconds=time.perf_counter() - t0)
    if job.algorithm in RANKED:
        from irlhf.irl import trex  # why: torch and SB3 only for these two algorithms

        metrics.update(trex.ranking_summary(result))

    run = RunDir.create(f"{JOB}-{job.algorithm}", out)
    run.write_json("config.json", {**job.to_dict(), "algorithm_config": config.to_dict()})
    for record in history:
        run.log(**{"phase": "train", **record})  # T-REX / D-REX records keep their own phase: reward, rl
    run.log(phase="final", **metrics)
    files = ["config.json", "metrics.jsonl", *save_model(run, job.algorithm, result)]
    if job.algorithm == "trex" and job.ranked is None:
        from irlhf.irl import trex  # why: torch and SB3 only for these two algorithms

        trex.save_ranked(run.file("ranked"), ranked)
        files.append("ranked/")
    elif collects:
        save_trajectories(run.file("demos.npz"), demos)
        files.append("demos.npz")
    figures = {"training.png": irl_curves(job.algorithm, history)}
    if job.algorithm in RANKED:
        figures["reward_fit.png"] = learning_curves(history, *REWARD_FIT_CURVES)
    figures = {name: figure for name, figure in figures.items() if figure is not None}
    for name, figure in figures.items():
        run.save_figure(name, figure)
    files += [*figures, "summary.txt", "report.html"]

    label = LABELS[job.algorithm]
    if job.algorithm == "trex":
        levels = ", ".join(f"rank {k}: epsilon {v:g}" for k, v in enumerate(sorted(job.noise_levels, reverse=True)))
        source = (f"{job.ranked}, {ranked.summary}" if job.ranked else
                  f"{job.episodes} episodes of the {job.expert} expert per noise level, with probability epsilon a "
                  f"uniformly random action ({levels}; reset seeds {job.seed}..{job.seed + job.episodes - 1}, "
                  f"ranked/ holds them, a folder per rank); {ranked.summary}")
    else:
        source = (f"{job.demos} ({len(demos)} demonstrations)" if job.demos else
                  f"{len(demos)} episodes of the {job.expert} expert (reset seeds {job.seed}.."
                  f"{job.seed + len(demos) - 1}, demos.npz)")
    report = Report(f"irlhf irl {job.algorithm}: {job.env}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(
        job.command()).table(options_table(config), header=[f"{label} option", "value"])
    report.section("Setup").text(
        f"Environment {job.env}. Demonstrations: {source}; {n_samples} transitions. {DESCRIPTIONS[job.algorithm]}")
    rows = result_table(metrics) + [["training records", len(history)], ["training seconds", train_seconds]]
    if job.algorithm in RANKED:
        rows += [[f"learned vs true return over the ranked trajectories, {k}", fmt(metrics.get(f"ranked_return_{k}"),
                                                                                   ".3f")]
                 for k in ("pearson", "spearman")]
    report.section("Result").text(
        f"Returns of the learned policy (deterministic actions) over {job.eval_episodes} episodes (reset seeds from "
        f"{job.seed}), under the environment's true reward. Normalised score: (learned - random) / "
        "(expert - random)" + ("; without an expert for the environment, the best rank's mean return stands for "
                               "it." if ranked is not None else ".")).table(rows, header=["metric", "value"])
    if "training.png" in figures:
        report.section("Training").image("training.png", caption="Learning curves per training record "
                                         "(metrics.jsonl, phase 'train' or 'rl').")
    if "reward_fit.png" in figures:
        report.section("Reward fit").image("reward_fit.png", caption="Snippet Bradley-Terry loss and the share of "
                                           "pairs ordered right, per epoch (training and held-out pairs).")
    ranking = []  # which ranks T-REX read (D-REX: made)
    if ranked is not None:
        ranking = [f"ranked: {job.ranked or f'--noise-levels of the {job.expert} expert, ranked/'}; {ranked.summary}"]
    elif job.algorithm == "drex":
        ranking = [f"D-REX's ranking (noise levels, the demonstrations on top): {result.ranked.summary}"]
    summary = [
        f"irlhf irl {job.algorithm} -> {run.path}",
        *ranking,
        f"env: {job.env}; demos: {len(demos)} ({n_samples} samples); {_progress_line(job.algorithm, config, result)}",
        score_line(metrics),
        f"time: {metrics['seconds']:.2f} s (training {train_seconds:.2f} s)",
        f"report: {run.file('report.html')}",
    ]
    report.finish(run, files, summary)
    return run, metrics, summary


# -- command line -----------------------------------------------------------------------------------------------
TABULAR_OPTIONS = ("world", "size", "horizon", "discount", "continuous", "macrocell")  # argparse dests
SAMPLE_OPTIONS = ("env", "expert", "episodes", "eval_episodes")
TREX_OPTIONS = ("ranked", "noise_levels")


def reject_other_family(args: argparse.Namespace) -> None:
    """Options of the other family (or --episodes beside --demos PATH, T-REX's options for another algorithm)
    would be ignored: an error instead."""
    if args.algorithm in SAMPLE_ALGORITHMS:
        reject_options(args, TABULAR_OPTIONS, f"not used by irl {args.algorithm} (a sample-based algorithm); "
                       f"expected them only with a tabular one ({', '.join(ALGORITHMS)})")
        if args.algorithm != "trex":
            reject_options(args, TREX_OPTIONS, f"not used by irl {args.algorithm}; expected them only with irl trex")
        elif getattr(args, "ranked", None) is not None:
            reject_options(args, ("episodes", "noise_levels"), "not used with --ranked PATH (nothing is collected)")
        if getattr(args, "demos", None) is not None:
            reject_options(args, ("episodes",), "not used with --demos PATH (nothing is collected)")
    else:
        reject_options(args, SAMPLE_OPTIONS + TREX_OPTIONS, f"not used by irl {args.algorithm} (a tabular algorithm); "
                       f"expected them only with a sample-based one ({', '.join(SAMPLE_ALGORITHMS)})")


def run(args: argparse.Namespace) -> int:
    """``irlhf irl`` (and ``irlhf imitate`` with an IRL method): the sample-based job for SAMPLE_ALGORITHMS, else
    the tabular one. ``irlhf imitate``'s parsers hold only their method's options: absent ones take the defaults."""
    reject_other_family(args)
    if args.algorithm in SAMPLE_ALGORITHMS:
        env_job = IrlEnvJobConfig(algorithm=args.algorithm, env=args.env, demos=getattr(args, "demos", None),
                                  expert=args.expert, episodes=args.episodes, eval_episodes=args.eval_episodes,
                                  seed=args.seed, options=parse_set(args.options), ranked=getattr(args, "ranked", None),
                                  noise_levels=getattr(args, "noise_levels", TREX_NOISE_LEVELS))
        return print_summary(run_irl_env(env_job, args.out, progress=not args.no_progress)[2])
    job = IrlJobConfig(algorithm=args.algorithm, world=args.world, size=args.size,
                       demos=tabular_demos(args.demos, args.algorithm), horizon=args.horizon,
                       discount=args.discount, continuous=args.continuous, macrocell=args.macrocell, seed=args.seed,
                       options=parse_set(args.options))
    return print_summary(run_irl(job, args.out, progress=not args.no_progress)[2])
