"""``irlhf.report.curves`` and ``irlhf.report.rewards``: figures from histories, learned rewards and scores."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from irlhf.envs.tabular import gridworld, objectworld
from irlhf.report import curves, rewards


def n_panels(fig: Figure) -> int:
    """Axes that draw data (colour bars excluded)."""
    return sum(1 for ax in fig.axes if ax.get_label() != "<colorbar>")


def test_evaluation_curves_draw_the_numeric_keys_every_record_has():
    history = [{"objective": 1.0 - k, "feature_gap": 0.5 / (k + 1), "margin": None} for k in range(5)]
    fig = curves.evaluation_curves(history)
    assert n_panels(fig) == 2 and [ax.get_title() for ax in fig.axes] == ["objective", "feature gap"]
    assert curves.evaluation_curves([]) is None and curves.evaluation_curves([{"other": 1}]) is None


def test_learning_curves_skip_empty_panels_and_non_finite_values():
    history = [{"timesteps": 10 * k, "disc_loss": 0.7 - 0.1 * k, "mean_return": float("nan")} for k in range(4)]
    fig = curves.learning_curves(history, "timesteps", "steps", [("loss", ["disc_loss"]), ("return", ["mean_return"])])
    assert n_panels(fig) == 1 and fig.axes[0].get_xlabel() == "steps"
    (line,) = fig.axes[0].get_lines()
    np.testing.assert_allclose(line.get_xydata(), [[0, 0.7], [10, 0.6], [20, 0.5], [30, 0.4]])
    assert curves.learning_curves(history, "timesteps", "steps", [("return", ["mean_return"])]) is None


def test_irl_curves_use_environment_steps_for_online_iq_learn():
    offline = [{"update": k, "loss": 1.0 / (k + 1)} for k in range(3)]
    assert curves.irl_curves("iq-learn", offline).axes[0].get_xlabel() == "update"
    online = [dict(r, env_steps=100 * k) for k, r in enumerate(offline)]
    assert curves.irl_curves("iq-learn", online).axes[0].get_xlabel() == "environment steps"
    gail = [{"timesteps": k, "disc_loss": 0.5, "acc_expert": 0.6, "acc_policy": 0.4} for k in range(3)]
    assert n_panels(curves.irl_curves("gail", gail)) == 2 and curves.irl_curves("airl", gail) is not None


@pytest.mark.parametrize("make, n", [
    (lambda: curves.loss_curve([{"epoch": k, "train_loss": 1 / (k + 1), "val_loss": None} for k in range(3)], 2), 1),
    (lambda: curves.round_curves([{"round": k, "rollout_return_mean": 9.0 * k, "n_samples": 10 * k}
                                  for k in range(3)]), 2),
    (lambda: curves.episode_returns([{"episode": k, "return": -200 + k, "reached_goal": k == 2} for k in range(3)],
                                    -120.0), 1),
    (lambda: curves.training_returns([{"timestep": 10 * k, "return": k} for k in range(30)], 0.0, 30.0), 1),
    (lambda: curves.return_vs_labels([{"timesteps": k, "labels": 2 * k, "mean_true_return": k} for k in range(3)],
                                     None, 0.0), 2),
    (lambda: curves.loss_and_metric([{"step": k, "loss": 1.0, "accuracy": 0.5} for k in range(3)], "accuracy"), 2),
    (lambda: curves.dpo_curves([{"step": k, "loss": 0.69, "rewards/margins": 0.1 * k, "rewards/accuracies": 0.5}
                                for k in range(3)]), 2),
])
def test_curve_figures(make, n):
    fig = make()
    assert isinstance(fig, Figure) and n_panels(fig) == n


def test_loss_and_metric_without_a_loss_is_none_and_falls_back_to_the_policy_loss():
    assert curves.loss_and_metric([{"step": 1, "accuracy": 0.5}], "accuracy") is None
    fig = curves.loss_and_metric([{"loss/policy": 0.3}], "objective/scores")
    assert fig.axes[0].get_ylabel() == "loss/policy"


def test_reward_maps_one_panel_per_reward_and_objects_marked_on_objectworld():
    mdp = gridworld(4, seed=0)
    fig = rewards.reward_maps(mdp, [("a", np.arange(16.0)), ("b (S, A)", np.ones((16, mdp.n_actions)))])
    assert n_panels(fig) == 3 and fig.axes[0].get_title() == "true reward"
    world = objectworld(6, seed=0)
    fig = rewards.reward_maps(world, [("learned", world.true_reward)])
    assert all(ax.get_legend() is not None for ax in fig.axes if ax.get_label() != "<colorbar>")


def test_score_intervals_matrix_and_learned_vs_true():
    scores, se = np.array([0.5, -0.5, 0.0]), np.array([0.1, 0.2, 0.1])
    fig = rewards.score_intervals(scores, se, np.array([0, 2, 1]), truth=scores)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "2", "1"]
    assert n_panels(rewards.score_intervals(scores, None, np.array([0, 2, 1]))) == 1
    P = np.full((3, 3), 0.5)
    assert n_panels(rewards.preference_matrix(P, np.array([0, 1, 2]))) == 1
    x = np.arange(10.0)
    fig = rewards.learned_vs_true(x, 2 * x, x, -x, shown=np.arange(4))
    assert "r = 1.000" in fig.axes[0].get_title() and "r = -1.000; 4 shown" in fig.axes[1].get_title()
