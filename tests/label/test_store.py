from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from irlhf.core.errors import IrlhfError, ValidationError
from irlhf.data.text import TextPairs
from irlhf.label.store import (
    KINDS,
    SCHEMA_VERSION,
    LabelError,
    LabelStore,
    StoreError,
    UnknownMediaError,
    UnknownQueryError,
    aggregate,
    check_label,
    check_payload,
    export_jsonl,
    export_text_pairs,
)

GIF = (b"GIF89a-left", "image/gif")
PNG = (b"\x89PNG-right", "image/png")
TEXT = {"prompt": "Say hi", "responses": ["hello", "go away", "hi there"]}
DAGGER = {"frame": "f", "actions": ["left", "right", "noop"]}
TAMER = {"clip": "c", "n_steps": 4, "step_seconds": 0.5}


@pytest.fixture
def db(new_store_target):
    """An empty store on each backend (tests/label/conftest.py): an SQLite file, then a PostgreSQL schema."""
    with LabelStore(new_store_target()) as store:
        yield store


def target_of(store):
    """What opens ``store`` again in another process: its file, or its full postgresql:// URL."""
    return getattr(store._db, "url", str(store.path))


def sqlite_only(store):
    if getattr(store._db, "url", None) is not None:
        pytest.skip("counts SQLite virtual-machine steps: SQLite only")


def add_pair(store, session="s", **kw):
    return store.add_query("pair", {"left": "a", "right": "b"}, session=session, media={"a": GIF, "b": PNG}, **kw)


def test_schema_created_and_reopen_keeps_everything(tmp_path):
    path = tmp_path / "sub" / "labels.db"
    store = LabelStore(path)
    qid = add_pair(store, query_id="q1", n_annotators=2)
    tid = store.add_query("text", TEXT, session="t")
    assert store.add_label(qid, "alice", "left") and store.add_label(tid, "bob", {"ranking": [[2], [1, 0]]})
    store.close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"sessions", "queries", "media", "labels", "assignments"} <= tables
    con.close()

    again = LabelStore(path)
    q = again.get_query("q1")
    assert (q.kind, q.session, q.n_annotators, q.n_labels) == ("pair", "s", 2, 1)
    assert again.media(q.payload["left"]) == GIF and again.media(q.payload["right"]) == PNG
    assert [(lab.annotator, lab.value) for lab in again.labels()] == [
        ("alice", "left"), ("bob", {"ranking": [[2], [0, 1]]})]
    assert again.sessions() == ["s", "t"]
    assert isinstance(q.created, float) and abs(q.created - time.time()) < 60
    again.close()


def test_non_sqlite_file_rejected_untouched(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"my precious notes\n" * 10)
    with pytest.raises(StoreError, match="notes.db.*not an SQLite database"):
        LabelStore(path)
    assert path.read_bytes() == b"my precious notes\n" * 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_other_schema_rejected_untouched(tmp_path):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE things (x)")
    con.execute("INSERT INTO things VALUES (1)")
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="other.db.*another schema.*things"):
        LabelStore(path)
    assert path.read_bytes() == before
    con = sqlite3.connect(path)  # still a rollback-journal database with its row
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert con.execute("SELECT x FROM things").fetchall() == [(1,)]
    con.close()

    versioned = tmp_path / "v7.db"
    con = sqlite3.connect(versioned)
    con.execute("PRAGMA user_version = 7")
    con.close()
    with pytest.raises(StoreError, match="user_version 7"):
        LabelStore(versioned)


def test_corrupt_file_and_directory_rejected(tmp_path):
    path = tmp_path / "corrupt.db"
    data = b"SQLite format 3\x00" + b"\xff" * 4000
    path.write_bytes(data)
    with pytest.raises(StoreError, match="corrupt.db.*corrupt"):
        LabelStore(path)
    assert path.read_bytes() == data
    with pytest.raises(StoreError, match="is a directory"):
        LabelStore(tmp_path)
    assert issubclass(StoreError, IrlhfError) and issubclass(StoreError, ValueError)


def test_add_query_idempotent_and_add_label_first_wins(db):
    qid = add_pair(db, query_id="fixed-1")
    assert add_pair(db, query_id="fixed-1") == "fixed-1"
    assert len(db.queries()) == 1
    assert db._db.connection().execute("SELECT COUNT(*) FROM media").fetchone()[0] == 2
    with pytest.raises(StoreError, match="already exists.*session 's'"):
        add_pair(db, session="other", query_id="fixed-1")
    auto = add_pair(db)
    assert len(auto) == 32 and all(c in "0123456789abcdef" for c in auto)

    assert db.add_label(qid, "alice", "right") is True
    assert db.add_label(qid, "alice", "left") is False
    assert [lab.value for lab in db.labels(query_id=qid)] == ["right"]
    # a label past n_annotators is kept, not lost
    assert db.add_label(qid, "bob", "left") is True
    assert db.get_query(qid).n_labels == 2 and db.stats()["n_complete"] == 1
    with pytest.raises(UnknownQueryError, match="nope"):
        db.add_label("nope", "alice", "left")
    with pytest.raises(LabelError, match="annotator"):
        db.add_label(qid, "bad/name", "left")


def test_concurrent_writers_count_exactly(db):
    qids = [add_pair(db, query_id=f"q{k}", n_annotators=4) for k in range(50)]
    results: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        # threads 2k and 2k+1 label as the same annotator: half of all calls are duplicates
        try:
            mine = [db.add_label(qid, f"ann{t // 2}", "left" if t % 2 else "right") for qid in qids]
            add_pair(db, query_id="shared")  # the same new query from every thread at once
            with lock:
                results.extend(mine)
        except BaseException as err:  # surfaced below: a thread's exception is otherwise lost
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert results.count(True) == 200 and results.count(False) == 200
    assert len(db.labels()) == 200 and len(db.queries()) == 51
    assert {db.get_query(q).n_labels for q in qids} == {4}
    assert db.stats()["per_annotator"] == {f"ann{k}": 50 for k in range(4)}


WRITER = """
import sys
from irlhf.label.store import LabelStore
store = LabelStore(sys.argv[1])
added = [store.add_label(f"q{k}", sys.argv[2], "left") for k in range(30)]
print(sum(added))
"""


def test_concurrent_processes(db):
    for k in range(30):
        add_pair(db, query_id=f"q{k}", n_annotators=2)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, target_of(db), who], stdout=subprocess.PIPE, text=True)
             for who in ("p1", "p2", "p1")]
    outs = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert sum(outs[::2]) == 30 and outs[1] == 30  # the two "p1" processes split its 30 labels between them
    assert len(db.labels()) == 60 and db.stats()["n_complete"] == 30


def test_next_query_leases_one_annotator_each(new_store_target):
    store = LabelStore(new_store_target(), lease_seconds=0.3)
    q1, q2 = add_pair(store, query_id="q1"), add_pair(store, query_id="q2")
    assert store.next_query("alice").id == q1
    assert store.next_query("bob").id == q2  # q1 is leased to alice
    assert store.next_query("carol") is None
    assert store.next_query("alice").id == q1  # her own lease again (page reload)
    assert store.add_label(q1, "alice", "left")
    assert store.next_query("alice") is None  # q1 labelled, q2 leased to bob
    time.sleep(0.35)
    assert store.next_query("carol").id == q2  # bob's lease ran out
    assert store.next_query("bob") is None  # now carol holds it
    assert store.add_label(q2, "bob", "equal")  # bob's late answer still counts
    assert store.next_query("carol") is None and store.next_query("dave") is None  # q2 is complete
    store.close()


def test_next_query_two_annotators_and_sessions(db):
    q1 = add_pair(db, query_id="q1", n_annotators=2)
    q2 = add_pair(db, session="other", query_id="q2")
    assert db.next_query("alice", session="s").id == q1
    assert db.next_query("bob", session="s").id == q1  # n_annotators=2: both may hold it
    assert db.next_query("carol", session="s") is None
    assert db.next_query("carol").id == q2
    assert db.add_label(q1, "alice", "left") and db.add_label(q1, "bob", "left")
    assert db.next_query("alice", session="s") is None and db.next_query("carol", session="s") is None
    assert db.stats("s") == {"n_queries": 1, "n_complete": 1, "pending": 0, "n_labels": 2,
                             "per_annotator": {"alice": 1, "bob": 1}, "agreement": 1.0}
    with pytest.raises(LabelError, match="annotator"):
        db.next_query("")
    with pytest.raises(ValidationError, match="session"):
        db.next_query("alice", session="a b")


def test_wait_labels_timeout_and_wakeup(db):
    q1, q2 = add_pair(db, query_id="q1"), add_pair(db, query_id="q2", n_annotators=2)
    db.add_label(q1, "alice", "left")
    start = time.monotonic()
    got = db.wait_labels([q1, q2], timeout=0.1, poll=0.02)
    assert 0.1 <= time.monotonic() - start < 1.0
    assert [lab.value for lab in got[q1]] == ["left"] and got[q2] == []

    def later() -> None:
        time.sleep(0.05)
        db.add_label(q2, "alice", "right")
        db.add_label(q2, "bob", "equal")

    th = threading.Thread(target=later)
    start = time.monotonic()
    th.start()
    got = db.wait_labels([q1, q2], timeout=5, poll=0.02)
    th.join()
    assert time.monotonic() - start < 2.0
    assert [lab.annotator for lab in got[q2]] == ["alice", "bob"]
    assert db.wait_labels([], timeout=None) == {}
    with pytest.raises(UnknownQueryError):
        db.wait_labels(["missing"], timeout=0)
    with pytest.raises(UnknownQueryError):
        db.get_query({"id": 1})
    with pytest.raises(ValidationError, match="timeout"):
        db.wait_labels([q1], timeout=math.nan)


def test_media_errors(db):
    with pytest.raises(UnknownMediaError, match="32 lowercase hex"):
        db.media("../etc/passwd")
    with pytest.raises(UnknownMediaError, match="no such media"):
        db.media("0" * 32)


@pytest.mark.parametrize("kind, payload, media, match", [
    ("video", {}, None, "kind='video'"),
    ("pair", ["a", "b"], None, "expected a dict"),
    ("pair", {"left": "a"}, {"a": GIF}, r"missing field\(s\) \['right'\]"),
    ("pair", {"left": "a", "right": "b", "colour": 1}, {"a": GIF, "b": GIF}, "unknown field.*colour"),
    ("pair", {"left": "a", "right": "zz"}, {"a": GIF}, "'zz': no such media"),
    ("pair", {"left": "a", "right": "a"}, {"a": GIF, "b": GIF}, r"\['b'\] not named"),
    ("pair", {"left": "a", "right": "a"}, {"a": (b"x", "image/bmp")}, "mime='image/bmp'"),
    ("pair", {"left": "a", "right": "a"}, {"a": (b"", "image/gif")}, "non-empty bytes"),
    ("pair", {"left": "a", "right": "a"}, {"a": b"x"}, r"\(bytes, mime\) pair"),
    ("pair", {"left": "a", "right": "a", "title": 3}, {"a": GIF}, "title.*expected a string"),
    ("pair", {"left": "a", "right": "a", "meta": {"x": math.nan}}, {"a": GIF}, "meta.*not JSON"),
    ("pair", {"left": "a", "right": "a", "meta": {"x": "y" * 20001}}, {"a": GIF}, "20001 characters"),
    ("text", {"prompt": "p", "responses": ["only one"]}, None, "2 to 9 strings"),
    ("text", {"prompt": "p", "responses": ["r"] * 10}, None, "2 to 9 strings"),
    ("text", {"prompt": "p", "responses": ["a", ""]}, None, r"responses'\]\[1\]: empty"),
    ("text", {"prompt": "p" * 20001, "responses": ["a", "b"]}, None, "prompt.*at most 20000"),
    ("text", {"prompt": None, "responses": ["a", "b"]}, None, "prompt.*expected a string"),
    ("dagger", {"frame": "f", "actions": ["one"]}, {"f": PNG}, "2 to 32 strings"),
    ("dagger", {"frame": "f", "actions": ["a"] * 33}, {"f": PNG}, "2 to 32 strings"),
    ("tamer", {"clip": "c", "n_steps": 0, "step_seconds": 0.5}, {"c": GIF}, "n_steps.*int >= 1"),
    ("tamer", {"clip": "c", "n_steps": True, "step_seconds": 0.5}, {"c": GIF}, "n_steps.*int >= 1"),
    ("tamer", {"clip": "c", "n_steps": 2, "step_seconds": math.inf}, {"c": GIF}, r"step_seconds'\]=inf"),
    ("tamer", {"clip": "c", "n_steps": 2, "step_seconds": math.nan}, {"c": GIF}, r"step_seconds'\]=nan"),
    ("tamer", {"clip": "c", "n_steps": 2, "step_seconds": 0}, {"c": GIF}, r"step_seconds'\]=0: .*> 0"),
])
def test_bad_payload(db, kind, payload, media, match):
    with pytest.raises(ValidationError, match=match):
        db.add_query(kind, payload, session="s", media=media)
    assert db.queries() == []


@pytest.mark.parametrize("kwargs, match", [
    ({"session": "has space"}, "session='has space'"),
    ({"session": "x" * 65}, "session="),
    ({"query_id": "a/b"}, "query_id='a/b'"),
    ({"query_id": "q" * 65}, "query_id="),
    ({"n_annotators": 0}, "n_annotators=0"),
    ({"n_annotators": 1.0}, "n_annotators=1.0"),
])
def test_bad_add_query_arguments(db, kwargs, match):
    args = {"session": "s", **kwargs}
    with pytest.raises(ValidationError, match=match):
        db.add_query("text", TEXT, **args)


@pytest.mark.parametrize("kind, payload, value, match", [
    ("pair", {}, "up", "expected one of left, right, equal, skip"),
    ("pair", {}, ["left"], "expected one of"),
    ("text", TEXT, {"ranking": [[0], [1]]}, r"index\(es\) \[2\] missing"),
    ("text", TEXT, {"ranking": [[0, 1], [1], [2]]}, "index 1 appears twice"),
    ("text", TEXT, {"ranking": [[0], [1], [3]]}, r"\[2\]\[0\]=3: expected an int in 0..2"),
    ("text", TEXT, {"ranking": [[0], [], [1, 2]]}, r"ranking'\]\[1\]=\[\]"),
    ("text", TEXT, {"ranking": [[0], [True], [2]]}, "=True: expected an int"),
    ("text", TEXT, {"ranking": []}, "non-empty list of tie groups"),
    ("text", TEXT, {"order": [[0]]}, "expected .*ranking"),
    ("text", TEXT, "left", "expected .*ranking"),
    ("dagger", DAGGER, {"action": 3}, r"action'\]=3: expected an int in 0..2"),
    ("dagger", DAGGER, {"action": -1}, "in 0..2"),
    ("dagger", DAGGER, {"action": 1.0}, "action'\\]=1.0"),
    ("tamer", TAMER, "skip", "expected {'events'"),
    ("tamer", TAMER, {"events": [{"t": 7.01, "h": 1}]}, r"\[0, 7\]"),
    ("tamer", TAMER, {"events": [{"t": -0.1, "h": 1}]}, "'t'\\]=-0.1"),
    ("tamer", TAMER, {"events": [{"t": math.nan, "h": 1}]}, "'t'\\]=nan"),
    ("tamer", TAMER, {"events": [{"t": math.inf, "h": 1}]}, "'t'\\]=inf"),
    ("tamer", TAMER, {"events": [{"t": 1.0, "h": 0}]}, "'h'\\]=0: expected 1 or -1"),
    ("tamer", TAMER, {"events": [{"t": 1.0, "h": 1, "x": 2}]}, r"events'\]\[0\]="),
    ("tamer", TAMER, {"events": [{"t": 1.0, "h": 1}] * 10001}, "10001 events"),
    ("bogus", {}, "left", "kind='bogus'"),
])
def test_bad_label(kind, payload, value, match):
    with pytest.raises(LabelError, match=match):
        check_label(kind, payload, value)


def test_check_label_normalises_and_store_rejects_bad_value(db):
    assert check_label("text", TEXT, {"ranking": [[2, 0], [1]]}) == {"ranking": [[0, 2], [1]]}
    assert check_label("text", TEXT, "skip") == "skip" and check_label("dagger", DAGGER, "skip") == "skip"
    assert check_label("tamer", TAMER, {"events": [{"t": 7, "h": -1}]}) == {"events": [{"t": 7.0, "h": -1}]}
    assert check_label("tamer", TAMER, {"events": []}) == {"events": []}
    assert check_payload("tamer", {"clip": "c", "n_steps": 2, "step_seconds": 1}, ["c"])["step_seconds"] == 1.0
    assert KINDS == ("pair", "text", "dagger", "tamer")
    qid = db.add_query("dagger", DAGGER, session="s", media={"f": PNG})
    with pytest.raises(LabelError, match="in 0..2"):
        db.add_label(qid, "alice", {"action": 5})
    assert db.labels() == []
    assert db.add_label(qid, "alice", {"action": 2})


@pytest.mark.parametrize("kind, payload, values, expected", [
    ("pair", {}, ["left"], 1.0),
    ("pair", {}, ["right", "skip"], 0.0),
    ("pair", {}, ["equal"], 0.5),
    ("pair", {}, ["skip", "skip"], None),
    ("pair", {}, [], None),
    ("pair", {}, ["left", "right"], 0.5),
    ("pair", {}, ["left", "left", "right"], 0.5),  # mean 2/3 is nearer .5 than 1
    ("pair", {}, ["left", "right", "right", "right"], 0.5),  # mean exactly .25: a tie goes to .5
    ("pair", {}, ["left", "left", "left", "right"], 0.5),  # mean exactly .75
    ("pair", {}, ["left", "left", "left", "left", "right"], 1.0),  # mean .8
    ("pair", {}, ["right", "right", "right", "right", "left"], 0.0),  # mean .2
    ("text", TEXT, ["skip", {"ranking": [[2], [1, 0]]}], [[2], [0, 1]]),
    ("text", TEXT, [{"ranking": [[0], [1], [2]]}, {"ranking": [[2], [1], [0]]}], [[0, 1, 2]]),
    ("text", TEXT, [{"ranking": [[0], [1], [2]]}, {"ranking": [[1], [0], [2]]}], [[0, 1], [2]]),
    ("text", TEXT, [{"ranking": [[0], [1], [2]]}, {"ranking": [[0, 1, 2]]}, {"ranking": [[1], [0], [2]]}],
     [[0, 1], [2]]),
    ("text", TEXT, [{"ranking": [[2], [0], [1]]}, {"ranking": [[0], [2], [1]]}, {"ranking": [[2], [1], [0]]}],
     [[2], [0], [1]]),
    ("text", TEXT, ["skip"], None),
    ("dagger", DAGGER, [{"action": 2}, {"action": 1}, {"action": 2}, "skip"], 2),
    ("dagger", DAGGER, [{"action": 2}, {"action": 1}], 1),
    ("dagger", DAGGER, ["skip"], None),
    ("tamer", TAMER, [{"events": [{"t": 1.5, "h": 1}, {"t": 0.2, "h": -1}]}, {"events": [{"t": 1.0, "h": 1}]}],
     [{"t": 0.2, "h": -1}, {"t": 1.0, "h": 1}, {"t": 1.5, "h": 1}]),
    ("tamer", TAMER, [{"events": []}], []),
    ("tamer", TAMER, [], None),
])
def test_aggregate_golden(kind, payload, values, expected):
    assert aggregate(kind, payload, values) == expected


def test_stats_agreement_hand_made(db):
    p1, p2 = add_pair(db, query_id="p1", n_annotators=3), add_pair(db, query_id="p2", n_annotators=3)
    t1 = db.add_query("text", TEXT, session="s", query_id="t1", n_annotators=2)
    c1 = db.add_query("tamer", TAMER, session="s", query_id="c1", media={"c": GIF}, n_annotators=2)
    add_pair(db, session="other", query_id="o1")
    db.add_label("o1", "zed", "left")
    # p1: left, left, right -> pairs (a,b) agree, (a,c) (b,c) disagree: 1 of 3
    for who, v in [("a", "left"), ("b", "left"), ("c", "right")]:
        db.add_label(p1, who, v)
    # p2: left, skip -> no pair once skips are excluded
    db.add_label(p2, "a", "left")
    db.add_label(p2, "b", "skip")
    # t1: the same ranking with the tie written in another order -> 1 of 1
    db.add_label(t1, "a", {"ranking": [[1, 0], [2]]})
    db.add_label(t1, "b", {"ranking": [[0, 1], [2]]})
    # c1: tamer streams are not compared
    db.add_label(c1, "a", {"events": [{"t": 1.0, "h": 1}]})
    db.add_label(c1, "b", {"events": [{"t": 1.0, "h": -1}]})
    stats = db.stats("s")
    assert stats == {"n_queries": 4, "n_complete": 3, "pending": 1, "n_labels": 9,
                     "per_annotator": {"a": 4, "b": 4, "c": 1}, "agreement": 2 / 4}
    assert db.stats()["n_queries"] == 5 and db.stats()["per_annotator"]["zed"] == 1
    assert db.stats("empty")["agreement"] is None and db.stats("empty")["n_queries"] == 0


def test_export_jsonl_and_text_pairs_round_trip(db, tmp_path):
    t1 = db.add_query("text", TEXT, session="s", query_id="t1", n_annotators=1)
    t2 = db.add_query("text", {"prompt": "Count", "responses": ["one", "two"], "meta": {"src": 1}}, session="s",
                      query_id="t2")
    db.add_query("text", {"prompt": "Tie", "responses": ["x", "y"]}, session="s", query_id="t3")
    db.add_query("text", {"prompt": "Skip", "responses": ["x", "y"]}, session="s", query_id="t4")
    p1 = add_pair(db, query_id="p1")
    db.add_label(t1, "alice", {"ranking": [[1], [0, 2]]})
    db.add_label(t2, "alice", {"ranking": [[1], [0]]})
    db.add_label("t3", "alice", {"ranking": [[0, 1]]})
    db.add_label("t4", "alice", "skip")
    db.add_label(p1, "bob", "right")

    out = export_jsonl(db, "s", tmp_path / "out" / "s.jsonl")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["t1", "t2", "t3", "t4", "p1"]
    assert rows[0]["consensus"] == [[1], [0, 2]] and rows[3]["consensus"] is None and rows[4]["consensus"] == 0.0
    assert rows[1]["payload"] == {"prompt": "Count", "responses": ["one", "two"], "meta": {"src": 1}}
    assert rows[4]["payload"] == db.get_query(p1).payload and rows[4]["n_annotators"] == 1
    assert rows[4]["labels"][0]["annotator"] == "bob" and rows[4]["labels"][0]["value"] == "right"
    assert sorted(p.name for p in out.parent.iterdir()) == ["s.jsonl"]  # no temp file left

    pairs = TextPairs.load(export_text_pairs(db, "s", tmp_path / "pairs.jsonl"))
    assert pairs.to_rows() == [{"prompt": "Say hi", "chosen": "go away", "rejected": "hello"},
                               {"prompt": "Say hi", "chosen": "go away", "rejected": "hi there"},
                               {"prompt": "Count", "chosen": "two", "rejected": "one"}]
    with pytest.raises(ValidationError, match="session='other'.*no text preference pairs"):
        add_pair(db, session="other")
        export_text_pairs(db, "other", tmp_path / "none.jsonl")
    with pytest.raises(ValidationError, match="no such session"):
        export_jsonl(db, "missing", tmp_path / "x.jsonl")
    assert not (tmp_path / "none.jsonl").exists() and not (tmp_path / "x.jsonl").exists()


def test_export_text_pairs_to_hugging_face_dataset_directory(db, tmp_path):
    datasets = pytest.importorskip("datasets")
    db.add_query("text", {"prompt": "Count", "responses": ["one", "two", "three"]}, session="s", query_id="t")
    db.add_label("t", "alice", {"ranking": [[2], [1], [0]]})
    out = export_text_pairs(db, "s", tmp_path / "pairs_hf")  # no suffix: a save_to_disk directory
    loaded = datasets.load_from_disk(str(out))
    assert loaded.to_list() == [{"prompt": "Count", "chosen": "three", "rejected": "two"},
                                {"prompt": "Count", "chosen": "three", "rejected": "one"},
                                {"prompt": "Count", "chosen": "two", "rejected": "one"}]
    assert TextPairs.load(out).to_rows() == loaded.to_list()


# -- one transaction for many writes (issue 19, item 3)


def test_batch_commits_every_write_or_none(db):
    with pytest.raises(RuntimeError, match="disk full"):
        with db.batch():
            add_pair(db, query_id="q1")
            db.add_label("q1", "alice", "left")
            raise RuntimeError("disk full")
    assert db.queries() == [] and db.labels() == [] and db.sessions() == []
    with db.batch():
        add_pair(db, query_id="q1")
        with pytest.raises(StoreError, match="already exists"):
            add_pair(db, session="other", query_id="q1")
        assert db.next_query("alice").id == "q1"  # reads inside a batch see its writes
        assert db.stats()["n_queries"] == 1 and db.progress("alice")["n_queries"] == 1
    assert [q.id for q in db.queries()] == ["q1"] and db.sessions() == ["s"]


# -- progress counts kept by the store, cheap for every poll of the page (issue 19, item 7)


def test_progress_counts_match_stats(db):
    assert db.progress("alice") == {"n_queries": 0, "n_complete": 0, "pending": 0, "n_labels": 0}
    p1, p2 = add_pair(db, query_id="p1", n_annotators=2), add_pair(db, query_id="p2")
    add_pair(db, query_id="p3")
    add_pair(db, session="other", query_id="o1")
    for qid, who in [(p1, "alice"), (p1, "bob"), (p1, "carol"), (p2, "alice"), ("o1", "alice"), (p1, "alice")]:
        db.add_label(qid, who, "left")  # carol's label is past n_annotators; alice's second on p1 is refused
    for session in (None, "s", "other", "missing"):
        stats = db.stats(session)
        for who in ("alice", "bob", "carol", "nobody"):
            assert db.progress(who, session=session) == {
                "n_queries": stats["n_queries"], "n_complete": stats["n_complete"], "pending": stats["pending"],
                "n_labels": stats["per_annotator"].get(who, 0)}
    assert db.progress("alice", session="s") == {"n_queries": 3, "n_complete": 2, "pending": 1, "n_labels": 2}
    with pytest.raises(LabelError, match="annotator"):
        db.progress("bad/name")
    with pytest.raises(ValidationError, match="session"):
        db.progress("alice", session="a b")


def vm_steps(store, call):
    """SQLite virtual-machine instructions that ``call()`` runs on this thread's connection: its cost."""
    con = store._db.connection()
    steps = [0]

    def tick():
        steps[0] += 1
        return 0

    con.set_progress_handler(tick, 1)
    try:
        call()
    finally:
        con.set_progress_handler(None, 1)
    return steps[0]


def add_labelled(store, first, n, annotators=("alice", "bob")):
    """``n`` text queries, each labelled by every one of ``annotators``, in one transaction."""
    with store.batch():
        for k in range(first, first + n):
            qid = store.add_query("text", TEXT, session="s", query_id=f"t{k}", n_annotators=len(annotators))
            for who in annotators:
                store.add_label(qid, who, "skip")


def test_progress_cost_does_not_grow_with_the_number_of_labels(db):
    sqlite_only(db)
    add_labelled(db, 0, 10)
    small = vm_steps(db, lambda: db.progress("alice", session="s"))
    add_labelled(db, 10, 1000)
    assert db.progress("alice", session="s") == {"n_queries": 1010, "n_complete": 1010, "pending": 0,
                                                 "n_labels": 1010}
    assert vm_steps(db, lambda: db.progress("alice", session="s")) == small
    assert vm_steps(db, lambda: db.progress("alice")) < 2 * small
    assert vm_steps(db, lambda: db.stats("s")) > 100 * small  # what every poll of the page used to cost


def test_next_query_cost_does_not_grow_with_the_number_of_labels(tmp_path):
    steps = []
    for n_done in (10, 1000):
        with LabelStore(tmp_path / f"{n_done}.db") as store:
            add_labelled(store, 0, n_done)
            store.add_query("text", TEXT, session="s", query_id="half", n_annotators=2)
            store.add_label("half", "alice", "skip")  # still open, for someone else
            store.add_query("text", TEXT, session="s", query_id="open", n_annotators=2)
            store.add_query("text", TEXT, session="other", query_id="elsewhere")
            first = vm_steps(store, lambda: store.next_query("alice", session="s"))  # finds the open query
            again = vm_steps(store, lambda: store.next_query("alice", session="s"))  # her own lease (a poll)
            anywhere = vm_steps(store, lambda: store.next_query("carol"))  # in every session
            assert store.next_query("alice", session="s").id == "open" and store.next_query("carol").id == "half"
            steps.append((first, again, anywhere))
    small, big = steps
    assert all(b <= 1.2 * s for s, b in zip(small, big)), steps
