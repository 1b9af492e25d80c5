"""The label store's SQLite file: its schema, its version and migrations, and the connections that use it.

One file holds a store (stdlib ``sqlite3``, WAL journal, ``synchronous=FULL``, schema version in
``PRAGMA user_version``): ``sessions``, ``queries`` (payload as JSON), ``media`` (bytes as BLOBs), ``labels``
(one per query and annotator) and ``assignments`` (leases handed out by ``LabelStore.next_query``).
``session_counts`` (queries and complete queries per session) and ``annotator_counts`` (labels per session and
annotator) are kept by triggers in the transaction of every write, so progress is a lookup, not a scan.

``Database(path)`` opens a file only if it is ours: a new or empty file gets the schema, an older version of
ours is migrated step by step (``MIGRATIONS``), anything else (not SQLite, corrupt, another schema, a newer
version) raises ``StoreError`` without being touched. Every write runs in a ``BEGIN IMMEDIATE`` transaction
committed before the outermost ``write()`` exits (a ``write()`` inside another is a savepoint of it); each
thread (and process) uses its own connection with a 30 s busy timeout, so many labellers and a training loop
can share one file without losing a label.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from irlhf.core.errors import IrlhfError

SCHEMA_VERSION = 2
BUSY_TIMEOUT_SECONDS = 30.0
TABLES = ("sessions", "queries", "media", "labels", "assignments", "session_counts", "annotator_counts")
SQLITE_MAGIC = b"SQLite format 3\x00"

_V1 = """
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

#: the counter tables, the same text in SQLite and PostgreSQL (irlhf.label.dialects)
COUNT_TABLES = """
CREATE TABLE session_counts (
    session TEXT PRIMARY KEY REFERENCES sessions(name),
    n_queries INTEGER NOT NULL,
    n_complete INTEGER NOT NULL
);
CREATE TABLE annotator_counts (
    annotator TEXT NOT NULL,
    session TEXT NOT NULL REFERENCES sessions(name),
    n_labels INTEGER NOT NULL,
    PRIMARY KEY (annotator, session)
);
"""

# Counters for the labelling page's progress line, filled in from the data already there, then kept by triggers
# (queries and labels are never deleted, so inserts and the n_labels update are all they follow); and the open
# queries of a session in order, so next_query never walks past the complete ones.
_V2 = COUNT_TABLES + """
INSERT INTO session_counts (session, n_queries, n_complete)
    SELECT session, COUNT(*), SUM(n_labels >= n_annotators) FROM queries GROUP BY session;
INSERT INTO annotator_counts (annotator, session, n_labels)
    SELECT l.annotator, q.session, COUNT(*) FROM labels l JOIN queries q ON q.id = l.query_id
    GROUP BY l.annotator, q.session;
CREATE INDEX queries_open_session ON queries(session, seq) WHERE n_labels < n_annotators;
CREATE TRIGGER count_query AFTER INSERT ON queries BEGIN
    INSERT INTO session_counts (session, n_queries, n_complete)
        VALUES (NEW.session, 1, NEW.n_labels >= NEW.n_annotators)
        ON CONFLICT (session) DO UPDATE SET n_queries = n_queries + 1, n_complete = n_complete + excluded.n_complete;
END;
CREATE TRIGGER count_complete AFTER UPDATE OF n_labels, n_annotators ON queries
    WHEN (OLD.n_labels >= OLD.n_annotators) != (NEW.n_labels >= NEW.n_annotators) BEGIN
    UPDATE session_counts SET n_complete = n_complete + CASE WHEN NEW.n_labels >= NEW.n_annotators THEN 1 ELSE -1 END
        WHERE session = NEW.session;
END;
CREATE TRIGGER count_label AFTER INSERT ON labels BEGIN
    INSERT INTO annotator_counts (annotator, session, n_labels)
        VALUES (NEW.annotator, (SELECT session FROM queries WHERE id = NEW.query_id), 1)
        ON CONFLICT (annotator, session) DO UPDATE SET n_labels = n_labels + 1;
END;
"""

# MIGRATIONS[v]: the SQL that takes a store from user_version v to v + 1 (v = 0: an empty file).
# A new schema version appends one entry and raises SCHEMA_VERSION; stores on disk then upgrade when opened.
MIGRATIONS: tuple[str, ...] = (_V1, _V2)


class StoreError(IrlhfError):
    """The store file cannot be used: not SQLite, corrupt, another schema, or a conflicting write."""


def schema_of(con: sqlite3.Connection) -> tuple[int, set[str]]:
    """(user_version, table names) of an open database; reading sqlite_master also detects corruption."""
    version = con.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return version, tables - {"sqlite_sequence"}


def needs_migration(version: int, tables: set[str]) -> bool:
    """True for an empty file (version 0, no tables) or an older version of ours; a version-0 file with
    tables is someone else's database and is never touched."""
    return (version == 0 and not tables) or 0 < version < SCHEMA_VERSION


def statements(script: str) -> list[str]:
    """The SQL statements of ``script``, each complete (a trigger's body keeps its inner ``;``)."""
    out, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            out.append(pending.strip())
            pending = ""
    if pending.strip(" \n\t;"):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {pending.strip()[:60]!r}")
    return [statement for statement in out if statement.strip(" \n\t;")]


def migrate(con: sqlite3.Connection) -> None:
    """Bring the database of ``con`` to SCHEMA_VERSION, one step per version, inside the caller's
    transaction; does nothing when another process migrated it meanwhile."""
    version, tables = schema_of(con)
    if not needs_migration(version, tables):
        return
    for step in range(version, SCHEMA_VERSION):
        for statement in statements(MIGRATIONS[step]):  # not executescript: it would COMMIT the caller's transaction
            con.execute(statement)
        con.execute(f"PRAGMA user_version = {step + 1}")


class Database:
    """One store file: checked (and created or migrated) when opened; a connection per thread and process.

    ``write()`` and ``read()`` are transactions (context managers yielding the connection); ``connection()``
    is this thread's connection for single statements; ``close()`` closes every connection opened.
    ``irlhf.label.dialects.PostgresDatabase`` subclasses it: the class attributes below and the ``_begin_*``
    hooks are what a dialect changes; the transactions' logic is shared.
    """

    #: SQL fragments that differ between dialects (the store's SQL is otherwise the same text for both)
    SESSION_ORDER = "created, rowid"  # creation order; SQLite's rowid breaks ties of equal clock readings
    LEASE_JOIN = "CROSS JOIN"  # SQLite: keeps the annotator's few leases the outer loop of the join

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._open()

    def fail(self, problem: str) -> StoreError:
        """A StoreError naming this file."""
        return StoreError(f"label store {str(self.path)!r}: {problem}")

    def _open(self) -> None:
        """Check the file is ours (or new), then create or migrate the schema; never touches a foreign file."""
        if self.path.is_dir():
            raise self.fail("is a directory; expected an SQLite file")
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, "rb") as handle:
                if handle.read(16) != SQLITE_MAGIC:
                    raise self.fail("not an SQLite database (wrong header); refusing to touch it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # a plain connection that only reads: a foreign SQLite file must not even get switched to WAL
            probe = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            try:
                version, tables = schema_of(probe)
            finally:
                probe.close()
            if needs_migration(version, tables):
                with self.write() as con:
                    migrate(con)
                    version, tables = schema_of(con)
            if version != SCHEMA_VERSION or not set(TABLES) <= tables:
                raise self.fail(f"another schema (user_version {version}, tables {sorted(tables)}); expected an "
                                f"irlhf label store (user_version {SCHEMA_VERSION}, tables {list(TABLES)})")
        except sqlite3.DatabaseError as err:
            self.close()
            raise self.fail(f"corrupt or unreadable SQLite file ({err})") from None
        except StoreError:
            self.close()
            raise

    def connection(self) -> sqlite3.Connection:
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
                raise self.fail(f"cannot switch to WAL journal mode (got {mode!r})")
            con.execute("PRAGMA synchronous = FULL")
            con.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            con.close()
            raise
        self._local.con, self._local.pid, self._local.depth = con, os.getpid(), 0
        with self._lock:
            self._all.append(con)
        return con

    def _depth(self) -> int:
        """How many ``write()`` blocks this thread is inside (0: none)."""
        return getattr(self._local, "depth", 0)

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: takes the write lock up front so two writers never deadlock on an upgrade.

        Inside another ``write()`` of this thread it is a savepoint: an exception undoes only its own writes,
        and nothing is committed before the outermost one ends.
        """
        con = self.connection()
        depth = self._depth()
        if depth:
            yield from self._savepoint(con, depth)
            return
        # threads of this process queue here; SQLite's own busy handler (for other processes) backs off by sleeping
        with self._write_lock:
            self._begin_write(con)
            self._local.depth = 1
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            else:
                self._commit(con)
            finally:
                self._local.depth = 0

    @staticmethod
    def _begin_write(con: sqlite3.Connection) -> None:
        """Start a write transaction holding SQLite's write lock up front (no deadlock on a later upgrade)."""
        con.execute("BEGIN IMMEDIATE")

    @staticmethod
    def _begin_read(con: sqlite3.Connection) -> None:
        """Start a read transaction: one snapshot for every SELECT until COMMIT."""
        con.execute("BEGIN")

    @staticmethod
    def _commit(con: sqlite3.Connection) -> None:
        """COMMIT; if that fails (disk full, I/O error), roll back so the connection is not left mid-transaction."""
        try:
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    def _savepoint(self, con: sqlite3.Connection, depth: int) -> Iterator[sqlite3.Connection]:
        """The body of a ``write()`` nested ``depth`` deep: a savepoint of the enclosing transaction."""
        name = f"nested_{depth}"
        con.execute(f"SAVEPOINT {name}")
        self._local.depth = depth + 1
        try:
            yield con
        except BaseException:
            con.execute(f"ROLLBACK TO {name}")
            con.execute(f"RELEASE {name}")
            raise
        else:
            con.execute(f"RELEASE {name}")
        finally:
            self._local.depth = depth

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent snapshot across several SELECTs (inside a ``write()``: its own)."""
        con = self.connection()
        if self._depth():
            yield con
            return
        self._begin_read(con)
        try:
            yield con
        finally:
            con.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this database opened (in any thread)."""
        with self._lock:
            cons, self._all = self._all, []
        for con in cons:
            with contextlib.suppress(Exception):  # any dialect's driver error: closing is best effort
                con.close()
        self._local = threading.local()
