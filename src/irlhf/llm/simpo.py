"""SimPO: simple preference optimisation with a reference-free reward (Meng, Xia & Chen, NeurIPS 2024).

DPO's implicit reward beta log pi(y|x) / pi_ref(y|x) needs a reference model and favours long answers (summed
log-probs). SimPO rewards the average log-probability per token and asks the chosen answer to win by a margin:

    r(x, y) = beta / |y| log pi(y | x),      L = -log sigmoid(r(x, y_w) - r(x, y_l) - gamma)

(``irlhf.llm.preference_losses.simpo_loss``; with label smoothing eps the conservative mix, as TRL's CPO trainer
with loss_type="simpo" computes it). No reference model is loaded or scored. The loop is DPO's
(``irlhf.llm.pairwise``).

    result = train(model, tokenizer, TextPairs.load("pairs.jsonl"), Config(beta=2.0, gamma=0.5))
"""

from __future__ import annotations

import dataclasses
import os
from typing import Annotated, Any

import torch

from irlhf.core.config import NonNegative, Positive, Range
from irlhf.core.errors import ValidationError, describe
from irlhf.data.text import TextPairs
from irlhf.llm import pairwise
from irlhf.llm.pairwise import PairBatch, Result
from irlhf.llm.preference_losses import average_logps, simpo_loss

__all__ = ["Config", "Result", "train"]


@dataclasses.dataclass(frozen=True)
class Config(pairwise.Config):
    """SimPO's options, then those of every pairwise method (``irlhf.llm.pairwise.Config``; defaults in brackets).

    beta [2.0]: scale of the length-normalised reward (the paper's 2.0-2.5).  gamma [0.5]: the target reward margin
    (the paper's gamma / beta ratio 0.5 at beta 2 gives gamma 1.0; TRL's CPOConfig default simpo_gamma is 0.5).
    label_smoothing [0.0]: eps in [0, 0.5), the conservative loss.  learning_rate [5e-6]: the paper uses 3e-7 to
    1e-6 for 7-8B models; tiny models want ~1e-4 to 1e-3.
    """

    beta: Positive = 2.0
    gamma: NonNegative = 0.5
    label_smoothing: Annotated[float, Range(0, 0.5, high_open=True)] = 0.0


def train(model: Any, tokenizer: Any, data: TextPairs, config: Config | None = None, *,
          output_dir: str | os.PathLike[str] | None = None, eval_data: TextPairs | None = None,
          resume_from: str | os.PathLike[str] | None = None) -> Result:
    """SimPO-train ``model`` (a causal LM, or a peft model) on preference pairs; no reference model.

    ``output_dir`` / ``eval_data`` / ``resume_from`` as for ``irlhf.llm.dpo.train``. History rewards are
    beta a (a = average log-prob per token); "logps/..." are the summed completion log-probs.
    """
    config = config or Config()
    if not isinstance(config, Config):
        raise ValidationError(f"config: {describe(config)}; expected irlhf.llm.simpo.Config")

    def pair_loss(b: PairBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return simpo_loss(average_logps(b.chosen, b.chosen_tokens), average_logps(b.rejected, b.rejected_tokens),
                          config.beta, config.gamma, config.label_smoothing)

    return pairwise.train_pairs("simpo", model, tokenizer, data, config, pair_loss, uses_reference=False,
                                output_dir=output_dir, eval_data=eval_data, resume_from=resume_from)
