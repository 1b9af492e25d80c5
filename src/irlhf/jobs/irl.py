"""``irlhf irl ALGORITHM``: tabular inverse RL end to end on a classic world, with metrics and a report.

The sample-based algorithms (``irlhf irl {gcl,gail,airl,iq-learn} --env ENV``) run on a gymnasium
environment instead: see ``irlhf.jobs.irl_env``; ``run`` dispatches on the algorithm. Below: the tabular job.

    irlhf irl maxent --world objectworld --size 16 --demos 64
    irlhf irl deep-maxent --world objectworld --continuous --set hidden_sizes=[32,32] --set iterations=300
    irlhf irl maxent --world gridworld --size 16 --macrocell 4

Pipeline: build the world (seeded by --seed); the expert is the soft-optimal policy of the true
reward over --horizon steps; sample --demos demonstrations of that length (same seed); train
``irlhf.irl.<algorithm>`` (module imported by name, ``-`` -> ``_``) with its ``Config`` defaults plus
any ``--set KEY=VALUE`` (VALUE parsed as JSON, else taken as a string; ``seed`` and ``progress``
follow --seed and --no-progress when the Config has them); evaluate the learned reward.

Metrics: expected value difference (EVD: true-reward value of the optimal policy minus that of the
policy optimal for the learned reward, over the horizon from the world's start distribution),
Pearson correlation of learned and true rewards, and the demonstrations' mean log-likelihood under
the soft-optimal policy of the learned reward (all three are properties of the reward, so they
compare algorithms on equal terms), with the expert's and a constant reward's values for scale.

Artifacts in ``<out>/irl-<algorithm>-<timestamp>/``: config.json, metrics.jsonl (one line per
training evaluation, then the final metrics), true_reward.npy, learned_reward.npy, demos.npz,
the learned parameters (weights.npy, or reward_net.safetensors for a network), rewards.png (true
and learned reward side by side), training.png, summary.txt (also printed) and report.html.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

from irlhf.core.config import BaseConfig, check_choice, check_number
from irlhf.core.errors import ValidationError
from irlhf.core.rundir import RunDir
from irlhf.report import Report

JOB = "irl"
ALGORITHMS = ("apprenticeship", "mmp", "maxent", "deep-maxent")
WORLDS = ("objectworld", "gridworld", "binaryworld")
MAX_SIZE = 256  # as `irlhf demo`: objectworld's distances need O(size^4) memory


@dataclasses.dataclass(frozen=True)
class IrlJobConfig(BaseConfig):
    """Options of ``irlhf irl``.

    algorithm: one of ALGORITHMS.  world: one of WORLDS.  size: grid side (size * size states).
    demos: number of expert demonstrations, >= 1.  horizon: expert horizon and demo length, >= 1.
    discount: in (0, 1].  continuous: objectworld's continuous distance features instead of the
    indicator features.  macrocell: gridworld's k x k block features (k divides size); None = the
    plain gridworld.  seed: world layout, demonstrations and the learner's seed.
    options: overrides of the algorithm's Config fields.
    """

    algorithm: str = "maxent"
    world: str = "objectworld"
    size: int = 16
    demos: int = 64
    horizon: int = 8
    discount: float = 0.9
    continuous: bool = False
    macrocell: int | None = None
    seed: int = 0
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        check_choice("world", self.world, WORLDS)
        check_number("size", self.size, low=2, high=MAX_SIZE, integer=True)
        check_number("demos", self.demos, low=1, integer=True)
        check_number("horizon", self.horizon, low=1, integer=True)
        check_number("discount", self.discount, low=0, high=1, low_open=True)
        check_number("seed", self.seed, low=0, integer=True)
        if self.continuous and self.world != "objectworld":
            raise ValidationError(
                f"continuous=True: only objectworld has continuous features, not world={self.world!r}")
        if self.macrocell is not None:
            if self.world != "gridworld":
                raise ValidationError(f"macrocell={self.macrocell!r}: only for world='gridworld', not {self.world!r}")
            check_number("macrocell", self.macrocell, low=1, high=self.size, integer=True)
            if self.size % self.macrocell:
                raise ValidationError(f"macrocell={self.macrocell}: expected a divisor of size={self.size}")
        if not isinstance(self.options, dict):
            raise ValidationError(f"options={self.options!r}: expected a dict of Config overrides")

    def command(self) -> str:
        """The command line that reproduces this run."""
        parts = [f"irlhf irl {self.algorithm} --world {self.world} --size {self.size} --demos {self.demos}",
                 f"--horizon {self.horizon} --discount {self.discount:g}"]
        if self.continuous:
            parts.append("--continuous")
        if self.macrocell is not None:
            parts.append(f"--macrocell {self.macrocell}")
        parts += [f"--set {k}={json.dumps(v, separators=(',', ':'))}" for k, v in self.options.items()]
        parts.append(f"--seed {self.seed}")
        return " ".join(parts)


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """``["lr=0.1", "hidden_sizes=[32,32]", "optimizer=adam"]`` -> {"lr": 0.1, "hidden_sizes": [32, 32], ...}."""
    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValidationError(f"--set {item!r}: expected KEY=VALUE (e.g. --set lr=0.01)")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        options[key.strip()] = value
    return options


def algorithm_module(name: str) -> Any:
    """The learner module ``irlhf.irl.<name>`` (``deep-maxent`` -> ``irlhf.irl.deep_maxent``), imported now."""
    import importlib

    return importlib.import_module(f"irlhf.irl.{name.replace('-', '_')}")


def algorithm_config(module: Any, job: IrlJobConfig, progress: bool) -> Any:
    """The learner's Config: its defaults, then seed / progress from the job, then the --set overrides."""
    fields = {f.name for f in dataclasses.fields(module.Config)}
    values: dict[str, Any] = {}
    if "seed" in fields:
        values["seed"] = job.seed
    if "progress" in fields:
        values["progress"] = progress
    values.update(job.options)
    return module.Config.from_dict(values)


def build_world(job: IrlJobConfig) -> Any:
    """The TabularMDP of the job's world (validated by the builder)."""
    from irlhf.envs.tabular import binaryworld, gridworld, objectworld

    if job.world == "objectworld":
        return objectworld(job.size, discount=job.discount, continuous=job.continuous, seed=job.seed)
    if job.world == "gridworld":
        return gridworld(job.size, macrocell=job.macrocell, discount=job.discount, seed=job.seed)
    return binaryworld(job.size, discount=job.discount, seed=job.seed)


def evaluate_reward(mdp: Any, learned: Any, demos: list, horizon: int) -> dict[str, float]:
    """EVD, reward correlation and demo log-likelihood of a learned reward (S,) or (S, A), with references."""
    import numpy as np

    from irlhf.eval import demo_log_likelihood, expected_value_difference, reward_correlation
    from irlhf.planning import soft_value_iteration

    learned = np.asarray(learned, dtype=np.float64)
    true = mdp.true_reward
    state_learned = learned if learned.ndim == 1 else learned.mean(axis=1)
    _, _, pi_learned = soft_value_iteration(mdp, learned, horizon=horizon)
    _, _, pi_expert = soft_value_iteration(mdp, true, horizon=horizon)
    return {
        "evd": expected_value_difference(mdp, learned, horizon=horizon),
        "evd_constant_reward": expected_value_difference(mdp, np.zeros(mdp.n_states), horizon=horizon),
        "reward_correlation": reward_correlation(state_learned, true if true.ndim == 1 else true.mean(axis=1)),
        "demo_log_likelihood": demo_log_likelihood(pi_learned, demos),
        "expert_demo_log_likelihood": demo_log_likelihood(pi_expert, demos),
        "uniform_demo_log_likelihood": float(horizon * np.log(1.0 / mdp.n_actions)),
    }


def save_weights(run: RunDir, weights: Any) -> str | None:
    """weights.npy for an array, reward_net.safetensors for a dict of named arrays; returns the file name."""
    import numpy as np

    if weights is None:
        return None
    if isinstance(weights, dict):
        from safetensors.numpy import save

        from irlhf.core.io import atomic_open

        tensors = {str(k): np.ascontiguousarray(np.asarray(v)) for k, v in weights.items()}
        with atomic_open(run.file("reward_net.safetensors"), "wb") as handle:
            handle.write(save(tensors))
        return "reward_net.safetensors"
    run.save_array("weights.npy", np.asarray(weights))
    return "weights.npy"


def plot_rewards(run: RunDir, mdp: Any, learned: list[tuple[str, Any]], name: str = "rewards.png") -> str:
    """The true reward and each (title, learned reward) side by side, learned ones minus their mean (objects
    marked on objectworld); (S, A) rewards are averaged over actions. Returns the file name."""
    import numpy as np

    from irlhf.report import plots

    n = int(mdp.meta.get("n") or round(mdp.n_states**0.5))
    per_state = lambda r: r if r.ndim == 1 else r.mean(axis=1)  # noqa: E731
    fig, axes = plots.figure_row(1 + len(learned))
    plots.grid_heatmap(axes[0], per_state(mdp.true_reward), n, title="true reward", cmap="RdBu", centered=True)
    for ax, (title, reward) in zip(axes[1:], learned):
        reward = per_state(np.asarray(reward, dtype=np.float64))
        plots.grid_heatmap(ax, reward - reward.mean(), n, title=title, cmap="RdBu", centered=True)
    if mdp.meta.get("world") == "objectworld":
        for ax in axes:
            plots.mark_cells(ax, mdp.meta["object_cells"], n, mdp.meta["outer_colors"], label="outer colour {}")
    run.save_figure(name, fig)
    return name


def plot_training(run: RunDir, history: list[dict], name: str = "training.png") -> str | None:
    """Objective and the statistics gap per training evaluation, when the history records them."""
    from irlhf.report import plots

    keys = [k for k in ("objective", "visitation_gap", "feature_gap", "margin") if history and k in history[0]]
    keys = [k for k in keys if all(isinstance(r.get(k), (int, float)) for r in history)]
    if not keys:
        return None
    fig, axes = plots.figure_row(len(keys), panel_size=3.6)
    for ax, key in zip(axes, keys):
        ax.plot(range(len(history)), [r[key] for r in history], color="tab:blue")
        ax.set_xlabel("evaluation")
        ax.set_title(key.replace("_", " "), fontsize=10)
        ax.grid(alpha=0.3)
    run.save_figure(name, fig)
    return name


def run_irl(job: IrlJobConfig, out: str = "runs", *, progress: bool = True) -> tuple[RunDir, dict[str, Any], list[str]]:
    """Validate, build, train, evaluate and write the run directory; returns (run, final metrics, summary lines)."""
    import numpy as np

    module = algorithm_module(job.algorithm)
    config = algorithm_config(module, job, progress)  # validates the overrides
    mdp = build_world(job)  # validates the world options

    from irlhf.data import save_trajectories
    from irlhf.envs.tabular import sample_trajectories
    from irlhf.planning import soft_value_iteration

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
    rewards_png = plot_rewards(run, mdp, [(f"learned reward, {label} (minus its mean)", learned)])
    training_png = plot_training(run, history)

    report = Report(f"irlhf irl {job.algorithm}: {world}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(
        job.command()).table(sorted((k, json.dumps(v) if isinstance(v, (dict, list, tuple)) else v)
                                    for k, v in config.to_dict().items()), header=[f"{label} option", "value"])
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


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from irlhf.cli import add_job
    from irlhf.jobs.imitation import EXPERTS
    from irlhf.jobs.irl_env import SAMPLE_ALGORITHMS, IrlEnvJobConfig

    d, e = IrlJobConfig(), IrlEnvJobConfig()
    parser = add_job(
        subparsers, JOB, run,
        help="inverse RL: tabular (apprenticeship, mmp, maxent, deep-maxent) on a classic world, with EVD, or "
        "sample-based (gcl, gail, airl, iq-learn) on a gymnasium environment, with returns; and a report",
        description="Tabular algorithms (apprenticeship, mmp, maxent, deep-maxent): build a world, sample expert "
        "demonstrations, recover the reward, and write the learned reward, metrics (EVD, reward correlation, demo "
        "log-likelihood), plots and report.html; options --world, --size, --demos N, --horizon, --discount, "
        "--continuous, --macrocell. Sample-based algorithms (gcl, gail, airl, iq-learn): load (--demos PATH) or "
        "collect (--expert, --episodes) demonstrations on a gymnasium environment (--env), train, evaluate the "
        "learned policy against the expert and a random policy (--eval-episodes), and write the policy, the reward "
        "network, learning curves and report.html. --set, --seed, --out and --no-progress apply to both; options "
        "of the other family are ignored.",
    )
    parser.add_argument("algorithm", nargs="?", choices=ALGORITHMS + SAMPLE_ALGORITHMS, default=d.algorithm,
                        help="the IRL algorithm (module irlhf.irl.<name>): tabular "
                        f"{', '.join(ALGORITHMS)}; sample-based {', '.join(SAMPLE_ALGORITHMS)}")
    tabular = parser.add_argument_group("tabular algorithms (apprenticeship, mmp, maxent, deep-maxent)")
    tabular.add_argument("--world", choices=WORLDS, default=d.world, help="the tabular world")
    tabular.add_argument("--size", type=int, default=d.size, help="grid side length (size*size states)")
    tabular.add_argument("--horizon", type=int, default=d.horizon, help="expert horizon and demo length")
    tabular.add_argument("--discount", type=float, default=d.discount, help="discount in (0, 1]")
    tabular.add_argument("--continuous", action="store_true", help="objectworld: continuous distance features")
    tabular.add_argument("--macrocell", type=int, default=None, help="gridworld: k x k block indicator features")
    sample = parser.add_argument_group("sample-based algorithms (gcl, gail, airl, iq-learn)")
    sample.add_argument("--env", default=e.env, help="gymnasium environment id")
    sample.add_argument("--expert", default=e.expert, metavar="KIND|PATH",
                        help=f"expert to collect demos from when no --demos PATH: {', '.join(EXPERTS)} (cached, "
                        "`irlhf expert train`) or a path to an SB3 .zip / irlhf .safetensors policy")
    sample.add_argument("--episodes", type=int, default=e.episodes,
                        help="demonstrations to collect from the expert when no --demos PATH")
    sample.add_argument("--eval-episodes", type=int, default=e.eval_episodes, help="evaluation episodes")
    both = parser.add_argument_group("both")
    both.add_argument("--demos", default=None, metavar="N|PATH",
                      help=f"tabular: the number of expert demonstrations to sample (default {d.demos}); "
                      "sample-based: demonstrations to learn from (.npz, .parquet, .jsonl or a saved dataset "
                      "directory; default: collect --episodes from --expert)")
    both.add_argument("--set", dest="options", action="append", metavar="KEY=VALUE", default=None,
                      help="override a field of the algorithm's Config (VALUE as JSON), e.g. --set lr=0.01 or "
                      "--set total_timesteps=20000; repeatable")
    both.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


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


def run(args: argparse.Namespace) -> int:
    from irlhf.jobs.irl_env import SAMPLE_ALGORITHMS, IrlEnvJobConfig, run_irl_env

    if args.algorithm in SAMPLE_ALGORITHMS:
        env_job = IrlEnvJobConfig(algorithm=args.algorithm, env=args.env, demos=args.demos, expert=args.expert,
                                  episodes=args.episodes, eval_episodes=args.eval_episodes, seed=args.seed,
                                  options=parse_set(args.options))
        _, _, summary = run_irl_env(env_job, args.out, progress=not args.no_progress)
        print("\n".join(summary))
        return 0
    job = IrlJobConfig(algorithm=args.algorithm, world=args.world, size=args.size,
                       demos=tabular_demos(args.demos, args.algorithm), horizon=args.horizon,
                       discount=args.discount, continuous=args.continuous, macrocell=args.macrocell, seed=args.seed,
                       options=parse_set(args.options))
    _, _, summary = run_irl(job, args.out, progress=not args.no_progress)
    print("\n".join(summary))
    return 0
