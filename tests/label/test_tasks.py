"""``irlhf.label.tasks``: reading, validating and importing JSONL task files."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
from pathlib import Path

import pytest

from irlhf import cli
from irlhf.core.errors import IrlhfError
from irlhf.label import LabelStore
from irlhf.label.tasks import default_session, format_stats, import_task, make_query_id, read_media, read_task

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
GIF = b"GIF89a" + b"\x00" * 16


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_default_session_and_query_ids():
    assert default_session("some/dir/my task.v2.jsonl") == "my_task.v2"
    assert make_query_id("task", "task", "q") == "task-q"
    long = make_query_id("s" * 40, "t" * 40, "k")
    assert len(long) == 32 and long == make_query_id("s" * 40, "t" * 40, "k")  # hashed, stable


def test_read_task_validates_rows_and_reads_media(tmp_path):
    (tmp_path / "a.gif").write_bytes(GIF)
    (tmp_path / "s.png").write_bytes(PNG)
    task = write(tmp_path / "t.jsonl", [
        {"prompt": "p", "responses": ["x", "y"], "id": "q1"}, "",
        {"kind": "pair", "left": "a.gif", "right": "a.gif"},
        {"kind": "dagger", "frame": "s.png", "actions": ["left", "right"]}])
    rows = read_task(task, "sess")
    assert [(r.line, r.kind, r.query_id) for r in rows] == [(1, "text", "sess.t.q1"), (3, "pair", "sess.t.L3"),
                                                             (4, "dagger", "sess.t.L4")]
    assert rows[1].media == {"left": (GIF, "image/gif"), "right": (GIF, "image/gif")}
    assert rows[1].payload["left"] == "left" and rows[2].media["frame"] == (PNG, "image/png")


@pytest.mark.parametrize("row, message", [
    ("{bad", "t.jsonl:1: bad JSON"),
    ([1, 2], "expected a JSON object"),
    ({"kind": "video"}, "kind='video'"),
    ({"prompt": "p", "responses": ["x", "y"], "colour": 1}, "unknown key(s) ['colour']"),
    ({"kind": "pair", "left": "../x.gif", "right": "a.gif"}, "outside the task file's folder"),
    ({"kind": "pair", "left": "a.txt", "right": "a.gif"}, "unsupported media type '.txt'"),
    ({"kind": "pair", "left": "fake.gif", "right": "a.gif"}, "wrong file signature"),
    ({"kind": "pair", "left": "none.gif", "right": "a.gif"}, "no such file"),
])
def test_bad_rows_name_file_and_line(tmp_path, row, message):
    (tmp_path / "a.gif").write_bytes(GIF)
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "fake.gif").write_bytes(PNG)
    task = write(tmp_path / "t.jsonl", [row])
    with pytest.raises(IrlhfError, match="t.jsonl:1: ") as info:
        read_task(task, "s")
    assert message in str(info.value)


def test_duplicate_ids_missing_and_empty_files(tmp_path):
    task = write(tmp_path / "t.jsonl", [{"prompt": "p", "responses": ["x", "y"], "id": "a"},
                                        {"prompt": "q", "responses": ["x", "y"], "id": "a"}])
    with pytest.raises(IrlhfError, match="t.jsonl:2: id='a' also on line 1"):
        read_task(task, "s")
    with pytest.raises(IrlhfError, match="no such file"):
        read_task(tmp_path / "none.jsonl", "s")
    with pytest.raises(IrlhfError, match="holds no queries"):
        read_task(write(tmp_path / "e.jsonl", [""]), "s")
    with pytest.raises(IrlhfError, match="expected a media path"):
        read_media(tmp_path, 3, "left", "here")


def test_import_task_is_idempotent_and_stats_lines(tmp_path):
    task = write(tmp_path / "t.jsonl", [{"prompt": "p", "responses": ["x", "y"]},
                                        {"prompt": "q", "responses": ["x", "y", "z"]}])
    rows = read_task(task, "s")
    with LabelStore(tmp_path / "l.sqlite") as store:
        assert import_task(store, rows, "s", n_annotators=2) == (2, 0)
        assert import_task(store, rows, "s") == (0, 2)
        lines = format_stats(store.stats("s"), "s", tmp_path / "l.sqlite")
    assert lines[0].startswith("session s in ") and lines[1] == "queries: 2 (0 complete, 2 pending)"
    assert lines[2:] == ["labels: 0", "labels per annotator: none yet",
                         "agreement: n/a (no query has two non-skip labels)"]


# -- query ids: unambiguous, readable where possible, old ids still resolve (issue 19, item 4)

TRICKY_PARTS = [("x", "x", "y-z"), ("x", "y", "z"), ("x-y", "x-y", "z"), ("x", "x-y", "z"), ("x.y", "x.y", "z"),
                ("a", "b", "c.d"), ("a", "b.c", "d"), ("a.b", "c", "d"), ("a", "a", "b.c"), ("a", "a.b", "c"),
                ("task", "task", "L3"), ("s", "task", "L3"), ("s" * 40, "t" * 40, "k"), ("t" * 40, "t" * 40, "k")]


def test_query_ids_are_unambiguous_and_readable_where_possible():
    ids = [make_query_id(*parts) for parts in TRICKY_PARTS]
    assert len(set(ids)) == len(ids), dict(zip(ids, TRICKY_PARTS))
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", qid) for qid in ids)
    assert make_query_id("task", "task", "L3") == "task-L3"  # the default session: the same ids as before
    assert make_query_id("s", "task", "L3") == "s.task.L3"
    assert make_query_id("s" * 40, "t" * 40, "k") == make_query_id("s" * 40, "t" * 40, "k")  # hashed, stable


def test_distinct_queries_with_once_colliding_ids_are_all_imported(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write(tmp_path / "a" / "x.jsonl", [{"prompt": "first", "responses": ["p", "q"], "id": "y-z"}])
    second = write(tmp_path / "b" / "y.jsonl", [{"prompt": "second", "responses": ["p", "q"], "id": "z"}])
    with LabelStore(tmp_path / "l.sqlite") as store:
        assert import_task(store, read_task(first, "x"), "x") == (1, 0)
        assert import_task(store, read_task(second, "x"), "x") == (1, 0)  # once "x-y-z" too, silently dropped
        assert [q.payload["prompt"] for q in store.queries("x")] == ["first", "second"]


def test_duplicate_ids_in_one_import_name_both_rows(tmp_path):
    task = write(tmp_path / "t.jsonl", [{"prompt": "p", "responses": ["x", "y"], "id": "L3"}, "",
                                        {"prompt": "q", "responses": ["x", "y"]}])
    with pytest.raises(IrlhfError, match=r"t.jsonl:3: .*'L3'.*line 3.*also the id on line 1") as info:
        read_task(task, "s")
    assert "\n" not in str(info.value)
    rows = read_task(write(tmp_path / "u.jsonl", [{"prompt": "p", "responses": ["x", "y"], "id": "a"},
                                                  {"prompt": "q", "responses": ["x", "y"], "id": "b"}]), "s")
    twice = [rows[0], dataclasses.replace(rows[1], query_id=rows[0].query_id)]
    with LabelStore(tmp_path / "l.sqlite") as store:
        with pytest.raises(IrlhfError, match=r"u.jsonl:2: query id .* also .*u.jsonl:1"):
            import_task(store, twice, "s")
        assert store.queries() == []


def test_old_ids_still_resolve_and_edited_rows_are_refused(tmp_path):
    text = {"prompt": "p", "responses": ["x", "y"]}
    task = write(tmp_path / "t.jsonl", [text, {"prompt": "other", "responses": ["x", "y"]}])
    with LabelStore(tmp_path / "l.sqlite") as store:
        store.add_query("text", text, session="mine", query_id="mine-t-L1")  # imported by an older irlhf
        store.add_query("text", {"prompt": "not row 2", "responses": ["x", "y"]}, session="mine",
                        query_id="mine-t-L2")  # an old id that happens to match, with other content
        assert import_task(store, read_task(task, "mine"), "mine") == (1, 1)
        assert [q.id for q in store.queries("mine")] == ["mine-t-L1", "mine-t-L2", "mine.t.L2"]
        assert import_task(store, read_task(task, "mine"), "mine") == (0, 2)
        write(task, [text, {"prompt": "edited", "responses": ["x", "y"]}])
        with pytest.raises(IrlhfError, match=r"t.jsonl:2: query id 'mine.t.L2' is already in session 'mine' "
                                             r"with other content"):
            import_task(store, read_task(task, "mine"), "mine")
        assert len(store.queries()) == 3


# -- one transaction per import (issue 19, item 3)


def count_rows(path, table):
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def test_failed_import_leaves_the_store_exactly_as_before(tmp_path):
    (tmp_path / "a.gif").write_bytes(GIF)
    task = write(tmp_path / "t.jsonl", [{"kind": "pair", "left": "a.gif", "right": "a.gif"},
                                        {"prompt": "p", "responses": ["x", "y"]},
                                        {"prompt": "q", "responses": ["x", "y"], "id": "taken"}])
    rows = read_task(task, "s")
    db = tmp_path / "l.sqlite"
    with LabelStore(db) as store:
        store.add_query("text", {"prompt": "elsewhere", "responses": ["x", "y"]}, session="other",
                        query_id=rows[2].query_id)  # row 3's id is taken in another session
        before = [(q.id, q.session, q.payload) for q in store.queries()]
        with pytest.raises(IrlhfError, match=r"t.jsonl:3: .*already exists .*session 'other'"):
            import_task(store, rows, "s")
        assert [(q.id, q.session, q.payload) for q in store.queries()] == before
        assert store.sessions() == ["other"]
    assert count_rows(db, "media") == 0 and count_rows(db, "queries") == 1


# -- unusable media paths: one line, exit 2, no traceback (issue 19, item 6)


@pytest.mark.parametrize("path, message", [
    ("a\u0000.gif", "holds a NUL byte"),
    ("folder.gif", "is a directory"),
    ("locked.gif", "cannot read it (Permission denied)"),
    ("loop.gif", "cannot resolve it"),
    ("fifo.gif", "not a regular file"),
])
def test_unusable_media_path_is_a_one_line_cli_error(tmp_path, monkeypatch, capsys, path, message):
    (tmp_path / "a.gif").write_bytes(GIF)
    (tmp_path / "folder.gif").mkdir()
    (tmp_path / "locked.gif").write_bytes(GIF)
    (tmp_path / "loop.gif").symlink_to(tmp_path / "loop.gif")
    os.mkfifo(tmp_path / "fifo.gif")
    real_read_bytes = Path.read_bytes

    def read_bytes(self):  # root reads any file whatever its mode: refuse this one by hand
        if self.name == "locked.gif":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    task = write(tmp_path / "t.jsonl", [{"kind": "pair", "left": path, "right": "a.gif"}])
    db = tmp_path / "l.sqlite"
    assert cli.main(["label", "--db", str(db), "--task", str(task), "--stats"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"irlhf: error: {task}:1: left=") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not db.exists()
