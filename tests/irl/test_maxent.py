import numpy as np
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.data import Trajectory
from irlhf.envs.tabular import TabularMDP, objectworld, random_mdp, sample_trajectories
from irlhf.eval import expected_value_difference
from irlhf.irl import maxent
from irlhf.planning import occupancy_measure, soft_value_iteration


def expert_occupancy(mdp, reward, horizon, state_action=False):
    _, _, pi = soft_value_iteration(mdp, reward, horizon=horizon)
    return occupancy_measure(mdp, pi, horizon=horizon, state_action=state_action)


@pytest.mark.parametrize("horizon", [6, None])
@pytest.mark.parametrize("state_action", [False, True])
def test_gradient_matches_finite_differences(horizon, state_action):
    mdp = random_mdp(9, 3, 3, seed=1, discount=0.8)
    rng = np.random.default_rng(1)
    phi = rng.standard_normal((9, 3, 4) if state_action else (9, 4))
    mu_E = rng.standard_normal(4)
    w = rng.standard_normal(4) * 0.5
    g, grad, *_ = maxent.objective_and_gradient(mdp, phi, mu_E, w, horizon, l2=0.3)
    eps = 1e-6
    numeric = np.array([
        (maxent.objective_and_gradient(mdp, phi, mu_E, w + eps * e, horizon, l2=0.3)[0]
         - maxent.objective_and_gradient(mdp, phi, mu_E, w - eps * e, horizon, l2=0.3)[0]) / (2 * eps)
        for e in np.eye(4)
    ])
    np.testing.assert_allclose(grad, numeric, atol=1e-7)


def test_two_state_mdp_recovers_known_weight():
    # 2 states, stay/switch, one feature "in state 0": the expert's exact occupancy pins w
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[1, 0, 1] = P[0, 1, 1] = P[1, 1, 0] = 1.0
    mdp = TabularMDP(P, np.array([[1.0], [0.0]]), np.array([0.5, 0.5]), discount=0.9)
    w_star = np.array([1.3])
    rho_E = expert_occupancy(mdp, mdp.features @ w_star, horizon=5)
    result = maxent.train(mdp, rho_E, maxent.Config(horizon=5, l2=0.0, initial="mdp"))
    np.testing.assert_allclose(result.weights, w_star, atol=1e-5)
    assert result.converged


@pytest.mark.parametrize("horizon", [7, None])
def test_exact_expert_gives_zero_feature_gap_and_recovers_reward(horizon):
    mdp = random_mdp(12, 3, 4, seed=2, discount=0.9, n_features=4)
    w_star = np.array([1.0, -0.5, 0.3, 0.8])
    rho_E = expert_occupancy(mdp, mdp.features @ w_star, horizon=horizon)
    config = maxent.Config(horizon=horizon, infinite_horizon=horizon is None, l2=0.0, tol=1e-9, initial="mdp")
    result = maxent.train(mdp, rho_E, config)
    assert np.abs(result.mu_E - result.mu_pi).max() < 1e-7
    np.testing.assert_allclose(result.weights, w_star, atol=1e-4)  # 4 generic features: identifiable


def test_state_action_features_recover_weights():
    mdp = random_mdp(8, 2, 3, seed=3, discount=0.9)
    phi = np.random.default_rng(3).standard_normal((8, 2, 3))
    w_star = np.array([0.7, -1.2, 0.4])
    rho_sa = expert_occupancy(mdp, phi @ w_star, horizon=6, state_action=True)
    result = maxent.train(mdp, rho_sa, maxent.Config(horizon=6, l2=0.0, tol=1e-9, initial="mdp"), features=phi)
    np.testing.assert_allclose(result.weights, w_star, atol=1e-4)
    assert result.reward.shape == (8, 2)


def test_adam_reaches_the_lbfgs_optimum():
    mdp = random_mdp(10, 3, 3, seed=4, discount=0.9, n_features=3)
    rho_E = expert_occupancy(mdp, mdp.features @ np.array([0.5, -0.5, 1.0]), horizon=5)
    lbfgs = maxent.train(mdp, rho_E, maxent.Config(horizon=5, initial="mdp", l2=0.1))
    adam = maxent.train(mdp, rho_E, maxent.Config(horizon=5, initial="mdp", l2=0.1, optimizer="adam",
                                                  max_iter=3000, lr=0.02, tol=1e-7))
    np.testing.assert_allclose(adam.weights, lbfgs.weights, atol=1e-4)


def test_demonstrations_give_higher_likelihood_than_start_and_history_is_logged():
    mdp = objectworld(12, seed=0)
    _, _, pi = soft_value_iteration(mdp, mdp.true_reward, horizon=8)
    demos = sample_trajectories(mdp, pi, n=64, horizon=8, seed=0)
    result = maxent.train(mdp, demos)
    assert result.converged
    assert result.history[-1]["objective"] > result.history[0]["objective"]
    uniform_ll = 8 * np.log(1 / 5)
    assert result.history[-1]["demo_log_likelihood"] > uniform_ll
    assert result.policy.shape == (8, 144, 5)


def test_evd_falls_as_demonstrations_grow():
    evd = {4: [], 128: []}
    for seed in range(3):
        mdp = objectworld(16, seed=seed)
        _, _, pi = soft_value_iteration(mdp, mdp.true_reward, horizon=8)
        for n in evd:
            demos = sample_trajectories(mdp, pi, n=n, horizon=8, seed=100 + seed)
            evd[n].append(expected_value_difference(mdp, maxent.train(mdp, demos).reward))
    assert np.mean(evd[128]) < np.mean(evd[4])


# ---------------------------------------------------------------- bad input


def small_mdp():
    return random_mdp(5, 2, 2, seed=0, n_features=3)


@pytest.mark.parametrize(
    "demos, match",
    [
        ([], "empty"),
        ([Trajectory(obs=np.array([0, 7, 1]), acts=np.array([0, 1]))], r"obs: id 7 out of range"),
        ([Trajectory(obs=np.array([0, 1, 1]), acts=np.array([0, 2]))], r"acts: id 2 out of range"),
        ([Trajectory(obs=np.array([0.0, 1.0, 1.0]), acts=np.array([0, 1]))], "integer"),
        ([Trajectory(obs=np.array([0, 1, 1]), acts=np.array([0, 1])),
          Trajectory(obs=np.array([0, 1]), acts=np.array([0]))], "differ"),
        (np.full(4, 0.25), "occupancy of shape"),
        (np.array([1.0, np.nan, 0, 0, 0]), "finite"),
        (["not a trajectory"], "expected a Trajectory"),
    ],
)
def test_bad_demonstrations_raise(demos, match):
    with pytest.raises(IrlhfError, match=match):
        maxent.train(small_mdp(), demos, maxent.Config(horizon=None))


def test_horizon_mismatch_and_bad_features_raise():
    mdp = small_mdp()
    demos = [Trajectory(obs=np.array([0, 1, 1]), acts=np.array([0, 1]))]
    with pytest.raises(IrlhfError, match="do not match horizon=5"):
        maxent.train(mdp, demos, maxent.Config(horizon=5))
    with pytest.raises(IrlhfError, match="features: shape"):
        maxent.train(mdp, demos, features=np.zeros((4, 3)))
    with pytest.raises(IrlhfError, match="NaN"):
        maxent.train(mdp, demos, features=np.full((5, 3), np.nan))
    with pytest.raises(IrlhfError, match="w_init"):
        maxent.train(mdp, demos, w_init=np.zeros(2))
    with pytest.raises(IrlhfError, match="horizon: unknown"):
        maxent.train(mdp, np.full(5, 0.2))


@pytest.mark.parametrize("field, value", [("optimizer", "sgd"), ("max_iter", 0), ("l2", -1.0), ("horizon", 0),
                                          ("initial", "uniform"), ("lr", 0.0)])
def test_bad_config_raises(field, value):
    with pytest.raises(IrlhfError, match=field):
        maxent.Config(**{field: value})
