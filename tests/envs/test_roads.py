"""RoadNetwork: turns from geometry, features, cleaning (parallel edges, self-loops, strongly connected part),
route parsing and its errors."""

import numpy as np
import pytest

from irlhf.core.errors import ValidationError
from irlhf.envs.roads import FEATURE_NAMES, TURNS, RoadNetwork


def plus_junction(extra_tail=(), extra_head=(), extra_ids=(), extra_lonlat=()):
    """A + junction: centre 0, arms east 1, north 2, west 3, south 4 (~111 m each), two-way residential streets."""
    d = 0.001
    lonlat = [(0, 0), (2 * d, 0), (0, d), (-2 * d, 0), (0, -d), *extra_lonlat]
    tail = [0, 1, 0, 2, 0, 3, 0, 4, *extra_tail]
    head = [1, 0, 2, 0, 3, 0, 4, 0, *extra_head]
    E = len(tail)
    return RoadNetwork.from_edges(np.array([10, 11, 12, 13, 14, *extra_ids]), np.array(lonlat) + [24.9, 60.1], tail,
                                  head, np.full(E, 111.0), ["residential"] * E, np.full(E, np.nan),
                                  np.full(E, np.nan), name="plus")


def test_turns_follow_the_geometry():
    net = plus_junction()
    # arriving from the south (edge 4 -> 0), heading north
    from_south = int(net.edge_between([4], [0])[0])
    turns = {}
    for k in range(net.succ_ptr[from_south], net.succ_ptr[from_south + 1]):
        turns[int(net.node_ids[net.head[net.succ[k]]])] = TURNS[net.turn[k]]
    assert turns == {11: "right", 12: "straight", 13: "left", 14: "uturn"}


def test_features_and_costs_agree_with_the_sparse_feature_matrix():
    net = plus_junction()
    km = net.edge_features[:, FEATURE_NAMES.index("km_residential")]
    np.testing.assert_allclose(km, 0.111)
    np.testing.assert_allclose(net.edge_features[:, FEATURE_NAMES.index("minutes")], 0.111 / 30 * 60)  # default speed
    theta = np.arange(1.0, net.n_features + 1)
    _, trans_cost = net.costs(theta)
    np.testing.assert_allclose(net.transition_features() @ theta, trans_cost)
    route = net.route_edges([14, 10, 13])
    np.testing.assert_allclose(net.route_features(route)[FEATURE_NAMES.index("turn_left")], 1.0)
    assert net.route_nodes(route).tolist() == [14, 10, 13]


def test_parallel_edges_keep_the_shortest_and_self_loops_go():
    d = 0.001
    net = RoadNetwork.from_edges([1, 2], np.array([(0, 0), (d, 0)]) + [24.9, 60.1], [0, 1, 0, 0], [1, 0, 1, 0],
                                 [100.0, 100.0, 60.0, 5.0], ["residential"] * 4, [np.nan] * 4, [np.nan] * 4)
    assert net.n_states == 2 and sorted(net.length_m.tolist()) == [60.0, 100.0]


def test_only_the_largest_strongly_connected_part_is_kept_and_dropped_nodes_are_named():
    net = plus_junction(extra_tail=[1], extra_head=[5], extra_ids=[99], extra_lonlat=[(0.004, 0)])  # one-way dead end
    assert net.n_nodes == 5 and net.dropped_ids.tolist() == [99]
    with pytest.raises(ValidationError, match="node=99: .*no route joins to the main street network"):
        net.node_index([99], field="node")


def test_route_errors_name_the_value():
    net = plus_junction()
    with pytest.raises(ValidationError, match="route: jumps from node 11 to 13"):
        net.route_edges([11, 13])
    with pytest.raises(ValidationError, match="route=12345: not an intersection"):
        net.route_edges([10, 12345])
    with pytest.raises(ValidationError, match="at least 2"):
        net.route_edges([10])
    with pytest.raises(ValidationError, match="expected OSM node ids"):
        net.route_edges(["a", "b"])


@pytest.mark.parametrize("change, message", [
    ({"length_m": [100.0, -1.0]}, "length_m"),
    ({"road_class": ["residential", "footway"]}, "road_class: 'footway'"),
    ({"head": [1]}, "head: 1 values for 2 edges"),
    ({"tail": [0, 7]}, "tail/head"),
    ({"tail": [], "head": [], "length_m": [], "road_class": [], "speed_kmh": [], "lanes": []}, "no drivable roads"),
])
def test_bad_arrays_are_one_line_errors(change, message):
    d = 0.001
    args = dict(node_ids=[1, 2], lonlat=np.array([(0, 0), (d, 0)]) + [24.9, 60.1], tail=[0, 1], head=[1, 0],
                length_m=[100.0, 100.0], road_class=["residential"] * 2, speed_kmh=[np.nan] * 2, lanes=[np.nan] * 2)
    args.update(change)
    with pytest.raises(ValidationError, match=message) as err:
        RoadNetwork.from_edges(**args)
    assert "\n" not in str(err.value)
