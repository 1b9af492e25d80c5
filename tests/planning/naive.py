"""Dense, loop-based reference implementations used only to check irlhf.planning."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def dense_plan(P: np.ndarray, r: np.ndarray, discount: float, H: int, soft: bool, temperature: float = 1.0):
    """P (S, A, S), r (S, A). Returns V (H, S), Q (H, S, A), pi (H, S, A) by the textbook recursion."""
    S, A, _ = P.shape
    V = np.zeros((H, S))
    Q = np.zeros((H, S, A))
    pi = np.zeros((H, S, A))
    for t in reversed(range(H)):
        Q[t] = r if t == H - 1 else r + discount * np.einsum("sap,p->sa", P, V[t + 1])
        if soft:
            V[t] = temperature * logsumexp(Q[t] / temperature, axis=1)
            pi[t] = np.exp((Q[t] - V[t][:, None]) / temperature)
        else:
            V[t] = Q[t].max(axis=1)
            pi[t][np.arange(S), Q[t].argmax(axis=1)] = 1.0
    return V, Q, pi


def dense_policy_evaluation(P: np.ndarray, r: np.ndarray, pi: np.ndarray, discount: float) -> np.ndarray:
    """Exact V^pi (S,) for a stationary pi by a dense linear solve (reward r (S, A))."""
    S = P.shape[0]
    P_pi = np.einsum("sa,sap->sp", pi, P)
    r_pi = (pi * r).sum(axis=1)
    return np.linalg.solve(np.eye(S) - discount * P_pi, r_pi)


def dense_occupancy(P: np.ndarray, pi: np.ndarray, initial: np.ndarray, discount: float, H: int | None) -> np.ndarray:
    """State occupancy (S,) by explicit forward loop (finite H) or dense solve (H None)."""
    if H is None:
        P_pi = np.einsum("sa,sap->sp", pi, P)
        return np.linalg.solve(np.eye(len(initial)) - discount * P_pi.T, initial)
    d, rho = initial.copy(), np.zeros_like(initial)
    for t in range(H):
        pi_t = pi[t] if pi.ndim == 3 else pi
        rho += discount**t * d
        d = np.einsum("s,sa,sap->p", d, pi_t, P)
    return rho
