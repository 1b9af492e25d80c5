"""SQLite store of labelling queries, their media and the labels people give them.

One file holds everything (stdlib ``sqlite3``, WAL journal, ``synchronous=FULL``, schema marked by
``PRAGMA user_version = 1``): ``sessions``, ``queries`` (payload as JSON), ``media`` (bytes as BLOBs),
``labels`` (one per query and annotator) and ``assignments`` (leases handed out by ``next_query``).
Every write runs in a ``BEGIN IMMEDIATE`` transaction and is committed before the call returns, and each
thread (and process) uses its own connection with a 30 s busy timeout, so many labellers and a training
loop can share one file without losing a label.

    store = LabelStore("labels.db")
    qid = store.add_query("pair", {"left": "a", "right": "b"}, session="run1",
                          media={"a": (gif_a, "image/gif"), "b": (gif_b, "image/gif")})
    query = store.next_query("alice");  store.add_label(query.id, "alice", "left")
    aggregate("pair", query.payload, [lab.value for lab in store.labels(query_id=qid)])   # -> 1.0

Kinds, payloads and label values (checked by ``check_payload`` and ``check_label``):

- ``pair``: payload ``{"left": MEDIA, "right": MEDIA, "title"?, "meta"?}``; value "left" | "right" | "equal" | "skip"
- ``text``: payload ``{"prompt": str, "responses": [str] (2..9), "meta"?}``; value ``{"ranking": [[i, ...], ...]}``
  (tie groups, best first, every index once) or "skip"
- ``dagger``: payload ``{"frame": MEDIA, "actions": [str] (2..32), "title"?, "meta"?}``;
  value ``{"action": i}`` or "skip"
- ``tamer``: payload ``{"clip": MEDIA, "n_steps": int >= 1, "step_seconds": float > 0, "title"?, "meta"?}``;
  value ``{"events": [{"t": seconds from the clip's start, "h": 1 | -1}, ...]}`` (no skip: no events is the answer)

MEDIA is the name of an entry of the ``media`` dict given to ``add_query``; the stored payload holds the
media id (32 lowercase hex) instead, which ``LabelStore.media`` resolves to ``(bytes, mime)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from irlhf.core.errors import IrlhfError, ValidationError, describe
from irlhf.core.io import atomic_write_text

KINDS = ("pair", "text", "dagger", "tamer")
MIME_TYPES = ("image/gif", "image/png", "image/jpeg", "video/mp4")
PAIR_VALUES = ("left", "right", "equal", "skip")
SKIP = "skip"
MAX_STR = 20000
MAX_EVENTS = 10000
TAMER_SLACK_SECONDS = 5.0  # feedback may arrive a little after the clip ends (human reaction time)
SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 30.0

ANNOTATOR_RE = re.compile(r"[A-Za-z0-9_.\- ]{1,40}")
SESSION_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
QUERY_ID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")  # also matches the default uuid4().hex ids
MEDIA_ID_RE = re.compile(r"[0-9a-f]{32}")

_MEDIA_FIELDS = {"pair": ("left", "right"), "text": (), "dagger": ("frame",), "tamer": ("clip",)}
_OPTIONAL_FIELDS = {"pair": ("title", "meta"), "text": ("meta",), "dagger": ("title", "meta"),
                    "tamer": ("title", "meta")}
_REQUIRED_FIELDS = {"pair": ("left", "right"), "text": ("prompt", "responses"), "dagger": ("frame", "actions"),
                    "tamer": ("clip", "n_steps", "step_seconds")}
_SQLITE_MAGIC = b"SQLite format 3\x00"
_TABLES = ("sessions", "queries", "media", "labels", "assignments")

_SCHEMA = """
CREATE TABLE sessions (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL
);
CREATE TABLE queries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    session TEXT NOT NULL REFERENCES sessions(name),
    payload TEXT NOT NULL,
    n_annotators INTEGER NOT NULL CHECK (n_annotators >= 1),
    n_labels INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE INDEX queries_session ON queries(session, seq);
CREATE INDEX queries_open ON queries(seq) WHERE n_labels < n_annotators;
CREATE TABLE media (
    id TEXT PRIMARY KEY,
    query_id TEXT NOT NULL REFERENCES queries(id),
    name TEXT NOT NULL,
    mime TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX media_query ON media(query_id);
CREATE TABLE labels (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    query_id TEXT NOT NULL REFERENCES queries(id),
    annotator TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (query_id, annotator)
);
CREATE INDEX labels_annotator ON labels(annotator);
CREATE TABLE assignments (
    query_id TEXT NOT NULL REFERENCES queries(id),
    annotator TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (query_id, annotator)
);
CREATE INDEX assignments_annotator ON assignments(annotator, expires);
"""


class StoreError(IrlhfError):
    """The store file cannot be used: not SQLite, corrupt, another schema, or a conflicting write."""


class UnknownQueryError(IrlhfError):
    """No query with this id in the store."""


class UnknownMediaError(IrlhfError):
    """No media with this id in the store (or the id is not 32 lowercase hex characters)."""


class LabelError(ValidationError):
    """A label value (or annotator name) does not fit its query's kind and payload."""


@dataclasses.dataclass(frozen=True)
class Query:
    """One question put to annotators; ``payload`` holds media ids in place of media names."""

    id: str
    kind: str
    session: str
    payload: dict[str, Any]
    n_annotators: int
    created: float  # unix seconds
    n_labels: int


@dataclasses.dataclass(frozen=True)
class Label:
    """One annotator's answer to one query; ``value`` is normalised (see ``check_label``)."""

    query_id: str
    annotator: str
    value: Any
    created: float  # unix seconds


# ----------------------------------------------------------------------------------------------- validation


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)  # True is an int in Python, never an index here


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_name(field: str, value: Any, pattern: re.Pattern[str], expected: str,
                error: type[IrlhfError] = ValidationError) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise error(f"{field}={describe(value)}: expected {expected}")
    return value


def check_annotator(annotator: Any) -> str:
    """``annotator`` if it matches ``^[A-Za-z0-9_.\\- ]{1,40}$``, else LabelError."""
    return _check_name("annotator", annotator, ANNOTATOR_RE,
                       "1 to 40 letters, digits, spaces or _ . -", LabelError)


def check_session(session: Any) -> str:
    """``session`` if it matches ``^[A-Za-z0-9_.\\-]{1,64}$``, else ValidationError."""
    return _check_name("session", session, SESSION_RE, "1 to 64 letters, digits or _ . -")


def check_query_id(query_id: Any) -> str:
    """``query_id`` if it matches ``^[A-Za-z0-9_.\\-]{1,64}$``, else ValidationError."""
    return _check_name("query_id", query_id, QUERY_ID_RE, "1 to 64 letters, digits or _ . -")


def _check_strings(field: str, value: Any, error: type[IrlhfError], depth: int = 0) -> None:
    """Every string in a JSON value (keys too) is at most MAX_STR characters."""
    if depth > 64:  # deeper nesting is no real metadata and would blow the recursion limit
        raise error(f"{field}: nested more than 64 levels; expected shallower JSON")
    if isinstance(value, str):
        if len(value) > MAX_STR:
            raise error(f"{field}: a string of {len(value)} characters; expected at most {MAX_STR}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise error(f"{field}: key {describe(key)}; expected string keys (JSON objects)")
            _check_strings(f"{field}[{key[:40]!r}]", key, error, depth + 1)
            _check_strings(f"{field}[{key[:40]!r}]", item, error, depth + 1)
    elif isinstance(value, (list, tuple)):
        for k, item in enumerate(value):
            _check_strings(f"{field}[{k}]", item, error, depth + 1)


def _json(value: Any) -> str:
    """Canonical JSON text (sorted keys, no NaN) so equal values store as equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def _check_str(field: str, value: Any, *, non_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{field}={describe(value)}: expected a string")
    if non_empty and not value:
        raise ValidationError(f"{field}: empty string; expected a non-empty string")
    if len(value) > MAX_STR:
        raise ValidationError(f"{field}: a string of {len(value)} characters; expected at most {MAX_STR}")
    return value


def _check_str_list(field: str, value: Any, lo: int, hi: int) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not lo <= len(value) <= hi:
        raise ValidationError(f"{field}={describe(value)}: expected a list of {lo} to {hi} strings")
    return [_check_str(f"{field}[{k}]", item, non_empty=True) for k, item in enumerate(value)]


def check_payload(kind: Any, payload: Any, media: Iterable[str] | None = None) -> dict[str, Any]:
    """Validated copy of a query payload of ``kind``; raises ValidationError naming the bad field.

    ``media``: the names of the query's media; every MEDIA field must name one of them. ``None`` checks MEDIA
    fields only as strings (e.g. a stored payload, where they already hold media ids).
    """
    if kind not in KINDS:
        raise ValidationError(f"kind={describe(kind)}: expected one of {', '.join(KINDS)}")
    if not isinstance(payload, Mapping):
        raise ValidationError(f"payload={describe(payload)}: expected a dict for kind {kind!r}")
    allowed = _REQUIRED_FIELDS[kind] + _OPTIONAL_FIELDS[kind]
    unknown = sorted(str(k) for k in payload if k not in allowed)
    if unknown:
        raise ValidationError(f"payload: unknown field(s) {unknown} for kind {kind!r}; expected {list(allowed)}")
    missing = [k for k in _REQUIRED_FIELDS[kind] if k not in payload]
    if missing:
        raise ValidationError(f"payload: missing field(s) {missing} for kind {kind!r}; "
                              f"required {list(_REQUIRED_FIELDS[kind])}")
    out: dict[str, Any] = {}
    names = None if media is None else set(media)
    for field in _MEDIA_FIELDS[kind]:
        name = _check_str(f"payload[{field!r}]", payload[field], non_empty=True)
        if names is not None and name not in names:
            raise ValidationError(f"payload[{field!r}]={name!r}: no such media; expected one of {sorted(names)}")
        out[field] = name
    if "title" in payload:
        out["title"] = _check_str("payload['title']", payload["title"])
    if kind == "text":
        out["prompt"] = _check_str("payload['prompt']", payload["prompt"])
        out["responses"] = _check_str_list("payload['responses']", payload["responses"], 2, 9)
    elif kind == "dagger":
        out["actions"] = _check_str_list("payload['actions']", payload["actions"], 2, 32)
    elif kind == "tamer":
        n_steps, step = payload["n_steps"], payload["step_seconds"]
        if not _is_int(n_steps) or n_steps < 1:
            raise ValidationError(f"payload['n_steps']={describe(n_steps)}: expected an int >= 1")
        if not _is_number(step) or not math.isfinite(step) or step <= 0:
            raise ValidationError(f"payload['step_seconds']={describe(step)}: expected a finite number > 0 (seconds)")
        out["n_steps"], out["step_seconds"] = int(n_steps), float(step)
    if "meta" in payload:
        _check_strings("payload['meta']", payload["meta"], ValidationError)
        try:
            out["meta"] = json.loads(_json(payload["meta"]))  # a deep copy that is sure to be plain JSON
        except (TypeError, ValueError) as err:
            raise ValidationError(f"payload['meta']={describe(payload['meta'])}: not JSON ({err}); "
                                  "expected dicts, lists, strings, finite numbers, booleans or None") from None
    return out


def _check_index(field: str, value: Any, n: int) -> int:
    if not _is_int(value) or not 0 <= value < n:
        raise LabelError(f"{field}={describe(value)}: expected an int in 0..{n - 1}")
    return int(value)


def _only_key(value: Any, key: str, kind: str, example: str) -> Any:
    if not isinstance(value, Mapping) or set(value) != {key}:
        raise LabelError(f"value={describe(value)}: expected {example} or 'skip' for kind {kind!r}")
    return value[key]


def check_label(kind: Any, payload: Mapping[str, Any], value: Any) -> Any:
    """Validated, normalised copy of a label ``value`` for a query of ``kind`` with ``payload``; else LabelError.

    Normal forms: text tie groups sorted inside (``[[1, 0]]`` -> ``[[0, 1]]``), tamer ``t`` as float and ``h`` as
    int, so that equal answers compare equal.
    """
    if kind not in KINDS:
        raise LabelError(f"kind={describe(kind)}: expected one of {', '.join(KINDS)}")
    if kind == "pair":
        if value not in PAIR_VALUES or not isinstance(value, str):
            raise LabelError(f"value={describe(value)}: expected one of {', '.join(PAIR_VALUES)} for kind 'pair'")
        return value
    if value == SKIP and kind != "tamer" and isinstance(value, str):
        return SKIP
    if kind == "text":
        n = len(payload["responses"])
        groups = _only_key(value, "ranking", kind, '{"ranking": [[i, ...], ...]}')
        if isinstance(groups, str) or not isinstance(groups, (list, tuple)) or not groups:
            raise LabelError(f"value['ranking']={describe(groups)}: expected a non-empty list of tie groups "
                             "(lists of response indices), best first")
        out, seen = [], set()
        for g, group in enumerate(groups):
            if isinstance(group, str) or not isinstance(group, (list, tuple)) or not group:
                raise LabelError(f"value['ranking'][{g}]={describe(group)}: expected a non-empty list of "
                                 "response indices")
            indices = [_check_index(f"value['ranking'][{g}][{k}]", i, n) for k, i in enumerate(group)]
            for i in indices:
                if i in seen:
                    raise LabelError(f"value['ranking']: response index {i} appears twice; expected every "
                                     f"index 0..{n - 1} exactly once")
                seen.add(i)
            out.append(sorted(indices))
        if len(seen) != n:
            missing = sorted(set(range(n)) - seen)
            raise LabelError(f"value['ranking']: response index(es) {missing} missing; expected every index "
                             f"0..{n - 1} exactly once")
        return {"ranking": out}
    if kind == "dagger":
        action = _only_key(value, "action", kind, '{"action": i}')
        return {"action": _check_index("value['action']", action, len(payload["actions"]))}
    # tamer
    if not isinstance(value, Mapping) or set(value) != {"events"}:
        raise LabelError(f"value={describe(value)}: expected {{'events': [{{'t': seconds, 'h': 1 or -1}}, ...]}} "
                         "for kind 'tamer'")
    events = value["events"]
    if isinstance(events, str) or not isinstance(events, (list, tuple)):
        raise LabelError(f"value['events']={describe(events)}: expected a list of {{'t', 'h'}} events")
    if len(events) > MAX_EVENTS:
        raise LabelError(f"value['events']: {len(events)} events; expected at most {MAX_EVENTS}")
    t_max = payload["n_steps"] * payload["step_seconds"] + TAMER_SLACK_SECONDS
    out_events = []
    for k, event in enumerate(events):
        if not isinstance(event, Mapping) or set(event) != {"t", "h"}:
            raise LabelError(f"value['events'][{k}]={describe(event)}: expected {{'t': seconds, 'h': 1 or -1}}")
        t, h = event["t"], event["h"]
        if not _is_number(t) or not math.isfinite(t) or not 0 <= t <= t_max:
            raise LabelError(f"value['events'][{k}]['t']={describe(t)}: expected a finite number of seconds in "
                             f"[0, {t_max:g}] (clip length + {TAMER_SLACK_SECONDS:g} s)")
        if not _is_int(h) or h not in (1, -1):
            raise LabelError(f"value['events'][{k}]['h']={describe(h)}: expected 1 or -1")
        out_events.append({"t": float(t), "h": int(h)})
    return {"events": out_events}


def _check_media(media: Any) -> dict[str, tuple[bytes, str]]:
    if media is None:
        return {}
    if not isinstance(media, Mapping):
        raise ValidationError(f"media={describe(media)}: expected a dict {{name: (bytes, mime)}}")
    out = {}
    for name, entry in media.items():
        if not isinstance(name, str) or not name or len(name) > MAX_STR:
            raise ValidationError(f"media name {describe(name)}: expected a non-empty string")
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise ValidationError(f"media[{name!r}]={describe(entry)}: expected a (bytes, mime) pair")
        data, mime = entry
        if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
            raise ValidationError(f"media[{name!r}] data {describe(data)}: expected non-empty bytes")
        if mime not in MIME_TYPES:
            raise ValidationError(f"media[{name!r}] mime={describe(mime)}: expected one of {', '.join(MIME_TYPES)}")
        out[name] = (bytes(data), mime)
    return out


# ----------------------------------------------------------------------------------------------- aggregation


def _borda(rankings: Sequence[Sequence[Sequence[int]]], n: int) -> list[list[int]]:
    """Tie groups of the mean position (a tie group shares the mean of the places it spans), best first."""
    total = [Fraction(0)] * n
    for groups in rankings:
        place = 0
        for group in groups:
            mid = Fraction(2 * place + len(group) - 1, 2)  # exact, so equal means stay ties
            for i in group:
                total[i] += mid
            place += len(group)
    out: dict[Fraction, list[int]] = {}
    for i in range(n):
        out.setdefault(total[i], []).append(i)
    return [out[key] for key in sorted(out)]


def aggregate(kind: str, payload: Mapping[str, Any], values: Iterable[Any]) -> Any:
    """Consensus of several annotators' label ``values`` (or Labels) on one query; None if all skipped or none.

    - pair -> mu in {1.0 (left), 0.5, 0.0 (right)}: mean of non-skip votes (left 1, equal .5, right 0) rounded to
      the nearest of {0, .5, 1}; a mean of exactly .25 or .75 rounds to .5
    - text -> the ranking as tie groups ``[[i, ...], ...]``, best first: the one non-skip label's, or with several
      the Borda average of positions (ties kept)
    - dagger -> the majority action index (int; the lowest index on a tie)
    - tamer -> every event of every annotator ``[{"t", "h"}, ...]`` sorted by t (stable); None if no values
    """
    if kind not in KINDS:
        raise ValidationError(f"kind={describe(kind)}: expected one of {', '.join(KINDS)}")
    votes = [v.value if isinstance(v, Label) else v for v in values]
    votes = [check_label(kind, payload, v) for v in votes]
    kept = [v for v in votes if v != SKIP]
    if not kept:
        return None
    if kind == "pair":
        score = {"left": 1.0, "equal": 0.5, "right": 0.0}
        mean = sum(score[v] for v in kept) / len(kept)
        return 0.0 if mean < 0.25 else 1.0 if mean > 0.75 else 0.5
    if kind == "text":
        if len(kept) == 1:
            return kept[0]["ranking"]
        return _borda([v["ranking"] for v in kept], len(payload["responses"]))
    if kind == "dagger":
        counts: dict[int, int] = {}
        for v in kept:
            counts[v["action"]] = counts.get(v["action"], 0) + 1
        return min(counts, key=lambda a: (-counts[a], a))
    return sorted((e for v in kept for e in v["events"]), key=lambda e: e["t"])


# ----------------------------------------------------------------------------------------------- store


class LabelStore:
    """Queries, media and labels in one SQLite file, safe for many threads and processes at once.

    ``lease_seconds``: how long a query handed out by ``next_query`` stays reserved for that annotator.
    A label is accepted even on a query that already has ``n_annotators`` labels from others (e.g. a lease
    ran out and a second person answered too): late labels are kept, never lost, and count in ``labels``.
    """

    def __init__(self, path: str | os.PathLike[str], *, lease_seconds: float = 120.0) -> None:
        if not _is_number(lease_seconds) or not math.isfinite(lease_seconds) or lease_seconds <= 0:
            raise ValidationError(f"lease_seconds={describe(lease_seconds)}: expected a finite number > 0 (seconds)")
        self.path = Path(path)
        self.lease_seconds = float(lease_seconds)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._open()

    # -- connections

    def _fail(self, problem: str) -> StoreError:
        return StoreError(f"label store {str(self.path)!r}: {problem}")

    def _open(self) -> None:
        """Check the file is ours (or new), then create the schema if it is empty; never touches a foreign file."""
        if self.path.is_dir():
            raise self._fail("is a directory; expected an SQLite file")
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, "rb") as handle:
                if handle.read(16) != _SQLITE_MAGIC:
                    raise self._fail("not an SQLite database (wrong header); refusing to touch it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # a plain connection that only reads: a foreign SQLite file must not even get switched to WAL
            probe = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            try:
                version, tables = self._schema(probe)
            finally:
                probe.close()
            if version == 0 and not tables:
                with self._write() as con:
                    version, tables = self._schema(con)
                    if version == 0 and not tables:  # still empty: no other process created it meanwhile
                        for statement in _SCHEMA.split(";"):
                            if statement.strip():
                                con.execute(statement)
                        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                        version, tables = self._schema(con)
            if version != SCHEMA_VERSION or not set(_TABLES) <= tables:
                raise self._fail(f"another schema (user_version {version}, tables {sorted(tables)}); expected an "
                                 f"irlhf label store (user_version {SCHEMA_VERSION}, tables {list(_TABLES)})")
        except sqlite3.DatabaseError as err:
            self.close()
            raise self._fail(f"corrupt or unreadable SQLite file ({err})") from None
        except StoreError:
            self.close()
            raise

    @staticmethod
    def _schema(con: sqlite3.Connection) -> tuple[int, set[str]]:
        """(user_version, table names) of an open database; reading sqlite_master also detects corruption."""
        version = con.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return version, tables - {"sqlite_sequence"}

    def _con(self) -> sqlite3.Connection:
        """This thread's connection (a fresh one after fork: SQLite handles must not cross processes)."""
        con = getattr(self._local, "con", None)
        if con is not None and self._local.pid == os.getpid():
            return con
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                              check_same_thread=False)
        try:
            con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise self._fail(f"cannot switch to WAL journal mode (got {mode!r})")
            con.execute("PRAGMA synchronous = FULL")
            con.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            con.close()
            raise
        self._local.con, self._local.pid = con, os.getpid()
        with self._lock:
            self._all.append(con)
        return con

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: takes the write lock up front so two writers never deadlock on an upgrade."""
        con = self._con()
        # threads of this process queue here; SQLite's own busy handler (for other processes) backs off by sleeping
        with self._write_lock:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot across several SELECTs."""
        con = self._con()
        con.execute("BEGIN")
        try:
            yield con
        finally:
            con.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._lock:
            cons, self._all = self._all, []
        for con in cons:
            with contextlib.suppress(sqlite3.Error):
                con.close()
        self._local = threading.local()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStore({str(self.path)!r})"

    # -- queries

    def add_query(self, kind: str, payload: Mapping[str, Any], *, session: str,
                  media: Mapping[str, tuple[bytes, str]] | None = None, n_annotators: int = 1,
                  query_id: str | None = None) -> str:
        """Store a query and its media in one transaction; returns its id (a new uuid4().hex unless given).

        The same ``query_id`` twice returns it and stores nothing more (first wins); giving it with another
        kind or session raises StoreError. Every media entry must be named by the payload.
        """
        check_session(session)
        media = _check_media(media)
        clean = check_payload(kind, payload, media)
        used = {clean[f] for f in _MEDIA_FIELDS[kind]}
        unused = sorted(set(media) - used)
        if unused:
            raise ValidationError(f"media: {unused} not named by the payload; expected only the media of "
                                  f"fields {list(_MEDIA_FIELDS[kind])}")
        if not _is_int(n_annotators) or n_annotators < 1:
            raise ValidationError(f"n_annotators={describe(n_annotators)}: expected an int >= 1")
        qid = uuid.uuid4().hex if query_id is None else check_query_id(query_id)
        ids = {name: uuid.uuid4().hex for name in media}
        for field in _MEDIA_FIELDS[kind]:
            clean[field] = ids[clean[field]]
        now = time.time()
        with self._write() as con:
            row = con.execute("SELECT kind, session FROM queries WHERE id = ?", (qid,)).fetchone()
            if row is not None:
                if tuple(row) != (kind, session):
                    raise StoreError(f"query_id={qid!r} already exists with kind {row[0]!r} in session {row[1]!r}; "
                                     f"expected kind {kind!r} in session {session!r} or a new id")
                return qid
            con.execute("INSERT OR IGNORE INTO sessions (name, created) VALUES (?, ?)", (session, now))
            con.execute("INSERT INTO queries (id, kind, session, payload, n_annotators, created) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (qid, kind, session, _json(clean), int(n_annotators), now))
            con.executemany("INSERT INTO media (id, query_id, name, mime, data) VALUES (?, ?, ?, ?, ?)",
                            [(ids[name], qid, name, mime, data) for name, (data, mime) in media.items()])
        return qid

    _QUERY_COLUMNS = "id, kind, session, payload, n_annotators, created, n_labels"

    @staticmethod
    def _query(row: Sequence[Any]) -> Query:
        return Query(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6])

    def get_query(self, query_id: str) -> Query:
        """The query with this id; UnknownQueryError if there is none."""
        row = None if not isinstance(query_id, str) else self._con().execute(
            f"SELECT {self._QUERY_COLUMNS} FROM queries WHERE id = ?", (query_id,)).fetchone()
        if row is None:
            raise UnknownQueryError(f"query_id={describe(query_id)}: no such query in {str(self.path)!r}")
        return self._query(row)

    def next_query(self, annotator: str, session: str | None = None) -> Query | None:
        """The query ``annotator`` should label next, leased to them for ``lease_seconds``; None if none is open.

        The annotator's own live lease comes first (a page reload shows the same query); else the oldest query
        (of ``session``, if given) they have not labelled whose labels plus live leases of others are fewer than
        ``n_annotators``.
        """
        check_annotator(annotator)
        if session is not None:
            check_session(session)
        now = time.time()
        in_session = "" if session is None else "AND q.session = :session"
        not_labelled = "NOT EXISTS (SELECT 1 FROM labels l WHERE l.query_id = q.id AND l.annotator = :who)"
        with self._write() as con:
            con.execute("DELETE FROM assignments WHERE expires <= ?", (now,))
            params = {"who": annotator, "session": session, "now": now}
            row = con.execute(
                f"SELECT {self._QUERY_COLUMNS} FROM queries q JOIN assignments a ON a.query_id = q.id "
                f"WHERE a.annotator = :who AND q.n_labels < q.n_annotators {in_session} AND {not_labelled} "
                "ORDER BY q.seq LIMIT 1",
                params).fetchone()
            if row is None:
                row = con.execute(
                    f"SELECT {self._QUERY_COLUMNS} FROM queries q WHERE q.n_labels < q.n_annotators {in_session} "
                    f"AND {not_labelled} AND q.n_labels + (SELECT COUNT(*) FROM assignments a WHERE "
                    "a.query_id = q.id AND a.annotator != :who) < q.n_annotators ORDER BY q.seq LIMIT 1",
                    params).fetchone()
            if row is None:
                return None
            con.execute("INSERT OR REPLACE INTO assignments (query_id, annotator, expires) VALUES (?, ?, ?)",
                        (row[0], annotator, now + self.lease_seconds))
        return self._query(row)

    # -- labels

    def add_label(self, query_id: str, annotator: str, value: Any) -> bool:
        """Store ``annotator``'s label on a query, committed before returning; False if they already labelled it.

        The first label of an annotator on a query wins; a later one is not stored. UnknownQueryError for an
        unknown query, LabelError for a bad value or annotator name. Labels beyond ``n_annotators`` are kept.
        """
        check_annotator(annotator)
        now = time.time()
        with self._write() as con:
            row = None if not isinstance(query_id, str) else con.execute(
                "SELECT kind, payload FROM queries WHERE id = ?", (query_id,)).fetchone()
            if row is None:
                raise UnknownQueryError(f"query_id={describe(query_id)}: no such query in {str(self.path)!r}")
            clean = check_label(row[0], json.loads(row[1]), value)
            stored = con.execute("INSERT OR IGNORE INTO labels (query_id, annotator, value, created) "
                                 "VALUES (?, ?, ?, ?)", (query_id, annotator, _json(clean), now)).rowcount == 1
            if stored:
                con.execute("UPDATE queries SET n_labels = n_labels + 1 WHERE id = ?", (query_id,))
            con.execute("DELETE FROM assignments WHERE query_id = ? AND annotator = ?", (query_id, annotator))
        return stored

    def labels(self, *, session: str | None = None, query_id: str | None = None) -> list[Label]:
        """Every label (of ``session`` and/or ``query_id`` if given), in the order they were stored."""
        where, params = [], []
        if session is not None:
            where.append("q.session = ?")
            params.append(session)
        if query_id is not None:
            where.append("l.query_id = ?")
            params.append(query_id)
        sql = ("SELECT l.query_id, l.annotator, l.value, l.created FROM labels l JOIN queries q ON q.id = l.query_id"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY l.seq")
        return [Label(r[0], r[1], json.loads(r[2]), r[3]) for r in self._con().execute(sql, params)]

    def wait_labels(self, query_ids: Iterable[str], *, timeout: float | None = None,
                    poll: float = 0.2) -> dict[str, list[Label]]:
        """Block until every query has ``n_annotators`` labels, or ``timeout`` seconds (None: forever) pass.

        Returns {query_id: labels so far}; polls every ``poll`` seconds (other processes write the labels).
        """
        ids = list(dict.fromkeys(query_ids))
        if timeout is not None and (not _is_number(timeout) or not math.isfinite(timeout) or timeout < 0):
            raise ValidationError(f"timeout={describe(timeout)}: expected None or a finite number >= 0 (seconds)")
        if not _is_number(poll) or not math.isfinite(poll) or poll <= 0:
            raise ValidationError(f"poll={describe(poll)}: expected a finite number > 0 (seconds)")
        need = {qid: self.get_query(qid).n_annotators for qid in ids}  # unknown ids fail now, not never
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._read() as con:
                have = dict(con.execute(
                    f"SELECT id, n_labels FROM queries WHERE id IN ({','.join('?' * len(ids))})", ids).fetchall())
            done = all(have.get(qid, 0) >= need[qid] for qid in ids)
            left = None if deadline is None else deadline - time.monotonic()
            if done or (left is not None and left <= 0):
                break
            time.sleep(poll if left is None else min(poll, left))
        out: dict[str, list[Label]] = {qid: [] for qid in ids}
        for qid in ids:
            out[qid] = self.labels(query_id=qid)
        return out

    # -- media, sessions, stats

    def media(self, media_id: str) -> tuple[bytes, str]:
        """(bytes, mime) of a stored media entry; UnknownMediaError if absent or not 32 lowercase hex."""
        if not isinstance(media_id, str) or MEDIA_ID_RE.fullmatch(media_id) is None:
            raise UnknownMediaError(f"media_id={describe(media_id)}: expected 32 lowercase hex characters")
        row = self._con().execute("SELECT data, mime FROM media WHERE id = ?", (media_id,)).fetchone()
        if row is None:
            raise UnknownMediaError(f"media_id={media_id!r}: no such media in {str(self.path)!r}")
        return bytes(row[0]), row[1]

    def sessions(self) -> list[str]:
        """Session names, in the order they were created."""
        return [r[0] for r in self._con().execute("SELECT name FROM sessions ORDER BY created, rowid")]

    def stats(self, session: str | None = None) -> dict[str, Any]:
        """Counts of ``session`` (or all): n_queries, n_complete, pending, n_labels, per_annotator, agreement.

        agreement: of all pairs of annotators who labelled the same query (skips excluded), the fraction who gave
        the same label; None when there is no such pair. Tamer queries are left out of it (their labels are
        event streams in continuous time, which two people essentially never match exactly).
        """
        where = "" if session is None else "WHERE q.session = ?"
        params = () if session is None else (session,)
        with self._read() as con:
            n_queries, n_complete = con.execute(
                f"SELECT COUNT(*), COALESCE(SUM(q.n_labels >= q.n_annotators), 0) FROM queries q {where}",
                params).fetchone()
            per_annotator = dict(con.execute(
                f"SELECT l.annotator, COUNT(*) FROM labels l JOIN queries q ON q.id = l.query_id {where} "
                "GROUP BY l.annotator ORDER BY l.annotator", params).fetchall())
            rows = con.execute(
                "SELECT l.query_id, l.value FROM labels l JOIN queries q ON q.id = l.query_id "
                f"{where} {'AND' if where else 'WHERE'} q.kind != 'tamer' AND l.value != ? ORDER BY l.query_id",
                (*params, _json(SKIP))).fetchall()
        by_query: dict[str, list[str]] = {}
        for qid, value in rows:
            by_query.setdefault(qid, []).append(value)
        pairs = agree = 0
        for values in by_query.values():
            counts: dict[str, int] = {}
            for v in values:
                counts[v] = counts.get(v, 0) + 1
            pairs += len(values) * (len(values) - 1) // 2
            agree += sum(c * (c - 1) // 2 for c in counts.values())
        return {"n_queries": n_queries, "n_complete": n_complete, "pending": n_queries - n_complete,
                "n_labels": sum(per_annotator.values()), "per_annotator": per_annotator,
                "agreement": agree / pairs if pairs else None}

    def queries(self, session: str | None = None) -> list[Query]:
        """Every query (of ``session``, if given), oldest first."""
        where = "" if session is None else "WHERE session = ?"
        return [self._query(r) for r in self._con().execute(
            f"SELECT {self._QUERY_COLUMNS} FROM queries {where} ORDER BY seq", () if session is None else (session,))]


# ----------------------------------------------------------------------------------------------- export


def _session_queries(store: LabelStore, session: str) -> list[Query]:
    check_session(session)
    if session not in store.sessions():
        raise ValidationError(f"session={session!r}: no such session in {str(store.path)!r}; "
                              f"expected one of {store.sessions()}")
    return store.queries(session)


def export_jsonl(store: LabelStore, session: str, path: str | os.PathLike[str]) -> Path:
    """Write one JSON line per query of ``session``, atomically; returns the path.

    Row: ``{"id", "kind", "payload" (media ids, no bytes), "n_annotators", "labels": [{"annotator", "value",
    "created"}], "consensus"}`` with consensus = ``aggregate(kind, payload, values)``.
    """
    by_query: dict[str, list[Label]] = {}
    queries = _session_queries(store, session)
    for label in store.labels(session=session):
        by_query.setdefault(label.query_id, []).append(label)
    lines = []
    for q in queries:
        labels = by_query.get(q.id, [])
        lines.append(json.dumps({
            "id": q.id, "kind": q.kind, "payload": q.payload, "n_annotators": q.n_annotators,
            "labels": [{"annotator": lab.annotator, "value": lab.value, "created": lab.created} for lab in labels],
            "consensus": aggregate(q.kind, q.payload, [lab.value for lab in labels])}, allow_nan=False) + "\n")
    target = Path(path)
    atomic_write_text(target, "".join(lines))
    return target


def export_text_pairs(store: LabelStore, session: str, path: str | os.PathLike[str]) -> Path:
    """Save the consensus rankings of ``session``'s text queries as TextPairs rows {prompt, chosen, rejected}.

    Every ordered pair of responses in different tie groups of the consensus (``aggregate``) gives one row,
    better first; ties and skipped queries give none. Format by path (.jsonl, .parquet, or a datasets directory),
    written atomically by ``TextPairs.save``; returns the path it wrote.
    """
    from irlhf.data.text import TextPairs  # numpy and datasets only when exporting: keeps the store light

    by_query: dict[str, list[Any]] = {}
    queries = _session_queries(store, session)
    for label in store.labels(session=session):
        by_query.setdefault(label.query_id, []).append(label.value)
    prompts, chosen, rejected = [], [], []
    n_text = 0
    for q in queries:
        if q.kind != "text":
            continue
        n_text += 1
        groups = aggregate(q.kind, q.payload, by_query.get(q.id, []))
        if groups is None:
            continue
        responses = q.payload["responses"]
        for a, better in enumerate(groups):
            for worse in groups[a + 1:]:
                for i in better:
                    for j in worse:
                        prompts.append(q.payload["prompt"])
                        chosen.append(responses[i])
                        rejected.append(responses[j])
    if not prompts:
        raise ValidationError(f"session={session!r}: no text preference pairs to export ({n_text} text queries; "
                              "each needs a non-skip label ranking two responses apart); expected labelled text "
                              "queries")
    return TextPairs(tuple(prompts), tuple(chosen), tuple(rejected)).save(path)
