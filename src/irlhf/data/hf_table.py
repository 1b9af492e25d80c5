"""Demonstrations as a Hugging Face ``datasets`` table, one row per step, and back.

Row schema of :func:`to_hf_dataset` (explicit ``Features``, so dtypes survive):

=============  ==================================================================================
episode_id     int64: index of the trajectory in the list (0, 1, ...)
step           int64: 0 .. T-1 within the episode
obs            observation at ``step``, the trajectory's obs dtype: a plain value for scalar (Discrete)
               observations, ``List(Value, length=d)`` for (d,), ``Array2D``..``Array5D`` for 2-5 dims
act            action at ``step``, same rules (int64 Discrete actions stay int64, Box (1,) is a list)
rew            reward (float64, or the trajectories' float rews dtype); null when the trajectory has none
next_obs       observation after the action (= obs of the next row of the episode; the last row holds
               the trajectory's final observation)
terminated     bool: True only on the last row of an episode that ended in a terminal state
truncated      bool: True only on the last row of an episode that was cut off (``terminal=False``)
info           (only when some trajectory has infos and all are JSON-serialisable) the step's info dict as
               a JSON string, null for trajectories without infos; otherwise infos are dropped
=============  ==================================================================================

:func:`from_hf_dataset` inverts it exactly and also reads users' own tables (see its docstring). Files
(directory, ``.parquet``, ``.jsonl``, ``.npz``) are read and written by :mod:`irlhf.data.hf`. ``datasets``
(the ``hf`` extra) is imported only when needed (:func:`import_datasets`).

Optional ``obs_dtype`` / ``act_dtype`` / ``rew_dtype`` columns (written to ``.jsonl`` files, which have no
dtypes) name the numpy dtypes :func:`from_hf_dataset` casts to.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from irlhf.core.errors import IrlhfError, ValidationError, describe
from irlhf.data.io import check_uniform
from irlhf.data.types import Trajectory

__all__ = ["REQUIRED", "import_datasets", "to_hf_dataset", "from_hf_dataset"]

REQUIRED = ("episode_id", "obs", "act", "next_obs")
_DTYPE_COLUMNS = {"obs": "obs_dtype", "act": "act_dtype", "rew": "rew_dtype"}


def import_datasets() -> Any:
    """The ``datasets`` module, or an IrlhfError saying how to install it."""
    try:
        import datasets  # why: optional (hf extra), slow to import
    except ImportError:  # an IrlhfError, so the CLI prints one line instead of a traceback
        raise IrlhfError(
            "Hugging Face `datasets` is not installed; install the extra with: pip install irlhf[hf]"
        ) from None
    return datasets


# -- trajectories -> table ---------------------------------------------------------------------------
def _feature(shape: tuple[int, ...], dtype: np.dtype) -> Any:
    ds = import_datasets()
    value = ds.Value(np.dtype(dtype).name)
    if len(shape) == 0:
        return value
    if 2 <= len(shape) <= 5:
        return getattr(ds, f"Array{len(shape)}D")(shape=tuple(shape), dtype=np.dtype(dtype).name)
    list_type = getattr(ds, "List", None) or ds.Sequence  # `List` since datasets 4
    feature = value
    for size in reversed(shape):
        feature = list_type(feature, length=size)
    return feature


def _check_trajectories(trajectories: Sequence[Trajectory]) -> None:
    if isinstance(trajectories, Trajectory) or not isinstance(trajectories, Sequence):
        raise ValidationError(f"trajectories: {describe(trajectories)}; expected a list of Trajectory")
    check_uniform(trajectories, why_steps="the table stores one row per step, expected trajectories with at "
                  "least one action")


def _infos_json(trajectories: Sequence[Trajectory]) -> list[str | None] | None:
    """One JSON string (or None) per row, or None to drop infos (none given, or not JSON round-trippable)."""
    if all(t.infos is None for t in trajectories):
        return None
    rows: list[str | None] = []
    for traj in trajectories:
        if traj.infos is None:
            rows += [None] * len(traj)
            continue
        for info in traj.infos:
            try:
                text = json.dumps(info, allow_nan=False)
            except (TypeError, ValueError):
                return None
            if json.loads(text) != info:  # e.g. tuples or int keys would not come back equal
                return None
            rows.append(text)
    return rows


def to_hf_dataset(trajectories: Sequence[Trajectory]) -> Any:
    """A ``datasets.Dataset`` with one row per step (schema in the module docstring).

    All trajectories must share obs/act dtypes and item shapes and have at least one step. Infos are
    kept as an ``info`` JSON-string column only if every info dict survives a JSON round trip
    unchanged; otherwise (e.g. numpy values in infos) the column is dropped.
    """
    ds = import_datasets()
    _check_trajectories(trajectories)
    first = trajectories[0]
    lengths = np.array([len(t) for t in trajectories], dtype=np.int64)
    n = int(lengths.sum())
    ends = np.cumsum(lengths) - 1
    terminal = np.array([t.terminal for t in trajectories])
    terminated = np.zeros(n, dtype=bool)
    truncated = np.zeros(n, dtype=bool)
    terminated[ends[terminal]] = True
    truncated[ends[~terminal]] = True
    rews_dtype = next((t.rews.dtype for t in trajectories if t.rews is not None), np.dtype(np.float64))
    rew_values = np.concatenate([t.rews if t.rews is not None else np.zeros(len(t), rews_dtype)
                                 for t in trajectories]).astype(rews_dtype)
    rew_mask = np.concatenate([np.full(len(t), t.rews is None) for t in trajectories])
    import pyarrow as pa  # why: optional (hf extra), slow to import

    obs_shape, act_shape = first.obs.shape[1:], first.acts.shape[1:]
    columns: dict[str, Any] = {
        "episode_id": np.repeat(np.arange(len(trajectories), dtype=np.int64), lengths),
        "step": np.concatenate([np.arange(length, dtype=np.int64) for length in lengths]),
        "obs": np.concatenate([t.obs[:-1] for t in trajectories]),
        "act": np.concatenate([t.acts for t in trajectories]),
        "rew": pa.array(rew_values, mask=rew_mask, type=pa.from_numpy_dtype(rews_dtype)),
        "next_obs": np.concatenate([t.obs[1:] for t in trajectories]),
        "terminated": terminated,
        "truncated": truncated,
    }
    features = {
        "episode_id": ds.Value("int64"),
        "step": ds.Value("int64"),
        "obs": _feature(obs_shape, first.obs.dtype),
        "act": _feature(act_shape, first.acts.dtype),
        "rew": ds.Value(np.dtype(rews_dtype).name),
        "next_obs": _feature(obs_shape, first.obs.dtype),
        "terminated": ds.Value("bool"),
        "truncated": ds.Value("bool"),
    }
    infos = _infos_json(trajectories)
    if infos is not None:
        columns["info"] = infos
        features["info"] = ds.Value("string")
    return ds.Dataset.from_dict(columns, features=ds.Features(features))


# -- table -> trajectories ---------------------------------------------------------------------------
def _arrow_to_numpy(array: Any, column: str, row_of: np.ndarray) -> np.ndarray:
    """Numeric numpy array (rows, *item_shape) from an arrow array of numbers or equal-length nested lists.

    ``row_of[i]`` is the table row of element ``i`` (for messages)."""
    import pyarrow as pa  # why: optional (hf extra), slow to import
    import pyarrow.compute as pc  # why: optional (hf extra)

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks else pa.array([], type=array.type)
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    if array.null_count:
        i = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValidationError(f"column {column!r}: null at row {int(row_of[i])}; expected a value in every row")
    kind = array.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return np.asarray(array.to_numpy(zero_copy_only=False))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != lengths[0]).any():
            i = int(np.flatnonzero(lengths != lengths[0])[0])
            raise ValidationError(
                f"column {column!r}: ragged values, length {int(lengths[i])} at row {int(row_of[i])} but "
                f"{int(lengths[0])} at row {int(row_of[0])}; expected the same shape in every row"
            )
        size = int(lengths[0]) if len(lengths) else 0
        inner = _arrow_to_numpy(array.flatten(), column, np.repeat(row_of, size))
        return inner.reshape(len(array), size, *inner.shape[1:])
    raise ValidationError(f"column {column!r}: arrow type {kind}; expected numbers or (nested) lists of numbers")


def _table(dataset: Any) -> Any:
    """The arrow table of a ``datasets.Dataset`` (indices applied), or a ``pyarrow.Table`` as is."""
    import pyarrow as pa  # why: optional (hf extra), slow to import

    if isinstance(dataset, pa.Table):
        return dataset
    ds = import_datasets()
    if isinstance(dataset, ds.DatasetDict):
        raise ValidationError(f"dataset: a DatasetDict with splits {sorted(dataset)}; expected one Dataset "
                              "(pick a split, e.g. dataset['train'])")
    if not isinstance(dataset, ds.Dataset):
        raise ValidationError(f"dataset: {type(dataset).__name__}; expected a datasets.Dataset")
    return dataset.with_format("arrow")[:]


def _dtype_override(table: Any, name: str) -> np.dtype | None:
    column = _DTYPE_COLUMNS[name]
    if column not in table.column_names:
        return None
    values = set(table.column(column).to_pylist())
    if len(values) != 1:
        raise ValidationError(f"column {column!r}: values {sorted(map(str, values))}; expected one dtype name")
    try:
        return np.dtype(str(values.pop()))
    except TypeError as exc:
        raise ValidationError(f"column {column!r}: not a numpy dtype name ({exc})") from None


def _cast(array: np.ndarray, dtype: np.dtype | None, column: str) -> np.ndarray:
    if dtype is None or array.dtype == dtype:
        return array
    cast = array.astype(dtype)
    if not np.array_equal(cast.astype(array.dtype), array):
        raise ValidationError(f"column {column!r}: values do not fit dtype {dtype} exactly")
    return cast


def _check_finite(array: np.ndarray, column: str, rows: np.ndarray) -> None:
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array).all(axis=tuple(range(1, array.ndim)))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValidationError(f"column {column!r}: non-finite value (NaN or inf) at row {int(rows[i])}; "
                                  "expected finite numbers")


def _flag(table: Any, name: str, rows: np.ndarray) -> np.ndarray | None:
    if name not in table.column_names:
        return None
    values = _arrow_to_numpy(table.column(name), name, np.arange(table.num_rows))[rows]
    if values.ndim != 1 or not (values.dtype == np.bool_ or np.isin(values, (0, 1)).all()):
        raise ValidationError(f"column {name!r}: {describe(values)}; expected one bool per row")
    return values.astype(bool)


def from_hf_dataset(dataset: Any) -> list[Trajectory]:
    """Trajectories from a table with one row per step (a ``datasets.Dataset`` or a ``pyarrow.Table``).

    The exact inverse of :func:`to_hf_dataset`; also reads users' own tables:

    - required columns ``episode_id`` (ints), ``obs``, ``act``, ``next_obs`` (numbers or equal-length
      nested lists); within an episode ``next_obs[t]`` must equal ``obs[t+1]``.
    - ``step`` (optional): rows are ordered by (episode_id, step) and steps must be 0..T-1 without
      duplicates or gaps; without it, rows keep table order within an episode. Trajectories come out
      in increasing ``episode_id``.
    - ``rew`` (optional): all null or all non-null within an episode (null: ``rews=None``).
    - ``terminated`` / ``truncated`` (optional bools, True at most on an episode's last row):
      ``terminal`` = terminated on the last row. With only ``truncated``, terminal = not truncated.
      With neither, every episode counts as truncated (``terminal=False``): an episode that just stops
      is not assumed to have reached a terminal state.
    - ``info`` (optional): JSON dict strings, all null or all non-null within an episode.
    - ``obs_dtype`` / ``act_dtype`` / ``rew_dtype`` (optional): numpy dtype names to cast to (JSON Lines).
    Anything else raises ``ValidationError`` naming the column, row (table row number) or episode.
    """
    table = _table(dataset)
    available = list(table.column_names)
    missing = [c for c in REQUIRED if c not in available]
    if missing:
        raise ValidationError(f"dataset: missing columns {missing}; expected {list(REQUIRED)} "
                              f"(available: {available})")
    n = table.num_rows
    if n == 0:
        raise ValidationError("dataset: empty table; expected at least one row (one row per step)")
    all_rows = np.arange(n)
    episode = _arrow_to_numpy(table.column("episode_id"), "episode_id", all_rows)
    if episode.ndim != 1 or not np.issubdtype(episode.dtype, np.integer):
        raise ValidationError(f"column 'episode_id': {describe(episode)}; expected one int per row")
    if "step" in available:
        step = _arrow_to_numpy(table.column("step"), "step", all_rows)
        if step.ndim != 1 or not np.issubdtype(step.dtype, np.integer):
            raise ValidationError(f"column 'step': {describe(step)}; expected one int per row")
        order = np.lexsort((step, episode))
    else:
        step = None
        order = np.argsort(episode, kind="stable")
    ep = episode[order]
    starts = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]])
    ends = np.r_[starts[1:], n]
    first_row = np.zeros(n, dtype=bool)
    first_row[starts] = True
    last_row = np.zeros(n, dtype=bool)
    last_row[ends - 1] = True
    if step is not None:
        st = step[order]
        expected = np.arange(n) - np.repeat(starts, ends - starts)
        bad = st != expected
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            if first_row[i]:
                what = f"starts at step {int(st[i])}"
            elif st[i] == st[i - 1]:
                what = f"has step {int(st[i])} twice (rows {int(order[i - 1])} and {int(order[i])})"
            else:
                what = f"jumps from step {int(st[i - 1])} to {int(st[i])} (row {int(order[i])})"
            raise ValidationError(f"episode {int(ep[i])} {what}; expected steps 0..T-1, each once")

    arrays = {}
    for name in ("obs", "act", "next_obs"):
        values = _arrow_to_numpy(table.column(name), name, all_rows)[order]
        _check_finite(values, name, order)
        arrays[name] = values
    obs, act, next_obs = arrays["obs"], arrays["act"], arrays["next_obs"]
    if next_obs.shape[1:] != obs.shape[1:]:
        raise ValidationError(f"column 'next_obs': item shape {next_obs.shape[1:]}; expected obs's item shape "
                              f"{obs.shape[1:]}")
    obs = _cast(obs, _dtype_override(table, "obs"), "obs")
    next_obs = _cast(next_obs, obs.dtype, "next_obs")
    act = _cast(act, _dtype_override(table, "act"), "act")
    inner = ~last_row[:-1]
    equal = next_obs[:-1] == obs[1:]
    differs = inner & ~equal.all(axis=tuple(range(1, equal.ndim)))
    if differs.any():
        i = int(np.flatnonzero(differs)[0])
        where = f"step {int(step[order][i])}" if step is not None else f"row {int(order[i])}"
        raise ValidationError(
            f"episode {int(ep[i])}, {where}: next_obs differs from the obs of the following step (row "
            f"{int(order[i + 1])}); expected contiguous steps, next_obs[t] == obs[t+1]"
        )

    rews, rew_null = None, None
    if "rew" in available:
        import pyarrow as pa  # why: optional (hf extra), slow to import

        column = table.column("rew")
        rew_null = np.asarray(column.is_null().to_numpy(zero_copy_only=False))[order]
        if pa.types.is_null(column.type):
            rews = np.zeros(n)
        else:
            filled = column.fill_null(0)
            rews = _arrow_to_numpy(filled, "rew", all_rows)[order]
            if rews.ndim != 1:
                raise ValidationError(f"column 'rew': item shape {rews.shape[1:]}; expected one number per row")
            if rews.dtype == np.bool_ or not np.issubdtype(rews.dtype, np.number):
                raise ValidationError(f"column 'rew': dtype {rews.dtype}; expected numbers")
            _check_finite(rews, "rew", order)
            if not np.issubdtype(rews.dtype, np.floating):
                rews = rews.astype(np.float64)
            rews = _cast(rews, _dtype_override(table, "rew"), "rew")
    terminated = _flag(table, "terminated", order)
    truncated = _flag(table, "truncated", order)
    for name, flags in (("terminated", terminated), ("truncated", truncated)):
        if flags is not None and (flags & ~last_row).any():
            i = int(np.flatnonzero(flags & ~last_row)[0])
            raise ValidationError(f"column {name!r}: True at row {int(order[i])} of episode {int(ep[i])}, which is "
                                  "not the episode's last step; expected True only on an episode's last row")
    if terminated is not None and truncated is not None and (terminated & truncated).any():
        i = int(np.flatnonzero(terminated & truncated)[0])
        raise ValidationError(f"row {int(order[i])} (episode {int(ep[i])}): both terminated and truncated; "
                              "expected at most one")
    infos_column = None
    if "info" in available:
        infos_column = [table.column("info")[int(r)].as_py() for r in order]

    trajectories = []
    for start, end in zip(starts, ends):
        start, end = int(start), int(end)
        episode_id = int(ep[start])
        traj_rews = None
        if rews is not None:
            null = rew_null[start:end]
            if null.any() and not null.all():
                i = start + int(np.flatnonzero(null != null[0])[0])
                raise ValidationError(
                    f"column 'rew': episode {episode_id} has null and non-null rewards (row {int(order[start])} "
                    f"vs row {int(order[i])}); expected rewards on every step of an episode or on none"
                )
            traj_rews = None if null[0] else rews[start:end]
        last = end - 1
        if terminated is not None:
            terminal = bool(terminated[last])
        elif truncated is not None:
            terminal = not bool(truncated[last])
        else:
            terminal = False
        infos = None
        if infos_column is not None:
            infos = _episode_infos(infos_column[start:end], episode_id, order[start:end])
        try:
            trajectories.append(Trajectory(obs=np.concatenate([obs[start:end], next_obs[last:end]]),
                                           acts=act[start:end], rews=traj_rews, infos=infos, terminal=terminal))
        except ValidationError as exc:
            raise ValidationError(f"episode {episode_id}: {exc}") from None
    return trajectories


def _episode_infos(texts: list[Any], episode_id: int, rows: np.ndarray) -> list[dict] | None:
    if all(t is None for t in texts):
        return None
    infos = []
    for text, row in zip(texts, rows):
        if not isinstance(text, str):
            raise ValidationError(f"column 'info': {describe(text)} at row {int(row)} (episode {episode_id}); "
                                  "expected a JSON object string in every row of an episode or in none")
        try:
            info = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"column 'info': invalid JSON at row {int(row)} ({exc})") from None
        if not isinstance(info, dict):
            raise ValidationError(f"column 'info': {describe(info)} at row {int(row)}; expected a JSON object")
        infos.append(info)
    return infos
