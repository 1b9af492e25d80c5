"""Synthetic route demonstrations and map-matched route files (irlhf.planning.route_drivers)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from irlhf.core.errors import ValidationError
from irlhf.envs.roads import FEATURE_NAMES
from irlhf.planning.route_drivers import (
    DRIVER_TYPES,
    SHORTEST_TIME_THETA,
    driver_theta,
    load_routes,
    sample_od_pairs,
    save_routes_csv,
    synthetic_routes,
)
from irlhf.planning.routes import RouteModel


def _is_route(net, edges, origin, destination) -> bool:
    edges = np.asarray(edges)
    joined = (net.transition_index(edges[:-1], edges[1:]) >= 0).all()
    return bool(joined and net.tail[edges[0]] == origin and net.head[edges[-1]] == destination)


# -- driver types ------------------------------------------------------------------------------------
def test_driver_types_are_nonnegative_distinct_and_read_only():
    thetas = np.stack(list(DRIVER_TYPES.values()))
    assert thetas.shape == (len(DRIVER_TYPES), len(FEATURE_NAMES)) and (thetas >= 0).all()
    unit = thetas / np.linalg.norm(thetas, axis=1, keepdims=True)
    cos = unit @ unit.T
    assert cos[~np.eye(len(thetas), dtype=bool)].max() < 0.95  # clearly different preferences
    with pytest.raises(ValueError):
        DRIVER_TYPES["commuter"][0] = 5.0
    assert np.flatnonzero(SHORTEST_TIME_THETA).tolist() == [FEATURE_NAMES.index("minutes")]


def test_a_3km_urban_route_costs_tens_of_nats(road_grid):
    net = road_grid(2, 14, jitter_m=0.0)  # 13 blocks of 250 m along one street
    route = net.route_edges(1000 + np.arange(13))  # 12 blocks = 3 km of residential street, straight on
    assert net.length_m[route].sum() == pytest.approx(3000.0)
    for name, theta in DRIVER_TYPES.items():
        cost = net.route_features(route) @ theta
        assert 10.0 <= cost <= 100.0, name


def test_driver_theta_accepts_names_and_weights_and_rejects_the_rest():
    assert np.array_equal(driver_theta("local"), DRIVER_TYPES["local"])
    assert np.array_equal(driver_theta(np.ones(len(FEATURE_NAMES))), np.ones(len(FEATURE_NAMES)))
    with pytest.raises(ValidationError, match=r"driver='speedy': expected one of \['commuter'"):
        driver_theta("speedy")
    with pytest.raises(ValidationError, match=r"driver=\[1.0, -1.0\]: expected one of"):
        driver_theta([1.0, -1.0])


# -- origin-destination pairs --------------------------------------------------------------------------
def test_sample_od_pairs_respects_min_km_and_seed(small_grid):
    od = sample_od_pairs(small_grid, 50, 3, min_km=0.6)
    assert od.shape == (50, 2) and od.dtype.kind == "i"
    dist = np.linalg.norm(small_grid.xy[od[:, 0]] - small_grid.xy[od[:, 1]], axis=1)
    assert (dist >= 600.0).all() and (od[:, 0] != od[:, 1]).all()
    assert np.array_equal(od, sample_od_pairs(small_grid, 50, np.random.default_rng(3), min_km=0.6))
    anywhere = sample_od_pairs(small_grid, 200, 1, min_km=0)
    assert (anywhere[:, 0] != anywhere[:, 1]).all()


def test_sample_od_pairs_errors(small_grid):
    with pytest.raises(ValidationError, match=r"min_km=5: no two intersections of the map 'grid' are that far apart "
                                              r"\(at most 1\.\d\d km\)"):
        sample_od_pairs(small_grid, 3, 0, min_km=5)
    with pytest.raises(ValidationError, match=r"n=0: expected an int >= 1"):
        sample_od_pairs(small_grid, 0, 0)
    with pytest.raises(ValidationError, match=r"min_km=-1: expected a number >= 0"):
        sample_od_pairs(small_grid, 3, 0, min_km=-1)


# -- synthetic routes --------------------------------------------------------------------------------
@pytest.mark.parametrize("driver", [*DRIVER_TYPES, "shortest_time"])
def test_synthetic_routes_are_valid_and_reproducible(small_grid, driver):
    batch, od, theta = synthetic_routes(small_grid, 12, driver=driver, seed=4, min_km=0.5)
    assert len(batch) == 12 and od.shape == (12, 2)
    assert all(_is_route(small_grid, batch.route(i), *od[i]) for i in range(12))
    again, od2, theta2 = synthetic_routes(small_grid, 12, driver=driver, seed=4, min_km=0.5)
    assert np.array_equal(batch.edges, again.edges) and np.array_equal(od, od2) and np.array_equal(theta, theta2)


def test_maxent_driver_theta_is_scaled_by_temperature_and_cold_drivers_take_the_cheapest_route(small_grid):
    _, _, theta = synthetic_routes(small_grid, 3, driver="cautious", temperature=2.0, seed=0, min_km=0.5)
    assert np.allclose(theta, DRIVER_TYPES["cautious"] / 2.0)
    batch, od, theta = synthetic_routes(small_grid, 15, driver="commuter", temperature=0.02, seed=1, min_km=0.5)
    model = RouteModel(small_grid, DRIVER_TYPES["commuter"])
    assert all(np.array_equal(batch.route(i), model.best_route(*od[i])) for i in range(15))


def test_warm_drivers_sometimes_leave_the_cheapest_route(small_grid):
    batch, od, _ = synthetic_routes(small_grid, 40, driver="commuter", seed=2, min_km=0.5)
    model = RouteModel(small_grid, DRIVER_TYPES["commuter"])
    cheapest = np.mean([np.array_equal(batch.route(i), model.best_route(*od[i])) for i in range(40)])
    assert 0.4 <= cheapest < 1.0  # mostly, not always


def test_shortest_time_driver_is_exact_without_noise_and_varies_with_it(small_grid):
    net = small_grid
    minutes = net.edge_features[:, FEATURE_NAMES.index("minutes")]
    dist = dijkstra(sp.csr_array((minutes, (net.tail, net.head)), shape=(net.n_nodes,) * 2))
    batch, od, theta = synthetic_routes(net, 20, driver="shortest_time", noise_sigma=1e-6, seed=5, min_km=0.5)
    assert np.array_equal(theta, SHORTEST_TIME_THETA)
    got = np.array([minutes[batch.route(i)].sum() for i in range(20)])
    assert np.allclose(got, dist[od[:, 0], od[:, 1]], rtol=1e-9)
    noisy, od, _ = synthetic_routes(net, 30, driver="shortest_time", noise_sigma=1.0, seed=5, min_km=0.5)
    got = np.array([minutes[noisy.route(i)].sum() for i in range(30)])
    assert (got >= dist[od[:, 0], od[:, 1]] - 1e-9).all() and (got > dist[od[:, 0], od[:, 1]] + 1e-9).any()


def test_synthetic_routes_errors(small_grid):
    with pytest.raises(ValidationError, match=r"temperature=0: expected a number > 0"):
        synthetic_routes(small_grid, 2, temperature=0)
    with pytest.raises(ValidationError, match=r"noise_sigma=-0.1: expected a number > 0"):
        synthetic_routes(small_grid, 2, driver="shortest_time", noise_sigma=-0.1)


# -- route files -------------------------------------------------------------------------------------
def test_csv_round_trip_and_formats(small_grid, tmp_path):
    batch, _, _ = synthetic_routes(small_grid, 6, seed=7, min_km=0.5)
    routes = [batch.route(i) for i in range(6)]
    path = save_routes_csv(small_grid, batch, tmp_path / "routes.csv", route_ids=[f"trip{i}" for i in range(6)])
    assert path.read_text().splitlines()[0] == "route_id,node_id"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left behind
    back = load_routes(small_grid, path)
    assert len(back) == 6 and all(np.array_equal(a, b) for a, b in zip(back, routes))
    # headerless rows, a single-route file, a node repeated right after itself
    nodes = small_grid.route_nodes(routes[0])
    (tmp_path / "bare.csv").write_text("".join(f"7,{v}\n" for v in nodes))
    assert np.array_equal(load_routes(small_grid, tmp_path / "bare.csv")[0], routes[0])
    (tmp_path / "one.csv").write_text("node_id\n" + "".join(f"{v}\n{v}\n" for v in nodes))
    assert np.array_equal(load_routes(small_grid, tmp_path / "one.csv")[0], routes[0])


def test_geojson_routes(small_grid, tmp_path):
    batch, _, _ = synthetic_routes(small_grid, 3, seed=8, min_km=0.5)
    features = [{"type": "Feature", "id": f"r{i}", "properties": {"node_ids": small_grid.route_nodes(batch.route(i))
                                                                   .tolist()},
                 "geometry": {"type": "LineString", "coordinates": []}} for i in range(3)]
    (tmp_path / "r.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    back = load_routes(small_grid, tmp_path / "r.geojson")
    assert all(np.array_equal(back[i], batch.route(i)) for i in range(3))


@pytest.mark.parametrize("text, message", [
    ("", r"routes='[^']*bad.csv': empty file"),
    ("trip,node\n1,1000\n", r"routes='[^']*bad.csv': columns \['trip', 'node'\]: expected a header with 'route_id' and "
                            r"'node_id' columns"),
    ("route_id,node_id\n", r"routes='[^']*bad.csv': a header but no rows"),
    ("route_id,node_id\na,1000\na,x1\n", r"routes='[^']*bad.csv' row 3: node_id='x1': expected an integer OSM node id"),
    ("route_id,node_id\na,1000\na,1001\nb,1000\nb,77\n",
     r"routes='[^']*bad.csv' row 5: node 77 is not an intersection of the map 'grid'"),
    ("route_id,node_id\na,1000\na,1001\nb,1000\nb,1001\nb,1007\n",
     r"routes='[^']*bad.csv' route 'b' \(row 6\): jumps from node 1001 to 1007, which no road joins"),
    ("route_id,node_id\na,1000\na,1001\na,1000\n", r"route 'a': origin equals destination \(node 1000\)"),
    ("route_id,node_id\na,1000\na,1001\nb,1002\n", r"route 'b' \(row 4\): one node; expected at least 2"),
])
def test_csv_errors(small_grid, tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ValidationError, match=message) as info:
        load_routes(small_grid, tmp_path / "bad.csv")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("doc, message", [
    ("{not json", r"routes='[^']*bad.geojson': not JSON"),
    (json.dumps({"type": "Feature"}), r"type='Feature': expected a GeoJSON FeatureCollection"),
    (json.dumps({"type": "FeatureCollection", "features": [{"properties": {}}]}),
     r"feature 0: properties.node_ids=None: expected a list of OSM node ids"),
    (json.dumps({"type": "FeatureCollection", "features": [{"properties": {"node_ids": [1000, 1.5]}}]}),
     r"feature 0 \(route '0'\) node 1: node_id=1.5: expected an integer OSM node id"),
])
def test_geojson_errors(small_grid, tmp_path, doc, message):
    (tmp_path / "bad.geojson").write_text(doc)
    with pytest.raises(ValidationError, match=message):
        load_routes(small_grid, tmp_path / "bad.geojson")


def test_missing_file(small_grid, tmp_path):
    with pytest.raises(ValidationError, match=r"no such file"):
        load_routes(small_grid, tmp_path / "nope.csv")


@pytest.mark.slow
def test_helsinki_drivers():
    from irlhf.envs.road_maps import bundled_map_path, read_osm

    net = read_osm(bundled_map_path("helsinki"))
    for driver in [*DRIVER_TYPES, "shortest_time"]:
        batch, od, _ = synthetic_routes(net, 20, driver=driver, seed=0, min_km=1.0)
        assert all(_is_route(net, batch.route(i), *od[i]) for i in range(20))
