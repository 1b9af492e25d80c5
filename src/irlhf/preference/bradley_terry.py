"""Bradley-Terry (Bradley & Terry 1952): latent scores from pairwise judgements with ties.

The model (lecture 000, part 3): item i has a log-strength (reward) theta_i and

    P(i > j) = exp(theta_i) / (exp(theta_i) + exp(theta_j)) = sigma(theta_i - theta_j).

From M judgements (i_n, j_n, mu_n), mu = 1 (i preferred), 0.5 (tie), 0 (j preferred), ``fit`` minimises the
lecture's cross-entropy, plus an optional Gaussian prior with ``choix``'s convention:

    L(theta) = -sum_n [ mu_n log sigma(theta_i - theta_j) + (1 - mu_n) log sigma(theta_j - theta_i) ]
               + alpha * ||theta||^2

so a tie counts as half a win for each side. The scores are only defined up to a constant; they are
returned mean-centred (with alpha > 0 the minimiser is mean-zero anyway). Without a prior the maximum-
likelihood estimate exists only if the "i beat j" graph is strongly connected (Hunter 2004): ``fit``
checks that first and says which items break it (an item that never loses, one that never wins, or
groups never compared).

Solver: damped Newton (``irlhf.core.newton``) on the aggregated pairs (one row per compared pair of
items, ``irlhf.data.preferences.pair_counts``). The Hessian is the graph Laplacian weighted by c sigma (1 - sigma) (+ 2 alpha I);
it is solved densely (Cholesky) for up to ``DENSE_LIMIT`` items and by preconditioned conjugate
gradients on the sparse Laplacian above that; dense work runs on one BLAS thread (see ``irlhf.core.newton``).
Standard errors, only when asked (``standard_errors=True``: a dense (n, n) inverse, which adds 60-70% to
the fit's time at 200-1000 items), are the square roots of the diagonal of the inverse Hessian (its pseudo-inverse without a prior,
matching the mean-centred parametrisation).

    result = fit(n_items, comparisons, alpha=0.0, standard_errors=True)
    result.scores, result.standard_errors, result.log_likelihood, result.ranking()
    result.probabilities()                     # (n, n) matrix P[i, j] = P(i > j), for the winner rules

``fit_features`` fits r(x) = w . phi(x) on item features the same way (logistic regression on feature
differences); ``fit_network`` fits an MLP r_phi(x) with ``loss`` (``irlhf.nn.losses.bradley_terry_loss``),
the torch form of the same cross-entropy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
import torch

from irlhf.core import newton
from irlhf.core.config import check_bool, check_number
from irlhf.core.errors import ValidationError, describe
from irlhf.data.preferences import (ComparisonGraphError, Comparisons, Rankings, check_strongly_connected,
                                    pair_counts)
from irlhf.nn.losses import bradley_terry_loss as loss
from irlhf.nn.mlp import mlp

__all__ = ["Result", "FeatureResult", "NetworkResult", "ComparisonGraphError", "fit", "fit_features",
           "fit_network", "log_likelihood", "preference_probabilities", "loss", "as_comparisons", "check_prior"]

DENSE_LIMIT = 3000  # items; above this the Newton system is solved by sparse conjugate gradients
# standard errors need a dense (n, n) inverse (about 2 s at 3000 items on one core): callers that want them
# whenever they are affordable (the prefs job) ask up to this many items
SE_LIMIT = 3000


# -- inputs ------------------------------------------------------------------------------------
def as_comparisons(n_items: int, comparisons: Any) -> Comparisons:
    """A ``Comparisons`` over ``n_items`` items from a ``Comparisons``, a ``Rankings`` (rank-broken),
    (winner, loser) pairs (M, 2) as in ``choix``, or (i, j, mu) rows (M, 3)."""
    if isinstance(comparisons, Rankings):
        comparisons = comparisons.to_comparisons()
    if isinstance(comparisons, Comparisons):
        if n_items is not None and comparisons.n_items != n_items:
            return Comparisons(comparisons.i, comparisons.j, comparisons.mu, n_items)
        return comparisons
    array = np.asarray(comparisons)
    if array.ndim == 2 and array.shape[1] == 2:
        return Comparisons(array[:, 0], array[:, 1], np.ones(len(array)), n_items)
    if array.ndim == 2 and array.shape[1] == 3:
        return Comparisons(array[:, 0], array[:, 1], array[:, 2], n_items)
    raise ValidationError(f"comparisons: {describe(comparisons)}; expected a Comparisons, (winner, loser) pairs "
                          "of shape (M, 2) or (i, j, mu) rows of shape (M, 3)")


def check_prior(n_items: Any, alpha: Any) -> tuple[int, float]:
    """The number of items (an int >= 2) and the prior weight alpha (a number >= 0) of a fit, as (int, float)."""
    check_number("n_items", n_items, low=2, integer=True)
    check_number("alpha", alpha, low=0)
    return int(n_items), float(alpha)


# -- the model -----------------------------------------------------------------------------------
def preference_probabilities(scores: np.ndarray) -> np.ndarray:
    """(n,) scores -> (n, n) matrix P[i, j] = sigma(theta_i - theta_j) (diagonal 0.5)."""
    theta = np.asarray(scores, dtype=np.float64)
    if theta.ndim != 1 or not np.all(np.isfinite(theta)):
        raise ValidationError(f"scores: {describe(theta)}; expected a finite 1-D array")
    return 0.5 * (1.0 + np.tanh(0.5 * (theta[:, None] - theta[None, :])))  # sigma, stable for large gaps


def log_likelihood(scores: np.ndarray, comparisons: Any) -> float:
    """sum_n mu log sigma(theta_i - theta_j) + (1 - mu) log sigma(theta_j - theta_i) (no prior term)."""
    theta = np.asarray(scores, dtype=np.float64)
    data = as_comparisons(len(theta), comparisons)
    d = theta[data.i] - theta[data.j]
    return float(-np.sum(data.mu * np.logaddexp(0.0, -d) + (1.0 - data.mu) * np.logaddexp(0.0, d)))


@dataclasses.dataclass
class Result:
    """scores: (n,) mean-centred log-strengths.  standard_errors: (n,) or None (not computed).
    log_likelihood: of the data at ``scores`` (no prior).  objective: the minimised L (with prior).
    n_iter: Newton iterations.  converged: the Newton decrement fell below ``tol``."""

    scores: np.ndarray
    standard_errors: np.ndarray | None
    log_likelihood: float
    objective: float
    n_iter: int
    converged: bool
    alpha: float

    def ranking(self) -> np.ndarray:
        """Item ids, best (highest score) first; ties broken by the lower id."""
        return np.lexsort((np.arange(len(self.scores)), -self.scores))

    def probabilities(self) -> np.ndarray:
        """(n, n) P[i, j] = P(i preferred to j) under the fitted model."""
        return preference_probabilities(self.scores)


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)), stable for large |x|."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _objective(theta: np.ndarray, a: np.ndarray, b: np.ndarray, count: np.ndarray, wins: np.ndarray,
               alpha: float) -> float:
    # w * softplus(-d) + (c - w) * softplus(d) = c * softplus(-d) + (c - w) * d, one transcendental per pair
    d = theta[a] - theta[b]
    return float(np.sum(count * _softplus(-d) + (count - wins) * d) + alpha * theta @ theta)


def _hessian(n: int, a: np.ndarray, b: np.ndarray, h: np.ndarray, alpha: float, dense: bool):
    """Weighted graph Laplacian sum_pairs h (e_a - e_b)(e_a - e_b)^T + 2 alpha I."""
    diag = np.bincount(a, weights=h, minlength=n) + np.bincount(b, weights=h, minlength=n) + 2.0 * alpha
    if dense:
        H = np.zeros((n, n))
        H.flat[a * n + b] = -h  # pairs are unique and a < b, so plain assignment is exact
        H.flat[b * n + a] = -h
        H.flat[:: n + 1] = diag
        return H
    off = scipy.sparse.coo_matrix((np.concatenate([-h, -h]), (np.concatenate([a, b]), np.concatenate([b, a]))),
                                  shape=(n, n))
    return (off + scipy.sparse.diags(diag)).tocsr()


def _sparse_direction(H: Any, g: np.ndarray, alpha: float) -> np.ndarray:
    """Sparse path: solve H delta = -g by preconditioned CG; without a prior H is singular along 1, so fix
    delta_0 = 0 (g sums to zero)."""
    start = 0 if alpha > 0 else 1
    delta = np.zeros_like(g)
    sub = H[start:, start:]
    precond = scipy.sparse.diags(1.0 / sub.diagonal())
    sol, info = scipy.sparse.linalg.cg(sub, -g[start:], rtol=1e-10, atol=0.0, maxiter=2000, M=precond)
    delta[start:] = sol
    return delta


class _DenseLaplacian:
    """The dense Newton matrix in a reused (n, n) buffer; the positions of the compared pairs never change."""

    def __init__(self, n: int, a: np.ndarray, b: np.ndarray):
        self.n, self.a, self.b = n, a, b
        self.buffer = np.zeros((n, n))
        self.upper, self.lower = a * n + b, b * n + a

    def direction(self, h: np.ndarray, g: np.ndarray, alpha: float) -> np.ndarray:
        """delta = -H^-1 g with H the weighted Laplacian (+ 2 alpha I). Without a prior, solve with
        H + 11^T / n instead: it is nonsingular and, as g sums to zero, gives the solution with sum 0."""
        n, H = self.n, self.buffer
        H.fill(0.0)
        flat = H.reshape(-1)
        flat[self.upper] = -h
        flat[self.lower] = -h
        flat[:: n + 1] = (np.bincount(self.a, weights=h, minlength=n) + np.bincount(self.b, weights=h, minlength=n)
                          + 2.0 * alpha)
        if alpha == 0.0:
            H += 1.0 / n
        return newton.solve_spd(H, -g)


def fit(n_items: int, comparisons: Any, alpha: float = 0.0, *, tol: float = 1e-10, max_iter: int = 100,
        standard_errors: bool = False) -> Result:
    """Maximum-likelihood (alpha = 0) or MAP (alpha > 0) Bradley-Terry scores; see the module docstring.

    n_items: number of items.  comparisons: a ``Comparisons`` (or pairs / rows, see ``as_comparisons``).
    alpha: prior weight, L2 penalty alpha * ||theta||^2 (``choix``'s convention; >= 0).
    tol: stop when the Newton decrement g . H^-1 g / 2 falls below it.  standard_errors: compute
    ``Result.standard_errors`` (a dense (n, n) inverse: +60-70% on the fit's time at 200-1000 items);
    otherwise it is None.
    Raises ``ComparisonGraphError`` when alpha = 0 and the scores are not identifiable.
    """
    n, alpha = check_prior(n_items, alpha)
    check_bool("standard_errors", standard_errors)
    a, b, count, wins = pair_counts(as_comparisons(n, comparisons))
    if alpha == 0.0:
        check_strongly_connected(n, a, b, count, wins)
    dense = _DenseLaplacian(n, a, b) if n <= DENSE_LIMIT else None

    def direction(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = 0.5 * (1.0 + np.tanh(0.5 * (theta[a] - theta[b])))  # sigma(theta_a - theta_b)
        r = count * p - wins  # dL/d(theta_a - theta_b) per pair
        g = np.bincount(a, weights=r, minlength=n) - np.bincount(b, weights=r, minlength=n) + 2.0 * alpha * theta
        h = count * p * (1.0 - p)  # d^2 L / d(theta_a - theta_b)^2 per pair
        if dense is not None:
            return g, dense.direction(h, g, alpha)
        return g, _sparse_direction(_hessian(n, a, b, h, alpha, dense=False), g, alpha)

    solution = newton.minimize(lambda theta: _objective(theta, a, b, count, wins, alpha), direction, np.zeros(n),
                               tol=tol, max_iter=max_iter)
    theta = solution.x - solution.x.mean()
    se = None
    if standard_errors:
        p = 0.5 * (1.0 + np.tanh(0.5 * (theta[a] - theta[b])))
        H = _hessian(n, a, b, count * p * (1.0 - p), alpha, dense=True)
        se = newton.standard_errors(H, shift_invariant=alpha == 0)
    loglik = -_objective(theta, a, b, count, wins, 0.0)
    return Result(scores=theta, standard_errors=se, log_likelihood=loglik, objective=-loglik + alpha * theta @ theta,
                  n_iter=solution.n_iter, converged=solution.converged, alpha=alpha)


# -- features: r(x) = w . phi(x) ------------------------------------------------------------------
@dataclasses.dataclass
class FeatureResult:
    """weights: (F,) w.  standard_errors: (F,).  scores: (n,) w . phi(x) per item.  log_likelihood: data."""

    weights: np.ndarray
    standard_errors: np.ndarray
    scores: np.ndarray
    log_likelihood: float
    n_iter: int
    converged: bool


def fit_features(features: np.ndarray, comparisons: Any, alpha: float = 0.0, *, tol: float = 1e-10,
                 max_iter: int = 100) -> FeatureResult:
    """Bradley-Terry with a linear reward r(x) = w . phi(x): item features (n, F), the same loss in w
    (logistic regression on phi_i - phi_j), penalty alpha * ||w||^2. Newton's method; raises when the
    judgements are perfectly separated by the features and alpha = 0 (w would grow without bound)."""
    phi = np.asarray(features, dtype=np.float64)
    if phi.ndim != 2 or len(phi) < 2 or not np.all(np.isfinite(phi)):
        raise ValidationError(f"features: {describe(phi)}; expected a finite (n_items, F) array, n_items >= 2")
    alpha = check_prior(len(phi), alpha)[1]
    a, b, count, wins = pair_counts(as_comparisons(len(phi), comparisons))
    X = phi[a] - phi[b]  # (pairs, F)

    def objective(w: np.ndarray) -> float:
        d = X @ w
        return float(np.sum(wins * np.logaddexp(0.0, -d) + (count - wins) * np.logaddexp(0.0, d)) + alpha * w @ w)

    def direction(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = 0.5 * (1.0 + np.tanh(0.5 * (X @ w)))
        g = X.T @ (count * p - wins) + 2.0 * alpha * w
        H = (X * (count * p * (1.0 - p))[:, None]).T @ X + 2.0 * alpha * np.eye(len(w))
        try:
            return g, -scipy.linalg.solve(H, g, assume_a="pos")
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
            return g, -np.linalg.lstsq(H, g, rcond=None)[0]

    solution = newton.minimize(objective, direction, np.zeros(phi.shape[1]), tol=tol, max_iter=max_iter)
    w, n_iter, converged = solution.x, solution.n_iter, solution.converged
    p = 0.5 * (1.0 + np.tanh(0.5 * (X @ w)))
    pure = (wins == 0) | (wins == count)  # pairs always decided the same way
    # fitting pure pairs to within 1e-9 needs |w . (phi_a - phi_b)| > 20: the judgements are separated
    separated = pure.any() and bool(np.all(np.abs(count * p - wins)[pure] < 1e-9 * count[pure]))
    if alpha == 0.0 and (separated or not converged):
        raise ComparisonGraphError(
            f"features: the judgements are separable by the features (|w| = {np.linalg.norm(w):.3g} after "
            f"{n_iter} Newton steps), so the maximum-likelihood w is infinite: pass alpha > 0")
    with newton.blas_threads_limited(len(w)):
        H = (X * (count * p * (1.0 - p))[:, None]).T @ X + 2.0 * alpha * np.eye(len(w))
        se = np.sqrt(np.clip(np.diag(np.linalg.pinv(H)), 0.0, None))
    return FeatureResult(weights=w, standard_errors=se, scores=phi @ w,
                         log_likelihood=-(objective(w) - alpha * w @ w), n_iter=n_iter, converged=converged)


# -- networks ---------------------------------------------------------------------------------
@dataclasses.dataclass
class NetworkResult:
    """model: the torch MLP r_phi (F -> 1).  scores: (n,) r_phi(x) per item, mean-centred.
    history: one dict per epoch (epoch, loss, accuracy on non-tied judgements)."""

    model: Any
    scores: np.ndarray
    history: list[dict]


def fit_network(features: np.ndarray, comparisons: Any, hidden_sizes: Sequence[int] = (64, 64), *,
                epochs: int = 200, lr: float = 1e-2, weight_decay: float = 0.0, batch_size: int | None = None,
                seed: int = 0) -> NetworkResult:
    """Bradley-Terry with a neural reward r_phi(x): item features (n, F), Adam on ``loss``.
    batch_size None = full batch. Same seed, same weights."""
    phi = np.asarray(features, dtype=np.float32)
    if phi.ndim != 2 or len(phi) < 2 or not np.all(np.isfinite(phi)):
        raise ValidationError(f"features: {describe(phi)}; expected a finite (n_items, F) array, n_items >= 2")
    check_number("epochs", epochs, low=1, integer=True)
    if batch_size:  # None (or 0) = full batch
        check_number("batch_size", batch_size, low=1, integer=True)
    data = as_comparisons(len(phi), comparisons)
    model = mlp(phi.shape[1], tuple(hidden_sizes), 1, "relu", seed=seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    x = torch.as_tensor(phi)
    i, j = torch.from_numpy(data.i.copy()), torch.from_numpy(data.j.copy())
    mu = torch.tensor(data.mu, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    size = batch_size or len(mu)
    history = []
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(mu), generator=generator)
        total = 0.0
        for start in range(0, len(mu), size):
            idx = order[start:start + size]
            r = model(x).squeeze(-1)
            batch_loss = loss(r[i[idx]], r[j[idx]], mu[idx])
            optimiser.zero_grad()
            batch_loss.backward()
            optimiser.step()
            total += float(batch_loss.detach()) * len(idx)
        with torch.no_grad():
            r = model(x).squeeze(-1)
            decided = mu != 0.5
            correct = ((r[i] > r[j]) == (mu == 1.0))[decided].float().mean() if decided.any() else torch.tensor(0.0)
        history.append({"epoch": epoch, "loss": total / len(mu), "accuracy": float(correct)})
    with torch.no_grad():
        scores = model(x).squeeze(-1).double().numpy()
    return NetworkResult(model=model, scores=scores - scores.mean(), history=history)
