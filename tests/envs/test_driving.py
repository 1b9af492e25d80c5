"""irlhf.envs.driving: Sadigh et al.'s two-car highway scene (dynamics, features, pool, clip)."""

import numpy as np
import pytest

from irlhf.core.errors import ValidationError
from irlhf.envs import driving as drv


def _constant(steer: float, accel: float, n: int = drv.N_CTRL) -> np.ndarray:
    return np.tile([steer, accel], (n, 1)).astype(float)


def test_straight_line_at_constant_speed():
    v0 = drv.ROBOT_START[3]
    states = drv.simulate(_constant(0.0, v0 * drv.FRICTION))  # accel balances friction: v stays v0
    assert states.shape == (drv.T + 1, 4)
    np.testing.assert_allclose(states[:, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(states[:, 2], np.pi / 2)
    np.testing.assert_allclose(states[:, 3], v0)
    np.testing.assert_allclose(states[:, 1], drv.ROBOT_START[1] + drv.DT * v0 * np.arange(drv.T + 1))


def test_turning_and_braking_by_hand():
    x, y, th, v = drv.ROBOT_START
    u1, u2 = 1.0, -0.5
    states = drv.simulate(_constant(u1, u2))
    for t in range(3):  # forward Euler of x'=v cos th, y'=v sin th, th'=v u1, v'=u2 - alpha v
        x, y, th, v = (x + drv.DT * v * np.cos(th), y + drv.DT * v * np.sin(th), th + drv.DT * v * u1,
                       v + drv.DT * (u2 - drv.FRICTION * v))  # fmt: skip
        np.testing.assert_allclose(states[t + 1], [x, y, th, v])
    assert states[10, 2] > np.pi / 2 and states[10, 0] < 0  # steering left (u1 > 0) moves to smaller x


def test_piecewise_constant_segments():
    c = np.zeros((5, 2))
    c[:, 1] = drv.ROBOT_START[3]
    c[2, 0] = 0.5  # steer only in the third segment, steps 20..29
    states = drv.simulate(c)
    np.testing.assert_allclose(states[:21, 2], np.pi / 2)
    assert np.all(np.diff(states[20:31, 2]) > 0)
    np.testing.assert_allclose(states[31:, 2], states[30, 2])


def test_human_car_merges_into_the_centre_lane():
    h = drv.human_states()
    assert h.shape == (drv.T + 1, 4)
    assert h[0, 0] == pytest.approx(drv.LANE_WIDTH) and abs(h[-1, 0]) < 0.02
    assert h[-1, 3] > h[0, 3]  # speeds up at the end


def _states_at(x: np.ndarray, y: np.ndarray | None = None, theta: float = np.pi / 2, v: float = 1.0) -> np.ndarray:
    s = np.zeros((drv.T + 1, 4))
    s[:, 0], s[:, 2], s[:, 3] = x, theta, v
    s[:, 1] = 100.0 if y is None else y  # far from the other car unless given
    return s


def test_lane_feature_by_hand_and_maximal_at_lane_centres():
    raw = drv.raw_features(np.stack([_states_at(c) for c in (-0.17, 0.0, 0.17, 0.05, 0.085, 0.4)]))
    np.testing.assert_allclose(raw[:3, 0], 1.0)
    np.testing.assert_allclose(raw[3, 0], np.exp(-30 * 0.05**2))
    np.testing.assert_allclose(raw[4, 0], np.exp(-30 * 0.085**2))  # lane boundary
    np.testing.assert_allclose(raw[5, 0], np.exp(-30 * 0.23**2))  # off the road, nearest centre 0.17
    xs = np.linspace(-0.3, 0.3, 61)
    lane = drv.features(np.stack([_states_at(x) for x in xs]))[:, 0]
    peaks = xs[lane >= lane.max() - 1e-9]
    np.testing.assert_allclose(peaks, drv.LANE_CENTRES, atol=1e-9)  # maximal exactly at the three lane centres
    assert lane.max() == pytest.approx((1 - drv.FEATURE_MEAN[0]) / drv.FEATURE_SCALE[0])


def test_speed_and_heading_features_by_hand():
    raw = drv.raw_features(np.stack([_states_at(0.0, v=1.0), _states_at(0.0, v=0.4), _states_at(0.0, theta=1.2)]))
    np.testing.assert_allclose(raw[:, 1], [0.0, -0.36, 0.0])
    np.testing.assert_allclose(raw[:, 2], [1.0, 1.0, np.sin(1.2)])


def test_collision_feature_by_hand_and_larger_when_closer():
    h = drv.human_states()
    on_top = _states_at(h[:, 0], h[:, 1])
    dx, dy = 0.1, 0.2
    near = _states_at(h[:, 0] + dx, h[:, 1] + dy)
    far = _states_at(h[:, 0] + 0.3, h[:, 1] + 0.6)
    raw = drv.raw_features(np.stack([on_top, near, far]))
    np.testing.assert_allclose(raw[0, 3], 1.0)
    np.testing.assert_allclose(raw[1, 3], np.exp(-(7 * dx**2 + 3 * dy**2)))
    assert raw[0, 3] > raw[1, 3] > raw[2, 3]
    phi = drv.features(np.stack([on_top, near, far]))
    assert phi[0, 3] > phi[1, 3] > phi[2, 3]


def test_vectorised_simulate_equals_loop():
    controls, _ = drv.sample_pool(6, seed=3)
    batch = drv.simulate(controls.reshape(2, 3, drv.N_CTRL, 2))
    looped = np.stack([drv.simulate(c) for c in controls]).reshape(2, 3, drv.T + 1, 4)
    np.testing.assert_allclose(batch, looped, rtol=0, atol=1e-13)
    per_item = np.stack([drv.features(s) for s in looped.reshape(6, drv.T + 1, 4)])
    np.testing.assert_allclose(drv.features(batch), per_item.reshape(2, 3, 4))


def test_sample_pool_deterministic_and_standardised():
    c1, p1 = drv.sample_pool(2000, seed=7)
    c2, p2 = drv.sample_pool(2000, seed=7)
    c3, _ = drv.sample_pool(2000, seed=8)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(p1, p2)
    assert not np.array_equal(c1, c3)
    assert c1.shape == (2000, drv.N_CTRL, 2) and p1.shape == (2000, 4) and np.isfinite(p1).all()
    b = drv.control_bounds()
    assert (c1.reshape(2000, -1) >= b[:, 0]).all() and (c1.reshape(2000, -1) <= b[:, 1]).all()
    np.testing.assert_allclose(p1.mean(0), 0.0, atol=0.1)  # FEATURE_MEAN/SCALE standardise the pool
    np.testing.assert_allclose(p1.std(0), 1.0, atol=0.1)


def test_true_w_is_a_unit_vector():
    assert drv.TRUE_W.shape == (4,) and np.linalg.norm(drv.TRUE_W) == pytest.approx(1.0)
    assert drv.TRUE_W[3] < 0 < drv.TRUE_W[0]


def test_features_of_controls_accepts_flat_vectors_for_scipy():
    from scipy.optimize import minimize

    controls, _ = drv.sample_pool(3, seed=1)
    flat = controls.reshape(3, -1)
    np.testing.assert_allclose(drv.features_of_controls(flat), drv.features_of_controls(controls))
    np.testing.assert_allclose(drv.features_of_controls(flat[0]), drv.features(drv.simulate(controls[0])))
    bounds = drv.control_bounds()
    assert bounds.shape == (2 * drv.N_CTRL, 2)
    res = minimize(lambda u: -drv.TRUE_W @ drv.features_of_controls(u), flat[0], bounds=bounds,
                   method="L-BFGS-B", options={"maxiter": 5})  # fmt: skip
    assert res.fun <= -drv.TRUE_W @ drv.features_of_controls(flat[0]) + 1e-12


@pytest.mark.parametrize(
    "bad",
    [np.zeros(10), np.zeros((5, 3)), np.zeros((7, 2)), np.zeros((5, 2)) + [[0.0, np.nan]], np.full((5, 2), 1.5), "x"],
)
def test_simulate_rejects_bad_controls(bad):
    with pytest.raises(ValidationError, match="controls"):
        drv.simulate(bad)


def test_other_bad_inputs_raise():
    with pytest.raises(ValidationError, match="controls"):
        drv.features_of_controls(np.zeros(9))
    with pytest.raises(ValidationError, match="states"):
        drv.features(np.zeros((10, 4)))
    with pytest.raises(ValidationError, match="states"):
        drv.features(np.full((drv.T + 1, 4), np.inf))
    with pytest.raises(ValidationError, match="n="):
        drv.sample_pool(0)
    with pytest.raises(ValidationError, match="n_segments"):
        drv.control_bounds(7)


def test_render_clip_writes_small_gif(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    controls, _ = drv.sample_pool(1, seed=0)
    states = drv.simulate(controls[0])
    path = drv.render_clip(states, tmp_path / "clip.gif")
    assert path.stat().st_size <= 64 * 1024
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == drv.T + 1
        assert im.size[0] == 96
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind
    with pytest.raises(ValidationError, match="other_states"):
        drv.render_clip(states, tmp_path / "bad.gif", other_states=np.zeros((3, 4)))
