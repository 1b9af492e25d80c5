"""The label store: queries put to people, their media, the labels people give, and what the labels say.

``LabelStore`` keeps everything in one SQLite file (``irlhf.label.schema``: tables, version, migrations,
connections) or one PostgreSQL database (``irlhf.label.dialects``: a ``postgresql://`` URL), safe for many
labellers and a training loop at once; every write is committed before the call returns, or with the others
of a ``with store.batch():`` block when that ends. ``aggregate`` turns several annotators' labels on a query
into one training target; ``export_jsonl`` / ``export_text_pairs``
write a session out. The kinds of query, their payloads and label values are in ``irlhf.label.kinds``
(checked by ``check_payload`` and ``check_label``; re-exported here).

    store = LabelStore("labels.db")
    qid = store.add_query("pair", {"left": "a", "right": "b"}, session="run1",
                          media={"a": (gif_a, "image/gif"), "b": (gif_b, "image/gif")})
    query = store.next_query("alice");  store.add_label(query.id, "alice", "left")
    aggregate("pair", query.payload, [lab.value for lab in store.labels(query_id=qid)])   # -> 1.0
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from irlhf.core.errors import IrlhfError, ValidationError, describe
from irlhf.core.io import atomic_write_text
from irlhf.data.text import TextPairs
from irlhf.label.kinds import (
    ANNOTATOR_RE,
    KINDS,
    MAX_EVENTS,
    MAX_STR,
    MEDIA_FIELDS,
    MEDIA_ID_RE,
    MIME_TYPES,
    PAIR_VALUES,
    QUERY_ID_RE,
    SESSION_RE,
    SKIP,
    TAMER_SLACK_SECONDS,
    LabelError,
    canonical_json,
    check_annotator,
    check_label,
    check_media,
    check_payload,
    check_query_id,
    check_session,
    is_int,
    is_number,
)
from irlhf.label.dialects import open_database
from irlhf.label.schema import BUSY_TIMEOUT_SECONDS, SCHEMA_VERSION, StoreError

__all__ = [
    "ANNOTATOR_RE", "BUSY_TIMEOUT_SECONDS", "KINDS", "MAX_EVENTS", "MAX_STR", "MEDIA_ID_RE", "MIME_TYPES",
    "PAIR_VALUES", "QUERY_ID_RE", "SCHEMA_VERSION", "SESSION_RE", "SKIP", "TAMER_SLACK_SECONDS",
    "Label", "LabelError", "LabelStore", "Query", "StoreError", "UnknownMediaError", "UnknownQueryError",
    "aggregate", "check_annotator", "check_label", "check_payload", "check_query_id", "check_session",
    "export_jsonl", "export_text_pairs",
]


class UnknownQueryError(IrlhfError):
    """No query with this id in the store."""


class UnknownMediaError(IrlhfError):
    """No media with this id in the store (or the id is not 32 lowercase hex characters)."""


# ----------------------------------------------------------------------------------------------- records


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
    """Queries, media and labels in one SQLite file or PostgreSQL database, safe for many threads and processes.

    ``path``: a file path or ``sqlite:///path`` URL (SQLite), or ``postgresql://user@host:port/dbname`` (psycopg 3,
    ``pip install "irlhf[postgres]"``); see ``irlhf.label.dialects.open_database``.

    ``lease_seconds``: how long a query handed out by ``next_query`` stays reserved for that annotator.
    A label is accepted even on a query that already has ``n_annotators`` labels from others (e.g. a lease
    ran out and a second person answered too): late labels are kept, never lost, and count in ``labels``.
    """

    def __init__(self, path: str | os.PathLike[str], *, lease_seconds: float = 120.0) -> None:
        if not is_number(lease_seconds) or not math.isfinite(lease_seconds) or lease_seconds <= 0:
            raise ValidationError(f"lease_seconds={describe(lease_seconds)}: expected a finite number > 0 (seconds)")
        self.lease_seconds = float(lease_seconds)
        self._db = open_database(path)
        self.path = self._db.path

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        self._db.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStore({str(self.path)!r})"

    @contextlib.contextmanager
    def batch(self) -> Iterator[LabelStore]:
        """Every write of this thread inside the block in one transaction: all committed when it ends, none if
        it raises (a failed call inside that is caught undoes only itself).

        Other writers (threads and processes) wait until the block ends; reads inside it see its writes.
        """
        with self._db.write():
            yield self

    # -- queries

    def add_query(self, kind: str, payload: Mapping[str, Any], *, session: str,
                  media: Mapping[str, tuple[bytes, str]] | None = None, n_annotators: int = 1,
                  query_id: str | None = None) -> str:
        """Store a query and its media in one transaction; returns its id (a new uuid4().hex unless given).

        The same ``query_id`` twice returns it and stores nothing more (first wins); giving it with another
        kind or session raises StoreError. Every media entry must be named by the payload.
        """
        check_session(session)
        media = check_media(media)
        clean = check_payload(kind, payload, media)
        used = {clean[f] for f in MEDIA_FIELDS[kind]}
        unused = sorted(set(media) - used)
        if unused:
            raise ValidationError(f"media: {unused} not named by the payload; expected only the media of "
                                  f"fields {list(MEDIA_FIELDS[kind])}")
        if not is_int(n_annotators) or n_annotators < 1:
            raise ValidationError(f"n_annotators={describe(n_annotators)}: expected an int >= 1")
        qid = uuid.uuid4().hex if query_id is None else check_query_id(query_id)
        ids = {name: uuid.uuid4().hex for name in media}
        for field in MEDIA_FIELDS[kind]:
            clean[field] = ids[clean[field]]
        now = time.time()
        with self._db.write() as con:
            row = con.execute("SELECT kind, session FROM queries WHERE id = ?", (qid,)).fetchone()
            if row is not None:
                if tuple(row) != (kind, session):
                    raise StoreError(f"query_id={qid!r} already exists with kind {row[0]!r} in session {row[1]!r}; "
                                     f"expected kind {kind!r} in session {session!r} or a new id")
                return qid
            con.execute("INSERT INTO sessions (name, created) VALUES (?, ?) ON CONFLICT DO NOTHING", (session, now))
            con.execute("INSERT INTO queries (id, kind, session, payload, n_annotators, created) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (qid, kind, session, canonical_json(clean), int(n_annotators), now))
            con.executemany("INSERT INTO media (id, query_id, name, mime, data) VALUES (?, ?, ?, ?, ?)",
                            [(ids[name], qid, name, mime, data) for name, (data, mime) in media.items()])
        return qid

    _QUERY_COLUMNS = "id, kind, session, payload, n_annotators, created, n_labels"

    @staticmethod
    def _query(row: Sequence[Any]) -> Query:
        return Query(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6])

    def get_query(self, query_id: str) -> Query:
        """The query with this id; UnknownQueryError if there is none."""
        row = None if not isinstance(query_id, str) else self._db.connection().execute(
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
        with self._db.write() as con:
            con.execute("DELETE FROM assignments WHERE expires <= ?", (now,))
            params = {"who": annotator, "session": session, "now": now}
            # assignments the outer loop (SQLite's CROSS JOIN): the annotator's few leases, not every query
            row = con.execute(
                f"SELECT {self._QUERY_COLUMNS} FROM assignments a {self._db.LEASE_JOIN} queries q ON q.id = a.query_id "
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
            con.execute("INSERT INTO assignments (query_id, annotator, expires) VALUES (?, ?, ?) "
                        "ON CONFLICT (query_id, annotator) DO UPDATE SET expires = excluded.expires",
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
        with self._db.write() as con:
            row = None if not isinstance(query_id, str) else con.execute(
                "SELECT kind, payload FROM queries WHERE id = ?", (query_id,)).fetchone()
            if row is None:
                raise UnknownQueryError(f"query_id={describe(query_id)}: no such query in {str(self.path)!r}")
            clean = check_label(row[0], json.loads(row[1]), value)
            stored = con.execute("INSERT INTO labels (query_id, annotator, value, created) VALUES (?, ?, ?, ?) "
                                 "ON CONFLICT DO NOTHING",
                                 (query_id, annotator, canonical_json(clean), now)).rowcount == 1
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
        return [Label(r[0], r[1], json.loads(r[2]), r[3]) for r in self._db.connection().execute(sql, params)]

    def wait_labels(self, query_ids: Iterable[str], *, timeout: float | None = None,
                    poll: float = 0.2) -> dict[str, list[Label]]:
        """Block until every query has ``n_annotators`` labels, or ``timeout`` seconds (None: forever) pass.

        Returns {query_id: labels so far}; polls every ``poll`` seconds (other processes write the labels).
        """
        ids = list(dict.fromkeys(query_ids))
        if timeout is not None and (not is_number(timeout) or not math.isfinite(timeout) or timeout < 0):
            raise ValidationError(f"timeout={describe(timeout)}: expected None or a finite number >= 0 (seconds)")
        if not is_number(poll) or not math.isfinite(poll) or poll <= 0:
            raise ValidationError(f"poll={describe(poll)}: expected a finite number > 0 (seconds)")
        need = {qid: self.get_query(qid).n_annotators for qid in ids}  # unknown ids fail now, not never
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            have: dict[str, int] = {}
            if ids:  # PostgreSQL rejects an empty IN ()
                with self._db.read() as con:
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
        row = self._db.connection().execute("SELECT data, mime FROM media WHERE id = ?", (media_id,)).fetchone()
        if row is None:
            raise UnknownMediaError(f"media_id={media_id!r}: no such media in {str(self.path)!r}")
        return bytes(row[0]), row[1]

    def sessions(self) -> list[str]:
        """Session names, in the order they were created."""
        sql = f"SELECT name FROM sessions ORDER BY {self._db.SESSION_ORDER}"
        return [r[0] for r in self._db.connection().execute(sql)]

    def stats(self, session: str | None = None) -> dict[str, Any]:
        """Counts of ``session`` (or all): n_queries, n_complete, pending, n_labels, per_annotator, agreement.

        agreement: of all pairs of annotators who labelled the same query (skips excluded), the fraction who gave
        the same label; None when there is no such pair. Tamer queries are left out of it (their labels are
        event streams in continuous time, which two people essentially never match exactly).
        """
        where = "" if session is None else "WHERE q.session = ?"
        params = () if session is None else (session,)
        with self._db.read() as con:
            n_queries, n_complete = con.execute(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN q.n_labels >= q.n_annotators THEN 1 ELSE 0 END), 0) "
                f"FROM queries q {where}",
                params).fetchone()
            per_annotator = dict(con.execute(
                f"SELECT l.annotator, COUNT(*) FROM labels l JOIN queries q ON q.id = l.query_id {where} "
                "GROUP BY l.annotator ORDER BY l.annotator", params).fetchall())
            rows = con.execute(
                "SELECT l.query_id, l.value FROM labels l JOIN queries q ON q.id = l.query_id "
                f"{where} {'AND' if where else 'WHERE'} q.kind != 'tamer' AND l.value != ? ORDER BY l.query_id",
                (*params, canonical_json(SKIP))).fetchall()
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

    def progress(self, annotator: str, session: str | None = None) -> dict[str, int]:
        """The labelling page's counts, the numbers ``stats`` gives, from counters kept on every write.

        ``{"n_queries", "n_complete", "pending", "n_labels" (``annotator``'s)}`` of ``session`` (None: all); a few
        primary-key lookups, so its cost does not grow with the number of queries or labels.
        """
        check_annotator(annotator)
        if session is not None:
            check_session(session)
        in_session = "" if session is None else "AND session = :session"
        params = {"who": annotator, "session": session}
        with self._db.read() as con:
            n_queries, n_complete = con.execute(
                "SELECT COALESCE(SUM(n_queries), 0), COALESCE(SUM(n_complete), 0) FROM session_counts "
                f"WHERE 1 = 1 {in_session}", params).fetchone()
            (n_labels,) = con.execute(
                f"SELECT COALESCE(SUM(n_labels), 0) FROM annotator_counts WHERE annotator = :who {in_session}",
                params).fetchone()
        return {"n_queries": n_queries, "n_complete": n_complete, "pending": n_queries - n_complete,
                "n_labels": n_labels}

    def queries(self, session: str | None = None) -> list[Query]:
        """Every query (of ``session``, if given), oldest first."""
        where = "" if session is None else "WHERE session = ?"
        return [self._query(r) for r in self._db.connection().execute(
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
