"""Sadigh et al.'s two-car highway scene, for active preference learning over trajectories.

Sadigh, Dragan, Sastry & Seshia, "Active preference-based learning of reward functions", RSS 2017; the
numbers (initial states, scripted other car, features and their constants) follow the driver simulator of
Bıyık & Sadigh, "Batch active preference-based learning of reward functions", CoRL 2018, also used by APReL
(Bıyık et al. 2022). The learner sees only the features; the true reward weights ``TRUE_W`` stay hidden.

**Dynamics** (kinematic car, unicycle with friction). State ``s = (x, y, theta, v)``: ``x`` lateral position
(lanes are vertical), ``y`` position along the road, heading ``theta`` (``pi/2`` = straight along the road),
speed ``v``. Controls ``u = (u1, u2)``: steering and acceleration, both in ``[-1, 1]``::

    x_dot = v cos(theta),   y_dot = v sin(theta),   theta_dot = v u1,   v_dot = u2 - alpha v

with friction ``alpha = 1`` (so a constant ``u2`` is also the terminal speed), integrated by forward Euler
``s_{t+1} = s_t + dt f(s_t, u_t)``, ``dt = 0.1``, for ``T = 50`` steps (5 s).

**Scene.** Three lanes of width 0.17 centred at ``x = -0.17, 0, 0.17`` (road edges at ``x = +-0.255``). The robot
car starts at ``(0, -0.3, pi/2, 0.4)`` (centre lane); the other ("human") car at ``(0.17, 0, pi/2, 0.41)``
(right lane, just ahead) follows a fixed script: 1 s straight, 1 s steering left (``u1 = 1``), 1 s steering
back (``u1 = -1``): it merges into the robot's lane, then 2 s straight while speeding up (``u2 = 1.3 * 0.41``).

**Trajectories** come from piecewise-constant controls: a control vector is ``N_CTRL = 5`` segments x 2
(steer, accel), each held for ``T / N_CTRL = 10`` steps; flattened it is the 10-vector
``(u1_0, u2_0, u1_1, u2_1, ...)`` the optimisers of Sadigh et al. search over (bounds ``[-1, 1]`` each).

**Features** ``phi(xi)`` are means over the ``T`` states after the start, ``t = 1..T`` (Bıyık's recording):

1. lane: ``mean_t exp(-30 * min_c (x_t - c)^2)`` over lane centres ``c``: 1 on a lane centre, 0.80 on a lane
   boundary, ``exp(-30 d^2)`` off the road. Higher = better lane keeping.
2. speed: ``-mean_t (v_t - 1)^2``: 0 at the desired speed 1, negative otherwise. (Bıyık uses ``+(v-1)^2``,
   "lower is better"; here every feature but the last is "higher is better".)
3. heading: ``mean_t sin(theta_t)``: the cosine between the car's heading and the road (1 = aligned).
4. collision: ``mean_t exp(-(7 (x_t - x^h_t)^2 + 3 (y_t - y^h_t)^2))`` with the other car's ``(x^h, y^h)``:
   proximity, 1 when on top of it. Higher = closer = more dangerous.

The raw features have very different spreads (heading hardly varies), so :func:`features` returns them
standardised, ``(phi_raw - FEATURE_MEAN) / FEATURE_SCALE``, with the mean and standard deviation of
``phi_raw`` over 100,000 trajectories of uniformly random controls (``sample_pool``'s distribution, seed 0).
The standard deviations agree to 3 digits with the divisors in Bıyık's code (0.1534, 0.4220, 0.0611,
0.1526), a check that these dynamics and scene match theirs.
An affine map with positive scales keeps the order of trajectories within each feature, so "maximal at a lane
centre" and "larger when closer" hold for the standardised features too; :func:`raw_features` gives the
unscaled ones. ``TRUE_W`` is a unit vector: reward ``r(xi) = TRUE_W . phi(xi)``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from irlhf.core.errors import ValidationError, shown
from irlhf.core.seeding import SeedLike
from irlhf.envs.controls import PiecewiseControls

DT = 0.1
FRICTION = 1.0
T = 50
N_CTRL = 5
LANE_WIDTH = 0.17
LANE_CENTRES = np.array([-LANE_WIDTH, 0.0, LANE_WIDTH])
ROAD_HALF_WIDTH = 1.5 * LANE_WIDTH
DESIRED_SPEED = 1.0
LANE_SHARPNESS = 30.0  # c in exp(-c d^2)
COLLISION_LATERAL, COLLISION_LONGITUDINAL = 7.0, 3.0  # a, b in exp(-(a dx^2 + b dy^2))
STEER_BOUNDS = (-1.0, 1.0)
ACCEL_BOUNDS = (-1.0, 1.0)
ROBOT_START = np.array([0.0, -0.3, np.pi / 2, 0.4])
HUMAN_START = np.array([LANE_WIDTH, 0.0, np.pi / 2, 0.41])
FEATURE_NAMES = ("lane", "speed", "heading", "collision")

# mean and standard deviation of raw_features over sample_pool(100_000, seed=0) (see module docstring)
FEATURE_MEAN = np.array([0.891029, -0.983995, 0.958387, 0.240107])
FEATURE_SCALE = np.array([0.153629, 0.42259, 0.061118, 0.152734])

# the hidden reward direction (our choice; unit norm over the standardised features): keep to a lane, near the
# desired speed, aligned with the road, away from the other car. Its best trajectory (L-BFGS-B over the flat
# controls) speeds up to v ~ 1, moves to the left lane as the other car merges, and overtakes it.
TRUE_W = np.array([0.5, 0.6, 0.3, -0.5]) / np.linalg.norm([0.5, 0.6, 0.3, -0.5])


def _human_controls() -> np.ndarray:
    """The other car's scripted per-step controls (T, 2) (module docstring)."""
    u = np.zeros((T, 2))
    fifth = T // 5
    u[:, 1] = HUMAN_START[3]
    u[fifth : 2 * fifth, 0] = 1.0
    u[2 * fifth : 3 * fifth, 0] = -1.0
    u[3 * fifth :, 1] = 1.3 * HUMAN_START[3]
    return u


HUMAN_CONTROLS = _human_controls()


def step(state: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One Euler step ``s + dt f(s, u)`` of the car dynamics, broadcast over leading axes of ``(..., 4)``
    states and ``(..., 2)`` controls (no validation: this is the inner loop)."""
    x, y, theta, v = np.moveaxis(state, -1, 0)
    return np.stack(
        [
            x + DT * v * np.cos(theta),
            y + DT * v * np.sin(theta),
            theta + DT * v * u[..., 0],
            v + DT * (u[..., 1] - FRICTION * v),
        ],
        axis=-1,
    )


def rollout(start: np.ndarray, per_step_controls: np.ndarray) -> np.ndarray:
    """States ``(..., n+1, 4)`` from ``start`` (4,) under per-step controls ``(..., n, 2)``."""
    u = np.asarray(per_step_controls, dtype=np.float64)
    states = np.empty(u.shape[:-2] + (u.shape[-2] + 1, 4))
    states[..., 0, :] = start
    for t in range(u.shape[-2]):
        states[..., t + 1, :] = step(states[..., t, :], u[..., t, :])
    return states


def human_states() -> np.ndarray:
    """The other car's fixed trajectory, (T+1, 4)."""
    return _HUMAN_STATES.copy()


_HUMAN_STATES = rollout(HUMAN_START, HUMAN_CONTROLS)


STATE_NAMES = ("x", "y", "theta", "v")
CONTROLS = PiecewiseControls(T, (STEER_BOUNDS[0], ACCEL_BOUNDS[0]), (STEER_BOUNDS[1], ACCEL_BOUNDS[1]),
                             ("steer", "accel"))


def control_bounds(n_segments: int = N_CTRL) -> np.ndarray:
    """``(2 n_segments, 2)`` rows ``(low, high)``, one per entry of a flat control vector (steer, accel,
    steer, accel, ...): pass it as ``bounds=`` to ``scipy.optimize.minimize``."""
    return CONTROLS.bounds(n_segments)


def simulate(controls: np.ndarray) -> np.ndarray:
    """The robot car's states ``(..., T+1, 4)`` under piecewise-constant ``controls`` ``(..., N, 2)``: segment
    ``k`` is held for ``T/N`` steps. Vectorised over the leading (batch) axes; loops only over time."""
    return rollout(ROBOT_START, CONTROLS.per_step(controls))


def raw_features(states: np.ndarray) -> np.ndarray:
    """Unscaled features ``(..., 4)`` (lane, speed, heading, collision) of robot ``states`` ``(..., T+1, 4)``."""
    s = CONTROLS.check_states(states, STATE_NAMES)[..., 1:, :]
    x, y, theta, v = np.moveaxis(s, -1, 0)
    d2 = np.min((x[..., None] - LANE_CENTRES) ** 2, axis=-1)
    lane = np.exp(-LANE_SHARPNESS * d2).mean(-1)
    speed = -((v - DESIRED_SPEED) ** 2).mean(-1)
    heading = np.sin(theta).mean(-1)
    h = _HUMAN_STATES[1:]
    prox = np.exp(-(COLLISION_LATERAL * (x - h[:, 0]) ** 2 + COLLISION_LONGITUDINAL * (y - h[:, 1]) ** 2))
    return np.stack([lane, speed, heading, prox.mean(-1)], axis=-1)


def features(states: np.ndarray) -> np.ndarray:
    """Standardised features ``(raw - FEATURE_MEAN) / FEATURE_SCALE``, ``(..., 4)``, of ``(..., T+1, 4)`` states."""
    return (raw_features(states) - FEATURE_MEAN) / FEATURE_SCALE


def features_of_controls(controls: np.ndarray, n_segments: int = N_CTRL) -> np.ndarray:
    """``features(simulate(controls))``. ``controls`` is ``(..., n_segments, 2)`` or flat ``(..., 2 n_segments)``
    (steer, accel, steer, accel, ...), so ``lambda u: -TRUE_W @ features_of_controls(u)`` suits scipy."""
    return features(simulate(CONTROLS.shaped(controls, n_segments)))

def sample_pool(n: int, seed: SeedLike = 0, n_segments: int = N_CTRL) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random trajectories: controls ``(n, n_segments, 2)`` uniform within the bounds, and their
    standardised features ``(n, 4)``. Same seed, same pool."""
    controls = CONTROLS.sample(n, n_segments, seed)
    return controls, features(simulate(controls))


# --- rendering -----------------------------------------------------------------------------------------------

_CAR_LENGTH, _CAR_WIDTH = 0.13, 0.065  # drawn size only: no feature depends on it
_BAR = 12  # pixels of status bar under the road (time, speed)
_COLOURS = {"grass": (96, 140, 80), "road": (70, 70, 74), "edge": (235, 235, 235), "line": (165, 165, 165),
            "centre": (96, 96, 102), "robot": (255, 150, 30), "human": (245, 245, 245), "zone": (220, 60, 60),
            "dark": (20, 20, 20), "text": (255, 255, 255)}  # fmt: skip
_INDEX = {name: i for i, name in enumerate(_COLOURS)}


def render_clip(
    states: np.ndarray,
    path: str | os.PathLike,
    other_states: np.ndarray | None = None,
    *,
    width: int = 96,
    view_length: float = 1.4,
    fps: float = 10.0,
) -> Path:
    """Write an animated GIF of one trajectory: one frame per state, the camera following the robot (orange).

    Drawn to scale: road edges (white), lane boundaries (light grey) and lane centres (dark grey, where the
    lane feature peaks), both cars with their noses marked, distance ticks every 0.5 along the left edge, and
    around the other car (white) the ellipse ``7 dx^2 + 3 dy^2 = 1`` on which the collision feature is ``1/e``
    (red). An other car out of view shows as a triangle at the top or bottom edge. A bar underneath gives
    time and speed. ``other_states`` defaults to the scripted car when ``states`` has ``T+1`` rows. 20-40
    KB for 51 frames at the default 96 x 177 pixels. Needs Pillow (``pip install 'irlhf[label]'``). Written to a
    temp file in the target folder, then renamed.
    """
    s = np.asarray(states, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 4 or len(s) < 1 or not np.isfinite(s).all():
        raise ValidationError(f"states: got shape {tuple(s.shape)}; expected finite (n_frames, 4) (x, y, theta, v)")
    if other_states is None and len(s) == T + 1:
        other_states = _HUMAN_STATES
    o = None if other_states is None else np.asarray(other_states, dtype=np.float64)
    if o is not None and (o.shape != s.shape or not np.isfinite(o).all()):
        raise ValidationError(f"other_states: got shape {tuple(o.shape)}; expected finite {tuple(s.shape)} like states")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 32 <= width <= 1024:
        raise ValidationError(f"width={shown(width)}: expected an int in [32, 1024] (pixels)")
    if not 0.2 <= float(view_length) <= 10 or not 0.1 <= float(fps) <= 100:
        raise ValidationError(f"view_length={view_length!r}, fps={fps!r}: expected 0.2..10 road units and 0.1..100")
    try:
        from PIL import Image  # why: optional dependency (extra "label"); only rendering needs it
    except ImportError:  # pragma: no cover - depends on the environment
        raise ValidationError("render_clip needs Pillow: pip install 'irlhf[label]'") from None

    frames = [_frame(s[t], None if o is None else o[t], t, int(width), float(view_length)) for t in range(len(s))]
    palette = [c for rgb in _COLOURS.values() for c in rgb]
    images = []
    for f in frames:
        im = Image.frombytes("P", (f.shape[1], f.shape[0]), f.tobytes())
        im.putpalette(palette)
        images.append(im)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(suffix=".gif", dir=path.parent)
    os.close(fd)
    try:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps),
                       loop=0)  # fmt: skip
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _frame(robot: np.ndarray, other: np.ndarray | None, t: int, width: int, view_length: float) -> np.ndarray:
    """One frame as palette indices ``(height + _BAR, width)`` uint8."""
    from PIL import Image, ImageDraw  # why: optional dependency, checked by render_clip

    half = 2.4 * LANE_WIDTH  # lateral half-extent of the view
    px = width / (2 * half)  # pixels per road unit
    height = int(round(view_length * px))
    y0 = robot[1] - view_length / 3  # world y at the bottom edge: the robot sits a third of the way up

    def to_px(x: float, y: float) -> tuple[float, float]:
        return ((x + half) * px, height - (y - y0) * px)

    im = Image.new("P", (width, height + _BAR), _INDEX["grass"])
    d = ImageDraw.Draw(im)
    d.rectangle([to_px(-ROAD_HALF_WIDTH, y0 + view_length), to_px(ROAD_HALF_WIDTH, y0)], fill=_INDEX["road"])
    lines = [(c, "centre") for c in LANE_CENTRES] + [(b * LANE_WIDTH, "line") for b in (-0.5, 0.5)]
    for x, colour in lines + [(-ROAD_HALF_WIDTH, "edge"), (ROAD_HALF_WIDTH, "edge")]:
        d.line([to_px(x, y0), to_px(x, y0 + view_length)], fill=_INDEX[colour])
    for ym in np.arange(np.ceil(y0 / 0.5) * 0.5, y0 + view_length, 0.5):  # distance ticks every 0.5
        d.line([to_px(-ROAD_HALF_WIDTH - 0.04, ym), to_px(-ROAD_HALF_WIDTH, ym)], fill=_INDEX["edge"])
    if other is not None:
        ox, oy = float(other[0]), float(other[1])
        ax, ay = 1 / np.sqrt(COLLISION_LATERAL), 1 / np.sqrt(COLLISION_LONGITUDINAL)
        if y0 - ay < oy < y0 + view_length + ay:
            d.ellipse([to_px(ox - ax, oy + ay), to_px(ox + ax, oy - ay)], outline=_INDEX["zone"])
        _car(d, to_px, other, _INDEX["human"])
        if not y0 < oy < y0 + view_length:  # out of view: a triangle at the edge, apex towards the car
            cx = to_px(ox, 0.0)[0]
            edge, inward = (0, 1) if oy > y0 else (height - 1, -1)
            d.polygon([(cx - 4, edge + 6 * inward), (cx + 4, edge + 6 * inward), (cx, edge)], fill=_INDEX["human"])
    _car(d, to_px, robot, _INDEX["robot"])
    d.rectangle([0, height, width, height + _BAR], fill=_INDEX["dark"])
    d.text((2, height + 1), f"{t * DT:.1f}s v={robot[3]:.2f}", fill=_INDEX["text"])
    return np.asarray(im, dtype=np.uint8)


def _car(d, to_px, state: np.ndarray, colour: int) -> None:
    """A car as a rotated rectangle at ``state`` with a dark line across its nose."""
    x, y, theta = float(state[0]), float(state[1]), float(state[2])
    fx, fy, sx, sy = np.cos(theta), np.sin(theta), -np.sin(theta), np.cos(theta)
    half_l, half_w = _CAR_LENGTH / 2, _CAR_WIDTH / 2
    signs = ((1, 1), (1, -1), (-1, -1), (-1, 1))  # front-left, front-right, rear-right, rear-left
    pts = [to_px(x + a * half_l * fx + b * half_w * sx, y + a * half_l * fy + b * half_w * sy) for a, b in signs]
    d.polygon(pts, fill=colour)
    d.line([pts[0], pts[1]], fill=_INDEX["dark"])
