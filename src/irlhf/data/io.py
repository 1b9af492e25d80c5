"""Save and load lists of trajectories as one ``.npz`` file (atomic write, exact round trip)."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from irlhf.core.errors import ValidationError
from irlhf.core.io import atomic_open
from irlhf.data.types import Trajectory

FORMAT = "irlhf.trajectories"
VERSION = 1


def save_trajectories(path: str | os.PathLike[str], trajectories: Sequence[Trajectory]) -> Path:
    """Write ``trajectories`` to ``path`` (.npz). All must share obs/act dtypes and trailing shapes.

    Layout: concatenated ``obs``, ``acts``, ``rews``; per-trajectory ``lengths`` (T), ``terminal``,
    ``has_rews``; ``infos`` as one JSON string (only JSON-serialisable infos are accepted).
    """
    target = Path(path)
    if target.suffix != ".npz":
        raise ValidationError(f"path={str(target)!r}: expected a file name ending in .npz")
    if len(trajectories) == 0:
        raise ValidationError("trajectories: empty; expected at least one Trajectory to save")
    first = trajectories[0]
    for k, traj in enumerate(trajectories):
        if not isinstance(traj, Trajectory):
            raise ValidationError(f"trajectories[{k}]: {type(traj).__name__}; expected a Trajectory")
        for field in ("obs", "acts"):
            a, b = getattr(traj, field), getattr(first, field)
            if a.dtype != b.dtype or a.shape[1:] != b.shape[1:]:
                raise ValidationError(
                    f"trajectories[{k}].{field}: dtype {a.dtype}, item shape {a.shape[1:]}; expected {b.dtype}, "
                    f"{b.shape[1:]} like trajectories[0]"
                )
    has_rews = np.array([t.rews is not None for t in trajectories])
    rews = [t.rews if t.rews is not None else np.zeros(len(t)) for t in trajectories]
    infos = [t.infos for t in trajectories]
    try:
        infos_json = json.dumps(infos)
    except TypeError as exc:
        raise ValidationError(f"trajectories: infos are not JSON-serialisable ({exc})") from None
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "obs": np.concatenate([t.obs for t in trajectories]),
        "acts": np.concatenate([t.acts for t in trajectories]),
        "rews": np.concatenate(rews).astype(np.float64),
        "rews_dtype": np.array(str(next((t.rews.dtype for t in trajectories if t.rews is not None), "float64"))),
        "lengths": np.array([len(t) for t in trajectories], dtype=np.int64),
        "terminal": np.array([t.terminal for t in trajectories]),
        "has_rews": has_rews,
        "infos": np.array(infos_json),
    }
    with atomic_open(target, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return target


def load_trajectories(path: str | os.PathLike[str]) -> list[Trajectory]:
    """Read trajectories written by :func:`save_trajectories`; corrupt or foreign files raise clearly."""
    source = Path(path)
    if not source.is_file():
        raise ValidationError(f"path={str(source)!r}: no such file")
    try:
        with np.load(source, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ValidationError(f"path={str(source)!r}: not a readable .npz file ({exc})") from None
    if data.get("format", np.array("")).item() != FORMAT:
        raise ValidationError(f"path={str(source)!r}: not an irlhf trajectories file (missing format={FORMAT!r})")
    missing = {"obs", "acts", "rews", "lengths", "terminal", "has_rews", "infos"} - set(data)
    if missing:
        raise ValidationError(f"path={str(source)!r}: corrupt trajectories file, missing arrays {sorted(missing)}")
    lengths = data["lengths"]
    n_acts, n_obs = int(lengths.sum()), int(lengths.sum() + len(lengths))
    if (lengths < 0).any() or len(data["acts"]) != n_acts or len(data["obs"]) != n_obs or len(data["rews"]) != n_acts:
        raise ValidationError(f"path={str(source)!r}: corrupt trajectories file, array lengths disagree with 'lengths'")
    try:
        infos = json.loads(data["infos"].item())
    except json.JSONDecodeError as exc:
        raise ValidationError(f"path={str(source)!r}: corrupt infos ({exc})") from None
    rews_dtype = np.dtype(str(data["rews_dtype"].item())) if "rews_dtype" in data else np.float64
    trajectories = []
    act_ends = np.cumsum(lengths)
    for k, length in enumerate(lengths):
        a_end = int(act_ends[k])
        a_start = a_end - int(length)
        o_start = a_start + k  # each trajectory has one more observation than actions
        trajectories.append(
            Trajectory(
                obs=data["obs"][o_start : o_start + int(length) + 1],
                acts=data["acts"][a_start:a_end],
                rews=data["rews"][a_start:a_end].astype(rews_dtype) if data["has_rews"][k] else None,
                infos=infos[k],
                terminal=bool(data["terminal"][k]),
            )
        )
    return trajectories
