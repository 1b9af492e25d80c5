"""Pictures of a road network: every edge coloured by a value (the learned cost per km), routes drawn on top.

``route_map`` returns a matplotlib ``Figure`` (save it with ``RunDir.save_figure``); ``route_map_html`` writes the
same picture as a self-contained HTML page (inline SVG, hover titles on the routes), readable offline in any browser.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from irlhf.envs.roads import RoadNetwork

ROUTE_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e")


def edge_segments(net: RoadNetwork, edges: np.ndarray | None = None) -> list[np.ndarray]:
    """Polylines (k, 2) in metres of the given edges (default: all)."""
    edges = np.arange(net.n_states) if edges is None else np.asarray(edges, np.int64)
    return [net.geom_xy[net.geom_ptr[e]:net.geom_ptr[e + 1]] for e in edges]


def cost_per_km(net: RoadNetwork, theta: np.ndarray) -> np.ndarray:
    """(E,) each edge's cost (nats) divided by its length in km: comparable across short and long edges."""
    return net.costs(theta)[0] / (net.length_m / 1000.0)


def route_map(net: RoadNetwork, values: np.ndarray, routes: Sequence[np.ndarray] = (),
              labels: Sequence[str] = (), *, title: str = "", value_label: str = "cost per km (nats)") -> Figure:
    """The map with edges coloured by ``values`` (E,) and ``routes`` (edge arrays) drawn over them, origin o, end x."""
    fig = Figure(figsize=(8, 8))
    ax = fig.add_subplot(1, 1, 1)
    lo, hi = np.percentile(values, [2, 98]) if len(values) else (0.0, 1.0)
    lines = LineCollection(edge_segments(net), array=np.clip(values, lo, hi), cmap="viridis", linewidths=1.0)
    ax.add_collection(lines)
    fig.colorbar(lines, ax=ax, shrink=0.7, label=value_label)
    for k, route in enumerate(routes):
        colour = ROUTE_COLOURS[k % len(ROUTE_COLOURS)]
        pts = np.concatenate(edge_segments(net, route))
        # each later route thinner and on top, so routes sharing a street show as nested stripes
        ax.plot(pts[:, 0], pts[:, 1], color=colour, linewidth=max(6.0 - 1.5 * k, 1.2), zorder=3 + k,
                label=labels[k] if k < len(labels) else None)
        ax.plot(*pts[0], "o", color=colour, markersize=8, zorder=10)
        ax.plot(*pts[-1], "X", color=colour, markersize=9, zorder=10)
    ax.autoscale()
    ax.set_aspect("equal")
    ax.set_xlabel("east (m)")
    ax.set_ylabel("north (m)")
    if title:
        ax.set_title(title, fontsize=10)
    if len(labels):
        ax.legend(loc="upper left", fontsize=8)
    return fig


def route_map_html(net: RoadNetwork, values: np.ndarray, routes: Sequence[np.ndarray] = (),
                   labels: Sequence[str] = (), *, title: str = "") -> str:
    """A standalone HTML page with the map as inline SVG (north up); hovering a route shows its label."""
    lo, hi = np.percentile(values, [2, 98]) if len(values) else (0.0, 1.0)
    shade = np.clip((values - lo) / max(hi - lo, 1e-12), 0, 1)
    xy = net.geom_xy
    x0, y0 = xy.min(axis=0)
    width, height = np.maximum(xy.max(axis=0) - xy.min(axis=0), 1.0)
    scale = 900.0 / max(width, height)

    def points(poly: np.ndarray) -> str:
        return " ".join(f"{(x - x0) * scale:.1f},{(y0 + height - y) * scale:.1f}" for x, y in poly)

    body = []
    for e, poly in enumerate(edge_segments(net)):
        g = int(220 - 180 * shade[e])  # cheap green, costly red
        body.append(f'<polyline points="{points(poly)}" stroke="rgb({255 - g},{g},120)" stroke-width="1.5" '
                    f'fill="none"/>')
    for k, route in enumerate(routes):
        label = html.escape(labels[k] if k < len(labels) else f"route {k + 1}")
        pts = np.concatenate(edge_segments(net, route))
        body.append(f'<polyline points="{points(pts)}" stroke="{ROUTE_COLOURS[k % len(ROUTE_COLOURS)]}" '
                    f'stroke-width="{5 - min(k, 3)}" fill="none" opacity="0.85"><title>{label}</title></polyline>')
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * scale:.0f}" height="{height * scale:.0f}" '
           f'style="background:#fafafa">{"".join(body)}</svg>')
    legend = "".join(f'<li style="color:{ROUTE_COLOURS[k % len(ROUTE_COLOURS)]}">{html.escape(label)}</li>'
                     for k, label in enumerate(labels))
    return (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title or net.name)}</title>"
            f"<h1 style='font-family:sans-serif;font-size:1.1rem'>{html.escape(title or net.name)}</h1>"
            f"<p style='font-family:sans-serif;font-size:0.9rem'>Edges from green (cheap per km) to red (costly "
            f"per km).</p><ol style='font-family:sans-serif'>{legend}</ol>{svg}")
