"""The training loop the pairwise preference methods share: DPO (``irlhf.llm.dpo``), SimPO (``irlhf.llm.simpo``)
and ORPO (``irlhf.llm.orpo``) differ only in their loss of a pair's log-probs.

Per optimiser step: a global batch of pairs (every process draws the same one and takes its share), the chosen and
rejected rows of this process's pairs through the policy in ONE forward call (padded in groups of similar length:
``grouped_logps``), the method's per-pair losses from a ``PairBatch`` (summed completion log-probs, completion token
counts, cached reference log-probs when the method has a reference), their mean over the global batch, backward,
clip, AdamW. The reference is scored once, before the first update (no frozen copy of the policy is kept).
Metrics (``METRICS``) are means over the global batch, logged as the DPO literature and TRL name them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from irlhf.core.config import BaseConfig, NonNegative, NonNegativeInt, Positive, PositiveInt, Seed
from irlhf.core.errors import ValidationError, describe
from irlhf.data.text import TextPairs
from irlhf.llm.logps import sequence_logps
from irlhf.llm.loop import (Device, MaxGradNorm, MaxSteps, Runtime, adamw, begin_run, check_finite_loss,
                            disable_dropout, global_batches, global_mean, is_peft, make_runtime, read_resume,
                            save_checkpoint, shard, trainer_state)
from irlhf.llm.reward import length_groups
from irlhf.llm.tokenize import (AddBos, Encoded, MaxLength, PromptLength, TokenizeOptions, collate, encode_pairs,
                                pad_id_of)

METRICS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
           "logps/rejected")


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Options every pairwise method shares (defaults in brackets; each method's Config adds its own).

    learning_rate [5e-6]: AdamW, constant.  batch_size [32]: pairs per optimiser step, the GLOBAL batch (split
    across processes).  epochs [1].  max_steps [None]: stop after this many steps (None: run all epochs).
    max_length [512]: tokens per sequence (prompt + completion + special tokens); longer completions are cut.
    max_prompt_length [None]: keep the prompt's last tokens.  add_bos ["auto"]: True, False or "auto" (as the
    tokenizer does).  max_grad_norm [1.0]: clip the gradient norm (None: no clipping).  weight_decay [0.0].
    disable_dropout [True]: set the policy's dropout to p = 0 (in place), as TRL does: the policy then computes the
    function the reference is scored with (eval mode), so DPO starts at loss log 2 exactly.
    seed [0]: batch order and torch's RNG (dropout).  log_every [10]: steps between history rows (the first and
    last steps are always logged).  save_steps [0]: checkpoint every this many steps into output_dir/step-N
    (0: only output_dir/final; each holds the trainer state too: ``train(..., resume_from=...)``).
    progress [True]: a tqdm bar.  device [None]: "cpu", "cuda", ... (None: cuda if available; under
    ``accelerate launch``, accelerate's choice).
    """

    learning_rate: Positive = 5e-6
    batch_size: PositiveInt = 32
    epochs: PositiveInt = 1
    max_steps: MaxSteps = None
    max_length: MaxLength = 512
    max_prompt_length: PromptLength = None
    add_bos: AddBos = "auto"
    max_grad_norm: MaxGradNorm = 1.0
    weight_decay: NonNegative = 0.0
    disable_dropout: bool = True
    seed: Seed = 0
    log_every: PositiveInt = 10
    save_steps: NonNegativeInt = 0
    progress: bool = True
    device: Device = None

    @property
    def tokenize_options(self) -> TokenizeOptions:
        return TokenizeOptions(max_length=self.max_length, max_prompt_length=self.max_prompt_length,
                               add_bos=self.add_bos, add_eos=True)


@dataclasses.dataclass
class PairBatch:
    """What a method's loss sees of b pairs, all (b,): summed completion log-probs of the policy (``chosen``,
    ``rejected``) and of the reference (zeros for reference-free methods), completion token counts; and the
    global batch's pair count and chosen tokens (a token mean over the batch, as ORPO's NLL, is then a mean of
    per-pair terms, also over processes)."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    ref_chosen: torch.Tensor
    ref_rejected: torch.Tensor
    chosen_tokens: torch.Tensor
    rejected_tokens: torch.Tensor
    global_pairs: int
    global_chosen_tokens: float
    # with whole_chosen: log-probs of the chosen rows' prompt AND answer tokens (every token after the first),
    # their counts, and their total over the global batch (ORPO's NLL as its authors compute it); else None / 0
    chosen_whole: torch.Tensor | None = None
    chosen_whole_tokens: torch.Tensor | None = None
    global_chosen_whole_tokens: float = 0.0


# losses (b,), chosen rewards (b,), rejected rewards (b,): the mean of the losses over the global batch is trained
PairLoss = Callable[[PairBatch], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclasses.dataclass
class Result:
    """model: the trained (unwrapped) policy.  history: one dict per logged step ("step", "epoch", METRICS,
    "grad_norm", "learning_rate"; an "eval/..." row at the end with eval_data).  ref_chosen_logps,
    ref_rejected_logps: (N_kept,) cached reference log-probs of the kept training rows (zeros without a
    reference).  kept_rows: indices of the pairs trained on (the others were dropped by truncation).  steps:
    optimiser steps."""

    model: Any
    history: list[dict[str, float]]
    ref_chosen_logps: torch.Tensor
    ref_rejected_logps: torch.Tensor
    kept_rows: list[int]
    steps: int


def completion_tokens(items: Sequence[Encoded]) -> torch.Tensor:
    """(N,) the completion positions ``sequence_logps`` sums over: every completion token with a token before it."""
    return torch.tensor([len(e.input_ids) - max(e.n_prompt, 1) for e in items], dtype=torch.float32)


def whole_tokens(items: Sequence[Encoded]) -> torch.Tensor:
    """(N,) the tokens a prompt-and-completion log-prob sums over: every token after the first."""
    return torch.tensor([len(e.input_ids) - 1 for e in items], dtype=torch.float32)


# -- log-probs with less padding ---------------------------------------------------------------------------
class GroupedLogps(nn.Module):
    """Summed completion log-probs of several right-padded batches (length groups) in ONE ``forward`` call.

    A module of its own so that multi-process training (DDP wraps this module) sees the whole step's computation
    in one forward: every parameter is then reduced once per backward. ``model``: a causal LM or a peft model.
    ``whole``: rows give (2,): the completion's sum and the sum over prompt and completion (``sequence_logps``).
    """

    def __init__(self, model: Any, whole: bool = False) -> None:
        super().__init__()
        self.model, self.whole = model, whole

    def forward(self, input_ids: torch.Tensor | Sequence[torch.Tensor],
                attention_mask: torch.Tensor | Sequence[torch.Tensor],
                completion_mask: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """input_ids, attention_mask, completion_mask (B, T) -> log pi(y | x) (B,) fp32 ((B, 2) with ``whole``);
        lists of such batches (each padded to its own width) give their rows' values concatenated in list order."""
        if isinstance(input_ids, torch.Tensor):
            input_ids, attention_mask, completion_mask = [input_ids], [attention_mask], [completion_mask]
        parts = []
        for ids, mask, completion in zip(input_ids, attention_mask, completion_mask):
            parts.append(sequence_logps(self.model, {"input_ids": ids, "attention_mask": mask,
                                                     "completion_mask": completion}, whole=self.whole))
        return torch.cat(parts)


def grouped_logps(module: Any, items: Sequence[Encoded], pad_id: int,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """log pi(y | x) of each encoded sequence, (N,) fp32 in the order given, in one call of ``module`` (a
    ``GroupedLogps``, possibly DDP-wrapped): rows are padded in groups of similar length (reward.length_groups),
    which gives the same values as one padded batch with fewer padded tokens."""
    if not items:
        raise ValidationError("grouped_logps: no sequences")
    groups = length_groups([len(e.input_ids) for e in items])
    batches = [collate([items[i] for i in group], pad_id) for group in groups]
    logps = module(*([b[key].to(device) for b in batches]
                     for key in ("input_ids", "attention_mask", "completion_mask")))
    inverse = torch.as_tensor(np.argsort(np.concatenate(groups), kind="stable"), device=logps.device)
    return logps[inverse]


def _length_order(items: Sequence[Encoded], paired: bool) -> np.ndarray:
    """Row indices sorted by length; ``paired`` (items = chosen rows then rejected rows): pairs sorted by their
    longer row, each pair's two rows adjacent (so a batch of an even number of rows shares each pair's prompt)."""
    lengths = np.array([len(e.input_ids) for e in items])
    if not paired:
        return np.argsort(lengths, kind="stable")
    n = len(items) // 2
    pair_order = np.argsort(np.maximum(lengths[:n], lengths[n:]), kind="stable")
    return np.stack([pair_order, pair_order + n], axis=1).reshape(-1)


def _sorted_logps(model: Any, items: Sequence[Encoded], pad_id: int, rows_per_batch: int,
                  rt: Runtime, whole: bool = False, paired: bool = False) -> torch.Tensor:
    """No-grad log pi(y | x) of every row, (N,) fp32 ((N, 2) with ``whole``) in the order given: all rows sorted
    by length (little padding; ``paired``: ``_length_order``) in batches of ``rows_per_batch``; each process
    computes every world-th batch, then a sum over processes fills in the rest (each entry is computed by exactly
    one process)."""
    order = _length_order(items, paired)
    out = torch.zeros((len(items), 2) if whole else len(items), dtype=torch.float32, device=rt.device)
    for start in range(rt.rank * rows_per_batch, len(order), rt.world * rows_per_batch):
        rows = order[start:start + rows_per_batch]
        batch = collate([items[i] for i in rows], pad_id)
        out[torch.as_tensor(rows, device=rt.device)] = sequence_logps(
            model, {k: v.to(rt.device) for k, v in batch.items()}, whole=whole)
    return rt.sum(out)


# -- reference log-probs, computed once --------------------------------------------------------------------
@contextlib.contextmanager
def _reference(ref_model: Any | None, model: Any) -> Iterator[Any]:
    """The reference model to score with, in eval mode (no dropout); for a peft ``model`` without
    ``ref_model``, ``model`` with its adapters disabled (base weights = the model before training)."""
    reference = model if ref_model is None else ref_model
    was_training = reference.training
    reference.eval()
    try:
        if ref_model is None and is_peft(model):
            with model.disable_adapter():
                yield model
        else:
            yield reference
    finally:
        reference.train(was_training)


@torch.no_grad()
def _reference_logps(ref_model: Any | None, model: Any, chosen: Sequence[Encoded], rejected: Sequence[Encoded],
                     pad_id: int, batch_size: int, rt: Runtime) -> tuple[torch.Tensor, torch.Tensor]:
    """All rows' reference log-probs (chosen, rejected), computed once, in length-sorted batches of
    batch_size pairs (the rows of a training step; a pair's rows together, sharing its prompt), split over
    processes."""
    with _reference(ref_model, model) as reference:
        logps = _sorted_logps(reference, list(chosen) + list(rejected), pad_id, 2 * batch_size, rt, paired=True)
    return logps[:len(chosen)], logps[len(chosen):]


# -- metrics -------------------------------------------------------------------------------------------------
def _metric_sums(losses: torch.Tensor, chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor,
                 policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Local sums of METRICS (weighted rows), to be summed over processes and divided by the global batch."""
    margins = chosen_rewards - rejected_rewards
    columns = (losses.detach(), chosen_rewards, rejected_rewards, margins, (margins > 0).float(),
               policy_chosen.detach(), policy_rejected.detach())
    return torch.stack([(c * weight).sum() for c in columns])


@torch.no_grad()
def evaluate(model: Any, chosen: Sequence[Encoded], rejected: Sequence[Encoded], ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, pair_loss: PairLoss, config: Config, pad_id: int,
             rt: Runtime | None = None, whole_chosen: bool = False) -> dict[str, float]:
    """Mean METRICS of the policy over encoded pairs (all of them one batch), in eval mode (keys "eval/...")."""
    rt = rt or make_runtime(config.device)
    if isinstance(model, GroupedLogps):
        model = model.model
    was_training = model.training
    model.eval()
    try:  # every row's log-prob, in length-sorted batches of 2 batch_size rows (little padding)
        logps = _sorted_logps(model, list(chosen) + list(rejected), pad_id, 2 * config.batch_size, rt,
                              whole_chosen, paired=True)
    finally:
        model.train(was_training)
    n = len(chosen)
    answer = logps[:, 0] if whole_chosen else logps
    pc, pr = answer[:n], answer[n:]
    nc, nr = completion_tokens(chosen).to(rt.device), completion_tokens(rejected).to(rt.device)
    batch = PairBatch(pc, pr, ref_chosen.to(rt.device), ref_rejected.to(rt.device), nc, nr, n, float(nc.sum()))
    if whole_chosen:
        nw = whole_tokens(chosen).to(rt.device)
        batch.chosen_whole, batch.chosen_whole_tokens, batch.global_chosen_whole_tokens = logps[:n, 1], nw, float(
            nw.sum())
    losses, cr, rr = pair_loss(batch)
    means = _metric_sums(losses, cr, rr, pc, pr, torch.ones_like(losses)) / len(chosen)
    return {f"eval/{name}": float(v) for name, v in zip(METRICS, means.tolist())}


# -- training ------------------------------------------------------------------------------------------------
def encode(tokenizer: Any, data: TextPairs, config: Config, what: str) -> tuple[list[Encoded], list[Encoded],
                                                                                    list[int]]:
    """Chosen and rejected rows of the pairs, tokenised once, and the indices of the pairs kept."""
    if not isinstance(data, TextPairs):
        raise ValidationError(f"{what}: {describe(data)}; expected irlhf.data.text.TextPairs "
                              "(TextPairs.load(path | datasets.Dataset | list of dicts))")
    check_distinct(data, what)
    return encode_pairs(tokenizer, data, config.tokenize_options)


def check_distinct(data: TextPairs, what: str = "data") -> None:
    """Refuse a pair whose chosen and rejected texts are equal: it carries no preference (its loss is constant)."""
    same = next((k for k, (c, r) in enumerate(zip(data.chosen, data.rejected)) if c == r), None)
    if same is not None:
        raise ValidationError(f"{what} row {same + 1}: chosen and rejected are the same text "
                              f"({describe(data.chosen[same], 40)}); expected two different responses")


def train_pairs(name: str, model: Any, tokenizer: Any, data: TextPairs, config: Config, pair_loss: PairLoss, *,
                uses_reference: bool, whole_chosen: bool = False, ref_model: Any | None = None,
                output_dir: str | os.PathLike[str] | None = None, eval_data: TextPairs | None = None,
                resume_from: str | os.PathLike[str] | None = None) -> Result:
    """Train ``model`` (a causal LM, or a peft model) on preference pairs with a method's ``pair_loss``.

    ``uses_reference``: score the reference once up front (``ref_model``, default: the initial policy, or the base
    model of a peft model); otherwise the PairBatch's reference log-probs are zeros.  ``output_dir``: write
    metrics.jsonl as training goes, checkpoints output_dir/step-N every save_steps and output_dir/final at the end
    (save_pretrained, safetensors, and the trainer state: ``loop.trainer_state``).  ``eval_data``: pairs scored
    once at the end.  ``name``: the progress bar's.  ``resume_from``: a step-N or final checkpoint of this trainer
    (``loop.read_resume``); ``model``, ``ref_model`` and ``data`` must be the interrupted run's initial ones: the
    reference is scored with them, then the checkpoint's weights, optimiser and RNG state are loaded, the steps
    done are skipped, and the history (and metrics.jsonl) starts with the checkpoint's rows.
    """
    rt = make_runtime(config.device)
    torch.manual_seed(config.seed)
    pad_id = pad_id_of(tokenizer)
    chosen, rejected, kept_rows = encode(tokenizer, data, config, "data")  # tokenised once, up front
    evaluation = encode(tokenizer, eval_data, config, "eval_data") if eval_data is not None else None
    chosen_tokens = completion_tokens(chosen).to(rt.device)
    rejected_tokens = completion_tokens(rejected).to(rt.device)
    chosen_whole_tokens = whole_tokens(chosen).to(rt.device) if whole_chosen else None
    steps_per_epoch = math.ceil(len(chosen) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    resume = read_resume(resume_from, config, total_steps, model) if resume_from is not None else None

    model = model.to(rt.device)
    if config.disable_dropout:
        disable_dropout(model)

    def references(c: Sequence[Encoded], r: Sequence[Encoded]) -> tuple[torch.Tensor, torch.Tensor]:
        if not uses_reference:
            return torch.zeros(len(c), device=rt.device), torch.zeros(len(r), device=rt.device)
        return _reference_logps(ref_model, model, c, r, pad_id, config.batch_size, rt)

    ref_chosen, ref_rejected = references(chosen, rejected)
    eval_ref = references(*evaluation[:2]) if evaluation is not None else None
    if resume is not None:  # only now: the reference above is the INITIAL policy's
        resume.load_weights(model)

    model.train()
    module = GroupedLogps(model, whole_chosen)  # DDP wraps this: the whole step (all length groups) is one forward
    module, optimizer = rt.prepare(module, adamw(module, config.learning_rate, config.weight_decay))
    params = [p for p in module.parameters() if p.requires_grad]

    out = Path(output_dir) if output_dir is not None else None
    metrics = out / "metrics.jsonl" if out is not None and rt.is_main else None
    step, log = begin_run(resume, optimizer, rt.device, metrics)  # steps done and history so far (when resumed)

    bar = None
    if config.progress and rt.is_main:
        bar = tqdm(total=total_steps, initial=step, desc=name, unit="step")

    training_rows = log.rows  # the rows a checkpoint's trainer state holds

    def checkpoint(path: Path) -> None:
        save_checkpoint(rt.unwrap(module).model, tokenizer, path,
                        trainer_state(config, step, optimizer, training_rows, rt.device))

    try:  # the global batches of the steps not done yet (the order is fixed by the seed)
        for global_rows in itertools.islice(global_batches(len(chosen), config.batch_size, config.epochs,
                                                           config.seed), step, None):
            if step >= total_steps:
                break
            rows = shard(global_rows, rt)
            weight = torch.ones(len(rows), device=rt.device)
            if len(rows) == 0:  # a short last batch leaves this process no row: run one at weight 0 (DDP syncs)
                rows, weight = global_rows[:1], torch.zeros(1, device=rt.device)
            # chosen and rejected rows of these pairs, in length groups, all in one forward call
            logps = grouped_logps(module, [chosen[i] for i in rows] + [rejected[i] for i in rows], pad_id,
                                  rt.device)
            b = len(rows)
            answer = logps[:, 0] if whole_chosen else logps
            policy_chosen, policy_rejected = answer[:b], answer[b:]
            index, global_index = (torch.as_tensor(r, device=rt.device) for r in (rows, global_rows))
            batch = PairBatch(policy_chosen, policy_rejected, ref_chosen[index], ref_rejected[index],
                              chosen_tokens[index], rejected_tokens[index], len(global_rows),
                              float(chosen_tokens[global_index].sum()))
            if whole_chosen:
                batch.chosen_whole, batch.chosen_whole_tokens = logps[:b, 1], chosen_whole_tokens[index]
                batch.global_chosen_whole_tokens = float(chosen_whole_tokens[global_index].sum())
            losses, chosen_rewards, rejected_rewards = pair_loss(batch)
            batch_loss = global_mean((losses * weight).sum(), len(global_rows), rt)
            check_finite_loss(batch_loss, step)
            rt.backward(batch_loss)
            grad_norm = rt.clip_grad_norm(params, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step == 1 or step % config.log_every == 0 or step == total_steps:
                sums = _metric_sums(losses, chosen_rewards, rejected_rewards, policy_chosen, policy_rejected, weight)
                means = (rt.sum(sums) / len(global_rows)).tolist()  # metrics of this batch, before the update
                log({"step": step, "epoch": step / steps_per_epoch, **dict(zip(METRICS, means)),
                     "grad_norm": grad_norm, "learning_rate": config.learning_rate})
            if bar is not None:
                bar.update(1)
            if out is not None and config.save_steps and step % config.save_steps == 0 and rt.is_main:
                checkpoint(out / f"step-{step}")
        policy = rt.unwrap(module).model
        training_rows = list(log.rows)  # final's trainer state: without the eval row
        if evaluation is not None:
            scores = evaluate(policy, evaluation[0], evaluation[1], eval_ref[0], eval_ref[1], pair_loss, config,
                              pad_id, rt, whole_chosen)
            log({"step": step, "epoch": step / steps_per_epoch, **scores})
        if out is not None and rt.is_main:
            checkpoint(out / "final")
    finally:
        if bar is not None:
            bar.close()
        log.close()
    return Result(policy, log.rows, ref_chosen.cpu(), ref_rejected.cpu(), kept_rows, step)
