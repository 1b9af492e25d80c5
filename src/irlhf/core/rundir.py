"""Run directories: ``runs/<job>-<timestamp>/`` with config.json, metrics.jsonl, arrays, plots, report.

Every file is written atomically (temp file + rename); metrics are appended one JSON line at a time.

Each run directory made by :meth:`RunDir.create` holds ``run.json``, its status, so that an unfinished run
never looks complete: ``{"job", "status", "step", "started", "ended", "error"}`` with status "running" from
creation, then "finished", "interrupted" (Ctrl-C) or "failed" (``error``: the exception), and ``step`` the step
under way (:meth:`RunDir.begin_step`). :func:`closing_runs` closes the runs created inside a block according to
how the block ends; the CLI wraps every job in it, so every job's runs get their final status.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from irlhf.core.errors import ValidationError
from irlhf.core.io import atomic_open, atomic_write_text


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and non-finite floats into plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no inf/nan; keep them visible as strings
    if isinstance(value, Path):
        return str(value)
    return value


RUN_FILE = "run.json"
RUNNING, FINISHED, INTERRUPTED, FAILED = "running", "finished", "interrupted", "failed"
ENDINGS = (FINISHED, INTERRUPTED, FAILED)
_watching: list[list["RunDir"]] = []  # one list per open closing_runs() block: the runs created inside it


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def ending(exc: BaseException | None) -> str:
    """The status a run ends with when its work ends by ``exc``: finished (None), interrupted (Ctrl-C) or failed."""
    if exc is None:
        return FINISHED
    return INTERRUPTED if isinstance(exc, KeyboardInterrupt) else FAILED


def read_status(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``run.json`` of run directory ``path``; ``{"status": "unknown"}`` where there is none (older runs)."""
    try:
        return json.loads((Path(path) / RUN_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"status": "unknown"}


def stop_message(run: "RunDir") -> str:
    """Where an unfinished run stopped, e.g. "interrupted during step 'gail'; run directory runs/demo-... is
    unfinished (status 'interrupted' in run.json)"."""
    status = read_status(run.path)
    where = f" during step {status['step']!r}" if status.get("step") else ""
    return (f"{status['status']}{where}; run directory {run.path} is unfinished "
            f"(status {status['status']!r} in {RUN_FILE})")


def unfinished(runs: list["RunDir"]) -> list["RunDir"]:
    """The runs among ``runs`` that still exist and did not finish."""
    return [run for run in runs if read_status(run.path)["status"] in (RUNNING, INTERRUPTED, FAILED)]


@contextlib.contextmanager
def closing_runs() -> Iterator[list["RunDir"]]:
    """Close the runs created inside the block that are still running when it ends: finished if it returns,
    interrupted on Ctrl-C, failed (with the error) on any other exception, which then propagates. Yields the
    list of the runs created inside, filled as they are made."""
    runs: list[RunDir] = []
    _watching.append(runs)
    try:
        yield runs
    except BaseException as exc:
        _close_running(runs, exc)
        raise
    else:
        _close_running(runs, None)
    finally:
        del _watching[next(k for k, w in enumerate(_watching) if w is runs)]  # by identity: empty lists are equal


def _close_running(runs: list["RunDir"], exc: BaseException | None) -> None:
    for run in runs:
        if read_status(run.path)["status"] == RUNNING:
            with contextlib.suppress(OSError):  # best effort: never hide the job's own error behind this one
                run.close_after(exc)


class RunDir:
    """A run directory; create with :meth:`create`, then write artifacts through its methods."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    @classmethod
    def create(cls, job: str, out: str | os.PathLike[str] | None = None) -> "RunDir":
        """Make a fresh ``<out or ./runs>/<job>-<YYYYmmdd-HHMMSS>`` directory (suffixed if it exists)."""
        root = Path(out) if out is not None else Path("runs")
        if root.exists() and not root.is_dir():
            raise ValidationError(f"out={str(root)!r}: exists and is not a directory")
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = root / f"{job}-{stamp}"
        path, k = base, 1
        while True:
            try:
                path.mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:  # never reuse (and so never overwrite) an existing run
                path, k = Path(f"{base}-{k}"), k + 1
        run = cls(path)
        run.write_json(RUN_FILE, {"job": job, "status": RUNNING, "step": None, "started": _now()})
        if _watching:
            _watching[-1].append(run)
        return run

    # ------------------------------------------------------------------ status (run.json)

    def begin_step(self, name: str) -> None:
        """Record that step ``name`` is under way, so that an interrupted run says where it stopped."""
        self._update_status(step=name)

    def close(self, status: str, error: BaseException | None = None) -> None:
        """Record how the run ended: "finished", "interrupted" or "failed" (with ``error``, the exception)."""
        if status not in ENDINGS:
            raise ValidationError(f"status={status!r}: expected one of {list(ENDINGS)}")
        fields: dict[str, Any] = {"status": status, "ended": _now()}
        if error is not None:
            fields["error"] = " ".join(f"{type(error).__name__}: {error}".split())
        self._update_status(**fields)

    def close_after(self, exc: BaseException | None) -> None:
        """Record how the run ended from the exception that ended its work: None finished, Ctrl-C
        (KeyboardInterrupt) interrupted, anything else failed with that error."""
        status = ending(exc)
        self.close(status, error=exc if status == FAILED else None)

    def is_empty(self) -> bool:
        """True when the run holds nothing but its ``run.json``."""
        return all(p.name == RUN_FILE for p in self.path.iterdir())

    def _update_status(self, **fields: Any) -> None:
        self.write_json(RUN_FILE, {**read_status(self.path), **fields})

    # ------------------------------------------------------------------ artifacts

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, data: Any) -> Path:
        target = self.file(name)
        atomic_write_text(target, json.dumps(_jsonable(data), indent=2, sort_keys=True) + "\n")
        return target

    def write_config(self, config: Any) -> Path:
        data = config.to_dict() if hasattr(config, "to_dict") else config
        return self.write_json("config.json", data)

    def write_text(self, name: str, text: str) -> Path:
        target = self.file(name)
        atomic_write_text(target, text)
        return target

    def log(self, **metrics: Any) -> None:
        """Append one line of metrics (e.g. ``step=3, loss=0.1``) to metrics.jsonl."""
        line = json.dumps(_jsonable(metrics), sort_keys=True) + "\n"
        with open(self.file("metrics.jsonl"), "a", encoding="utf-8") as handle:
            handle.write(line)

    def save_array(self, name: str, array: np.ndarray) -> Path:
        target = self.file(name if name.endswith(".npy") else f"{name}.npy")
        with atomic_open(target, "wb") as handle:
            np.save(handle, np.asarray(array))
        return target

    def save_figure(self, name: str, figure: Any, dpi: int = 110) -> Path:
        """Save a matplotlib figure as PNG and close it."""
        import matplotlib.pyplot as plt  # why: slow optional plotting dependency, only when saving a figure

        target = self.file(name if name.endswith(".png") else f"{name}.png")
        with atomic_open(target, "wb") as handle:
            figure.savefig(handle, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(figure)
        return target
