"""Training and learning curves from a learner's history (its list of logged records). Each function returns a
matplotlib ``Figure`` (save it with ``RunDir.save_figure``), or None when the history has nothing to draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from irlhf.report.plots import figure_row

TABULAR_KEYS = ("objective", "visitation_gap", "feature_gap", "margin")  # what the tabular IRL learners log
# learning curves of the sample-based IRL learners: (x key, x label, [(panel title, [history keys])])
IRL_CURVES = {
    "gail": ("timesteps", "environment steps", [("discriminator loss", ["disc_loss"]),
                                                ("discriminator accuracy", ["acc_expert", "acc_policy"]),
                                                ("mean episode return (true reward)", ["mean_return"]),
                                                ("mean episode length (steps)", ["mean_length"])]),
    "gcl": ("timesteps", "environment steps", [("IOC loss", ["ioc_loss"]),
                                               ("mean trajectory cost", ["demo_cost", "sample_cost"]),
                                               ("mean episode return (true reward)", ["mean_true_return"])]),
    "iq-learn": ("update", "update", [("IQ-Learn loss", ["loss"]),
                                      ("expert action accuracy", ["expert_accuracy"]),
                                      ("return (true reward)", ["episode_return", "eval_return"])]),
    "sqil": ("timesteps", "environment steps", [("TD loss", ["loss"]), ("mean Q(s, a)", ["demo_q", "agent_q"]),
                                                ("mean episode return (true reward)", ["mean_return", "eval_return"])]),
    "density": ("timesteps", "environment steps", [("mean log-density reward", ["mean_log_density"]),
                                                   ("mean episode return (true reward)", ["mean_return"]),
                                                   ("mean episode length (steps)", ["mean_length"])]),
    "trex": ("timesteps", "environment steps", [("mean episode return (true reward)", ["mean_return"]),
                                                ("mean episode length (steps)", ["mean_length"])]),
}
IRL_CURVES["airl"] = IRL_CURVES["gail"]
IRL_CURVES["drex"] = IRL_CURVES["trex"]
# T-REX / D-REX's reward fit (their "reward" phase records), against the epoch
REWARD_FIT_CURVES = ("epoch", "epoch", [("snippet loss", ["loss", "val_loss"]),
                                        ("pair accuracy", ["accuracy", "val_accuracy"])])


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _style(ax: Any, xlabel: str, title: str | None = None) -> None:
    ax.set_xlabel(xlabel)
    if title is not None:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)


def evaluation_curves(history: Sequence[dict], keys: Sequence[str] = TABULAR_KEYS) -> Figure | None:
    """One panel per key of ``keys`` that every record holds as a number, against the record index (e.g. the
    tabular IRL learners' objective and statistics gap per evaluation)."""
    keys = [k for k in keys if history and k in history[0]]
    keys = [k for k in keys if all(isinstance(r.get(k), (int, float)) for r in history)]
    if not keys:
        return None
    fig, axes = figure_row(len(keys), panel_size=3.6)
    for ax, key in zip(axes, keys):
        ax.plot(range(len(history)), [r[key] for r in history], color="tab:blue")
        _style(ax, "evaluation", key.replace("_", " "))
    return fig


def learning_curves(history: Sequence[dict], x_key: str, x_label: str,
                    panels: Sequence[tuple[str, Sequence[str]]]) -> Figure | None:
    """Panels of (title, history keys) against ``x_key``; records without a finite ``x_key`` and keys that are
    never finite are skipped, and panels left empty dropped."""
    rows = [r for r in history if _finite(r.get(x_key))]
    drawn = [(title, [k for k in keys if any(_finite(r.get(k)) for r in rows)]) for title, keys in panels]
    drawn = [(title, keys) for title, keys in drawn if keys]
    if not drawn:
        return None
    fig, axes = figure_row(len(drawn), panel_size=3.6)
    for ax, (title, keys) in zip(axes, drawn):
        for key in keys:
            points = [(r[x_key], r[key]) for r in rows if _finite(r.get(key))]
            ax.plot(*zip(*points), marker="." if len(points) < 30 else None, label=key.replace("_", " "))
        if len(keys) > 1:
            ax.legend(fontsize=7)
        _style(ax, x_label, title)
    return fig


def irl_curves(algorithm: str, history: Sequence[dict]) -> Figure | None:
    """The learning curves of a sample-based IRL learner's history (``IRL_CURVES[algorithm]``; online IQ-Learn
    against environment steps)."""
    x_key, x_label, panels = IRL_CURVES[algorithm]
    rows = [r for r in history if _finite(r.get(x_key))]
    if algorithm == "iq-learn" and rows and "env_steps" in rows[0]:
        x_key, x_label = "env_steps", "environment steps"
    return learning_curves(history, x_key, x_label, panels)


def loss_curve(history: Sequence[dict], best_epoch: int) -> Figure:
    """Training and validation loss per epoch (``epoch``, ``train_loss``, ``val_loss``), the kept epoch dashed."""
    fig, (ax,) = figure_row(1, panel_size=4.2)
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r["train_loss"] for r in history], label="train loss", color="tab:blue")
    val = [(r["epoch"], r["val_loss"]) for r in history if r.get("val_loss") is not None]
    if val:
        ax.plot(*zip(*val), label="validation loss", color="tab:orange")
    ax.axvline(best_epoch, color="gray", ls="--", lw=1, label=f"kept epoch {best_epoch}")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    _style(ax, "epoch")
    return fig


def round_curves(history: Sequence[dict]) -> Figure:
    """DAgger per round: mean rollout return and the aggregate dataset's size."""
    fig, axes = figure_row(2, panel_size=3.6)
    rounds = [r["round"] for r in history]
    for ax, key, title, color in ((axes[0], "rollout_return_mean", "mean rollout return", "tab:blue"),
                                  (axes[1], "n_samples", "dataset size (samples)", "tab:green")):
        ax.plot(rounds, [r[key] for r in history], marker="o", color=color)
        _style(ax, "round", title)
    return fig


def episode_returns(history: Sequence[dict], reference: float | None = None) -> Figure:
    """Return per training episode (``episode`` from 0, ``return``, ``reached_goal``), goal episodes in green,
    and an optional reference return dashed (TAMER: the trainer's greedy policy on Q*)."""
    fig, (ax,) = figure_row(1, panel_size=4.2)
    episodes = [r["episode"] + 1 for r in history]
    ax.plot(episodes, [r["return"] for r in history], marker="o", ms=3, color="tab:blue", label="TAMER")
    goal = [(r["episode"] + 1, r["return"]) for r in history if r["reached_goal"]]
    if goal:
        ax.scatter(*zip(*goal), s=14, color="tab:green", zorder=3, label="reached goal")
    if reference is not None:
        ax.axhline(reference, color="gray", ls="--", lw=1, label="trainer's greedy policy on Q*")
    ax.set_ylabel("return")
    ax.legend(fontsize=8)
    _style(ax, "episode")
    return fig


def training_returns(episodes: Sequence[dict], random_mean: float, scripted: float | None) -> Figure:
    """Each training episode's return (``timestep``, ``return``) with a moving mean, next to a random policy's
    and the scripted expert's returns."""
    fig, (ax,) = figure_row(1, panel_size=4.8)
    if episodes:
        steps = np.array([e["timestep"] for e in episodes])
        returns = np.array([e["return"] for e in episodes])
        ax.plot(steps, returns, ".", ms=2, alpha=0.35, color="tab:blue", label="training episode")
        window = max(1, min(50, len(returns) // 10))
        smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, color="tab:blue", label=f"moving mean ({window} episodes)")
    ax.axhline(random_mean, color="tab:red", ls=":", label="random policy")
    if scripted is not None:
        ax.axhline(scripted, color="gray", ls="--", label="scripted expert")
    ax.set_ylabel("episode return")
    ax.legend(fontsize=8)
    _style(ax, "environment steps")
    return fig


def return_vs_labels(history: Sequence[dict], expert_return: float | None, random_return: float) -> Figure:
    """RL from preferences: mean true return of the recent training episodes (``mean_true_return``) against
    ``timesteps`` and against ``labels``, with the expert's and a random policy's returns."""
    rows = [r for r in history if r.get("mean_true_return") is not None]
    fig, axes = figure_row(2, panel_size=3.8)
    for ax, key, label in ((axes[0], "timesteps", "timesteps"), (axes[1], "labels", "labels so far")):
        ax.plot([r[key] for r in rows], [r["mean_true_return"] for r in rows], "o-", ms=3, label="learned reward")
        if expert_return is not None:
            ax.axhline(expert_return, color="tab:green", ls="--", lw=1, label="scripted expert")
        ax.axhline(random_return, color="gray", ls=":", lw=1, label="random policy")
        ax.set_ylabel("mean true return (training episodes)")
        _style(ax, label)
    axes[0].legend(fontsize=7)
    return fig


def loss_and_metric(history: Sequence[dict], metric: str, loss_key: str | None = None) -> Figure | None:
    """Language-model trainers: the loss (``loss_key``; default ``loss``, else ``loss/policy``) and ``metric`` per
    logged ``step``."""
    if loss_key is None:
        loss_key = "loss" if any("loss" in r for r in history) else "loss/policy"
    rows = [r for r in history if r.get(loss_key) is not None]
    if not rows:
        return None
    fig, axes = figure_row(2, panel_size=3.8)
    steps = [r.get("step", k + 1) for k, r in enumerate(rows)]
    axes[0].plot(steps, [r[loss_key] for r in rows], "o-", ms=2)
    axes[0].set(xlabel="step", ylabel=loss_key)
    values = [(s, r[metric]) for s, r in zip(steps, rows) if r.get(metric) is not None]
    if values:
        axes[1].plot(*zip(*values), "o-", ms=2, color="tab:orange")
    axes[1].set(xlabel="step", ylabel=metric)
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig


def dpo_curves(history: Sequence[dict]) -> Figure:
    """DPO per step: the loss (log 2 at step 0), and the implicit reward's margin and accuracy."""
    rows = [r for r in history if "loss" in r and "step" in r]
    fig, (ax_loss, ax_margin) = figure_row(2, panel_size=3.6)
    ax_loss.plot([r["step"] for r in rows], [r["loss"] for r in rows], "o-", ms=2)
    ax_loss.set(xlabel="step", ylabel="DPO loss", title="loss (log 2 at step 0)")
    ax_margin.plot([r["step"] for r in rows], [r["rewards/margins"] for r in rows], "o-", ms=2, label="margin")
    ax_margin.plot([r["step"] for r in rows], [r["rewards/accuracies"] for r in rows], "o-", ms=2, label="accuracy")
    ax_margin.set(xlabel="step", title="implicit reward: margin and accuracy")
    ax_margin.legend(fontsize=7)
    for ax in (ax_loss, ax_margin):
        ax.grid(alpha=0.3)
    return fig
