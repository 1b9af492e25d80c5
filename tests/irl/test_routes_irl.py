"""MaxEnt route IRL: exact gradient, recovery of the cost weights that generated the routes, errors."""

import numpy as np
import pytest

from irlhf.core.errors import ValidationError
from irlhf.envs.roads import FEATURE_NAMES
from irlhf.irl.routes import Config, initial_theta, objective, train
from irlhf.planning.routes import RouteBatch, RouteModel

@pytest.fixture(scope="module")
def city(road_grid):
    """A 4 x 5 grid (primary row and column, residential elsewhere) with varied speed limits, and hidden weights."""
    net = road_grid(4, 5, varied_speeds=True)
    theta = np.zeros(net.n_features)
    for name, w in {"minutes": 6.0, "km_residential": 4.0, "turn_left": 0.8, "turn_right": 0.3,
                    "turn_uturn": 2.0}.items():
        theta[FEATURE_NAMES.index(name)] = w
    return net, theta


def test_gradient_is_empirical_minus_expected_counts_and_matches_finite_differences(city):
    net, theta = city
    rng = np.random.default_rng(0)
    o, d = rng.integers(0, net.n_nodes, (2, 60))
    keep = o != d
    batch = RouteBatch.from_routes(net, RouteModel(net, theta).sample(o[keep], d[keep], rng))
    empirical = batch.features(net).mean(axis=0)
    at = theta * 0.7 + 0.2
    f, g = objective(net, batch, at, empirical, l2=0.01)
    h = 1e-6
    for k in range(net.n_features):
        e = np.zeros(net.n_features)
        e[k] = h
        numeric = (objective(net, batch, at + e, empirical, 0.01)[0] - objective(net, batch, at - e, empirical,
                                                                                   0.01)[0]) / (2 * h)
        assert g[k] == pytest.approx(numeric, abs=1e-6)


def test_recovers_the_hidden_weights_from_their_own_routes(city):
    net, theta = city
    rng = np.random.default_rng(1)
    o, d = rng.integers(0, net.n_nodes, (2, 3000))
    keep = o != d
    routes = RouteModel(net, theta).sample(o[keep], d[keep], rng)
    result = train(net, routes, Config(max_iter=400))
    assert result.converged
    # KKT: moments matched where theta > 0; where theta = 0 the demos use the feature at least as much as the model
    free = result.theta > 1e-8
    np.testing.assert_allclose(result.expected[free], result.empirical[free], atol=1e-6)
    assert (result.empirical[~free] - result.expected[~free] >= -1e-6).all()
    cosine = result.theta @ theta / np.linalg.norm(result.theta) / np.linalg.norm(theta)
    assert cosine > 0.98
    # nll at the optimum is no worse than at the generating weights
    batch = RouteBatch.from_routes(net, routes)
    assert result.nll <= objective(net, batch, theta, batch.features(net).mean(0))[0] + 1e-9


def test_starting_point_converges_whatever_the_edge_lengths(city):
    net, _ = city
    theta = initial_theta(net)
    edge_cost, trans_cost = net.costs(theta)
    assert np.median(edge_cost) == pytest.approx(0.5)
    # turn costs alone keep every state's outgoing weights below 1 (up to 6 exits), so the series converges
    out_weight = np.bincount(net.transition_rows, np.exp(-trans_cost), minlength=net.n_states)
    assert out_weight.max() < 1.0


def test_bad_starting_weights_are_errors(city):
    net, theta = city
    routes = [RouteModel(net, theta).best_route(0, 7)]
    with pytest.raises(ValidationError, match="theta0"):
        train(net, routes, theta0=-theta)
    with pytest.raises(ValidationError, match="diverges"):
        train(net, routes, theta0=theta * 1e-4)
    with pytest.raises(ValidationError, match="max_iter"):
        Config(max_iter=0)
