"""Supervised fine-tuning (SFT): step 1 of the RLHF pipeline (lecture 004), maximum likelihood on demonstrations.

The loss is next-token cross-entropy on completion tokens only (prompt and padding masked), averaged over the
completion tokens of the GLOBAL batch (token-weighted, as TRL):

    L = -(1 / N_tok) sum_{rows} sum_{t in completion} log pi_theta(y_t | x, y_<t)

Exactness across processes: N_tok is counted up front from the tokenised data for the whole global batch (every
process holds the same token counts), each process backpropagates its own sum times world / N_tok
(``loop.global_mean``), and DDP's gradient average then equals the gradient of L.

Data: rows {prompt, completion} (prompt a string or chat messages) or {text}; a {text} row is a completion
with an empty prompt, so every token after BOS is scored (every token but the first if there is no BOS).

Packing (``packing=True``): the tokenised examples (each ending in EOS) are concatenated and cut into blocks
of ``max_length`` tokens (an example may continue into the next block, as TRL's "wrapped" packing).
``position_ids`` restart at 0 at every example and at every block start, and the first token of each example
is not scored (its only context would be the previous example). Attention is NOT block-diagonal: with the
eager / sdpa attention of a plain Hugging Face model a token can attend to earlier examples in its block (TRL's
default packing without ``padding_free``).

    data = load_sft_data("demos.jsonl")
    result = train(model, tokenizer, data, Config(learning_rate=2e-5, max_length=512))
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, NonNegative, NonNegativeInt, Positive, PositiveInt, Seed, check_number
from irlhf.core.errors import ValidationError
from irlhf.data.text import check_prompt, check_text, read_rows
from irlhf.llm.loop import (Device, LRSchedule, MaxGradNorm, MaxSteps, adamw, check_finite_loss, global_batches,
                            global_mean, make_runtime, save_checkpoint, shard)
from irlhf.llm.tokenize import (AddBos, Encoded, MaxLength, PromptLength, TokenizeOptions, collate, encode, pad_id_of,
                                tokenizer_adds_bos)

__all__ = ["SFTData", "load_sft_data", "Config", "Result", "pack", "token_losses", "train"]

LR_SCHEDULES = typing.get_args(LRSchedule)


# -- data --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SFTData:
    """N demonstrations: prompt[k] (a string, "" for {text} rows, or chat messages) and completion[k]."""

    prompt: tuple[Any, ...]
    completion: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.prompt) == 0:
            raise ValidationError("SFTData: no rows; expected at least one example")
        if len(self.prompt) != len(self.completion):
            raise ValidationError(f"SFTData: {len(self.prompt)} prompts and {len(self.completion)} completions; "
                                  "expected equal lengths")
        object.__setattr__(self, "prompt", tuple(p if isinstance(p, str) and p == "" else check_prompt(
            f"prompt[{k}]", p) for k, p in enumerate(self.prompt)))
        object.__setattr__(self, "completion",
                           tuple(check_text(f"completion[{k}]", c) for k, c in enumerate(self.completion)))

    def __len__(self) -> int:
        return len(self.prompt)


def load_sft_data(source: Any) -> SFTData:
    """From a path (.jsonl, .parquet, datasets directory), a ``datasets.Dataset``, a list of dicts or an
    ``SFTData``. Every row has {prompt, completion} or every row has {text}."""
    if isinstance(source, SFTData):
        return source
    rows = read_rows(source, "source")
    if not rows:
        raise ValidationError("source: no rows; expected at least one example")
    kind = "text" if "text" in rows[0] else "prompt/completion"
    prompts, completions = [], []
    for k, row in enumerate(rows):
        if kind == "text":
            if "text" not in row or "completion" in row:
                raise ValidationError(f"row {k}: keys {sorted(row)}; expected {{text}} like row 0")
            prompts.append("")
            completions.append(check_text(f"row {k}: text", row["text"]))
        else:
            if "prompt" not in row or "completion" not in row:
                raise ValidationError(f"row {k}: keys {sorted(row)}; expected prompt and completion (or text)")
            prompts.append(row["prompt"])
            completions.append(row["completion"])
    return SFTData(tuple(prompts), tuple(completions))


def pack(items: list[Encoded], block_size: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Concatenate ``items`` and cut into blocks of ``block_size`` tokens (the last one right-padded).

    Returns input_ids, attention_mask (long), completion_mask (bool) and position_ids (long), each
    (n_blocks, block_size). position_ids restart at 0 at each example and each block; the first token of every
    example is left out of completion_mask (nothing of its own precedes it).
    """
    check_number("block_size", block_size, low=2, integer=True)
    ids = np.concatenate([np.asarray(e.input_ids, dtype=np.int64) for e in items])
    scored = np.concatenate([np.arange(len(e.input_ids)) >= max(e.n_prompt, 1) for e in items])
    positions = np.concatenate([np.arange(len(e.input_ids)) for e in items])
    n_blocks = math.ceil(len(ids) / block_size)
    pad = n_blocks * block_size - len(ids)
    real = np.concatenate([np.ones(len(ids), dtype=np.int64), np.zeros(pad, dtype=np.int64)])
    ids = np.concatenate([ids, np.full(pad, pad_id, dtype=np.int64)]).reshape(n_blocks, block_size)
    scored = np.concatenate([scored, np.zeros(pad, dtype=bool)]).reshape(n_blocks, block_size)
    positions = np.concatenate([positions, np.zeros(pad, dtype=np.int64)]).reshape(n_blocks, block_size)
    # an example cut by a block boundary continues at position 0 of the next block
    starts = np.where(positions[:, :1] > 0, positions[:, :1], 0)
    example_id = np.cumsum(positions == 0, axis=1)
    positions = np.where(example_id == 0, positions - starts, positions)
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(real.reshape(n_blocks, block_size)),
            "completion_mask": torch.from_numpy(scored), "position_ids": torch.from_numpy(positions)}


# -- loss --------------------------------------------------------------------------------------
def token_losses(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token negative log-likelihood on the scored tokens, fp32.

    batch: input_ids, attention_mask, completion_mask (B, T) [, position_ids]. Returns (nll (B, T) with 0 off
    the scored tokens, scored (B, T) bool: completion tokens with a prediction (t >= 1), correct (B, T) bool:
    the argmax prediction equals the token).
    """
    kwargs = {"position_ids": batch["position_ids"]} if "position_ids" in batch else {}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False,
                   **kwargs).logits  # (B, T, V)
    scored = batch["completion_mask"].bool().clone()
    scored[:, 0] = False  # position 0 has no prediction
    targets = batch["input_ids"][:, 1:]
    pred = logits[:, :-1]  # position t - 1 predicts token t
    nll = torch.nn.functional.cross_entropy(pred.float().reshape(-1, pred.shape[-1]), targets.reshape(-1),
                                            reduction="none").view_as(targets)
    nll = torch.nn.functional.pad(nll * scored[:, 1:], (1, 0))
    correct = torch.nn.functional.pad((pred.argmax(-1) == targets) & scored[:, 1:], (1, 0))
    return nll, scored, correct


# -- config and result -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Options of ``train`` (defaults in brackets).

    learning_rate [2e-5]: AdamW step size.  weight_decay [0.0].  lr_schedule ["linear"]: "linear" decays to 0
    over the run (TRL's default), "constant".  batch_size [8]: examples (or packed blocks) per GLOBAL batch.
    epochs [1].  max_steps [None]: stop after this many steps (None = epochs decide).  max_length [1024]: tokens
    per example (or per packed block).  max_prompt_length [None]: keep the prompt's last tokens.
    add_bos ["auto"]: follow the tokenizer.  add_eos [True]: end each completion with EOS.
    packing [False]: pack examples into blocks of max_length (see module doc).  max_grad_norm [1.0]
    (None = off).  seed [0].  log_every [10]: steps between history rows.  save_steps [0]: checkpoint every
    this many steps (0 = final only).  progress [True]: tqdm bar.  device [None]: None = cuda if available.
    ``eval_data`` given to ``train`` is scored once, at the last step ("eval/loss", token-weighted).
    """

    learning_rate: Positive = 2e-5
    weight_decay: NonNegative = 0.0
    lr_schedule: LRSchedule = "linear"
    batch_size: PositiveInt = 8
    epochs: PositiveInt = 1
    max_steps: MaxSteps = None
    max_length: MaxLength | None = 1024
    max_prompt_length: PromptLength = None
    add_bos: AddBos = "auto"
    add_eos: bool = True
    packing: bool = False
    max_grad_norm: MaxGradNorm = 1.0
    seed: Seed = 0
    log_every: PositiveInt = 10
    save_steps: NonNegativeInt = 0
    progress: bool = True
    device: Device = None

    def validate(self) -> None:
        if self.packing and self.max_length is None:
            raise ValidationError("packing=True with max_length=None: expected a max_length (the block size)")

    def tokenize_options(self) -> TokenizeOptions:
        # packed examples are cut by the block size, not one by one
        return TokenizeOptions(None if self.packing else self.max_length, self.max_prompt_length, self.add_bos,
                               self.add_eos)


@dataclasses.dataclass
class Result:
    """model: the trained (unwrapped) model.  history: one dict per logged step.  n_dropped: examples dropped
    by truncation."""

    model: Any
    history: list[dict[str, Any]]
    n_dropped: int = 0


# -- training ----------------------------------------------------------------------------------
def train(model: Any, tokenizer: Any, data: Any, config: Config | None = None, *,
          output_dir: str | os.PathLike[str] | None = None, eval_data: Any = None) -> Result:
    """Fine-tune ``model`` on demonstrations ``data`` (anything ``load_sft_data`` accepts)."""
    config = config or Config()
    data = load_sft_data(data)
    rt = make_runtime(config.device)
    torch.manual_seed(config.seed)
    options, pad_id = config.tokenize_options(), pad_id_of(tokenizer)
    if options.add_bos == "auto":  # decide once, not once per encoded sequence
        options = dataclasses.replace(options, add_bos=tokenizer_adds_bos(tokenizer))

    # tokenise once up front; rows are examples, or packed blocks
    def prepare(demos: SFTData) -> tuple[dict[str, torch.Tensor], int]:
        encoded = [encode(tokenizer, p, c, options) for p, c in zip(demos.prompt, demos.completion)]
        kept = [e for e in encoded if e is not None]
        if not kept:
            raise ValidationError(f"all {len(demos)} examples dropped: their prompts leave no room for a "
                                  f"completion (max_length={config.max_length}, "
                                  f"max_prompt_length={config.max_prompt_length})")
        table = pack(kept, config.max_length, pad_id) if config.packing else collate(kept, pad_id)
        return table, len(demos) - len(kept)

    table, n_dropped = prepare(data)
    eval_table = prepare(load_sft_data(eval_data))[0] if eval_data is not None else None
    scored_all = table["completion_mask"].clone()
    scored_all[:, 0] = False
    tokens_per_row = scored_all.sum(-1)  # scored tokens of each row, for exact global token means
    n_rows = len(tokens_per_row)

    model.train()
    opt = adamw(model, config.learning_rate, config.weight_decay)
    model, opt = rt.prepare(model, opt)
    total_steps = math.ceil(n_rows / config.batch_size) * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    schedule = (lambda step: 1.0) if config.lr_schedule == "constant" else (lambda step: 1.0 - step / total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, schedule)

    def rows_batch(t: dict[str, torch.Tensor], rows: np.ndarray) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(rows, dtype=torch.long)
        width = max(int(t["attention_mask"][index].sum(-1).max()), 1) if not config.packing else t["input_ids"].shape[1]
        return {k: v[index, :width].to(rt.device) for k, v in t.items()}  # trim the padding this batch does not need

    history: list[dict[str, Any]] = []
    metrics_file = None
    if output_dir is not None and rt.is_main:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        metrics_file = open(Path(output_dir) / "metrics.jsonl", "w", encoding="utf-8")
    bar = None
    if config.progress and rt.is_main:
        bar = tqdm(total=total_steps, desc="sft", unit="step")
    total_tokens = 0
    try:
        step = 0
        for batch_rows in global_batches(n_rows, config.batch_size, config.epochs, config.seed):
            if step >= total_steps:
                break
            n_tok = int(tokens_per_row[torch.as_tensor(batch_rows)].sum())  # the global batch's scored tokens
            if n_tok == 0:
                continue  # nothing to learn from (only possible with one-token examples)
            local = shard(batch_rows, rt)
            nll, scored, correct = token_losses(model, rows_batch(table, local))
            loss = global_mean(nll.sum(), n_tok, rt)
            check_finite_loss(loss, step)
            rt.backward(loss)
            grad_norm = rt.clip_grad_norm(model.parameters(), config.max_grad_norm or float("inf"))
            lr = scheduler.get_last_lr()[0]
            opt.step()
            scheduler.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            total_tokens += n_tok
            if bar is not None:
                bar.update(1)

            if step % config.log_every == 0 or step == total_steps or step == 1:
                sums = rt.sum(torch.stack([nll.sum(), correct.sum().float()]).detach())
                row = {"step": step, "loss": float(sums[0]) / n_tok, "num_tokens": total_tokens,
                       "mean_token_accuracy": float(sums[1]) / n_tok, "learning_rate": lr, "grad_norm": grad_norm}
                if eval_table is not None and step == total_steps:
                    row["eval/loss"] = _eval_loss(rt.unwrap(model), eval_table, config.batch_size, rt.device)
                history.append(row)
                if metrics_file is not None:
                    metrics_file.write(json.dumps(row) + "\n")
                    metrics_file.flush()
                if bar is not None:
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
            if output_dir is not None and config.save_steps and step % config.save_steps == 0 and rt.is_main:
                save_checkpoint(rt.unwrap(model), tokenizer, Path(output_dir) / f"step-{step}")
        trained = rt.unwrap(model)
        if output_dir is not None and rt.is_main:
            save_checkpoint(trained, tokenizer, Path(output_dir) / "final")
    finally:
        if bar is not None:
            bar.close()
        if metrics_file is not None:
            metrics_file.close()
    trained.eval()
    return Result(trained, history, n_dropped)


def _eval_loss(model: Any, table: dict[str, torch.Tensor], batch_size: int, device: torch.device) -> float:
    """Token-weighted mean NLL of ``table``'s rows, no gradients."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(table["input_ids"]), batch_size):
            nll, scored, _ = token_losses(model, {k: v[start:start + batch_size].to(device) for k, v in table.items()})
            total, count = total + float(nll.sum()), count + int(scored.sum())
    model.train(was_training)
    return total / max(count, 1)
