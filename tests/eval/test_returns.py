"""``irlhf.eval.returns.score_policy``: a policy's returns next to an expert's and a random policy's."""

from __future__ import annotations

import pytest

from irlhf.envs.gym import SCRIPTED_EXPERTS, evaluate, random_return
from irlhf.eval.returns import score_policy

ENV = "CartPole-v1"


def test_the_expert_scores_one_and_the_metrics_match_evaluate():
    expert = SCRIPTED_EXPERTS[ENV]
    m = score_policy(ENV, expert, expert, n_episodes=2, seed=3)
    assert m["eval_return_mean"] == m["expert_return_mean"] == evaluate(ENV, expert, n_episodes=2, seed=3)[0]
    assert m["random_return_mean"] == random_return(ENV, n_episodes=2, seed=3)
    assert m["normalized_score"] == pytest.approx(1.0) and m["eval_episodes"] == 2


def test_expert_return_fallback_and_no_expert():
    expert = SCRIPTED_EXPERTS[ENV]
    m = score_policy(ENV, expert, None, n_episodes=2, seed=0, expert_return=1000.0)
    assert m["expert_return_mean"] == 1000.0
    assert m["normalized_score"] == pytest.approx((m["eval_return_mean"] - m["random_return_mean"])
                                                  / (1000.0 - m["random_return_mean"]))
    m = score_policy(ENV, expert, None, n_episodes=2, seed=0)
    assert m["expert_return_mean"] is None and m["normalized_score"] is None
