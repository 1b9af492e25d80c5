"""Route-prediction metrics (irlhf.eval.routes): distance matched, the paper's table scores, destination
prediction from partial routes."""

from __future__ import annotations

import numpy as np
import pytest

from irlhf.core.errors import ValidationError
from irlhf.envs.roads import DEFAULT_SPEED_KMH, FEATURE_NAMES, ROAD_CLASSES
from irlhf.eval.routes import (
    cost_correlation,
    destination_accuracy,
    plot_destination_accuracy,
    prefix_lengths,
    route_match,
    route_metrics,
    weights_cosine,
)
from irlhf.planning.route_drivers import DRIVER_TYPES, synthetic_routes
from irlhf.planning.routes import RouteModel


@pytest.fixture(scope="module")
def grid(small_grid):
    return small_grid


def _route(net, *nodes):
    return net.route_edges([1000 + v for v in nodes])


# -- distance matched --------------------------------------------------------------------------------
def test_route_match_is_the_shared_fraction_of_true_distance(grid):
    true = _route(grid, 0, 1, 2, 7)  # east, east, north
    L = grid.length_m[true]
    assert route_match(grid, true, true) == 1.0
    other = _route(grid, 0, 5, 6, 7)  # no edge in common
    assert route_match(grid, other, true) == 0.0
    partial = _route(grid, 0, 1, 6, 7)  # shares the first edge only
    assert route_match(grid, partial, true) == pytest.approx(L[0] / L.sum(), rel=1e-15)
    back = _route(grid, 7, 2, 1, 0)  # the same streets driven the other way: directed edges do not match
    assert route_match(grid, back, true) == 0.0
    with pytest.raises(ValidationError, match=r"true_edges: empty"):
        route_match(grid, true, [])


def test_route_metrics_on_hand_made_routes(grid):
    t0, t1, t2 = _route(grid, 0, 1, 2, 7), _route(grid, 0, 1, 2, 3, 4), _route(grid, 5, 6, 7, 8)
    p0, p1, p2 = t0, _route(grid, 0, 1, 2, 3, 8, 9, 4), _route(grid, 5, 10, 11, 12, 13, 8)
    m1 = grid.length_m[t1[:3]].sum() / grid.length_m[t1].sum()  # 3 of 4 edges matched
    metrics = route_metrics(grid, [p0, p1, p2], [t0, t1, t2], log_probs=np.array([-1.0, -2.0, -6.0]))
    assert metrics["n"] == 3
    assert metrics["exact_match"] == pytest.approx(100 / 3)
    assert metrics["matched_90"] == pytest.approx(100 / 3)  # m1 is about 0.75
    assert metrics["mean_match"] == pytest.approx(100 * (1 + m1 + 0) / 3)
    assert metrics["mean_log_prob"] == pytest.approx(-3.0)
    assert route_match(grid, p1, t1) == pytest.approx(m1)
    assert "mean_log_prob" not in route_metrics(grid, [p0], [t0])


def test_route_metrics_errors(grid):
    t = _route(grid, 0, 1)
    with pytest.raises(ValidationError, match=r"predicted: 2 routes for 1 true routes"):
        route_metrics(grid, [t, t], [t])
    with pytest.raises(ValidationError, match=r"log_probs: shape \(2,\); expected \(1,\)"):
        route_metrics(grid, [t], [t], log_probs=[0.0, 1.0])
    with pytest.raises(ValidationError, match=r"true: no routes"):
        route_metrics(grid, [], [])


def test_weights_cosine():
    assert weights_cosine([1.0, 2.0], [2.0, 4.0]) == pytest.approx(1.0)
    assert weights_cosine([1.0, 0.0], [0.0, 3.0]) == 0.0
    assert weights_cosine(DRIVER_TYPES["commuter"], DRIVER_TYPES["commuter"] / 7) == pytest.approx(1.0)
    with pytest.raises(ValidationError, match=r"weights: \[0.0, 0.0\]; expected finite, non-zero vectors"):
        weights_cosine([0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValidationError, match=r"shapes \(2,\) and \(3,\)"):
        weights_cosine([1.0, 0.0], [1.0, 1.0, 1.0])


# -- destination prediction --------------------------------------------------------------------------
def test_prefix_lengths_cover_the_fraction_of_distance(grid):
    route = _route(grid, 0, 1, 2, 3, 4)
    cum = np.cumsum(grid.length_m[route]) / grid.length_m[route].sum()
    got = prefix_lengths(grid, route, [0.01, cum[0], cum[0] + 1e-6, cum[2], 1.0])
    assert got.tolist() == [1, 1, 2, 3, 4]


def test_destination_accuracy_matches_the_route_models_posterior(grid):
    batch, _, theta = synthetic_routes(grid, 12, driver="commuter", seed=2, min_km=0.5)
    model = RouteModel(grid, theta)
    routes = [batch.route(i) for i in range(len(batch))]
    candidates = np.unique(np.concatenate([batch.destinations, [0, 19]]))
    prior = np.log(np.linspace(1, 2, len(candidates)))
    fractions = (0.25, 0.5, 0.75, 1.0)
    got = destination_accuracy(model, routes, candidates, fractions, log_prior=prior)
    correct = np.zeros(4)
    prob = np.zeros(4)
    for r in routes:  # the posterior of each prefix, one at a time
        true = int(np.flatnonzero(candidates == grid.head[r[-1]])[0])
        for k, c in enumerate(prefix_lengths(grid, r, fractions)):
            post = model.destination_posterior(r[:c], candidates, prior)
            correct[k] += post.argmax() == true
            prob[k] += post[true]
    assert np.allclose(got["accuracy"], correct / len(routes), atol=1e-12)
    assert np.allclose(got["mean_prob"], prob / len(routes), atol=1e-12)
    assert got["mean_prob"][-1] > got["mean_prob"][0]  # the more of the route seen, the surer the guess


def test_destination_accuracy_errors(grid):
    model = RouteModel(grid, DRIVER_TYPES["commuter"])
    route = _route(grid, 0, 1, 2)
    with pytest.raises(ValidationError, match=r"routes\[0\]: destination 1002 is not among the candidates"):
        destination_accuracy(model, [route], np.array([5, 6]))
    with pytest.raises(ValidationError, match=r"fractions=\[0.0, 0.5\]: expected fractions of the route in \(0, 1\]"):
        destination_accuracy(model, [route], np.array([2]), fractions=[0.0, 0.5])
    with pytest.raises(ValidationError, match=r"log_prior: shape \(3,\); expected \(1,\)"):
        destination_accuracy(model, [route], np.array([2]), log_prior=np.zeros(3))


def test_plot_destination_accuracy_writes_a_png(tmp_path):
    path = plot_destination_accuracy({"maxent": ([0.1, 0.5, 0.9], [0.1, 0.4, 0.8]),
                                      "turn model": ([0.1, 0.5, 0.9], [0.05, 0.2, 0.5])}, tmp_path / "dest.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["dest.png"]
    with pytest.raises(ValidationError, match=r"curves: none given"):
        plot_destination_accuracy({}, tmp_path / "x.png")
    with pytest.raises(ValidationError, match=r"curves\['a'\]: 2 fractions and 3 accuracies"):
        plot_destination_accuracy({"a": ([0.1, 0.2], [0.1, 0.2, 0.3])}, tmp_path / "x.png")


def test_cost_correlation_sees_equal_costs_where_cosine_does_not(grid):
    """Minutes-only weights and per-class km weights that price every edge alike (speeds at class defaults)."""
    net = grid
    minutes = np.zeros(len(FEATURE_NAMES))
    minutes[FEATURE_NAMES.index("minutes")] = 5.0
    per_km = np.zeros(len(FEATURE_NAMES))
    for k, cls in enumerate(ROAD_CLASSES):
        per_km[k] = 5.0 * 60.0 / DEFAULT_SPEED_KMH[cls]  # 5 nats/min = 300 / speed nats/km
    np.testing.assert_allclose(net.costs(minutes)[1], net.costs(per_km)[1], rtol=1e-12)
    assert cost_correlation(net, minutes, per_km) == pytest.approx(1.0)
    assert weights_cosine(minutes, per_km) < 0.5
    assert np.isnan(cost_correlation(net, minutes, np.zeros(len(FEATURE_NAMES))))
