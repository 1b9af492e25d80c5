"""Evaluation metrics for learned rewards and policies.

``irlhf.eval.returns`` (a policy's returns next to an expert's and a random policy's on a gymnasium env) is not
re-exported here: it imports gymnasium, and the tabular learners import this package.
"""

from irlhf.eval.metrics import (
    demo_log_likelihood,
    expected_value_difference,
    feature_expectation_gap,
    policy_value,
    reward_correlation,
)
from irlhf.eval.rewards import evaluate_reward

__all__ = [
    "demo_log_likelihood",
    "evaluate_reward",
    "expected_value_difference",
    "feature_expectation_gap",
    "policy_value",
    "reward_correlation",
]
