"""``irlhf llm``: language-model alignment from the command line (``irlhf.llm``).

    irlhf llm sentiment --quick                  # the synthetic sentiment task end to end: pretrain, SFT, labelled
                                                 # pairs, DPO / RM + PPO / PPO on the true reward, the frontier plot;
                                                 # also writes sft/ (a local model), pairs.jsonl and prompts.txt
    irlhf llm sft    --model DIR --data rows.jsonl            # {prompt, completion} or {text} rows
    irlhf llm reward --model DIR --data pairs.jsonl           # {prompt, chosen, rejected[, margin]} or
                                                              # {prompt, responses, ranking} rows
    irlhf llm dpo    --model DIR --data pairs.jsonl [--ref DIR] [--lora 8] --set beta=0.1
    irlhf llm ppo    --model DIR --prompts prompts.txt --reward-model RM_DIR   (or --reward sentiment)

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
import json
import time
from pathlib import Path
from typing import Any

from irlhf.core.config import BaseConfig, check_choice, check_number
from irlhf.core.errors import ValidationError
from irlhf.core.rundir import RunDir
from irlhf.report import Report

TRAINERS = ("sft", "reward", "dpo", "ppo")
REWARDS = ("model", "sentiment")
# the metric drawn beside the loss in curves.png, per trainer
KEY_METRIC = {"sft": "mean_token_accuracy", "reward": "accuracy", "dpo": "rewards/margins", "ppo": "objective/scores"}


@dataclasses.dataclass(frozen=True)
class TrainJobConfig(BaseConfig):
    """Options of ``irlhf llm sft|reward|dpo|ppo``.

    action: the trainer.  model: local causal-LM directory.  tokenizer: its tokenizer directory (None = model's).
    data: training rows (sft, reward, dpo); prompts: a .txt (one per line) or .jsonl ({prompt}) file (ppo).
    eval_data: held-out rows (sft, reward, dpo) or prompts (ppo).  ref: reference model directory (dpo, ppo;
    None = the initial model).  reward / reward_model: ppo's reward, "model" (a reward-model directory written
    by ``irlhf llm reward``) or "sentiment" (the synthetic task's ground-truth scorer).  lora: LoRA rank (0 =
    full fine-tuning; needs peft).  options: trainer Config fields.  seed: the trainer's seed.
    """

    action: str
    model: str
    data: str | None = None
    prompts: str | None = None
    tokenizer: str | None = None
    eval_data: str | None = None
    ref: str | None = None
    reward: str = "model"
    reward_model: str | None = None
    lora: int = 0
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("action", self.action, TRAINERS)
        check_choice("reward", self.reward, REWARDS)
        check_number("lora", self.lora, low=0, integer=True)
        check_number("seed", self.seed, low=0, integer=True)
        if self.action == "ppo":
            if self.prompts is None:
                raise ValidationError("llm ppo: --prompts FILE is required")
            if self.reward == "model" and self.reward_model is None:
                raise ValidationError("llm ppo: give --reward-model DIR or --reward sentiment")
        elif self.data is None:
            raise ValidationError(f"llm {self.action}: --data FILE is required")
        if self.ref is not None and self.action not in ("dpo", "ppo"):
            raise ValidationError(f"--ref: only dpo and ppo use a reference model, not {self.action}")
        for name in ("model", "tokenizer", "ref", "reward_model"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_dir():
                raise ValidationError(f"--{name.replace('_', '-')} {path!r}: no such directory; expected a local "
                                      "Hugging Face model directory")

    def command(self) -> str:
        parts = [f"irlhf llm {self.action} --model {self.model}"]
        for name in ("data", "prompts", "tokenizer", "eval_data", "ref", "reward_model"):
            if getattr(self, name) is not None:
                parts.append(f"--{name.replace('_', '-')} {getattr(self, name)}")
        if self.action == "ppo" and self.reward != "model":
            parts.append(f"--reward {self.reward}")
        if self.lora:
            parts.append(f"--lora {self.lora}")
        parts += [f"--set {k}={json.dumps(v)}" for k, v in sorted(self.options.items())]
        return " ".join(parts + [f"--seed {self.seed}"])


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ValidationError(f"tokenizer {path!r}: cannot load a tokenizer there ({exc})") from None


def load_causal_lm(path: str) -> Any:
    from transformers import AutoModelForCausalLM

    from irlhf.llm.loop import quiet_transformers

    try:
        with quiet_transformers():
            return AutoModelForCausalLM.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ValidationError(f"model {path!r}: cannot load a causal LM there ({exc})") from None


def with_lora(model: Any, rank: int) -> Any:
    """Wrap ``model`` with LoRA adapters of this rank on every linear layer (peft)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ValidationError("--lora needs peft: pip install 'irlhf[llm]'") from None
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
        from irlhf.data.text import read_rows

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
    if job.action == "sft":
        from irlhf.llm.sft import load_sft_data
        return load_sft_data(path)
    if job.action == "ppo":
        return read_prompts(path)
    from irlhf.data.text import TextPairs, TextRankings, read_rows
    rows = read_rows(path, "--data")
    if job.action == "reward" and rows and "ranking" in rows[0]:
        return TextRankings.from_rows(rows)
    return TextPairs.from_rows(rows)


def run_train(job: TrainJobConfig, out: str = "runs", *, progress: bool = True) -> tuple[RunDir, list[str]]:
    """Load and validate everything, make the run directory, train into it, then write plots and the report."""
    import importlib

    module = importlib.import_module(f"irlhf.llm.{job.action}")
    config = _trainer_config(module, job, progress)
    tokenizer = load_tokenizer(job.tokenizer or job.model)
    data = _load_data(job, job.prompts if job.action == "ppo" else job.data)
    eval_data = _load_data(job, job.eval_data)
    if job.action == "reward":
        from irlhf.llm.reward import make_reward_model
        model = make_reward_model(job.model, tokenizer, seed=job.seed)
    else:
        model = load_causal_lm(job.model)
    if job.lora:
        model = with_lora(model, job.lora)
    kwargs: dict[str, Any] = {}
    if job.ref is not None:
        kwargs["ref_model"] = load_causal_lm(job.ref)
    reward_fn = None
    if job.action == "ppo":
        if job.reward == "sentiment":
            from irlhf.llm.tasks.frontier import true_reward as reward_fn
        else:
            from irlhf.llm import reward
            reward_fn = reward.as_reward_fn(reward.make_reward_model(job.reward_model, tokenizer), tokenizer)
        if eval_data is not None:
            kwargs["eval_prompts"] = eval_data
    elif eval_data is not None:
        kwargs["eval_data"] = eval_data

    run = RunDir.create(f"llm-{job.action}", out)
    run.write_json("config.json", {"job": job.to_dict(), "trainer": config.to_dict()})
    start = time.perf_counter()
    if job.action == "ppo":
        result = module.train(model, tokenizer, data, reward_fn, config, output_dir=run.path, **kwargs)
    else:
        result = module.train(model, tokenizer, data, config, output_dir=run.path, **kwargs)
    seconds = time.perf_counter() - start
    history = [row for row in result.history if not any(k.startswith("eval/") for k in row)]
    evals = [row for row in result.history if any(k.startswith("eval/") for k in row)]
    curve = _plot_curves(run, history, KEY_METRIC[job.action])
    last = history[-1] if history else {}
    shown = {k: v for k, v in last.items() if isinstance(v, (int, float))}
    final_eval = {k: v for k, v in (evals[-1] if evals else {}).items() if k.startswith("eval/")}
    report = Report(f"irlhf llm {job.action}")
    report.section("Run").text(f"Run directory {run.path.name}. Reproduce with the command below.").code(job.command())
    report.section("Setup").text(
        f"{job.action.upper()} on {Path(job.model).name} ({sum(p.numel() for p in result.model.parameters()):,} "
        f"parameters{', LoRA rank ' + str(job.lora) if job.lora else ''}), {seconds:.1f} s.").table(
        sorted((k, json.dumps(v) if isinstance(v, (dict, list, tuple)) else v) for k, v in config.to_dict().items()),
        header=["option", "value"])
    report.section("Result").table(sorted([k, v] for k, v in {**shown, **final_eval}.items()),
                                   header=["metric (last logged step)", "value"])
    if curve:
        report.image(curve, caption=f"loss and {KEY_METRIC[job.action]} per logged step")
    metric = KEY_METRIC[job.action]
    summary = [f"irlhf llm {job.action} -> {run.path}",
               f"{len(history)} logged steps, {seconds:.1f} s; last: loss {_fmt(last.get('loss', last.get('loss/policy')))}"
               f", {metric} {_fmt(last.get(metric))}"
               + (", " + ", ".join(f"{k} {_fmt(v)}" for k, v in final_eval.items()) if final_eval else ""),
               f"model: {run.file('final')}", f"report: {run.file('report.html')}"]
    files = ["config.json", "metrics.jsonl", "final/"] + ([curve] if curve else []) + ["summary.txt", "report.html"]
    report.finish(run, files, summary)
    return run, summary


def _fmt(value: Any) -> str:
    return "n/a" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))


def _plot_curves(run: RunDir, history: list[dict[str, Any]], metric: str) -> str | None:
    from irlhf.report import plots

    loss_key = "loss" if any("loss" in r for r in history) else "loss/policy"
    rows = [r for r in history if r.get(loss_key) is not None]
    if not rows:
        return None
    fig, axes = plots.figure_row(2, panel_size=3.8)
    steps = [r.get("step", k + 1) for k, r in enumerate(rows)]
    axes[0].plot(steps, [r[loss_key] for r in rows], "o-", ms=2)
    axes[0].set(xlabel="step", ylabel=loss_key)
    values = [(s, r[metric]) for s, r in zip(steps, rows) if r.get(metric) is not None]
    if values:
        axes[1].plot(*zip(*values), "o-", ms=2, color="tab:orange")
    axes[1].set(xlabel="step", ylabel=metric)
    for ax in axes:
        ax.grid(alpha=0.3)
    run.save_figure("curves.png", fig)
    return "curves.png"


# ----------------------------------------------------------------------------------------------- sentiment
def run_sentiment(config: Any, out: str = "runs") -> tuple[RunDir, list[str]]:
    """The frontier experiment (``irlhf.llm.tasks.frontier``) with its artifacts."""
    from irlhf.llm.loop import save_checkpoint
    from irlhf.llm.tasks import frontier

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
    from irlhf.llm.tasks import sentiment
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
    from irlhf.jobs.irl import parse_set
    from irlhf.llm.tasks import frontier

    config = frontier.Config(seeds=tuple(args.seeds) if args.seeds else (args.seed,))
    if args.quick:
        config = config.replace(pretrain_steps=300, sft_steps=100, n_train_prompts=64, n_eval_prompts=32,
                                dpo_betas=(0.1, 1.0), ppo_betas=(0.1,), ppo_steps=10, reward_epochs=3)
    options = parse_set(args.options)
    return frontier.Config.from_dict({**config.to_dict(), **options}) if options else config


# ----------------------------------------------------------------------------------------------- parser
def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from irlhf.cli import add_job

    parser = subparsers.add_parser("llm", help="language-model alignment: SFT, reward models, DPO, PPO-RLHF, and "
                                   "the synthetic sentiment frontier experiment",
                                   description="Align local Hugging Face causal LMs with people's preferences.")
    actions = parser.add_subparsers(title="actions", dest="action", metavar="<action>", required=True)
    helps = {"sft": "supervised fine-tuning on {prompt, completion} or {text} rows (loss on completions only)",
             "reward": "a reward model from preference pairs (Bradley-Terry) or rankings (Plackett-Luce)",
             "dpo": "direct preference optimisation on {prompt, chosen, rejected} rows",
             "ppo": "PPO-RLHF with a KL penalty to the reference model, on a reward model or the sentiment scorer"}
    for action in TRAINERS:
        p = add_job(actions, action, run_train_command, help=helps[action])
        p.add_argument("--model", required=True, metavar="DIR", help="local Hugging Face causal-LM directory")
        p.add_argument("--tokenizer", metavar="DIR", help="tokenizer directory (default: the model's)")
        if action == "ppo":
            p.add_argument("--prompts", required=True, metavar="FILE", help=".txt (one per line) or rows with 'prompt'")
            p.add_argument("--reward", choices=REWARDS, default="model", help="reward: a reward model or the "
                           "synthetic sentiment task's ground-truth scorer")
            p.add_argument("--reward-model", metavar="DIR", help="reward-model directory (from `irlhf llm reward`)")
            p.add_argument("--eval-prompts", dest="eval_data", metavar="FILE", help="held-out prompts")
        else:
            p.add_argument("--data", required=True, metavar="FILE", help="training rows (.jsonl, .parquet, datasets dir)")
            p.add_argument("--eval-data", metavar="FILE", help="held-out rows")
        if action in ("dpo", "ppo"):
            p.add_argument("--ref", metavar="DIR", help="reference model directory (default: the initial model)")
        p.add_argument("--lora", type=int, default=0, metavar="RANK", help="train LoRA adapters of this rank (peft)")
        p.add_argument("--set", dest="options", action="append", metavar="KEY=VALUE", default=None,
                       help="set a field of the trainer's Config (VALUE as JSON), e.g. --set learning_rate=1e-4")
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s = add_job(actions, "sentiment", run_sentiment_command,
                help="the synthetic sentiment task: DPO vs PPO reward-KL frontier (minutes; --quick: under one)")
    s.add_argument("--quick", action="store_true", help="one small seed: a smoke run, not a result")
    s.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: --seed)")
    s.add_argument("--set", dest="options", action="append", metavar="KEY=VALUE", default=None,
                   help="set a field of irlhf.llm.tasks.frontier.Config (VALUE as JSON)")
    return parser


def run_train_command(args: argparse.Namespace) -> int:
    from irlhf.jobs.irl import parse_set

    job = TrainJobConfig(action=args.action, model=args.model, data=getattr(args, "data", None),
                         prompts=getattr(args, "prompts", None), tokenizer=args.tokenizer, eval_data=args.eval_data,
                         ref=getattr(args, "ref", None), reward=getattr(args, "reward", "model"),
                         reward_model=getattr(args, "reward_model", None), lora=args.lora,
                         options=parse_set(args.options), seed=args.seed)
    _, summary = run_train(job, args.out, progress=not args.no_progress)
    print("\n".join(summary))
    return 0


def run_sentiment_command(args: argparse.Namespace) -> int:
    _, summary = run_sentiment(sentiment_config(args), args.out)
    print("\n".join(summary))
    return 0
