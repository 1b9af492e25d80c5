"""Tabular MDPs with sparse dynamics, the classic IRL worlds, trajectory sampling and a gym view.

``TabularMDP.transitions`` is a scipy CSR matrix of shape (S*A, S): row ``s*A + a`` holds
P(s' | s, a). Grid worlds number cells ``s = row * n + col``; their 5 actions are
``0 stay, 1 up (row-1), 2 down (row+1), 3 left (col-1), 4 right (col+1)``; a move off the
grid stays put. Every builder is deterministic given its ``seed``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any

import gymnasium as gym
import numpy as np
import scipy.sparse as sp

from irlhf.core.errors import ValidationError, describe
from irlhf.core.seeding import SeedLike, as_generator
from irlhf.data.types import Trajectory

ROW_SUM_TOL = 1e-8
# a sum of k probabilities each rounded once to a dtype is off by at most k eps / 2; twice that leaves room for
# the producer's own normalising division
ROUNDING_SLACK = 4
GRID_MOVES = np.array([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)])  # (d_row, d_col) per action
ACTION_NAMES = ("stay", "up", "down", "left", "right")


def _rounding_tolerance(dtype: np.dtype, n_terms: np.ndarray) -> np.ndarray:
    """How far from 1 sums of ``n_terms`` probabilities stored as ``dtype`` may be from rounding alone: a few
    eps of the dtype per term, never below ROW_SUM_TOL (so float64 keeps 1e-8; integers must be exact)."""
    eps = np.finfo(dtype).eps if np.issubdtype(dtype, np.floating) else 0.0
    return np.maximum(ROW_SUM_TOL, ROUNDING_SLACK * eps * np.maximum(n_terms, 1))


@functools.cache
def _note_renormalised(name: str, dtype: str) -> None:
    """Say once per (field, dtype) that rounding-only errors were corrected, not on every MDP built."""
    logging.getLogger(__name__).warning(
        "%s: stored as %s, some probabilities sum to 1 only up to rounding; renormalised in float64 "
        "(noted once)", name, dtype)


def _input_dtype(value: Any) -> np.dtype:
    return value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype


def _stochastic_rows(P: sp.csr_matrix, dtype: np.dtype) -> sp.csr_matrix:
    """P (float64 CSR, values >= 0) with rows that sum to 1: rows off by rounding of ``dtype`` are rescaled in
    place; a row off by more is rejected with its index and sum."""
    per_row = np.diff(P.indptr)
    row_sums = np.asarray(P.sum(axis=1)).ravel()
    error = np.abs(row_sums - 1.0)
    tolerance = _rounding_tolerance(dtype, per_row)
    bad = np.flatnonzero(error > tolerance)
    if bad.size:
        r, A = int(bad[0]), P.shape[0] // P.shape[1]
        raise ValidationError(
            f"transitions: row {r} (state {r // A}, action {r % A}) sums to {row_sums[r]:.10g}; expected 1 "
            f"(within {tolerance[r]:.1g} for {dtype} input; {bad.size} bad rows)")
    if (error > ROW_SUM_TOL).any():
        P.data /= np.repeat(row_sums, per_row)
        _note_renormalised("transitions", str(dtype))
    return P


def _distribution(name: str, value: Any, size: int) -> np.ndarray:
    """``value`` as a float64 probability vector of length ``size``; a sum off by the input dtype's rounding
    only is renormalised (noted once)."""
    p = _finite_float_array(name, value)
    if p.shape != (size,) or (p < 0).any():
        raise ValidationError(f"{name}: {describe(value)}; expected a probability vector of shape ({size},)")
    error = abs(p.sum() - 1.0)
    if error > _rounding_tolerance(_input_dtype(value), np.count_nonzero(p)):
        raise ValidationError(f"{name}: {describe(value)} (sum {p.sum():.10g}); expected a probability vector of "
                              f"shape ({size},)")
    if error > ROW_SUM_TOL:
        p /= p.sum()
        _note_renormalised(name, str(_input_dtype(value)))
    return p


def _finite_float_array(name: str, value: Any) -> np.ndarray:
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: not a numeric array ({exc})") from None
    if not np.all(np.isfinite(array)):
        raise ValidationError(f"{name}: contains NaN or inf ({describe(value)}); expected finite values")
    return array


@dataclasses.dataclass(frozen=True, eq=False)
class TabularMDP:
    """A finite MDP with known sparse dynamics.

    transitions: CSR (S*A, S), row s*A+a = P(. | s, a); a dense (S, A, S) array is converted.
    features: (S, F) state features.  initial: (S,) start distribution.
    discount: in (0, 1] (1 only with a finite horizon).  horizon: int >= 1 or None (infinite).
    true_reward: (S,) or (S, A) or None.  meta: free-form description (grid size, objects, ...).
    Rows of transitions and initial sum to 1 within 1e-8, or within the rounding of their dtype when given in
    lower precision (e.g. float32, as seals' tabular environments store them): those are renormalised in
    float64, with a logged note (once per field and dtype).
    """

    transitions: sp.csr_matrix
    features: np.ndarray
    initial: np.ndarray
    discount: float = 0.99
    horizon: int | None = None
    true_reward: np.ndarray | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        P = self.transitions
        dtype = _input_dtype(P) if isinstance(P, np.ndarray) or sp.issparse(P) else np.dtype(np.float64)
        if isinstance(P, np.ndarray) and P.ndim == 3:
            if P.shape[0] != P.shape[2]:
                raise ValidationError(f"transitions: dense shape {P.shape}; expected (S, A, S)")
            P = sp.csr_matrix(P.reshape(P.shape[0] * P.shape[1], P.shape[2]))
        elif sp.issparse(P):
            P = sp.csr_matrix(P, dtype=np.float64)
        else:
            raise ValidationError(f"transitions: {describe(P)}; expected a scipy sparse (S*A, S) matrix or a dense (S, A, S) array")
        P = P.astype(np.float64)
        P.eliminate_zeros()
        P.sort_indices()
        S = P.shape[1]
        if S == 0 or P.shape[0] == 0 or P.shape[0] % S != 0:
            raise ValidationError(f"transitions: shape {P.shape}; expected (S*A, S) with S, A >= 1")
        if not np.all(np.isfinite(P.data)) or (P.data < 0).any():
            raise ValidationError("transitions: negative, NaN or inf probabilities; expected values in [0, 1]")
        object.__setattr__(self, "transitions", _stochastic_rows(P, dtype))

        features = _finite_float_array("features", self.features)
        if features.ndim != 2 or features.shape[0] != S:
            raise ValidationError(f"features: shape {features.shape}; expected (S, F) = ({S}, F)")
        object.__setattr__(self, "features", features)

        object.__setattr__(self, "initial", _distribution("initial", self.initial, S))

        if isinstance(self.discount, bool) or not isinstance(self.discount, (int, float, np.floating)) or not (0 < self.discount <= 1):
            raise ValidationError(f"discount={self.discount!r}: expected a number in (0, 1]")
        object.__setattr__(self, "discount", float(self.discount))
        if self.horizon is not None:
            if isinstance(self.horizon, bool) or not isinstance(self.horizon, (int, np.integer)) or self.horizon < 1:
                raise ValidationError(f"horizon={self.horizon!r}: expected an int >= 1 or None")
            object.__setattr__(self, "horizon", int(self.horizon))
        if self.true_reward is not None:
            reward = _finite_float_array("true_reward", self.true_reward)
            if reward.shape not in ((S,), (S, self.n_actions)):
                raise ValidationError(f"true_reward: shape {reward.shape}; expected ({S},) or ({S}, {self.n_actions})")
            object.__setattr__(self, "true_reward", reward)

    @property
    def n_states(self) -> int:
        return self.transitions.shape[1]

    @property
    def n_actions(self) -> int:
        return self.transitions.shape[0] // self.transitions.shape[1]

    @property
    def n_features(self) -> int:
        return self.features.shape[1]

    def replace(self, **changes: Any) -> "TabularMDP":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def dense_transitions(self, max_entries: int | None = 50_000_000) -> np.ndarray:
        """Dense (S, A, S) array for small MDPs (tests, dense baselines); refuses more than ``max_entries``."""
        if max_entries is not None and self.n_states * self.n_actions * self.n_states > max_entries:
            raise ValidationError(
                f"dense_transitions: S={self.n_states}, A={self.n_actions} gives {self.n_states**2 * self.n_actions} "
                f"entries, more than max_entries={max_entries}; pass max_entries=None to densify anyway"
            )
        return self.transitions.toarray().reshape(self.n_states, self.n_actions, self.n_states)


# ----------------------------------------------------------------------------- grid worlds


def _grid_transitions(n: int, outcome_probs: np.ndarray) -> sp.csr_matrix:
    """CSR (S*A, S) for an n x n grid where choosing action a executes action b w.p. outcome_probs[a, b]."""
    S, A = n * n, len(GRID_MOVES)
    rows, cols = np.divmod(np.arange(S), n)
    dest_row = np.clip(rows[:, None] + GRID_MOVES[None, :, 0], 0, n - 1)
    dest_col = np.clip(cols[:, None] + GRID_MOVES[None, :, 1], 0, n - 1)
    dest = dest_row * n + dest_col  # (S, B): cell reached by executing action b
    # entry (s*A + a, dest[s, b]) gets outcome_probs[a, b]; coo->csr sums duplicates (walls)
    coo_rows = (np.arange(S)[:, None, None] * A + np.arange(A)[None, :, None]).repeat(A, axis=2)
    coo_cols = np.broadcast_to(dest[:, None, :], (S, A, A))
    coo_vals = np.broadcast_to(outcome_probs[None, :, :], (S, A, A))
    keep = coo_vals.ravel() > 0
    P = sp.coo_matrix(
        (coo_vals.ravel()[keep], (coo_rows.ravel()[keep], coo_cols.ravel()[keep])), shape=(S * A, S)
    ).tocsr()
    P.sum_duplicates()
    return P


def _check_grid_size(n: int, minimum: int = 2) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValidationError(f"n={n!r}: expected an int >= {minimum} (grid side length)")


def _check_probability(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValidationError(f"{name}={value!r}: expected a probability in [0, 1]")


def gridworld(
    n: int,
    slip: float = 0.3,
    macrocell: int | None = None,
    *,
    discount: float = 0.99,
    horizon: int | None = None,
    seed: SeedLike = 0,
) -> TabularMDP:
    """An n x n grid; with probability ``slip`` a uniformly random action (of 5) replaces the chosen one.

    macrocell=None: features are the normalised (row, col) coordinates (S, 2); true reward +1 in the
    bottom-right cell, 0 elsewhere; initial state uniform.
    macrocell=k (Abbeel & Ng 2004): one indicator feature per k x k block ((n/k)^2 features);
    true reward = features @ w* with sparse random non-negative w* (about 10% of blocks, at least
    one, ||w*||_2 = 1); initial state uniform.
    """
    _check_grid_size(n, minimum=1)
    _check_probability("slip", slip)
    A = len(GRID_MOVES)
    outcome = (1 - slip) * np.eye(A) + slip / A
    P = _grid_transitions(n, outcome)
    S = n * n
    rows, cols = np.divmod(np.arange(S), n)
    meta: dict[str, Any] = {"world": "gridworld", "n": n, "slip": slip, "macrocell": macrocell}
    if macrocell is None:
        features = np.stack([rows, cols], axis=1) / max(n - 1, 1)
        reward = np.zeros(S)
        reward[S - 1] = 1.0
    else:
        if isinstance(macrocell, bool) or not isinstance(macrocell, (int, np.integer)) or macrocell < 1 or n % macrocell:
            raise ValidationError(f"macrocell={macrocell!r}: expected a positive int dividing n={n}")
        per_side = n // macrocell
        block = (rows // macrocell) * per_side + cols // macrocell
        features = np.zeros((S, per_side * per_side))
        features[np.arange(S), block] = 1.0
        rng = as_generator(seed)
        n_blocks = per_side * per_side
        w = np.zeros(n_blocks)
        chosen = rng.choice(n_blocks, size=max(1, round(0.1 * n_blocks)), replace=False)
        w[chosen] = rng.uniform(0.0, 1.0, size=len(chosen))
        w /= np.linalg.norm(w)
        meta["true_weights"] = w
        reward = features @ w
    return TabularMDP(P, features, np.full(S, 1.0 / S), discount=discount, horizon=horizon, true_reward=reward, meta=meta)


def _nearest_distances(n: int, object_cells: np.ndarray, object_colors: np.ndarray, n_colors: int) -> np.ndarray:
    """(S, n_colors) Euclidean distance from every cell to the nearest object of each colour (2n if none)."""
    S = n * n
    rows, cols = np.divmod(np.arange(S), n)
    out = np.full((S, n_colors), 2.0 * n)
    obj_rows, obj_cols = np.divmod(object_cells, n)
    for color in range(n_colors):  # loop over colours only; cells x objects is vectorised
        mask = object_colors == color
        if mask.any():
            d = np.hypot(rows[:, None] - obj_rows[mask][None, :], cols[:, None] - obj_cols[mask][None, :])
            out[:, color] = d.min(axis=1)
    return out


def objectworld(
    n: int = 32,
    n_colors: int = 2,
    density: float = 0.05,
    determinism: float = 0.7,
    discount: float = 0.9,
    *,
    continuous: bool = False,
    horizon: int | None = None,
    seed: SeedLike = 0,
) -> TabularMDP:
    """Objectworld of Levine, Popovic & Koltun (2011), as in Levine's IRL toolkit.

    Each cell holds an object with probability ``density``; objects get a random outer and inner
    colour (``n_colors`` each). Continuous features (S, 2*n_colors): Euclidean distance to the
    nearest object of each outer colour, then each inner colour (2n when a colour is absent).
    Discrete features (S, 2*n_colors*(n-1)): indicators "distance < d" for d = 1..n-1, in the same
    colour order. True reward: +5 where distance to outer colour 0 < 3 and to outer colour 1 < 2;
    -10 where distance to outer colour 0 < 3 only; 0 elsewhere. Actions (5) succeed with
    probability ``determinism``, otherwise one of the other 4 actions happens, uniformly.
    """
    _check_grid_size(n)
    _check_probability("density", density)
    _check_probability("determinism", determinism)
    if isinstance(n_colors, bool) or not isinstance(n_colors, (int, np.integer)) or n_colors < 2:
        raise ValidationError(f"n_colors={n_colors!r}: expected an int >= 2 (the reward uses two outer colours)")
    rng = as_generator(seed)
    S, A = n * n, len(GRID_MOVES)
    object_cells = np.flatnonzero(rng.random(S) < density)
    outer = rng.integers(0, n_colors, size=len(object_cells))
    inner = rng.integers(0, n_colors, size=len(object_cells))
    dist_outer = _nearest_distances(n, object_cells, outer, n_colors)
    dist_inner = _nearest_distances(n, object_cells, inner, n_colors)
    distances = np.concatenate([dist_outer, dist_inner], axis=1)  # (S, 2 * n_colors)
    if continuous:
        features = distances
    else:
        thresholds = np.arange(1, n)
        features = (distances[:, :, None] < thresholds[None, None, :]).reshape(S, -1).astype(np.float64)
    near_0, near_1 = dist_outer[:, 0] < 3, dist_outer[:, 1] < 2
    reward = np.where(near_0 & near_1, 5.0, np.where(near_0, -10.0, 0.0))
    outcome = determinism * np.eye(A) + (1 - determinism) / (A - 1) * (1 - np.eye(A))
    meta = {
        "world": "objectworld", "n": n, "n_colors": n_colors, "continuous": continuous,
        "object_cells": object_cells, "outer_colors": outer, "inner_colors": inner,
    }
    return TabularMDP(
        _grid_transitions(n, outcome), features, np.full(S, 1.0 / S),
        discount=discount, horizon=horizon, true_reward=reward, meta=meta,
    )


def binaryworld(
    n: int = 32,
    determinism: float = 0.7,
    discount: float = 0.9,
    *,
    horizon: int | None = None,
    seed: SeedLike = 0,
) -> TabularMDP:
    """Binaryworld (Wulfmeier et al. 2015): each cell blue (1) or red (0) with probability 1/2.

    Features (S, 9): the colours of the 3x3 neighbourhood in row-major order (cells beyond the
    edge count as red). True reward +1 if exactly 4 of the 9 are blue, -1 if exactly 5, else 0.
    Dynamics as in objectworld.
    """
    _check_grid_size(n)
    _check_probability("determinism", determinism)
    rng = as_generator(seed)
    S, A = n * n, len(GRID_MOVES)
    blue = (rng.random((n, n)) < 0.5).astype(np.float64)
    padded = np.pad(blue, 1)
    features = np.stack(
        [padded[1 + dr : 1 + dr + n, 1 + dc : 1 + dc + n].ravel() for dr in (-1, 0, 1) for dc in (-1, 0, 1)], axis=1
    )
    n_blue = features.sum(axis=1)
    reward = np.where(n_blue == 4, 1.0, np.where(n_blue == 5, -1.0, 0.0))
    outcome = determinism * np.eye(A) + (1 - determinism) / (A - 1) * (1 - np.eye(A))
    meta = {"world": "binaryworld", "n": n, "blue": blue}
    return TabularMDP(
        _grid_transitions(n, outcome), features, np.full(S, 1.0 / S),
        discount=discount, horizon=horizon, true_reward=reward, meta=meta,
    )


def random_mdp(
    n_states: int,
    n_actions: int,
    branching: int,
    seed: SeedLike = 0,
    *,
    discount: float = 0.9,
    horizon: int | None = None,
    n_features: int | None = None,
) -> TabularMDP:
    """Random MDP: each (s, a) reaches ``branching`` distinct states with Dirichlet(1) probabilities.

    Features: one-hot states (S, S) if ``n_features`` is None, else standard normal (S, n_features).
    True reward standard normal (S,); initial state uniform.
    """
    for name, value in (("n_states", n_states), ("n_actions", n_actions), ("branching", branching)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValidationError(f"{name}={value!r}: expected an int >= 1")
    if branching > n_states:
        raise ValidationError(f"branching={branching}: expected <= n_states={n_states}")
    rng = as_generator(seed)
    rows = n_states * n_actions
    # distinct successors per row: the first `branching` of a random permutation (argsort of uniforms)
    successors = np.argsort(rng.random((rows, n_states)), axis=1)[:, :branching] if branching < n_states else \
        np.tile(np.arange(n_states), (rows, 1))
    probs = rng.dirichlet(np.ones(branching), size=rows)
    P = sp.csr_matrix(
        (probs.ravel(), (np.repeat(np.arange(rows), branching), successors.ravel())), shape=(rows, n_states)
    )
    features = np.eye(n_states) if n_features is None else rng.standard_normal((n_states, n_features))
    reward = rng.standard_normal(n_states)
    meta = {"world": "random_mdp", "branching": branching}
    return TabularMDP(P, features, np.full(n_states, 1.0 / n_states), discount=discount, horizon=horizon,
                      true_reward=reward, meta=meta)


# ----------------------------------------------------------------------------- sampling


def _sample_rows(cumulative: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index of the first column whose row-wise cumulative probability exceeds u * total; cumulative (N, K).

    ``<=`` (not ``<``) so that u = 0 never picks a leading zero-probability column; for u in [0, 1)
    u * total < total, so the last positive-probability column is the largest index returned.
    """
    return np.minimum((cumulative <= u[:, None] * cumulative[:, -1:]).sum(axis=1), cumulative.shape[1] - 1)


def _sample_next_states(P: sp.csr_matrix, row_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sample s' ~ P[row] for each row id, vectorised over rows with a per-row inverse CDF."""
    starts, ends = P.indptr[row_ids], P.indptr[row_ids + 1]
    width = int((ends - starts).max())
    offsets = starts[:, None] + np.arange(width)[None, :]
    valid = offsets < ends[:, None]
    probs = np.where(valid, P.data[np.minimum(offsets, len(P.data) - 1)], 0.0)
    pick = _sample_rows(np.cumsum(probs, axis=1), rng.random(len(row_ids)))
    pick = np.minimum(pick, ends - starts - 1)  # guard against round-off past the last stored entry
    return P.indices[starts + pick]


def sample_trajectories(
    mdp: TabularMDP, pi: np.ndarray, n: int = 64, horizon: int = 8, seed: SeedLike = 0
) -> list[Trajectory]:
    """Sample ``n`` trajectories of ``horizon`` actions from policy ``pi``: (S, A) or time-dependent (H, S, A).

    Observations are state ids; rewards come from ``mdp.true_reward`` when it is set. Episodes are
    truncated (``terminal=False``) at the horizon.
    """
    S, A = mdp.n_states, mdp.n_actions
    pi = np.asarray(pi, dtype=np.float64)
    if pi.shape not in ((S, A),) and not (pi.ndim == 3 and pi.shape[1:] == (S, A)):
        raise ValidationError(f"pi: shape {pi.shape}; expected ({S}, {A}) or (H, {S}, {A})")
    if not np.all(np.isfinite(pi)) or (pi < 0).any() or np.abs(pi.sum(axis=-1) - 1).max() > 1e-6:
        raise ValidationError("pi: rows must be probability distributions over actions (finite, >= 0, sum to 1)")
    for name, value in (("n", n), ("horizon", horizon)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValidationError(f"{name}={value!r}: expected an int >= 1")
    if pi.ndim == 3 and horizon > pi.shape[0]:
        raise ValidationError(f"horizon={horizon}: the time-dependent policy only covers {pi.shape[0]} steps")
    rng = as_generator(seed)
    states = np.empty((n, horizon + 1), dtype=np.int64)
    actions = np.empty((n, horizon), dtype=np.int64)
    states[:, 0] = _sample_rows(np.cumsum(mdp.initial)[None, :].repeat(n, 0), rng.random(n))
    pi_cum = np.cumsum(pi, axis=-1)
    for t in range(horizon):  # loop over time only; all n trajectories step together
        cum_t = pi_cum[t] if pi.ndim == 3 else pi_cum
        actions[:, t] = _sample_rows(cum_t[states[:, t]], rng.random(n))
        states[:, t + 1] = _sample_next_states(mdp.transitions, states[:, t] * A + actions[:, t], rng)
    rewards = None
    if mdp.true_reward is not None:
        r = mdp.true_reward
        rewards = r[states[:, :-1]] if r.ndim == 1 else r[states[:, :-1], actions]
    return [
        Trajectory(obs=states[i], acts=actions[i], rews=None if rewards is None else rewards[i], terminal=False)
        for i in range(n)
    ]


# ----------------------------------------------------------------------------- gymnasium view


class TabularEnv(gym.Env):
    """A gymnasium ``Env`` over a ``TabularMDP``: Discrete observations (state ids) and actions.

    The reward is ``reward`` if given, else ``mdp.true_reward`` (or 0). Episodes truncate after
    ``horizon`` steps (default ``mdp.horizon``; None means never).
    """

    metadata = {"render_modes": []}

    def __init__(self, mdp: TabularMDP, reward: np.ndarray | None = None, horizon: int | None = None):
        self.mdp = mdp
        S, A = mdp.n_states, mdp.n_actions
        chosen = reward if reward is not None else mdp.true_reward
        r = np.zeros(S) if chosen is None else _finite_float_array("reward", chosen)
        if r.shape not in ((S,), (S, A)):
            raise ValidationError(f"reward: shape {r.shape}; expected ({S},) or ({S}, {A})")
        self.reward = r
        if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1):
            raise ValidationError(f"horizon={horizon!r}: expected an int >= 1 or None")
        self.horizon = int(horizon) if horizon is not None else mdp.horizon
        self.observation_space = gym.spaces.Discrete(S)
        self.action_space = gym.spaces.Discrete(A)
        self._cumulative_initial = np.cumsum(mdp.initial)
        self._state = 0
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self._state = int(_sample_rows(self._cumulative_initial[None, :], self.np_random.random(1))[0])
        self._t = 0
        return self._state, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValidationError(f"action={action!r}: expected an int in [0, {self.mdp.n_actions})")
        s = self._state
        r = float(self.reward[s] if self.reward.ndim == 1 else self.reward[s, action])
        row = np.array([s * self.mdp.n_actions + int(action)])
        self._state = int(_sample_next_states(self.mdp.transitions, row, self.np_random)[0])
        self._t += 1
        truncated = self.horizon is not None and self._t >= self.horizon
        return self._state, r, False, truncated, {}
