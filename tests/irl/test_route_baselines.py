"""Route-prediction baselines of Ziebart et al. 2008: shortest routes, max-margin planning, per-turn logit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from irlhf.core.errors import ValidationError
from irlhf.envs.roads import FEATURE_NAMES
from irlhf.irl.route_baselines import (
    TURN_FEATURE_NAMES,
    MMPConfig,
    TurnConfig,
    TurnModel,
    choice_sets,
    shortest_route,
    shortest_theta,
    train_mmp,
    train_turn_model,
)
from irlhf.planning.route_drivers import DRIVER_TYPES, sample_od_pairs, synthetic_routes
from irlhf.planning.routes import RouteBatch, RouteModel


@pytest.fixture(scope="module")
def grid(small_grid):
    return small_grid


@pytest.fixture(scope="module")
def commuter_routes(grid):
    batch, od, theta = synthetic_routes(grid, 150, driver="commuter", seed=1, min_km=0.5)
    return batch, od, theta


# -- shortest routes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("by, column", [("time", "minutes"), ("length", None)])
def test_shortest_route_matches_node_graph_dijkstra(grid, by, column):
    weight = grid.length_m / 1000 if column is None else grid.edge_features[:, FEATURE_NAMES.index(column)]
    dist = dijkstra(sp.csr_array((weight, (grid.tail, grid.head)), shape=(grid.n_nodes,) * 2))
    for o, d in sample_od_pairs(grid, 20, 0, min_km=0.3):
        route = shortest_route(grid, o, d, by=by)
        assert grid.tail[route[0]] == o and grid.head[route[-1]] == d
        assert weight[route].sum() == pytest.approx(dist[o, d], rel=1e-9)


def test_shortest_theta_and_bad_by():
    assert shortest_theta("time")[FEATURE_NAMES.index("minutes")] == 1 and shortest_theta("time").sum() == 1
    assert shortest_theta("length").sum() == 7  # one per road class
    with pytest.raises(ValidationError, match=r"by='distance': expected 'time' or 'length'"):
        shortest_theta("distance")


# -- max-margin planning -----------------------------------------------------------------------------
def test_mmp_recovers_costs_whose_best_routes_are_the_demonstrations(grid):
    hidden = RouteModel(grid, DRIVER_TYPES["commuter"])
    od = sample_od_pairs(grid, 15, 3, min_km=0.5)
    demos = [hidden.best_route(o, d) for o, d in od]
    result = train_mmp(grid, RouteBatch.from_routes(grid, demos),
                       MMPConfig(margin_per_km=0.2, step_size=3.0, max_iter=300))
    assert (result.theta >= 0).all() and result.theta.any()
    assert len(result.history) == 300 and result.objective == min(h["objective"] for h in result.history)
    learned = RouteModel(grid, result.theta)
    assert all(np.array_equal(learned.best_route(o, d), r) for (o, d), r in zip(od, demos))


def test_mmp_hinge_is_the_missed_margin(grid):
    hidden = RouteModel(grid, DRIVER_TYPES["cautious"])
    od = sample_od_pairs(grid, 8, 5, min_km=0.5)
    demos = [hidden.best_route(o, d) for o, d in od]
    batch = RouteBatch.from_routes(grid, demos)
    # demonstrations that are the unique cheapest routes, with theta scaled up: every margin is met, hinge 0
    won = train_mmp(grid, batch, MMPConfig(margin_per_km=0.2, max_iter=1), theta0=50 * DRIVER_TYPES["cautious"])
    assert won.history[0]["hinge"] == 0 and won.history[0]["matched"] == 1
    # at theta = 0 the best loss-augmented path avoids the demonstration: hinge = margin * its km (such a path
    # exists for each of these pairs: removing the demonstrated edges leaves the destination reachable)
    for r, (o, d) in zip(demos, od):
        keep = ~np.isin(np.arange(grid.n_states), r)
        G = sp.csr_array((np.ones(keep.sum()), (grid.tail[keep], grid.head[keep])), shape=(grid.n_nodes,) * 2)
        assert np.isfinite(dijkstra(G, indices=o)[d])
    cold = train_mmp(grid, batch, MMPConfig(margin_per_km=1.5, max_iter=1))
    km = np.mean([grid.length_m[r].sum() / 1000 for r in demos])
    assert cold.history[0]["hinge"] == pytest.approx(1.5 * km, rel=1e-9)


def test_mmp_config_and_input_errors(grid):
    with pytest.raises(ValidationError, match=r"l2=0: expected > 0"):
        MMPConfig(l2=0)
    with pytest.raises(ValidationError, match=r"margin_per_km=-1: expected >= 0"):
        MMPConfig(margin_per_km=-1)
    with pytest.raises(ValidationError, match=r"batch='list': expected a RouteBatch"):
        train_mmp(grid, [np.array([0])])
    batch = RouteBatch.from_routes(grid, [shortest_route(grid, 0, 4)])
    with pytest.raises(ValidationError, match=r"theta0=\[1.0, -1.0\]: expected 13 finite cost weights >= 0"):
        train_mmp(grid, batch, theta0=[1.0, -1.0])


# -- per-turn action model ---------------------------------------------------------------------------
def test_choice_probabilities_sum_to_one_at_every_decision(grid, commuter_routes):
    model = train_turn_model(grid, commuter_routes[0])
    E = grid.n_states
    for d in (0, 7, 19):
        states = np.concatenate([[-1], np.arange(E)])
        nodes = np.concatenate([[3], grid.head])
        sets, p = model.choice_probabilities(states, nodes, np.full(E + 1, d))
        assert np.allclose(np.add.reduceat(p, sets.ptr[:-1]), 1.0, atol=1e-12)
        stop_at = sets.segment[sets.candidate < 0]  # decisions offering "stop": exactly the edges entering d
        assert np.array_equal(np.sort(states[stop_at]), np.sort(grid.in_edges[grid.in_ptr[d]:grid.in_ptr[d + 1]]))
        assert np.array_equal(sets.candidate[sets.ptr[0]:sets.ptr[1]], grid.out_edges[grid.out_ptr[3]:grid.out_ptr[4]])


def test_choice_features_are_local_and_destination_aware(grid):
    e = int(np.flatnonzero((grid.tail == 0) & (grid.head == 1))[0])  # 1000 -> 1001, heading east
    sets = choice_sets(grid, [e], [1], [4])  # destination 1004, further east on the same street
    X = sets.X[sets.candidate >= 0]
    cand = sets.candidate[sets.candidate >= 0]
    east = int(np.flatnonzero(grid.head[cand] == 2)[0])
    col = {name: k for k, name in enumerate(TURN_FEATURE_NAMES)}
    assert np.array_equal(X[:, :9], grid.edge_features[cand])
    turns = X[:, col["turn_left"]:col["turn_uturn"] + 1]
    assert X[east, col["turn_straight"]] == 1 and (turns.sum(axis=1) == 1).all()
    progress = (np.linalg.norm(grid.xy[4] - grid.xy[1]) - np.linalg.norm(grid.xy[4] - grid.xy[2])) / 1000
    assert X[east, col["progress_km"]] == pytest.approx(progress)
    assert X[east, col["heading_error_rad"]] < 0.3 and X[:, col["heading_error_rad"]].max() > 2.5  # the U-turn
    assert (sets.candidate >= 0).all()  # node 1001 is not the destination: no stop


def _reference_log_prob(model: TurnModel, route: np.ndarray) -> float:
    """One decision at a time, with a plain softmax per decision."""
    net, d = model.net, int(model.net.head[route[-1]])
    total, state, node = 0.0, -1, int(net.tail[route[0]])
    for nxt in [*route.tolist(), -1]:
        sets = choice_sets(net, [state], [node], [d])
        z = sets.X @ model.weights
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        total += np.log(p[list(sets.candidate).index(nxt)])
        if nxt >= 0:
            state, node = nxt, int(net.head[nxt])
    return total


def test_turn_model_log_prob_matches_a_decision_by_decision_reference(grid, commuter_routes):
    batch = commuter_routes[0]
    model = train_turn_model(grid, batch)
    assert model.weights.shape == (len(TURN_FEATURE_NAMES),) and model.converged
    got = model.log_prob(batch)
    want = [_reference_log_prob(model, batch.route(i)) for i in range(10)]
    assert np.allclose(got[:10], want, atol=1e-10)
    assert -got.mean() == pytest.approx(model.nll, rel=1e-9)


def test_turn_model_fit_is_optimal_and_beats_uniform_choices(grid, commuter_routes):
    batch = commuter_routes[0]
    config = TurnConfig(l2=1e-3)
    model = train_turn_model(grid, batch, config)

    def J(w):
        return -TurnModel(grid, w).log_prob(batch).mean() + 0.5 * config.l2 * w @ w

    rng = np.random.default_rng(0)
    for _ in range(5):
        step = 1e-3 * rng.standard_normal(len(model.weights))
        assert J(model.weights) <= J(model.weights + step) + 1e-10
    assert model.nll < -TurnModel(grid, np.zeros(len(TURN_FEATURE_NAMES))).log_prob(batch).mean() - 1.0


def _simple_routes(net, o, d):
    """Every route from o to d that visits no node twice (depth-first)."""
    out, stack = [], [(o, [])]
    while stack:
        node, edges = stack.pop()
        seen = {int(net.tail[e]) for e in edges} | {node}
        for e in net.out_edges[net.out_ptr[node]:net.out_ptr[node + 1]].tolist():
            v = int(net.head[e])
            if v == d:
                out.append(np.array(edges + [e]))
            elif v not in seen:
                stack.append((v, edges + [e]))
    return out


def test_turn_model_best_route_is_the_most_likely_route(commuter_routes, road_grid):
    small = road_grid(3, 3, seed=2)
    batch, _, _ = synthetic_routes(small, 60, driver="cautious", seed=3, min_km=0.3)
    model = train_turn_model(small, batch)
    for o, d in [(0, 8), (2, 6), (1, 7)]:
        best = model.best_route(o, d)
        assert small.tail[best[0]] == o and small.head[best[-1]] == d
        candidates = _simple_routes(small, o, d)
        lp = model.log_prob(RouteBatch.from_routes(small, candidates))
        best_lp = model.log_prob(RouteBatch.from_routes(small, [best]))[0]
        assert best_lp >= lp.max() - 1e-9
        assert any(np.array_equal(best, c) for c in candidates)


def test_turn_model_errors(grid):
    with pytest.raises(ValidationError, match=r"l2=-1: expected >= 0"):
        TurnConfig(l2=-1)
    bad = RouteBatch(edges=np.array([0, 0]), ptr=np.array([0, 2]), origins=grid.tail[[0]],
                     destinations=grid.head[[0]])
    with pytest.raises(ValidationError, match=r"route 0: edge 1 is not a successor of the edge before it"):
        train_turn_model(grid, bad)
