"""Judgement data: pairwise ``Comparisons`` (with ties) and ``Rankings`` of items.

    data = Comparisons(i=[0, 0, 1], j=[1, 2, 2], mu=[1, 0.5, 0], n_items=3)
    data = Comparisons.from_pairs([(0, 1), (2, 0)])             # (winner, loser) pairs, mu = 1
    data = Comparisons.load("prefs.jsonl")                       # or .csv; data.save(path) writes atomically
    ranks = Rankings([[2, 0, 1], [1, 3]], n_items=4)             # best first; a ranking may cover a subset
    pairs = ranks.to_comparisons()                               # every ordered pair of each ranking

``mu`` is the lecture's label: 1 = item ``i`` preferred, 0 = item ``j`` preferred, 0.5 = a tie (no
preference). JSONL rows are ``{"i": 0, "j": 1, "mu": 1}``; CSV files have the header ``i,j,mu``;
ranking JSONL rows are ``{"ranking": [2, 0, 1]}``. Containers are validated on construction and read-only.

    a, b, count, wins = pair_counts(data)                        # judgements collapsed onto item pairs a < b
    check_strongly_connected(data.n_items, a, b, count, wins)    # else the ML scores do not exist (Hunter 2004)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from irlhf.core.errors import ValidationError, describe
from irlhf.core.io import atomic_write_text

LABELS = (0.0, 0.5, 1.0)

__all__ = ["LABELS", "Comparisons", "Rankings", "ComparisonGraphError", "pair_counts", "check_strongly_connected",
           "read_file_rows"]


class ComparisonGraphError(ValidationError):
    """The comparisons do not determine finite scores (no prior was given)."""


def _item_ids(name: str, value: Any) -> np.ndarray:
    """1-D int64 item ids; floats are accepted only when integral (e.g. read from CSV)."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: could not be converted to an array ({exc})") from None
    if array.ndim != 1:
        raise ValidationError(f"{name}: shape {array.shape}; expected a 1-D array of item ids")
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValidationError(f"{name}: dtype {array.dtype}; expected integer item ids")
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array) | (array != np.round(array))
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValidationError(f"{name}[{k}] = {array[k]}: expected an integer item id")
    return array.astype(np.int64)


def _check_range(name: str, ids: np.ndarray, n_items: int) -> None:
    bad = (ids < 0) | (ids >= n_items)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValidationError(f"{name}[{k}] = {ids[k]}: item id out of range; expected 0 <= id < n_items = {n_items}")


def _check_n_items(n_items: Any) -> int:
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < 2:
        raise ValidationError(f"n_items={describe(n_items)}: expected an int >= 2")
    return int(n_items)


@dataclasses.dataclass(frozen=True, eq=False)
class Comparisons:
    """M pairwise judgements between ``n_items`` items.

    i, j: (M,) int64 item ids with i != j.  mu: (M,) float64 in {1, 0.5, 0} (i preferred, tie, j preferred).
    n_items: number of items (default: largest id + 1, at least 2).
    """

    i: np.ndarray
    j: np.ndarray
    mu: np.ndarray
    n_items: int | None = None

    def __post_init__(self) -> None:
        i, j = _item_ids("i", self.i), _item_ids("j", self.j)
        try:
            mu = np.asarray(self.mu, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"mu: could not be converted to float ({exc})") from None
        if mu.ndim != 1 or len(i) != len(j) or len(i) != len(mu):
            raise ValidationError(f"i, j, mu: shapes {i.shape}, {j.shape}, {mu.shape}; expected three (M,) arrays")
        if len(i) == 0:
            raise ValidationError("comparisons: empty; expected at least one (i, j, mu) judgement")
        legal = (mu == 0.0) | (mu == 0.5) | (mu == 1.0)
        if not legal.all():
            k = int(np.flatnonzero(~legal)[0])
            raise ValidationError(f"mu[{k}] = {mu[k]}: expected 1 (i preferred), 0.5 (tie) or 0 (j preferred)")
        same = i == j
        if same.any():
            k = int(np.flatnonzero(same)[0])
            raise ValidationError(f"comparison {k}: i = j = {i[k]}; expected two different items")
        n_items = max(int(i.max()), int(j.max()), 1) + 1 if self.n_items is None else _check_n_items(self.n_items)
        _check_range("i", i, n_items)
        _check_range("j", j, n_items)
        for array in (i, j, mu):
            array.flags.writeable = False
        object.__setattr__(self, "i", i)
        object.__setattr__(self, "j", j)
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "n_items", n_items)

    def __len__(self) -> int:
        return len(self.mu)

    @classmethod
    def from_pairs(cls, pairs: Iterable[Sequence[int]], n_items: int | None = None) -> Comparisons:
        """From (winner, loser) pairs, e.g. ``choix``'s data format: mu = 1 for each."""
        array = np.asarray(list(pairs))
        if array.ndim != 2 or array.shape[1] != 2:
            raise ValidationError(f"pairs: shape {array.shape}; expected (M, 2) (winner, loser) pairs")
        return cls(array[:, 0], array[:, 1], np.ones(len(array)), n_items)

    def subset(self, index: np.ndarray | slice) -> Comparisons:
        """The judgements at ``index`` (same ``n_items``)."""
        return Comparisons(self.i[index], self.j[index], self.mu[index], self.n_items)

    # -- files ------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``.jsonl`` (one ``{"i", "j", "mu"}`` object per line) or ``.csv`` (header ``i,j,mu``), atomically."""
        target = Path(path)
        if target.suffix == ".jsonl":
            text = "".join(json.dumps({"i": int(a), "j": int(b), "mu": float(m)}) + "\n"
                           for a, b, m in zip(self.i, self.j, self.mu))
        elif target.suffix == ".csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["i", "j", "mu"])
            writer.writerows((int(a), int(b), float(m)) for a, b, m in zip(self.i, self.j, self.mu))
            text = buffer.getvalue()
        else:
            raise ValidationError(f"path={str(target)!r}: unknown extension; expected .jsonl or .csv")
        atomic_write_text(target, text)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], n_items: int | None = None) -> Comparisons:
        """Read a ``.jsonl`` or ``.csv`` file written by :meth:`save` (or by hand); errors name the line."""
        source = Path(path)
        rows = read_file_rows(source, ("i", "j", "mu"))
        try:
            return cls(*(np.array([row[k] for row in rows]) for k in ("i", "j", "mu")), n_items=n_items)
        except ValidationError as exc:
            raise ValidationError(f"path={str(source)!r}: {exc}") from None


@dataclasses.dataclass(frozen=True, eq=False)
class Rankings:
    """Orderings of items, best first. Each ranking lists >= 2 distinct items of ``range(n_items)``; it may
    cover only a subset (a partial ranking, e.g. 4-9 responses to one prompt out of many)."""

    rankings: tuple[np.ndarray, ...]
    n_items: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.rankings, np.ndarray) and self.rankings.ndim == 2:
            raw = list(self.rankings)
        elif isinstance(self.rankings, (list, tuple)):
            raw = list(self.rankings)
        else:
            raise ValidationError(f"rankings: {describe(self.rankings)}; expected a list of item-id lists")
        if not raw:
            raise ValidationError("rankings: empty; expected at least one ranking")
        checked = []
        for k, ranking in enumerate(raw):
            ids = _item_ids(f"rankings[{k}]", ranking)
            if len(ids) < 2:
                raise ValidationError(f"rankings[{k}]: {len(ids)} item(s); expected at least 2 ranked items")
            if len(np.unique(ids)) != len(ids):
                raise ValidationError(f"rankings[{k}] = {ids.tolist()}: an item appears twice; expected distinct items")
            checked.append(ids)
        top = max(int(r.max()) for r in checked) + 1
        n_items = max(top, 2) if self.n_items is None else _check_n_items(self.n_items)
        for k, ids in enumerate(checked):
            _check_range(f"rankings[{k}]", ids, n_items)
            ids.flags.writeable = False
        object.__setattr__(self, "rankings", tuple(checked))
        object.__setattr__(self, "n_items", n_items)

    def __len__(self) -> int:
        return len(self.rankings)

    def to_comparisons(self) -> Comparisons:
        """Full rank breaking: every pair (a ranked above b) of every ranking becomes (a, b, mu=1)."""
        winners, losers = [], []
        for ids in self.rankings:
            upper, lower = np.triu_indices(len(ids), k=1)
            winners.append(ids[upper])
            losers.append(ids[lower])
        i, j = np.concatenate(winners), np.concatenate(losers)
        return Comparisons(i, j, np.ones(len(i)), self.n_items)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``.jsonl``: one ``{"ranking": [...]}`` object per line, atomically."""
        target = Path(path)
        if target.suffix != ".jsonl":
            raise ValidationError(f"path={str(target)!r}: unknown extension; expected .jsonl")
        atomic_write_text(target, "".join(json.dumps({"ranking": r.tolist()}) + "\n" for r in self.rankings))
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], n_items: int | None = None) -> Rankings:
        source = Path(path)
        if source.suffix != ".jsonl":
            raise ValidationError(f"path={str(source)!r}: unknown extension; expected .jsonl")
        rows = read_file_rows(source, ("ranking",))
        try:
            return cls([row["ranking"] for row in rows], n_items=n_items)
        except ValidationError as exc:
            raise ValidationError(f"path={str(source)!r}: {exc}") from None


# -- the comparison graph: do the judgements determine finite scores? --------------------------------
def pair_counts(data: Comparisons) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Collapse judgements onto unordered pairs a < b: (a, b, count = judgements, wins = wins of a, a tie
    counting 1/2), each (P,) for the P compared pairs, in increasing order of (a, b)."""
    n = data.n_items
    a, b = np.minimum(data.i, data.j), np.maximum(data.i, data.j)
    wins_a = np.where(data.i == a, data.mu, 1.0 - data.mu)
    key = a * n + b
    if n * n <= max(8 * len(key), 1 << 20):  # a dense table of all pairs is cheap: count without sorting
        count = np.bincount(key, minlength=n * n).astype(np.float64)
        wins = np.bincount(key, weights=wins_a, minlength=n * n)
        keys = np.flatnonzero(count)
        count, wins = count[keys], wins[keys]
    else:
        keys, inverse = np.unique(key, return_inverse=True)
        count = np.bincount(inverse).astype(np.float64)
        wins = np.bincount(inverse, weights=wins_a)
    return keys // n, keys % n, count, wins


def check_strongly_connected(n: int, a: np.ndarray, b: np.ndarray, count: np.ndarray, wins: np.ndarray) -> None:
    """Raise ``ComparisonGraphError`` unless the maximum-likelihood Bradley-Terry / Plackett-Luce scores exist
    (finite, unique up to a constant): every item reachable from every other along "beat" edges u -> v
    (u beat v at least once, or tied with it). The message says which items break it. Inputs: ``pair_counts``."""
    src = np.concatenate([a[wins > 0], b[count - wins > 0]])
    dst = np.concatenate([b[wins > 0], a[count - wins > 0]])
    graph = scipy.sparse.coo_matrix((np.ones(len(src)), (src, dst)), shape=(n, n)).tocsr()
    n_strong, _ = scipy.sparse.csgraph.connected_components(graph, directed=True, connection="strong")
    if n_strong == 1:
        return
    hint = "; the maximum-likelihood scores do not exist: pass alpha > 0 (a prior) or add comparisons"
    seen = np.zeros(n, dtype=bool)
    seen[a] = seen[b] = True
    if not seen.all():
        missing = np.flatnonzero(~seen)
        raise ComparisonGraphError(f"item(s) {_first(missing)} appear in no comparison{hint}")
    n_weak, labels = scipy.sparse.csgraph.connected_components(graph, directed=True, connection="weak")
    if n_weak > 1:
        first = [int(np.flatnonzero(labels == k)[0]) for k in range(min(n_weak, 3))]
        raise ComparisonGraphError(f"the comparison graph has {n_weak} disconnected groups of items (e.g. items "
                                   f"{first} are never compared with each other's groups){hint}")
    indegree = np.bincount(dst, minlength=n)
    outdegree = np.bincount(src, minlength=n)
    if (indegree == 0).any():
        raise ComparisonGraphError(f"item(s) {_first(np.flatnonzero(indegree == 0))} never lose (every judgement "
                                   f"they are in, they win), so their scores go to +inf{hint}")
    if (outdegree == 0).any():
        raise ComparisonGraphError(f"item(s) {_first(np.flatnonzero(outdegree == 0))} never win (nor tie), so "
                                   f"their scores go to -inf{hint}")
    raise ComparisonGraphError(f"the items split into {n_strong} groups where one group beats another without "
                               f"ever losing to it (the 'beat' graph is not strongly connected){hint}")


def _first(items: np.ndarray, k: int = 5) -> str:
    shown = ", ".join(str(int(x)) for x in items[:k])
    return f"[{shown}{', ...' if len(items) > k else ''}] ({len(items)} in all)" if len(items) > 1 else shown


def read_file_rows(source: Path, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of a .jsonl or .csv file as dicts holding ``keys``; errors name the file and line."""
    if source.suffix not in (".jsonl", ".csv"):
        raise ValidationError(f"path={str(source)!r}: unknown extension; expected .jsonl or .csv")
    if not source.is_file():
        raise ValidationError(f"path={str(source)!r}: no such file")
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"path={str(source)!r}: not UTF-8 text ({exc})") from None
    rows: list[dict[str, Any]] = []
    if source.suffix == ".jsonl":
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"path={str(source)!r}, line {line_no}: not valid JSON ({exc})") from None
            if not isinstance(row, dict) or any(k not in row for k in keys):
                wanted = f" with keys {list(keys)}" if keys else ""
                raise ValidationError(f"path={str(source)!r}, line {line_no}: {describe(row)}; expected an object"
                                      + wanted)
            rows.append(row)
    else:
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or any(k not in reader.fieldnames for k in keys):
            raise ValidationError(f"path={str(source)!r}: header {reader.fieldnames}; expected columns {list(keys)}")
        for line_no, row in enumerate(reader, start=2):
            try:
                rows.append({k: float(row[k]) for k in keys})
            except (TypeError, ValueError):
                raise ValidationError(f"path={str(source)!r}, line {line_no}: {row}; expected numbers in "
                                      f"columns {list(keys)}") from None
    if not rows:
        raise ValidationError(f"path={str(source)!r}: no rows; expected at least one")
    return rows
