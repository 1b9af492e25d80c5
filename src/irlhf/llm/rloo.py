"""RLOO: REINFORCE with a leave-one-out baseline over each prompt's k samples.

REINFORCE Leave-One-Out (Kool et al. 2019, "Buy 4 REINFORCE samples, get a baseline for free!"; Ahmadian et al.
2024, "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human Feedback in LLMs"). For each
prompt x, k = num_generations completions y_1 .. y_k ~ pi(. | x) (:mod:`irlhf.llm.group_rollout`), each one a
single action with the sequence reward

    R_i = r(x, y_i) - beta sum_t (log pi_old(y_t) - log pi_ref(y_t))     kl_penalty="reward" (the paper; TRL)
    R_i = r(x, y_i)                                                        kl_penalty="loss" (KL in the loss below)

and the advantage against the mean of the other k - 1 samples (an unbiased baseline: it does not depend on y_i)

    A_i = R_i - (1 / (k - 1)) sum_{j != i} R_j          (so sum_i A_i = 0 in each group)

optionally standardised over the batch (normalize_advantages: (A - mean) / (std + 1e-4), as TRL). Loss
(minimised), with the sequence ratio rho_i = pi(y_i | x) / pi_old(y_i | x) = exp(sum_t log pi - log pi_old):

    loss = (1/N) sum_i -min(rho_i A_i, clip(rho_i, 1 - epsilon, 1 + epsilon_high) A_i)
           (+ beta (1/N) sum_i sum_t k3_t   with kl_penalty="loss"; k3 as in :mod:`irlhf.llm.grpo`)

With num_iterations = 1 (the default) rho_i = 1 in value and this is the paper's REINFORCE loss, gradient
-(1/N) sum_i A_i grad log pi(y_i | x); more passes clip the sequence ratio as TRL 1.16's RLOOTrainer does.

Defaults as TRL 1.16's RLOOConfig: k=2, beta=0.05 with the KL in the reward (k1 estimate from pi_old, summed over
the completion), normalize_advantages=False, epsilon=0.2, num_iterations=1, learning_rate=1e-6, temperature=1.

    result = train(model, tokenizer, prompts, reward_fn, Config(steps=100))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from irlhf.core.config import NonNegative
from irlhf.core.errors import ValidationError
from irlhf.llm.group_rollout import GroupBatch, GroupConfig, GroupSize, Result, run, sequence_kl
from irlhf.llm.ppo import kl_estimate
from irlhf.llm.rollout import RewardFn

__all__ = ["Config", "Result", "KLPenalty", "leave_one_out_advantages", "loss", "train"]

KLPenalty = Literal["reward", "loss"]


@dataclasses.dataclass(frozen=True)
class Config(GroupConfig):
    """Options of ``train`` (defaults in brackets). RLOO's own:

    num_generations [2]: k samples per prompt (>= 2).  beta [0.05]: KL coefficient (0 = no reference model).
    kl_penalty ["reward"]: "reward" subtracts beta * the sequence k1 KL from each reward (the paper; TRL);
    "loss" adds beta * the summed k3 KL to the loss instead.  normalize_advantages [False]: standardise the
    advantages over the batch.

    And the group methods' (``irlhf.llm.group_rollout.GroupConfig``): steps [100], batch_size [4] prompts per step,
    micro_batch_size [None], num_iterations [1], learning_rate [1e-6], weight_decay [0.0], max_new_tokens [32],
    temperature [1.0], max_prompt_length [None], add_bos ["auto"], epsilon [0.2], epsilon_high [None = epsilon],
    missing_eos_penalty [None], mask_truncated_completions [False], max_grad_norm [1.0], seed [0], log_every [1],
    save_steps [0], eval_steps [0], progress [True], device [None].
    """

    num_generations: GroupSize = 2
    beta: NonNegative = 0.05
    kl_penalty: KLPenalty = "reward"
    normalize_advantages: bool = False


# ----------------------------------------------------------------------------------------------- the math


def leave_one_out_advantages(rewards: torch.Tensor, num_generations: int, normalize: bool = False,
                             eps: float = 1e-4) -> torch.Tensor:
    """A_i = R_i - mean of the other R_j of its group: (N,) -> (N,) fp32, rows grouped by prompt (N a multiple of
    ``num_generations`` >= 2). ``normalize``: then (A - mean) / (std + eps) over all N (std Bessel-corrected)."""
    if rewards.ndim != 1 or num_generations < 2 or len(rewards) % num_generations:
        raise ValidationError(f"leave_one_out_advantages: rewards of shape {tuple(rewards.shape)} with num_generations="
                              f"{num_generations}; expected (N,) with N a multiple of num_generations >= 2")
    grouped = rewards.float().view(-1, num_generations)
    baselines = (grouped.sum(dim=1, keepdim=True) - grouped) / (num_generations - 1)
    advantages = (grouped - baselines).view(-1)
    if normalize:
        advantages = (advantages - advantages.mean()) / (advantages.std(correction=1) + eps)
    return advantages


def loss(logps: torch.Tensor, old_logps: torch.Tensor, ref_logps: torch.Tensor | None, advantages: torch.Tensor,
         mask: torch.Tensor, epsilon: float = 0.2, epsilon_high: float | None = None, kl_beta: float = 0.0,
         n_sequences: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """RLOO's loss (module doc) and its clip fraction (sequences clipped / n_sequences), 0-dim tensors.

    logps, old_logps, ref_logps: (B, T) per-token log-probs, summed over mask's tokens into sequence log-probs;
    advantages (B,). ``kl_beta``: the coefficient of the in-loss KL (kl_penalty="loss"; 0 with the KL in the
    reward). ``n_sequences``: the whole batch's count, to get a micro-batch's share (default: these rows)."""
    mask = mask.bool()
    n_sequences = len(mask) if n_sequences is None else n_sequences
    high = epsilon if epsilon_high is None else epsilon_high
    ratio = torch.exp(torch.where(mask, logps - old_logps, 0.0).sum(-1))
    per_sequence = -torch.minimum(ratio * advantages, torch.clamp(ratio, 1 - epsilon, 1 + high) * advantages)
    if kl_beta != 0.0:
        per_sequence = per_sequence + kl_beta * torch.where(mask, kl_estimate(logps, ref_logps, "k3"), 0.0).sum(-1)
    clipped = ((ratio < 1 - epsilon) & (advantages < 0)) | ((ratio > 1 + high) & (advantages > 0))
    return per_sequence.sum() / n_sequences, clipped.detach().float().sum() / n_sequences


# ------------------------------------------------------------------------------------------- the trainer


def train(model: Any, tokenizer: Any, prompts: Sequence[Any], reward_fn: RewardFn, config: Config | None = None,
          *, ref_model: Any = None, output_dir: str | Path | None = None,
          eval_prompts: Sequence[Any] | None = None, resume_from: str | Path | None = None) -> Result:
    """RLOO (module doc): ``steps`` batches of ``batch_size`` prompts x ``num_generations`` samples, each followed by
    ``num_iterations`` optimiser steps. Arguments, outputs and history rows as ``irlhf.llm.grpo.train``'s ("clipfrac"
    is the share of sequences clipped), plus "objective/rlhf_reward": the mean of R_i (score - beta * sequence KL,
    with kl_penalty="reward" and beta > 0)."""
    config = config or Config()
    kl_in_reward = config.kl_penalty == "reward" and config.beta > 0

    def advantages_fn(batch: GroupBatch) -> tuple[torch.Tensor, dict[str, float]]:
        rewards, extra = batch.penalised_scores, {}
        if kl_in_reward:  # R_i = r_i - beta * sum_t (log pi_old - log pi_ref)
            rewards = rewards - config.beta * sequence_kl(batch.logps, batch.ref_logps, batch.completion_mask)
            extra["objective/rlhf_reward"] = float(rewards.mean())
        advantages = leave_one_out_advantages(rewards, batch.num_generations, config.normalize_advantages)
        return advantages, extra

    def loss_fn(logps: torch.Tensor, old_logps: torch.Tensor, ref_logps: torch.Tensor | None,
                advantages: torch.Tensor, mask: torch.Tensor, n_sequences: int, n_tokens: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        kl_beta = config.beta if config.kl_penalty == "loss" else 0.0
        return loss(logps, old_logps, ref_logps, advantages, mask, config.epsilon, config.epsilon_high, kl_beta,
                    n_sequences)

    return run("rloo", model, tokenizer, prompts, reward_fn, config, advantages_fn, loss_fn, old_logps=kl_in_reward,
               ref_model=ref_model, output_dir=output_dir, eval_prompts=eval_prompts, resume_from=resume_from)
