"""How good is a learned tabular reward? Metrics that are properties of the reward alone, so they compare IRL
algorithms on equal terms, each next to a reference that gives it a scale.

- EVD (expected value difference, Levine et al. 2011): V*_true(p0) - V^{pi_learned}_true(p0), the true-reward
  value lost by acting optimally for the learned reward; 0 is perfect. Reference: a constant reward's EVD.
- Reward correlation: Pearson correlation of the learned and true per-state rewards ((S, A) rewards averaged
  over actions); rewards are identified only up to shift and scale, so this is the shape agreement.
- Demo log-likelihood: mean over demonstrations of sum_t log pi(a_t | s_t) for the soft-optimal policy of the
  learned reward (Ziebart et al. 2008); references: the true reward's (the expert) and the uniform policy's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from irlhf.core.errors import ValidationError, describe
from irlhf.data.types import Trajectory
from irlhf.envs.tabular import TabularMDP
from irlhf.eval.metrics import demo_log_likelihood, expected_value_difference, reward_correlation
from irlhf.planning import soft_value_iteration


def evaluate_reward(mdp: TabularMDP, learned: np.ndarray, demos: Sequence[Trajectory],
                    horizon: int) -> dict[str, float]:
    """EVD, reward correlation and demo log-likelihood of a learned reward (S,) or (S, A) over ``horizon`` steps,
    with their references: ``evd``, ``evd_constant_reward``, ``reward_correlation``, ``demo_log_likelihood``,
    ``expert_demo_log_likelihood``, ``uniform_demo_log_likelihood``. Needs ``mdp.true_reward``."""
    if mdp.true_reward is None:
        raise ValidationError("mdp.true_reward=None: expected an MDP with a known true reward to evaluate against")
    learned = np.asarray(learned, dtype=np.float64)
    if learned.shape not in ((mdp.n_states,), (mdp.n_states, mdp.n_actions)):
        raise ValidationError(f"learned={describe(learned)}: expected a reward of shape ({mdp.n_states},) or "
                              f"({mdp.n_states}, {mdp.n_actions})")
    true = mdp.true_reward
    state_learned = learned if learned.ndim == 1 else learned.mean(axis=1)
    _, _, pi_learned = soft_value_iteration(mdp, learned, horizon=horizon)
    _, _, pi_expert = soft_value_iteration(mdp, true, horizon=horizon)
    return {
        "evd": expected_value_difference(mdp, learned, horizon=horizon),
        "evd_constant_reward": expected_value_difference(mdp, np.zeros(mdp.n_states), horizon=horizon),
        "reward_correlation": reward_correlation(state_learned, true if true.ndim == 1 else true.mean(axis=1)),
        "demo_log_likelihood": demo_log_likelihood(pi_learned, demos),
        "expert_demo_log_likelihood": demo_log_likelihood(pi_expert, demos),
        "uniform_demo_log_likelihood": float(horizon * np.log(1.0 / mdp.n_actions)),
    }
