"""Plackett-Luce (Plackett 1975; Luce 1959): latent scores from (partial) rankings.

A ranking pi = (pi_1 > pi_2 > ... > pi_k) of a subset of the items is built by picking the best of what
is left, each time with Bradley-Terry / softmax odds (lecture 000, RLHF with rankings):

    P(pi | theta) = prod_{t=1}^{k-1} exp(theta_{pi_t}) / sum_{s=t}^{k} exp(theta_{pi_s})

For k = 2 this is exactly Bradley-Terry. ``fit`` minimises -log P summed over rankings, plus
``alpha * ||theta||^2`` (``choix``'s convention), by damped Newton (``irlhf.core.newton``; L-BFGS above
``DENSE_LIMIT`` items); scores are returned mean-centred. Without a prior the estimate exists only if the
rank-broken "beat" graph is strongly connected (checked first, same messages as ``bradley_terry``).
``loss`` is the torch form for reward models trained on K-way rankings.

    result = fit(n_items, Rankings([[2, 0, 1], [1, 3]]), alpha=0.0, standard_errors=True)
    result.scores, result.standard_errors, result.log_likelihood    # standard_errors None unless asked
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.optimize
import torch

from irlhf.core import newton
from irlhf.core.config import check_bool
from irlhf.core.errors import ValidationError, describe
from irlhf.data.preferences import Rankings, check_strongly_connected, pair_counts
from irlhf.nn.losses import plackett_luce_loss
from irlhf.preference.bradley_terry import Result, check_prior

__all__ = ["fit", "log_likelihood", "as_rankings", "loss"]

DENSE_LIMIT = 3000  # items; above this, L-BFGS instead of Newton with a dense Hessian


def as_rankings(n_items: int, rankings: Any) -> Rankings:
    """A ``Rankings`` over ``n_items`` from a ``Rankings`` or a list of item-id lists (best first)."""
    if isinstance(rankings, Rankings):
        return rankings if rankings.n_items == n_items else Rankings(list(rankings.rankings), n_items)
    if isinstance(rankings, (list, tuple, np.ndarray)):
        return Rankings(list(rankings), n_items)
    raise ValidationError(f"rankings: {describe(rankings)}; expected a Rankings or a list of item-id lists")


def _groups(data: Rankings) -> list[np.ndarray]:
    """Rankings grouped by length: a list of (m, k) int arrays, so each group is one vectorised block."""
    lengths = np.array([len(r) for r in data.rankings])
    return [np.stack([data.rankings[q] for q in np.flatnonzero(lengths == k)]) for k in np.unique(lengths)]


def _terms(theta: np.ndarray, groups: list[np.ndarray], hessian: bool) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Negative log-likelihood, its gradient (n,), and (if asked) its dense Hessian (n, n)."""
    n = len(theta)
    nll, grad = 0.0, np.zeros(n)
    H = np.zeros((n, n)) if hessian else None
    for R in groups:
        m, k = R.shape
        x = theta[R]  # (m, k)
        # log-sum-exp of every suffix x[:, t:], right to left
        lse = np.logaddexp.accumulate(x[:, ::-1], axis=1)[:, ::-1]
        nll -= float(np.sum(x[:, : k - 1] - lse[:, : k - 1]))
        for t in range(k - 1):  # choice t: the winner R[:, t] out of R[:, t:]
            p = np.exp(x[:, t:] - lse[:, t:t + 1])  # (m, k - t) softmax over what is left
            np.add.at(grad, R[:, t:], p)
            np.add.at(grad, R[:, t], -1.0)
            if H is not None:  # sum over choices of diag(p) - p p^T
                rows = R[:, t:]
                np.add.at(H, (rows[:, :, None], rows[:, None, :]), -p[:, :, None] * p[:, None, :])
                np.add.at(H.reshape(-1), rows * (n + 1), p)
    return nll, grad, H


def log_likelihood(scores: np.ndarray, rankings: Any) -> float:
    """sum over rankings of log P(ranking | theta) (no prior term)."""
    theta = np.asarray(scores, dtype=np.float64)
    if theta.ndim != 1 or not np.all(np.isfinite(theta)):
        raise ValidationError(f"scores: {describe(theta)}; expected a finite 1-D array")
    return -_terms(theta, _groups(as_rankings(len(theta), rankings)), hessian=False)[0]


def fit(n_items: int, rankings: Any, alpha: float = 0.0, *, tol: float = 1e-10, max_iter: int = 100,
        standard_errors: bool = False) -> Result:
    """Maximum-likelihood (alpha = 0) or MAP Plackett-Luce scores; returns a ``bradley_terry.Result``.

    n_items: number of items.  rankings: ``Rankings`` or lists of item ids, best first (>= 2 each).
    alpha: L2 prior weight, penalty alpha * ||theta||^2.  tol: Newton-decrement stopping threshold.
    standard_errors: compute ``Result.standard_errors`` (a dense (n, n) Hessian and its inverse); otherwise None.
    """
    n, alpha = check_prior(n_items, alpha)
    check_bool("standard_errors", standard_errors)
    data = as_rankings(n, rankings)
    if alpha == 0.0:
        check_strongly_connected(n, *pair_counts(data.to_comparisons()))
    groups = _groups(data)

    def objective(theta: np.ndarray, hessian: bool = False):
        nll, g, H = _terms(theta, groups, hessian)
        if H is not None:
            H.flat[:: n + 1] += 2.0 * alpha
        return nll + alpha * theta @ theta, g + 2.0 * alpha * theta, H

    start = 0 if alpha > 0 else 1  # without a prior fix theta_0 (the likelihood ignores a shift)

    def direction(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, g, H = objective(theta, hessian=True)
        delta = np.zeros(n)
        delta[start:] = newton.solve_spd(H[start:, start:], -g[start:])
        return g, delta

    if n <= DENSE_LIMIT:
        solution = newton.minimize(lambda theta: objective(theta)[0], direction, np.zeros(n), tol=tol,
                                   max_iter=max_iter)
        theta, n_iter, converged = solution.x, solution.n_iter, solution.converged
    else:
        res = scipy.optimize.minimize(lambda t: objective(t)[:2], np.zeros(n), jac=True, method="L-BFGS-B",
                                      options={"maxiter": 50 * max_iter, "gtol": 1e-9})
        theta, n_iter, converged = res.x, int(res.nit), bool(res.success)
    theta = theta - theta.mean()
    se = None
    if standard_errors:
        se = newton.standard_errors(objective(theta, hessian=True)[2], shift_invariant=alpha == 0)
    nll = objective(theta)[0] - alpha * theta @ theta
    return Result(scores=theta, standard_errors=se, log_likelihood=-nll, objective=nll + alpha * theta @ theta,
                  n_iter=n_iter, converged=converged, alpha=alpha)


def loss(scores: torch.Tensor, mask: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """The Plackett-Luce negative log-likelihood of (N, K) reward-model scores, best first, checked:
    ``irlhf.nn.losses.plackett_luce_loss`` (see there) after validating its input once. For K = 2 it equals
    ``bradley_terry.loss(s_1, s_2, 1)``. Training loops that build ``scores`` and ``mask`` themselves call
    ``plackett_luce_loss`` directly (no device sync).

    scores: (N, K) tensor, each row's responses ordered best first.  mask: (N, K) bool, True where a response
    is present (at least 2 per row), or None (all present).  reduction: "mean", "sum" or "none" ((N,)).
    """
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2 or scores.shape[1] < 2:
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValidationError(f"scores: {shape}; expected a (N, K) tensor with K >= 2, best first")
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    if not isinstance(mask, torch.Tensor) or mask.shape != scores.shape:
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValidationError(f"mask: {got}; expected None or a bool tensor of shape {tuple(scores.shape)}")
    mask = mask.bool()
    few = torch.nonzero(mask.sum(-1) < 2)
    if len(few):
        raise ValidationError(f"mask[{int(few[0, 0])}]: fewer than 2 responses present; expected at least 2 per row")
    if not bool(torch.isfinite(scores[mask]).all()):
        raise ValidationError("scores: NaN or inf among the present entries; expected finite scores")
    return plackett_luce_loss(scores, mask, reduction)
