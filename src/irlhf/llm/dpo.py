"""Direct Preference Optimization (Rafailov et al. 2023): fit a policy to preference pairs with no reward model.

The math (lecture 004). The KL-constrained objective max_pi E[r(x, y)] - beta KL(pi || pi_ref) has the optimal
policy pi*(y | x) = pi_ref(y | x) exp(r(x, y) / beta) / Z(x); solved for the reward, r(x, y) = beta log
pi(y | x) / pi_ref(y | x) + beta log Z(x), and Z cancels in the Bradley-Terry probability of y_w > y_l. With the
implicit-reward margin

    h = (log pi(y_w | x) - log pi_ref(y_w | x)) - (log pi(y_l | x) - log pi_ref(y_l | x))

the DPO loss is  -log sigmoid(beta h)  (``loss``; log-probs summed over the completion tokens). The implicit
rewards beta (log pi(y|x) - log pi_ref(y|x)) of the chosen and rejected answers are the logged "rewards/...".

``train`` scores the reference once, before the first update (no frozen copy of the policy is kept), and
runs the chosen and rejected rows of each batch through the policy in one forward call, padded in groups of
similar length; docs/llm.md has the details.

    result = train(model, tokenizer, TextPairs.load("pairs.jsonl"), Config(beta=0.1), output_dir="runs/dpo")
    result.model; result.history[-1]["rewards/margins"]
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from irlhf.core.config import (BaseConfig, NonNegative, NonNegativeInt, Positive, PositiveInt, Range, Seed, check_bool,
                               check_choice, check_number)
from irlhf.core.errors import ValidationError, describe
from irlhf.data.text import TextPairs
from irlhf.llm.logps import sequence_logps
from irlhf.llm.loop import (Device, MaxGradNorm, MaxSteps, Runtime, adamw, check_finite_loss, disable_dropout,
                            global_batches, global_mean, is_peft, make_runtime, save_checkpoint, shard)
from irlhf.llm.reward import length_groups
from irlhf.llm.tokenize import (AddBos, Encoded, MaxLength, PromptLength, TokenizeOptions, collate, encode_pairs,
                                pad_id_of)

__all__ = ["LOSS_TYPES", "Config", "Result", "GroupedLogps", "grouped_logps", "loss", "evaluate",
           "train"]

LossType = Literal["sigmoid", "robust", "hinge", "ipo"]
LOSS_TYPES = typing.get_args(LossType)
METRICS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
           "logps/rejected")


# -- the loss ------------------------------------------------------------------------------------------------
def loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor, ref_chosen_logps: torch.Tensor,
         ref_rejected_logps: torch.Tensor, beta: float = 0.1, loss_type: str = "sigmoid",
         label_smoothing: float = 0.0, reference_free: bool = False
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO losses and implicit rewards from summed completion log-probs (nats), all (B,).

    h = (pi_w - ref_w) - (pi_l - ref_l), with pi_w = log pi(y_w | x) etc. (``reference_free``: ref terms 0);
    eps = ``label_smoothing`` (0 <= eps < 0.5):

    - "sigmoid" (DPO; with eps > 0 the conservative DPO of Mitchell 2023, labels flipped with probability eps):
      -log sigmoid(beta h) (1 - eps) - log sigmoid(-beta h) eps.  (TRL 1.16's "sigmoid" ignores eps.)
    - "robust" (Chowdhury et al. 2024, an unbiased loss under label noise eps):
      (-log sigmoid(beta h) (1 - eps) + log sigmoid(-beta h) eps) / (1 - 2 eps).
    - "hinge" (SLiC, Zhao et al. 2023): relu(1 - beta h).
    - "ipo" (Azar et al. 2023, eq. 17, beta = tau): (h - 1 / (2 beta))^2 on the SUMMED log-probs, the paper's
      form. TRL instead divides each log-ratio by its completion's token count before taking h, so for the same
      beta its IPO loss differs (it matches ours on one-token completions); to get TRL's form, pass per-token
      averaged log-probs.

    Returns (losses, chosen_rewards, rejected_rewards): chosen_rewards = beta (pi_w - ref_w), rejected_rewards
    = beta (pi_l - ref_l), detached (for logging; with ``reference_free`` they are beta pi_w and beta pi_l).
    The scalars and shapes are checked (on the host); the values are not (no device sync): a non-finite
    log-prob gives a non-finite loss, on which ``train`` stops (``loop.check_finite_loss``, once per step).
    """
    check_choice("loss_type", loss_type, LOSS_TYPES)
    check_number("beta", beta, low=0, low_open=True)
    check_number("label_smoothing", label_smoothing, low=0, high=0.5, high_open=True)
    check_bool("reference_free", reference_free)
    named = {"policy_chosen_logps": policy_chosen_logps, "policy_rejected_logps": policy_rejected_logps,
             "ref_chosen_logps": ref_chosen_logps, "ref_rejected_logps": ref_rejected_logps}
    for name, value in named.items():  # shapes only: no device sync (a NaN input gives a NaN loss)
        if not isinstance(value, torch.Tensor) or value.ndim != 1 or value.shape != policy_chosen_logps.shape:
            shown = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else describe(value)
            raise ValidationError(f"{name}: {shown}; expected a 1-D tensor of shape "
                                  f"{tuple(getattr(policy_chosen_logps, 'shape', ()))} like policy_chosen_logps")
    return _pair_losses(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta,
                        loss_type, label_smoothing, reference_free)


def _pair_losses(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                 ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float, loss_type: str,
                 label_smoothing: float, reference_free: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``loss`` without its argument checks: the trainer's hot path (its Config validated the scalars)."""
    if reference_free:  # pi_ref uniform over answers: its log-probs cancel, count as 0
        ref_chosen_logps = torch.zeros_like(ref_chosen_logps)
        ref_rejected_logps = torch.zeros_like(ref_rejected_logps)
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    h = chosen_logratios - rejected_logratios
    eps = label_smoothing
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * h) * (1 - eps) - F.logsigmoid(-beta * h) * eps
    elif loss_type == "robust":
        losses = (-F.logsigmoid(beta * h) * (1 - eps) + F.logsigmoid(-beta * h) * eps) / (1 - 2 * eps)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * h)
    else:  # "ipo": regress h onto 1 / (2 beta) instead of pushing it to infinity
        losses = (h - 1 / (2 * beta)) ** 2
    return losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


# -- configuration -------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Options of ``train`` (defaults in brackets).

    beta [0.1]: strength of the KL constraint to pi_ref (the inverse temperature of the implicit reward; for
    "ipo", the paper's tau).  loss_type ["sigmoid"]: "sigmoid" (DPO), "robust", "hinge" or "ipo" (see ``loss``).
    label_smoothing [0.0]: eps, the assumed probability that a label is flipped (0 <= eps < 0.5; "sigmoid"
    and "robust" only).  reference_free [False]: pi_ref uniform (no reference log-probs).
    learning_rate [5e-6]: AdamW, constant. Rafailov et al. and TRL use 1e-6 for 1B+ models; 5e-6 moves
    GPT-2-small-sized models within an epoch; LoRA adapters and tiny test models want ~1e-4 to 1e-3.
    (TRL decays linearly to 0 by default; here the rate is constant.)
    batch_size [32]: pairs per optimiser step, the GLOBAL batch (split across processes).  epochs [1].
    max_steps [None]: stop after this many steps (None: run all epochs).
    max_length [512]: tokens per sequence (prompt + completion + special tokens); longer completions are cut.
    max_prompt_length [None]: keep the prompt's last tokens.  add_bos ["auto"]: True, False or "auto" (as the
    tokenizer does).  max_grad_norm [1.0]: clip the gradient norm (None: no clipping).  weight_decay [0.0].
    disable_dropout [True]: set the policy's dropout to p = 0 (in place), so that at step 0 a policy equal to its
    reference has loss log 2 exactly (the reference is scored in eval mode); TRL does the same by default.
    seed [0]: batch order and torch's RNG (dropout).  log_every [10]: steps between history rows (the first and
    last steps are always logged).  save_steps [0]: checkpoint every this many steps into output_dir/step-N
    (0: only output_dir/final).  progress [True]: a tqdm bar.  device [None]: "cpu", "cuda", ... (None: cuda if
    available; under ``accelerate launch``, accelerate's choice).
    """

    beta: Positive = 0.1
    loss_type: LossType = "sigmoid"
    label_smoothing: Annotated[float, Range(0, 0.5, high_open=True)] = 0.0
    reference_free: bool = False
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

    def validate(self) -> None:
        if self.label_smoothing and self.loss_type not in ("sigmoid", "robust"):
            raise ValidationError(f"label_smoothing={self.label_smoothing}: only the 'sigmoid' and 'robust' losses "
                                  f"use it, not loss_type={self.loss_type!r}; expected 0.0")

    @property
    def tokenize_options(self) -> TokenizeOptions:
        return TokenizeOptions(max_length=self.max_length, max_prompt_length=self.max_prompt_length,
                               add_bos=self.add_bos, add_eos=True)


@dataclasses.dataclass
class Result:
    """model: the trained (unwrapped) policy.  history: one dict per logged step ("step", "epoch", "loss",
    "rewards/...", "logps/...", "grad_norm", "learning_rate"; an "eval/..." row at the end with eval_data).
    ref_chosen_logps, ref_rejected_logps: (N_kept,) cached reference log-probs of the kept training rows.
    kept_rows: indices of the pairs trained on (the others were dropped by truncation).  steps: optimiser steps."""

    model: Any
    history: list[dict[str, float]]
    ref_chosen_logps: torch.Tensor
    ref_rejected_logps: torch.Tensor
    kept_rows: list[int]
    steps: int


# -- log-probs with less padding ---------------------------------------------------------------------------
class GroupedLogps(nn.Module):
    """Summed completion log-probs of several right-padded batches (length groups) in ONE ``forward`` call.

    A module of its own so that multi-process training (DDP wraps this module) sees the whole step's computation
    in one forward: every parameter is then reduced once per backward. ``model``: a causal LM or a peft model.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor | Sequence[torch.Tensor],
                attention_mask: torch.Tensor | Sequence[torch.Tensor],
                completion_mask: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """input_ids, attention_mask, completion_mask (B, T) -> log pi(y | x) (B,) fp32; lists of such batches
        (each padded to its own width) give their rows' values concatenated in list order."""
        if isinstance(input_ids, torch.Tensor):
            input_ids, attention_mask, completion_mask = [input_ids], [attention_mask], [completion_mask]
        parts = []
        for ids, mask, completion in zip(input_ids, attention_mask, completion_mask):
            parts.append(sequence_logps(self.model, {"input_ids": ids, "attention_mask": mask,
                                                     "completion_mask": completion}))
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


def _sorted_logps(model: Any, items: Sequence[Encoded], pad_id: int, rows_per_batch: int,
                  rt: Runtime) -> torch.Tensor:
    """No-grad log pi(y | x) of every row, (N,) fp32 in the order given: all rows sorted by length (little
    padding) in batches of ``rows_per_batch``; each process computes every world-th batch, then a sum over
    processes fills in the rest (each entry is computed by exactly one process)."""
    order = np.argsort([len(e.input_ids) for e in items], kind="stable")
    out = torch.zeros(len(items), dtype=torch.float32, device=rt.device)
    for start in range(rt.rank * rows_per_batch, len(order), rt.world * rows_per_batch):
        rows = order[start:start + rows_per_batch]
        batch = collate([items[i] for i in rows], pad_id)
        out[torch.as_tensor(rows, device=rt.device)] = sequence_logps(
            model, {k: v.to(rt.device) for k, v in batch.items()})
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
    2 batch_size rows (the rows of a training step), split over processes."""
    with _reference(ref_model, model) as reference:
        logps = _sorted_logps(reference, list(chosen) + list(rejected), pad_id, 2 * batch_size, rt)
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
             ref_rejected: torch.Tensor, config: Config, pad_id: int, rt: Runtime | None = None) -> dict[str, float]:
    """Mean METRICS of the policy over encoded pairs, in eval mode (keys prefixed "eval/")."""
    rt = rt or make_runtime(config.device)
    if isinstance(model, GroupedLogps):
        model = model.model
    was_training = model.training
    model.eval()
    try:  # every row's log-prob, in length-sorted batches of 2 batch_size rows (little padding)
        logps = _sorted_logps(model, list(chosen) + list(rejected), pad_id, 2 * config.batch_size, rt)
    finally:
        model.train(was_training)
    pc, pr = logps[:len(chosen)], logps[len(chosen):]
    losses, cr, rr = _pair_losses(pc, pr, ref_chosen.to(rt.device), ref_rejected.to(rt.device), config.beta,
                                  config.loss_type, config.label_smoothing, config.reference_free)
    means = _metric_sums(losses, cr, rr, pc, pr, torch.ones_like(losses)) / len(chosen)
    return {f"eval/{name}": float(v) for name, v in zip(METRICS, means.tolist())}


# -- training ------------------------------------------------------------------------------------------------
def _encode(tokenizer: Any, data: TextPairs, config: Config, what: str) -> tuple[list[Encoded], list[Encoded],
                                                                                     list[int]]:
    if not isinstance(data, TextPairs):
        raise ValidationError(f"{what}: {describe(data)}; expected irlhf.data.text.TextPairs "
                              "(TextPairs.load(path | datasets.Dataset | list of dicts))")
    return encode_pairs(tokenizer, data, config.tokenize_options)


def train(model: Any, tokenizer: Any, data: TextPairs, config: Config | None = None, *, ref_model: Any | None = None,
          output_dir: str | os.PathLike[str] | None = None, eval_data: TextPairs | None = None) -> Result:
    """DPO-train ``model`` (a causal LM, or a peft model) on preference pairs; see the module docstring.

    ``ref_model``: the reference pi_ref (default: the initial policy, or the base model of a peft model).
    ``output_dir``: write metrics.jsonl as training goes, checkpoints output_dir/step-N every save_steps and
    output_dir/final at the end (save_pretrained, safetensors).  ``eval_data``: pairs scored once at the end.
    """
    config = config or Config()
    if not isinstance(config, Config):
        raise ValidationError(f"config: {describe(config)}; expected irlhf.llm.dpo.Config")
    rt = make_runtime(config.device)
    torch.manual_seed(config.seed)
    pad_id = pad_id_of(tokenizer)
    chosen, rejected, kept_rows = _encode(tokenizer, data, config, "data")  # tokenised once, up front
    evaluation = _encode(tokenizer, eval_data, config, "eval_data") if eval_data is not None else None

    model = model.to(rt.device)
    if config.disable_dropout:
        disable_dropout(model)
    if config.reference_free:
        ref_chosen = ref_rejected = torch.zeros(len(chosen), device=rt.device)
    else:
        ref_chosen, ref_rejected = _reference_logps(ref_model, model, chosen, rejected, pad_id,
                                                    config.batch_size, rt)
    if evaluation is not None:
        eval_ref = ((torch.zeros(len(evaluation[0]), device=rt.device),) * 2 if config.reference_free else
                    _reference_logps(ref_model, model, evaluation[0], evaluation[1], pad_id, config.batch_size, rt))

    model.train()
    module = GroupedLogps(model)  # DDP wraps this: the whole step (all length groups) is one forward call
    module, optimizer = rt.prepare(module, adamw(module, config.learning_rate, config.weight_decay))
    params = [p for p in module.parameters() if p.requires_grad]
    steps_per_epoch = math.ceil(len(chosen) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)

    out = Path(output_dir) if output_dir is not None else None
    log_file = None
    if out is not None and rt.is_main:
        out.mkdir(parents=True, exist_ok=True)
        log_file = open(out / "metrics.jsonl", "w", encoding="utf-8")
    bar = None
    if config.progress and rt.is_main:
        bar = tqdm(total=total_steps, desc="dpo", unit="step")

    def log(row: dict[str, float]) -> None:
        history.append(row)
        if log_file is not None:
            log_file.write(json.dumps(row) + "\n")
            log_file.flush()

    history: list[dict[str, float]] = []
    step = 0
    try:
        for global_rows in global_batches(len(chosen), config.batch_size, config.epochs, config.seed):
            if step >= total_steps:
                break
            rows = shard(global_rows, rt)
            weight = torch.ones(len(rows), device=rt.device)
            if len(rows) == 0:  # a short last batch leaves this process no row: run one at weight 0 (DDP syncs)
                rows, weight = global_rows[:1], torch.zeros(1, device=rt.device)
            # chosen and rejected rows of these pairs, in length groups, all in one forward call
            logps = grouped_logps(module, [chosen[i] for i in rows] + [rejected[i] for i in rows], pad_id,
                                  rt.device)
            policy_chosen, policy_rejected = logps[:len(rows)], logps[len(rows):]
            index = torch.as_tensor(rows, device=rt.device)
            losses, chosen_rewards, rejected_rewards = _pair_losses(
                policy_chosen, policy_rejected, ref_chosen[index], ref_rejected[index], config.beta,
                config.loss_type, config.label_smoothing, config.reference_free)
            batch_loss = global_mean((losses * weight).sum(), len(global_rows), rt)
            check_finite_loss(batch_loss, step)
            rt.backward(batch_loss)
            grad_norm = (rt.clip_grad_norm(params, config.max_grad_norm) if config.max_grad_norm is not None
                         else float(torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])))
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
                save_checkpoint(rt.unwrap(module).model, tokenizer, out / f"step-{step}")
        policy = rt.unwrap(module).model
        if evaluation is not None:
            scores = evaluate(policy, evaluation[0], evaluation[1], eval_ref[0], eval_ref[1], config, pad_id, rt)
            log({"step": step, "epoch": step / steps_per_epoch, **scores})
        if out is not None and rt.is_main:
            save_checkpoint(policy, tokenizer, out / "final")
    finally:
        if bar is not None:
            bar.close()
        if log_file is not None:
            log_file.close()
    return Result(policy, history, ref_chosen.cpu(), ref_rejected.cpu(), kept_rows, step)
