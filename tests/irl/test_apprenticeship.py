import numpy as np
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.data import Trajectory
from irlhf.envs.tabular import gridworld, random_mdp, sample_trajectories
from irlhf.eval import policy_value
from irlhf.irl import apprenticeship
from irlhf.planning import occupancy_measure, value_iteration

METHODS = ["projection", "max_margin"]


def optimal_expert(mdp, reward, horizon, state_action=False):
    _, _, pi = value_iteration(mdp, reward, horizon=horizon)
    return pi, occupancy_measure(mdp, pi, horizon=horizon, state_action=state_action)


def known_w_problem(seed=0):
    """A random MDP whose expert is hard-optimal for a known unit w*; its exact occupancy is the input."""
    mdp = random_mdp(12, 3, 3, seed=seed, discount=0.9, n_features=4)
    w_star = np.array([1.0, -0.5, 0.3, 0.8]) / np.linalg.norm([1.0, -0.5, 0.3, 0.8])
    pi_E, rho_E = optimal_expert(mdp, mdp.features @ w_star, horizon=8)
    return mdp, w_star, pi_E, rho_E


# ---------------------------------------------------------------- the QPs


def test_closest_mixture_on_known_geometry():
    mus = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    # above the hypotenuse's midpoint: the closest point is (1, 1), half and half of the last two
    np.testing.assert_allclose(apprenticeship.closest_mixture(np.array([1.5, 1.5]), mus), [0, 0.5, 0.5], atol=1e-12)
    # beyond a vertex: all weight on it
    np.testing.assert_allclose(apprenticeship.closest_mixture(np.array([3.0, -1.0]), mus), [0, 1, 0], atol=1e-12)
    # inside the hull: reproduced exactly, barycentric weights
    lam = apprenticeship.closest_mixture(np.array([0.5, 0.5]), mus)
    np.testing.assert_allclose(lam @ mus, [0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(lam, [0.5, 0.25, 0.25], atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_max_margin_qp_meets_its_dual(seed):
    # strong duality: max_{||w|| <= 1} min_j w . (mu_E - mu_j) = distance from mu_E to the hull of the mus
    rng = np.random.default_rng(seed)
    mus = rng.standard_normal((7, 4))
    mu_E = rng.standard_normal(4) * 3
    w, t = apprenticeship.max_margin_weights(mu_E, mus)
    lam = apprenticeship.closest_mixture(mu_E, mus)
    assert np.linalg.norm(w) <= 1 + 1e-12
    assert t == pytest.approx(float(np.min((mu_E - mus) @ w)))
    assert t == pytest.approx(np.linalg.norm(mu_E - lam @ mus), abs=1e-9)
    assert lam.min() >= 0 and lam.sum() == pytest.approx(1.0)


def test_max_margin_qp_is_zero_inside_the_hull():
    mus = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    w, t = apprenticeship.max_margin_weights(np.array([0.2, 0.3]), mus)
    assert t == 0.0 and not np.any(w)


# ---------------------------------------------------------------- exact small cases


@pytest.mark.parametrize("method", METHODS)
def test_known_w_expert_is_matched_by_a_mixture(method):
    mdp, _, _, rho_E = known_w_problem()
    eps = 1e-3
    result = apprenticeship.train(mdp, rho_E, apprenticeship.Config(method=method, epsilon=eps, horizon=8,
                                                                    initial="mdp", max_iter=200))
    assert result.converged and result.margin <= eps
    assert result.history[-1]["t"] == result.margin
    lam = result.mixture
    assert lam.shape == (len(result.policies),) and lam.min() >= 0 and lam.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(result.mu_mixture, lam @ result.mus)
    assert np.linalg.norm(result.mu_mixture - result.mu_E) <= eps + 1e-12
    assert np.linalg.norm(result.weights) <= 1 + 1e-12
    np.testing.assert_allclose(result.reward, mdp.features @ result.weights)
    # every recorded mu is the exact feature expectation of its policy
    for pi, mu in zip(result.policies, result.mus):
        np.testing.assert_allclose(occupancy_measure(mdp, pi, horizon=8) @ mdp.features, mu, atol=1e-12)
    np.testing.assert_allclose(result.mu_pi, result.mus[np.argmin(np.linalg.norm(result.mus - result.mu_E, axis=1))])


@pytest.mark.parametrize("seed", [1, 2])
def test_projection_and_max_margin_agree_on_the_final_gap(seed):
    mdp, w_star, pi_E, rho_E = known_w_problem(seed)
    eps = 1e-2
    gaps, values = {}, {}
    for method in METHODS:
        config = apprenticeship.Config(method=method, epsilon=eps, horizon=8, initial="mdp", max_iter=300)
        result = apprenticeship.train(mdp, rho_E, config)
        assert result.converged
        gaps[method] = np.linalg.norm(result.mu_mixture - result.mu_E)
        values[method] = result.mixture @ result.mus @ w_star  # the mixture's value under w*
    assert abs(gaps["projection"] - gaps["max_margin"]) <= eps
    expert_value = policy_value(mdp, pi_E, mdp.features @ w_star, horizon=8)
    for value in values.values():  # |w* . (mu_mix - mu_E)| <= ||w*|| ||mu_mix - mu_E|| <= eps
        assert abs(value - expert_value) <= eps + 1e-12


@pytest.mark.parametrize("method", METHODS)
def test_margin_never_increases(method):
    mdp, _, _, rho_E = known_w_problem(2)
    result = apprenticeship.train(mdp, rho_E, apprenticeship.Config(method=method, epsilon=1e-3, horizon=8,
                                                                    initial="mdp", max_iter=200))
    t = np.array([h["t"] for h in result.history])
    assert np.all(np.diff(t) <= 1e-9)  # max-margin: more constraints; projection: a closer mu_bar


def test_max_margin_margin_is_the_distance_to_the_mixture():
    mdp, _, _, rho_E = known_w_problem(1)
    result = apprenticeship.train(mdp, rho_E, apprenticeship.Config(method="max_margin", epsilon=1e-2, horizon=8,
                                                                    initial="mdp"))
    assert result.margin == pytest.approx(np.linalg.norm(result.mu_mixture - result.mu_E), abs=1e-9)


def test_state_action_features_and_infinite_horizon():
    mdp = random_mdp(8, 2, 3, seed=3, discount=0.8)
    phi = np.random.default_rng(3).standard_normal((8, 2, 3))
    _, rho_sa = optimal_expert(mdp, phi @ np.array([0.6, -0.8, 0.0]), horizon=None, state_action=True)
    for method in METHODS:
        config = apprenticeship.Config(method=method, epsilon=1e-3, infinite_horizon=True, initial="mdp")
        result = apprenticeship.train(mdp, rho_sa, config, features=phi)
        assert result.converged and np.linalg.norm(result.mu_mixture - result.mu_E) <= 1e-3 + 1e-12
        assert result.reward.shape == (8, 2) and result.policy.shape == (8, 2)


def test_same_seed_same_result_and_seed_changes_the_start():
    mdp, _, _, rho_E = known_w_problem(2)
    runs = [apprenticeship.train(mdp, rho_E, apprenticeship.Config(horizon=8, initial="mdp", seed=s)) for s in (0, 0, 5)]
    np.testing.assert_array_equal(runs[0].mus, runs[1].mus)
    assert not np.array_equal(runs[0].mus[0], runs[2].mus[0])


# ---------------------------------------------------------------- the gridworld


@pytest.mark.parametrize("method", METHODS)
def test_macrocell_gridworld_reaches_the_experts_value(method):
    mdp = gridworld(16, macrocell=4, slip=0.3, discount=0.9)
    horizon = 20
    pi_E, _ = optimal_expert(mdp, mdp.true_reward, horizon)
    demos = sample_trajectories(mdp, pi_E, n=64, horizon=horizon, seed=1)
    result = apprenticeship.train(mdp, demos, apprenticeship.Config(method=method, epsilon=0.1, max_iter=50))
    assert result.converged
    assert result.policy.shape == (horizon, 256, 5)
    expert = policy_value(mdp, pi_E, mdp.true_reward, horizon)
    assert policy_value(mdp, result.policy, mdp.true_reward, horizon) >= 0.95 * expert
    mixture = sum(lam * policy_value(mdp, pi, mdp.true_reward, horizon)
                  for lam, pi in zip(result.mixture, result.policies))
    assert mixture >= 0.95 * expert


def test_unreachable_expert_stalls_or_stops_without_converging():
    # a handful of noisy demos: mu_E lies outside every policy's reach; epsilon tiny
    mdp = gridworld(8, macrocell=4, slip=0.3, discount=0.9)
    pi_E, _ = optimal_expert(mdp, mdp.true_reward, 10)
    demos = sample_trajectories(mdp, pi_E, n=3, horizon=10, seed=0)
    for method in METHODS:
        result = apprenticeship.train(mdp, demos, apprenticeship.Config(method=method, epsilon=1e-6, max_iter=40))
        assert not result.converged and result.margin > 1e-6
        assert len(result.history) <= 41


# ---------------------------------------------------------------- bad input


def small_mdp():
    return random_mdp(5, 2, 2, seed=0, n_features=3)


@pytest.mark.parametrize(
    "demos, match",
    [
        ([], "empty"),
        ([Trajectory(obs=np.array([0, 7, 1]), acts=np.array([0, 1]))], r"obs: id 7 out of range"),
        ([Trajectory(obs=np.array([0, 1, 1]), acts=np.array([0, 2]))], r"acts: id 2 out of range"),
        ([Trajectory(obs=np.array([0, 1, 1]), acts=np.array([0, 1])),
          Trajectory(obs=np.array([0, 1]), acts=np.array([0]))], "differ"),
        (np.full(4, 0.25), "occupancy of shape"),
        (np.array([1.0, np.nan, 0, 0, 0]), "finite"),
    ],
)
def test_bad_demonstrations_raise(demos, match):
    with pytest.raises(IrlhfError, match=match):
        apprenticeship.train(small_mdp(), demos)


def test_unknown_horizon_and_bad_features_raise():
    mdp = small_mdp()
    with pytest.raises(IrlhfError, match="horizon: unknown"):
        apprenticeship.train(mdp, np.full(5, 0.2))
    demos = [Trajectory(obs=np.array([0, 1, 1]), acts=np.array([0, 1]))]
    with pytest.raises(IrlhfError, match="features: shape"):
        apprenticeship.train(mdp, demos, features=np.zeros((4, 3)))


@pytest.mark.parametrize("field, value", [("method", "svm"), ("epsilon", 0.0), ("epsilon", float("nan")),
                                          ("max_iter", 0), ("horizon", 0), ("initial", "uniform"),
                                          ("seed", -1), ("infinite_horizon", "yes")])
def test_bad_config_raises(field, value):
    with pytest.raises(IrlhfError, match=field):
        apprenticeship.Config(**{field: value})
