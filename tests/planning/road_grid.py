"""A small deterministic road grid for route tests (importable once ``tests/planning`` is on sys.path)."""

from __future__ import annotations

import numpy as np

from irlhf.envs.roads import RoadNetwork

ORIGIN_LONLAT = np.array([24.94, 60.17])  # central Helsinki, so distances look like a city's
M_PER_DEG_LAT = 6371008.8 * np.pi / 180


def grid_network(rows: int = 4, cols: int = 5, *, spacing_m: float = 250.0, jitter_m: float = 25.0, seed: int = 7,
                 arterial_rows: tuple[int, ...] = (1,), arterial_cols: tuple[int, ...] = (2,),
                 varied_speeds: bool = False, name: str = "grid") -> RoadNetwork:
    """rows x cols intersections ``spacing_m`` apart, jittered by up to ``jitter_m`` (fixed seed: distinct edge
    lengths, so shortest routes have no ties), two-way streets: the arterial rows/columns are 2-lane primary roads
    at 50 km/h, the rest 1-lane residential at 30 km/h (``varied_speeds``: +10 km/h on a random half of the edges,
    so minutes are not a linear function of the per-class km). Node ids are 1000 + row * cols + col."""
    rng = np.random.default_rng(seed)
    r, c = np.divmod(np.arange(rows * cols), cols)
    xy = np.stack([c * spacing_m, r * spacing_m], axis=1) + rng.uniform(-jitter_m, jitter_m, (rows * cols, 2))
    lat = ORIGIN_LONLAT[1] + xy[:, 1] / M_PER_DEG_LAT
    lon = ORIGIN_LONLAT[0] + xy[:, 0] / (M_PER_DEG_LAT * np.cos(np.radians(ORIGIN_LONLAT[1])))
    node = np.arange(rows * cols).reshape(rows, cols)
    horizontal = np.stack([node[:, :-1].ravel(), node[:, 1:].ravel()], axis=1)
    vertical = np.stack([node[:-1, :].ravel(), node[1:, :].ravel()], axis=1)
    pairs = np.concatenate([horizontal, vertical])
    big = np.concatenate([np.isin(r[horizontal[:, 0]], arterial_rows), np.isin(c[vertical[:, 0]], arterial_cols)])
    tail = np.concatenate([pairs[:, 0], pairs[:, 1]])
    head = np.concatenate([pairs[:, 1], pairs[:, 0]])
    big = np.concatenate([big, big])
    length = np.linalg.norm(xy[tail] - xy[head], axis=1)
    speed = np.where(big, 50.0, 30.0) + (10.0 * rng.integers(0, 2, len(tail)) if varied_speeds else 0.0)
    return RoadNetwork.from_edges(
        node_ids=1000 + np.arange(rows * cols), lonlat=np.stack([lon, lat], axis=1), tail=tail, head=head,
        length_m=length, road_class=["primary" if b else "residential" for b in big],
        speed_kmh=speed, lanes=np.where(big, 2.0, 1.0), name=name)
