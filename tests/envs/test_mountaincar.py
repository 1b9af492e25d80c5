"""irlhf.envs.mountaincar: gym's continuous mountain car for active preference learning."""

import math

import numpy as np
import pytest

from irlhf.core.errors import ValidationError
from irlhf.envs import mountaincar as mc


def _gym_step(x, v, u):
    """gymnasium MountainCarContinuous-v0.step, scalar, written out."""
    force = min(max(u, -1.0), 1.0)
    v += force * 0.0015 - 0.0025 * math.cos(3 * x)
    v = min(max(v, -0.07), 0.07)
    x += v
    x = min(max(x, -1.2), 0.6)
    if x == -1.2 and v < 0:
        v = 0.0
    return x, v


def test_dynamics_by_hand():
    c = np.zeros((mc.N_CTRL, 1))
    c[0] = 0.7
    c[1] = -1.0
    states = mc.simulate(c)
    assert states.shape == (mc.T + 1, 2)
    x, v = -0.5, 0.0
    np.testing.assert_allclose(states[0], [x, v])
    seg = mc.T // mc.N_CTRL
    for t in range(2 * seg + 5):  # across two segment boundaries
        x, v = _gym_step(x, v, float(c[t // seg, 0]))
        np.testing.assert_allclose(states[t + 1], [x, v], rtol=0, atol=1e-15)


def test_left_wall_and_goal_absorbing():
    # forward, reverse, forward: the car swings right, back into the left wall, then up to the goal
    c = np.array([1.0] + [-1.0] * 2 + [1.0] * (mc.N_CTRL - 3))[:, None]
    states = mc.simulate(c)
    x, v = states[:, 0], states[:, 1]
    assert x.min() == mc.MIN_POSITION
    at_wall = np.flatnonzero(x == mc.MIN_POSITION)
    assert (v[at_wall] >= 0).all()
    assert (x >= mc.MIN_POSITION).all() and (x <= mc.MAX_POSITION).all() and (np.abs(v) <= mc.MAX_SPEED).all()
    hit = np.flatnonzero(x >= mc.GOAL_POSITION)
    assert hit.size and hit[0] < mc.T
    np.testing.assert_array_equal(x[hit[0] :], x[hit[0]])  # stays where it crossed ...
    np.testing.assert_array_equal(v[hit[0] + 1 :], 0.0)  # ... at rest
    raw = mc.raw_features(states, c)
    assert raw[0] == mc.MIN_POSITION and raw[1] >= mc.GOAL_POSITION
    # with no force the car just rocks in the valley, never reaching the goal
    idle = mc.simulate(np.zeros((mc.N_CTRL, 1)))
    assert idle[:, 0].max() < mc.GOAL_POSITION and idle[:, 0].min() > mc.MIN_POSITION


def test_features_by_hand():
    c = np.zeros((mc.N_CTRL, 1))
    c[2] = 0.5
    states = mc.simulate(c)
    raw = mc.raw_features(states, c)
    s = states[1:]
    np.testing.assert_allclose(raw[:3], [s[:, 0].min(), s[:, 0].max(), np.abs(s[:, 1]).mean()])
    np.testing.assert_allclose(raw[3], 0.25 / mc.N_CTRL)
    np.testing.assert_allclose(mc.features(states, c), (raw - mc.FEATURE_MEAN) / mc.FEATURE_SCALE)


def test_vectorised_simulate_equals_loop():
    controls, phi = mc.sample_pool(6, seed=2)
    batch = mc.simulate(controls.reshape(3, 2, mc.N_CTRL, 1))
    looped = np.stack([mc.simulate(c) for c in controls])
    np.testing.assert_allclose(batch.reshape(6, mc.T + 1, 2), looped, rtol=0, atol=1e-13)
    np.testing.assert_allclose(np.stack([mc.features(s, c) for s, c in zip(looped, controls)]), phi)


def test_sample_pool_deterministic_and_standardised():
    c1, p1 = mc.sample_pool(3000, seed=5)
    c2, p2 = mc.sample_pool(3000, seed=5)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(p1, p2)
    assert not np.array_equal(c1, mc.sample_pool(3000, seed=6)[0])
    assert c1.shape == (3000, mc.N_CTRL, 1) and p1.shape == (3000, 4) and np.isfinite(p1).all()
    np.testing.assert_allclose(p1.mean(0), 0.0, atol=0.1)
    np.testing.assert_allclose(p1.std(0), 1.0, atol=0.1)
    reached = mc.raw_features(mc.simulate(c1), c1)[:, 1] >= mc.GOAL_POSITION
    assert 0.05 < reached.mean() < 0.5  # random controls sometimes reach the goal
    assert mc.TRUE_W.shape == (4,) and np.linalg.norm(mc.TRUE_W) == pytest.approx(1.0)
    assert len(mc.FEATURE_NAMES) == 4


def test_features_of_controls_flat_and_scipy():
    from scipy.optimize import minimize

    controls, _ = mc.sample_pool(4, seed=0)
    flat = controls.reshape(4, -1)
    bounds = mc.control_bounds()
    assert bounds.shape == (flat.shape[1], 2)
    np.testing.assert_allclose(mc.features_of_controls(flat), mc.features_of_controls(controls))
    assert mc.features_of_controls(flat[0]).shape == (4,)
    x0 = bounds.mean(axis=1)
    res = minimize(lambda u: -mc.TRUE_W @ mc.features_of_controls(u), x0, bounds=bounds,
                   method="L-BFGS-B", options={"maxiter": 10})  # fmt: skip
    assert res.fun <= -mc.TRUE_W @ mc.features_of_controls(x0)


@pytest.mark.parametrize(
    "bad",
    [np.zeros(mc.N_CTRL), np.zeros((mc.N_CTRL, 2)), np.zeros((3, 1)), np.array([[np.nan]] * mc.N_CTRL),
     np.full((mc.N_CTRL, 1), 1.5), "x"],
)  # fmt: skip
def test_bad_controls_raise(bad):
    with pytest.raises(ValidationError, match="controls"):
        mc.simulate(bad)


def test_other_bad_inputs_raise():
    c = np.zeros((mc.N_CTRL, 1))
    with pytest.raises(ValidationError, match="controls"):
        mc.features_of_controls(np.zeros(mc.N_CTRL - 1))
    with pytest.raises(ValidationError, match="states"):
        mc.features(np.zeros((5, 2)), c)
    with pytest.raises(ValidationError, match="batch shape"):
        mc.features(np.zeros((2, mc.T + 1, 2)), c)
    with pytest.raises(ValidationError, match="n_segments"):
        mc.control_bounds(7)
    with pytest.raises(ValidationError, match="n="):
        mc.sample_pool(0)
    with pytest.raises(ValidationError, match="seed"):
        mc.sample_pool(3, seed=-1)
