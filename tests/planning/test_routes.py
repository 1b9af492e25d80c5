"""Exactness of the MaxEnt route distribution: partition, visits, posterior and sampling against enumeration."""

import itertools

import numpy as np
import pytest

from irlhf.core.errors import ValidationError
from irlhf.envs.roads import FEATURE_NAMES
from irlhf.planning.routes import RouteBatch, RouteCostsTooLow, RouteModel


@pytest.fixture(scope="module")
def grid(road_grid):
    """grid(rows, cols, jitter_m=0): rows x cols residential intersections 110 m apart, two-way streets."""
    return lambda rows, cols, jitter_m=0.0: road_grid(rows, cols, spacing_m=110.0, jitter_m=jitter_m,
                                                      arterial_rows=(), arterial_cols=())


def theta_of(**weights):
    theta = np.zeros(len(FEATURE_NAMES))
    for name, value in weights.items():
        theta[FEATURE_NAMES.index(name)] = value
    return theta


def enumerate_routes(model, origin, destination, max_edges):
    """Every route of at most max_edges edges from origin to destination (passing through allowed), with weight."""
    net = model.net
    routes = []
    stack = [([int(e)], model.edge_weight[e]) for e in net.out_edges[net.out_ptr[origin]:net.out_ptr[origin + 1]]]
    while stack:
        path, w = stack.pop()
        s = path[-1]
        if net.head[s] == destination:
            routes.append((path, w))
        if len(path) < max_edges:
            for k in range(net.succ_ptr[s], net.succ_ptr[s + 1]):
                stack.append((path + [int(net.succ[k])], w * model.M.data[k]))
    return routes


@pytest.fixture(scope="module")
def small(grid):
    net = grid(2, 3, jitter_m=25.0)
    theta = theta_of(minutes=40.0, turn_left=0.5, turn_right=0.3, turn_straight=0.1, turn_uturn=2.0)
    return net, RouteModel(net, theta)


def test_partition_visits_and_features_match_enumeration(small):
    net, model = small
    origin, dest = 0, 5
    routes = enumerate_routes(model, origin, dest, max_edges=10)  # longer routes weigh < 1e-20 of these
    Z = sum(w for _, w in routes)
    visits = np.zeros(net.n_states)
    features = np.zeros(net.n_features)
    for path, w in routes:
        np.add.at(visits, path, w / Z)
        features += w / Z * net.route_features(np.array(path))
    batch = RouteBatch.from_routes(net, [model.best_route(origin, dest)])
    stats = model.statistics(batch, visits=True)
    Zd = model.partition(np.array([dest]))
    assert model.origin_partition(Zd, [origin], [0])[0] == pytest.approx(Z, rel=1e-12)
    np.testing.assert_allclose(stats["visits"], visits, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(stats["expected_features"], features, rtol=1e-8, atol=1e-14)
    # the demo's log-probability is its weight over Z
    best = [w for p, w in routes if p == list(batch.route(0))][0]
    assert stats["log_prob"][0] == pytest.approx(np.log(best / Z), abs=1e-10)


def test_equal_length_routes_are_equally_likely_without_turn_costs(grid):
    net = grid(3, 3)  # every edge 110 m, so cost ~ number of edges
    model = RouteModel(net, theta_of(km_residential=30.0))
    routes = enumerate_routes(model, 0, 8, max_edges=4)  # the C(4, 2) = 6 shortest corner-to-corner routes
    assert len(routes) == 6
    lp = model.log_prob(RouteBatch.from_routes(net, [np.array(p) for p, _ in routes]))
    np.testing.assert_allclose(lp, lp[0], atol=1e-12)
    longer = enumerate_routes(model, 0, 8, max_edges=6)
    lp_long = model.log_prob(RouteBatch.from_routes(net, [np.array(p) for p, _ in longer if len(p) == 6]))
    assert (lp_long < lp[0] - 5).all()


def test_destination_posterior_is_bayes_rule_over_enumerated_routes(small):
    net, model = small
    prefix = model.best_route(0, 5)[:2]
    candidates = np.arange(net.n_nodes)
    post = model.destination_posterior(prefix, candidates, log_prior=np.log(np.arange(1, 7) / 21.0))
    # P(prefix | d) = sum of weights of routes to d starting with the prefix / Z_d(o)
    expected = np.zeros(net.n_nodes)
    for d in range(1, net.n_nodes):
        routes = enumerate_routes(model, 0, d, max_edges=11)
        hit = sum(w for p, w in routes if p[:2] == list(prefix))
        expected[d] = hit / sum(w for _, w in routes) * (d + 1) / 21.0
    np.testing.assert_allclose(post, expected / expected.sum(), rtol=1e-7, atol=1e-14)


def test_sampled_route_frequencies_match_probabilities(small):
    net, model = small
    rng = np.random.default_rng(0)
    samples = model.sample(np.zeros(4000, np.int64), np.full(4000, 5), rng)
    routes = enumerate_routes(model, 0, 5, max_edges=10)
    Z = sum(w for _, w in routes)
    counts = {}
    for r in samples:
        counts[tuple(r)] = counts.get(tuple(r), 0) + 1
    for path, w in sorted(routes, key=lambda pw: -pw[1])[:3]:
        p = w / Z
        assert counts.get(tuple(path), 0) / 4000 == pytest.approx(p, abs=4 * np.sqrt(p * (1 - p) / 4000))
    assert all(net.head[r[-1]] == 5 for r in samples)
    # same seed, same routes
    again = model.sample(np.zeros(4000, np.int64), np.full(4000, 5), np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(samples, again))


def test_best_route_is_the_cheapest_enumerated(small):
    net, model = small
    for o, d in itertools.permutations(range(net.n_nodes), 2):
        routes = enumerate_routes(model, o, d, max_edges=6)
        assert model.best_route(o, d).tolist() == max(routes, key=lambda pw: pw[1])[0]


def test_cheap_loops_are_reported_not_solved(grid):
    net = grid(3, 3)
    with pytest.raises(RouteCostsTooLow, match="loops cost too little"):
        RouteModel(net, theta_of(minutes=0.01)).partition(np.array([4]))


def test_bad_theta_and_same_origin_destination_are_errors(small):
    net, model = small
    with pytest.raises(ValidationError, match="theta"):
        RouteModel(net, np.ones(3))
    with pytest.raises(ValidationError, match="theta"):
        RouteModel(net, np.full(net.n_features, np.nan))
    with pytest.raises(ValidationError, match="equals its destination"):
        model.sample(np.array([2]), np.array([2]), np.random.default_rng(0))


def test_nested_dissection_order_is_a_permutation_and_changes_nothing(road_grid):
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    net = road_grid(6, 7)
    assert np.array_equal(np.sort(net.state_order), np.arange(net.n_states))
    model = RouteModel(net, theta_of(minutes=8.0, turn_left=1.0, turn_uturn=3.0))
    dests = np.array([0, 20, 41])
    b = np.zeros((net.n_states, 3))
    for j, d in enumerate(dests):
        b[net.in_edges[net.in_ptr[d]:net.in_ptr[d + 1]], j] = 1.0
    reference = spla.spsolve((sp.eye(net.n_states) - model.M).tocsc(), b)
    np.testing.assert_allclose(model.partition(dests), reference, rtol=1e-12)
