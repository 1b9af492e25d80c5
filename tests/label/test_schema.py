from __future__ import annotations

import sqlite3
import threading

import pytest

from irlhf.label.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    TABLES,
    Database,
    StoreError,
    migrate,
    needs_migration,
    schema_of,
)


def test_one_migration_per_version() -> None:
    assert len(MIGRATIONS) == SCHEMA_VERSION


def test_needs_migration_only_for_empty_or_older_stores() -> None:
    assert needs_migration(0, set())
    assert not needs_migration(0, {"things"})  # someone else's database: never touched
    assert not needs_migration(SCHEMA_VERSION, set(TABLES))
    assert not needs_migration(SCHEMA_VERSION + 1, set(TABLES))


def test_migrate_creates_every_table_and_is_idempotent() -> None:
    con = sqlite3.connect(":memory:", isolation_level=None)
    migrate(con)
    assert schema_of(con) == (SCHEMA_VERSION, set(TABLES))
    migrate(con)  # already current: nothing happens (a second CREATE TABLE would raise)
    assert schema_of(con) == (SCHEMA_VERSION, set(TABLES))
    con.close()


def test_write_rolls_back_on_error_and_threads_get_their_own_connection(tmp_path) -> None:
    db = Database(tmp_path / "x.db")
    with pytest.raises(RuntimeError):
        with db.write() as con:
            con.execute("INSERT INTO sessions (name, created) VALUES ('s', 0)")
            raise RuntimeError("boom")
    with db.read() as con:
        assert con.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0
    main = db.connection()
    other: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: other.append(db.connection()))
    thread.start()
    thread.join()
    assert db.connection() is main and other[0] is not main
    db.close()


def test_newer_version_is_refused(tmp_path) -> None:
    path = tmp_path / "new.db"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(StoreError, match=f"user_version {SCHEMA_VERSION + 1}.*expected an irlhf label store"):
        Database(path)


def run_briefly(body, seconds=10.0):
    """Run ``body()`` in a thread; fail (instead of hanging the suite) if it does not finish in time."""
    errors: list[BaseException] = []

    def target():
        try:
            body()
        except BaseException as err:  # surfaced below: a thread's exception is otherwise lost
            errors.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"did not finish in {seconds} s (deadlock?)"
    if errors:
        raise errors[0]


def names(con):
    return [r[0] for r in con.execute("SELECT name FROM sessions ORDER BY name")]


def test_nested_writes_share_one_transaction_and_a_failed_one_undoes_only_itself(tmp_path) -> None:
    db = Database(tmp_path / "x.db")

    def body():
        with db.write() as con:
            con.execute("INSERT INTO sessions (name, created) VALUES ('a', 0)")
            with pytest.raises(RuntimeError):
                with db.write() as inner:
                    inner.execute("INSERT INTO sessions (name, created) VALUES ('b', 0)")
                    raise RuntimeError("boom")
            with db.read() as reader:  # a read inside the write sees it, without a second BEGIN
                assert names(reader) == ["a"]
            outside = sqlite3.connect(db.path)
            assert names(outside) == []  # nothing is committed before the outermost write ends
            outside.close()
        with db.read() as con:
            assert names(con) == ["a"]

    run_briefly(body)
    db.close()


V1_DATA = """
INSERT INTO sessions VALUES ('s', 0), ('t', 1);
INSERT INTO queries (id, kind, session, payload, n_annotators, n_labels, created) VALUES
    ('q1', 'pair', 's', '{}', 2, 2, 0), ('q2', 'pair', 's', '{}', 1, 0, 0), ('q3', 'pair', 't', '{}', 1, 1, 0);
INSERT INTO labels (query_id, annotator, value, created) VALUES
    ('q1', 'alice', '"left"', 0), ('q1', 'bob', '"left"', 0), ('q3', 'alice', '"right"', 0);
"""


def test_version_1_store_is_migrated_with_its_counters_filled_in(tmp_path) -> None:
    path = tmp_path / "v1.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.executescript(MIGRATIONS[0] + V1_DATA + "PRAGMA user_version = 1;")
    con.close()
    db = Database(path)
    with db.read() as con:
        assert schema_of(con) == (SCHEMA_VERSION, set(TABLES))
        assert sorted(con.execute("SELECT session, n_queries, n_complete FROM session_counts")) == [
            ("s", 2, 1), ("t", 1, 1)]
        assert sorted(con.execute("SELECT session, annotator, n_labels FROM annotator_counts")) == [
            ("s", "alice", 1), ("s", "bob", 1), ("t", "alice", 1)]
    with db.write() as con:  # from now on the triggers keep them
        con.execute("INSERT INTO labels (query_id, annotator, value, created) VALUES ('q2', 'bob', '\"left\"', 0)")
        con.execute("UPDATE queries SET n_labels = 1 WHERE id = 'q2'")
        con.execute("INSERT INTO sessions (name, created) VALUES ('u', 2)")
        con.execute("INSERT INTO queries (id, kind, session, payload, n_annotators, created) "
                    "VALUES ('q4', 'pair', 'u', '{}', 1, 0)")
    with db.read() as con:
        assert sorted(con.execute("SELECT session, n_queries, n_complete FROM session_counts")) == [
            ("s", 2, 2), ("t", 1, 1), ("u", 1, 0)]
        assert con.execute("SELECT n_labels FROM annotator_counts WHERE session = 's' AND annotator = 'bob'"
                           ).fetchone() == (2,)
    db.close()
