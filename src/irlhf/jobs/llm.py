"""``irlhf llm``: language-model alignment from the command line (``irlhf.llm``).

    irlhf llm sentiment --quick                  # the synthetic sentiment task end to end: pretrain, SFT, labelled
                                                 # pairs, DPO / RM + PPO / PPO on the true reward, the frontier plot;
                                                 # also writes sft/ (a local model), pairs.jsonl and prompts.txt
    irlhf llm sft    --model DIR --data rows.jsonl            # {prompt, completion} or {text} rows
    irlhf llm reward --model DIR --data pairs.jsonl           # {prompt, chosen, rejected[, margin]} or
                                                              # {prompt, responses, ranking} rows
    irlhf llm dpo    --model DIR --data pairs.jsonl [--ref DIR] [--lora 8] [--loss-type ipo] --set beta=0.1
    irlhf llm simpo  --model DIR --data pairs.jsonl --set gamma=0.5     # reference-free, length-normalised
    irlhf llm orpo   --model DIR --data pairs.jsonl --set lam=0.1       # SFT + odds ratio, reference-free
    irlhf llm kto    --model DIR --data labels.jsonl                    # {prompt, completion, label} rows (or pairs)
    irlhf llm dpo    --model DIR --data pairs.jsonl --resume runs/llm-dpo-.../step-200   # go on from a checkpoint
    irlhf llm ppo    --model DIR --prompts prompts.txt --reward-model RM_DIR   (or --reward sentiment)
    irlhf llm grpo | rloo | online-dpo --model DIR --prompts prompts.txt --reward-model RM_DIR   (the same inputs)
    irlhf llm irl    --method iq|maxent --model DIR --demos rows.jsonl        # inverse RL from {prompt, completion}
                                                              # demonstrations; maxent also writes the reward model

``--model`` is any local Hugging Face causal-LM directory (its tokenizer too, or ``--tokenizer DIR``); data
files are .jsonl, .parquet or ``datasets`` directories (see ``irlhf.data.text``); ``--set KEY=VALUE`` sets a
field of the trainer's Config (VALUE as JSON). Everything is loaded and validated before the run directory is
made (bad input: one error line, exit 2, nothing written). The run directory holds config.json,
metrics.jsonl (written by the trainer as it goes), final/ (safetensors + tokenizer; with --lora, the
adapter), step-N/ checkpoints if save_steps > 0, curves.png, summary.txt and report.html.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

from irlhf.core.config import BaseConfig, NonNegativeInt, OneOf, Seed
from irlhf.core.errors import ValidationError
from irlhf.core.rundir import RunDir
from irlhf.data.text import TextLabels, TextPairs, TextRankings, read_rows
from irlhf.jobs._common import (LLM_IRL_METHODS, LLM_ONLINE, LLM_RESUMABLE, LLM_REWARDS, LLM_TRAINERS, Overrides,
                                options_table, parse_set, print_summary, reject_options)
from irlhf.llm import pairwise, reward
from irlhf.llm.loop import quiet_transformers, read_resume, save_checkpoint
from irlhf.llm.sft import load_sft_data
from irlhf.llm.tasks import frontier, sentiment
from irlhf.report import Report
from irlhf.report.curves import loss_and_metric

TRAINERS = LLM_TRAINERS + ("irl",)
REWARDS = LLM_REWARDS
# the library module of each trainer (irl: per --method)
MODULES = {"sft": "sft", "reward": "reward", "dpo": "dpo", "simpo": "simpo", "orpo": "orpo", "kto": "kto",
           "ppo": "ppo", "grpo": "grpo", "rloo": "rloo", "online-dpo": "online_dpo", "iq": "iq_learn",
           "maxent": "seq_maxent"}
REFERENCE_USERS = ("dpo", "kto", "maxent", *LLM_ONLINE)  # the trainers with a reference model (--ref)
# the metric drawn beside the loss in curves.png, per trainer
KEY_METRIC = {"sft": "mean_token_accuracy", "reward": "accuracy", "dpo": "rewards/margins", "simpo": "rewards/margins",
              "orpo": "rewards/margins", "kto": "rewards/margins", "ppo": "objective/scores",
              "grpo": "objective/scores", "rloo": "objective/scores", "online-dpo": "objective/scores",
              "iq": "sequence_reward", "maxent": "ess_fraction"}
LOSS_KEY = {"maxent": "reward/loss"}  # the loss drawn in curves.png where it is not "loss"


@dataclasses.dataclass(frozen=True)
class TrainJobConfig(BaseConfig):
    """Options of ``irlhf llm sft|reward|dpo|simpo|orpo|kto|ppo|grpo|rloo|online-dpo|irl``.

    action: the trainer.  model: local causal-LM directory.  tokenizer: its tokenizer directory (None = model's).
    data: training rows (the offline trainers); prompts: a .txt (one per line) or .jsonl ({prompt}) file (the
    online ones: ppo, grpo, rloo, online-dpo).  eval_data: held-out rows or prompts.  ref: reference model
    directory (dpo, kto, the online trainers, irl maxent; None = the initial model).  reward / reward_model: the
    online trainers' reward, "model" (a reward-model directory written by ``irlhf llm reward``; scored with its
    own tokenizer when it has one) or "sentiment" (the synthetic task's ground-truth scorer).  lora: LoRA rank (0 =
    full fine-tuning; needs peft).  resume: a step-N (or final) checkpoint directory of an earlier run of the same
    trainer and options to go on from (the new run directory holds the whole history).  method: irl's learner,
    "iq" (inverse soft-Q on tokens) or "maxent" (sequence MaxEnt IRL); data holds its demonstrations.
    options: trainer Config fields.  seed: the trainer's seed.
    """

    action: Annotated[str, OneOf(TRAINERS)]
    model: str
    data: str | None = None
    prompts: str | None = None
    tokenizer: str | None = None
    eval_data: str | None = None
    ref: str | None = None
    reward: Annotated[str, OneOf(REWARDS)] = "model"
    reward_model: str | None = None
    lora: NonNegativeInt = 0
    resume: str | None = None
    method: Annotated[str, OneOf(LLM_IRL_METHODS)] | None = None
    options: Overrides = dataclasses.field(default_factory=dict)
    seed: Seed = 0

    def validate(self) -> None:
        if self.action in LLM_ONLINE:
            if self.prompts is None:
                raise ValidationError(f"llm {self.action}: --prompts FILE is required")
            if self.reward == "model" and self.reward_model is None:
                raise ValidationError(f"llm {self.action}: give --reward-model DIR or --reward sentiment")
        elif self.data is None:
            flag = "--demos" if self.action == "irl" else "--data"
            raise ValidationError(f"llm {self.action}: {flag} FILE is required")
        if (self.action == "irl") != (self.method is not None):
            raise ValidationError(f"method={self.method!r}: expected one of {LLM_IRL_METHODS} for irl, and only irl")
        if self.ref is not None and self.trainer not in REFERENCE_USERS:
            raise ValidationError(f"--ref: only {', '.join(REFERENCE_USERS[:-1])} and irl --method maxent use a "
                                  f"reference model, not {self.trainer}")
        if self.resume is not None and self.trainer not in LLM_RESUMABLE:
            raise ValidationError(f"--resume: {self.trainer} does not resume; expected one of {LLM_RESUMABLE}")
        for name in ("model", "tokenizer", "ref", "reward_model", "resume"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_dir():
                raise ValidationError(f"--{name.replace('_', '-')} {path!r}: no such directory; expected a local "
                                      "Hugging Face model directory")

    @property
    def trainer(self) -> str:
        """The action, or for irl its method ("iq" / "maxent")."""
        return self.method if self.action == "irl" and self.method else self.action

    def command(self) -> str:
        parts = [f"irlhf llm {self.action}" + (f" --method {self.method}" if self.method else "")
                 + f" --model {self.model}"]
        for name in ("data", "prompts", "tokenizer", "eval_data", "ref", "reward_model", "resume"):
            if getattr(self, name) is not None:
                flag = "demos" if name == "data" and self.action == "irl" else name.replace("_", "-")
                parts.append(f"--{flag} {getattr(self, name)}")
        if self.action in LLM_ONLINE and self.reward != "model":
            parts.append(f"--reward {self.reward}")
        if self.lora:
            parts.append(f"--lora {self.lora}")
        parts += [f"--set {k}={json.dumps(v)}" for k, v in sorted(self.options.items())]
        return " ".join(parts + [f"--seed {self.seed}"])


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer  # transformers: slow to import, only the llm trainers need it

    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ValidationError(f"tokenizer {path!r}: cannot load a tokenizer there ({exc})") from None


def load_causal_lm(path: str) -> Any:
    from transformers import AutoModelForCausalLM  # transformers: slow to import, only the llm trainers need it

    try:
        with quiet_transformers():
            return AutoModelForCausalLM.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ValidationError(f"model {path!r}: cannot load a causal LM there ({exc})") from None


def with_lora(model: Any, rank: int) -> Any:
    """Wrap ``model`` with LoRA adapters of this rank on every linear layer (peft)."""
    try:
        from peft import LoraConfig, get_peft_model  # peft: optional (the llm extra), only --lora needs it
    except ImportError:
        raise ValidationError("--lora needs peft: pip install 'irlhf[llm]'") from None
    with warnings.catch_warnings():  # what peft does is right; its notes about it are not the user's business
        warnings.filterwarnings("ignore", message="fan_in_fan_out is set to", category=UserWarning)  # Conv1D: GPT-2
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        return get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                                target_modules="all-linear"))


def read_prompts(path: str) -> list[Any]:
    """Prompts from a .txt file (one per non-empty line) or rows with a "prompt" key (.jsonl/.parquet/dir)."""
    source = Path(path)
    if source.suffix == ".txt":
        if not source.is_file():
            raise ValidationError(f"--prompts {path!r}: no such file")
        prompts = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        rows = read_rows(path, "--prompts")
        bad = [k for k, r in enumerate(rows) if "prompt" not in r]
        if bad:
            raise ValidationError(f"--prompts {path!r}, row {bad[0]}: no 'prompt' key")
        prompts = [r["prompt"] for r in rows]
    if not prompts:
        raise ValidationError(f"--prompts {path!r}: no prompts")
    return prompts


def _trainer_config(module: Any, job: TrainJobConfig, progress: bool) -> Any:
    values = {"seed": job.seed, "progress": progress, **job.options}
    return module.Config.from_dict(values)


def _load_data(job: TrainJobConfig, path: str | None) -> Any:
    if path is None:
        return None
    if job.action in ("sft", "irl"):
        return load_sft_data(path)
    if job.action in LLM_ONLINE:
        return read_prompts(path)
    rows = read_rows(path, "--data")
    if job.action == "reward" and rows and "ranking" in rows[0]:
        return TextRankings.from_rows(rows)
    if job.action == "kto" and rows and "label" in rows[0]:
        return TextLabels.from_rows(rows)
    return TextPairs.from_rows(rows)


def load_reward_fn(job: TrainJobConfig, tokenizer: Any) -> Any:
    """The online trainers' reward: the sentiment scorer, or a reward model scored through ITS tokenizer (texts
    pass between the two, so a policy with another tokenizer is fine); a reward-model directory without a
    tokenizer is scored with the policy's, which must then fit its vocabulary."""
    if job.reward == "sentiment":
        return frontier.true_reward
    own = Path(job.reward_model) / "tokenizer_config.json"
    rm_tokenizer = load_tokenizer(job.reward_model) if own.is_file() else tokenizer
    model = reward.make_reward_model(job.reward_model, rm_tokenizer)
    return reward.as_reward_fn(model, rm_tokenizer)


def run_train(job: TrainJobConfig, out: str = "runs", *, progress: bool = True) -> tuple[RunDir, list[str]]:
    """Load and validate everything, make the run directory, train into it, then write plots and the report."""
    trainer = job.trainer
    module = importlib.import_module(f"irlhf.llm.{MODULES[trainer]}")
    config = _trainer_config(module, job, progress)
    tokenizer = load_tokenizer(job.tokenizer or job.model)
    data = _load_data(job, job.prompts if job.action in LLM_ONLINE else job.data)
    eval_data = _load_data(job, job.eval_data)
    if trainer in ("dpo", "simpo", "orpo", "kto"):  # before the run directory exists: bad input leaves nothing behind
        for what, pairs in (("--data", data), ("--eval-data", eval_data)):
            if isinstance(pairs, TextPairs):
                pairwise.check_distinct(pairs, what)
    reward_fn = load_reward_fn(job, tokenizer) if job.action in LLM_ONLINE else None
    if job.action == "reward":
        model = reward.make_reward_model(job.model, tokenizer, seed=job.seed)
    else:
        model = load_causal_lm(job.model)
    if job.lora:
        model = with_lora(model, job.lora)
    kwargs: dict[str, Any] = {}
    if job.resume is not None:  # the checkpoint's trainer, options and weights, before the run directory exists
        read_resume(job.resume, config, sys.maxsize, model)
        kwargs["resume_from"] = job.resume
    if trainer == "maxent":  # R_phi starts from the model's own backbone (the directory, not the LoRA wrapper)
        kwargs["reward_model"] = reward.make_reward_model(job.model, tokenizer, seed=job.seed)
    if job.ref is not None:
        kwargs["ref_model"] = load_causal_lm(job.ref)
    if job.action in LLM_ONLINE:
        if eval_data is not None:
            kwargs["eval_prompts"] = eval_data
    elif eval_data is not None:
        if trainer == "maxent":
            raise ValidationError("--eval-data: irl --method maxent does not use held-out rows; expected none")
        kwargs["eval_data"] = eval_data

    run = RunDir.create(f"llm-{job.action}" + (f"-{job.method}" if job.method else ""), out)
    run.write_json("config.json", {"job": job.to_dict(), "trainer": config.to_dict()})
    start = time.perf_counter()
    if job.action in LLM_ONLINE:
        result = module.train(model, tokenizer, data, reward_fn, config, output_dir=run.path, **kwargs)
    else:
        result = module.train(model, tokenizer, data, config, output_dir=run.path, **kwargs)
    seconds = time.perf_counter() - start
    history = [row for row in result.history if not any(k.startswith("eval/") for k in row)]
    evals = [row for row in result.history if any(k.startswith("eval/") for k in row)]
    metric, loss_key = KEY_METRIC[trainer], LOSS_KEY.get(trainer, "loss")
    figure = loss_and_metric(history, metric, LOSS_KEY.get(trainer))
    curve = "curves.png" if figure is not None else None
    if figure is not None:
        run.save_figure(curve, figure)
    last = history[-1] if history else {}
    shown = {k: v for k, v in last.items() if isinstance(v, (int, float))}
    final_eval = {k: v for k, v in (evals[-1] if evals else {}).items() if k.startswith("eval/")}
    title = {"iq": "IQ-Learn (inverse soft-Q on tokens)", "maxent": "sequence MaxEnt IRL"}.get(trainer,
                                                                                             job.action.upper())
    report = Report(f"irlhf llm {job.action}" + (f" --method {job.method}" if job.method else ""))
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(job.command())
    report.section("Setup").text(
        f"{title} on {Path(job.model).name} ({sum(p.numel() for p in result.model.parameters()):,} "
        f"parameters{', LoRA rank ' + str(job.lora) if job.lora else ''}), {seconds:.1f} s.").table(
        options_table(config), header=["option", "value"])
    report.section("Result").table(sorted([k, v] for k, v in {**shown, **final_eval}.items()),
                                   header=["metric (last logged step)", "value"])
    if curve:
        report.image(curve, caption=f"{loss_key} and {metric} per logged step")
    summary = [f"irlhf llm {job.action} -> {run.path}",
               f"{len(history)} logged steps, {seconds:.1f} s; last: {loss_key} "
               f"{_fmt(last.get(loss_key, last.get('loss/policy')))}"
               f", {metric} {_fmt(last.get(metric))}"
               + (", " + ", ".join(f"{k} {_fmt(v)}" for k, v in final_eval.items()) if final_eval else ""),
               f"model: {run.file('final')}", f"report: {run.file('report.html')}"]
    files = ["config.json", "metrics.jsonl", "final/"] + ([curve] if curve else []) + ["summary.txt", "report.html"]
    report.finish(run, files, summary)
    return run, summary


def _fmt(value: Any) -> str:
    return "n/a" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))


# ----------------------------------------------------------------------------------------------- sentiment
def run_sentiment(config: Any, out: str = "runs") -> tuple[RunDir, list[str]]:
    """The frontier experiment (``irlhf.llm.tasks.frontier``) with its artifacts."""
    lines: list[str] = []
    start = time.perf_counter()
    result = frontier.run(config, log=lambda line: (lines.append(line), print(line, flush=True)))
    seconds = time.perf_counter() - start
    run = RunDir.create("llm-sentiment", out)
    run.write_json("config.json", config.to_dict())
    for row in result.rows:
        run.log(**row)
    save_checkpoint(result.sft, result.tokenizer, run.file("sft"))
    result.pairs.save(run.file("pairs.jsonl"))
    run.write_text("prompts.txt", "\n".join(sentiment.make_prompts(config.n_train_prompts,
                                                                   seed=30_000 + config.seeds[0])) + "\n")
    frontier.plot(result.rows, run.file("frontier.png"))
    summary_rows = frontier.summarize(result.rows)
    table = [[r["method"], "-" if r["beta"] is None else r["beta"], f"{r['reward']:+.3f} +- {r['reward_std']:.3f}",
              f"{r['kl']:.2f} +- {r['kl_std']:.2f}", r["n_seeds"]] for r in summary_rows]
    report = Report("irlhf llm sentiment: reward vs KL")
    report.section("Run").text(f"Run directory {run.path.name}, {seconds / 60:.1f} min.").code(
        "irlhf llm sentiment " + " ".join(f"--set {k}={json.dumps(v)}" for k, v in sorted(config.to_dict().items())))
    report.section("Result").text(
        "Mean ground-truth reward and KL(pi || pi_SFT) (nats per completion) on held-out prompts, mean +- std over "
        "seeds. The DPO paper's finding: DPO's points lie above PPO's at the same KL.").table(
        table, header=["method", "beta", "reward", "KL", "seeds"]).image("frontier.png", caption="one point per run")
    report.section("Log").code("\n".join(lines))
    summary = [f"irlhf llm sentiment -> {run.path}", f"{len(config.seeds)} seed(s), {seconds / 60:.1f} min"]
    summary += [f"{m:>11} beta={b}: reward {r}, KL {k}" for m, b, r, k, _ in table]
    summary += [f"pi_SFT (local model for the other llm commands): {run.file('sft')}",
                f"labelled pairs: {run.file('pairs.jsonl')}; prompts: {run.file('prompts.txt')}",
                f"report: {run.file('report.html')}"]
    report.finish(run, ["config.json", "metrics.jsonl", "frontier.png", "sft/", "pairs.jsonl", "prompts.txt",
                        "summary.txt", "report.html"], summary)
    return run, summary


def sentiment_config(args: argparse.Namespace) -> Any:
    config = frontier.Config(seeds=tuple(args.seeds) if args.seeds else (args.seed,))
    if args.quick:
        config = config.replace(pretrain_steps=300, sft_steps=100, n_train_prompts=64, n_eval_prompts=32,
                                dpo_betas=(0.1, 1.0), ppo_betas=(0.1,), ppo_steps=10, reward_epochs=3)
    options = parse_set(args.options)
    return frontier.Config.from_dict({**config.to_dict(), **options}) if options else config


def run_train_command(args: argparse.Namespace) -> int:
    if getattr(args, "reward", "model") == "sentiment":
        reject_options(args, ("reward_model",), "not used with --reward sentiment (the task's own scorer is the "
                       "reward); expected --reward model with a reward-model directory")
    options = parse_set(args.options)
    if getattr(args, "loss_type", None) is not None:
        if "loss_type" in options:
            raise ValidationError(f"--loss-type {args.loss_type} and --set loss_type=...: give the loss type once")
        options["loss_type"] = args.loss_type
    job = TrainJobConfig(action=args.action, model=args.model, data=getattr(args, "data", None),
                         prompts=getattr(args, "prompts", None), tokenizer=args.tokenizer, eval_data=args.eval_data,
                         ref=getattr(args, "ref", None), reward=getattr(args, "reward", "model"),
                         reward_model=getattr(args, "reward_model", None), lora=args.lora,
                         resume=getattr(args, "resume", None), method=getattr(args, "method", None),
                         options=options, seed=args.seed)
    return print_summary(run_train(job, args.out, progress=not args.no_progress)[1])


def run_sentiment_command(args: argparse.Namespace) -> int:
    if args.seeds:
        reject_options(args, ("seed",), "not used with --seeds (the experiment runs each seed of --seeds)")
    return print_summary(run_sentiment(sentiment_config(args), args.out)[1])
