"""Preference losses for language models beyond DPO, as pure functions of per-sequence log-probs.

SimPO and ORPO are reference-free and pairwise: their inputs are per-token AVERAGED completion log-probs
a = log pi(y | x) / |y| (nats per token; ``average_logps`` turns summed log-probs and token counts into them),
shapes (B,). DPO and its loss types, which need a reference model and summed log-probs, are ``irlhf.llm.dpo.loss``.

- SimPO (Meng, Xia & Chen 2024, eq. 6): the implicit reward is the length-normalised log-probability, with a
  target margin gamma between chosen and rejected:

      L = -log sigmoid(beta (a_w - a_l) - gamma)        (label_smoothing eps: the conservative mix, as cDPO)

- ORPO (Hong, Lee & Thorne 2024, eqs. 4-7): supervised fine-tuning on the chosen answer plus an odds-ratio term,

      odds(y) = P / (1 - P) with P = exp(a),   log OR = (a_w - a_l) - (log(1 - e^{a_w}) - log(1 - e^{a_l})),
      L = NLL(y_w) - lambda log sigmoid(log OR),

  NLL(y_w) the chosen completions' mean negative log-likelihood per token (over all chosen tokens of the batch),
  given as per-pair terms n_i whose mean is that NLL (``orpo_nll_terms``), so L is the mean of per-pair losses.

Each returns per-pair losses (B,), whose mean is trained, and the chosen and rejected rewards with rewards beta a
(SimPO) or lambda a (ORPO), detached, as TRL logs them. Shapes are checked at the edge (``check_pairs``), not in the
hot loss.

- KTO (Ethayarajh et al. 2024, eq. 7) is unpaired: each row is one answer y to x labelled desirable or not, with
  the implied reward r = log pi(y | x) / pi_ref(y | x) (SUMMED completion log-probs) and the reference point
  z0 = max(0, mean over the batch of the log-ratios of MISMATCHED pairs (x_i, y_j)), an estimate of
  KL(pi || pi_ref) that is not differentiated (``kto_reference_point``):

      v(x, y) = lambda_D sigmoid(beta (r - z0))   if y is desirable,   lambda_U sigmoid(beta (z0 - r))   otherwise,
      L = mean over rows of (lambda_y - v(x, y))                                       (``kto_loss``)

  so a desirable row's loss is lambda_D (1 - sigmoid(beta (r - z0))) and an undesirable row's lambda_U (1 -
  sigmoid(beta (z0 - r))); the rewards are beta r, as TRL's KTOTrainer logs them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from irlhf.core.config import check_number
from irlhf.core.errors import ValidationError, describe

LOG_HALF = -math.log(2.0)  # log1mexp switches formula here (cancellation on either side)


def average_logps(summed_logps: torch.Tensor, n_tokens: torch.Tensor) -> torch.Tensor:
    """log pi(y | x) / |y| per sequence: summed completion log-probs (B,) over their token counts (B,) >= 1."""
    return summed_logps / n_tokens.to(summed_logps.dtype)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, accurate near 0 and far below it (Maechler 2012)."""
    return torch.where(x < LOG_HALF, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def check_pairs(chosen: torch.Tensor, rejected: torch.Tensor,
                names: tuple[str, str] = ("chosen", "rejected")) -> None:
    """Both 1-D tensors of one shape (no value checks: that would be a device sync); ``names`` for the message."""
    for name, value in zip(names, (chosen, rejected)):
        if not isinstance(value, torch.Tensor) or value.ndim != 1 or value.shape != getattr(chosen, "shape", None):
            shown = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else describe(value)
            raise ValidationError(f"{name}_logps: {shown}; expected 1-D tensors of one shape, one value per row")


def simpo_loss(chosen_avg_logps: torch.Tensor, rejected_avg_logps: torch.Tensor, beta: float = 2.0,
               gamma: float = 0.5, label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SimPO per-pair losses (B,) and rewards beta a_w, beta a_l; defaults are the paper's (beta 2, gamma 0.5)."""
    check_pairs(chosen_avg_logps, rejected_avg_logps)
    check_number("beta", beta, low=0, low_open=True)
    check_number("gamma", gamma, low=0)
    check_number("label_smoothing", label_smoothing, low=0, high=0.5, high_open=True)
    z = beta * (chosen_avg_logps - rejected_avg_logps) - gamma
    losses = -F.logsigmoid(z) * (1 - label_smoothing) - F.logsigmoid(-z) * label_smoothing
    return losses, beta * chosen_avg_logps.detach(), beta * rejected_avg_logps.detach()


def orpo_nll_terms(chosen_logps: torch.Tensor, total_chosen_tokens: float, n_pairs: int) -> torch.Tensor:
    """(B,) per-pair shares of the batch's token-mean NLL of the chosen answers: -log pi(y_w | x) n_pairs / total
    tokens, whose mean over the n_pairs pairs of the batch is -sum log pi / total tokens (also when the pairs are
    split over processes)."""
    return -chosen_logps * (n_pairs / total_chosen_tokens)


def orpo_loss(chosen_avg_logps: torch.Tensor, rejected_avg_logps: torch.Tensor, chosen_nll: torch.Tensor,
              lam: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """ORPO per-pair losses nll_i - lam log sigmoid(log OR_i) (B,), whose mean is the ORPO loss; the per-pair
    log OR (B,), and rewards lam a_w, lam a_l. ``chosen_nll``: (B,) per-pair NLL terms (``orpo_nll_terms``; any
    (B,) whose mean is the chosen tokens' mean NLL)."""
    check_pairs(chosen_avg_logps, rejected_avg_logps)
    check_number("lam", lam, low=0)
    if not isinstance(chosen_nll, torch.Tensor) or chosen_nll.shape != chosen_avg_logps.shape:
        raise ValidationError(f"chosen_nll: {describe(chosen_nll)}; expected a tensor of shape "
                              f"{tuple(chosen_avg_logps.shape)}, one NLL term per pair")
    a_w, a_l = chosen_avg_logps.float(), rejected_avg_logps.float()
    log_odds = (a_w - a_l) - (log1mexp(a_w) - log1mexp(a_l))
    losses = chosen_nll - lam * F.logsigmoid(log_odds)
    return losses, log_odds.detach(), lam * a_w.detach(), lam * a_l.detach()


def kto_reference_point(policy_kl_logps: torch.Tensor, ref_kl_logps: torch.Tensor) -> torch.Tensor:
    """KTO's z0, a 0-dim tensor: the mean of log pi(y_j | x_i) - log pi_ref(y_j | x_i) over the mismatched rows
    (B,), clamped at 0 and detached (not differentiated, as the paper and TRL). A trainer split over processes
    takes the mean over the global batch instead (``irlhf.llm.kto``)."""
    check_pairs(policy_kl_logps, ref_kl_logps, ("policy_kl", "ref_kl"))
    return (policy_kl_logps.detach() - ref_kl_logps.detach()).mean().clamp(min=0)


def kto_loss(policy_logps: torch.Tensor, ref_logps: torch.Tensor, desirable: torch.Tensor,
             reference_point: torch.Tensor | float, beta: float = 0.1, desirable_weight: float = 1.0,
             undesirable_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """KTO per-row losses (B,) and rewards beta r (B,, detached) from summed completion log-probs (B,) of the policy
    and the reference, a bool mask ``desirable`` (B,) and z0 (``kto_reference_point``); defaults are the paper's
    and TRL's. The mean of the losses over the batch is the KTO loss (TRL concatenates the two sides' losses and
    takes their mean: the same number)."""
    check_pairs(policy_logps, ref_logps, ("policy", "ref"))
    if (not isinstance(desirable, torch.Tensor) or desirable.dtype != torch.bool
            or desirable.shape != policy_logps.shape):
        raise ValidationError(f"desirable: {describe(desirable)}; expected a bool tensor of shape "
                              f"{tuple(policy_logps.shape)}, one label per row")
    check_number("beta", beta, low=0, low_open=True)
    check_number("desirable_weight", desirable_weight, low=0, low_open=True)
    check_number("undesirable_weight", undesirable_weight, low=0, low_open=True)
    return _kto_losses(policy_logps, ref_logps, desirable, reference_point, beta, desirable_weight,
                       undesirable_weight)


def _kto_losses(policy_logps: torch.Tensor, ref_logps: torch.Tensor, desirable: torch.Tensor,
                reference_point: torch.Tensor | float, beta: float, desirable_weight: float,
                undesirable_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``kto_loss`` without its checks: the trainer's hot path (its Config validated the scalars)."""
    logratios = policy_logps - ref_logps  # r = log pi / pi_ref
    s = beta * (logratios - reference_point)
    # 1 - sigmoid(s) written as sigmoid(-s): the same value, without cancellation when s is large
    losses = torch.where(desirable, desirable_weight * torch.sigmoid(-s), undesirable_weight * torch.sigmoid(s))
    return losses, beta * logratios.detach()
