"""``irlhf.label.tasks``: reading, validating and importing JSONL task files."""

from __future__ import annotations

import json

import pytest

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
    assert make_query_id("s", "task", "L3") == "s-task-L3" and make_query_id("task", "task", "q") == "task-q"
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
    assert [(r.line, r.kind, r.query_id) for r in rows] == [(1, "text", "sess-t-q1"), (3, "pair", "sess-t-L3"),
                                                             (4, "dagger", "sess-t-L4")]
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
