"""``irlhf.eval.preferences``: the eps-noisy expert and a reward fitted to oracle-labelled segment pairs."""

from __future__ import annotations

import numpy as np
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.envs.gym import SCRIPTED_EXPERTS
from irlhf.eval.preferences import fit_reward_to_oracle, noisy_policy

LOW, HIGH = np.array([-2.0]), np.array([2.0])


def expert(obs):
    return np.full((len(obs), 1), 0.5, dtype=np.float32)


def test_noisy_policy_keeps_or_replaces_the_experts_action():
    obs = np.zeros((200, 3))
    assert np.array_equal(noisy_policy(expert, 0.0, LOW, HIGH, seed=0)(obs), expert(obs))
    noisy = noisy_policy(expert, 1.0, LOW, HIGH, seed=0)(obs)
    assert noisy.dtype == np.float32 and noisy.shape == (200, 1) and (noisy != 0.5).all()
    assert (noisy >= -2).all() and (noisy <= 2).all()
    half = noisy_policy(expert, 0.5, LOW, HIGH, seed=1)(obs)
    assert 0.3 < (half != 0.5).mean() < 0.7
    assert np.array_equal(half, noisy_policy(expert, 0.5, LOW, HIGH, seed=1)(obs))  # same seed, same actions
    with pytest.raises(IrlhfError, match="eps=1.5"):
        noisy_policy(expert, 1.5, LOW, HIGH)


def test_fit_reward_to_oracle_learns_a_reward_that_ranks_held_out_pairs():
    fit = fit_reward_to_oracle("Pendulum-v1", SCRIPTED_EXPERTS["Pendulum-v1"], 40, seed=0, noise=(0.0, 1.0),
                               steps=200, segment_length=20, n_heldout=40)
    m = fit.metrics
    assert m["heldout_accuracy"] > m["untrained_heldout_accuracy"] and m["heldout_accuracy"] > 0.6
    assert m["return_correlation"] > 0.3 and 0 <= m["train_ties"] <= 1 and m["fit_seconds"] > 0
    assert fit.true_returns.shape == fit.learned_returns.shape == (80,)
    assert fit.true_rewards.shape == fit.learned_rewards.shape and fit.true_rewards.ndim == 1
    again = fit_reward_to_oracle("Pendulum-v1", SCRIPTED_EXPERTS["Pendulum-v1"], 40, seed=0, noise=(0.0, 1.0),
                                 steps=200, segment_length=20, n_heldout=40)
    np.testing.assert_array_equal(fit.learned_returns, again.learned_returns)  # same seed, same fit


def test_fit_reward_to_oracle_rejects_bad_counts():
    with pytest.raises(IrlhfError, match="n_labels=0"):
        fit_reward_to_oracle("Pendulum-v1", expert, 0)
