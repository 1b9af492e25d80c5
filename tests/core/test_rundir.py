"""irlhf.core.rundir.RunDir: fresh directories, JSON lines, array and JSON round trips, the run's status."""

import datetime
import json
import types

import numpy as np
import pytest

import irlhf.core.rundir as rundir
from irlhf.core.config import BaseConfig
from irlhf.core.errors import IrlhfError
from irlhf.core.rundir import RunDir, closing_runs, read_status, stop_message


@pytest.fixture
def frozen_clock(monkeypatch):
    """Make every RunDir.create in the test see the same timestamp."""

    class FixedDatetime(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2024, 1, 2, 3, 4, 5)

    monkeypatch.setattr(rundir, "_dt", types.SimpleNamespace(datetime=FixedDatetime))


def test_create_names_dir_after_job_and_timestamp(tmp_path, frozen_clock):
    run = RunDir.create("bc", out=tmp_path)
    assert run.path == tmp_path / "bc-20240102-030405"
    assert run.path.is_dir() and [p.name for p in run.path.iterdir()] == ["run.json"] and run.is_empty()


def test_create_never_reuses_existing_directory(tmp_path, frozen_clock):
    existing = tmp_path / "bc-20240102-030405"
    existing.mkdir()
    (existing / "config.json").write_text("keep me")
    paths = [RunDir.create("bc", out=tmp_path).path for _ in range(3)]
    assert paths == [tmp_path / f"bc-20240102-030405-{k}" for k in (1, 2, 3)]
    assert (existing / "config.json").read_text() == "keep me"
    assert all([f.name for f in p.iterdir()] == ["run.json"] for p in paths)


def test_create_twice_without_clock_gives_distinct_dirs(tmp_path):
    a, b = RunDir.create("job", out=tmp_path), RunDir.create("job", out=tmp_path)
    assert a.path != b.path and a.path.is_dir() and b.path.is_dir()


def test_create_defaults_to_runs_in_cwd(tmp_path, monkeypatch, frozen_clock):
    monkeypatch.chdir(tmp_path)
    run = RunDir.create("x")
    assert run.path.resolve() == (tmp_path / "runs" / "x-20240102-030405").resolve()


def test_create_rejects_out_that_is_a_file(tmp_path):
    out = tmp_path / "file"
    out.write_text("")
    with pytest.raises(IrlhfError, match="out="):
        RunDir.create("job", out=out)


def test_log_appends_json_lines(tmp_path):
    run = RunDir(tmp_path / "r")
    run.log(step=0, loss=0.5)
    run.log(step=np.int64(1), loss=np.float32(0.25), values=np.array([1.0, 2.0]))
    run.log(step=2, loss=float("nan"), best=float("inf"))
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"step": 0, "loss": 0.5},
        {"step": 1, "loss": 0.25, "values": [1.0, 2.0]},
        {"step": 2, "loss": "nan", "best": "inf"},
    ]


def test_write_json_round_trip_with_non_finite_as_strings(tmp_path):
    run = RunDir(tmp_path)
    data = {
        "a": 1,
        "b": [1.5, float("nan"), float("-inf")],
        "c": {"d": np.float64(np.inf), "e": np.arange(3), 4: tmp_path / "p"},
        "t": (np.int32(2), True, None, "s"),
    }
    target = run.write_json("x.json", data)
    text = target.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {
        "a": 1,
        "b": [1.5, "nan", "-inf"],
        "c": {"d": "inf", "e": [0, 1, 2], "4": str(tmp_path / "p")},
        "t": [2, True, None, "s"],
    }


def test_write_config_uses_to_dict(tmp_path):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Cfg(BaseConfig):
        lr: float = 0.1
        name: str = "x"

    RunDir(tmp_path).write_config(Cfg())
    assert json.loads((tmp_path / "config.json").read_text()) == {"lr": 0.1, "name": "x"}


@pytest.mark.parametrize(
    "array",
    [np.arange(6, dtype=np.int16).reshape(2, 3), np.array([0.1, -np.inf, np.nan], dtype=np.float32), np.eye(2, dtype=bool)],
)
def test_save_array_round_trip(tmp_path, array):
    target = RunDir(tmp_path).save_array("w", array)
    assert target == tmp_path / "w.npy"
    loaded = np.load(target)
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)


def test_save_array_keeps_npy_suffix_and_overwrites(tmp_path):
    run = RunDir(tmp_path)
    run.save_array("v.npy", np.zeros(2))
    run.save_array("v.npy", np.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.npy"]
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), np.ones(3))


def test_write_text(tmp_path):
    assert RunDir(tmp_path).write_text("r.html", "<p>hi</p>").read_text() == "<p>hi</p>"


# -- the run's status (run.json) -------------------------------------------------------------------------------
def test_create_marks_the_run_running(tmp_path):
    run = RunDir.create("bc", out=tmp_path)
    status = json.loads((run.path / "run.json").read_text())
    assert status["job"] == "bc" and status["status"] == "running" and status["step"] is None
    assert read_status(run.path) == status and "started" in status


def test_is_empty_ignores_only_the_status_file(tmp_path):
    run = RunDir.create("bc", out=tmp_path)
    assert run.is_empty()
    run.write_text("notes.txt", "x")
    assert not run.is_empty()


def test_begin_step_records_where_the_run_is(tmp_path):
    run = RunDir.create("demo", out=tmp_path)
    run.begin_step("expert")
    assert read_status(run.path)["step"] == "expert" and read_status(run.path)["status"] == "running"


def test_closing_runs_marks_the_runs_it_saw_finished(tmp_path):
    before = RunDir.create("other", out=tmp_path)  # made outside the block: left alone
    with closing_runs() as runs:
        run = RunDir.create("bc", out=tmp_path)
    assert runs == [run]
    status = read_status(run.path)
    assert status["status"] == "finished" and "ended" in status and "error" not in status
    assert read_status(before.path)["status"] == "running"


def test_closing_runs_marks_a_ctrl_c_interrupted_at_its_step(tmp_path):
    with pytest.raises(KeyboardInterrupt), closing_runs() as runs:
        run = RunDir.create("demo", out=tmp_path)
        run.begin_step("alignment")
        raise KeyboardInterrupt
    status = read_status(run.path)
    assert runs == [run] and status["status"] == "interrupted" and status["step"] == "alignment"
    assert stop_message(run) == (f"interrupted during step 'alignment'; run directory {run.path} is unfinished "
                                 "(status 'interrupted' in run.json)")


def test_closing_runs_marks_an_error_failed_with_the_error(tmp_path):
    with pytest.raises(RuntimeError), closing_runs():
        run = RunDir.create("bc", out=tmp_path)
        raise RuntimeError("disk on fire")
    status = read_status(run.path)
    assert status["status"] == "failed" and status["error"] == "RuntimeError: disk on fire"
    assert stop_message(run) == f"failed; run directory {run.path} is unfinished (status 'failed' in run.json)"


def test_a_run_closed_inside_the_block_keeps_its_status(tmp_path):
    with pytest.raises(KeyboardInterrupt), closing_runs() as runs:
        run = RunDir.create("demo", out=tmp_path)
        run.close("failed", error=ValueError("bad"))
        raise KeyboardInterrupt
    assert runs == [run] and read_status(run.path)["status"] == "failed"


def test_read_status_of_a_directory_without_run_json(tmp_path):
    assert read_status(tmp_path) == {"status": "unknown"}
