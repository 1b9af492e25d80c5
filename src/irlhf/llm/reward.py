"""Reward model for RLHF (InstructGPT, Ouyang et al. 2022): a language model with a scalar head, trained on
human comparisons with the Bradley-Terry cross-entropy (lecture 004, step 2 of the RLHF pipeline).

The model. r_phi(x, y) is a linear head ``score`` applied to the backbone's final hidden state at the LAST
NON-PAD token of ``[BOS] x y [EOS]`` (found from the attention mask, so it is right whatever the pad id; Hugging
Face's own pooling looks for the pad id and picks the wrong token when pad == eos). The model is a Hugging Face
``AutoModelForSequenceClassification`` with ``num_labels=1`` (``make_reward_model`` builds one from a causal LM:
same backbone weights, fresh head).

The loss. For a pair (x, y_w, y_l) with y_w preferred and an optional margin m (how much better y_w is):

    L_BT = -log sigma(r(x, y_w) - r(x, y_l) - m)                 (``bradley_terry.loss`` with r_i = r_w - m)
    L    = L_BT + center_rewards_coefficient * (r_w + r_l)^2    (optional centring, as TRL: rewards near 0)

For K-way rankings y_1 > ... > y_K (``TextRankings``) the Plackett-Luce likelihood
-sum_k log softmax_{j >= k}(r_j)[k] (``plackett_luce.loss``; equals L_BT for K = 2) with centring
coefficient * (sum_k r_k)^2. Losses are means over the global batch (``loop.global_mean``). For pairs one
forward call scores chosen and rejected together (2B rows; padded in groups of similar length, which wastes
fewer tokens); for rankings one call scores all responses.

    rm = make_reward_model("path/to/causal-lm", tokenizer)        # or an LM instance, or a config
    result = train(rm, tokenizer, TextPairs.load("prefs.jsonl"), Config(learning_rate=1e-5))
    score = as_reward_fn(result.model, tokenizer)                  # (prompts, completions) -> (N,) float64
    evaluate(result.model, tokenizer, held_out_pairs)              # {"accuracy": ..., "margin": ...}
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, NonNegative, NonNegativeInt, Positive, PositiveInt, Seed, check_number
from irlhf.core.errors import ValidationError, describe
from irlhf.data.text import TextPairs, TextRankings
from irlhf.llm.loop import (Device, LRSchedule, MaxGradNorm, MaxSteps, adamw, check_finite_loss, disable_dropout,
                            global_batches, global_mean, make_runtime, quiet_transformers, save_checkpoint, shard)
from irlhf.llm.tokenize import (AddBos, Encoded, MaxLength, PromptLength, TokenizeOptions, collate, encode, pad_id_of,
                                tokenizer_adds_bos)
from irlhf.nn.losses import plackett_luce_loss
from irlhf.nn.losses import bradley_terry_loss as bt_loss

__all__ = ["Config", "Result", "RewardModel", "make_reward_model", "rewards", "encoded_rewards", "length_groups",
           "pairwise_loss", "train",
           "as_reward_fn", "evaluate"]

LR_SCHEDULES = typing.get_args(LRSchedule)


# -- the model ---------------------------------------------------------------------------------
def _hf_model(model: Any) -> Any:
    """The Hugging Face model inside a ``RewardModel`` / peft wrapper (peft's LoRA layers stay in place)."""
    if isinstance(model, RewardModel):
        model = model.model
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class RewardModel(nn.Module):
    """r(x, y) = score(h_last) from a sequence-classification model (``model``: HF or peft-wrapped HF).

    A module of its own so that multi-process training (DDP) sees the whole computation in one ``forward``.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        hf = _hf_model(model)
        prefix = getattr(hf, "base_model_prefix", "")
        if not prefix or not hasattr(hf, prefix) or not hasattr(hf, "score"):
            raise ValidationError(f"model: {type(hf).__name__}; expected a Hugging Face *ForSequenceClassification "
                                  "model with a backbone (base_model_prefix) and a 'score' head, "
                                  "e.g. from make_reward_model")
        if getattr(hf.config, "num_labels", 1) != 1:
            raise ValidationError(f"model.config.num_labels={hf.config.num_labels}: expected 1 (a scalar reward)")

    def forward(self, input_ids: torch.Tensor | Sequence[torch.Tensor],
                attention_mask: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """input_ids, attention_mask (B, T), right-padded -> rewards (B,) fp32. Lists of such batches (length
        groups, each padded to its own width) give their rewards concatenated, all in one ``forward`` call."""
        if isinstance(input_ids, (list, tuple)):
            return torch.cat([self(ids, mask) for ids, mask in zip(input_ids, attention_mask)])
        hf = _hf_model(self.model)
        # no padding in this batch: no mask, so attention can take its plain causal fast path
        mask = None if bool(attention_mask.all()) else attention_mask
        hidden = getattr(hf, hf.base_model_prefix)(input_ids=input_ids, attention_mask=mask,
                                                    use_cache=False).last_hidden_state  # (B, T, H)
        last = attention_mask.long().sum(-1) - 1  # index of the last real token (right padding)
        pooled = hidden[torch.arange(len(last), device=hidden.device), last]  # (B, H)
        return hf.score(pooled)[:, 0].float()


def make_reward_model(source: Any, tokenizer: Any = None, *, seed: int = 0, dtype: torch.dtype | None = None) -> Any:
    """A ``num_labels=1`` sequence-classification model from a local causal-LM directory, an LM instance (its
    backbone weights are copied) or a ``PretrainedConfig`` (random weights). The head is drawn with ``seed``.
    ``tokenizer`` (optional) sets ``config.pad_token_id`` (Hugging Face's own forward needs one)."""
    from transformers import AutoModelForSequenceClassification, PretrainedConfig  # why: optional (llm extra), slow

    torch.manual_seed(seed)  # the fresh head's initialisation
    kwargs = {} if dtype is None else {"dtype": dtype}
    if isinstance(source, (str, os.PathLike)):
        if not Path(source).is_dir():
            raise ValidationError(f"source={str(source)!r}: no such model directory; expected a local "
                                  "Hugging Face model directory")
        with quiet_transformers():
            rm = AutoModelForSequenceClassification.from_pretrained(str(source), num_labels=1, **kwargs)
    elif isinstance(source, PretrainedConfig):
        config = source.__class__.from_dict({**_one_label(source.to_dict())})
        rm = AutoModelForSequenceClassification.from_config(config, **kwargs)
    elif hasattr(source, "config") and hasattr(source, "base_model_prefix"):
        config = source.config.__class__.from_dict(_one_label(source.config.to_dict()))
        rm = AutoModelForSequenceClassification.from_config(config).to(dtype or source.dtype)
        prefix = source.base_model_prefix
        getattr(rm, prefix).load_state_dict(getattr(source, prefix).state_dict())
    else:
        raise ValidationError(f"source: {describe(source)}; expected a model directory, a causal LM or a config")
    if tokenizer is not None:
        rm.config.pad_token_id = pad_id_of(tokenizer)
    elif rm.config.pad_token_id is None:
        rm.config.pad_token_id = rm.config.eos_token_id
    return rm


def _one_label(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict for one scalar output (a stale 2-label id2label map would contradict num_labels=1)."""
    config = {k: v for k, v in config.items() if k not in ("id2label", "label2id")}
    return {**config, "num_labels": 1}


def rewards(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """r(x, y) for a collated batch (input_ids, attention_mask (B, T), right padding) -> (B,) fp32."""
    for key in ("input_ids", "attention_mask"):
        if key not in batch:
            raise ValidationError(f"rewards: batch lacks {key!r}; make it with irlhf.llm.tokenize.collate")
    if not bool((batch["attention_mask"].sum(-1) > 0).all()):
        raise ValidationError("rewards: a row with an all-zero attention_mask; expected at least one token per row")
    if not isinstance(model, RewardModel) and not isinstance(getattr(model, "module", None), RewardModel):
        model = RewardModel(model)  # a bare HF model (a DDP-wrapped RewardModel is called as is)
    return model(batch["input_ids"], batch["attention_mask"])


def pairwise_loss(reward_chosen: torch.Tensor, reward_rejected: torch.Tensor, margin: torch.Tensor | None = None,
                  center_rewards_coefficient: float | None = None) -> torch.Tensor:
    """Per-pair loss (B,): -log sigma(r_w - r_l - m) [+ coef * (r_w + r_l)^2]."""
    shifted = reward_chosen if margin is None else reward_chosen - margin  # fold the margin into r_w
    per_pair = bt_loss(shifted, reward_rejected, torch.ones_like(reward_chosen), reduction="none")
    if center_rewards_coefficient:
        per_pair = per_pair + center_rewards_coefficient * (reward_chosen + reward_rejected) ** 2
    return per_pair


def length_groups(lengths: Sequence[int], overhead: float = 0.05, max_groups: int = 8) -> list[np.ndarray]:
    """Split row indices, sorted by length, into the groups that minimise padded tokens + per-pass overhead.

    One padded batch costs len(rows) * max length; rows of similar length padded together waste less. Each
    extra forward pass is charged ``overhead`` times the one-batch cost (per-call work that does not shrink).
    """
    lengths = np.asarray(lengths)
    order = np.argsort(lengths, kind="stable")
    one_batch = float(len(lengths) * lengths.max())
    best, best_cost = [order], one_batch
    for k in range(2, min(max_groups, len(lengths)) + 1):
        groups = np.array_split(order, k)
        cost = sum(len(g) * float(lengths[g].max()) for g in groups) + (k - 1) * overhead * one_batch
        if cost < best_cost:
            best, best_cost = groups, cost
    return best


def encoded_rewards(model: Any, items: Sequence[Encoded], pad_id: int, device: torch.device) -> torch.Tensor:
    """r for each encoded sequence (N,) fp32, in the order given; rows are padded in groups of similar length
    (``length_groups``), which gives the same values with fewer padded tokens."""
    groups = length_groups([len(e.input_ids) for e in items])
    batches = [collate([items[i] for i in group], pad_id) for group in groups]
    if not isinstance(model, RewardModel) and not isinstance(getattr(model, "module", None), RewardModel):
        model = RewardModel(model)
    # one forward call over all groups (under DDP every parameter is then reduced once)
    r = model([b["input_ids"].to(device) for b in batches], [b["attention_mask"].to(device) for b in batches])
    inverse = torch.as_tensor(np.argsort(np.concatenate(groups)), device=device)
    return r[inverse]


# -- config and result -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Options of ``train`` (defaults in brackets).

    learning_rate [1e-5]: AdamW step size.  weight_decay [0.0].  lr_schedule ["linear"]: "linear" decays to 0
    over the run (TRL's default), "constant" keeps it.  batch_size [32]: pairs (or ranked lists) per GLOBAL
    batch, over all processes.  epochs [1]: passes over the data.  max_steps [None]: stop after this many
    optimiser steps (None = epochs decide).  max_length [512]: tokens per sequence (prompt + response + EOS).
    max_prompt_length [None]: keep the prompt's last tokens.  add_bos ["auto"]: follow the tokenizer.
    add_eos [True]: end every response with EOS (the reward is read there).  disable_dropout [True]: set every dropout
    probability to 0 (TRL's default; the loss then has no sampling noise).  use_margin [True]: use the rows'
    ``margin`` when the data has one.  center_rewards_coefficient [None]: weight of (r_w + r_l)^2 (TRL's
    centring; e.g. 0.01).  max_grad_norm [1.0]: gradient clipping (None = off).  seed [0]: order of rows and
    head init.  log_every [10]: steps between history rows.  save_steps [0]: checkpoint every this many steps
    (0 = final only).  eval_steps [0]: evaluate eval_data every this many steps (0 = only at the end).
    progress [True]: a tqdm bar.  device [None]: "cpu", "cuda", ... (None = cuda if available).
    """

    learning_rate: Positive = 1e-5
    weight_decay: NonNegative = 0.0
    lr_schedule: LRSchedule = "linear"
    batch_size: PositiveInt = 32
    epochs: PositiveInt = 1
    max_steps: MaxSteps = None
    max_length: MaxLength | None = 512
    max_prompt_length: PromptLength = None
    add_bos: AddBos = "auto"
    add_eos: bool = True
    disable_dropout: bool = True
    use_margin: bool = True
    center_rewards_coefficient: NonNegative | None = None
    max_grad_norm: MaxGradNorm = 1.0
    seed: Seed = 0
    log_every: PositiveInt = 10
    save_steps: NonNegativeInt = 0
    eval_steps: NonNegativeInt = 0
    progress: bool = True
    device: Device = None

    def tokenize_options(self) -> TokenizeOptions:
        return TokenizeOptions(self.max_length, self.max_prompt_length, self.add_bos, self.add_eos)


@dataclasses.dataclass
class Result:
    """model: the trained sequence-classification model (unwrapped).  history: one dict per logged step.
    n_dropped: rows dropped because truncation left a response empty."""

    model: Any
    history: list[dict[str, Any]]
    n_dropped: int = 0


# -- data --------------------------------------------------------------------------------------
def _encode_rankings(tokenizer: Any, data: TextRankings, options: TokenizeOptions
                     ) -> tuple[list[list[Encoded]], list[int]]:
    """Each kept row's responses, encoded best first; rows where any response would be empty are dropped."""
    rows, kept = [], []
    for k in range(len(data)):
        encoded = [encode(tokenizer, data.prompt[k], text, options) for text in data.ordered(k)]
        if all(e is not None for e in encoded):
            rows.append(encoded)
            kept.append(k)
    if not kept:
        raise ValidationError(f"all {len(data)} ranked lists dropped: their prompts leave no room for a response "
                              f"(max_length={options.max_length}, max_prompt_length={options.max_prompt_length})")
    return rows, kept


def _ranking_scores(model: Any, rows: Sequence[list[Encoded]], pad_id: int, device: torch.device
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass over every response of ``rows`` -> scores (N, K_max) best first, mask (N, K_max)."""
    r = encoded_rewards(model, [e for row in rows for e in row], pad_id, device)
    k_max = max(len(row) for row in rows)
    mask = torch.zeros((len(rows), k_max), dtype=torch.bool, device=device)
    for i, row in enumerate(rows):
        mask[i, :len(row)] = True
    scores = r.new_zeros((len(rows), k_max)).masked_scatter(mask, r)
    return scores, mask


# -- training ----------------------------------------------------------------------------------
def train(model: Any, tokenizer: Any, data: TextPairs | TextRankings, config: Config | None = None, *,
          output_dir: str | os.PathLike[str] | None = None, eval_data: TextPairs | TextRankings | None = None
          ) -> Result:
    """Fit the reward model on preference pairs (Bradley-Terry) or ranked lists (Plackett-Luce)."""
    config = config or Config()
    if not isinstance(data, (TextPairs, TextRankings)):
        raise ValidationError(f"data: {describe(data)}; expected TextPairs or TextRankings")
    if eval_data is not None and not isinstance(eval_data, (TextPairs, TextRankings)):
        raise ValidationError(f"eval_data: {describe(eval_data)}; expected TextPairs, TextRankings or None")
    rt = make_runtime(config.device)
    torch.manual_seed(config.seed)
    options, pad_id = config.tokenize_options(), pad_id_of(tokenizer)
    if options.add_bos == "auto":  # decide once, not once per encoded sequence
        options = dataclasses.replace(options, add_bos=tokenizer_adds_bos(tokenizer))
    is_pairs = isinstance(data, TextPairs)

    # tokenise once up front
    if is_pairs:
        chosen, rejected = [], []
        kept = []
        for k in range(len(data)):
            c = encode(tokenizer, data.prompt[k], data.chosen[k], options)
            r = encode(tokenizer, data.prompt[k], data.rejected[k], options)
            if c is not None and r is not None:
                chosen.append(c)
                rejected.append(r)
                kept.append(k)
        if not kept:
            raise ValidationError(f"all {len(data)} pairs dropped: their prompts leave no room for a response "
                                  f"(max_length={options.max_length}, max_prompt_length={options.max_prompt_length})")
        use_margin = config.use_margin and data.margin is not None
        margins = torch.tensor(data.margin[kept], dtype=torch.float32) if use_margin else None
    else:
        ranked, kept = _encode_rankings(tokenizer, data, options)
    n_rows = len(kept)

    if not isinstance(model, RewardModel):
        model = RewardModel(model)
    if config.disable_dropout:
        disable_dropout(model)
    model.train()
    opt = adamw(model, config.learning_rate, config.weight_decay)
    model, opt = rt.prepare(model, opt)
    steps_per_epoch = math.ceil(n_rows / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    schedule = (lambda step: 1.0) if config.lr_schedule == "constant" else (lambda step: 1.0 - step / total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, schedule)

    history: list[dict[str, Any]] = []
    metrics_file = None
    if output_dir is not None and rt.is_main:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        metrics_file = open(Path(output_dir) / "metrics.jsonl", "w", encoding="utf-8")
    bar = None
    if config.progress and rt.is_main:
        bar = tqdm(total=total_steps, desc="reward", unit="step")
    try:
        step = 0
        for batch_rows in global_batches(n_rows, config.batch_size, config.epochs, config.seed):
            if step >= total_steps:
                break
            local = shard(batch_rows, rt)
            if is_pairs:
                r = encoded_rewards(model, [chosen[i] for i in local] + [rejected[i] for i in local], pad_id,
                                    rt.device)  # one pass (in length groups) over chosen and rejected together
                r_w, r_l = r[:len(local)], r[len(local):]  # chosen rows first, then rejected
                m = None if margins is None else margins[local].to(rt.device)
                per_row = pairwise_loss(r_w, r_l, m, config.center_rewards_coefficient)
                correct = (r_w > r_l).float()
                best, worst = r_w, r_l
            else:
                scores, mask = _ranking_scores(model, [ranked[i] for i in local], pad_id, rt.device)
                per_row = plackett_luce_loss(scores, mask, reduction="none")
                if config.center_rewards_coefficient:
                    per_row = per_row + config.center_rewards_coefficient * (scores * mask).sum(-1) ** 2
                # pairwise accuracy: the share of ordered pairs (i better than j) with r_i > r_j, per row
                pairs_ok = (scores[:, :, None] > scores[:, None, :]) & mask[:, :, None] & mask[:, None, :]
                upper = torch.ones_like(pairs_ok[0]).triu(1)
                n_pairs = (mask.sum(-1) * (mask.sum(-1) - 1) / 2).float()
                correct = (pairs_ok & upper).sum((-1, -2)).float() / n_pairs
                last = mask.sum(-1) - 1
                best, worst = scores[:, 0], scores[torch.arange(len(last)), last]
            loss = global_mean(per_row.sum(), len(batch_rows), rt)
            check_finite_loss(loss, step)
            rt.backward(loss)
            grad_norm = rt.clip_grad_norm(model.parameters(), config.max_grad_norm or float("inf"))
            lr = scheduler.get_last_lr()[0]
            opt.step()
            scheduler.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if bar is not None:
                bar.update(1)

            if step % config.log_every == 0 or step == total_steps or step == 1:
                sums = rt.sum(torch.stack([per_row.sum(), correct.sum(), best.sum(), worst.sum()]).detach())
                loss_v, acc, r_best, r_worst = (sums / len(batch_rows)).tolist()
                row = {"step": step, "loss": loss_v, "accuracy": acc, "rewards/chosen": r_best,
                       "rewards/rejected": r_worst, "rewards/margins": r_best - r_worst,
                       "learning_rate": lr, "grad_norm": grad_norm}
                if eval_data is not None and config.eval_steps and step % config.eval_steps == 0:
                    row.update(_eval_row(rt.unwrap(model), tokenizer, eval_data, options))
                history.append(row)
                if metrics_file is not None:
                    metrics_file.write(json.dumps(row) + "\n")
                    metrics_file.flush()
                if bar is not None:
                    bar.set_postfix(loss=f"{loss_v:.4f}", acc=f"{acc:.2f}")
            if output_dir is not None and config.save_steps and step % config.save_steps == 0 and rt.is_main:
                save_checkpoint(_hf_model_of(rt.unwrap(model)), tokenizer, Path(output_dir) / f"step-{step}")
        trained = _hf_model_of(rt.unwrap(model))
        if eval_data is not None and history and "eval/accuracy" not in history[-1]:
            history[-1].update(_eval_row(rt.unwrap(model), tokenizer, eval_data, options))
            if metrics_file is not None:
                metrics_file.write(json.dumps({"step": step, **{k: v for k, v in history[-1].items()
                                                                if k.startswith("eval/")}}) + "\n")
        if output_dir is not None and rt.is_main:
            save_checkpoint(trained, tokenizer, Path(output_dir) / "final")
    finally:
        if bar is not None:
            bar.close()
        if metrics_file is not None:
            metrics_file.close()
    trained.eval()
    return Result(trained, history, len(data) - n_rows)


def _hf_model_of(module: Any) -> Any:
    return module.model if isinstance(module, RewardModel) else module


def _eval_row(model: Any, tokenizer: Any, data: TextPairs | TextRankings, options: TokenizeOptions) -> dict:
    pairs = data if isinstance(data, TextPairs) else data.to_pairs()
    result = evaluate(model, tokenizer, pairs, options)
    return {"eval/accuracy": result["accuracy"], "eval/margin": result["margin"]}


# -- using the trained model -------------------------------------------------------------------
def as_reward_fn(model: Any, tokenizer: Any, options: TokenizeOptions | None = None, batch_size: int = 64
                 ) -> Callable[[Sequence[Any], Sequence[str]], np.ndarray]:
    """A function (prompts, completions) -> (N,) float64 rewards r(x, y): no gradients, ``batch_size`` sequences
    per forward pass. An empty completion is scored as the prompt followed by EOS; pairs that truncation would
    leave without completion tokens raise."""
    check_number("batch_size", batch_size, low=1, integer=True)
    options = options or TokenizeOptions()
    if options.add_bos == "auto":  # decide once, not once per encoded sequence
        options = dataclasses.replace(options, add_bos=tokenizer_adds_bos(tokenizer))
    pad_id = pad_id_of(tokenizer)
    module = model if isinstance(model, RewardModel) else RewardModel(model)
    rows = _hf_model(module).get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:  # its ids would index past the embedding (or, wrapped, mean other words)
        raise ValidationError(f"tokenizer: {len(tokenizer)} tokens, but the reward model's embedding has {rows} rows: "
                              "it was trained with another tokenizer; expected the reward model's own tokenizer")

    def reward_fn(prompts: Sequence[Any], completions: Sequence[str]) -> np.ndarray:
        if len(prompts) != len(completions):
            raise ValidationError(f"reward_fn: {len(prompts)} prompts and {len(completions)} completions; "
                                  "expected equal lengths")
        encoded = []
        for k, (prompt, completion) in enumerate(zip(prompts, completions)):
            if isinstance(completion, str) and not completion.strip():  # EOS alone (blank text): "prompt EOS"
                if tokenizer.eos_token is None or not options.add_eos:
                    raise ValidationError(f"completions[{k}]: empty, and no EOS to score it by")
                completion = tokenizer.eos_token
            e = encode(tokenizer, prompt, completion, options)
            if e is None:
                raise ValidationError(f"completions[{k}]: empty after truncation (max_length={options.max_length})")
            encoded.append(e)
        device = next(module.parameters()).device
        out = np.zeros(len(encoded), dtype=np.float64)
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                order = np.argsort([len(e.input_ids) for e in encoded], kind="stable")  # similar lengths together
                for start in range(0, len(encoded), batch_size):
                    rows = order[start:start + batch_size]
                    batch = collate([encoded[i] for i in rows], pad_id)
                    r = module(batch["input_ids"].to(device), batch["attention_mask"].to(device))
                    out[rows] = r.double().cpu().numpy()
        finally:
            module.train(was_training)
        return out

    return reward_fn


def evaluate(model: Any, tokenizer: Any, pairs: TextPairs, options: TokenizeOptions | None = None,
             batch_size: int = 64) -> dict[str, float]:
    """Pairwise accuracy (share of pairs with r_w > r_l) and mean margin r_w - r_l over ``pairs``."""
    if not isinstance(pairs, TextPairs):
        raise ValidationError(f"pairs: {describe(pairs)}; expected TextPairs")
    reward_fn = as_reward_fn(model, tokenizer, options, batch_size)
    r_w = reward_fn(pairs.prompt, pairs.chosen)
    r_l = reward_fn(pairs.prompt, pairs.rejected)
    return {"accuracy": float(np.mean(r_w > r_l)), "margin": float(np.mean(r_w - r_l)), "n_pairs": len(pairs)}
