"""``irlhf label`` (task import, --export, --stats, serving setup) and the ``web`` choices of prefs rl, dagger
and tamer, with a simulated person answering through the store API; no browser."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from irlhf import cli
from irlhf.label import LabelStore

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16  # only the signature matters to the import
GIF = b"GIF89a" + b"\x00" * 16
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "label_texts.jsonl"


def write_task(folder: Path, rows: list, name: str = "task.jsonl") -> Path:
    path = folder / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def mixed_task(tmp_path: Path) -> Path:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "a.gif").write_bytes(GIF)
    (tmp_path / "media" / "b.gif").write_bytes(GIF)
    (tmp_path / "s.png").write_bytes(PNG)
    return write_task(tmp_path, [
        {"prompt": "Which is best?", "responses": ["<script>alert(1)</script>", "plain", "third"]},
        {"prompt": "Pick one", "responses": ["x", "y"], "id": "q2"},
        {"kind": "pair", "left": "media/a.gif", "right": "media/b.gif", "title": "Which clip?"},
        "",
        {"kind": "dagger", "frame": "s.png", "actions": ["left", "right"]},
    ])


def test_import_text_pair_dagger_rows_is_idempotent(tmp_path, capsys):
    task = mixed_task(tmp_path)
    db = tmp_path / "labels.sqlite"
    argv = ["label", "--db", str(db), "--task", str(task), "--stats"]
    assert cli.main(argv) == 0
    assert "imported 4 new queries (0 already there)" in capsys.readouterr().out
    assert cli.main(argv) == 0
    assert "imported 0 new queries (4 already there)" in capsys.readouterr().out
    with LabelStore(db) as store:
        assert store.sessions() == ["task"]
        queries = store.queries("task")
        assert [q.kind for q in queries] == ["text", "text", "pair", "dagger"]
        assert queries[0].payload["responses"][0] == "<script>alert(1)</script>"
        assert queries[1].id == "task-q2" and queries[0].id == "task-L1"
        media_id = queries[2].payload["left"]
        assert store.media(media_id) == (GIF, "image/gif")
        assert store.media(queries[3].payload["frame"]) == (PNG, "image/png")
        assert queries[2].payload["title"] == "Which clip?"


def test_session_option_names_the_session_and_n_annotators(tmp_path):
    db = tmp_path / "l.sqlite"
    assert cli.main(["label", "--db", str(db), "--task", str(EXAMPLE), "--session", "mine", "--n-annotators", "2",
                     "--stats"]) == 0
    with LabelStore(db) as store:
        queries = store.queries("mine")
        assert len(queries) >= 6 and all(q.n_annotators == 2 for q in queries)
        assert any("<script>" in r for q in queries for r in q.payload["responses"])


@pytest.mark.parametrize("row, message", [
    ("{not json", "bad JSON"),
    ({"responses": ["a", "b"]}, "missing field(s) ['prompt']"),
    ({"prompt": "p", "responses": ["only one"]}, "2 to 9 strings"),
    ({"prompt": 3, "responses": ["a", "b"]}, "expected a string"),
    ({"prompt": "p", "responses": ["a", "b"], "colour": "red"}, "unknown key(s) ['colour']"),
    ({"kind": "tamer", "clip": "c.gif"}, "kind='tamer'"),
    ({"kind": "pair", "left": "../x.gif", "right": "b.gif"}, "outside the task file's folder"),
    ({"kind": "pair", "left": "/etc/x.gif", "right": "b.gif"}, "outside the task file's folder"),
    ({"kind": "pair", "left": "notes.txt", "right": "b.gif"}, "unsupported media type '.txt'"),
    ({"kind": "pair", "left": "missing.gif", "right": "b.gif"}, "no such file"),
    ({"kind": "pair", "left": "fake.gif", "right": "b.gif"}, "not image/gif"),
    ({"kind": "dagger", "frame": "s.png", "actions": "left"}, "payload['actions']"),
    ({"prompt": "p", "responses": ["a", "b"], "id": "first"}, "also on line 1"),
    ([1, 2], "expected a JSON object"),
])
def test_bad_row_names_file_and_line_and_imports_nothing(tmp_path, capsys, row, message):
    (tmp_path / "x.gif").write_bytes(GIF)
    (tmp_path / "b.gif").write_bytes(GIF)
    (tmp_path / "s.png").write_bytes(PNG)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.gif").write_text("<html>not a gif</html>")
    sub = tmp_path / "tasks"
    sub.mkdir()
    for name in ("b.gif", "x.gif", "fake.gif"):
        (sub / name).write_bytes((tmp_path / name).read_bytes())
    (sub / "s.png").write_bytes(PNG)
    (sub / "notes.txt").write_text("hello")
    task = write_task(sub, [{"prompt": "ok", "responses": ["a", "b"], "id": "first"}, row])
    db = tmp_path / "labels.sqlite"
    assert cli.main(["label", "--db", str(db), "--task", str(task), "--stats"]) == 2
    err = capsys.readouterr().err
    assert f"{task}:2:" in err and message in err
    assert not db.exists()  # every row is checked before the store is even opened


def test_export_and_stats_after_labels(tmp_path, capsys):
    db = tmp_path / "labels.sqlite"
    assert cli.main(["label", "--db", str(db), "--task", str(EXAMPLE), "--stats"]) == 0
    with LabelStore(db) as store:
        first, second = store.queries("label_texts")[:2]
        assert store.add_label(first.id, "alice", {"ranking": [[0], [1], [2]]})
        assert store.add_label(first.id, "bob", {"ranking": [[0], [1], [2]]})
        assert store.add_label(second.id, "alice", "skip")
    capsys.readouterr()
    assert cli.main(["label", "--db", str(db), "--session", "label_texts", "--stats"]) == 0
    out = capsys.readouterr().out
    assert "labels: 3" in out and "alice: 2, bob: 1" in out and "agreement: 1.000" in out
    assert "2 complete" in out

    export = tmp_path / "out" / "labels.jsonl"
    assert cli.main(["label", "--db", str(db), "--session", "label_texts", "--export", str(export)]) == 0
    rows = [json.loads(line) for line in export.read_text().splitlines()]
    assert len(rows) == len(EXAMPLE.read_text().splitlines())
    assert rows[0]["consensus"] == [[0], [1], [2]] and {lab["annotator"] for lab in rows[0]["labels"]} == {"alice",
                                                                                                         "bob"}
    pairs = tmp_path / "pairs.jsonl"
    assert cli.main(["label", "--db", str(db), "--session", "label_texts", "--export", str(pairs),
                     "--format", "pairs"]) == 0
    pair_rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert len(pair_rows) == 3  # 3 responses ranked apart: (0>1), (0>2), (1>2)
    assert {r["chosen"] for r in pair_rows} == {first.payload["responses"][0], first.payload["responses"][1]}


def test_missing_store_and_unknown_session(tmp_path, capsys):
    assert cli.main(["label", "--db", str(tmp_path / "none.sqlite"), "--session", "s"]) == 2
    assert "no such label store" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite").exists()
    db = tmp_path / "l.sqlite"
    assert cli.main(["label", "--db", str(db), "--task", str(EXAMPLE), "--stats"]) == 0
    assert cli.main(["label", "--db", str(db), "--session", "other", "--stats"]) == 2
    assert "no such session" in capsys.readouterr().err
    assert cli.main(["label", "--db", str(db)]) == 2
    assert "--task FILE" in capsys.readouterr().err


def test_serve_setup_and_remote_refusal(tmp_path, capsys, monkeypatch):
    from irlhf.label import server

    calls = []
    monkeypatch.setattr(server, "serve", lambda store, **kw: calls.append((store.path, kw)))
    db = tmp_path / "l.sqlite"
    assert cli.main(["label", "--db", str(db), "--task", str(EXAMPLE), "--port", "9001", "--token", "tok",
                     "--open"]) == 0
    (path, kw), = calls
    assert path == db and kw == {"host": "127.0.0.1", "port": 9001, "session": "label_texts", "token": "tok",
                                 "open_browser": True, "allow_remote": False}
    assert cli.main(["label", "--db", str(db), "--session", "label_texts", "--host", "0.0.0.0"]) == 2
    assert "not loopback" in capsys.readouterr().err and len(calls) == 1
    assert cli.main(["label", "--db", str(db), "--session", "label_texts", "--host", "0.0.0.0", "--allow-remote",
                     "--token", "tok"]) == 0
    assert calls[-1][1]["host"] == "0.0.0.0" and calls[-1][1]["allow_remote"] is True
    assert cli.main(["label", "--db", str(tmp_path / "new.sqlite"), "--task", str(EXAMPLE),
                     "--host", "10.1.2.3"]) == 2
    assert not (tmp_path / "new.sqlite").exists()  # refused before the task file created a store


@pytest.mark.parametrize("argv, message", [
    (["prefs", "rl", "--labeller", "oracle", "--port", "0"], "--port"),
    (["dagger", "--db", "x.sqlite"], "only apply with --expert web"),
    (["tamer", "--label-timeout", "5"], "only apply with --trainer web"),
    (["prefs", "rl", "--labeller", "web", "--label-timeout", "-1"], "--label-timeout"),
    (["prefs", "rl", "--labeller", "web", "--host", "0.0.0.0"], "not loopback"),
    (["prefs", "rl", "--labeller", "web", "--set", "labeller.eps=0.1"], "labeller.eps"),
    (["dagger", "--expert", "web", "--n-annotators", "0"], "--n-annotators"),
    (["dagger", "--expert", "web", "--env", "Pendulum-v1"], "Discrete"),
    (["tamer", "--trainer", "web", "--set", "trainer.p=0.5"], "trainer.p"),
])
def test_web_options_are_checked_before_anything_runs(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert cli.main([*argv, "--out", str(out), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


# -- live jobs with a simulated person --------------------------------------------------------------------------
class Person(threading.Thread):
    """Answers every open query of the store at ``db`` through the store API until stopped."""

    def __init__(self, db: Path, answer) -> None:
        super().__init__(daemon=True)
        self.db, self.answer = db, answer
        self.done = threading.Event()
        self.answered = 0

    def run(self) -> None:
        while not self.db.exists() and not self.done.is_set():
            time.sleep(0.05)
        time.sleep(0.2)  # let the job's store create its schema first
        with LabelStore(self.db) as store:
            while not self.done.is_set():
                query = store.next_query("sim person")
                if query is None:
                    time.sleep(0.05)
                    continue
                store.add_label(query.id, "sim person", self.answer(query))
                self.answered += 1


def run_with_person(tmp_path: Path, argv: list[str], db: Path, answer) -> Path:
    person = Person(db, answer)
    person.start()
    out = tmp_path / "out"
    try:
        assert cli.main([*argv, "--port", "0", "--out", str(out), "--no-progress"]) == 0
    finally:
        person.done.set()
        person.join(10)
    (run,) = list(out.iterdir())
    assert person.answered > 0
    return run


def check_people_run(run: Path, db: Path, files: set[str]) -> list:
    names = {p.name for p in run.iterdir()}
    assert files | {"config.json", "metrics.jsonl", "summary.txt", "report.html", "labels.jsonl"} <= names
    with LabelStore(db) as store:
        assert store.sessions() == [run.name]
        labels = store.labels(session=run.name)
    exported = [json.loads(line) for line in (run / "labels.jsonl").read_text().splitlines()]
    assert sum(len(r["labels"]) for r in exported) == len(labels) > 0
    config = json.loads((run / "config.json").read_text())
    assert "web" in config and config["web"]["token"] is None
    return labels


@pytest.mark.heavy
def test_prefs_rl_with_web_labeller(tmp_path, capsys):
    db = tmp_path / "labels.sqlite"
    run = run_with_person(tmp_path, [
        "prefs", "rl", "--labeller", "web", "--db", str(db), "--timesteps", "600", "--labels", "4",
        "--eval-episodes", "1", "--set", "rounds=2", "--set", "reward_epochs=1", "--set", "random_rollout_steps=150",
        "--set", 'rl_kwargs={"n_envs":2,"n_steps":64,"batch_size":64,"n_epochs":1}'], db, lambda q: "left")
    assert run.name.startswith("prefs-rl-")
    labels = check_people_run(run, db, {"reward_model.safetensors", "policy.zip", "preferences.npz"})
    assert len(labels) == 4 and {lab.value for lab in labels} == {"left"}
    out = capsys.readouterr().out
    assert "people label at  http://127.0.0.1:" in out and "people: 4 labels on 4 queries" in out


def test_dagger_with_web_expert(tmp_path):
    db = tmp_path / "labels.sqlite"
    run = run_with_person(tmp_path, [
        "dagger", "--expert", "web", "--db", str(db), "--rounds", "1", "--episodes-per-round", "1",
        "--schedule", "constant", "--set", "beta=0", "--set", "max_steps=8", "--set", "bc.epochs=2",
        "--set", "hidden_sizes=[8]", "--eval-episodes", "1"], db, lambda q: {"action": 1})
    assert run.name.startswith("dagger-")
    labels = check_people_run(run, db, {"policy.safetensors", "rounds.png"})
    assert 1 <= len(labels) <= 8 and all(lab.value == {"action": 1} for lab in labels)
    final = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["n_samples"] == len(labels) and final["expert_return_mean"] == 500.0  # the scripted reference


def test_tamer_with_web_trainer_default_db(tmp_path):
    out = tmp_path / "out"
    found: list[Path] = []

    def answer(query):
        return {"events": [{"t": 0.3, "h": 1}, {"t": 1.0, "h": -1}]}

    class DefaultDbPerson(Person):
        """Finds the job's default store, <run dir>/labels.sqlite, once the run directory exists."""

        def run(self) -> None:
            while not self.done.is_set() and not found:
                found.extend(out.glob("*/labels.sqlite"))
                time.sleep(0.05)
            if found:
                self.db = found[0]
                super().run()

    person = DefaultDbPerson(tmp_path / "unused", answer)
    person.start()
    try:
        assert cli.main(["tamer", "--trainer", "web", "--episodes", "1", "--set", "max_steps=10",
                         "--eval-episodes", "1", "--port", "0", "--out", str(out), "--no-progress"]) == 0
    finally:
        person.done.set()
        person.join(10)
    (run,) = list(out.iterdir())
    assert found == [run / "labels.sqlite"] and person.answered == 1
    labels = check_people_run(run, run / "labels.sqlite", {"h_weights.npy", "learning_curve.png"})
    assert len(labels) == 1
    final = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["feedback_events"] == 2 and final["oracle_return_mean"] is None


def test_an_existing_store_by_sqlite_url(tmp_path, capsys):
    path = tmp_path / "labels.db"
    with LabelStore(path) as store:
        store.add_query("text", {"prompt": "p", "responses": ["a", "b"]}, session="s1")
    assert cli.main(["label", "--db", "sqlite:///" + str(path), "--session", "s1", "--stats"]) == 0
    assert "s1" in capsys.readouterr().out
