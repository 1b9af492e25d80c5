"""Evaluation metrics for learned rewards and policies."""

from irlhf.eval.metrics import (
    demo_log_likelihood,
    expected_value_difference,
    feature_expectation_gap,
    policy_value,
    reward_correlation,
)

__all__ = [
    "demo_log_likelihood",
    "expected_value_difference",
    "feature_expectation_gap",
    "policy_value",
    "reward_correlation",
]
