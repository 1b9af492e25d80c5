"""Plumbing shared by the job modules: option tables, ``--set`` parsing, config field types, score lines
and report tables, printing.

``irlhf.cli`` imports this module to build the parser (choices, defaults), so it imports nothing heavy:
the standard library and ``irlhf.core`` at module level, nothing that pulls in torch, gymnasium or matplotlib.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Annotated, Any

from irlhf.core.config import Check
from irlhf.core.errors import ValidationError

# -- option tables (the parser's choices and the job configs' constraints) --------------------------------
WEB = "web"  # the choice that makes prefs rl / dagger / tamer ask people through the labelling page
EXPERTS = ("scripted", "ppo", "dqn", "sac")  # --expert: one of these, or a path to an SB3 .zip / irlhf .safetensors
SCHEDULES = ("linear", "exponential", "constant")  # DAgger's beta schedules
IRL_TABULAR = ("apprenticeship", "mmp", "maxent", "deep-maxent")
IRL_SAMPLE = ("gcl", "gail", "airl", "iq-learn", "sqil", "density", "trex", "drex")  # sqil: irlhf.imitation.sqil
# irl trex without --ranked: epsilon of the noisy expert per rank 0, 1, ... (benchmarks/trex_cartpole.py's levels)
TREX_NOISE_LEVELS = (1.0, 0.9, 0.8, 0.7, 0.6)
WORLDS = ("objectworld", "gridworld", "binaryworld")
MAX_WORLD_SIZE = 256  # objectworld's nearest-object distances take O(size^4) memory; 256 already needs ~1 GB
PREF_MODELS = ("auto", "bradley-terry", "plackett-luce")
LABELLERS = ("oracle", "mistake", "noisy", "skip", "myopic", "equal")  # = irlhf.preference.labellers.LABELLERS
LABELLER_CHOICES = (*LABELLERS, WEB)  # synthetic teachers, or people through the labelling page
TAMER_TRAINERS = ("synthetic", WEB)
TAMER_TRAINER_OPTIONS = ("p", "noise", "delay_min", "delay_max", "tol", "grid")
EXPERT_ACTIONS = ("train", "eval", "list")
SB3_ALGOS = ("ppo", "dqn", "sac")
LLM_TRAINERS = ("sft", "reward", "dpo", "simpo", "orpo", "kto", "ppo", "grpo", "rloo", "online-dpo")
LLM_ONLINE = ("ppo", "grpo", "rloo", "online-dpo")  # sample from the policy: --prompts and a reward, no --data
LLM_RESUMABLE = ("dpo", "simpo", "orpo", "kto", "grpo", "rloo", "online-dpo")  # train(..., resume_from=DIR)
_PAIRS = "{prompt, chosen, rejected} rows"
LLM_TRAINER_HELP = {  # `irlhf llm <action> --help`, one per LLM_TRAINERS
    "sft": "supervised fine-tuning on {prompt, completion} or {text} rows (loss on completions only)",
    "reward": "a reward model from preference pairs (Bradley-Terry) or rankings (Plackett-Luce)",
    "dpo": f"direct preference optimisation on {_PAIRS}",
    "simpo": f"SimPO: reference-free, length-normalised preference optimisation on {_PAIRS}",
    "orpo": "ORPO: SFT on the chosen answers plus an odds-ratio preference term, reference-free",
    "kto": "KTO: {prompt, completion, label} rows (desirable or not; pair rows are unpaired)",
    "ppo": "PPO-RLHF with a KL penalty to the reference model, on a reward model or the sentiment scorer",
    "grpo": "GRPO: groups of samples per prompt, group-normalised advantages, k3 KL to the reference",
    "rloo": "RLOO: k samples per prompt, REINFORCE with the leave-one-out baseline",
    "online-dpo": "online DPO: two samples per prompt from the policy, ranked by the reward, DPO loss"}
DPO_LOSS_TYPES = ("sigmoid", "robust", "hinge", "ipo")  # = irlhf.llm.dpo.LOSS_TYPES (a test keeps them equal)
# irlhf prefs active: the same names as irlhf.eval.active_preferences (ENVS, ACQUISITIONS; a test keeps them equal)
ACTIVE_ENVS = ("driving", "lds", "mountaincar")
ACTIVE_ACQUISITIONS = ("random", "volume_removal", "information", "disagreement", "thompson", "max_regret")
LLM_IRL_METHODS = ("iq", "maxent")  # irlhf llm irl --method: irlhf.llm.iq_learn, irlhf.llm.seq_maxent
LLM_REWARDS = ("model", "sentiment")
ROUTE_DRIVERS = ("commuter", "local", "cautious", "shortest_time")  # = irlhf.planning.route_drivers.DRIVERS
LABEL_EXPORT_FORMATS = ("jsonl", "pairs")
DEMO_SUFFIXES = (".npz", ".parquet", ".jsonl")


# -- config field types ------------------------------------------------------------------------------------
def _nonblank(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def is_expert_kind(value: Any, web: bool = False) -> bool:
    """One of EXPERTS, a .zip / .safetensors path (``irlhf.rl.experts.make_expert``), or with ``web`` "web"."""
    return isinstance(value, str) and ((web and value == WEB) or value in EXPERTS
                                       or value.endswith((".zip", ".safetensors")))


_EXPERT_EXPECTED = (f"one of {list(EXPERTS)} or a path ending in .zip (SB3 model) or .safetensors (irlhf policy)")
EnvId = Annotated[str, Check(_nonblank, "a gymnasium environment id (e.g. CartPole-v1)")]
ExpertKind = Annotated[str, Check(is_expert_kind, _EXPERT_EXPECTED)]
ExpertOrWeb = Annotated[str, Check(lambda v: is_expert_kind(v, web=True), _EXPERT_EXPECTED)]
DemosPath = Annotated[str, Check(_nonempty, "a path to demonstrations (.npz, .parquet, .jsonl or a saved dataset "
                                            "directory)")]
Overrides = Annotated[dict, Check(lambda v: isinstance(v, dict), "a dict of Config overrides")]


# -- --set KEY=VALUE --------------------------------------------------------------------------------------
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


def set_flags(options: dict[str, Any], *, sort: bool = False) -> list[str]:
    """The ``--set KEY=VALUE`` words that reproduce ``options`` (compact JSON values)."""
    items = sorted(options.items()) if sort else options.items()
    return [f"--set {k}={json.dumps(v, separators=(',', ':'))}" for k, v in items]


def demo_job_command(head: str, job: Any) -> str:
    """``head`` plus the demos source, --eval-episodes, --set overrides and --seed of a job with fields demos,
    expert, episodes, eval_episodes, options and seed (``irlhf bc``, ``irlhf irl gail`` ...)."""
    parts = [head, f"--demos {job.demos}" if job.demos else f"--expert {job.expert} --episodes {job.episodes}",
             f"--eval-episodes {job.eval_episodes}", *set_flags(job.options), f"--seed {job.seed}"]
    return " ".join(parts)


# -- options the chosen algorithm does not use -------------------------------------------------------------------
def reject_options(args: Any, dests: Collection[str], reason: str) -> None:
    """Refuse the options among ``dests`` that the user typed (``args.given``, dest -> the option as typed, set by
    ``irlhf.cli``): the chosen algorithm or action would ignore them, and an ignored option hides a mistake.
    ``reason`` completes "<options>: ...", e.g. "not used by irl maxent (a tabular algorithm)"."""
    given = getattr(args, "given", {})  # absent when a job is called without the command line
    typed = [shown for dest, shown in given.items() if dest in dests]
    if typed:
        raise ValidationError(f"{', '.join(typed)}: {reason}")


# -- reports and printing -----------------------------------------------------------------------------------
def fmt(value: Any, spec: str = ".2f") -> str:
    """``format(value, spec)``, or "n/a" for None."""
    return "n/a" if value is None else format(value, spec)


def options_table(config: Any) -> list[tuple[str, Any]]:
    """(field, value) rows of a Config for a report table; containers as JSON."""
    return sorted((k, json.dumps(v) if isinstance(v, (dict, list, tuple)) else v) for k, v in config.to_dict().items())


def score_line(m: dict[str, Any]) -> str:
    """One summary line from ``irlhf.eval.returns.score_policy``'s metrics."""
    return (f"return {m['eval_return_mean']:.2f} +- {m['eval_return_std']:.2f} over {m['eval_episodes']} episodes; "
            f"expert {fmt(m['expert_return_mean'])}, random {m['random_return_mean']:.2f}; "
            f"normalized score {fmt(m['normalized_score'], '.3f')}")


def result_table(m: dict[str, Any]) -> list[list[Any]]:
    """Report rows from ``irlhf.eval.returns.score_policy``'s metrics."""
    return [["learned policy: mean return", m["eval_return_mean"]],
            ["learned policy: std of return", m["eval_return_std"]],
            ["expert: mean return", fmt(m["expert_return_mean"], ".4g")],
            ["random policy: mean return", m["random_return_mean"]],
            ["normalized score (1 = expert, 0 = random)", fmt(m["normalized_score"], ".4g")],
            ["evaluation episodes", m["eval_episodes"]]]


def print_summary(summary: list[str]) -> int:
    """Print a job's summary lines; the job's exit code (0)."""
    print("\n".join(summary))
    return 0
