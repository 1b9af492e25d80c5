"""KTO: Kahneman-Tversky Optimization (Ethayarajh, Xu, Muennighoff, Jurafsky & Kiela, ICML 2024, arXiv 2402.01306).

Alignment from UNPAIRED judgements: each row is one answer y to a prompt x, labelled desirable or undesirable
(``irlhf.data.text.TextLabels``; preference pairs are unpaired into one desirable and one undesirable row). The
implied reward r(x, y) = log pi(y | x) / pi_ref(y | x) (summed completion log-probs) is valued against a reference
point z0 with a prospect-theoretic value function (eq. 7; ``irlhf.llm.preference_losses.kto_loss``):

    z0 = max(0, mean_i [log pi(y_i' | x_i) - log pi_ref(y_i' | x_i)]),  not differentiated
    L  = mean over rows of  lambda_D (1 - sigmoid(beta (r - z0)))   if y is desirable,
                            lambda_U (1 - sigmoid(beta (z0 - r)))   otherwise.

z0 estimates KL(pi || pi_ref) from MISMATCHED pairs: in each global batch, in the order drawn, row i's prompt with
the completion of row i - 1 (row 0 with the last row's), the rotation TRL's KTOTrainer uses (``mismatched_rows``).

The loop is the pairwise methods' (``irlhf.llm.pairwise``), with rows in place of pairs: a global batch of rows per
step (split over processes); the batch's rows (with gradients) and its mismatched rows (no gradients: z0 is a
constant) through the policy in ONE forward call, padded in groups of similar length; the mean loss over the global
batch, z0 over the global batch too. The reference log-probs of every row and of every step's mismatched rows are
computed once, before the first update (the batch order is fixed by the seed), so no frozen copy of the policy is
kept. A last batch of one row (N mod batch_size = 1) has no other row to pair with and is skipped.

    result = train(model, tokenizer, TextLabels.load("labels.jsonl"), Config(beta=0.1))
    result.history[-1]["rewards/margins"], result.history[-1]["kl"]
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from irlhf.core.config import Positive, Range
from irlhf.core.errors import ValidationError, describe
from irlhf.data.text import TextLabels, TextPairs
from irlhf.llm import pairwise
from irlhf.llm.loop import (Runtime, adamw, begin_run, check_finite_loss, disable_dropout, global_batches,
                            global_mean, make_runtime, read_resume, save_checkpoint, shard, trainer_state)
from irlhf.llm.pairwise import GroupedLogps, _reference, _sorted_logps
from irlhf.llm.preference_losses import kto_loss, kto_reference_point
from irlhf.llm.reward import length_groups
from irlhf.llm.tokenize import Encoded, collate, encode as encode_one, pad_id_of

__all__ = ["METRICS", "Config", "Result", "KTOLogps", "encode", "mismatched", "mismatched_rows", "train"]

# history keys of a training step ("rewards/chosen", "logps/chosen" only when the batch has a desirable row,
# ".../rejected" only with an undesirable one, "rewards/margins" with both), as TRL's KTOTrainer names them
METRICS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "kl", "logps/chosen", "logps/rejected")
BatchSize = Annotated[int, Range(2)]  # the KL estimate pairs each row's prompt with ANOTHER row's completion


@dataclasses.dataclass(frozen=True)
class Config(pairwise.Config):
    """KTO's options, then those of every pairwise method (``irlhf.llm.pairwise.Config``; defaults in brackets).

    beta [0.1]: the value function's scale of the implied reward (the strength of the KL constraint to pi_ref; the
    paper's and TRL's 0.1).  desirable_weight [1.0]: lambda_D.  undesirable_weight [1.0]: lambda_U; with n_D
    desirable and n_U undesirable rows the paper (eq. 8) suggests lambda_D n_D / (lambda_U n_U) in [1, 4/3].
    batch_size [32]: ROWS per optimiser step, the GLOBAL batch, at least 2 (z0 pairs rows within the batch; TRL
    refuses a per-device batch of 1 too).  learning_rate [5e-6]: TRL's KTOConfig uses 1e-6 for 1B+
    models; tiny models want ~1e-4 to 1e-3 (constant here; TRL decays linearly).
    """

    beta: Positive = 0.1
    desirable_weight: Positive = 1.0
    undesirable_weight: Positive = 1.0
    batch_size: BatchSize = 32


@dataclasses.dataclass
class Result:
    """model: the trained (unwrapped) policy.  history: one dict per logged step ("step", "epoch", METRICS,
    "grad_norm", "learning_rate"; an "eval/..." row at the end with eval_data).  ref_logps: (N_kept,) cached
    reference log-probs of the kept rows.  kept_rows: indices of the rows trained on (of the unpaired rows for
    TextPairs; the others were dropped by truncation).  steps: optimiser steps."""

    model: Any
    history: list[dict[str, float]]
    ref_logps: torch.Tensor
    kept_rows: list[int]
    steps: int


# -- data ---------------------------------------------------------------------------------------------------------
def encode(tokenizer: Any, data: TextLabels | TextPairs, config: Config, what: str
           ) -> tuple[list[Encoded], torch.Tensor, list[int]]:
    """Every row tokenised once: the encoded rows, their labels (N_kept,) bool, the indices of the rows kept (pairs
    are unpaired first: ``TextLabels.from_pairs``). Refuses other data and fewer than 2 rows left."""
    if isinstance(data, TextPairs):
        data = TextLabels.from_pairs(data)
    if not isinstance(data, TextLabels):
        raise ValidationError(f"{what}: {describe(data)}; expected irlhf.data.text.TextLabels (TextLabels.load(path "
                              "| datasets.Dataset | list of {prompt, completion, label} dicts)) or TextPairs")
    items, kept = [], []
    for k in range(len(data)):
        e = encode_one(tokenizer, data.prompt[k], data.completion[k], config.tokenize_options)
        if e is not None:
            items.append(e)
            kept.append(k)
    if len(kept) < 2:
        raise ValidationError(f"{what}: {len(kept)} of {len(data)} rows left after truncation (max_length="
                              f"{config.max_length}, max_prompt_length={config.max_prompt_length}); KTO needs at "
                              "least 2: its KL estimate pairs each prompt with another row's completion")
    return items, torch.tensor([data.label[k] for k in kept], dtype=torch.bool), kept


def mismatched_rows(rows: np.ndarray) -> np.ndarray:
    """The row whose completion each row of a batch is paired with for z0: row i - 1's, row 0 the last row's (TRL's
    rotation (x_1, y_n), (x_2, y_1), ..., (x_n, y_{n-1}))."""
    return np.roll(rows, 1)


def mismatched(prompt_row: Encoded, completion_row: Encoded, max_length: int) -> Encoded:
    """The sequence of one row's prompt tokens followed by another row's completion tokens, cut at max_length."""
    ids = prompt_row.input_ids[:prompt_row.n_prompt] + completion_row.completion_ids
    return Encoded(ids[:max_length], prompt_row.n_prompt)


def _step_batches(n_rows: int, config: Config, total_steps: int) -> Iterator[np.ndarray]:
    """The global batch of each optimiser step (``loop.global_batches``), without a batch of one row."""
    batches = (b for b in global_batches(n_rows, config.batch_size, config.epochs, config.seed) if len(b) > 1)
    for _, rows in zip(range(total_steps), batches):
        yield rows


# -- log-probs -----------------------------------------------------------------------------------------------
class KTOLogps(GroupedLogps):
    """A ``GroupedLogps`` whose one ``forward`` call scores the batch's rows with gradients and its mismatched rows
    without (z0 is not differentiated: no backward through them), so DDP still sees the whole step in one forward."""

    def forward(self, input_ids: Sequence[torch.Tensor], attention_mask: Sequence[torch.Tensor],
                completion_mask: Sequence[torch.Tensor], n_grad: int) -> torch.Tensor:
        """Lists of length-group batches (B_g, T_g); the first ``n_grad`` differentiated -> (sum B_g,) fp32."""
        scored = super().forward(input_ids[:n_grad], attention_mask[:n_grad], completion_mask[:n_grad])
        with torch.no_grad():
            constant = super().forward(input_ids[n_grad:], attention_mask[n_grad:], completion_mask[n_grad:])
        return torch.cat([scored, constant])


def _policy_logps(module: Any, rows: Sequence[Encoded], kl_rows: Sequence[Encoded], pad_id: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(y | x) of the rows (b,) (differentiable) and of the mismatched rows (b,) (constant), one call of
    ``module`` (a ``KTOLogps``), each set padded in groups of similar length (``pairwise.grouped_logps``)."""
    groups = length_groups([len(e.input_ids) for e in rows])
    kl_groups = length_groups([len(e.input_ids) for e in kl_rows])
    batches = ([collate([rows[i] for i in g], pad_id) for g in groups]
               + [collate([kl_rows[i] for i in g], pad_id) for g in kl_groups])
    logps = module(*([b[key].to(device) for b in batches] for key in ("input_ids", "attention_mask",
                                                                      "completion_mask")), len(groups))
    order = np.concatenate(groups + [g + len(rows) for g in kl_groups])
    logps = logps[torch.as_tensor(np.argsort(order, kind="stable"), device=logps.device)]
    return logps[:len(rows)], logps[len(rows):]


@torch.no_grad()
def _reference_logps(ref_model: Any | None, model: Any, items: Sequence[Encoded], steps: Sequence[np.ndarray],
                     config: Config, pad_id: int, rt: Runtime) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference log-probs of every row (N,) and of every step's mismatched rows (sum of the batch sizes,), in
    length-sorted batches of 2 batch_size rows split over processes; the mismatched rows in chunks of steps (a
    bounded number of sequences held at once)."""
    chunk = max(1, 8192 // config.batch_size)
    with _reference(ref_model, model) as reference:
        ref = _sorted_logps(reference, items, pad_id, 2 * config.batch_size, rt)
        parts = [ref.new_zeros(0)]
        for start in range(0, len(steps), chunk):
            kl_items = [mismatched(items[i], items[j], config.max_length)
                        for rows in steps[start:start + chunk] for i, j in zip(rows, mismatched_rows(rows))]
            parts.append(_sorted_logps(reference, kl_items, pad_id, 2 * config.batch_size, rt))
    return ref, torch.cat(parts)


# -- metrics ---------------------------------------------------------------------------------------------------
def _metric_sums(losses: torch.Tensor, rewards: torch.Tensor, logps: torch.Tensor, desirable: torch.Tensor,
                 weight: torch.Tensor) -> torch.Tensor:
    """(7,) local sums: weighted loss, rewards and log-probs of each side, and each side's row count."""
    d, u = desirable.float() * weight, (~desirable).float() * weight
    logps = logps.detach()
    return torch.stack([(losses.detach() * weight).sum(), (rewards * d).sum(), (rewards * u).sum(),
                        (logps * d).sum(), (logps * u).sum(), d.sum(), u.sum()])


def _metrics(sums: torch.Tensor, n_rows: int, z0: torch.Tensor) -> dict[str, float]:
    """METRICS of a batch from its (global) sums: each side's means over that side's rows, as TRL logs them."""
    loss, r_d, r_u, l_d, l_u, n_d, n_u = sums.tolist()
    row = {"loss": loss / n_rows}
    if n_d:
        row["rewards/chosen"] = r_d / n_d
    if n_u:
        row["rewards/rejected"] = r_u / n_u
    if n_d and n_u:
        row["rewards/margins"] = r_d / n_d - r_u / n_u
    row["kl"] = float(z0)
    if n_d:
        row["logps/chosen"] = l_d / n_d
    if n_u:
        row["logps/rejected"] = l_u / n_u
    return row


@torch.no_grad()
def evaluate(model: Any, items: Sequence[Encoded], desirable: torch.Tensor, ref: torch.Tensor,
             ref_kl: torch.Tensor, config: Config, pad_id: int, rt: Runtime | None = None) -> dict[str, float]:
    """METRICS of the policy over encoded rows, all of them one batch (mismatched in their order), in eval mode
    (keys "eval/..."); ``ref``, ``ref_kl``: the reference log-probs of the rows and of their mismatched rows."""
    rt = rt or make_runtime(config.device)
    if isinstance(model, GroupedLogps):
        model = model.model
    n = len(items)
    kl_items = [mismatched(items[i], items[j], config.max_length)
                for i, j in zip(range(n), mismatched_rows(np.arange(n)))]
    was_training = model.training
    model.eval()
    try:
        logps = _sorted_logps(model, list(items) + kl_items, pad_id, 2 * config.batch_size, rt)
    finally:
        model.train(was_training)
    ref, ref_kl, desirable = ref.to(rt.device), ref_kl.to(rt.device), desirable.to(rt.device)
    z0 = kto_reference_point(logps[n:], ref_kl)
    losses, rewards = kto_loss(logps[:n], ref, desirable, z0, config.beta, config.desirable_weight,
                               config.undesirable_weight)
    sums = _metric_sums(losses, rewards, logps[:n], desirable, torch.ones_like(losses))
    return {f"eval/{name}": value for name, value in _metrics(sums, n, z0).items()}


# -- training ----------------------------------------------------------------------------------------------
def train(model: Any, tokenizer: Any, data: TextLabels | TextPairs, config: Config | None = None, *,
          ref_model: Any | None = None, output_dir: str | os.PathLike[str] | None = None,
          eval_data: TextLabels | TextPairs | None = None,
          resume_from: str | os.PathLike[str] | None = None) -> Result:
    """KTO-train ``model`` (a causal LM, or a peft model) on labelled answers (TextPairs are unpaired).

    ``ref_model``: pi_ref (default: the initial policy, or the base model of a peft model).  ``output_dir``: write
    metrics.jsonl as training goes, checkpoints output_dir/step-N every save_steps and output_dir/final at the end
    (save_pretrained, safetensors, and the trainer state).  ``eval_data``: rows scored once at the end (one batch).
    ``resume_from``: a step-N or final checkpoint of KTO to continue from, as ``irlhf.llm.dpo.train``'s.
    """
    config = config or Config()
    if not isinstance(config, Config):
        raise ValidationError(f"config: {describe(config)}; expected irlhf.llm.kto.Config")
    rt = make_runtime(config.device)
    torch.manual_seed(config.seed)
    pad_id = pad_id_of(tokenizer)
    items, desirable, kept_rows = encode(tokenizer, data, config, "data")  # tokenised once, up front
    evaluation = encode(tokenizer, eval_data, config, "eval_data") if eval_data is not None else None
    desirable = desirable.to(rt.device)

    n_rows, b = len(items), config.batch_size
    steps_per_epoch = math.ceil(n_rows / b) - (1 if n_rows % b == 1 else 0)  # a last batch of one row is skipped
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    steps = list(_step_batches(n_rows, config, total_steps))
    resume = read_resume(resume_from, config, total_steps, model) if resume_from is not None else None

    model = model.to(rt.device)
    if config.disable_dropout:
        disable_dropout(model)
    # mismatched rows' reference precomputed (the seed fixes every batch): length-sorted, no frozen copy of the policy
    ref, ref_kl = _reference_logps(ref_model, model, items, steps, config, pad_id, rt)
    if evaluation is not None:
        eval_items = evaluation[0]
        eval_ref, eval_ref_kl = _reference_logps(ref_model, model, eval_items, [np.arange(len(eval_items))],
                                                 config, pad_id, rt)
    if resume is not None:  # only now: the reference above is the INITIAL policy's
        resume.load_weights(model)

    model.train()
    module = KTOLogps(model)  # DDP wraps this: the whole step (rows and mismatched rows) is one forward call
    module, optimizer = rt.prepare(module, adamw(module, config.learning_rate, config.weight_decay))
    params = [p for p in module.parameters() if p.requires_grad]

    out = Path(output_dir) if output_dir is not None else None
    metrics = out / "metrics.jsonl" if out is not None and rt.is_main else None
    step, log = begin_run(resume, optimizer, rt.device, metrics)  # steps done and history so far (when resumed)
    offset = sum(len(rows) for rows in steps[:step])  # where the steps not done yet start in ref_kl
    bar = (tqdm(total=total_steps, initial=step, desc="kto", unit="step") if config.progress and rt.is_main
           else None)
    training_rows = log.rows  # the rows a checkpoint's trainer state holds

    def checkpoint(path: Path) -> None:
        save_checkpoint(rt.unwrap(module).model, tokenizer, path,
                        trainer_state(config, step, optimizer, training_rows, rt.device))

    try:
        for global_rows in steps[step:]:
            positions = shard(np.arange(len(global_rows)), rt)  # this process's share of the batch
            weight = torch.ones(len(positions), device=rt.device)
            if len(positions) == 0:  # a short batch leaves this process no row: run one at weight 0 (DDP syncs)
                positions, weight = np.arange(1), torch.zeros(1, device=rt.device)
            rows, partners = global_rows[positions], mismatched_rows(global_rows)[positions]
            kl_rows = [mismatched(items[i], items[j], config.max_length) for i, j in zip(rows, partners)]
            logps, kl_logps = _policy_logps(module, [items[i] for i in rows], kl_rows, pad_id, rt.device)
            index = torch.as_tensor(rows, device=rt.device)
            kl_ref = ref_kl[torch.as_tensor(offset + positions, device=rt.device)]
            offset += len(global_rows)
            # z0 (kto_reference_point) over the GLOBAL batch: the mismatched log-ratios summed over processes
            z0 = (rt.sum(((kl_logps - kl_ref) * weight).sum()) / len(global_rows)).clamp(min=0)
            losses, rewards = kto_loss(logps, ref[index], desirable[index], z0, config.beta,
                                       config.desirable_weight, config.undesirable_weight)
            batch_loss = global_mean((losses * weight).sum(), len(global_rows), rt)
            check_finite_loss(batch_loss, step)
            rt.backward(batch_loss)
            grad_norm = rt.clip_grad_norm(params, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step == 1 or step % config.log_every == 0 or step == total_steps:
                sums = rt.sum(_metric_sums(losses, rewards, logps, desirable[index], weight))
                log({"step": step, "epoch": step / steps_per_epoch, **_metrics(sums, len(global_rows), z0),
                     "grad_norm": grad_norm, "learning_rate": config.learning_rate})  # before the update
            if bar is not None:
                bar.update(1)
            if out is not None and config.save_steps and step % config.save_steps == 0 and rt.is_main:
                checkpoint(out / f"step-{step}")
        policy = rt.unwrap(module).model
        training_rows = list(log.rows)  # final's trainer state: without the eval row
        if evaluation is not None:
            scores = evaluate(policy, eval_items, evaluation[1], eval_ref, eval_ref_kl, config, pad_id, rt)
            log({"step": step, "epoch": step / steps_per_epoch, **scores})
        if out is not None and rt.is_main:
            checkpoint(out / "final")
    finally:
        if bar is not None:
            bar.close()
        log.close()
    return Result(policy, log.rows, ref.cpu(), kept_rows, step)
