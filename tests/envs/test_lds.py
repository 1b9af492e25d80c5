"""irlhf.envs.lds: the linear dynamical system for active preference learning."""

import numpy as np
import pytest

from irlhf.core.errors import ValidationError
from irlhf.envs import lds


def test_dynamics_by_hand():
    c = np.zeros((lds.N_CTRL, 2))
    c[0] = [0.5, -1.0]
    states = lds.simulate(c)
    assert states.shape == (lds.T + 1, 3)
    x = lds.X0.copy()
    for t in range(7):  # segment 0 covers steps 0..4, then zero control
        u = c[0] if t < lds.T // lds.N_CTRL else np.zeros(2)
        x = lds.A @ x + lds.B @ u
        np.testing.assert_allclose(states[t + 1], x)
    free = lds.simulate(np.zeros((lds.N_CTRL, 2)))
    np.testing.assert_allclose(free[-1], np.linalg.matrix_power(lds.A, lds.T) @ lds.X0)


def test_features_by_hand():
    c = np.zeros((lds.N_CTRL, 2))
    c[1] = [1.0, -0.5]
    states = lds.simulate(c)
    raw = lds.raw_features(states, c)
    np.testing.assert_allclose(raw[:3], np.abs(states[1:]).mean(0))
    np.testing.assert_allclose(raw[3], (1.0 + 0.25) / lds.N_CTRL)  # one segment in N_CTRL with ||u||^2 = 1.25
    np.testing.assert_allclose(lds.features(states, c), (raw - lds.FEATURE_MEAN) / lds.FEATURE_SCALE)


def test_vectorised_simulate_equals_loop():
    controls, phi = lds.sample_pool(6, seed=2)
    batch = lds.simulate(controls.reshape(3, 2, lds.N_CTRL, 2))
    looped = np.stack([lds.simulate(c) for c in controls])
    np.testing.assert_allclose(batch.reshape(6, lds.T + 1, 3), looped, rtol=0, atol=1e-13)
    np.testing.assert_allclose(np.stack([lds.features(s, c) for s, c in zip(looped, controls)]), phi)


def test_sample_pool_deterministic_and_standardised():
    c1, p1 = lds.sample_pool(3000, seed=5)
    c2, p2 = lds.sample_pool(3000, seed=5)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(p1, p2)
    assert not np.array_equal(c1, lds.sample_pool(3000, seed=6)[0])
    assert p1.shape == (3000, 4) and np.isfinite(p1).all()
    np.testing.assert_allclose(p1.mean(0), 0.0, atol=0.1)
    np.testing.assert_allclose(p1.std(0), 1.0, atol=0.1)
    assert lds.TRUE_W.shape == (4,) and np.linalg.norm(lds.TRUE_W) == pytest.approx(1.0)


def test_features_of_controls_flat_and_scipy():
    from scipy.optimize import minimize

    controls, _ = lds.sample_pool(4, seed=0)
    flat = controls.reshape(4, -1)
    np.testing.assert_allclose(lds.features_of_controls(flat), lds.features_of_controls(controls))
    assert lds.features_of_controls(flat[0]).shape == (4,)
    res = minimize(lambda u: -lds.TRUE_W @ lds.features_of_controls(u), flat[0], bounds=lds.control_bounds(),
                   method="L-BFGS-B", options={"maxiter": 20})  # fmt: skip
    assert res.fun < -lds.TRUE_W @ lds.features_of_controls(flat[0])


@pytest.mark.parametrize(
    "bad", [np.zeros(8), np.zeros((4, 3)), np.zeros((3, 2)), np.array([[np.nan, 0.0]] * 4), np.full((4, 2), -2.0)]
)
def test_bad_controls_raise(bad):
    with pytest.raises(ValidationError, match="controls"):
        lds.simulate(bad)


def test_other_bad_inputs_raise():
    c = np.zeros((lds.N_CTRL, 2))
    with pytest.raises(ValidationError, match="controls"):
        lds.features_of_controls(np.zeros(7))
    with pytest.raises(ValidationError, match="states"):
        lds.features(np.zeros((5, 3)), c)
    with pytest.raises(ValidationError, match="batch shape"):
        lds.features(np.zeros((2, lds.T + 1, 3)), c)
    with pytest.raises(ValidationError, match="seed"):
        lds.sample_pool(3, seed=-1)
