"""Discounted state (and state-action) occupancy measures of a policy in a ``TabularMDP``.

finite horizon H:  rho(s) = sum_{t=0}^{H-1} discount^t Pr(s_t = s), by forward DP
                   (sums to sum_t discount^t); pi may be stationary (S, A) or (H, S, A).
infinite horizon:  rho = d0 + discount * P_pi^T rho, by one sparse linear solve (sums to 1/(1-discount)).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from irlhf.core.errors import ValidationError
from irlhf.envs.tabular import TabularMDP
from irlhf.planning.value_iteration import resolve_horizon


def _check_policy(mdp: TabularMDP, pi: np.ndarray, H: int | None) -> np.ndarray:
    S, A = mdp.n_states, mdp.n_actions
    pi = np.asarray(pi, dtype=np.float64)
    ok = pi.shape == (S, A) or (H is not None and pi.shape == (H, S, A))
    if not ok:
        expected = f"({S}, {A})" + ("" if H is None else f" or ({H}, {S}, {A})")
        raise ValidationError(f"pi: shape {pi.shape}; expected {expected}")
    row_sums = pi @ np.ones(A)  # a matvec: far faster than pi.sum(axis=-1); NaN/inf propagate into it
    if not np.all(np.isfinite(row_sums)) or pi.min() < 0 or np.abs(row_sums - 1.0).max() > 1e-8:
        raise ValidationError("pi: rows must be probability distributions over actions (finite, >= 0, sum to 1)")
    return pi


def _transpose(mdp: TabularMDP) -> sp.csr_matrix:
    """P^T as CSR (S, S*A), cached on the MDP's meta-free side dict (the MDP is immutable)."""
    cache = mdp.__dict__.setdefault("_cache", {})
    if "PT" not in cache:
        cache["PT"] = mdp.transitions.T.tocsr()
    return cache["PT"]


def occupancy_measure(
    mdp: TabularMDP,
    pi: np.ndarray,
    horizon: int | None = None,
    *,
    state_action: bool = False,
) -> np.ndarray:
    """Expected discounted visits: (S,) for states, or (S, A) with ``state_action=True``.

    horizon None uses ``mdp.horizon``; both None means infinite-horizon discounted.
    """
    H = resolve_horizon(mdp, horizon)
    pi = _check_policy(mdp, pi, H)
    S, A = mdp.n_states, mdp.n_actions
    gamma = mdp.discount
    if H is not None:
        PT = _transpose(mdp)
        d_t = mdp.initial.copy()  # Pr(s_t = s)
        rho = np.zeros((S, A)) if state_action else np.zeros(S)
        sa = np.empty((S, A))
        weight = 1.0
        for t in range(H):
            np.multiply(d_t[:, None], pi[t] if pi.ndim == 3 else pi, out=sa)
            if state_action:
                rho += weight * sa
            else:
                rho += weight * d_t
            if t + 1 < H:
                d_t = PT @ sa.reshape(-1)
                weight *= gamma
        return rho
    # P_pi[s, s'] = sum_a pi[s, a] P[s*A + a, s']: a sparse (S, S*A) selector times P
    selector = sp.csr_matrix(
        (pi.reshape(-1), np.arange(S * A), np.arange(0, S * A + 1, A)), shape=(S, S * A)
    )
    P_pi = (selector @ mdp.transitions).tocsc()
    system = (sp.identity(S, format="csc") - gamma * P_pi.T).tocsc()
    rho = spla.spsolve(system, mdp.initial)
    rho = np.asarray(rho, dtype=np.float64)
    return rho[:, None] * pi if state_action else rho
