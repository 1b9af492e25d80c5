"""A linear dynamical system for active preference learning over trajectories.

After the LDS task of Bıyık, Palan, Landolfi, Losey & Sadigh, "Asking easy questions: a user-friendly
approach to active reward learning", CoRL 2019, and Bıyık et al., "Learning reward functions from diverse
sources of human feedback", IJRR 2022: a fixed linear system driven by piecewise-constant controls, a reward
linear in a few trajectory features, the true weights ``TRUE_W`` hidden from the learner. The matrices and
features below are this library's choice (documented here), not a copy of theirs.

**Dynamics.** State ``x in R^3``, control ``u in R^2``, ``x_{t+1} = A x_t + B u_t`` for ``T = 20`` steps from the
fixed ``x_0 = (1, 0, -0.5)``, with::

    A = [[ 0.97, 0.20, 0.00],     B = [[0.0, 0.0],
         [-0.20, 0.97, 0.00],          [0.2, 0.0],
         [ 0.00, 0.10, 1.02]]          [0.0, 0.2]]

``(x1, x2)`` is a lightly damped oscillator (eigenvalues ``0.97 +- 0.2i``, modulus 0.990) and ``x3`` a slowly
unstable mode (eigenvalue 1.02) that ``x2`` feeds; ``u1`` pushes ``x2``, ``u2`` pushes ``x3`` (``(A, B)`` is
controllable). Left alone the state neither settles nor explodes within ``T``. Controls: ``N_CTRL = 4``
segments of ``T / N_CTRL = 5`` steps, each ``u in [-1, 1]^2``; flat, the 8-vector ``(u1_0, u2_0, u1_1, ...)``.

**Features** (``d = 4``), means over ``t = 1..T``:

1.-3. ``|x_i|``: ``mean_t |x_{t,i}|`` for ``i = 1, 2, 3``: how far each coordinate stays from the origin.
4. effort: ``mean_t ||u_t||^2``.

:func:`features` standardises them, ``(phi_raw - FEATURE_MEAN) / FEATURE_SCALE``, with the mean and standard
deviation over 100,000 trajectories of uniform random controls (``sample_pool``'s distribution, seed 0);
:func:`raw_features` gives the unscaled values. ``TRUE_W`` (unit norm) is negative on all four: bring the
state to the origin, ``x3`` first, without spending much effort; reward ``r(xi) = TRUE_W . phi(xi)``.
"""

from __future__ import annotations

import numpy as np

from irlhf.core.seeding import SeedLike
from irlhf.envs.controls import PiecewiseControls

T = 20
N_CTRL = 4
A = np.array([[0.97, 0.20, 0.00], [-0.20, 0.97, 0.00], [0.00, 0.10, 1.02]])
B = np.array([[0.0, 0.0], [0.2, 0.0], [0.0, 0.2]])
X0 = np.array([1.0, 0.0, -0.5])
STATE_DIM, CONTROL_DIM = A.shape[0], B.shape[1]
CONTROL_LOW, CONTROL_HIGH = -1.0, 1.0
FEATURE_NAMES = ("abs_x1", "abs_x2", "abs_x3", "effort")

# mean and standard deviation of raw_features over sample_pool(100_000, seed=0) (see module docstring)
FEATURE_MEAN = np.array([0.700759, 0.6638, 1.310689, 0.667113])
FEATURE_SCALE = np.array([0.237964, 0.258478, 0.737205, 0.21024])

# the hidden reward direction: small |x| (x3 most, x2 least) and little effort; unit norm
TRUE_W = -np.array([0.5, 0.3, 0.6, 0.55]) / np.linalg.norm([0.5, 0.3, 0.6, 0.55])


STATE_NAMES = ("x1", "x2", "x3")
CONTROLS = PiecewiseControls(T, (CONTROL_LOW,) * CONTROL_DIM, (CONTROL_HIGH,) * CONTROL_DIM, ("u1", "u2"))


def control_bounds(n_segments: int = N_CTRL) -> np.ndarray:
    """``(2 n_segments, 2)`` rows ``(low, high)``, one per entry of a flat control vector: pass it as
    ``bounds=`` to ``scipy.optimize.minimize``."""
    return CONTROLS.bounds(n_segments)


def per_step(controls: np.ndarray) -> np.ndarray:
    """Validated piecewise-constant ``(..., N, 2)`` controls expanded to ``(..., T, 2)``, one row per step."""
    return CONTROLS.per_step(controls)


def simulate(controls: np.ndarray) -> np.ndarray:
    """States ``(..., T+1, 3)`` from ``X0`` under piecewise-constant ``controls`` ``(..., N, 2)``. Vectorised
    over the leading (batch) axes; loops only over time."""
    u = per_step(controls)
    states = np.empty(u.shape[:-2] + (T + 1, STATE_DIM))
    states[..., 0, :] = X0
    for t in range(T):
        states[..., t + 1, :] = states[..., t, :] @ A.T + u[..., t, :] @ B.T
    return states


def raw_features(states: np.ndarray, controls: np.ndarray) -> np.ndarray:
    """Unscaled features ``(..., 4)``: ``mean_t |x_{t,i}|`` (``i = 1..3``, ``t = 1..T``) and ``mean_t ||u_t||^2``
    of ``states`` ``(..., T+1, 3)`` and the piecewise-constant ``controls`` ``(..., N, 2)`` that produced them."""
    s, u = CONTROLS.states_and_steps(states, controls, STATE_NAMES)
    effort = (u**2).sum(-1).mean(-1)
    return np.concatenate([np.abs(s[..., 1:, :]).mean(-2), effort[..., None]], axis=-1)


def features(states: np.ndarray, controls: np.ndarray) -> np.ndarray:
    """Standardised features ``(raw - FEATURE_MEAN) / FEATURE_SCALE``, ``(..., 4)``."""
    return (raw_features(states, controls) - FEATURE_MEAN) / FEATURE_SCALE


def features_of_controls(controls: np.ndarray, n_segments: int = N_CTRL) -> np.ndarray:
    """``features(simulate(controls), controls)``. ``controls`` is ``(..., n_segments, 2)`` or flat
    ``(..., 2 n_segments)``, so ``lambda u: -TRUE_W @ features_of_controls(u)`` suits scipy."""
    c = CONTROLS.shaped(controls, n_segments)
    return features(simulate(c), c)

def sample_pool(n: int, seed: SeedLike = 0, n_segments: int = N_CTRL) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random trajectories: controls ``(n, n_segments, 2)`` uniform in ``[-1, 1]``, and their standardised
    features ``(n, 4)``. Same seed, same pool."""
    controls = CONTROLS.sample(n, n_segments, seed)
    return controls, features(simulate(controls), controls)
