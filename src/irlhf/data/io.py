"""Save and load lists of trajectories as one ``.npz`` file (atomic write, exact round trip)."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from irlhf.core.errors import ValidationError, describe
from irlhf.core.io import atomic_open
from irlhf.data.types import Trajectory

FORMAT = "irlhf.trajectories"
VERSION = 1


def check_uniform(trajectories: Sequence[Trajectory], *, why_steps: str | None = None) -> None:
    """Raise ``ValidationError`` unless ``trajectories`` is a non-empty list of ``Trajectory`` sharing obs / act
    dtypes and item shapes and one rews dtype (what a file needs to round-trip exactly). ``why_steps``: if
    given, zero-step trajectories are rejected too, with this reason."""
    if len(trajectories) == 0:
        raise ValidationError("trajectories: empty; expected at least one Trajectory to save")
    first = trajectories[0]
    for k, traj in enumerate(trajectories):
        if not isinstance(traj, Trajectory):
            raise ValidationError(f"trajectories[{k}]: {type(traj).__name__}; expected a Trajectory")
        if why_steps is not None and len(traj) == 0:
            raise ValidationError(f"trajectories[{k}]: has no steps; {why_steps}")
        for field in ("obs", "acts"):
            a, b = getattr(traj, field), getattr(first, field)
            if a.dtype != b.dtype or a.shape[1:] != b.shape[1:]:
                raise ValidationError(
                    f"trajectories[{k}].{field}: dtype {a.dtype}, item shape {a.shape[1:]}; expected {b.dtype}, "
                    f"{b.shape[1:]} like trajectories[0]"
                )
    rews_dtypes = {str(t.rews.dtype) for t in trajectories if t.rews is not None}
    if len(rews_dtypes) > 1:  # one stored dtype for all rewards: mixing would not round-trip exactly
        raise ValidationError(
            f"trajectories: rews dtypes {sorted(rews_dtypes)} differ; expected one rews dtype for all trajectories"
        )


def save_trajectories(path: str | os.PathLike[str], trajectories: Sequence[Trajectory]) -> Path:
    """Write ``trajectories`` to ``path`` (.npz). All must share obs/act dtypes and trailing shapes.

    Layout: concatenated ``obs``, ``acts``, ``rews``; per-trajectory ``lengths`` (T), ``terminal``,
    ``has_rews``; ``infos`` as one JSON string (only JSON-serialisable infos are accepted).
    """
    target = Path(path)
    if target.suffix != ".npz":
        raise ValidationError(f"path={str(target)!r}: expected a file name ending in .npz")
    check_uniform(trajectories)
    has_rews = np.array([t.rews is not None for t in trajectories])
    rews = [t.rews if t.rews is not None else np.zeros(len(t)) for t in trajectories]
    infos = [t.infos for t in trajectories]
    try:
        infos_json = json.dumps(infos)
    except (TypeError, ValueError) as exc:  # ValueError: circular references
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
    data = _read_npz(source)
    if not _is_scalar(data.get("format"), str) or data["format"].item() != FORMAT:
        raise ValidationError(f"path={str(source)!r}: not an irlhf trajectories file (missing format={FORMAT!r})")

    def corrupt(what: str) -> ValidationError:
        return ValidationError(f"path={str(source)!r}: corrupt trajectories file, {what}")

    if not _is_scalar(data.get("version"), (int, np.integer)) or not 1 <= data["version"].item() <= VERSION:
        raise corrupt(f"version {describe(data.get('version'))}; expected an int in [1, {VERSION}]")
    missing = {"obs", "acts", "rews", "lengths", "terminal", "has_rews", "infos"} - set(data)
    if missing:
        raise corrupt(f"missing arrays {sorted(missing)}")
    lengths = data["lengths"]
    if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer) or (lengths < 0).any():
        raise corrupt(f"'lengths' has shape {lengths.shape} and dtype {lengths.dtype}; expected non-negative ints (N,)")
    n = len(lengths)
    for name in ("terminal", "has_rews"):
        if data[name].shape != (n,) or data[name].dtype != np.bool_:
            raise corrupt(f"{name!r} has shape {data[name].shape} and dtype {data[name].dtype}; expected ({n},) bool")
    if any(data[name].ndim == 0 for name in ("obs", "acts", "rews")):
        raise corrupt("'obs', 'acts' and 'rews' must have a leading time axis")
    n_acts, n_obs = int(lengths.sum()), int(lengths.sum() + n)
    if len(data["acts"]) != n_acts or len(data["obs"]) != n_obs or data["rews"].shape != (n_acts,):
        raise corrupt("array lengths disagree with 'lengths'")
    if not _is_scalar(data["infos"], str):
        raise corrupt("'infos' is not a JSON string")
    try:
        infos = json.loads(data["infos"].item())
    except json.JSONDecodeError as exc:
        raise corrupt(f"infos are not valid JSON ({exc})") from None
    if not isinstance(infos, list) or len(infos) != n:
        raise corrupt(f"infos hold {type(infos).__name__}; expected a list of {n} entries, one per trajectory")
    rews_dtype = np.dtype(np.float64)
    if "rews_dtype" in data:
        try:
            rews_dtype = np.dtype(str(data["rews_dtype"].item()))
        except (TypeError, ValueError) as exc:
            raise corrupt(f"bad 'rews_dtype' ({exc})") from None
        if not np.issubdtype(rews_dtype, np.floating):
            raise corrupt(f"'rews_dtype' is {rews_dtype}; expected a float dtype")
    trajectories = []
    act_ends = np.cumsum(lengths)
    for k, length in enumerate(lengths):
        a_end = int(act_ends[k])
        a_start = a_end - int(length)
        o_start = a_start + k  # each trajectory has one more observation than actions
        try:
            traj = Trajectory(
                obs=data["obs"][o_start : o_start + int(length) + 1],
                acts=data["acts"][a_start:a_end],
                rews=data["rews"][a_start:a_end].astype(rews_dtype) if data["has_rews"][k] else None,
                infos=infos[k],
                terminal=bool(data["terminal"][k]),
            )
        except ValidationError as exc:
            raise corrupt(f"trajectory {k}: {exc}") from None
        trajectories.append(traj)
    return trajectories


def _read_npz(source: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file. Unreadable bytes raise a ValidationError in irlhf's words (numpy's own
    messages suggest ``allow_pickle``, which would let a file run code)."""
    def unreadable(why: str) -> ValidationError:
        return ValidationError(f"path={str(source)!r}: not a readable .npz file ({why}); expected demonstrations "
                               "written by irlhf (save_trajectories / save_demos)")

    if not zipfile.is_zipfile(source):  # np.load would try the bytes as .npy, then as a pickle
        raise unreadable("not a zip archive, which every .npz is; truncated, or another format")
    try:
        with np.load(source, allow_pickle=False) as npz:
            pickled = [key for key in npz.files if _holds_objects(npz.zip, key)]
            if pickled:
                raise ValidationError(f"path={str(source)!r}: array {pickled[0]!r} holds pickled Python objects, "
                                      "which irlhf never loads (unpickling can run code); expected numeric arrays")
            return {key: npz[key] for key in npz.files}
    except ValidationError:
        raise
    except Exception:  # any failure to decode the bytes (zip, zlib, npy header, CRC ...) means damaged
        raise unreadable("damaged: its arrays cannot be decoded") from None


def _holds_objects(archive: zipfile.ZipFile, key: str) -> bool:
    """Whether array ``key`` of an .npz archive has an object dtype (stored pickled), read from its header."""
    with archive.open(f"{key}.npy") as member:
        version = np.lib.format.read_magic(member)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        return header(member)[2].hasobject


def _is_scalar(array: object, kind: type | tuple[type, ...]) -> bool:
    """True if ``array`` is a 0-d numpy array holding a ``kind`` value."""
    return isinstance(array, np.ndarray) and array.shape == () and isinstance(array.item(), kind)
