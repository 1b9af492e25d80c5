"""The label store behind a database URL: target parsing, bad input, and two server processes sharing one
PostgreSQL database under load (the rest of the store's tests run on both backends in test_store.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from irlhf.core.errors import ValidationError
from irlhf.label.dialects import is_url, redact, sqlite_file, to_psycopg
from irlhf.label.store import LabelStore, StoreError

GIF = (b"GIF89a-left", "image/gif")


def add_pair(store, session="s", **kw):
    return store.add_query("pair", {"left": "a", "right": "b"}, session=session, media={"a": GIF, "b": GIF}, **kw)


def test_sqlite_url_and_plain_path_open_the_same_file(tmp_path):
    path = tmp_path / "labels.db"
    with LabelStore("sqlite:///" + str(path)) as store:  # sqlite:////abs/path: SQLAlchemy's spelling
        add_pair(store, query_id="q1")
    with LabelStore(str(path)) as store:
        assert [q.id for q in store.queries()] == ["q1"]
    assert not is_url(str(path)) and not is_url("sqlite:///x.db") and is_url("postgres://h/db")
    assert sqlite_file("sqlite:///" + str(path)) == path == sqlite_file(str(path))
    assert sqlite_file("postgresql://u@h/db") is None


@pytest.mark.parametrize("target, match", [
    ("mysql://root@localhost/labels", "unknown scheme 'mysql://'.*expected a file path, sqlite:///path or "
                                      "postgresql://"),
    ("postgresql://postgres@127.0.0.1:5432", "no database name; expected postgresql://user@host:port/dbname"),
    ("postgres://postgres@127.0.0.1:5432/", "no database name"),
    ("sqlite://", "expected a file path"),
    ("", "expected a file path"),
])
def test_bad_target_is_a_validation_error(target, match):
    pytest.importorskip("psycopg")
    with pytest.raises(ValidationError, match=match):
        LabelStore(target)


def test_unreachable_server_names_the_url_without_its_password(postgres_server):
    url = f"postgresql://someone:s3cret@127.0.0.1:{postgres_server.port + 1}/labels"  # nothing listens there
    with pytest.raises(ValidationError, match="cannot connect to PostgreSQL") as info:
        LabelStore(url)
    assert "s3cret" not in str(info.value) and "someone:***@127.0.0.1" in str(info.value)
    assert len(str(info.value).splitlines()) == 1
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


def test_missing_psycopg_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    with pytest.raises(StoreError, match=r'pip install "irlhf\[postgres\]"'):
        LabelStore("postgresql://postgres@127.0.0.1:1/labels")


def test_placeholders_translated_outside_quoted_strings():
    assert to_psycopg("SELECT '?:x%' FROM t WHERE a = ? AND b = :who AND c::text LIKE '%'") == (
        "SELECT '?:x%' FROM t WHERE a = %s AND b = %(who)s AND c::text LIKE '%'")
    assert to_psycopg("SELECT 5 % 2 WHERE x = ?") == "SELECT 5 %% 2 WHERE x = %s"


def test_foreign_database_rejected_untouched(postgres_server):
    import psycopg

    url = postgres_server.new_database()
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("CREATE TABLE things (x INTEGER)")
        con.execute("INSERT INTO things VALUES (1)")
    with pytest.raises(StoreError, match="another schema.*things"):
        LabelStore(url)
    with psycopg.connect(url, autocommit=True) as con:
        assert con.execute("SELECT x FROM things").fetchall() == [(1,)]
        assert [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = 'public'")] == ["things"]


def test_a_database_url_reopens_the_same_store(postgres_server):
    url = postgres_server.new_database()
    with LabelStore(url) as store:
        qid = add_pair(store, query_id="q1", n_annotators=2)
        assert store.add_label(qid, "alice", "left")
        assert repr(store) == f"LabelStore({url!r})"
    with LabelStore(url) as again:
        q = again.get_query("q1")
        assert (q.n_labels, q.n_annotators) == (1, 2) and again.media(q.payload["left"]) == GIF
        assert isinstance(q.created, float) and again.progress("alice")["n_labels"] == 1


# One labelling server process: its own LabelStore on the shared database and 50 annotators (threads) who ask
# next_query and answer at once with add_label until nothing is left for them; prints what each was handed.
SERVER = """
import json, random, sys, threading
from irlhf.label.store import LabelStore
url, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = LabelStore(url, lease_seconds=120)
handed, errors = [], []
start = threading.Barrier(n)

def annotator(who):
    try:
        start.wait()
        while True:
            query = store.next_query(who, session="load")
            if query is None:
                return
            handed.append([who, query.id, store.add_label(query.id, who, random.choice(["left", "right"]))])
    except BaseException as err:
        errors.append(repr(err))

threads = [threading.Thread(target=annotator, args=(f"{name}-{k}",)) for k in range(n)]
for th in threads:
    th.start()
for th in threads:
    th.join()
store.close()
print(json.dumps({"handed": handed, "errors": errors}))
"""


@pytest.mark.heavy
def test_two_server_processes_hand_out_no_query_twice_and_lose_no_label(postgres_server):
    url = postgres_server.new_database()
    with LabelStore(url) as store:
        with store.batch():
            need = {add_pair(store, session="load", query_id=f"q{k}", n_annotators=1 + k % 3): 1 + k % 3
                    for k in range(150)}
        add_pair(store, session="elsewhere", query_id="other")  # another session's query is never handed out
        procs = [subprocess.Popen([sys.executable, "-c", SERVER, url, name, "50"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
        results = [json.loads(out) for out, _ in outs]
        assert [r["errors"] for r in results] == [[], []]
        handed = [h for r in results for h in r["handed"]]
        assert {who[0] for who, _, _ in handed} == {"a", "b"}  # both processes served
        # every lease was live (120 s) until its label: no query went to more people than it asks, none twice
        per_query = Counter(qid for _, qid, _ in handed)
        assert all(per_query[qid] <= need[qid] for qid in per_query), per_query
        assert len({(who, qid) for who, qid, _ in handed}) == len(handed)
        assert all(stored for _, _, stored in handed)
        # no label lost: every query has exactly its n_annotators labels, counted three ways
        expected = sum(need.values())
        assert len(handed) == expected == len(store.labels(session="load"))
        assert {q.id: q.n_labels for q in store.queries("load")} == need
        assert store.stats("load")["n_complete"] == 150 and store.progress("a-0", "load")["pending"] == 0
        assert store.get_query("other").n_labels == 0


def test_cli_label_takes_a_database_url(postgres_server, capsys):
    from pathlib import Path

    from irlhf import cli

    example = Path(__file__).resolve().parents[2] / "examples" / "label_texts.jsonl"
    url = postgres_server.new_database()
    assert cli.main(["label", "--database", url, "--task", str(example), "--stats"]) == 0
    assert cli.main(["label", "--db", url, "--session", "label_texts", "--stats"]) == 0
    out = capsys.readouterr().out
    assert "imported" in out and f"session label_texts in {url}" in out
    with LabelStore(url) as store:
        assert store.sessions() == ["label_texts"] and store.queries("label_texts")
