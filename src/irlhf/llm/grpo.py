"""GRPO: PPO's clipped surrogate with the critic replaced by each prompt's group of samples.

Group Relative Policy Optimization (Shao et al. 2024, "DeepSeekMath", sec. 4.1, outcome supervision). For each
prompt q, G completions o_1 .. o_G ~ pi_old(. | q) (:mod:`irlhf.llm.group_rollout`), scored r_1 .. r_G by
reward_fn; every token of o_i gets the advantage

    A_i = (r_i - mean(r)) / (std(r) + 1e-4)       scale_rewards="group" (the paper; std over the group, Bessel-
                                                  corrected, and the 1e-4 as TRL)
    A_i = r_i - mean(r)                           "none" (Dr. GRPO, Liu et al. 2025: dividing by the std
                                                  favours prompts that are too easy or too hard)
    A_i = (r_i - mean(r)) / (std_batch + 1e-4)   "batch" (TRL's third option: group mean, std over all N)

and the per-token loss (minimised), rho_t = pi(o_t | q, o_<t) / pi_old(o_t | q, o_<t):

    l_t = -min(rho_t A_i, clip(rho_t, 1 - epsilon, 1 + epsilon_high) A_i) + beta k3_t
    k3_t = pi_ref / pi - log(pi_ref / pi) - 1      (the paper's eq. 4: Schulman's unbiased estimator, >= 0)

aggregated over the N = batch_size * G completions by ``loss_type`` (|o_i| = completion tokens, EOS included):

    "grpo"           (1/N) sum_i (1/|o_i|) sum_t l_{i,t}       the paper's eq. 3 (per-sequence token mean)
    "dapo", "bnpo"   sum_{i,t} l_{i,t} / sum_i |o_i|          token mean over the batch (Yu et al. 2025, DAPO)
    "dr_grpo"        sum_{i,t} l_{i,t} / (N max_new_tokens)   a constant divisor (Liu et al. 2025, Dr. GRPO)

(TRL's "dapo" divides by the tokens of the whole generation batch and "bnpo" by those of a device's micro-batch;
here every loss is normalised over the whole batch, so the two coincide.) With num_iterations = 1 (the default)
pi_old = pi: rho = 1 in value and the gradient of the clipped term is the policy gradient -A_i grad log pi(o_t).

Sampled from pi, the gradient of k3_t is on average that of KL(pi_ref || pi); ``use_bias_correction_kl`` weights
it by the ratio, beta rho_t k3_t (DeepSeek-AI 2025, DeepSeek-V3.2; TRL 1.16's default), whose gradient is on
average that of KL(pi || pi_ref) (rho_t has a gradient even where its value is 1).

Defaults: the paper's where TRL 1.16's is a later variant: loss_type="grpo" (TRL: "dapo"), beta=0.04 (the
paper's; TRL: 0.0, after DeepSeek-R1 and Dr. GRPO) and use_bias_correction_kl=False (TRL: True). As TRL:
scale_rewards="group", epsilon=0.2, G=8, num_iterations=1, temperature=1, learning_rate=1e-6, max_grad_norm=1.

    result = train(model, tokenizer, prompts, reward_fn, Config(steps=100))
    result.model, result.history   # rows: "objective/scores", "objective/kl", "loss", "grad_norm", "clipfrac", ...
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from irlhf.core.config import NonNegative
from irlhf.core.errors import ValidationError
from irlhf.llm.group_rollout import GroupBatch, GroupConfig, GroupSize, Result, group_std, run
from irlhf.llm.ppo import kl_estimate
from irlhf.llm.rollout import RewardFn

__all__ = ["Config", "Result", "LossType", "ScaleRewards", "group_advantages", "per_token_loss", "aggregate", "loss",
           "train"]

LossType = Literal["grpo", "dapo", "bnpo", "dr_grpo"]
ScaleRewards = Literal["group", "batch", "none"]
LOSS_TYPES = typing.get_args(LossType)
SCALE_REWARDS = typing.get_args(ScaleRewards)


@dataclasses.dataclass(frozen=True)
class Config(GroupConfig):
    """Options of ``train`` (defaults in brackets). GRPO's own:

    loss_type ["grpo"]: the aggregation (module doc; TRL's default is "dapo").  scale_rewards ["group"]: "group",
    "batch" or "none" (module doc).  beta [0.04]: coefficient of the per-token k3 KL to the reference in the loss
    (the paper's; TRL's default 0.0; 0 = no reference model).  use_bias_correction_kl [False]: weight the KL
    term by the ratio (module doc; TRL's default True).  num_generations [8]: G (>= 2).

    And the group methods' (``irlhf.llm.group_rollout.GroupConfig``): steps [100], batch_size [4] prompts per step,
    micro_batch_size [None], num_iterations [1], learning_rate [1e-6], weight_decay [0.0], max_new_tokens [32],
    temperature [1.0], max_prompt_length [None], add_bos ["auto"], epsilon [0.2], epsilon_high [None = epsilon],
    missing_eos_penalty [None], mask_truncated_completions [False], max_grad_norm [1.0], seed [0], log_every [1],
    save_steps [0], eval_steps [0], progress [True], device [None].
    """

    num_generations: GroupSize = 8
    beta: NonNegative = 0.04
    loss_type: LossType = "grpo"
    scale_rewards: ScaleRewards = "group"
    use_bias_correction_kl: bool = False


# ----------------------------------------------------------------------------------------------- the math


def group_advantages(scores: torch.Tensor, num_generations: int, scale_rewards: str = "group",
                     eps: float = 1e-4) -> torch.Tensor:
    """A_i = r_i - mean of its group, divided by (std + eps) per ``scale_rewards`` (module doc): (N,) -> (N,) fp32,
    rows grouped by prompt (N a multiple of ``num_generations``). A group of equal rewards gets advantages 0."""
    if scale_rewards not in SCALE_REWARDS:
        raise ValidationError(f"scale_rewards={scale_rewards!r}: expected one of {list(SCALE_REWARDS)}")
    if scores.ndim != 1 or num_generations < 2 or len(scores) % num_generations:
        raise ValidationError(f"group_advantages: scores of shape {tuple(scores.shape)} with num_generations="
                              f"{num_generations}; expected (N,) with N a multiple of num_generations >= 2")
    scores = scores.float()
    grouped = scores.view(-1, num_generations)
    advantages = (grouped - grouped.mean(dim=1, keepdim=True)).view(-1)
    if scale_rewards == "group":
        advantages = advantages / (group_std(scores, num_generations).repeat_interleave(num_generations) + eps)
    elif scale_rewards == "batch":
        advantages = advantages / (scores.std(correction=1) + eps)
    return advantages


def per_token_loss(logps: torch.Tensor, old_logps: torch.Tensor, ref_logps: torch.Tensor | None,
                   advantages: torch.Tensor, epsilon: float = 0.2, epsilon_high: float | None = None,
                   beta: float = 0.0, use_bias_correction_kl: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """l_t = -min(rho A, clip(rho, 1 - epsilon, 1 + epsilon_high) A) + beta k3_t, rho = exp(logps - old_logps)
    (k3_t times rho with ``use_bias_correction_kl``).

    logps, old_logps, ref_logps (None when beta = 0): (B, T) per-token log-probs; advantages (B,) -> (l (B, T),
    clipped (B, T) bool: rho outside the clip range on the side where clipping binds, TRL's "region" clip)."""
    high = epsilon if epsilon_high is None else epsilon_high
    ratio = torch.exp(logps - old_logps)
    adv = advantages[:, None]
    loss = -torch.minimum(ratio * adv, torch.clamp(ratio, 1 - epsilon, 1 + high) * adv)
    if beta != 0.0:
        kl = kl_estimate(logps, ref_logps, "k3")
        loss = loss + beta * (kl * ratio if use_bias_correction_kl else kl)
    clipped = ((ratio < 1 - epsilon) & (adv < 0)) | ((ratio > 1 + high) & (adv > 0))
    return loss, clipped.detach()


def _at_least_one(count: torch.Tensor | int) -> torch.Tensor | int:
    return count.clamp(min=1) if torch.is_tensor(count) else max(count, 1)


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, loss_type: str = "grpo",
              max_completion_length: int | None = None, n_sequences: int | None = None,
              n_tokens: torch.Tensor | int | None = None) -> torch.Tensor:
    """The loss from per-token losses (B, T) over mask's tokens, per ``loss_type`` (module doc): "grpo" mean over
    sequences of each one's token mean; "dapo"/"bnpo" sum / n_tokens; "dr_grpo" sum / (n_sequences *
    max_completion_length). ``n_sequences`` / ``n_tokens`` default to these rows' own; give the whole batch's to
    get a micro-batch's share of the whole batch's loss."""
    if loss_type not in LOSS_TYPES:
        raise ValidationError(f"loss_type={loss_type!r}: expected one of {list(LOSS_TYPES)}")
    mask = mask.bool()
    n_sequences = len(mask) if n_sequences is None else n_sequences
    masked = torch.where(mask, per_token, 0.0)
    if loss_type == "grpo":
        return (masked.sum(-1) / mask.sum(-1).clamp(min=1)).sum() / n_sequences
    if loss_type in ("dapo", "bnpo"):
        return masked.sum() / _at_least_one(mask.sum() if n_tokens is None else n_tokens)
    if max_completion_length is None:
        raise ValidationError("loss_type='dr_grpo' needs max_completion_length (the constant divisor)")
    return masked.sum() / (n_sequences * max_completion_length)


def loss(logps: torch.Tensor, old_logps: torch.Tensor, ref_logps: torch.Tensor | None, advantages: torch.Tensor,
         mask: torch.Tensor, loss_type: str = "grpo", epsilon: float = 0.2, epsilon_high: float | None = None,
         beta: float = 0.0, max_completion_length: int | None = None, n_sequences: int | None = None,
         n_tokens: torch.Tensor | int | None = None, use_bias_correction_kl: bool = False
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """GRPO's loss (module doc) and its clip fraction (clipped tokens / n_tokens): ``per_token_loss`` then
    ``aggregate``. Shapes as there; a 0-dim tensor each."""
    per_token, clipped = per_token_loss(logps, old_logps, ref_logps, advantages, epsilon, epsilon_high, beta,
                                        use_bias_correction_kl)
    value = aggregate(per_token, mask, loss_type, max_completion_length, n_sequences, n_tokens)
    return value, (clipped & mask.bool()).sum() / _at_least_one(mask.sum() if n_tokens is None else n_tokens)


# ------------------------------------------------------------------------------------------- the trainer


def train(model: Any, tokenizer: Any, prompts: Sequence[Any], reward_fn: RewardFn, config: Config | None = None,
          *, ref_model: Any = None, output_dir: str | Path | None = None,
          eval_prompts: Sequence[Any] | None = None, resume_from: str | Path | None = None) -> Result:
    """GRPO (module doc): ``steps`` batches of ``batch_size`` prompts x ``num_generations`` samples, each followed
    by ``num_iterations`` optimiser steps.

    model: a causal LM (transformers, or a peft model: then only its adapters train and pi_ref is the model with
    adapters disabled). prompts: strings or chat message lists. reward_fn(prompts, completions) -> (N,) floats,
    called with each prompt repeated G times. ref_model: pi_ref (default: a frozen copy of ``model``; none at all
    with beta = 0). output_dir: metrics.jsonl, checkpoints in "step-{n}" every save_steps and "final".
    eval_prompts: one completion each, sampled and scored every eval_steps steps and after training ("eval/scores",
    "eval/kl" (beta > 0), "eval/completion_length", "eval/eos_fraction" rows). resume_from: a step-N or final
    checkpoint of this trainer (``loop.read_resume``; only ``GroupConfig.RESUMABLE_CHANGES`` may differ); ``model``
    and ``ref_model`` must be the interrupted run's initial ones: pi_ref is taken from them, then the checkpoint's
    weights, optimiser and RNG state are loaded, the steps done are skipped (their prompt batches and sampling seeds
    too), and the history (and metrics.jsonl) starts with the checkpoint's rows.

    History rows: "objective/scores" mean reward_fn score (before any missing-EOS penalty); "objective/kl" mean
    over completions of sum_t (log pi - log pi_ref) at sampling time (nats; only with beta > 0); "loss", "grad_norm"
    (before clipping) and "clipfrac" (share of tokens clipped), means over the num_iterations updates;
    "reward_std" mean within-group std of the scores; "frac_reward_zero_std" share of groups whose scores are all
    equal (no learning signal); "completion_length" (tokens, EOS included); "eos_fraction".
    """
    config = config or Config()

    def advantages_fn(batch: GroupBatch) -> tuple[torch.Tensor, dict[str, float]]:
        return group_advantages(batch.penalised_scores, batch.num_generations, config.scale_rewards), {}

    def loss_fn(logps: torch.Tensor, old_logps: torch.Tensor, ref_logps: torch.Tensor | None,
                advantages: torch.Tensor, mask: torch.Tensor, n_sequences: int, n_tokens: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return loss(logps, old_logps, ref_logps, advantages, mask, config.loss_type, config.epsilon,
                    config.epsilon_high, config.beta, config.max_new_tokens, n_sequences, n_tokens,
                    config.use_bias_correction_kl)

    return run("grpo", model, tokenizer, prompts, reward_fn, config, advantages_fn, loss_fn, old_logps=False,
               ref_model=ref_model, output_dir=output_dir, eval_prompts=eval_prompts, resume_from=resume_from)
