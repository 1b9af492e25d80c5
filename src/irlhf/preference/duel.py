"""Winners of a preference matrix, and dueling bandits that find them by asking for duels.

A preference matrix P (K, K) holds P[i, j] = P(i preferred to j), with P + P^T = 1 and P[i, i] = 1/2.
The lecture (000, section 12; 001, "Condorcet / Copeland / Borda winner") names three notions of "best":

- **Condorcet winner**: P[i, j] > 1/2 for every j != i. It need not exist (a rock-paper-scissors cycle).
- **Copeland winner**: maximises cpld(i) = #{j : P_ij > 1/2} - #{j : P_ij < 1/2} (beats minus loses;
  equals 2 * wins - (K - 1) without exact ties). Always exists; equals the Condorcet winner when there is one.
- **Borda winner**: maximises the expected score of a duel against a uniformly random opponent, a duel
  scoring 1 for a win, 1/2 for a tie and 0 for a loss: borda(i) = (1 / (K - 1)) sum_{j != i} P_ij. The
  lecture's parenthetical "(P > 0.5)" would make Borda the same as Copeland; we use the standard expectation
  over duel outcomes of the dueling-bandit literature (Urvoy et al. 2013; Jamieson et al. 2015). The Borda
  winner can differ from the Condorcet winner (``borda_vs_copeland_matrix``).

    P = preference_matrix(comparisons)            # empirical matrix, NaN where a pair was never compared
    winners(P)                                     # {"condorcet": int | None, "copeland": array, "borda": array}

Dueling bandits (Yue, Broder, Kleinberg & Joachims 2012): at each step t pick two arms (a_t, b_t), observe
a noisy duel outcome, and pay the regret r_t = (eps(b*, a_t) + eps(b*, b_t)) / 2 with eps(x, y) = P_xy - 1/2
and b* the Condorcet winner. Without a Condorcet winner we report the Copeland regret
r_t = cpld* - (cpld(a_t) + cpld(b_t)) / 2, cpld(i) = #{j != i : P_ij > 1/2} / (K - 1) (Zoghi et al. 2015).

    env = MatrixDuelEnv(arithmetic_matrix(8), seed=0)   # or a fitted bradley_terry.Result, or a scores vector
    run = interleaved_filter(env, 20_000, variant="IF2", seed=0)
    run = rucb(env, 20_000, alpha=0.51, seed=0)
    run.arms (T, 2), run.outcomes (T,), run.regret (T,), run.cumulative_regret (T,), run.recommended

An environment is anything with ``n_arms`` and ``duel(i, j) -> float`` in {1, 0.5, 0} (1 = i preferred);
an optional vectorised ``duels(i, j)`` and the true matrix ``P`` are used when present.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol

import numpy as np

from irlhf.core.errors import ValidationError, describe
from irlhf.core.seeding import SeedLike, as_generator
from irlhf.data.preferences import Comparisons
from irlhf.preference.bradley_terry import as_comparisons, preference_probabilities

__all__ = ["preference_matrix", "check_matrix", "condorcet_winner", "copeland_scores", "copeland_winners",
           "borda_scores", "borda_winners", "winners", "arithmetic_matrix", "bradley_terry_matrix",
           "cyclic_matrix", "borda_vs_copeland_matrix", "random_condorcet_matrix", "DuelEnv", "MatrixDuelEnv",
           "DuelRun", "regret", "interleaved_filter", "rucb"]

TOL = 1e-9  # tolerance of P + P^T = 1 and P_ii = 1/2


# -- preference matrices -------------------------------------------------------------------------
def preference_matrix(comparisons: Any, n_items: int | None = None) -> np.ndarray:
    """Empirical (n, n) matrix P_hat[i, j] = (i's wins over j, ties as 1/2) / (# judgements between i and j).

    ``comparisons``: a ``Comparisons`` (or anything ``bradley_terry.as_comparisons`` accepts with ``n_items``).
    Entries of never-compared pairs are NaN; the diagonal is 1/2.
    """
    data = comparisons if isinstance(comparisons, Comparisons) and n_items is None else as_comparisons(
        n_items, comparisons)
    n = data.n_items
    forward, backward = data.i * n + data.j, data.j * n + data.i
    flat = np.concatenate([forward, backward])
    wins = np.bincount(flat, weights=np.concatenate([data.mu, 1.0 - data.mu]), minlength=n * n)
    count = np.bincount(flat, minlength=n * n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        P = np.where(count > 0, wins / np.where(count > 0, count, 1.0), np.nan).reshape(n, n)
    P[np.diag_indices(n)] = 0.5
    return P


def check_matrix(P: Any, name: str = "P", complete: bool = False) -> np.ndarray:
    """Validate a preference matrix and return it as float64 (K, K).

    Square with K >= 2; off-diagonal entries in [0, 1] or NaN (never compared; not allowed when
    ``complete``); P_ij + P_ji = 1 where both are defined (tolerance 1e-9); diagonal 1/2.
    """
    try:
        M = np.array(P, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: could not be converted to a float array ({exc})") from None
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] < 2:
        raise ValidationError(f"{name}: shape {M.shape}; expected a square (K, K) preference matrix with K >= 2")
    K = M.shape[0]
    diag = np.diag(M)
    bad = ~(np.abs(diag - 0.5) <= TOL)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValidationError(f"{name}[{k}, {k}] = {diag[k]}: expected 0.5 on the diagonal (an arm ties itself)")
    off = ~np.eye(K, dtype=bool)
    nan = np.isnan(M) & off
    if complete and nan.any():
        i, j = np.argwhere(nan)[0]
        raise ValidationError(f"{name}[{i}, {j}] = nan: expected a complete matrix (every pair's probability)")
    bad = ~nan & ~((M >= 0.0) & (M <= 1.0))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValidationError(f"{name}[{i}, {j}] = {M[i, j]}: expected a probability in [0, 1] (or NaN if never "
                              "compared)")
    both = ~np.isnan(M) & ~np.isnan(M.T)
    bad = both & ~(np.abs(M + M.T - 1.0) <= TOL)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValidationError(f"{name}[{i}, {j}] + {name}[{j}, {i}] = {M[i, j]} + {M[j, i]} = {M[i, j] + M[j, i]}: "
                              "expected 1 (P(i > j) + P(j > i) = 1)")
    return M


def condorcet_winner(P: Any) -> int | None:
    """The arm i with P[i, j] > 1/2 for every j != i, or None (NaN entries count as not > 1/2)."""
    M = check_matrix(P)
    beats = (M > 0.5) | np.eye(len(M), dtype=bool)  # NaN > 0.5 is False
    found = np.flatnonzero(beats.all(axis=1))
    return int(found[0]) if len(found) else None


def copeland_scores(P: Any) -> np.ndarray:
    """(K,) int: #{j : P_ij > 1/2} - #{j : P_ij < 1/2} (beats minus loses; NaN pairs count neither way)."""
    M = check_matrix(P)
    return (M > 0.5).sum(axis=1) - (M < 0.5).sum(axis=1)


def copeland_winners(P: Any) -> np.ndarray:
    """All maximisers of ``copeland_scores`` (sorted arm ids)."""
    scores = copeland_scores(P)
    return np.flatnonzero(scores == scores.max())


def borda_scores(P: Any) -> np.ndarray:
    """(K,) expected duel score against a uniformly random compared opponent: mean_{j != i, P_ij defined} P_ij.

    A duel scores 1 for a win, 1/2 for a tie and 0 for a loss, so its expectation is P_ij (see the module
    docstring for why this, not the lecture's "(P > 0.5)", is the reading used). NaN for an arm never compared.
    """
    M = check_matrix(P)
    off = ~np.eye(len(M), dtype=bool) & ~np.isnan(M)
    n = off.sum(axis=1)
    total = np.where(off, M, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def borda_winners(P: Any) -> np.ndarray:
    """All maximisers of ``borda_scores`` (up to 1e-12; arms never compared are skipped)."""
    scores = borda_scores(P)
    if np.isnan(scores).all():
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(scores >= np.nanmax(scores) - 1e-12)


def winners(P: Any) -> dict[str, Any]:
    """{"condorcet": int | None, "copeland": (n_c,) array, "borda": (n_b,) array}."""
    return {"condorcet": condorcet_winner(P), "copeland": copeland_winners(P), "borda": borda_winners(P)}


# -- matrix constructors -------------------------------------------------------------------------
def arithmetic_matrix(K: int = 8, gap: float = 0.05) -> np.ndarray:
    """P_ij = 1/2 + gap (j - i): a total order with arm 0 the Condorcet winner (Yue et al. 2012's example)."""
    K = _check_int("K", K, 2)
    if isinstance(gap, bool) or not isinstance(gap, (int, float, np.integer, np.floating)) or not (
            0 < gap and gap * (K - 1) <= 0.5):
        raise ValidationError(f"gap={describe(gap)}: expected 0 < gap <= 0.5 / (K - 1) = {0.5 / (K - 1):.4g} "
                              "(so that every P_ij is in [0, 1])")
    idx = np.arange(K)
    return 0.5 + float(gap) * (idx[None, :] - idx[:, None])


def bradley_terry_matrix(scores: Any) -> np.ndarray:
    """P_ij = sigma(theta_i - theta_j) from (K,) Bradley-Terry scores."""
    return preference_probabilities(scores)


def cyclic_matrix() -> np.ndarray:
    """4 arms, no Condorcet winner: 0 > 1 > 2 > 0 with P = 0.6 (rock-paper-scissors), all three beat arm 3
    with P = 0.8. Copeland winners: arms 0, 1, 2 (score 2 - 1 = 1 each); arm 3 scores -3."""
    return np.array([[0.5, 0.6, 0.4, 0.8],
                     [0.4, 0.5, 0.6, 0.8],
                     [0.6, 0.4, 0.5, 0.8],
                     [0.2, 0.2, 0.2, 0.5]])


def borda_vs_copeland_matrix() -> np.ndarray:
    """3 arms where the Borda winner (arm 1) is not the Copeland (= Condorcet) winner (arm 0).

    Arm 0 beats both others narrowly (0.51): Copeland 2, Borda 0.51. Arm 1 loses narrowly to 0 but crushes
    arm 2 (0.99): Copeland 0, Borda (0.49 + 0.99) / 2 = 0.74.
    """
    return np.array([[0.5, 0.51, 0.51],
                     [0.49, 0.5, 0.99],
                     [0.49, 0.01, 0.5]])


def random_condorcet_matrix(K: int = 8, seed: SeedLike = 0, min_gap: float = 0.05) -> np.ndarray:
    """A random (K, K) matrix with a planted Condorcet winner at a random arm, not a total order in general.

    Off-diagonal pairs among the other arms are uniform on [0.1, 0.9] (cycles are likely); the winner
    beats each other arm with P uniform on [1/2 + min_gap, 0.9].
    """
    K = _check_int("K", K, 2)
    if not (isinstance(min_gap, (int, float, np.integer, np.floating)) and 0 < min_gap < 0.4):
        raise ValidationError(f"min_gap={describe(min_gap)}: expected 0 < min_gap < 0.4")
    rng = as_generator(seed)
    upper = np.triu(rng.uniform(0.1, 0.9, size=(K, K)), 1)
    P = upper + np.triu(1.0 - upper, 1).T
    w = int(rng.integers(K))
    row = rng.uniform(0.5 + min_gap, 0.9, size=K)
    P[w, :], P[:, w] = row, 1.0 - row
    P[np.diag_indices(K)] = 0.5
    return P


# -- environments --------------------------------------------------------------------------------
class DuelEnv(Protocol):
    """A dueling-bandit environment: ``duel(i, j)`` returns 1 (i preferred), 0.5 (tie) or 0 (j preferred)."""

    n_arms: int

    def duel(self, i: int, j: int) -> float: ...


class MatrixDuelEnv:
    """Duels drawn from a true preference matrix: outcome 1 with probability P[i, j], else 0.

    ``P``: a complete (K, K) matrix, a fitted ``bradley_terry.Result`` (its ``probabilities()``), or a (K,)
    scores vector (Bradley-Terry). A duel of an arm with itself is a tie (0.5) and draws nothing.
    """

    def __init__(self, P: Any, seed: SeedLike = 0) -> None:
        if hasattr(P, "probabilities"):
            P = P.probabilities()
        elif np.ndim(P) == 1:
            P = preference_probabilities(P)
        self.P = check_matrix(P, complete=True)
        self.P.flags.writeable = False
        self.n_arms = len(self.P)
        self.rng = as_generator(seed)

    def duel(self, i: int, j: int) -> float:
        if i == j:
            return 0.5
        return 1.0 if self.rng.random() < self.P[i, j] else 0.0

    def duels(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Vectorised ``duel`` over (n,) arm arrays -> (n,) outcomes."""
        i, j = np.asarray(i), np.asarray(j)
        out = (self.rng.random(len(i)) < self.P[i, j]).astype(np.float64)
        out[i == j] = 0.5
        return out


def _duels(env: Any, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    if hasattr(env, "duels"):
        return np.asarray(env.duels(i, j), dtype=np.float64)
    return np.array([env.duel(int(a), int(b)) for a, b in zip(i, j)], dtype=np.float64)


def _as_env(env: Any, seed: SeedLike) -> Any:
    """Accept an environment, or a matrix / Result / scores vector (wrapped in ``MatrixDuelEnv``)."""
    if hasattr(env, "duel") and hasattr(env, "n_arms"):
        return env
    return MatrixDuelEnv(env, seed=seed)


# -- regret --------------------------------------------------------------------------------------
def regret(P: Any, arms: Any) -> np.ndarray:
    """(T,) per-step regret of duels ``arms`` (T, 2) under the true complete matrix P.

    With a Condorcet winner b*: r_t = (eps(b*, a_t) + eps(b*, b_t)) / 2, eps(x, y) = P_xy - 1/2 (the "average"
    regret of Yue et al. 2012 and Zoghi et al. 2014). Without one: the Copeland regret
    r_t = cpld* - (cpld(a_t) + cpld(b_t)) / 2, cpld(i) = #{j != i : P_ij > 1/2} / (K - 1) (Zoghi et al. 2015).
    """
    M = check_matrix(P, complete=True)
    arms = np.asarray(arms)
    if arms.ndim != 2 or arms.shape[1] != 2 or not np.issubdtype(arms.dtype, np.integer):
        raise ValidationError(f"arms: {describe(arms)}; expected (T, 2) integer arm ids")
    if arms.size and (arms.min() < 0 or arms.max() >= len(M)):
        raise ValidationError(f"arms: ids in [{arms.min()}, {arms.max()}]; expected 0 <= id < K = {len(M)}")
    per_arm = _arm_regret(M)[0]
    return 0.5 * (per_arm[arms[:, 0]] + per_arm[arms[:, 1]])


def _arm_regret(M: np.ndarray) -> tuple[np.ndarray, str]:
    """(K,) regret of playing an arm in one slot of a duel (the per-step regret averages the two slots)."""
    best = condorcet_winner(M)
    if best is not None:
        return M[best] - 0.5, "condorcet"
    cpld = (M > 0.5).sum(axis=1) / (len(M) - 1)
    return cpld.max() - cpld, "copeland"


@dataclasses.dataclass
class DuelRun:
    """One dueling-bandit run of T steps.

    arms: (T, 2) int arms dueled.  outcomes: (T,) 1 / 0.5 / 0 (first arm preferred / tie / second).
    regret, cumulative_regret: (T,) from the env's true matrix ``env.P`` (None if the env has none).
    regret_kind: "condorcet" or "copeland" (None without ``env.P``).  recommended: the final arm.
    """

    algorithm: str
    arms: np.ndarray
    outcomes: np.ndarray
    regret: np.ndarray | None
    cumulative_regret: np.ndarray | None
    regret_kind: str | None
    recommended: int


def _finish(algorithm: str, env: Any, arms: np.ndarray, outcomes: np.ndarray, recommended: int) -> DuelRun:
    P = getattr(env, "P", None)
    if P is None:
        return DuelRun(algorithm, arms, outcomes, None, None, None, int(recommended))
    M = check_matrix(P, complete=True)
    per_arm, kind = _arm_regret(M)
    r = 0.5 * (per_arm[arms[:, 0]] + per_arm[arms[:, 1]])
    return DuelRun(algorithm, arms, outcomes, r, np.cumsum(r), kind, int(recommended))


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValidationError(f"{name}={describe(value)}: expected an int >= {low}")
    return int(value)


# -- Interleaved Filter (Yue, Broder, Kleinberg & Joachims 2012) ----------------------------------
def interleaved_filter(env: Any, horizon: int, *, variant: str = "IF2", seed: SeedLike = 0) -> DuelRun:
    """Interleaved Filter: Algorithm 1 (IF1) or Algorithm 2 (IF2, with pruning) of Yue et al. (2012).

    delta = 1 / (T K^2); a random incumbent b_hat duels every remaining arm once per round (round robin);
    with t duels per pair, P_hat(b_hat, b) has the 1 - delta confidence interval P_hat +- c_t,
    c_t = sqrt(log(1 / delta) / t) (their Eq. 6-7). Arms the incumbent beats confidently (P_hat > 1/2 and
    1/2 outside the interval) are removed; if some b' beats the incumbent confidently, then (IF2 only) every
    arm the incumbent empirically beats (P_hat > 1/2) is pruned, b' becomes the incumbent, the old one is
    dropped, and all estimates are reset. Once no challenger is left the algorithm plays (b_hat, b_hat) until
    the horizon. Exactly ``horizon`` duels are made (a round is cut short at the horizon).

    ``env``: a ``DuelEnv`` (or a matrix / Result / scores, wrapped in ``MatrixDuelEnv(seed=seed)``).
    ``seed`` drives the incumbent choice. Returns a ``DuelRun``; ``recommended`` is the final incumbent.
    """
    T = _check_int("horizon", horizon, 1)
    if variant not in ("IF1", "IF2"):
        raise ValidationError(f"variant={describe(variant)}: expected 'IF1' or 'IF2'")
    rng = as_generator(seed)
    env = _as_env(env, rng)
    K = _check_int("env.n_arms", env.n_arms, 2)
    log_inv_delta = math.log(T * K * K)  # log(1 / delta), delta = 1 / (T K^2)
    arms = np.empty((T, 2), dtype=np.int64)
    outcomes = np.empty(T, dtype=np.float64)
    incumbent = int(rng.integers(K))
    remaining = np.array([b for b in range(K) if b != incumbent], dtype=np.int64)
    wins = np.zeros(len(remaining))  # incumbent's wins over each remaining arm (ties 1/2), since the last reset
    t, step = 0, 0  # t: duels per pair since the last reset (equal for all remaining arms: round robin)
    while len(remaining) and step < T:
        n = min(len(remaining), T - step)
        challengers = remaining[:n]
        arms[step:step + n, 0], arms[step:step + n, 1] = incumbent, challengers
        outcomes[step:step + n] = _duels(env, np.full(n, incumbent), challengers)
        step += n
        if n < len(remaining):  # horizon reached mid-round
            break
        wins += outcomes[step - n:step]
        t += 1
        p_hat = wins / t
        c_t = math.sqrt(log_inv_delta / t)
        keep = ~((p_hat > 0.5) & (p_hat - c_t > 0.5))  # incumbent confidently beats b: remove b
        losers = np.flatnonzero(keep & (p_hat < 0.5) & (p_hat + c_t < 0.5))  # b confidently beats incumbent
        if len(losers):
            new = int(remaining[losers[0]])
            if variant == "IF2":
                keep &= ~(p_hat > 0.5)  # prune every arm the old incumbent empirically beats
            keep[losers[0]] = False
            incumbent = new
            remaining = remaining[keep]
            wins = np.zeros(len(remaining))
            t = 0
        else:
            remaining, wins = remaining[keep], wins[keep]
    if step < T:  # exploit: duel the survivor with itself
        arms[step:, :] = incumbent
        outcomes[step:] = _duels(env, arms[step:, 0], arms[step:, 1])
    return _finish(f"interleaved_filter[{variant}]", env, arms, outcomes, incumbent)


# -- Relative Upper Confidence Bound (Zoghi, Whiteson, Munos & de Rijke 2014) ---------------------
def rucb(env: Any, horizon: int, *, alpha: float = 0.51, seed: SeedLike = 0) -> DuelRun:
    """RUCB, Algorithm 1 of Zoghi et al. (2014). Requires alpha > 1/2 (their Theorem 1).

    Each step t = 1..T (line numbers of the paper's Algorithm 1):
      3-4. U = W / (W + W^T) + sqrt(alpha ln t / (W + W^T)), x / 0 := 1, U_jj = 1/2 (W: wins matrix).
      5.   C = {c : U_cj >= 1/2 for all j}; if C is empty, pick c uniformly among all arms.
      6-7. B <- B & C; if |C| = 1, B <- C and c is that arm.
      8.   otherwise sample c from C: p(c) = 1/2 if c in B, 1 / (2^|B| |C \\ B|) otherwise.
      9.   d = argmax_j U_jc, ties broken at random, preferring d != c (d = c only if every U_jc < 1/2).
      10.  duel (c, d) and add the outcome to W (W_cd += o, W_dc += 1 - o; a tie counts 1/2 each way).
    Recommended arm (the paper's return value): the arm that empirically beats the most arms,
    #{j : W_cj / (W_cj + W_jc) > 1/2}, ties broken by the higher mean empirical win rate, then lowest id.
    """
    T = _check_int("horizon", horizon, 1)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) or not (
            math.isfinite(alpha) and alpha > 0.5):
        raise ValidationError(f"alpha={describe(alpha)}: expected a finite number > 0.5 (RUCB's regret bound "
                              "needs alpha > 1/2)")
    rng = as_generator(seed)
    env = _as_env(env, rng)
    K = _check_int("env.n_arms", env.n_arms, 2)
    W = np.zeros((K, K))
    # U = mean + sqrt(alpha ln t) * inv_sqrt, kept entrywise up to date: mean = W / N and inv_sqrt = N^-1/2
    # where N = W + W^T > 0; mean = 1 and inv_sqrt = 0 where N = 0 (x / 0 := 1); mean_jj = 1/2, inv_sqrt_jj = 0.
    mean = np.ones((K, K))
    inv_sqrt = np.zeros((K, K))
    mean[np.diag_indices(K)] = 0.5
    arms = np.empty((T, 2), dtype=np.int64)
    outcomes = np.empty(T, dtype=np.float64)
    best: int | None = None  # B has at most one element
    uniforms = rng.random((T, 3))  # pre-drawn: c when C is empty / c from C / tie-break of d
    for t in range(1, T + 1):
        U = mean + math.sqrt(alpha * math.log(t)) * inv_sqrt
        C = np.flatnonzero(U.min(axis=1) >= 0.5)
        u = uniforms[t - 1]
        if len(C) == 0:
            c = int(u[0] * K)
            best = None
        else:
            if best is not None and best not in C:
                best = None
            if len(C) == 1:
                best = c = int(C[0])
            elif best is None:
                c = int(C[int(u[1] * len(C))])
            elif u[1] < 0.5:
                c = best
            else:
                others = C[C != best]
                c = int(others[int((u[1] - 0.5) * 2.0 * len(others))])
        col = U[:, c]  # a view of this step's U, which is rebuilt next step: safe to modify
        col[c] = -np.inf
        top = col.max()
        if top < 0.5:
            d = c
        else:
            ties = np.flatnonzero(col == top)
            d = int(ties[int(u[2] * len(ties))])
        o = env.duel(c, d)
        arms[t - 1] = c, d
        outcomes[t - 1] = o
        if c != d:
            W[c, d] += o
            W[d, c] += 1.0 - o
            n = W[c, d] + W[d, c]
            mean[c, d], mean[d, c] = W[c, d] / n, W[d, c] / n
            inv_sqrt[c, d] = inv_sqrt[d, c] = 1.0 / math.sqrt(n)
    N = W + W.T
    with np.errstate(divide="ignore", invalid="ignore"):
        P_hat = np.where(N > 0, W / np.where(N > 0, N, 1.0), 0.5)
    beats = (P_hat > 0.5).sum(axis=1)
    key = np.lexsort((-np.arange(K), P_hat.mean(axis=1), beats))  # last key primary
    return _finish("rucb", env, arms, outcomes, int(key[-1]))
