import numpy as np
import pytest
import torch

from irlhf.core.errors import IrlhfError
from irlhf.envs.tabular import objectworld, random_mdp, sample_trajectories
from irlhf.eval import expected_value_difference
from irlhf.irl import deep_maxent, maxent
from irlhf.nn import mlp
from irlhf.planning import occupancy_measure, soft_value_iteration


def expert_demos(mdp, n=64, horizon=8, seed=0):
    _, _, pi = soft_value_iteration(mdp, mdp.true_reward, horizon=horizon)
    return sample_trajectories(mdp, pi, n=n, horizon=horizon, seed=seed)


@pytest.mark.parametrize("horizon", [6, None])
def test_autograd_gradient_is_minus_dual_gradient(horizon):
    """dL/dtheta from autograd == -(rho_E - rho_pi)^T dr/dtheta == -dg/dtheta by central differences of g."""
    mdp = random_mdp(9, 3, 3, seed=1, discount=0.8, n_features=4)
    rng = np.random.default_rng(1)
    rho_E = occupancy_measure(mdp, rng.dirichlet(np.ones(3), size=9), horizon=horizon)
    net = mlp(4, (5, 3), 1, "tanh", seed=3, dtype="float64")
    x = torch.as_tensor(mdp.features)
    _, loss, *_ = deep_maxent.objective_and_loss(mdp, net, x, rho_E, horizon)
    loss.backward()
    eps = 1e-6
    checked = 0
    for param in net.parameters():
        for index in [(0,) * param.dim(), tuple(s - 1 for s in param.shape)]:
            values = []
            for sign in (1, -1):
                with torch.no_grad():
                    param[index] += sign * eps
                values.append(deep_maxent.objective_and_loss(mdp, net, x, rho_E, horizon)[0])
                with torch.no_grad():
                    param[index] -= sign * eps
            numeric = (values[0] - values[1]) / (2 * eps)
            assert param.grad[index].item() == pytest.approx(-numeric, abs=1e-7), (param.shape, index)
            checked += 1
    assert checked == 12


def test_linear_network_reaches_the_maxent_optimum():
    """No hidden layer and no standardisation: r = w . f + b, and the bias has zero data gradient (the
    occupancies have equal mass), so the penalised optimum is linear MaxEnt's with l2 = weight_decay."""
    mdp = random_mdp(10, 3, 3, seed=4, discount=0.9, n_features=3)
    _, _, pi = soft_value_iteration(mdp, mdp.features @ np.array([0.5, -0.5, 1.0]), horizon=5)
    rho_E = occupancy_measure(mdp, pi, horizon=5)
    linear = maxent.train(mdp, rho_E, maxent.Config(horizon=5, initial="mdp", l2=0.1, tol=1e-10))
    deep = deep_maxent.train(mdp, rho_E, deep_maxent.Config(
        hidden_sizes=(), standardize=False, weight_decay=0.1, reward_l2=0.0, lr=0.05, iterations=800, horizon=5,
        initial="mdp"))
    w = deep.net[0].weight.detach().numpy().ravel()
    np.testing.assert_allclose(w, linear.weights, atol=1e-4)
    assert abs(deep.net[0].bias.item()) < 1e-4
    assert deep.objective - 0.05 * w @ w == pytest.approx(linear.objective, abs=1e-7)  # maxent's g includes -l2/2 |w|^2


def test_same_seed_same_result_and_history():
    mdp = objectworld(8, continuous=True, seed=0)
    demos = expert_demos(mdp, n=16)
    config = deep_maxent.Config(iterations=20, hidden_sizes=(16, 16))
    a, b = deep_maxent.train(mdp, demos, config), deep_maxent.train(mdp, demos, config)
    c = deep_maxent.train(mdp, demos, config.replace(seed=1))
    np.testing.assert_array_equal(a.reward, b.reward)
    drop = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert drop(a.history) == drop(b.history)
    assert not np.array_equal(a.reward, c.reward)


def test_history_policy_and_likelihood():
    mdp = objectworld(8, continuous=True, seed=1)
    demos = expert_demos(mdp, n=32)
    result = deep_maxent.train(mdp, demos, deep_maxent.Config(iterations=60))
    h = result.history
    assert [r["iteration"] for r in h] == list(range(61))
    assert {"objective", "loss", "visitation_gap", "grad_norm", "seconds"} <= set(h[0])
    assert h[-1]["objective"] > h[0]["objective"] and h[-1]["visitation_gap"] < h[0]["visitation_gap"]
    assert h[-1]["demo_log_likelihood"] > 8 * np.log(1 / 5)
    assert result.reward.shape == (64,) and result.reward.dtype == np.float64
    assert result.policy.shape == (8, 64, 5)
    np.testing.assert_allclose(result.policy.sum(axis=-1), 1.0)
    assert result.objective == h[-1]["objective"]
    assert set(result.weights) >= {"0.weight", "0.bias", "feature_mean", "feature_scale"}


def test_beats_linear_maxent_on_continuous_objectworld():
    """Wulfmeier et al.'s point: the objectworld reward is non-linear in the distance features, so a
    network of them gets a lower expected value difference than a linear reward (mean of 3 layouts)."""
    evd = {"linear": [], "deep": []}
    for seed in range(3):
        mdp = objectworld(16, continuous=True, seed=seed)
        demos = expert_demos(mdp, n=64, seed=100 + seed)
        evd["linear"].append(expected_value_difference(mdp, maxent.train(mdp, demos).reward, horizon=8))
        evd["deep"].append(expected_value_difference(mdp, deep_maxent.train(mdp, demos).reward, horizon=8))
    assert np.mean(evd["deep"]) < 0.7 * np.mean(evd["linear"]), evd


def test_reward_penalty_keeps_the_dual_bounded():
    """64 demos under stochastic dynamics: rho_E is no policy's occupancy, so the dual is unbounded; weight
    decay alone does not stop a ReLU network's reward from growing, the penalty on the reward does."""
    mdp = objectworld(12, seed=0)
    demos = expert_demos(mdp, seed=0)
    bounded = deep_maxent.train(mdp, demos, deep_maxent.Config(iterations=100))
    unbounded = deep_maxent.train(mdp, demos, deep_maxent.Config(iterations=100, reward_l2=0.0))
    assert np.ptp(bounded.reward) < 20
    assert np.ptp(unbounded.reward) > 100 * np.ptp(bounded.reward)
    assert unbounded.history[-1]["objective"] > 100  # the unpenalised dual keeps climbing


def test_reward_fn_transfers_to_a_new_layout():
    mdp = objectworld(16, continuous=True, seed=0)
    result = deep_maxent.train(mdp, expert_demos(mdp, seed=100))
    np.testing.assert_allclose(result.reward_fn(mdp.features), result.reward, rtol=1e-12, atol=1e-12)
    other = objectworld(16, continuous=True, seed=5)  # same kind of features, re-randomised objects
    transferred = result.reward_fn(other.features)
    assert transferred.shape == (256,)
    evd = expected_value_difference(other, transferred, horizon=8)
    assert evd < 0.5 * expected_value_difference(other, np.zeros(256), horizon=8)


def test_standardization_and_options():
    phi = np.array([[1.0, 5.0, 0.0], [3.0, 5.0, 1.0], [5.0, 5.0, 2.0]])
    mean, scale = deep_maxent.standardization(phi)
    z = (phi - mean) / scale
    np.testing.assert_allclose(z[:, 1], 0.0)  # constant column -> 0
    np.testing.assert_allclose(z.std(axis=0), [1.0, 0.0, 1.0])
    assert deep_maxent.standardization(phi, enabled=False)[1].tolist() == [1.0, 1.0, 1.0]

    mdp = objectworld(6, continuous=True, seed=2)
    demos = expert_demos(mdp, n=8, horizon=4)
    for config in [deep_maxent.Config(iterations=3, infinite_horizon=True),
                   deep_maxent.Config(iterations=3, dtype="float32", optimizer="sgd", activation="elu"),
                   deep_maxent.Config(iterations=0, standardize=False, initial="mdp")]:
        result = deep_maxent.train(mdp, demos, config)
        assert result.reward.shape == (36,) and np.all(np.isfinite(result.reward))
        assert result.policy.shape == ((36, 5) if config.infinite_horizon else (4, 36, 5))


def test_config_round_trips_through_json_lists():
    config = deep_maxent.Config.from_dict({"hidden_sizes": [8, 4]})
    assert config.hidden_sizes == (8, 4) and config == deep_maxent.Config(hidden_sizes=(8, 4))


# ---------------------------------------------------------------- bad input


def test_bad_features_and_demos_raise():
    mdp = objectworld(6, continuous=True, seed=0)
    demos = expert_demos(mdp, n=4, horizon=3)
    bad = mdp.features.copy()
    bad[3, 1] = np.nan
    with pytest.raises(IrlhfError, match="NaN"):
        deep_maxent.train(mdp, demos, features=bad)
    with pytest.raises(IrlhfError, match="features: shape"):
        deep_maxent.train(mdp, demos, features=np.zeros((36, 5, 2)))
    with pytest.raises(IrlhfError, match="features: shape"):
        deep_maxent.train(mdp, demos, features=np.zeros((35, 4)))
    with pytest.raises(IrlhfError, match="empty"):
        deep_maxent.train(mdp, [])
    with pytest.raises(IrlhfError, match="horizon: unknown"):
        deep_maxent.train(mdp, np.full(36, 1 / 36))
    result = deep_maxent.train(mdp, demos, deep_maxent.Config(iterations=1))
    with pytest.raises(IrlhfError, match=r"expected \(N, 4\)"):
        result.reward_fn(np.zeros((10, 3)))
    with pytest.raises(IrlhfError, match="NaN"):
        result.reward_fn(np.full((10, 4), np.inf))


@pytest.mark.parametrize("field, value", [
    ("hidden_sizes", (64, 0)), ("hidden_sizes", "64"), ("activation", "swish"), ("optimizer", "lbfgs"),
    ("lr", 0.0), ("weight_decay", -1.0), ("reward_l2", -0.1), ("iterations", -1), ("standardize", 1),
    ("dtype", "float16"),
    ("seed", -1), ("horizon", 0), ("initial", "uniform"), ("infinite_horizon", "yes"),
])
def test_bad_config_raises(field, value):
    with pytest.raises(IrlhfError, match=field):
        deep_maxent.Config(**{field: value})
