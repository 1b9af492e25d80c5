"""Road networks as deterministic MDPs for route choice (Ziebart et al., AAAI 2008, "Maximum Entropy Inverse
Reinforcement Learning", section "Modeling route preferences").

A state is a directed road segment (an edge u -> v: the driver is at node v, having arrived along that edge), so a
turn is an action: the transition (u -> v) -> (v -> w) takes the next edge. A route is a node sequence; its cost under
weights theta (F,) >= 0 is

    cost(route) = sum over its edges e of  theta . f_edge(e)  +  sum over its turns (e, e') of  theta . f_turn(e, e')

with the features of ``FEATURE_NAMES``, all >= 0: kilometres on each road class, minutes at the speed limit,
kilometres on multi-lane roads, and one count per turn type (left, right, straight, U-turn). Edges and transitions
are flat arrays (a CSR layout: ``succ_ptr``/``succ``/``turn``), never Python dicts, so a city of 300,000 states
fits in a few arrays. Reading OpenStreetMap files and generating synthetic cities live in ``irlhf.envs.road_maps``.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from irlhf.core.errors import ValidationError, shown

ROAD_CLASSES = ("motorway", "trunk", "primary", "secondary", "tertiary", "residential", "service")
DEFAULT_SPEED_KMH = {"motorway": 100.0, "trunk": 80.0, "primary": 50.0, "secondary": 50.0, "tertiary": 40.0,
                     "residential": 30.0, "service": 20.0}
TURNS = ("left", "right", "straight", "uturn")
EDGE_FEATURE_NAMES = tuple(f"km_{c}" for c in ROAD_CLASSES) + ("minutes", "km_multilane")
FEATURE_NAMES = EDGE_FEATURE_NAMES + tuple(f"turn_{t}" for t in TURNS)
STRAIGHT_DEG = 30.0  # |heading change| up to this is straight on
UTURN_DEG = 150.0  # beyond this it is a U-turn
EARTH_RADIUS_M = 6371008.8

_CLASS_OF_HIGHWAY = {c: c for c in ROAD_CLASSES} | {f"{c}_link": c for c in ("motorway", "trunk", "primary",
                                                                              "secondary", "tertiary")}
_CLASS_OF_HIGHWAY |= {"unclassified": "residential", "living_street": "residential", "road": "residential"}


def road_class_of(highway: str) -> str | None:
    """The road class (one of ``ROAD_CLASSES``) of an OSM ``highway`` tag value, or None if cars do not drive it."""
    return _CLASS_OF_HIGHWAY.get(highway)


def project_lonlat(lonlat: np.ndarray, origin: np.ndarray | None = None) -> np.ndarray:
    """(K, 2) lon/lat degrees -> (K, 2) metres east/north of ``origin`` (default: the mean), equirectangular."""
    lonlat = np.asarray(lonlat, dtype=np.float64)
    origin = lonlat.mean(axis=0) if origin is None else origin
    scale = np.pi / 180 * EARTH_RADIUS_M
    return np.stack([(lonlat[:, 0] - origin[0]) * scale * np.cos(np.radians(origin[1])),
                     (lonlat[:, 1] - origin[1]) * scale], axis=1)


@dataclass(frozen=True, eq=False)
class RoadNetwork:
    """A directed road graph: N intersections, E directed edges (= states), T turn transitions.

    Nodes: ``node_ids`` (N,) OSM ids, ``lonlat`` (N, 2) degrees, ``xy`` (N, 2) metres. Edges: ``tail``/``head``
    (E,) node indices, ``length_m``, ``speed_kmh``, ``lanes`` (E,), ``road_class`` (E,) index into ROAD_CLASSES,
    polylines ``geom_xy[geom_ptr[e]:geom_ptr[e + 1]]`` (metres). Transitions out of state e:
    ``succ[succ_ptr[e]:succ_ptr[e + 1]]`` with turn codes ``turn`` (index into TURNS). ``edge_features`` (E, 9).
    """

    name: str
    node_ids: np.ndarray
    lonlat: np.ndarray
    xy: np.ndarray
    tail: np.ndarray
    head: np.ndarray
    length_m: np.ndarray
    speed_kmh: np.ndarray
    lanes: np.ndarray
    road_class: np.ndarray
    geom_ptr: np.ndarray
    geom_xy: np.ndarray
    succ_ptr: np.ndarray
    succ: np.ndarray
    turn: np.ndarray
    out_ptr: np.ndarray  # edges leaving node v: out_edges[out_ptr[v]:out_ptr[v + 1]]
    out_edges: np.ndarray
    in_ptr: np.ndarray  # edges entering node v (the terminal states of destination v)
    in_edges: np.ndarray
    edge_features: np.ndarray
    dropped_ids: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))  # OSM ids of the
    # intersections outside the largest strongly connected part (no route could join them to the rest both ways)

    @property
    def dropped_nodes(self) -> int:
        return len(self.dropped_ids)

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def n_states(self) -> int:
        return len(self.tail)

    @property
    def n_transitions(self) -> int:
        return len(self.succ)

    @property
    def n_features(self) -> int:
        return len(FEATURE_NAMES)

    @functools.cached_property
    def state_order(self) -> np.ndarray:
        """(E,) a fill-reducing elimination order of the states for sparse LU (geometric nested dissection).

        Halve the intersections at the median of their box's longer side, recursively (~32 a leaf), so each node
        gets a binary code. An edge whose ends part at some split separates the halves there (no turn joins an edge
        inside one half to one inside the other), so ordering each half before its separator, from the leaves up,
        keeps the LU's fill near E log E (a 310k-state city: 19M non-zeros against COLAMD's 33M, factors 3x faster).
        """
        xy, N = self.xy, self.n_nodes
        code = np.zeros(N, dtype=np.int64)
        for _ in range(max(1, int(np.ceil(np.log2(max(N / 32, 2)))))):
            by = np.argsort(code, kind="stable")
            group_code = code[by]
            starts = np.flatnonzero(np.r_[True, group_code[1:] != group_code[:-1]])
            sizes = np.diff(np.r_[starts, N])
            group = np.repeat(np.arange(len(starts)), sizes)
            extent = np.maximum.reduceat(xy[by], starts) - np.minimum.reduceat(xy[by], starts)
            along = xy[by, (extent[:, 1] > extent[:, 0]).astype(np.int64)[group]]
            rank = np.empty(N, dtype=np.int64)
            rank[np.lexsort((along, group))] = np.arange(N)  # groups stay in place: rank - start = within
            code[by] = 2 * group_code + (rank - starts[group] >= sizes[group] // 2)
        below = np.frexp((code[self.tail] ^ code[self.head]).astype(np.float64))[1].astype(np.int64)
        last = ((code[self.head] >> below) << below) | ((1 << below) - 1)  # the last leaf under its separator
        return np.lexsort((below, last))  # post-order: a separator after both of its halves

    @property
    def transition_rows(self) -> np.ndarray:
        """(T,) the state each transition leaves (the CSR row of ``succ``)."""
        return np.repeat(np.arange(self.n_states), np.diff(self.succ_ptr))

    def transition_features(self) -> sp.csr_array:
        """(T, F) sparse features of each transition: the next edge's features plus its turn's one-hot."""
        T = self.n_transitions
        edge_part = sp.csr_array(self.edge_features)[self.succ]
        turn_part = sp.csr_array((np.ones(T), (np.arange(T), self.turn.astype(np.int64))), shape=(T, len(TURNS)))
        return sp.hstack([edge_part, turn_part], format="csr")

    def costs(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Edge costs (E,) = edge_features @ theta[:9] and transition costs (T,) = next edge's cost + turn cost."""
        theta = np.asarray(theta, dtype=np.float64)
        Fe = self.edge_features.shape[1]
        edge_cost = self.edge_features @ theta[:Fe]
        return edge_cost, edge_cost[self.succ] + theta[Fe:][self.turn]

    def route_features(self, edges: np.ndarray) -> np.ndarray:
        """(F,) feature counts of a route given as its edge sequence (edges (L,) state indices)."""
        edges = np.asarray(edges, dtype=np.int64)
        turns = self.turn_codes(edges)
        return np.concatenate([self.edge_features[edges].sum(axis=0), np.bincount(turns, minlength=len(TURNS))])

    def turn_codes(self, edges: np.ndarray) -> np.ndarray:
        """(L - 1,) the turn code of each consecutive pair of a route's edges (which must be transitions)."""
        edges = np.asarray(edges, dtype=np.int64)
        if len(edges) < 2:
            return np.zeros(0, dtype=np.int64)
        return self.turn[self.transition_index(edges[:-1], edges[1:])].astype(np.int64)

    def transition_index(self, from_edges: np.ndarray, to_edges: np.ndarray) -> np.ndarray:
        """Position in ``succ`` of each transition from_edges[i] -> to_edges[i]; -1 where there is none."""
        from_edges, to_edges = np.asarray(from_edges, np.int64), np.asarray(to_edges, np.int64)
        degree = np.diff(self.succ_ptr)
        out = np.full(len(from_edges), -1, dtype=np.int64)
        for k in range(int(degree.max(initial=0))):  # a handful of successors per edge
            has = degree[from_edges] > k
            pos = self.succ_ptr[from_edges[has]] + k
            match = self.succ[pos] == to_edges[has]
            idx = np.flatnonzero(has)[match]
            out[idx] = pos[match]
        return out

    def node_index(self, osm_ids, *, field: str = "node") -> np.ndarray:
        """Indices of OSM node ids; an id that is not an intersection of this map is an error naming it."""
        ids = np.atleast_1d(np.asarray(osm_ids))
        if ids.dtype.kind not in "iu":
            try:
                ids = ids.astype(np.int64)
            except (TypeError, ValueError):
                raise ValidationError(f"{field}={shown(osm_ids)}: expected OSM node ids (integers)") from None
        order, sorted_ids = self._node_lookup
        pos = np.searchsorted(sorted_ids, ids).clip(0, max(self.n_nodes - 1, 0))
        found = sorted_ids[pos] == ids
        if not found.all():
            bad = ids[~found][0]
            if np.isin(bad, self.dropped_ids):
                raise ValidationError(f"{field}={shown(bad)}: an intersection of the map '{self.name}' that no route "
                                      f"joins to the main street network both ways (it was dropped with "
                                      f"{self.dropped_nodes - 1} others); expected a connected intersection")
            raise ValidationError(f"{field}={shown(bad)}: not an intersection of the map '{self.name}' "
                                  f"({self.n_nodes} nodes; e.g. {shown(self.node_ids[:3])})")
        return order[pos]

    def route_edges(self, node_ids: Sequence[int], *, field: str = "route") -> np.ndarray:
        """(L,) edge sequence of a route given as OSM node ids (L + 1 of them, consecutive nodes joined by a road)."""
        nodes = self.node_index(node_ids, field=field)
        if len(nodes) < 2:
            raise ValidationError(f"{field}: {len(nodes)} node(s); expected at least 2 (origin and destination)")
        edges = self.edge_between(nodes[:-1], nodes[1:])
        if (edges < 0).any():
            i = int(np.flatnonzero(edges < 0)[0])
            raise ValidationError(f"{field}: jumps from node {shown(self.node_ids[nodes[i]])} to "
                                  f"{shown(self.node_ids[nodes[i + 1]])}, which no road joins in that direction; "
                                  f"expected consecutive nodes joined by a road")
        return edges

    def edge_between(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The edge u[i] -> v[i] for node indices u, v (-1 where there is none)."""
        u, v = np.atleast_1d(np.asarray(u, np.int64)), np.atleast_1d(np.asarray(v, np.int64))
        order, sorted_keys = self._edge_lookup
        want = u * self.n_nodes + v
        pos = np.searchsorted(sorted_keys, want).clip(0, max(self.n_states - 1, 0))
        return np.where(sorted_keys[pos] == want, order[pos], -1)

    @functools.cached_property
    def _node_lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """node_ids sorted, and the order that sorts them (built once: routes are looked up one at a time)."""
        order = np.argsort(self.node_ids, kind="stable")
        return order, self.node_ids[order]

    @functools.cached_property
    def _edge_lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """Edge keys tail * N + head sorted, and the order that sorts them (built once)."""
        key = self.tail.astype(np.int64) * self.n_nodes + self.head
        order = np.argsort(key, kind="stable")
        return order, key[order]

    def route_nodes(self, edges: np.ndarray) -> np.ndarray:
        """OSM node ids of a route given as edges: its first edge's tail, then every head."""
        edges = np.asarray(edges, dtype=np.int64)
        return self.node_ids[np.concatenate([self.tail[edges[:1]], self.head[edges]])]

    @classmethod
    def from_edges(cls, node_ids, lonlat, tail, head, length_m, road_class: Sequence[str], speed_kmh, lanes,
                   geometry: Sequence[np.ndarray] | None = None, name: str = "") -> RoadNetwork:
        """Build the network from directed edges between intersections (see ``irlhf.envs.road_maps``).

        Parallel edges keep the shortest; self-loops are dropped; only the largest strongly connected part is kept
        (so every destination is reachable from every origin); unknown speeds take the class default and unknown
        lanes 1. Raises ValidationError on inconsistent arrays or a map without drivable roads.
        """
        node_ids = np.asarray(node_ids, dtype=np.int64)
        lonlat = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2) if len(node_ids) else np.zeros((0, 2))
        tail, head = np.asarray(tail, dtype=np.int64), np.asarray(head, dtype=np.int64)
        E, N = len(tail), len(node_ids)
        if E == 0:
            raise ValidationError(f"map '{name}': no drivable roads; expected at least one street cars may use")
        length_m = np.asarray(length_m, dtype=np.float64)
        speed_kmh = np.asarray(speed_kmh, dtype=np.float64)
        lanes = np.asarray(lanes, dtype=np.float64)
        for field, arr in (("head", head), ("length_m", length_m), ("speed_kmh", speed_kmh), ("lanes", lanes),
                           ("road_class", road_class)):
            if len(arr) != E:
                raise ValidationError(f"{field}: {len(arr)} values for {E} edges; expected one per edge")
        if lonlat.shape != (N, 2) or not np.isfinite(lonlat).all():
            raise ValidationError(f"lonlat: shape {lonlat.shape}; expected ({N}, 2) finite lon/lat degrees")
        if tail.min() < 0 or head.min() < 0 or max(tail.max(), head.max()) >= N:
            raise ValidationError(f"tail/head: node indices outside [0, {N}); expected indices into node_ids")
        if not (np.isfinite(length_m).all() and (length_m > 0).all()):
            raise ValidationError(f"length_m: {shown(length_m[~(length_m > 0)][:1])}; expected lengths > 0 metres")
        unknown = sorted({c for c in road_class if c not in ROAD_CLASSES})
        if unknown:
            raise ValidationError(f"road_class: {shown(unknown[0])}; expected one of {list(ROAD_CLASSES)}")
        cls_idx = np.array([ROAD_CLASSES.index(c) for c in road_class], dtype=np.int8)
        default_speed = np.array([DEFAULT_SPEED_KMH[c] for c in ROAD_CLASSES])[cls_idx]
        speed_kmh = np.where(np.isfinite(speed_kmh) & (speed_kmh > 0), speed_kmh, default_speed)
        lanes = np.where(np.isfinite(lanes) & (lanes >= 1), lanes, 1.0)
        xy_nodes = project_lonlat(lonlat)
        if geometry is None:
            geom_ptr = 2 * np.arange(E + 1)
            geom_xy = np.stack([xy_nodes[tail], xy_nodes[head]], axis=1).reshape(-1, 2)
        else:
            if len(geometry) != E:
                raise ValidationError(f"geometry: {len(geometry)} polylines for {E} edges; expected one per edge")
            sizes = np.array([len(g) for g in geometry])
            if (sizes < 2).any():
                raise ValidationError(f"geometry: polyline {int(np.argmin(sizes))} has {sizes.min()} point(s); "
                                      f"expected at least 2 (tail and head)")
            geom_ptr = np.concatenate([[0], np.cumsum(sizes)])
            geom_xy = project_lonlat(np.concatenate([np.asarray(g, np.float64).reshape(-1, 2) for g in geometry]),
                                     lonlat.mean(axis=0))

        # parallel edges: keep the shortest; self-loops: drop
        keep = tail != head
        order = np.lexsort((length_m, head, tail))
        order = order[keep[order]]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (tail[order][1:] != tail[order][:-1]) | (head[order][1:] != head[order][:-1])
        kept = np.sort(order[first])
        # largest strongly connected part of the node graph
        adj = sp.csr_array((np.ones(len(kept)), (tail[kept], head[kept])), shape=(N, N))
        _, label = connected_components(adj, directed=True, connection="strong")
        biggest = np.bincount(label).argmax()
        in_part = label == biggest
        kept = kept[in_part[tail[kept]] & in_part[head[kept]]]
        if len(kept) == 0:
            raise ValidationError(f"map '{name}': no two intersections joined both ways; expected a connected street "
                                  f"network")
        new_index = np.cumsum(in_part) - 1
        tail, head = new_index[tail[kept]], new_index[head[kept]]
        geom_ptr, geom_xy = _take_polylines(geom_ptr, geom_xy, kept)
        length_m, speed_kmh, lanes, cls_idx = length_m[kept], speed_kmh[kept], lanes[kept], cls_idx[kept]
        node_ids_all = node_ids
        node_ids, lonlat, xy_nodes = node_ids[in_part], lonlat[in_part], xy_nodes[in_part]
        return cls._assemble(name, node_ids, lonlat, xy_nodes, tail, head, length_m, speed_kmh, lanes, cls_idx,
                             geom_ptr, geom_xy, dropped_ids=node_ids_all[~in_part])

    @classmethod
    def _assemble(cls, name, node_ids, lonlat, xy, tail, head, length_m, speed_kmh, lanes, cls_idx, geom_ptr,
                  geom_xy, dropped_ids) -> RoadNetwork:
        N, E = len(node_ids), len(tail)
        out_order = np.argsort(tail, kind="stable")
        out_ptr = np.concatenate([[0], np.cumsum(np.bincount(tail, minlength=N))])
        in_order = np.argsort(head, kind="stable")
        in_ptr = np.concatenate([[0], np.cumsum(np.bincount(head, minlength=N))])
        # transitions (e -> e') for every edge e' leaving head(e)
        degree = np.diff(out_ptr)[head]
        succ_ptr = np.concatenate([[0], np.cumsum(degree)])
        rows = np.repeat(np.arange(E), degree)
        offset = np.arange(len(rows)) - succ_ptr[rows]
        succ = out_order[out_ptr[head[rows]] + offset]
        # headings: the last segment of the incoming polyline, the first of the outgoing one
        d_in = geom_xy[geom_ptr[1:] - 1] - geom_xy[geom_ptr[1:] - 2]
        d_out = geom_xy[geom_ptr[:-1] + 1] - geom_xy[geom_ptr[:-1]]
        a, b = d_in[rows], d_out[succ]
        angle = np.degrees(np.arctan2(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0], (a * b).sum(axis=1)))
        turn = np.where(angle > STRAIGHT_DEG, 0, np.where(angle < -STRAIGHT_DEG, 1, 2))
        turn = np.where((np.abs(angle) > UTURN_DEG) | (head[succ] == tail[rows]), 3, turn).astype(np.int8)
        km = length_m / 1000.0
        class_km = np.zeros((E, len(ROAD_CLASSES)))
        class_km[np.arange(E), cls_idx] = km
        edge_features = np.column_stack([class_km, length_m / 1000.0 / speed_kmh * 60.0, km * (lanes >= 2)])
        return cls(name=name, node_ids=node_ids, lonlat=lonlat, xy=xy, tail=tail, head=head, length_m=length_m,
                   speed_kmh=speed_kmh, lanes=lanes, road_class=cls_idx, geom_ptr=geom_ptr, geom_xy=geom_xy,
                   succ_ptr=succ_ptr, succ=succ, turn=turn, out_ptr=out_ptr, out_edges=out_order, in_ptr=in_ptr,
                   in_edges=in_order, edge_features=edge_features, dropped_ids=dropped_ids)


def _take_polylines(ptr: np.ndarray, flat: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The polylines ``idx`` of a flat (ptr, points) layout, as a new flat layout."""
    sizes = np.diff(ptr)[idx]
    new_ptr = np.concatenate([[0], np.cumsum(sizes)])
    points = np.repeat(ptr[idx], sizes) + np.arange(new_ptr[-1]) - np.repeat(new_ptr[:-1], sizes)
    return new_ptr, flat[points]
