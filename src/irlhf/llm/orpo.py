"""ORPO: monolithic preference optimisation without a reference model (Hong, Lee & Thorne, EMNLP 2024).

Supervised fine-tuning on the chosen answers plus a term that raises the odds of the chosen answer against the
rejected one, in one stage and with no reference model:

    a = log pi(y | x) / |y|,   log OR = (a_w - a_l) - (log(1 - e^{a_w}) - log(1 - e^{a_l})),
    L = NLL(y_w) - lambda log sigmoid(log OR),

NLL(y_w) the chosen rows' mean negative log-likelihood per token over the batch (``irlhf.llm.preference_losses
.orpo_loss``), by default over the prompt AND the answer tokens, as the authors' code and TRL's ORPO trainer compute
it (``nll_tokens="sequence"``; "completion": the answer's tokens only, the usual SFT loss). The loop is DPO's (``irlhf.llm.pairwise``): each pair contributes
-log pi(y_w | x) x (pairs / chosen tokens of the global batch) - lambda log sigmoid(log OR), whose mean over the
global batch is L, also across processes.

    result = train(model, tokenizer, TextPairs.load("pairs.jsonl"), Config(lam=0.1))
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal

import torch

from irlhf.core.config import NonNegative
from irlhf.core.errors import ValidationError, describe
from irlhf.data.text import TextPairs
from irlhf.llm import pairwise
from irlhf.llm.pairwise import PairBatch, Result
from irlhf.llm.preference_losses import average_logps, orpo_loss, orpo_nll_terms

__all__ = ["Config", "Result", "train"]


@dataclasses.dataclass(frozen=True)
class Config(pairwise.Config):
    """ORPO's options, then those of every pairwise method (``irlhf.llm.pairwise.Config``; defaults in brackets).

    lam [0.1]: lambda, the weight of the odds-ratio term against the NLL (the paper's 0.1; TRL's ORPOConfig calls
    it beta).  nll_tokens ["sequence"]: the tokens of the chosen rows the NLL averages over, "sequence" (prompt and
    answer: the authors' code, TRL) or "completion" (the answer only).  learning_rate [5e-6]: the paper uses 8e-6 for 7B models; tiny models want ~1e-4 to 1e-3.
    """

    lam: NonNegative = 0.1
    nll_tokens: Literal["sequence", "completion"] = "sequence"


def train(model: Any, tokenizer: Any, data: TextPairs, config: Config | None = None, *,
          output_dir: str | os.PathLike[str] | None = None, eval_data: TextPairs | None = None,
          resume_from: str | os.PathLike[str] | None = None) -> Result:
    """ORPO-train ``model`` (a causal LM, or a peft model) on preference pairs; no reference model.

    ``output_dir`` / ``eval_data`` / ``resume_from`` as for ``irlhf.llm.dpo.train``. History rewards are
    lambda a (a = average log-prob per token), as TRL logs them.
    """
    config = config or Config()
    if not isinstance(config, Config):
        raise ValidationError(f"config: {describe(config)}; expected irlhf.llm.orpo.Config")

    whole = config.nll_tokens == "sequence"

    def pair_loss(b: PairBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        nll = (orpo_nll_terms(b.chosen_whole, b.global_chosen_whole_tokens, b.global_pairs) if whole
               else orpo_nll_terms(b.chosen, b.global_chosen_tokens, b.global_pairs))
        losses, _, chosen_rewards, rejected_rewards = orpo_loss(
            average_logps(b.chosen, b.chosen_tokens), average_logps(b.rejected, b.rejected_tokens), nll, config.lam)
        return losses, chosen_rewards, rejected_rewards

    return pairwise.train_pairs("orpo", model, tokenizer, data, config, pair_loss, uses_reference=False,
                                whole_chosen=whole, output_dir=output_dir, eval_data=eval_data,
                                resume_from=resume_from)
