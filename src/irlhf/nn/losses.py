"""Preference losses for reward models, in torch: pairwise Bradley-Terry and listwise Plackett-Luce.

Bradley-Terry (Bradley & Terry 1952; the reward-model loss of Christiano et al. 2017 and Ouyang et al.
2022), with a soft label mu (1 = i preferred, 0.5 = tie, 0 = j preferred):

    L_BT = -[mu log sigma(r_i - r_j) + (1 - mu) log sigma(r_j - r_i)]

Plackett-Luce (Plackett 1975; Luce 1959), a ranking best first as a sequence of softmax choices:

    L_PL = -sum_k log [ exp(s_k) / sum_{j >= k} exp(s_j) ]      (k over the present responses)

For K = 2, L_PL(s_1, s_2) = L_BT(s_1, s_2, mu=1). These run inside training loops, so they check
nothing: shapes and values are validated where the data enter (``irlhf.data``, the learners' ``train``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from irlhf.core.errors import ValidationError

__all__ = ["bradley_terry_loss", "plackett_luce_loss", "reduce"]


def reduce(per_row: torch.Tensor, reduction: str) -> torch.Tensor:
    """``per_row`` (N,) as is ("none"), summed ("sum") or averaged ("mean")."""
    if reduction == "mean":
        return per_row.mean()
    if reduction == "sum":
        return per_row.sum()
    if reduction == "none":
        return per_row
    raise ValidationError(f"reduction={reduction!r}: expected 'mean', 'sum' or 'none'")


def bradley_terry_loss(reward_i: torch.Tensor, reward_j: torch.Tensor, mu: torch.Tensor | float,
                       reduction: str = "mean") -> torch.Tensor:
    """L_BT per pair: reward_i, reward_j (M,) rewards of the two items, mu (M,) (or a scalar) the label in
    [0, 1]. reduction "mean" / "sum" -> a scalar, "none" -> (M,)."""
    d = reward_i - reward_j
    return reduce(-(mu * F.logsigmoid(d) + (1.0 - mu) * F.logsigmoid(-d)), reduction)


def plackett_luce_loss(scores: torch.Tensor, mask: torch.Tensor | None = None,
                       reduction: str = "mean") -> torch.Tensor:
    """L_PL per ranking: scores (N, K), each row's responses best first; mask (N, K) bool, True where a
    response is present (the present entries keep their best-first order; >= 2 per row), or None (all).
    reduction "mean" / "sum" -> a scalar, "none" -> (N,). Absent entries get no gradient."""
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    # absent entries get a very negative (finite, so gradients stay finite) score: they drop out of every sum
    filled = torch.where(mask, scores, torch.full_like(scores, torch.finfo(scores.dtype).min / 4))
    # log-sum-exp over each suffix j >= k: a reversed cumulative log-sum-exp
    suffix_lse = torch.logcumsumexp(filled.flip(-1), dim=-1).flip(-1)
    per_row = -torch.where(mask, filled - suffix_lse, torch.zeros_like(filled)).sum(-1)
    return reduce(per_row, reduction)
