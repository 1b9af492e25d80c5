"""Route demonstrations on a ``RoadNetwork``: synthetic drivers, and map-matched routes read from files.

Synthetic drivers follow the setting of Ziebart et al. (AAAI 2008, "Maximum Entropy Inverse Reinforcement
Learning", route-preference study) with known answers: a driver type is a hidden cost weight vector theta (F,) >= 0
over ``FEATURE_NAMES``, and its routes are drawn from the MaxEnt route distribution

    P(route | o, d) ~ exp(-cost(route) / temperature),   cost = theta . f(route),

so temperature -> 0 gives the cheapest route and larger temperatures noisier ones. The weights are scaled so a 3 km
urban route costs tens of nats: one block of detour (~250 m, ~0.5 min, two turns) then costs a few nats, so drivers
mostly, but not always, take their cheapest route. The "shortest_time" driver is not MaxEnt: each route is the
fastest path under edge travel times perturbed by independent multiplicative lognormal noise (per edge, per route),
as a driver misjudging traffic would.

Map-matched routes come as node-id sequences (CSV ``route_id,node_id`` rows, or GeoJSON LineStrings with a
``node_ids`` property) and become edge sequences through ``RoadNetwork.route_edges`` semantics.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import ConvexHull, QhullError

from irlhf.core.errors import ValidationError, shown
from irlhf.core.io import atomic_open
from irlhf.core.seeding import SeedLike, as_generator
from irlhf.envs.roads import FEATURE_NAMES, RoadNetwork
from irlhf.planning.routes import RouteBatch, RouteModel


def _weights(km: dict[str, float], minutes: float, multilane: float, left: float, right: float, straight: float,
             uturn: float) -> np.ndarray:
    """A theta (F,) in the order of FEATURE_NAMES from per-class km costs (classes not named cost 1 per km)."""
    theta = np.ones(len(FEATURE_NAMES))
    for cls, value in km.items():
        theta[FEATURE_NAMES.index(f"km_{cls}")] = value
    theta[FEATURE_NAMES.index("minutes"):] = [minutes, multilane, left, right, straight, uturn]
    return theta


# Nats per km, per minute, per km of multi-lane road and per turn. Weights are >= 0, so a liking for a road class
# is expressed as a lower per-km cost than the other classes (a multi-lane bonus would need a negative weight).
DRIVER_TYPES: dict[str, np.ndarray] = {
    # time dominates (5 nats/min: a 3 km route at 40 km/h costs ~25 nats); left turns across traffic disliked
    "commuter": _weights({"service": 2.0}, minutes=5.0, multilane=0.0, left=1.5, right=0.3, straight=0.1,
                         uturn=4.0),
    # avoids big roads (motorway 10 nats/km ... residential 0.5) and multi-lane stretches; time matters less
    "local": _weights({"motorway": 10.0, "trunk": 8.0, "primary": 6.0, "secondary": 4.0, "tertiary": 1.5,
                       "residential": 0.5, "service": 1.5}, minutes=4.0, multilane=2.0, left=0.8, right=0.4,
                      straight=0.2, uturn=4.0),
    # keeps to big roads (small streets 3-4 nats/km) and avoids left turns and U-turns strongly
    "cautious": _weights({"motorway": 0.8, "trunk": 0.8, "primary": 0.8, "secondary": 1.0, "tertiary": 2.0,
                          "residential": 3.0, "service": 4.0}, minutes=2.0, multilane=0.0, left=4.0, right=0.8,
                         straight=0.2, uturn=10.0),
}
for _theta in DRIVER_TYPES.values():
    _theta.setflags(write=False)  # module constants: a caller changing one would change every later sample
SHORTEST_TIME = "shortest_time"
DRIVERS = tuple(DRIVER_TYPES) + (SHORTEST_TIME,)
_MINUTES = FEATURE_NAMES.index("minutes")
SHORTEST_TIME_THETA = np.where(np.arange(len(FEATURE_NAMES)) == _MINUTES, DRIVER_TYPES["commuter"][_MINUTES], 0.0)
SHORTEST_TIME_THETA.setflags(write=False)


# ------------------------------------------------------------------------------------------ origin-destination pairs
def sample_od_pairs(net: RoadNetwork, n: int, rng: SeedLike, min_km: float = 1.0) -> np.ndarray:
    """(n, 2) origin and destination node indices drawn uniformly over the map's intersections among the pairs at
    least ``min_km`` apart in a straight line (rejection sampling; origin != destination always)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValidationError(f"n={shown(n)}: expected an int >= 1 (origin-destination pairs)")
    if isinstance(min_km, bool) or not isinstance(min_km, (int, float, np.number)) or not 0 <= min_km < np.inf:
        raise ValidationError(f"min_km={shown(min_km)}: expected a number >= 0 (straight-line km)")
    rng = as_generator(rng)
    span_km = _diameter_m(net.xy) / 1000.0
    min_m = max(float(min_km) * 1000.0, 1e-9)  # origin != destination even for min_km=0
    if span_km * 1000.0 < min_m:
        raise ValidationError(f"min_km={shown(min_km)}: no two intersections of the map '{net.name}' are that far "
                              f"apart (at most {span_km:.2f} km); expected min_km below that")
    found: list[np.ndarray] = []
    have, draws = 0, max(8 * n, 4096)
    for _ in range(200):
        pairs = rng.integers(0, net.n_nodes, size=(draws, 2))
        ok = np.linalg.norm(net.xy[pairs[:, 0]] - net.xy[pairs[:, 1]], axis=1) >= min_m
        found.append(pairs[ok])
        have += int(ok.sum())
        if have >= n:
            return np.concatenate(found)[:n]
    raise ValidationError(f"min_km={shown(min_km)}: only {have} of {200 * draws} random pairs of the map "
                          f"'{net.name}' are that far apart; expected a smaller min_km (the map spans "
                          f"{span_km:.2f} km)")


def _diameter_m(xy: np.ndarray) -> float:
    """The largest distance between two points: between convex-hull vertices, few even for big maps."""
    try:
        pts = xy[ConvexHull(xy).vertices] if len(xy) >= 3 else xy
    except QhullError:  # all points on a line
        pts = xy
    if len(pts) > 2000:  # degenerate hulls only; the bounding box diagonal bounds it from above
        return float(np.linalg.norm(pts.max(axis=0) - pts.min(axis=0)))
    return float(np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)).max(initial=0.0))


# ------------------------------------------------------------------------------------------------- synthetic routes
def driver_theta(driver: str | Sequence[float] | np.ndarray) -> np.ndarray:
    """The hidden weights (F,) of a driver type name (``DRIVER_TYPES`` or "shortest_time") or of given weights."""
    if isinstance(driver, str):
        if driver == SHORTEST_TIME:
            return SHORTEST_TIME_THETA.copy()
        if driver not in DRIVER_TYPES:
            raise ValidationError(f"driver={driver!r}: expected one of {list(DRIVERS)} or {len(FEATURE_NAMES)} "
                                  f"cost weights")
        return DRIVER_TYPES[driver].copy()
    try:
        theta = np.asarray(driver, dtype=np.float64)
    except (TypeError, ValueError):
        theta = None
    if theta is None or theta.shape != (len(FEATURE_NAMES),) or not np.isfinite(theta).all() or (theta < 0).any():
        raise ValidationError(f"driver={shown(driver)}: expected one of {list(DRIVERS)} or {len(FEATURE_NAMES)} "
                              f"finite cost weights >= 0 (over {', '.join(FEATURE_NAMES)})")
    return theta


def synthetic_routes(net: RoadNetwork, n: int, *, driver: str | np.ndarray = "commuter", temperature: float = 1.0,
                     noise_sigma: float = 0.3, min_km: float = 1.0,
                     seed: SeedLike = 0) -> tuple[RouteBatch, np.ndarray, np.ndarray]:
    """``n`` demonstrations of a synthetic driver between random origin-destination pairs ``min_km`` apart.

    driver: a name of ``DRIVER_TYPES`` (routes ~ MaxEnt P(route | o, d) of theta / temperature), "shortest_time"
      (the fastest route under travel times times lognormal noise exp(N(-s^2/2, s^2)), s = ``noise_sigma``, drawn
      per edge and per route; mean factor 1), or (F,) weights >= 0 sampled as a driver type.
    Returns (routes as a RouteBatch, od (n, 2) node indices, theta (F,)): theta is the weights that generated the
    routes, theta_driver / temperature for MaxEnt drivers (what an exact MaxEnt fit recovers) and minutes-only
    ``SHORTEST_TIME_THETA`` for "shortest_time". Same seed, same routes.
    """
    theta = driver_theta(driver)
    for name, value in (("temperature", temperature), ("noise_sigma", noise_sigma)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 < value < np.inf:
            raise ValidationError(f"{name}={shown(value)}: expected a number > 0")
    rng = as_generator(seed)
    od = sample_od_pairs(net, n, rng, min_km=min_km)
    if isinstance(driver, str) and driver == SHORTEST_TIME:
        routes = noisy_fastest_routes(net, od[:, 0], od[:, 1], noise_sigma, rng)
    else:
        theta = theta / temperature
        routes = RouteModel(net, theta).sample(od[:, 0], od[:, 1], rng)
    return RouteBatch.from_routes(net, routes), od, theta


def noisy_fastest_routes(net: RoadNetwork, origins: np.ndarray, destinations: np.ndarray, sigma: float,
                         rng: SeedLike) -> list[np.ndarray]:
    """For each (origin, destination) node pair, the fastest route (edges) under travel minutes times independent
    lognormal factors exp(N(-sigma^2/2, sigma^2)) per edge, drawn afresh per route. Turns cost nothing here, so
    Dijkstra runs on the node graph (one run per route: each has its own edge times)."""
    rng = as_generator(rng)
    order = np.lexsort((net.head, net.tail))  # CSR order of the node graph; no parallel edges in a RoadNetwork
    indptr = np.concatenate([[0], np.cumsum(np.bincount(net.tail, minlength=net.n_nodes))])
    minutes = net.edge_features[order, _MINUTES]
    routes = []
    for o, d in zip(np.asarray(origins, np.int64).tolist(), np.asarray(destinations, np.int64).tolist()):
        times = minutes * rng.lognormal(-sigma**2 / 2, sigma, size=len(order))
        G = sp.csr_array((times, net.head[order], indptr), shape=(net.n_nodes,) * 2)
        _, pred = dijkstra(G, indices=o, return_predecessors=True)
        if pred[d] < 0 and o != d:
            raise ValidationError(f"destination {shown(net.node_ids[d])}: not reachable from origin "
                                  f"{shown(net.node_ids[o])}")
        nodes = [d]
        while nodes[-1] != o:
            nodes.append(int(pred[nodes[-1]]))
        nodes = np.array(nodes[::-1])
        routes.append(net.edge_between(nodes[:-1], nodes[1:]))
    return routes


# --------------------------------------------------------------------------------------------- map-matched routes
def load_routes(net: RoadNetwork, path: str | os.PathLike) -> list[np.ndarray]:
    """Map-matched routes as edge sequences (list of (L_i,) state indices), from node-id sequences in a file.

    CSV: a header with ``route_id`` and ``node_id`` columns (others ignored), one row per node in driving order;
    rows are grouped by route_id (any text) in order of first appearance. A header with ``node_id`` alone holds one
    route; a file without a header is read as ``route_id,node_id`` rows. GeoJSON (``.geojson``/``.json``, or text
    starting with ``{``): a FeatureCollection whose features carry a ``node_ids`` list in their properties (the
    LineString geometry is not read); the route id is ``properties.route_id``, else the feature's ``id``, else its
    position. A node repeated right after itself (GPS samples at one intersection) counts once.

    Raises ValidationError (one line, naming the file and the row or route) on: an empty file, missing columns,
    a non-integer node id, a node not on the map, consecutive nodes no road joins, a route of one node, or a route
    that ends where it starts.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValidationError(f"routes={str(path)!r}: no such file; expected a CSV or GeoJSON file of routes") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"routes={str(path)!r}: unreadable ({exc.__class__.__name__}); expected a CSV or "
                              f"GeoJSON text file") from None
    if not text.strip():
        raise ValidationError(f"routes={str(path)!r}: empty file; expected routes as 'route_id,node_id' CSV rows or a "
                              f"GeoJSON FeatureCollection")
    if p.suffix.lower() in (".geojson", ".json") or text.lstrip().startswith("{"):
        ids, raw, where = _read_geojson(text, str(path))
    else:
        ids, raw, where = _read_csv(text, str(path))
    return _edges_of(net, ids, raw, where, str(path))


def _read_csv(text: str, name: str) -> tuple[list[str], list[str], list[str]]:
    """Route id, node id (as written) and 'row N' of every data row."""
    rows = [(i + 1, r) for i, r in enumerate(csv.reader(io.StringIO(text))) if any(c.strip() for c in r)]
    if not rows:
        raise ValidationError(f"routes={name!r}: empty file; expected 'route_id,node_id' CSV rows")
    header = [c.strip().lower() for c in rows[0][1]]
    if "node_id" in header:
        node_col = header.index("node_id")
        route_col = header.index("route_id") if "route_id" in header else None
        rows = rows[1:]
    elif len(header) == 2 and all(_is_int(c) for c in rows[0][1]):
        route_col, node_col = 0, 1
    else:
        raise ValidationError(f"routes={name!r}: columns {shown(rows[0][1])}: expected a header with 'route_id' and "
                              f"'node_id' columns (or headerless 'route_id,node_id' rows)")
    if not rows:
        raise ValidationError(f"routes={name!r}: a header but no rows; expected one 'route_id,node_id' row per node")
    ids, nodes, where = [], [], []
    for line, r in rows:
        if len(r) <= max(node_col, route_col or 0):
            raise ValidationError(f"routes={name!r} row {line}: {shown(r)} has {len(r)} column(s); expected a "
                                  f"route_id and a node_id")
        ids.append("0" if route_col is None else r[route_col].strip())
        nodes.append(r[node_col].strip())
        where.append(f"row {line}")
    return ids, nodes, where


def _read_geojson(text: str, name: str) -> tuple[list[str], list, list[str]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"routes={name!r}: not JSON ({exc.msg} at line {exc.lineno}); expected a GeoJSON "
                              f"FeatureCollection") from None
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list) or doc.get("type") != "FeatureCollection":
        raise ValidationError(f"routes={name!r}: type={shown(doc.get('type') if isinstance(doc, dict) else doc)}: "
                              f"expected a GeoJSON FeatureCollection with a 'features' list")
    if not features:
        raise ValidationError(f"routes={name!r}: no features; expected one LineString feature per route")
    ids, nodes, where = [], [], []
    for k, feat in enumerate(features):
        props = feat.get("properties") if isinstance(feat, dict) else None
        seq = props.get("node_ids") if isinstance(props, dict) else None
        rid = str(props.get("route_id", feat.get("id", k))) if isinstance(props, dict) else str(k)
        if not isinstance(seq, list):
            raise ValidationError(f"routes={name!r} feature {k}: properties.node_ids={shown(seq)}: expected a list "
                                  f"of OSM node ids in driving order")
        ids += [rid] * len(seq)
        nodes += seq
        where += [f"feature {k} (route {rid!r}) node {j}" for j in range(len(seq))]
    return ids, nodes, where


def _is_int(value) -> bool:
    if isinstance(value, bool):
        return False
    try:
        number = value if isinstance(value, int) else int(str(value).strip())
    except ValueError:
        return False
    return -(2**63) <= number < 2**63


def _edges_of(net: RoadNetwork, ids: list[str], raw: list, where: list[str], name: str) -> list[np.ndarray]:
    """Edge sequences of the routes given as one flat list of (route id, node id, location) rows."""
    bad = next((k for k, v in enumerate(raw) if not _is_int(v)), None)
    if bad is not None:
        raise ValidationError(f"routes={name!r} {where[bad]}: node_id={shown(raw[bad])}: expected an integer OSM "
                              f"node id")
    osm = np.array([int(str(v).strip()) if not isinstance(v, int) else v for v in raw], dtype=np.int64)
    order = np.argsort(net.node_ids, kind="stable")
    pos = np.searchsorted(net.node_ids[order], osm).clip(0, net.n_nodes - 1)
    missing = np.flatnonzero(net.node_ids[order][pos] != osm)
    if len(missing):
        k = int(missing[0])
        raise ValidationError(f"routes={name!r} {where[k]}: node {osm[k]} is not an intersection of the map "
                              f"'{net.name}'; expected node ids of this map (e.g. {shown(net.node_ids[:3])})")
    nodes = order[pos]
    route_of, first = _group(ids)
    rows = np.argsort(route_of, kind="stable")  # rows of each route together, in file order
    route_of, nodes = route_of[rows], nodes[rows]
    keep = np.ones(len(rows), dtype=bool)
    keep[1:] = (nodes[1:] != nodes[:-1]) | (route_of[1:] != route_of[:-1])
    rows, route_of, nodes = rows[keep], route_of[keep], nodes[keep]
    starts = np.searchsorted(route_of, np.arange(len(first)))
    ends = np.append(starts[1:], len(rows))
    short = np.flatnonzero(ends - starts < 2)
    if len(short):
        k = int(short[0])
        raise ValidationError(f"routes={name!r} route {first[k]!r} ({where[rows[starts[k]]]}): one node; expected "
                              f"at least 2 (origin and destination)")
    loop = np.flatnonzero(nodes[starts] == nodes[ends - 1])
    if len(loop):
        k = int(loop[0])
        raise ValidationError(f"routes={name!r} route {first[k]!r}: origin equals destination (node "
                              f"{net.node_ids[nodes[starts[k]]]}); expected a route between two different nodes")
    inner = route_of[1:] == route_of[:-1]
    edges = net.edge_between(nodes[:-1][inner], nodes[1:][inner])
    if (edges < 0).any():
        j = int(np.flatnonzero(inner)[np.argmax(edges < 0)])
        raise ValidationError(f"routes={name!r} route {first[route_of[j]]!r} ({where[rows[j + 1]]}): jumps from node "
                              f"{net.node_ids[nodes[j]]} to {net.node_ids[nodes[j + 1]]}, which no road joins in that "
                              f"direction; expected consecutive nodes joined by a road")
    cuts = np.cumsum(ends - starts - 1)[:-1]
    return np.split(edges, cuts)


def _group(ids: list[str]) -> tuple[np.ndarray, list[str]]:
    """Route index (in order of first appearance) of each row, and the route ids in that order."""
    uniq, first_pos, inverse = np.unique(np.array(ids, dtype=object).astype(str), return_index=True,
                                         return_inverse=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(first_pos, kind="stable")] = np.arange(len(uniq))
    return rank[inverse], [str(uniq[i]) for i in np.argsort(first_pos, kind="stable")]


def save_routes_csv(net: RoadNetwork, routes: RouteBatch | Sequence[np.ndarray], path: str | os.PathLike,
                    route_ids: Sequence | None = None) -> Path:
    """Write routes (edge sequences) as 'route_id,node_id' CSV rows (OSM node ids in driving order), atomically:
    the file ``load_routes`` reads back. route_ids default to 0 .. n-1."""
    routes = [routes.route(i) for i in range(len(routes))] if isinstance(routes, RouteBatch) else list(routes)
    ids = list(range(len(routes))) if route_ids is None else list(route_ids)
    if len(ids) != len(routes):
        raise ValidationError(f"route_ids: {len(ids)} ids for {len(routes)} routes; expected one per route")
    lines = ["route_id,node_id"]
    for rid, edges in zip(ids, routes):
        lines += [f"{rid},{v}" for v in net.route_nodes(edges).tolist()]
    target = Path(path)
    with atomic_open(target, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return target
