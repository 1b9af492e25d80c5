"""Demonstrations as the sample-based learners take them: validated, packed into arrays, checked against the
environment's spaces, and the observation statistics the learners standardise with.

    obs, acts = demo_arrays(demos)                         # a list of Trajectory, a Transitions, ...
    acts = check_demos(obs, acts, obs_space, act_space)    # int64 (Discrete) / float32 (Box) actions
    d = demo_transitions(demos, obs_space, act_space)      # {"obs", "acts", "next_obs", "dones"}
    mean, scale = obs_stats(obs, obs_space)                # (x - mean) / scale standardises a Box
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from irlhf.core.errors import ValidationError
from irlhf.data.types import Trajectory, flatten_trajectories

__all__ = ["check_demos", "demo_arrays", "demo_transitions", "obs_stats"]


def demo_arrays(demos: Any, fields: tuple[str, ...] = ("obs", "acts"), unit: str = "sample") -> tuple[np.ndarray, ...]:
    """Copies of the ``fields`` arrays (default obs, acts) from a list of Trajectory, Transitions, or anything
    with those attributes: numeric, non-empty, finite, equally long; errors count rows as ``unit``s."""
    if isinstance(demos, Trajectory):
        demos = [demos]
    if isinstance(demos, Sequence) and not isinstance(demos, (str, bytes)):
        if len(demos) == 0:
            raise ValidationError("demos: empty list; expected at least one Trajectory")
        demos = flatten_trajectories(demos)
    if not all(hasattr(demos, k) for k in fields):
        raise ValidationError(f"demos: {type(demos).__name__}; expected a list of Trajectory or Transitions")
    try:
        arrays = tuple(np.array(getattr(demos, k), copy=True) for k in fields)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"demos: {' / '.join(fields)} not numeric arrays ({exc})") from None
    for name, a in zip(fields, arrays):
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise ValidationError(f"demos.{name}: dtype {a.dtype}; expected numbers")
        if a.ndim == 0 or len(a) == 0:
            raise ValidationError(f"demos.{name}: shape {a.shape}; expected at least one {unit}")
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            i = int(np.flatnonzero((~np.isfinite(a.reshape(len(a), -1))).any(axis=1))[0])
            raise ValidationError(f"demos.{name}: non-finite value in {unit} {i}; expected finite numbers")
    if len({len(a) for a in arrays}) > 1:
        counts = ", ".join(f"{len(a)} {k}" for k, a in zip(fields, arrays))
        raise ValidationError(f"demos: {counts} ({unit}s); expected equal counts")
    return arrays


def check_demos(obs: np.ndarray, acts: np.ndarray, obs_space: spaces.Space, act_space: spaces.Space) -> np.ndarray:
    """Check (N, ...) observations and actions against the spaces; return the actions in the dtype training
    uses: int64 (N,) for Discrete (an (N, 1) column is accepted), float32 (N, *shape) for Box."""
    if obs.shape[1:] != tuple(obs_space.shape):
        raise ValidationError(f"demos.obs: shape {obs.shape}; expected (N, *{tuple(obs_space.shape)}) to match "
                              f"observation_space {obs_space}")
    if isinstance(obs_space, spaces.Discrete):
        lo, hi = int(obs_space.start), int(obs_space.start + obs_space.n - 1)
        if np.any(obs != np.round(obs)) or obs.min() < lo or obs.max() > hi:
            raise ValidationError(f"demos.obs: values in [{obs.min()}, {obs.max()}]; expected integers in "
                                  f"[{lo}, {hi}] for {obs_space}")
    if isinstance(act_space, spaces.Discrete):
        if acts.ndim == 2 and acts.shape[1] == 1:
            acts = acts[:, 0]
        if acts.ndim != 1:
            raise ValidationError(f"demos.acts: shape {acts.shape}; expected (N,) integer actions for {act_space}")
        lo, hi = int(act_space.start), int(act_space.start + act_space.n - 1)
        bad = np.flatnonzero((acts != np.round(acts)) | (acts < lo) | (acts > hi))
        if bad.size:
            raise ValidationError(f"demos.acts[{int(bad[0])}]={acts[bad[0]].item()!r}: expected an integer in [{lo}, {hi}] "
                                  f"for {act_space}")
        return acts.astype(np.int64)
    if acts.shape[1:] != tuple(act_space.shape):
        raise ValidationError(f"demos.acts: shape {acts.shape}; expected (N, *{tuple(act_space.shape)}) to match "
                              f"action_space {act_space}")
    return acts.astype(np.float32)


def check_observation_shapes(trajectories: Sequence[Any], obs_space: spaces.Space, env: str, source: str
                             ) -> None:
    """Demonstrations of another observation shape than ``env``'s: an error naming their ``source`` (e.g.
    "demos='pendulum.npz'"), before any learner starts."""
    expected = getattr(obs_space, "shape", None)
    for k, traj in enumerate(trajectories):
        shape = tuple(np.shape(traj.obs)[1:])
        if expected is not None and shape != tuple(expected):
            raise ValidationError(f"{source}: trajectory {k} has observations of shape {shape}; expected "
                                  f"{tuple(expected)}, the observation shape of env={env!r}")


def demo_transitions(demos: Any, obs_space: spaces.Space, act_space: spaces.Space) -> dict[str, np.ndarray]:
    """{"obs", "acts", "next_obs", "dones"} of the demonstrations' transitions, checked against the spaces
    (next observations too); acts as :func:`check_demos` returns them, dones (N,) bool (real terminations)."""
    obs, acts, next_obs, dones = demo_arrays(demos, ("obs", "acts", "next_obs", "dones"), "transition")
    if next_obs.shape != obs.shape:
        raise ValidationError(f"demos: obs {obs.shape}, next_obs {next_obs.shape}; expected next_obs shaped like obs")
    acts = check_demos(obs, acts, obs_space, act_space)
    check_demos(next_obs, acts, obs_space, act_space)
    return {"obs": obs, "acts": acts, "next_obs": next_obs, "dones": dones.reshape(len(obs)).astype(bool)}


def obs_stats(obs: np.ndarray, obs_space: spaces.Space | None = None, enabled: bool = True
              ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(mean, scale) per flattened dimension of the observations (float64), for ``(x - mean) / scale``;
    scale is the std, or 1 for a constant feature (std <= 1e-8 max(1, |mean|)). (None, None) when not
    ``enabled`` or for a Discrete space (one-hot inputs are not standardised)."""
    if not enabled or isinstance(obs_space, spaces.Discrete):
        return None, None
    x = np.asarray(obs).reshape(len(obs), -1).astype(np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(std > 1e-8 * np.maximum(1.0, np.abs(mean)), std, 1.0)
