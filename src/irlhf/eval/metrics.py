"""Metrics for tabular IRL: expected value difference, reward correlation, log-likelihood, feature gap."""

from __future__ import annotations

import numpy as np

from irlhf.core.errors import ValidationError
from irlhf.envs.tabular import TabularMDP
from irlhf.planning import occupancy_measure, value_iteration
from irlhf.planning.demo_stats import demo_log_likelihood  # re-exported: it moved down for the IRL learners
from irlhf.planning.value_iteration import expand_reward

__all__ = ["policy_value", "expected_value_difference", "reward_correlation", "demo_log_likelihood",
           "feature_expectation_gap"]


def policy_value(mdp: TabularMDP, pi: np.ndarray, reward: np.ndarray, horizon: int | None = None) -> float:
    """Expected discounted return from ``mdp.initial``: sum_{s,a} rho_pi(s, a) r(s, a).

    pi (S, A) or (H, S, A); reward (S,) or (S, A); horizon as in :func:`occupancy_measure`.
    """
    r = expand_reward(mdp, reward)
    rho_sa = occupancy_measure(mdp, pi, horizon=horizon, state_action=True)
    return float((rho_sa * r).sum())


def _true_reward(mdp: TabularMDP, true_reward: np.ndarray | None) -> np.ndarray:
    if true_reward is not None:
        return np.asarray(true_reward, dtype=np.float64)
    if mdp.true_reward is None:
        raise ValidationError("true_reward: not given and mdp.true_reward is None; expected a reward to evaluate against")
    return mdp.true_reward


def expected_value_difference(
    mdp: TabularMDP,
    learned_reward: np.ndarray,
    true_reward: np.ndarray | None = None,
    horizon: int | None = None,
) -> float:
    """EVD = V^{pi*}(true) - V^{pi_learned}(true), both policies hard-optimal, values from ``mdp.initial``.

    pi* is optimal for the true reward, pi_learned for ``learned_reward``; both are evaluated under
    the true reward (default ``mdp.true_reward``). >= 0; 0 means the learned reward induces optimal
    behaviour. horizon None uses ``mdp.horizon`` (None = infinite-horizon discounted).
    """
    r_true = _true_reward(mdp, true_reward)
    _, _, pi_star = value_iteration(mdp, r_true, horizon=horizon)
    _, _, pi_learned = value_iteration(mdp, learned_reward, horizon=horizon)
    return policy_value(mdp, pi_star, r_true, horizon) - policy_value(mdp, pi_learned, r_true, horizon)


def reward_correlation(learned_reward: np.ndarray, true_reward: np.ndarray) -> float:
    """Pearson correlation of the centred learned and true rewards (same shape); 0 if either is constant."""
    a = np.asarray(learned_reward, dtype=np.float64).ravel()
    b = np.asarray(true_reward, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValidationError(f"learned_reward: {a.size} values; expected {b.size} like true_reward")
    a, b = a - a.mean(), b - b.mean()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else 0.0


def feature_expectation_gap(mu_E: np.ndarray, mu_pi: np.ndarray) -> float:
    """||mu_E - mu_pi||_2 between two feature-expectation vectors (F,)."""
    mu_E, mu_pi = np.asarray(mu_E, dtype=np.float64), np.asarray(mu_pi, dtype=np.float64)
    if mu_E.shape != mu_pi.shape:
        raise ValidationError(f"mu_pi: shape {mu_pi.shape}; expected {mu_E.shape} like mu_E")
    return float(np.linalg.norm(mu_E - mu_pi))
