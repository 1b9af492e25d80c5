"""Mountain car, a classic-control task with hand features, for active preference learning over trajectories.

After the MountainCar task of APReL (Bıyık, Talati & Sadigh, "APReL: a library for active preference-based
reward learning algorithms", HRI 2022) and the classic-control experiments of Bıyık et al. 2019: an underpowered
car in a valley, driven by piecewise-constant controls, a reward linear in a few trajectory features, the true
weights ``TRUE_W`` hidden from the learner. Same API as :mod:`irlhf.envs.lds`.

**Dynamics** (gymnasium's ``MountainCarContinuous-v0``). State ``(x, v)``: position and velocity; control
``u in [-1, 1]`` (the force). Each step::

    v <- clip(v + POWER u - GRAVITY cos(3 x), -MAX_SPEED, MAX_SPEED)      POWER = 0.0015, GRAVITY = 0.0025
    x <- clip(x + v, MIN_POSITION, MAX_POSITION)                          MAX_SPEED = 0.07, x in [-1.2, 0.6]
    v <- 0 if x == MIN_POSITION and v < 0                                 (inelastic left wall)

(the velocity update uses the old ``x``), from the fixed start ``X0 = (-0.5, 0)`` (the valley floor; gym draws
``x_0`` from ``U(-0.6, -0.4)``, here it is fixed so a trajectory is a function of its controls). Reaching the
goal ``x >= GOAL_POSITION = 0.45`` ends gym's episode; here the state is then absorbing: the car stays where it
crossed, with ``v = 0``, for the remaining steps (so every trajectory has ``T + 1`` states). ``T = 200`` steps;
controls: ``N_CTRL = 10`` segments of ``T / N_CTRL = 20`` steps, each ``u in [-1, 1]``, shape ``(..., N, 1)``;
flat, the 10-vector ``(u_0, u_1, ...)``. The engine alone cannot climb the right hill: the car must rock back
and forth; about 16% of uniformly random controls reach the goal.

**Features** (``d = 4``), over ``t = 1..T``; the first three are APReL's MountainCar features (its example's
``min_pos, max_pos, mean_speed``), the fourth is added so effort trades off against progress:

1. min_position: ``min_t x_t``, how far back the car swings (the left hill).
2. max_position: ``max_t x_t``, how far up the right hill it gets (``>= 0.45`` iff it reached the goal).
3. mean_speed: ``mean_t |v_t|`` (0 after the goal).
4. effort: ``mean_t u_t^2`` over all ``T`` steps (controls after the goal count too: they are part of the
   trajectory a person is shown).

:func:`features` standardises them, ``(phi_raw - FEATURE_MEAN) / FEATURE_SCALE``, with the mean and standard
deviation over 100,000 trajectories of uniform random controls (``sample_pool``'s distribution, seed 0),
computed once with ``raw_features(simulate(c), c)`` for ``c = sample_pool(100_000, 0)[0]`` and hard-coded;
:func:`raw_features` gives the unscaled values. ``TRUE_W`` (unit norm) rewards getting far up the right hill
(reaching the goal) moving briskly, with a deep back swing and little effort; reward ``r(xi) = TRUE_W . phi(xi)``.
"""

from __future__ import annotations

import numpy as np

from irlhf.core.seeding import SeedLike
from irlhf.envs.controls import PiecewiseControls

T = 200
N_CTRL = 10
POWER = 0.0015
GRAVITY = 0.0025
MAX_SPEED = 0.07
MIN_POSITION, MAX_POSITION = -1.2, 0.6
GOAL_POSITION = 0.45
X0 = np.array([-0.5, 0.0])
STATE_DIM, CONTROL_DIM = 2, 1
CONTROL_LOW, CONTROL_HIGH = -1.0, 1.0
FEATURE_NAMES = ("min_position", "max_position", "mean_speed", "effort")

# mean and standard deviation of raw_features over sample_pool(100_000, seed=0) (see module docstring)
FEATURE_MEAN = np.array([-1.011801, 0.043345, 0.015599, 0.333605])
FEATURE_SCALE = np.array([0.162251, 0.256187, 0.004771, 0.09403])

# the hidden reward direction: far up the right hill (max_position most), brisk, a deep back swing (which getting
# up needs), little effort; unit norm over the standardised features
TRUE_W = np.array([-0.2, 0.8, 0.3, -0.5]) / np.linalg.norm([-0.2, 0.8, 0.3, -0.5])


STATE_NAMES = ("x", "v")
CONTROLS = PiecewiseControls(T, (CONTROL_LOW,) * CONTROL_DIM, (CONTROL_HIGH,) * CONTROL_DIM, ("force",))


def control_bounds(n_segments: int = N_CTRL) -> np.ndarray:
    """``(n_segments, 2)`` rows ``(low, high)``, one per entry of a flat control vector: pass it as
    ``bounds=`` to ``scipy.optimize.minimize``."""
    return CONTROLS.bounds(n_segments)


def per_step(controls: np.ndarray) -> np.ndarray:
    """Validated piecewise-constant ``(..., N, 1)`` controls expanded to ``(..., T, 1)``, one row per step."""
    return CONTROLS.per_step(controls)


def step(state: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One gym step (module docstring) of ``(..., 2)`` states under ``(..., 1)`` forces, without the goal's
    absorption (no validation: this is the inner loop)."""
    x, v = state[..., 0], state[..., 1]
    force = np.clip(u[..., 0], CONTROL_LOW, CONTROL_HIGH)
    v = np.clip(v + force * POWER - GRAVITY * np.cos(3 * x), -MAX_SPEED, MAX_SPEED)
    x = np.clip(x + v, MIN_POSITION, MAX_POSITION)
    v = np.where((x == MIN_POSITION) & (v < 0), 0.0, v)
    return np.stack([x, v], axis=-1)


def simulate(controls: np.ndarray) -> np.ndarray:
    """States ``(..., T+1, 2)`` ``(x, v)`` from ``X0`` under piecewise-constant ``controls`` ``(..., N, 1)``; after
    the goal the car stays put with ``v = 0``. Vectorised over the leading (batch) axes; loops only over time."""
    u = per_step(controls)
    states = np.empty(u.shape[:-2] + (T + 1, STATE_DIM))
    states[..., 0, :] = X0
    done = np.zeros(u.shape[:-2], dtype=bool)
    for t in range(T):
        s = states[..., t, :]
        nxt = step(s, u[..., t, :])
        states[..., t + 1, :] = np.where(done[..., None], s * [1.0, 0.0], nxt)
        done = done | (states[..., t + 1, 0] >= GOAL_POSITION)
    return states


def raw_features(states: np.ndarray, controls: np.ndarray) -> np.ndarray:
    """Unscaled features ``(..., 4)``: ``min_t x_t``, ``max_t x_t``, ``mean_t |v_t|`` (``t = 1..T``) and
    ``mean_t u_t^2`` of ``states`` ``(..., T+1, 2)`` and the piecewise-constant ``controls`` ``(..., N, 1)`` that
    produced them."""
    s, u = CONTROLS.states_and_steps(states, controls, STATE_NAMES)
    x, v = s[..., 1:, 0], s[..., 1:, 1]
    effort = (u**2).sum(-1).mean(-1)
    return np.stack([x.min(-1), x.max(-1), np.abs(v).mean(-1), effort], axis=-1)


def features(states: np.ndarray, controls: np.ndarray) -> np.ndarray:
    """Standardised features ``(raw - FEATURE_MEAN) / FEATURE_SCALE``, ``(..., 4)``."""
    return (raw_features(states, controls) - FEATURE_MEAN) / FEATURE_SCALE


def features_of_controls(controls: np.ndarray, n_segments: int = N_CTRL) -> np.ndarray:
    """``features(simulate(controls), controls)``. ``controls`` is ``(..., n_segments, 1)`` or flat
    ``(..., n_segments)``, so ``lambda u: -TRUE_W @ features_of_controls(u)`` suits scipy."""
    c = CONTROLS.shaped(controls, n_segments)
    return features(simulate(c), c)

def sample_pool(n: int, seed: SeedLike = 0, n_segments: int = N_CTRL) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random trajectories: controls ``(n, n_segments, 1)`` uniform in ``[-1, 1]``, and their standardised
    features ``(n, 4)``. Same seed, same pool."""
    controls = CONTROLS.sample(n, n_segments, seed)
    return controls, features(simulate(controls), controls)
