"""Demonstrations and tables on disk: one entry point for every format, every write atomic.

:func:`save_hf` / :func:`load_hf` handle a ``save_to_disk`` directory, ``.parquet`` and ``.jsonl`` (the row
schema of :mod:`irlhf.data.hf_table`); :func:`save_demos` / :func:`load_demos` add ``.npz``
(``irlhf.data.io``). Every write goes to a temp sibling, then is renamed into place (:func:`write_directory`,
:func:`save_table`). ``datasets`` (the ``hf`` extra) is imported only when needed.

The ``.jsonl`` files are written and read with the standard ``json`` module (exact float round trip;
pandas' ``to_json`` rounds to 10 digits). JSON has no dtypes, so each row also carries ``obs_dtype``,
``act_dtype`` and ``rew_dtype`` strings, which :func:`from_hf_dataset` honours when present.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from irlhf.core.errors import ValidationError
from irlhf.core.io import atomic_open, naming_target, temp_sibling_prefix, usual_mode
from irlhf.data.hf_table import REQUIRED, from_hf_dataset, import_datasets, to_hf_dataset
from irlhf.data.io import load_trajectories, save_trajectories
from irlhf.data.types import Trajectory

__all__ = ["REQUIRED", "FORMATS", "import_datasets", "to_hf_dataset", "from_hf_dataset", "save_hf", "load_hf",
           "save_demos", "load_demos", "save_table", "write_directory"]

FORMATS = (".npz", ".parquet", ".jsonl", "a directory (save_to_disk)")


# -- files ---------------------------------------------------------------------------------------------
def _kind(path: Path, *, saving: bool) -> str:
    suffix = path.suffix.lower()
    if path.is_dir():
        return "dir"
    if suffix in (".npz", ".parquet", ".jsonl"):
        return suffix[1:]
    if saving and suffix == "":
        return "dir"
    if not saving and not path.exists():
        raise ValidationError(f"path={str(path)!r}: no such file or directory")
    raise ValidationError(f"path={str(path)!r}: unknown format {suffix or '(no suffix)'!r}; expected "
                          f"{', '.join(FORMATS)}")


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and (not any(path.iterdir()) or (path / "dataset_info.json").is_file()
                              or (path / "state.json").is_file())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide ``datasets``' own progress bars while writing (restored afterwards)."""
    hf_tqdm = import_datasets()
    was_disabled = hf_tqdm.are_progress_bars_disabled()
    hf_tqdm.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            hf_tqdm.enable_progress_bars()


def _replace_dir(tmp: Path, target: Path) -> None:
    """Move the complete directory ``tmp`` to ``target``; an existing ``target`` is removed only afterwards."""
    if not target.exists():
        os.rename(tmp, target)
        return
    backup = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
    os.rmdir(backup)
    os.rename(target, backup)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def _write_jsonl(handle: Any, dataset: Any) -> None:
    features = dataset.features
    dtypes = {"obs_dtype": _feature_dtype(features["obs"]), "act_dtype": _feature_dtype(features["act"]),
              "rew_dtype": _feature_dtype(features["rew"])}
    for row in dataset.to_list():
        handle.write(json.dumps({**row, **dtypes}, allow_nan=False) + "\n")


def _feature_dtype(feature: Any) -> str:
    while not hasattr(feature, "dtype"):
        feature = getattr(feature, "feature")
    return str(feature.dtype)


def save_hf(path: str | os.PathLike[str], trajectories: Sequence[Trajectory]) -> Path:
    """Write ``trajectories`` as a table (:func:`to_hf_dataset`) to ``path`` and return it.

    ``.parquet`` (``Dataset.to_parquet``) and ``.jsonl`` (one JSON object per row) are written to a temp
    file, then renamed; any other path is a ``save_to_disk`` directory, written to a temp sibling
    directory and renamed into place. An existing directory is replaced only after the new one is
    complete, and only if it is a saved dataset (or empty).
    """
    target = Path(path)
    kind = _kind(target, saving=True)
    if kind == "npz":
        raise ValidationError(f"path={str(target)!r}: .npz is not a Hugging Face format; use save_demos")
    dataset = to_hf_dataset(trajectories)
    if kind == "jsonl":
        with atomic_open(target, "w") as handle:
            _write_jsonl(handle, dataset)
        return target
    if kind == "parquet":
        return save_table(target, dataset)
    if target.exists() and not _is_saved_dataset(target):
        raise ValidationError(f"path={str(target)!r}: exists and is not a saved dataset directory; "
                              "refusing to replace it")
    return save_table(target, dataset)


def write_directory(target: str | os.PathLike[str], write: Any) -> Path:
    """Call ``write(tmp)`` on a fresh temp sibling directory, then move it to ``target``; an existing ``target``
    is replaced only once the new one is complete, and a failed write leaves nothing behind. The result has the
    usual modes (not mkdtemp's 0700), and an OSError names ``target``, not the temp directory."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=temp_sibling_prefix(target), suffix=".tmp"))
    except OSError as exc:
        raise naming_target(exc, target) from None
    try:
        write(tmp)
        _usual_modes(tmp)
        _replace_dir(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise naming_target(exc, target) from None
        raise
    return target


def _usual_modes(root: Path) -> None:
    """Give ``root`` and everything under it the modes a plain mkdir / open would (0700 / 0600 otherwise)."""
    os.chmod(root, usual_mode(directory=True))
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), usual_mode(directory=True))
        for name in files:
            os.chmod(os.path.join(folder, name), usual_mode())


def save_table(target: str | os.PathLike[str], dataset: Any) -> Path:
    """Write a ``datasets.Dataset`` atomically: ``.parquet`` as one file, any other path as a ``save_to_disk``
    directory (``write_directory``)."""
    target = Path(target)
    if target.suffix == ".parquet":
        with atomic_open(target, "wb") as handle, _quiet():
            dataset.to_parquet(handle)
        return target

    def save(tmp: Path) -> None:
        with _quiet():
            dataset.save_to_disk(str(tmp))

    return write_directory(target, save)


def load_hf(path: str | os.PathLike[str]) -> list[Trajectory]:
    """Read trajectories from a ``save_to_disk`` directory, a ``.parquet`` or a ``.jsonl`` file (local only)."""
    source = Path(path)
    kind = _kind(source, saving=False)
    if kind == "npz":
        raise ValidationError(f"path={str(source)!r}: .npz is not a Hugging Face format; use load_demos")
    if not source.exists():
        raise ValidationError(f"path={str(source)!r}: no such {'directory' if kind == 'dir' else 'file'}")
    if kind == "dir":
        ds = import_datasets()
        try:
            dataset = ds.load_from_disk(str(source), keep_in_memory=True)
        except Exception as exc:
            raise ValidationError(f"path={str(source)!r}: not a readable saved dataset directory "
                                  f"({type(exc).__name__}: {exc})") from None
        table = dataset
    elif kind == "parquet":
        import_datasets()  # registers the Array*D extension types with pyarrow
        import pyarrow.parquet as pq  # why: optional (hf extra), slow to import

        try:
            table = pq.read_table(source)
        except Exception as exc:
            raise ValidationError(f"path={str(source)!r}: not a readable .parquet file "
                                  f"({type(exc).__name__}: {exc})") from None
    else:
        table = _read_jsonl(source)
    return from_hf_dataset(table)


def _read_jsonl(source: Path) -> Any:
    import pyarrow as pa  # why: optional (hf extra), slow to import

    rows = []
    try:
        with open(source, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValidationError(f"path={str(source)!r}: line {number} is not valid JSON ({exc})") from None
                if not isinstance(row, dict):
                    raise ValidationError(f"path={str(source)!r}: line {number} is {type(row).__name__}; "
                                          "expected a JSON object (one row per line)")
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise ValidationError(f"path={str(source)!r}: not a UTF-8 text file ({exc})") from None
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValidationError(f"path={str(source)!r}: rows do not form a table ({exc})") from None


def save_demos(path: str | os.PathLike[str], trajectories: Sequence[Trajectory]) -> Path:
    """Write demonstrations; the format follows ``path``: ``.npz`` (``irlhf.data.io``), ``.parquet``,
    ``.jsonl``, or a ``save_to_disk`` directory (an existing directory, or a path without a suffix)."""
    target = Path(path)
    if _kind(target, saving=True) == "npz":
        return save_trajectories(target, trajectories)
    return save_hf(target, trajectories)


def load_demos(path: str | os.PathLike[str]) -> list[Trajectory]:
    """Read demonstrations from any format :func:`save_demos` writes (dispatch on the path)."""
    source = Path(path)
    if _kind(source, saving=False) == "npz":
        return load_trajectories(source)
    return load_hf(source)

