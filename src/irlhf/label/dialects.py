"""Where a label store lives: an SQLite file or a PostgreSQL database, chosen by the target given to LabelStore.

``open_database(target)`` parses the target and opens the matching ``Database``:

- a filesystem path, or ``sqlite:///relative/path`` / ``sqlite:////absolute/path`` (SQLAlchemy's spelling):
  ``irlhf.label.schema.Database``, one SQLite file;
- ``postgresql://user@host:port/dbname`` (or ``postgres://``; any libpq URL parameter such as ``?host=/socket/dir``
  or ``?sslmode=require``): ``PostgresDatabase`` through psycopg 3 (``pip install "irlhf[postgres]"``).

The store's SQL is written once (``?`` and ``:name`` placeholders, ``INSERT ... ON CONFLICT``); ``PgConnection``
turns the placeholders into psycopg's, and the PostgreSQL schema below spells SQLite's types and triggers in
PostgreSQL (BIGSERIAL for AUTOINCREMENT, BYTEA for BLOB, DOUBLE PRECISION for REAL, PL/pgSQL trigger functions).
Writers on PostgreSQL are serialised by one transaction-scoped advisory lock, exactly as SQLite's
``BEGIN IMMEDIATE`` serialises them, so both backends share one argument for ``next_query``'s lease check.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from irlhf.core.errors import ValidationError
from irlhf.label.schema import COUNT_TABLES, SCHEMA_VERSION, TABLES, Database, StoreError

__all__ = ["PgConnection", "PostgresDatabase", "is_url", "open_database", "redact", "to_psycopg"]

EXPECTED = "expected a file path, sqlite:///path or postgresql://user@host:port/dbname"
CONNECT_TIMEOUT_SECONDS = 10
# the key of the advisory lock every write transaction holds (any constant: advisory locks are per database)
WRITE_LOCK_KEY = 0x69726C6866  # "irlhf"
VERSION_TABLE = "irlhf_schema"

# Version 2 of the schema (``irlhf.label.schema``) in PostgreSQL's words; the counters are kept by PL/pgSQL
# triggers in the transaction of every write, as SQLite's triggers keep them. A new version adds its step here.
_PG_SCHEMA = """
CREATE TABLE sessions (
    seq BIGSERIAL NOT NULL UNIQUE,
    name TEXT PRIMARY KEY,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE queries (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    session TEXT NOT NULL REFERENCES sessions(name),
    payload TEXT NOT NULL,
    n_annotators INTEGER NOT NULL CHECK (n_annotators >= 1),
    n_labels INTEGER NOT NULL DEFAULT 0,
    created DOUBLE PRECISION NOT NULL
);
CREATE INDEX queries_session ON queries(session, seq);
CREATE INDEX queries_open ON queries(seq) WHERE n_labels < n_annotators;
CREATE INDEX queries_open_session ON queries(session, seq) WHERE n_labels < n_annotators;
CREATE TABLE media (
    id TEXT PRIMARY KEY,
    query_id TEXT NOT NULL REFERENCES queries(id),
    name TEXT NOT NULL,
    mime TEXT NOT NULL,
    data BYTEA NOT NULL
);
CREATE INDEX media_query ON media(query_id);
CREATE TABLE labels (
    seq BIGSERIAL PRIMARY KEY,
    query_id TEXT NOT NULL REFERENCES queries(id),
    annotator TEXT NOT NULL,
    value TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    UNIQUE (query_id, annotator)
);
CREATE INDEX labels_annotator ON labels(annotator);
CREATE TABLE assignments (
    query_id TEXT NOT NULL REFERENCES queries(id),
    annotator TEXT NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (query_id, annotator)
);
CREATE INDEX assignments_annotator ON assignments(annotator, expires);
""" + COUNT_TABLES + """
CREATE FUNCTION irlhf_count_query() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_counts (session, n_queries, n_complete)
        VALUES (NEW.session, 1, CASE WHEN NEW.n_labels >= NEW.n_annotators THEN 1 ELSE 0 END)
        ON CONFLICT (session) DO UPDATE SET n_queries = session_counts.n_queries + 1,
            n_complete = session_counts.n_complete + excluded.n_complete;
    RETURN NULL;
END $$;
CREATE TRIGGER count_query AFTER INSERT ON queries FOR EACH ROW EXECUTE FUNCTION irlhf_count_query();
CREATE FUNCTION irlhf_count_complete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE session_counts SET n_complete = n_complete
        + CASE WHEN NEW.n_labels >= NEW.n_annotators THEN 1 ELSE -1 END WHERE session = NEW.session;
    RETURN NULL;
END $$;
CREATE TRIGGER count_complete AFTER UPDATE OF n_labels, n_annotators ON queries FOR EACH ROW
    WHEN ((OLD.n_labels >= OLD.n_annotators) IS DISTINCT FROM (NEW.n_labels >= NEW.n_annotators))
    EXECUTE FUNCTION irlhf_count_complete();
CREATE FUNCTION irlhf_count_label() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO annotator_counts (annotator, session, n_labels)
        VALUES (NEW.annotator, (SELECT session FROM queries WHERE id = NEW.query_id), 1)
        ON CONFLICT (annotator, session) DO UPDATE SET n_labels = annotator_counts.n_labels + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER count_label AFTER INSERT ON labels FOR EACH ROW EXECUTE FUNCTION irlhf_count_label();
"""

# a quoted string (copied as is), a ? or :name placeholder, or a % (psycopg's own placeholder character)
_TOKEN = re.compile(r"'(?:[^']|'')*'|\?|(?<![:\w]):([A-Za-z_]\w*)|%")


@functools.lru_cache(maxsize=512)
def to_psycopg(sql: str) -> str:
    """The store's SQL (``?`` / ``:name`` placeholders, as sqlite3 takes them) with psycopg's ``%s`` /
    ``%(name)s``; a literal % becomes %%. Cached: the store sends the same few statements again and again."""
    def swap(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return token if token.startswith("'") else f"%({match.group(1)})s"
    return _TOKEN.sub(swap, sql)


def redact(url: str) -> str:
    """The URL without its password, for messages and ``LabelStore.path``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def open_database(target: str | os.PathLike[str]) -> Database:
    """The Database a LabelStore target names: a path or sqlite:/// URL (SQLite) or a postgresql:// URL.

    ValidationError for an unknown scheme, a PostgreSQL URL without a database name or an unreachable server;
    StoreError when psycopg is not installed or the database holds something other than a label store.
    """
    path = sqlite_file(target)
    if path is not None:
        return Database(path)
    if target.partition("://")[0].lower() in ("postgresql", "postgres"):
        return PostgresDatabase(target)
    scheme = target.partition("://")[0].lower() + "://"
    raise ValidationError(f"label store {redact(target)!r}: unknown scheme {scheme!r}; {EXPECTED}")


def sqlite_file(target: str | os.PathLike[str]) -> Path | None:
    """The SQLite file a LabelStore target names (a path, or a sqlite:/// URL), None for a database server's URL."""
    if isinstance(target, os.PathLike):
        return Path(target)
    if not isinstance(target, str) or not target:
        raise ValidationError(f"label store {target!r}: {EXPECTED}")
    scheme, sep, rest = target.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return Path(target)  # a plain path (C:\\x or ./a://b are paths too)
    if scheme.lower() != "sqlite":
        return None
    if not rest.startswith("/") or rest == "/":
        raise ValidationError(f"label store {target!r}: {EXPECTED} (sqlite:///relative.db or "
                              "sqlite:////absolute/path.db)")
    return Path(rest[1:])


class PgConnection:
    """A psycopg connection that takes the store's sqlite3-style calls: ``execute`` (returning the cursor, with
    ``?`` / ``:name`` placeholders), ``executemany``, ``in_transaction`` and ``close``."""

    def __init__(self, con: Any) -> None:
        self.raw = con

    def execute(self, sql: str, params: Any = ()) -> Any:
        """Run one statement; returns the psycopg cursor (fetchone, fetchall, rowcount, iteration)."""
        if not params:  # no parameters: psycopg sends the text as is, so % must stay a single %
            return self.raw.execute(sql)
        return self.raw.execute(to_psycopg(sql), params)

    def executemany(self, sql: str, rows: Any) -> Any:
        """Run one statement once per row of parameters."""
        cur = self.raw.cursor()
        cur.executemany(to_psycopg(sql), list(rows))
        return cur

    @property
    def in_transaction(self) -> bool:
        """True between BEGIN and COMMIT / ROLLBACK (including a failed transaction)."""
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        """Close the server connection."""
        self.raw.close()


def _psycopg() -> Any:
    """The psycopg module, or a one-line StoreError saying how to install it."""
    try:
        import psycopg
    except ImportError:
        raise StoreError('a postgresql:// label store needs psycopg 3: pip install "irlhf[postgres]"') from None
    return psycopg


class PostgresDatabase(Database):
    """A label store in one PostgreSQL database: checked (and given the schema when empty) when opened; a
    connection per thread and process, in autocommit mode so ``write()`` / ``read()`` issue BEGIN themselves."""

    SESSION_ORDER = "created, seq"
    LEASE_JOIN = "JOIN"  # PostgreSQL's planner picks the join order itself and has no CROSS JOIN ... ON

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = redact(url)  # type: ignore[assignment]  # shown in messages: never the password
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        if not parts.path.strip("/") and not query.get("dbname"):
            raise ValidationError(f"label store {self.path!r}: no database name; expected "
                                  "postgresql://user@host:port/dbname")
        self._driver = _psycopg()
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._open()

    def fail(self, problem: str) -> StoreError:
        """A StoreError naming this database (password left out)."""
        return StoreError(f"label store {self.path!r}: {problem}")

    def _connect(self) -> PgConnection:
        """A new autocommit connection; ValidationError naming the URL when the server cannot be reached."""
        try:
            raw = self._driver.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                       application_name="irlhf-label")
        except self._driver.Error as err:
            reason = " ".join(str(err).split())[:300]
            raise ValidationError(f"label store {self.path!r}: cannot connect to PostgreSQL ({reason}); expected "
                                  "a reachable server and an existing database: postgresql://user@host:port/dbname"
                                  ) from None
        return PgConnection(raw)

    def _open(self) -> None:
        """Create the schema in an empty database; refuse a database that holds anything else."""
        try:
            version, tables = self._schema(self.connection())
            if not tables:
                with self.write() as con:
                    version, tables = self._schema(con)  # another process may have created it meanwhile
                    if not tables:
                        con.execute(_PG_SCHEMA)
                        con.execute(f"CREATE TABLE {VERSION_TABLE} (version INTEGER NOT NULL)")
                        con.execute(f"INSERT INTO {VERSION_TABLE} (version) VALUES ({SCHEMA_VERSION})")
                        version, tables = self._schema(con)
            if version != SCHEMA_VERSION or not set(TABLES) <= tables:
                raise self.fail(f"another schema (version {version}, tables {sorted(tables)}); expected an empty "
                                f"database or an irlhf label store (version {SCHEMA_VERSION}, tables {list(TABLES)})")
        except self._driver.Error as err:
            self.close()
            raise self.fail(f"unusable PostgreSQL database ({' '.join(str(err).split())[:300]})") from None
        except (StoreError, ValidationError):
            self.close()
            raise

    @staticmethod
    def _schema(con: PgConnection) -> tuple[int, set[str]]:
        """(schema version or 0, table names) of the connection's current schema."""
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}
        if VERSION_TABLE not in tables:
            return 0, tables
        row = con.execute(f"SELECT MAX(version) FROM {VERSION_TABLE}").fetchone()
        return int(row[0] or 0), tables - {VERSION_TABLE}

    def connection(self) -> PgConnection:  # type: ignore[override]
        """This thread's connection (a fresh one after fork: a server connection must not cross processes)."""
        con = getattr(self._local, "con", None)
        if con is not None and self._local.pid == os.getpid():
            return con
        con = self._connect()
        self._local.con, self._local.pid, self._local.depth = con, os.getpid(), 0
        with self._lock:
            self._all.append(con)
        return con

    @staticmethod
    def _begin_write(con: PgConnection) -> None:  # type: ignore[override]
        """BEGIN, then wait for the store's write lock (released by COMMIT / ROLLBACK)."""
        con.execute("BEGIN")
        # one advisory lock serialises writers as SQLite's BEGIN IMMEDIATE does: no deadlock, no retry, no lease race
        con.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")

    @staticmethod
    def _begin_read(con: PgConnection) -> None:  # type: ignore[override]
        """A read-only transaction on one snapshot, as SQLite's deferred BEGIN gives."""
        con.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")


def is_url(target: object) -> bool:
    """True for a string with a URL scheme other than sqlite:// (a database server, not a file to look for)."""
    if not isinstance(target, str) or re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", target) is None:
        return False
    return not target.lower().startswith("sqlite://")

