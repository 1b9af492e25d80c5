"""Direct Preference Optimization (Rafailov et al. 2023): fit a policy to preference pairs with no reward model.

The math (lecture 004). The KL-constrained objective max_pi E[r(x, y)] - beta KL(pi || pi_ref) has the optimal
policy pi*(y | x) = pi_ref(y | x) exp(r(x, y) / beta) / Z(x); solved for the reward, r(x, y) = beta log
pi(y | x) / pi_ref(y | x) + beta log Z(x), and Z cancels in the Bradley-Terry probability of y_w > y_l. With the
implicit-reward margin

    h = (log pi(y_w | x) - log pi_ref(y_w | x)) - (log pi(y_l | x) - log pi_ref(y_l | x))

the DPO loss is  -log sigmoid(beta h)  (``loss``; log-probs summed over the completion tokens). The implicit
rewards beta (log pi(y|x) - log pi_ref(y|x)) of the chosen and rejected answers are the logged "rewards/...".

``train`` runs the loop the pairwise methods share (``irlhf.llm.pairwise``): the reference is scored once, before
the first update (no frozen copy of the policy is kept), and the chosen and rejected rows of each batch go through
the policy in one forward call, padded in groups of similar length; docs/llm.md has the details.

    result = train(model, tokenizer, TextPairs.load("pairs.jsonl"), Config(beta=0.1), output_dir="runs/dpo")
    result.model; result.history[-1]["rewards/margins"]
"""

from __future__ import annotations

import dataclasses
import os
import typing
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F

from irlhf.core.config import Positive, Range, check_bool, check_choice, check_number
from irlhf.core.errors import ValidationError, describe
from irlhf.data.text import TextPairs
from irlhf.llm import pairwise
from irlhf.llm.pairwise import METRICS, GroupedLogps, PairBatch, Result, grouped_logps

__all__ = ["LOSS_TYPES", "METRICS", "Config", "Result", "GroupedLogps", "grouped_logps", "loss", "train"]

LossType = Literal["sigmoid", "robust", "hinge", "ipo"]
LOSS_TYPES = typing.get_args(LossType)


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
class Config(pairwise.Config):
    """DPO's options, then those of every pairwise method (``irlhf.llm.pairwise.Config``; defaults in brackets).

    beta [0.1]: strength of the KL constraint to pi_ref (the inverse temperature of the implicit reward; for
    "ipo", the paper's tau).  loss_type ["sigmoid"]: "sigmoid" (DPO), "robust", "hinge" or "ipo" (see ``loss``).
    label_smoothing [0.0]: eps, the assumed probability that a label is flipped (0 <= eps < 0.5; "sigmoid"
    and "robust" only; "sigmoid" with eps > 0 is conservative DPO).  reference_free [False]: pi_ref uniform (no
    reference log-probs).  learning_rate [5e-6]: Rafailov et al. and TRL use 1e-6 for 1B+ models; 5e-6 moves
    GPT-2-small-sized models within an epoch; LoRA adapters and tiny test models want ~1e-4 to 1e-3. (TRL decays
    linearly to 0 by default; here the rate is constant.)
    """

    beta: Positive = 0.1
    loss_type: LossType = "sigmoid"
    label_smoothing: Annotated[float, Range(0, 0.5, high_open=True)] = 0.0
    reference_free: bool = False

    def validate(self) -> None:
        if self.label_smoothing and self.loss_type not in ("sigmoid", "robust"):
            raise ValidationError(f"label_smoothing={self.label_smoothing}: only the 'sigmoid' and 'robust' losses "
                                  f"use it, not loss_type={self.loss_type!r}; expected 0.0")


def train(model: Any, tokenizer: Any, data: TextPairs, config: Config | None = None, *, ref_model: Any | None = None,
          output_dir: str | os.PathLike[str] | None = None, eval_data: TextPairs | None = None,
          resume_from: str | os.PathLike[str] | None = None) -> Result:
    """DPO-train ``model`` (a causal LM, or a peft model) on preference pairs; see the module docstring.

    ``ref_model``: the reference pi_ref (default: the initial policy, or the base model of a peft model).
    ``output_dir``: write metrics.jsonl as training goes, checkpoints output_dir/step-N every save_steps and
    output_dir/final at the end (save_pretrained, safetensors, with the trainer state).  ``eval_data``: pairs
    scored once at the end.  ``resume_from``: a step-N or final checkpoint of a DPO run to continue (pass the same
    initial ``model``, ``ref_model`` and data: the reference is scored before the checkpoint's weights are loaded;
    ``irlhf.llm.pairwise.train_pairs``).
    """
    config = config or Config()
    if not isinstance(config, Config):
        raise ValidationError(f"config: {describe(config)}; expected irlhf.llm.dpo.Config")

    def pair_loss(b: PairBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return _pair_losses(b.chosen, b.rejected, b.ref_chosen, b.ref_rejected, config.beta, config.loss_type,
                            config.label_smoothing, config.reference_free)

    return pairwise.train_pairs("dpo", model, tokenizer, data, config, pair_loss,
                                uses_reference=not config.reference_free, ref_model=ref_model,
                                output_dir=output_dir, eval_data=eval_data, resume_from=resume_from)
