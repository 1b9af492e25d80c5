"""Run directories: ``runs/<job>-<timestamp>/`` with config.json, metrics.jsonl, arrays, plots, report.

Every file is written atomically (temp file + rename); metrics are appended one JSON line at a time.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
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
        return cls(path)

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
