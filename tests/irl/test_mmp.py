import numpy as np
import scipy.optimize
import pytest

from irlhf.core.errors import IrlhfError
from irlhf.data import Trajectory
from irlhf.envs.tabular import TabularMDP, gridworld, random_mdp, sample_trajectories
from irlhf.eval import policy_value
from irlhf.irl import mmp
from irlhf.planning import occupancy_measure, value_iteration

SOLVERS = ["constraint_generation", "subgradient"]
H = 6


def ring(n=5, discount=0.9):
    """A deterministic ring: actions 0 left, 1 stay, 2 right (each reaches a distinct state); start 0."""
    P = np.zeros((n, 3, n))
    for a, step in enumerate((-1, 0, 1)):
        P[np.arange(n), a, (np.arange(n) + step) % n] = 1.0
    initial = np.zeros(n)
    initial[0] = 1.0
    return TabularMDP(P, np.eye(n), initial, discount=discount)


def ring_expert():
    """The expert walks right to the goal (state 2) and stays: moving costs 0.1, the goal pays 1.
    Its action is the unique optimum at every visited (t, s): 2 2 1 1 1 1 over states 0 1 2 2 2 2."""
    mdp = ring()
    reward = np.zeros((5, 3))
    reward[2] = 1.0
    reward[:, [0, 2]] -= 0.1
    _, _, pi = value_iteration(mdp, reward, horizon=H)
    demos = sample_trajectories(mdp, pi, n=1, horizon=H, seed=0)
    np.testing.assert_array_equal(demos[0].acts, [2, 2, 1, 1, 1, 1])
    return mdp, demos


SA_FEATURES = np.eye(15).reshape(5, 3, 15)  # one-hot state-action features: any loss is expressible


def visited_actions(policy, traj):
    return policy[np.arange(len(traj)), traj.obs[:-1]].argmax(axis=1)


def random_problem(seed=0, n=16):
    mdp = random_mdp(15, 3, 3, seed=seed, discount=0.9, n_features=5)
    _, _, pi = value_iteration(mdp, mdp.true_reward, horizon=H)
    return mdp, sample_trajectories(mdp, pi, n=n, horizon=H, seed=seed)


# ---------------------------------------------------------------- the working-set QP


def reference_qp(Delta, D, C):
    """The same QP by a generic solver (SLSQP on (v, eta)), started at a feasible point."""
    n, F = Delta.shape
    A = np.hstack([Delta, np.ones((n, 1))])
    out = scipy.optimize.minimize(
        lambda z: (float(z[:F] @ z[:F] + C * z[F]), np.append(2.0 * z[:F], C)),
        np.append(np.zeros(F), max(0.0, D.max())), jac=True, method="SLSQP",
        bounds=[(None, None)] * F + [(0.0, None)],
        constraints=[{"type": "ineq", "fun": lambda z: A @ z - D, "jac": lambda z: A}],
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    return out.x[:F]


@pytest.mark.parametrize("n, F, C", [(3, 6, 1.0), (8, 4, 1.0), (8, 4, 100.0), (5, 5, 0.05), (40, 30, 10.0)])
def test_working_set_qp_matches_a_generic_solver(n, F, C):
    rng = np.random.default_rng(n * F)
    Delta = rng.standard_normal((n, F))
    D = rng.uniform(0.5, 2.0, n)

    def objective(v):
        return v @ v + C * max(0.0, float((D - Delta @ v).max()))

    w, xi = mmp.solve_working_set(np.zeros(F), -Delta, D, C)  # mu_E = 0, mus = -Delta
    assert xi == pytest.approx(max(0.0, float((D - Delta @ w).max())))
    assert objective(w) <= objective(reference_qp(Delta, D, C)) * (1 + 1e-7) + 1e-10
    # in other units: with Delta' = 3 Delta, D' = 2 D, w = (2/3) v turns the cost into (4/9) (||v||^2 + 4.5 C eta)
    w2, _ = mmp.solve_working_set(np.zeros(F), -3.0 * Delta, 2.0 * D, C)
    np.testing.assert_allclose(w2, 2.0 / 3.0 * reference_qp(Delta, D, 4.5 * C), atol=1e-5)


def test_least_distance_program():
    # min ||v|| s.t. v0 >= 1, v1 >= 2: v = (1, 2); contradictory rows: infeasible
    np.testing.assert_allclose(mmp.least_distance(np.eye(2), np.array([1.0, 2.0])), [1.0, 2.0], atol=1e-12)
    assert mmp.least_distance(np.array([[1.0], [-1.0]]), np.array([1.0, 1.0])) is None
    # a single half-space g . v >= h: v = h g / ||g||^2
    g = np.array([[3.0, 4.0]])
    np.testing.assert_allclose(mmp.least_distance(g, np.array([5.0])), [0.6, 0.8], atol=1e-12)


# ---------------------------------------------------------------- constraint generation


def test_constraint_generation_satisfies_every_generated_constraint_up_to_the_slack():
    mdp, demos = random_problem(0)
    result = mmp.train(mdp, demos, mmp.Config(C=5.0))
    assert result.converged
    w, xi = result.weights, result.slack
    margins = result.mu_E @ w - result.mus @ w  # w . mu_E - w . mu_j
    assert np.all(margins >= result.losses - xi - 1e-9)
    assert np.any(np.isclose(margins, result.losses - xi, atol=1e-6))  # some constraint is tight
    assert xi >= 0 and result.objective == pytest.approx(w @ w + 5.0 * xi)
    assert np.all(result.losses > 0)  # every generated policy leaves the expert's support
    history = result.history
    assert history[-1]["lower_bound"] <= history[-1]["objective"] * (1 + 1e-9)
    assert history[-1]["objective"] - history[-1]["lower_bound"] <= 1e-4 * history[-1]["objective"] + 1e-9


@pytest.mark.parametrize("loss", ["hamming", "visitation"])
def test_learned_reward_reproduces_the_expert_on_a_deterministic_mdp(loss):
    mdp, demos = ring_expert()
    result = mmp.train(mdp, demos, mmp.Config(C=100.0, loss=loss), features=SA_FEATURES)
    assert result.converged
    np.testing.assert_array_equal(visited_actions(result.policy, demos[0]), demos[0].acts)
    np.testing.assert_allclose(result.mu_pi, result.mu_E, atol=1e-12)  # deterministic: same path exactly


def test_large_C_leaves_no_slack_on_separable_data_and_small_C_does():
    mdp, demos = ring_expert()
    hard = mmp.train(mdp, demos, mmp.Config(C=1e3), features=SA_FEATURES)
    assert hard.slack < 1e-6
    assert 1e3 * hard.slack <= 2e-4 * hard.objective  # C xi is within the (relative) tol of the objective
    soft = mmp.train(mdp, demos, mmp.Config(C=0.01), features=SA_FEATURES)
    assert soft.slack > 0.5 * soft.losses.max()  # w barely moves: the margin is mostly slack
    assert np.linalg.norm(soft.weights) < 0.05 * np.linalg.norm(hard.weights)


def test_slack_is_needed_when_features_cannot_separate():
    # state features cannot see the last action (its next state is past the horizon), yet the
    # Hamming loss charges gamma^(H-1) for a different one: no w separates, whatever C
    mdp, demos = ring_expert()
    slacks = [mmp.train(mdp, demos, mmp.Config(C=C)).slack for C in (0.01, 0.1, 1.0, 100.0, 1e4)]
    assert np.all(np.diff(slacks) <= 1e-6)  # more weight on the slack, less slack
    assert slacks[-1] == pytest.approx(mdp.discount ** (H - 1), abs=1e-6)


def test_turning_the_loss_off_removes_the_margin():
    mdp, demos = ring_expert()
    off = mmp.train(mdp, demos, mmp.Config(C=100.0, loss_scale=0.0), features=SA_FEATURES)
    # w . mu_E >= w . mu_pi - xi is met by w = 0, xi = 0: the trivial reward the lecture warns about
    assert not np.any(off.weights) and off.slack == 0.0 and off.objective == 0.0 and not np.any(off.loss)
    # ... whose hard-optimal policy (first maximiser) stays put and never reaches the goal
    assert np.all(visited_actions(off.policy, demos[0]) == 0)
    assert not np.array_equal(visited_actions(off.policy, demos[0]), demos[0].acts)
    on = mmp.train(mdp, demos, mmp.Config(C=100.0, loss_scale=1.0), features=SA_FEATURES)
    np.testing.assert_array_equal(visited_actions(on.policy, demos[0]), demos[0].acts)


def test_margin_scales_with_the_loss():
    # hard margin: scaling D scales every constraint's right-hand side, so the optimal w scales too
    mdp, demos = ring_expert()
    one = mmp.train(mdp, demos, mmp.Config(C=1e4, loss_scale=1.0, tol=1e-8), features=SA_FEATURES)
    two = mmp.train(mdp, demos, mmp.Config(C=1e4, loss_scale=2.0, tol=1e-8), features=SA_FEATURES)
    np.testing.assert_allclose(two.loss, 2.0 * one.loss)
    np.testing.assert_allclose(two.weights, 2.0 * one.weights, atol=1e-5 * np.abs(one.weights).max())


# ---------------------------------------------------------------- subgradient


@pytest.mark.parametrize("seed, C", [(0, 1.0), (1, 5.0)])
def test_subgradient_reaches_the_constraint_generation_objective(seed, C):
    mdp, demos = random_problem(seed)
    cg = mmp.train(mdp, demos, mmp.Config(C=C, tol=1e-6))
    sg = mmp.train(mdp, demos, mmp.Config(C=C, solver="subgradient", max_iter=400))
    assert sg.objective >= cg.objective * (1 - 1e-5)  # constraint generation is optimal up to tol
    assert sg.objective <= cg.objective * 1.01
    assert sg.objective == pytest.approx(sg.weights @ sg.weights + C * sg.slack)
    assert min(h["objective"] for h in sg.history) == pytest.approx(sg.objective)
    assert len(sg.mus) == len(sg.history) == 400 and not sg.converged


def test_subgradient_stops_at_zero_subgradient_with_the_loss_off():
    mdp, demos = ring_expert()
    result = mmp.train(mdp, demos, mmp.Config(solver="subgradient", loss_scale=0.0), features=SA_FEATURES)
    assert result.converged and len(result.history) == 1 and not np.any(result.weights)


def test_subgradient_reproduces_the_expert_at_moderate_C():
    mdp, demos = ring_expert()
    result = mmp.train(mdp, demos, mmp.Config(C=1.0, solver="subgradient", max_iter=300), features=SA_FEATURES)
    np.testing.assert_array_equal(visited_actions(result.policy, demos[0]), demos[0].acts)


# ---------------------------------------------------------------- losses, horizons, inputs


def test_losses_from_the_expert_occupancy():
    mdp, demos = ring_expert()
    hamming = mmp.train(mdp, demos, mmp.Config(max_iter=1), features=SA_FEATURES).loss
    visited = np.zeros((5, 3), dtype=bool)
    visited[demos[0].obs[:-1], demos[0].acts] = True
    np.testing.assert_array_equal(hamming, (~visited).astype(float))
    visitation = mmp.train(mdp, demos, mmp.Config(max_iter=1, loss="visitation"), features=SA_FEATURES).loss
    assert visitation.min() == 0.0 and visitation.max() == 1.0
    assert np.all(visitation[~visited] == 1.0) and np.all(visitation[visited] < 1.0)
    # a state occupancy gives a state loss, the same for every action
    rho = occupancy_measure(mdp, np.eye(3)[[2, 2, 1, 1, 1]], horizon=H)
    state_loss = mmp.train(mdp, rho, mmp.Config(horizon=H, max_iter=1)).loss
    np.testing.assert_array_equal(state_loss, np.repeat((rho == 0).astype(float)[:, None], 3, axis=1))


def test_infinite_horizon_with_an_exact_state_action_occupancy():
    mdp = random_mdp(10, 3, 3, seed=4, discount=0.8)
    phi = np.random.default_rng(4).standard_normal((10, 3, 6))
    _, _, pi_E = value_iteration(mdp, phi @ np.random.default_rng(5).standard_normal(6))
    rho_sa = occupancy_measure(mdp, pi_E, state_action=True)
    result = mmp.train(mdp, rho_sa, mmp.Config(C=100.0, infinite_horizon=True, initial="mdp"), features=phi)
    assert result.converged and result.policy.shape == (10, 3) and result.reward.shape == (10, 3)
    assert result.slack < 1e-6  # the expert's occupancy is attainable and its support separable here
    np.testing.assert_array_equal(result.policy.argmax(1)[rho_sa.sum(1) > 0], pi_E.argmax(1)[rho_sa.sum(1) > 0])


@pytest.mark.parametrize("solver", SOLVERS)
def test_macrocell_gridworld_reaches_the_experts_value(solver):
    mdp = gridworld(16, macrocell=4, slip=0.3, discount=0.9)
    horizon = 20
    _, _, pi_E = value_iteration(mdp, mdp.true_reward, horizon=horizon)
    demos = sample_trajectories(mdp, pi_E, n=64, horizon=horizon, seed=1)
    result = mmp.train(mdp, demos, mmp.Config(solver=solver, max_iter=200 if solver == "subgradient" else 100))
    expert = policy_value(mdp, pi_E, mdp.true_reward, horizon)
    assert policy_value(mdp, result.policy, mdp.true_reward, horizon) >= 0.95 * expert


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
        (np.zeros(5), "not all zero"),
    ],
)
def test_bad_demonstrations_raise(demos, match):
    with pytest.raises(IrlhfError, match=match):
        mmp.train(small_mdp(), demos)


def test_unknown_horizon_and_bad_features_raise():
    mdp = small_mdp()
    with pytest.raises(IrlhfError, match="horizon: unknown"):
        mmp.train(mdp, np.full(5, 0.2))
    demos = [Trajectory(obs=np.array([0, 1, 1]), acts=np.array([0, 1]))]
    with pytest.raises(IrlhfError, match="features: shape"):
        mmp.train(mdp, demos, features=np.zeros((5, 3, 2)))


@pytest.mark.parametrize("field, value", [("solver", "cutting_plane"), ("C", 0.0), ("C", -1.0), ("loss", "l2"),
                                          ("loss_scale", -0.5), ("max_iter", 0), ("tol", 0.0),
                                          ("step_size", 0.0), ("horizon", 0), ("initial", "uniform"),
                                          ("C", float("inf")), ("infinite_horizon", 1)])
def test_bad_config_raises(field, value):
    with pytest.raises(IrlhfError, match=field):
        mmp.Config(**{field: value})
