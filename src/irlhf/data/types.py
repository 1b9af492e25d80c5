"""Validated containers for demonstrations: ``Trajectory`` and ``Transitions``.

Arrays are converted on construction, checked (lengths, dtypes, finite values) and made
read-only, so a container that exists is a valid one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from irlhf.core.errors import ValidationError, describe


def _as_array(name: str, value: Any, *, float_only: bool = False) -> np.ndarray:
    """Convert to a read-only numeric array; reject object/str dtypes and NaN/inf."""
    try:
        array = np.array(value, copy=True)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: could not be converted to an array ({exc})") from None
    numeric = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    if not (numeric or array.dtype == np.bool_):
        raise ValidationError(f"{name}: dtype {array.dtype} is not numeric; expected integer, float or bool values")
    if float_only and not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        flat = int(np.flatnonzero(~np.isfinite(array))[0])
        where = np.unravel_index(flat, array.shape)
        raise ValidationError(f"{name}: non-finite value {array[where]} at index {where}; expected finite numbers")
    array.flags.writeable = False
    return array


@dataclasses.dataclass(frozen=True, eq=False)
class Trajectory:
    """One episode. ``obs`` (T+1, *obs_shape), ``acts`` (T, *act_shape), ``rews`` (T,) or None.

    ``infos`` is None or a list of T dicts; ``terminal`` says the episode ended in a terminal
    state (True) rather than being truncated (False).
    """

    obs: np.ndarray
    acts: np.ndarray
    rews: np.ndarray | None = None
    infos: list[dict[str, Any]] | None = None
    terminal: bool = True

    def __post_init__(self) -> None:
        obs = _as_array("Trajectory.obs", self.obs)
        acts = _as_array("Trajectory.acts", self.acts)
        if obs.ndim == 0 or acts.ndim == 0:
            raise ValidationError(
                f"Trajectory: obs shape {obs.shape}, acts shape {acts.shape}; expected arrays with a time axis"
            )
        if len(obs) != len(acts) + 1:
            raise ValidationError(
                f"Trajectory: {len(obs)} observations for {len(acts)} actions; expected len(obs) == len(acts) + 1"
            )
        object.__setattr__(self, "obs", obs)
        object.__setattr__(self, "acts", acts)
        if self.rews is not None:
            rews = _as_array("Trajectory.rews", self.rews, float_only=True)
            if rews.shape != (len(acts),):
                raise ValidationError(f"Trajectory.rews: shape {rews.shape}; expected ({len(acts)},), one per action")
            object.__setattr__(self, "rews", rews)
        if self.infos is not None:
            if not isinstance(self.infos, (list, tuple)) or len(self.infos) != len(acts) or not all(
                isinstance(i, dict) for i in self.infos
            ):
                raise ValidationError(
                    f"Trajectory.infos: {describe(self.infos)}; expected a list of {len(acts)} dicts, one per action"
                )
            object.__setattr__(self, "infos", list(self.infos))
        if not isinstance(self.terminal, (bool, np.bool_)):
            raise ValidationError(f"Trajectory.terminal={describe(self.terminal)}: expected a bool")
        object.__setattr__(self, "terminal", bool(self.terminal))

    def __len__(self) -> int:
        """Number of actions T."""
        return len(self.acts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trajectory):
            return NotImplemented
        same_rews = (self.rews is None and other.rews is None) or (
            self.rews is not None and other.rews is not None and np.array_equal(self.rews, other.rews)
        )
        return (
            self.obs.dtype == other.obs.dtype
            and self.acts.dtype == other.acts.dtype
            and np.array_equal(self.obs, other.obs)
            and np.array_equal(self.acts, other.acts)
            and same_rews
            and self.infos == other.infos
            and self.terminal == other.terminal
        )


@dataclasses.dataclass(frozen=True, eq=False)
class Transitions:
    """Flattened transitions: ``obs`` (N, *obs_shape), ``acts`` (N, *act_shape), ``next_obs`` (N, *obs_shape),
    ``dones`` (N,) bool, ``rews`` (N,) float or None."""

    obs: np.ndarray
    acts: np.ndarray
    next_obs: np.ndarray
    dones: np.ndarray
    rews: np.ndarray | None = None

    def __post_init__(self) -> None:
        obs = _as_array("Transitions.obs", self.obs)
        acts = _as_array("Transitions.acts", self.acts)
        next_obs = _as_array("Transitions.next_obs", self.next_obs)
        dones = _as_array("Transitions.dones", self.dones)
        if obs.ndim == 0:
            raise ValidationError("Transitions.obs: a scalar; expected an array with a leading sample axis")
        n = len(obs)
        for name, array in (("acts", acts), ("next_obs", next_obs), ("dones", dones)):
            if array.ndim == 0 or len(array) != n:
                raise ValidationError(f"Transitions.{name}: shape {array.shape}; expected {n} rows like obs")
        if next_obs.shape != obs.shape:
            raise ValidationError(f"Transitions.next_obs: shape {next_obs.shape}; expected obs's shape {obs.shape}")
        if dones.shape != (n,) or not (dones.dtype == np.bool_ or np.isin(dones, (0, 1)).all()):
            raise ValidationError(f"Transitions.dones: {describe(dones)}; expected ({n},) booleans")
        dones = dones.astype(bool)
        dones.flags.writeable = False
        for name, array in (("obs", obs), ("acts", acts), ("next_obs", next_obs), ("dones", dones)):
            object.__setattr__(self, name, array)
        if self.rews is not None:
            rews = _as_array("Transitions.rews", self.rews, float_only=True)
            if rews.shape != (n,):
                raise ValidationError(f"Transitions.rews: shape {rews.shape}; expected ({n},)")
            object.__setattr__(self, "rews", rews)

    def __len__(self) -> int:
        return len(self.obs)


def flatten_trajectories(trajectories: Sequence[Trajectory]) -> Transitions:
    """Concatenate trajectories into ``Transitions``; ``dones`` is True on a terminal episode's last step.

    Rewards are kept only if every trajectory has them.
    """
    if len(trajectories) == 0:
        raise ValidationError("trajectories: empty; expected at least one Trajectory")
    for k, traj in enumerate(trajectories):
        if not isinstance(traj, Trajectory):
            raise ValidationError(f"trajectories[{k}]: {type(traj).__name__}; expected a Trajectory")
    dones = []
    for traj in trajectories:
        d = np.zeros(len(traj), dtype=bool)
        if traj.terminal and len(traj) > 0:
            d[-1] = True
        dones.append(d)
    with_rews = all(t.rews is not None for t in trajectories)
    return Transitions(
        obs=np.concatenate([t.obs[:-1] for t in trajectories]),
        acts=np.concatenate([t.acts for t in trajectories]),
        next_obs=np.concatenate([t.obs[1:] for t in trajectories]),
        dones=np.concatenate(dones),
        rews=np.concatenate([t.rews for t in trajectories]) if with_rews else None,
    )
