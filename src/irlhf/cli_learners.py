"""The parsers of the jobs that learn a policy from demonstrations: ``irlhf irl``, ``irlhf bc``, ``irlhf dagger``
and ``irlhf imitate METHOD``, one command for all of them.

``irlhf imitate`` adds no job: each method's parser is built by the same functions as the command it stands for
(``irlhf bc``, ``irlhf dagger``, or the sample-based options of ``irlhf irl METHOD``) and runs the same job
function, so ``irlhf imitate gail --episodes 4`` and ``irlhf irl gail --episodes 4`` are one run. ``irlhf.cli``
lists these builders in its JOBS; like it, this module imports nothing heavy.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from irlhf.core.errors import ValidationError
from irlhf.jobs._common import EXPERTS, IRL_SAMPLE, IRL_TABULAR, SCHEDULES, TREX_NOISE_LEVELS, WORLDS

IMITATE = {  # irlhf imitate METHOD: one line each, in the order --help lists them
    "bc": "behaviour cloning: supervised learning of the demonstrated actions (= irlhf bc)",
    "dagger": "DAgger: the expert labels the states the learner visits, round after round (= irlhf dagger)",
    "sqil": "SQIL: off-policy RL, reward 1 on demonstrated transitions and 0 on its own (= irlhf irl sqil)",
    "gail": "GAIL: RL on a discriminator of expert vs policy state-actions (= irlhf irl gail)",
    "airl": "AIRL: adversarial IRL with a shaped reward f(s, a, s') (= irlhf irl airl)",
    "gcl": "guided cost learning: sample-based MaxEnt IRL with a neural cost (= irlhf irl gcl)",
    "iq-learn": "IQ-Learn: inverse soft-Q, one Q network for policy and reward; offline (= irlhf irl iq-learn)",
    "density": "RL on the log-density of a kernel density fitted to the demonstrations (= irlhf irl density)",
    "trex": "T-REX: a state reward from ranked demonstrations, then RL on it (= irlhf irl trex)",
    "drex": "D-REX: T-REX on noise-ranked rollouts of a behaviour-cloned policy (= irlhf irl drex)",
}
RANKED_HELP = ("ranked demonstrations: a directory with a folder per rank (rank_0/, rank_1/, ... of demonstration "
               "files; a larger rank is better) or one .npz with a 'ranks' array, one per trajectory; if not given, "
               "--episodes episodes of --expert are collected per --noise-levels level")
NOISE_HELP = ("without --ranked, the expert's noise levels: with probability EPS the expert acts uniformly at "
              "random; one rank per level, the noisiest rank 0")


def _cli() -> Any:
    """``irlhf.cli``, for its parser helpers (add_job, job_runner ...)."""
    from irlhf import cli  # why: irlhf.cli imports this module, so its helpers are looked up when a parser is built

    return cli


def _sample_options(group: Any, method: str | None = None) -> None:
    """--env, --expert, --episodes, --eval-episodes of the sample-based algorithms, and T-REX's --ranked and
    --noise-levels; ``method``: only its options (``irlhf imitate METHOD``), None: all (``irlhf irl``)."""
    group.add_argument("--env", default="CartPole-v1", help="gymnasium environment id")
    group.add_argument("--expert", default="scripted", metavar="KIND|PATH",
                       help="expert to collect demos from when none are given, and to score the learned policy "
                       f"against where --env has a scripted expert: {', '.join(EXPERTS)} (cached, "
                       "`irlhf expert train`) or a path to an SB3 .zip / irlhf .safetensors policy")
    episodes = {None: "not with --demos PATH; trex: per noise level, not with --ranked",
                "trex": "per noise level; not with --ranked"}.get(method, "not with --demos PATH")
    group.add_argument("--episodes", type=int, default=4,
                       help=f"demonstrations to collect from the expert ({episodes})")
    group.add_argument("--eval-episodes", type=int, default=20, help="evaluation episodes")
    if method in (None, "trex"):
        trex = "trex: " if method is None else ""
        group.add_argument("--ranked", default=None, metavar="PATH", help=trex + RANKED_HELP)
        group.add_argument("--noise-levels", type=float, nargs="+", default=TREX_NOISE_LEVELS, metavar="EPS",
                           help=f"{trex}{NOISE_HELP}")


def irl(subparsers: Any) -> None:
    cli = _cli()
    parser = cli.add_job(
        subparsers, "irl", cli.job_runner("irl"),
        help="inverse RL: tabular (apprenticeship, mmp, maxent, deep-maxent) on a classic world, with EVD, or "
        f"sample-based ({', '.join(IRL_SAMPLE)}) on a gymnasium environment, with returns; and a report",
        description="Tabular algorithms (apprenticeship, mmp, maxent, deep-maxent): build a world, sample expert "
        "demonstrations, recover the reward, and write the learned reward, metrics (EVD, reward correlation, demo "
        "log-likelihood), plots and report.html; options --world, --size, --demos N, --horizon, --discount, "
        f"--continuous, --macrocell. Sample-based algorithms ({', '.join(IRL_SAMPLE)}): load (--demos PATH; trex: "
        "--ranked PATH) or collect (--expert, --episodes) demonstrations on a gymnasium environment (--env), train, "
        "evaluate the learned policy against the expert and a random policy (--eval-episodes), and write the "
        "policy, the reward network, learning curves and report.html. --set, --seed, --out and --no-progress apply "
        "to both; an option of the other family is an error.",
    )
    parser.add_argument("algorithm", nargs="?", choices=IRL_TABULAR + IRL_SAMPLE, default="maxent",
                        help="the IRL algorithm (module irlhf.irl.<name>; sqil: irlhf.imitation.sqil): tabular "
                        f"{', '.join(IRL_TABULAR)}; sample-based {', '.join(IRL_SAMPLE)}")
    tabular = parser.add_argument_group("tabular algorithms (apprenticeship, mmp, maxent, deep-maxent)")
    tabular.add_argument("--world", choices=WORLDS, default="objectworld", help="the tabular world")
    tabular.add_argument("--size", type=int, default=16, help="grid side length (size*size states)")
    tabular.add_argument("--horizon", type=int, default=8, help="expert horizon and demo length")
    tabular.add_argument("--discount", type=float, default=0.9, help="discount in (0, 1]")
    tabular.add_argument("--continuous", action="store_true", help="objectworld: continuous distance features")
    tabular.add_argument("--macrocell", type=int, default=None, help="gridworld: k x k block indicator features")
    _sample_options(parser.add_argument_group(f"sample-based algorithms ({', '.join(IRL_SAMPLE)})"))
    both = parser.add_argument_group("both")
    both.add_argument("--demos", default=None, metavar="N|PATH",
                      help="tabular: the number of expert demonstrations to sample (64 if not given); "
                      "sample-based but trex: demonstrations to learn from (.npz, .parquet, .jsonl or a saved dataset "
                      "directory; if not given, --episodes are collected from --expert)")
    cli.set_option(both, "override a field of the algorithm's Config (VALUE as JSON), e.g. --set lr=0.01 or "
                   "--set total_timesteps=20000; repeatable")
    cli.no_progress(both)


def _demos_option(parser: Any) -> Any:
    return parser.add_argument("--demos", default=None, metavar="PATH",
                               help="demonstrations: .npz, .parquet, .jsonl or a saved dataset directory")


def _gym_options(parser: Any) -> None:
    """--env, --eval-episodes, --set and --no-progress of bc and dagger."""
    cli = _cli()
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium environment id")
    parser.add_argument("--eval-episodes", type=int, default=20, help="evaluation episodes")
    cli.set_option(parser, "override a Config field (VALUE as JSON), e.g. --set epochs=20; repeatable")
    cli.no_progress(parser)


def _bc_options(parser: Any) -> None:
    _gym_options(parser)
    source = parser.add_mutually_exclusive_group()
    _demos_option(source)
    source.add_argument("--expert", default="scripted", metavar="KIND|PATH",
                        help="expert to collect demos from: scripted, ppo, dqn, sac (cached, `irlhf expert train`) "
                        "or a path to an SB3 .zip / irlhf .safetensors policy")
    parser.add_argument("--episodes", type=int, default=4,
                        help="demonstrations to collect from the expert (not with --demos)")


def _dagger_options(parser: Any) -> None:
    _gym_options(parser)
    parser.add_argument("--rounds", type=int, default=10, help="DAgger rounds")
    parser.add_argument("--episodes-per-round", type=int, default=4, help="mixture-policy rollouts per round")
    parser.add_argument("--schedule", choices=SCHEDULES, default="linear", help="beta schedule")
    parser.add_argument("--expert", default="scripted", metavar="KIND|PATH",
                        help="the expert: scripted, ppo, dqn, sac (cached, `irlhf expert train`), a path to an "
                        "SB3 .zip / irlhf .safetensors policy, or web (people, on the labelling page the job serves)")
    _cli().add_server_options(parser, live=True)


BC_DESCRIPTION = ("Load (--demos) or collect expert demonstrations, fit a policy by behaviour cloning "
                  "(irlhf.imitation.bc), evaluate it against the expert and a random policy, and write the policy, "
                  "metrics, learning curve and report.html.")
DAGGER_DESCRIPTION = ("Run DAgger (irlhf.imitation.dagger): roll out the expert/learner mixture, label visited "
                      "states with the expert, retrain by behaviour cloning each round; evaluate and write the "
                      "policy, per-round metrics, plot and report.html. --set bc.KEY=VALUE sets a per-round "
                      "behaviour-cloning option.")


def bc(subparsers: Any) -> None:
    cli = _cli()
    _bc_options(cli.add_job(subparsers, "bc", cli.job_runner("imitation", "run_bc_command"),
                            help="behaviour cloning on a gymnasium environment, with evaluation and a report",
                            description=BC_DESCRIPTION))


def dagger(subparsers: Any) -> None:
    cli = _cli()
    _dagger_options(cli.add_job(subparsers, "dagger", cli.job_runner("imitation", "run_dagger_command"),
                                help="DAgger with an expert (scripted or SB3-trained) on a gymnasium environment, "
                                "with a report", description=DAGGER_DESCRIPTION))


def _unknown_method_is_an_error(parser: argparse.ArgumentParser) -> None:
    """``irlhf imitate NAME`` with an unknown NAME: one ``irlhf: error:`` line naming it (not argparse's usage)."""
    usage_error = parser.error

    def error(message: str) -> None:
        found = re.search(r"invalid choice: (.+?) \(choose from", message)
        if found is None:
            usage_error(message)
        raise ValidationError(f"imitate {found.group(1)}: unknown method; expected one of {', '.join(IMITATE)}")

    parser.error = error  # type: ignore[method-assign]


def imitate(subparsers: Any) -> None:
    cli = _cli()
    parser = subparsers.add_parser(
        "imitate", help=f"learn a policy from demonstrations by any method: {', '.join(IMITATE)}",
        description="One command for learning a policy from demonstrations: `irlhf imitate METHOD` takes the "
        "options of, and runs the same job as, `irlhf bc`, `irlhf dagger` or `irlhf irl METHOD`, and writes the same "
        "run directory. `irlhf imitate METHOD --help`: its options.", formatter_class=cli.HelpFormatter)
    methods = parser.add_subparsers(title="methods", dest="method", metavar="<method>", required=True)
    _unknown_method_is_an_error(parser)
    for method, help in IMITATE.items():
        if method == "bc":
            _bc_options(cli.add_job(methods, method, cli.job_runner("imitation", "run_bc_command"), help=help,
                                    description=BC_DESCRIPTION))
            continue
        if method == "dagger":
            _dagger_options(cli.add_job(methods, method, cli.job_runner("imitation", "run_dagger_command"),
                                        help=help, description=DAGGER_DESCRIPTION))
            continue
        p = cli.add_job(methods, method, cli.job_runner("irl"), help=help,
                        description=f"{help[:1].upper()}{help[1:]}: see `irlhf irl --help`; writes "
                        f"<out>/irl-{method}-<timestamp>/.")
        p.set_defaults(algorithm=method)
        _sample_options(p, method)
        if method != "trex":
            _demos_option(p).help += " (if not given, --episodes are collected from --expert)"
        cli.set_option(p, "override a field of the method's Config (VALUE as JSON), e.g. --set "
                       "total_timesteps=20000; repeatable")
        cli.no_progress(p)
