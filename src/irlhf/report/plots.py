"""Grid heatmaps for tabular worlds (matplotlib, object-oriented API: no pyplot state, no display).

Figures are plain ``matplotlib.figure.Figure`` objects, rendered off-screen by Agg when saved
(``RunDir.save_figure``), so nothing here depends on the configured backend or a display.
Cells are numbered ``s = row * n + col`` and drawn with row 0 at the top (action "up" moves up).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from irlhf.core.errors import ValidationError, describe

# face colours for object markers by outer colour (black edges keep them visible on any colormap)
MARKER_COLORS = ("white", "black", "tab:green", "tab:orange", "tab:purple", "tab:cyan")


def grid_side(values: np.ndarray, n: int | None = None) -> int:
    """Side length of the square grid that ``values`` (S,) covers; checks S == n * n."""
    size = int(np.asarray(values).size)
    side = math.isqrt(size) if n is None else n
    if side < 1 or side * side != size:
        raise ValidationError(f"values: {describe(values)} ({size} entries); expected n * n values of a square grid"
                              + ("" if n is None else f" with n={n}"))
    return side


def figure_row(ncols: int, panel_size: float = 4.2) -> tuple[Figure, list[Any]]:
    """A figure with ``ncols`` square panels side by side; returns ``(figure, axes)``."""
    fig = Figure(figsize=(panel_size * ncols + 0.6 * ncols, panel_size), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def grid_heatmap(
    ax: Any,
    values: np.ndarray,
    n: int | None = None,
    *,
    title: str = "",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    centered: bool = False,
    colorbar: bool = True,
    extend: str = "neither",
) -> Any:
    """Draw per-cell ``values`` (S,) as an n x n image on ``ax``; ``centered`` makes limits symmetric about 0.

    ``extend`` ("neither", "min", "max", "both") draws colour-bar arrows for values clipped by vmin/vmax.
    """
    values = np.asarray(values, dtype=np.float64)
    side = grid_side(values, n)
    if centered:
        limit = float(np.abs(values).max()) or 1.0
        vmin, vmax = -limit, limit
    image = ax.imshow(values.reshape(side, side), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03, extend=extend)
    return image


def mark_cells(
    ax: Any,
    cells: Sequence[int] | np.ndarray,
    n: int,
    groups: Sequence[int] | np.ndarray | None = None,
    *,
    label: str = "group {}",
    panel_size: float = 4.2,
) -> None:
    """Mark grid cells with circles, one face colour per group (e.g. an object's outer colour), with a legend."""
    cells = np.asarray(cells, dtype=np.int64).ravel()
    groups = np.zeros(len(cells), dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64).ravel()
    if groups.shape != cells.shape:
        raise ValidationError(f"groups: {len(groups)} entries; expected one per cell ({len(cells)})")
    if cells.size and (cells.min() < 0 or cells.max() >= n * n):
        raise ValidationError(f"cells: values in [{cells.min()}, {cells.max()}]; expected cell ids in [0, {n * n})")
    rows, cols = np.divmod(cells, n)
    cell_points = panel_size * 72 / n
    size = max(4.0, (0.55 * cell_points) ** 2)
    for g in np.unique(groups):
        mask = groups == g
        ax.scatter(cols[mask], rows[mask], s=size, c=MARKER_COLORS[int(g) % len(MARKER_COLORS)],
                   edgecolors="black", linewidths=0.7, label=label.format(int(g)))
    if cells.size:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=max(1, len(np.unique(groups))),
                  fontsize=8, frameon=False, handletextpad=0.2)
