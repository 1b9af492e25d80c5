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
