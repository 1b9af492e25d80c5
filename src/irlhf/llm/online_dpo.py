"""Online DPO: DPO on pairs sampled from the current policy and ranked by a reward model or judge, as they come.

Guo et al. (2024), "Direct Language Model Alignment from Online AI Feedback" (OAIF); Calandriello et al. (2024).
Offline DPO (:mod:`irlhf.llm.dpo`) learns from pairs sampled once, from another policy; here every step samples
G = num_generations completions y_1 .. y_G ~ pi_theta(. | x) of each prompt (:mod:`irlhf.llm.group_rollout`),
scores them with reward_fn, takes the best as y_w and the worst as y_l (with G = 2, the paper's and TRL's pair), and
takes one DPO step on those pairs:

    h = (log pi(y_w | x) - log pi_ref(y_w | x)) - (log pi(y_l | x) - log pi_ref(y_l | x))
    loss = (1 / B) sum over the B prompts of  l(h)      l: DPO's "sigmoid" -log sigmoid(beta h), or "ipo", "hinge",
                                                        "robust" (``irlhf.llm.dpo.loss``)

log-probs summed over the completion tokens (EOS included) at temperature 1, the policy's own distribution (samples
are drawn at ``temperature``). A prompt whose samples all score the same carries no preference: with
ties="drop" (the default) it adds 0 to the sum (the mean stays over all B prompts, so micro-batches add up);
ties="first" trains on it with the first sample as y_w, as TRL 1.16's OnlineDPOTrainer does.

    result = train(model, tokenizer, prompts, reward_fn, Config(steps=100, beta=0.1))
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import torch

from irlhf.core.config import Positive, Range
from irlhf.core.errors import ValidationError, describe
from irlhf.llm.dpo import LossType, loss as dpo_loss
from irlhf.llm.group_rollout import GroupBatch, GroupConfig, GroupSize, Result, run
from irlhf.llm.rollout import RewardFn

__all__ = ["Config", "Result", "TIES", "pair_signs", "loss", "train"]

Ties = Literal["drop", "first"]
TIES = typing.get_args(Ties)


@dataclasses.dataclass(frozen=True)
class Config(GroupConfig):
    """Options of ``train`` (defaults in brackets). Online DPO's own:

    beta [0.1]: DPO's beta (strength of the KL constraint to pi_ref; > 0).  loss_type ["sigmoid"]: DPO's loss
    (``irlhf.llm.dpo.LOSS_TYPES``).  label_smoothing [0.0]: for "sigmoid" (cDPO) and "robust".
    num_generations [2]: samples per prompt; the best and worst make the pair.  ties ["drop"]: "drop" or "first"
    (module doc).  learning_rate [5e-7]: TRL's default (tiny test models want ~1e-3).  temperature [0.9]: sampling
    temperature (TRL's default); log-probs are always at temperature 1.  micro_batch_size [None]: a multiple of
    num_generations (a pair is never split).

    And the group methods' (``irlhf.llm.group_rollout.GroupConfig``): steps [100], batch_size [4] prompts per step,
    weight_decay [0.0], max_new_tokens [32], max_prompt_length [None], add_bos ["auto"], missing_eos_penalty
    [None], max_grad_norm [1.0], seed [0], log_every [1], save_steps [0], eval_steps [0], progress [True],
    device [None]. num_iterations must stay 1 (one DPO step per sampled batch), epsilon and epsilon_high are unused.
    """

    beta: Positive = 0.1
    loss_type: LossType = "sigmoid"
    label_smoothing: Annotated[float, Range(0, 0.5, high_open=True)] = 0.0
    num_generations: GroupSize = 2
    ties: Ties = "drop"
    learning_rate: Positive = 5e-7
    temperature: Positive = 0.9

    def validate(self) -> None:
        super().validate()
        if self.num_iterations != 1:
            raise ValidationError(f"num_iterations={self.num_iterations}: online DPO takes one step per sampled "
                                  "batch; expected 1")
        if self.micro_batch_size is not None and self.micro_batch_size % self.num_generations:
            raise ValidationError(f"micro_batch_size={self.micro_batch_size}: expected a multiple of "
                                  f"num_generations={self.num_generations} (a prompt's samples stay together)")
        if self.label_smoothing and self.loss_type not in ("sigmoid", "robust"):
            raise ValidationError(f"label_smoothing={self.label_smoothing}: only the 'sigmoid' and 'robust' losses "
                                  f"use it, not loss_type={self.loss_type!r}; expected 0.0")
        if self.mask_truncated_completions:
            raise ValidationError("mask_truncated_completions=True: online DPO scores whole completions; use "
                                  "missing_eos_penalty to rank truncated ones lower")


def pair_signs(scores: torch.Tensor, num_generations: int, ties: str = "drop") -> torch.Tensor:
    """+1 for each group's best sample (y_w), -1 for its worst (y_l), 0 otherwise: (N,) scores, rows grouped by
    prompt -> (N,) fp32. The first of equal bests / worsts is taken; a group whose scores are all equal gets all
    zeros with ties="drop", and +1 / -1 on its first / second sample with ties="first" (TRL's rule for G = 2)."""
    if ties not in TIES:
        raise ValidationError(f"ties={ties!r}: expected one of {list(TIES)}")
    if scores.ndim != 1 or num_generations < 2 or len(scores) % num_generations:
        raise ValidationError(f"pair_signs: scores of shape {tuple(scores.shape)} with num_generations="
                              f"{num_generations}; expected (N,) with N a multiple of num_generations >= 2")
    grouped = scores.float().view(-1, num_generations)
    best, worst = grouped.argmax(dim=1), grouped.argmin(dim=1)
    tied = best == worst  # every score of the group equal
    if ties == "first":
        best, worst = torch.where(tied, 0, best), torch.where(tied, 1, worst)
    signs = torch.zeros_like(grouped)
    rows = torch.arange(len(grouped), device=scores.device)
    signs[rows, best] = 1.0
    signs[rows, worst] = -1.0
    if ties == "drop":
        signs[tied] = 0.0
    return signs.view(-1)


def loss(logps: torch.Tensor, ref_logps: torch.Tensor, signs: torch.Tensor, mask: torch.Tensor, beta: float,
         loss_type: str = "sigmoid", label_smoothing: float = 0.0, num_generations: int = 2,
         n_prompts: int | None = None) -> torch.Tensor:
    """The online-DPO loss of these rows' prompts, a 0-dim tensor: the sum over prompts with a pair of DPO's loss on
    (y_w, y_l), over ``n_prompts`` (the whole batch's prompt count; default these rows').

    logps, ref_logps (B, T) per-token log-probs under pi and pi_ref, summed over ``mask``'s tokens; signs (B,)
    from ``pair_signs``; rows grouped by prompt (B a multiple of num_generations)."""
    mask = mask.bool()
    n_groups = len(signs) // num_generations
    n_prompts = n_groups if n_prompts is None else n_prompts
    policy = torch.where(mask, logps, 0.0).sum(-1).view(n_groups, num_generations)
    reference = torch.where(mask, ref_logps, 0.0).sum(-1).view(n_groups, num_generations)
    grouped = signs.view(n_groups, num_generations)
    chosen, rejected = (grouped > 0).float(), (grouped < 0).float()
    has_pair = chosen.sum(1) > 0
    if not bool(has_pair.any()):
        return policy.sum() * 0.0  # every prompt tied: no preference, a zero loss that still reaches every weight
    pick = lambda values, which: (values * which).sum(1)[has_pair]  # noqa: E731  (one value per prompt)
    losses, _, _ = dpo_loss(pick(policy, chosen), pick(policy, rejected), pick(reference, chosen),
                            pick(reference, rejected), beta, loss_type, label_smoothing)
    return losses.sum() / n_prompts


def train(model: Any, tokenizer: Any, prompts: Sequence[Any], reward_fn: RewardFn, config: Config | None = None,
          *, ref_model: Any = None, output_dir: str | Path | None = None,
          eval_prompts: Sequence[Any] | None = None, resume_from: str | Path | None = None) -> Result:
    """Online DPO (module doc): ``steps`` batches of ``batch_size`` prompts x ``num_generations`` samples, one DPO
    step each. Arguments, outputs, run directory and history rows as ``irlhf.llm.grpo.train``'s ("objective/kl":
    the sampled completions' mean sequence KL to pi_ref), plus "tie_fraction" (prompts with no preference) and
    "score_margin" (mean reward of y_w minus y_l over the prompts with a pair). ``ref_model``: pi_ref (default: a
    frozen copy of the initial policy; a peft model's base)."""
    config = config or Config()
    if not isinstance(config, Config):
        raise ValidationError(f"config: {describe(config)}; expected irlhf.llm.online_dpo.Config")
    G = config.num_generations

    def advantages_fn(batch: GroupBatch) -> tuple[torch.Tensor, dict[str, float]]:
        signs = pair_signs(batch.penalised_scores, G, config.ties)
        grouped, scores = signs.view(-1, G), batch.penalised_scores.view(-1, G)
        paired = (grouped > 0).any(1)
        margin = ((scores * grouped).sum(1)[paired]).mean() if bool(paired.any()) else torch.tensor(0.0)
        return signs, {"tie_fraction": float(1 - paired.float().mean()), "score_margin": float(margin)}

    def loss_fn(logps: torch.Tensor, old_logps: torch.Tensor, ref_logps: torch.Tensor | None,
                signs: torch.Tensor, mask: torch.Tensor, n_sequences: int, n_tokens: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        value = loss(logps, ref_logps, signs, mask, config.beta, config.loss_type, config.label_smoothing, G,
                     n_sequences // G)
        return value, torch.zeros((), device=value.device)  # no ratio, nothing clipped

    return run("online-dpo", model, tokenizer, prompts, reward_fn, config, advantages_fn, loss_fn, old_logps=False,
               ref_model=ref_model, output_dir=output_dir, eval_prompts=eval_prompts, resume_from=resume_from,
               logp_temperature=1.0)  # DPO's implicit reward is of pi itself, whatever the sampling temperature
