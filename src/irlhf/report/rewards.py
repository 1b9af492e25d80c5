"""Figures of learned rewards and scores: tabular reward maps beside the true reward, item scores with their
confidence intervals, and a fitted preference matrix. Each function returns a matplotlib ``Figure`` (save it
with ``RunDir.save_figure``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from irlhf.envs.tabular import TabularMDP
from irlhf.report.plots import figure_row, grid_heatmap, mark_cells


def _per_state(reward: Any) -> np.ndarray:
    reward = np.asarray(reward, dtype=np.float64)
    return reward if reward.ndim == 1 else reward.mean(axis=1)


def reward_maps(mdp: TabularMDP, learned: Sequence[tuple[str, Any]]) -> Figure:
    """The true reward and each (title, learned reward) side by side on the grid, learned ones minus their mean
    (rewards are identified only up to shift and scale); (S, A) rewards are averaged over actions; objects are
    marked by outer colour on objectworld."""
    n = int(mdp.meta.get("n") or round(mdp.n_states**0.5))
    fig, axes = figure_row(1 + len(learned))
    grid_heatmap(axes[0], _per_state(mdp.true_reward), n, title="true reward", cmap="RdBu", centered=True)
    for ax, (title, reward) in zip(axes[1:], learned):
        reward = _per_state(reward)
        grid_heatmap(ax, reward - reward.mean(), n, title=title, cmap="RdBu", centered=True)
    if mdp.meta.get("world") == "objectworld":
        for ax in axes:
            mark_cells(ax, mdp.meta["object_cells"], n, mdp.meta["outer_colors"], label="outer colour {}")
    return fig


def score_intervals(scores: np.ndarray, standard_errors: np.ndarray | None, order: np.ndarray,
                    truth: np.ndarray | None = None, max_items: int = 60) -> Figure:
    """Item scores (best first, at most ``max_items``) with 95% intervals (1.96 standard errors), and the true
    scores as crosses when known."""
    shown = np.asarray(order)[: min(len(order), max_items)]
    fig, (ax,) = figure_row(1, panel_size=4.2)
    fig.set_size_inches(max(5.0, 0.18 * len(shown) + 2), 3.6)
    x = np.arange(len(shown))
    err = None if standard_errors is None else 1.96 * standard_errors[shown]
    ax.errorbar(x, scores[shown], yerr=err, fmt="o", ms=3, capsize=2, label="fitted score")
    if truth is not None:
        ax.plot(x, truth[shown], "x", color="tab:red", ms=4, label="true score")
        ax.legend(fontsize=8)
    ax.set_xticks(x, [str(int(k)) for k in shown], fontsize=6, rotation=90)
    ax.set_xlabel("item (best first)")
    ax.set_ylabel("score (log-strength)")
    ax.grid(alpha=0.3)
    return fig


def preference_matrix(P: np.ndarray, order: np.ndarray, max_items: int = 40) -> Figure:
    """P(row item preferred to column item), items in ``order`` (best first, at most ``max_items``)."""
    shown = np.asarray(order)[: min(len(order), max_items)]
    fig, (ax,) = figure_row(1, panel_size=4.2)
    image = ax.imshow(P[shown][:, shown], vmin=0, vmax=1, cmap="RdBu_r")
    ax.set_title("P(row > column)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else float("nan")


def learned_vs_true(true_returns: np.ndarray, learned_returns: np.ndarray, true_rewards: np.ndarray,
                    learned_rewards: np.ndarray, shown: np.ndarray | None = None) -> Figure:
    """Held-out data of a reward learned from preferences: each segment's learned return against its true return
    (left) and the learned per-step reward against the true one (right; the steps ``shown``, default all), with
    Pearson's r over all of them in the titles."""
    shown = np.arange(len(true_rewards)) if shown is None else np.asarray(shown)
    fig, (ax_seg, ax_step) = figure_row(2)
    ax_seg.scatter(true_returns, learned_returns, s=8, alpha=0.5)
    ax_seg.set(xlabel="true segment return", ylabel="learned segment return (ensemble mean)",
               title=f"held-out segments (Pearson r = {_pearson(learned_returns, true_returns):.3f})")
    ax_step.scatter(true_rewards[shown], learned_rewards[shown], s=3, alpha=0.3)
    ax_step.set(xlabel="true reward", ylabel="learned reward (ensemble mean)",
                title=f"held-out steps (Pearson r = {_pearson(learned_rewards, true_rewards):.3f}; {len(shown)} shown)")
    return fig


def occupancy_maps(mdp: TabularMDP, occupancy: np.ndarray, visitation: np.ndarray, n_demos: int) -> Figure:
    """The true reward with objects marked by outer colour (objectworld), the expert's exact discounted state
    occupancy, and the demonstrations' empirical visitation, the last two on the exact map's colour scale
    (sparse samples make sharp peaks that would otherwise wash the exact map out; clipped cells show at the top
    colour, with an arrow on the colour bar)."""
    n = int(mdp.meta.get("n") or round(mdp.n_states**0.5))
    fig, (ax_r, ax_o, ax_v) = figure_row(3)
    grid_heatmap(ax_r, mdp.true_reward, n, title="true reward (objects by outer colour)", cmap="RdBu", centered=True)
    if "object_cells" in mdp.meta:
        mark_cells(ax_r, mdp.meta["object_cells"], n, mdp.meta["outer_colors"], label="outer colour {}")
    vmax = float(occupancy.max()) or 1.0
    grid_heatmap(ax_o, occupancy, n, title="exact expert occupancy", cmap="magma", vmin=0, vmax=vmax)
    grid_heatmap(ax_v, visitation, n, title=f"empirical visitation ({n_demos} demos)", cmap="magma", vmin=0,
                 vmax=vmax, extend="max" if visitation.max() > vmax else "neither")
    return fig
