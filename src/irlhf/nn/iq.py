"""The IQ-Learn objective (Garg et al. 2021, "IQ-Learn: Inverse soft-Q Learning for Imitation"), shared by the
discrete soft-Q learner (``irlhf.irl.iq_learn``), the continuous actor-critic one
(``irlhf.irl.iq_learn_continuous``) and the token-level language-model learner (``irlhf.llm.iq_learn``).
From per-transition values Q(s, a), V(s), V(s'):

    r    = Q(s, a) - gamma (1 - done) V(s')                       (the recovered reward)
    L(Q) = -E_expert[r] + E_rho[V(s) - gamma (1 - done) V(s')] + chi2,
    chi2 = E_expert[r^2] / (4 alpha_chi)    (E_{expert U policy} with ``regularize_mixed``; 0 for "none"),

rho = the expert transitions offline, expert U policy online. ``irlhf.irl.iq_learn``'s module docstring
derives it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["DIVERGENCES", "iq_objective", "polyak", "soft_value"]

DIVERGENCES = ("chi2", "none")


def soft_value(q: torch.Tensor, alpha: float) -> torch.Tensor:
    """V = alpha * logsumexp(Q / alpha) over the last axis: (N, A) -> (N,)."""
    if alpha == 1.0:  # the same numbers without a scaled copy of q (LM logits: (N, vocabulary))
        return torch.logsumexp(q, dim=-1)
    return alpha * torch.logsumexp(q / alpha, dim=-1)


def _parts(parts: dict[str, torch.Tensor], as_float: bool) -> dict[str, Any]:
    return {k: float(t.detach()) for k, t in parts.items()} if as_float else {k: t.detach() for k, t in parts.items()}


def _mean(x: torch.Tensor, count: int | None) -> torch.Tensor:
    """x.mean(), or x.sum() / count with a given (global) count."""
    return x.mean() if count is None else x.sum() / count


def iq_objective(q_sa: torch.Tensor, v: torch.Tensor, v_next: torch.Tensor, dones: torch.Tensor,
                 is_expert: torch.Tensor | None = None, *, gamma: float, divergence: str = "chi2",
                 chi_alpha: float = 0.5, regularize_mixed: bool = False, as_float: bool = True,
                 n_expert: int | None = None, n_all: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """The IQ-Learn loss (module docstring) from per-transition values, all (N,).

    q_sa = Q(s, a), v = V(s), v_next = V(s') (before masking), dones (1 = s' terminal), is_expert (bool;
    None = all expert, the offline case). Returns the scalar loss and its parts: softq_loss = -E_expert[r],
    value_loss = E_all[V(s) - gamma (1 - d) V(s')], chi2_loss (0 for "none"), reward = E_expert[r],
    v = E_all[V(s)], expert_q / policy_q = mean Q(s, a) on expert / policy transitions (nan when absent).

    n_expert, n_all: the denominators of the expert and the all-transition means (default: this batch's
    counts, i.e. plain means). Given, each mean is this batch's SUM divided by them: with the counts of a
    global batch split over processes, every process gets its share of the global loss (and of each part but
    policy_q, whose denominator is then n_all - n_expert), and the shares sum to the global values.
    """
    if is_expert is None:
        is_expert = torch.ones(len(q_sa), dtype=torch.bool, device=q_sa.device)
    n_policy = None if n_expert is None or n_all is None else n_all - n_expert
    y = gamma * (1.0 - dones.to(q_sa.dtype)) * v_next
    r = q_sa - y
    r_expert = r[is_expert]
    softq_loss = -_mean(r_expert, n_expert)
    value_loss = _mean(v - y, n_all)  # offline: expert only ("value_expert"); online: expert U policy ("value")
    loss = softq_loss + value_loss
    chi2_loss = torch.zeros((), dtype=q_sa.dtype, device=q_sa.device)
    if divergence == "chi2":
        w = r if regularize_mixed else r_expert
        chi2_loss = _mean(w * w, n_all if regularize_mixed else n_expert) / (4.0 * chi_alpha)
        loss = loss + chi2_loss
    policy_q = (_mean(q_sa[~is_expert], n_policy) if bool((~is_expert).any())
                else torch.full((), float("nan"), device=q_sa.device))
    parts = {"softq_loss": softq_loss, "value_loss": value_loss, "chi2_loss": chi2_loss,
             "reward": _mean(r_expert, n_expert), "v": _mean(v, n_all), "expert_q": _mean(q_sa[is_expert], n_expert),
             "policy_q": policy_q}
    return loss, _parts(parts, as_float)


def polyak(net: nn.Module, target: nn.Module | None, tau: float) -> None:
    """theta' <- tau theta + (1 - tau) theta' (no-op without a target)."""
    if target is None:
        return
    with torch.no_grad():
        for p, tp in zip(net.parameters(), target.parameters()):
            tp.lerp_(p, tau)
