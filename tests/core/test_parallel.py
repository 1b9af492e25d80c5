"""irlhf.core.parallel: the same rows on every backend, resume from the results log, failed trials recorded while
the others go on, bad input named."""

from __future__ import annotations

import json
import os
import sys

import pytest

from irlhf.core import parallel
from irlhf.core.errors import ValidationError


def square(params: dict) -> dict:
    if params["x"] == 3:
        raise RuntimeError("three is unlucky")
    return {"y": params["x"] ** 2, "threads": os.environ.get("OMP_NUM_THREADS")}


def must_not_run(params: dict) -> dict:
    raise AssertionError(f"ran {params} although it is in the log")


def returns_list(params: dict) -> list:
    return [params["x"]]


PARAMS = [{"x": x, "tag": ["a", x]} for x in range(5)]


def test_serial_rows_in_order_log_and_failure(tmp_path):
    log = tmp_path / "out" / "table.jsonl"
    said = []
    batch = parallel.run_many(square, PARAMS, log=log, backend="serial", progress=False, echo=said.append)
    assert [r["y"] for r in batch.rows] == [0, 1, 4, 16]
    assert batch.rows[0] == {"x": 0, "tag": ["a", 0], "y": 0, "threads": "1"}
    assert (batch.ran, batch.reused) == (5, 0)
    assert [f["x"] for f in batch.failed] == [3] and batch.failed[0]["error"] == "RuntimeError: three is unlucky"
    assert [json.loads(line)["x"] for line in log.read_text().splitlines()] == [0, 1, 2, 4]
    failed = [json.loads(line) for line in (tmp_path / "out" / "table.failed.jsonl").read_text().splitlines()]
    assert failed[0]["x"] == 3 and "three is unlucky" in failed[0]["traceback"]
    assert any("failed" in line and "three is unlucky" in line for line in said)


def test_resume_runs_only_what_is_not_logged(tmp_path):
    log = tmp_path / "table.jsonl"
    parallel.run_many(square, PARAMS[:2], log=log, backend="serial", progress=False, echo=lambda s: None)
    again = parallel.run_many(must_not_run, PARAMS[:2], log=log, backend="serial", progress=False,
                              echo=lambda s: None)
    assert (again.ran, again.reused, [r["y"] for r in again.rows]) == (0, 2, [0, 1])
    more = parallel.run_many(square, PARAMS[:3], log=log, backend="serial", progress=False, echo=lambda s: None)
    assert (more.ran, more.reused, [r["y"] for r in more.rows]) == (1, 2, [0, 1, 4])
    fresh = parallel.run_many(square, PARAMS[:1], log=log, backend="serial", fresh=True, progress=False,
                              echo=lambda s: None)
    assert fresh.ran == 1 and len(log.read_text().splitlines()) == 1


def test_torn_last_line_is_skipped_and_a_bad_middle_line_named(tmp_path):
    log = tmp_path / "table.jsonl"
    log.write_text(json.dumps({"x": 0, "tag": ["a", 0], "y": 0}) + "\n" + '{"x": 1, "ta')
    batch = parallel.run_many(square, PARAMS[:2], log=log, backend="serial", progress=False, echo=lambda s: None)
    assert (batch.ran, batch.reused) == (1, 1)
    log.write_text('{"x": 1, "ta\n' + json.dumps({"x": 0}) + "\n")
    with pytest.raises(ValidationError, match=r"table.jsonl' line 1: not JSON"):
        parallel.run_many(square, PARAMS[:1], log=log, backend="serial", progress=False, echo=lambda s: None)


def test_processes_give_the_serial_rows(tmp_path):
    serial = parallel.run_many(square, PARAMS, backend="serial", progress=False, echo=lambda s: None)
    pooled = parallel.run_many(square, PARAMS, log=tmp_path / "t.jsonl", backend="processes", workers=2,
                               progress=False, echo=lambda s: None)
    assert pooled.rows == serial.rows and [f["x"] for f in pooled.failed] == [3]


def test_a_result_that_is_not_a_dict_fails_that_trial(tmp_path):
    batch = parallel.run_many(returns_list, PARAMS[:1], backend="serial", progress=False, echo=lambda s: None)
    assert batch.rows == [] and "returned list; expected a dict" in batch.failed[0]["error"]


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "threads"}, r"backend='threads': expected one of \['auto', 'serial', 'processes', 'ray'\]"),
    ({"workers": 0}, r"workers=0: expected an int >= 1"),
    ({"cpu": 0}, r"cpu=0, gpu=0.0: expected cpu > 0"),
    ({"cpu": float("nan")}, r"cpu=nan"),
])
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        parallel.run_many(square, PARAMS[:1], progress=False, echo=lambda s: None, **kwargs)


def test_params_that_are_not_json_are_named():
    with pytest.raises(ValidationError, match=r"not JSON .*expected names mapped to JSON values"):
        parallel.run_many(square, [{"x": object()}], backend="serial", progress=False, echo=lambda s: None)


def test_auto_without_ray_uses_a_process_pool_and_says_how_to_get_ray(monkeypatch):
    monkeypatch.setattr(parallel, "ray_available", lambda: False)
    said = []
    assert parallel.choose_backend("auto", None, said.append) == "processes" and said[0].startswith(parallel.NO_RAY)
    assert parallel.choose_backend("auto", 1, said.append) == "serial"
    with pytest.raises(ValidationError, match=r"backend='ray': ray is not installed; expected pip install"):
        parallel.choose_backend("ray", None, said.append)


@pytest.mark.slow
def test_ray_tasks_give_the_serial_rows(tmp_path):
    pytest.importorskip("ray", reason="irlhf[ray] is not installed")
    import ray

    serial = parallel.run_many(square, PARAMS, backend="serial", progress=False, echo=lambda s: None)
    try:
        on_ray = parallel.run_many(square, PARAMS, log=tmp_path / "t.jsonl", backend="ray", workers=2,
                                   progress=False, echo=lambda s: None)
    finally:
        ray.shutdown()
    assert on_ray.rows == serial.rows and [f["x"] for f in on_ray.failed] == [3]
    try:  # a trial needing more CPUs than the instance has: one line before any trial starts
        with pytest.raises(ValidationError, match=r"resources.cpu=64: the Ray cluster has \d+ CPUs in all"):
            parallel.run_many(must_not_run, PARAMS[:1], backend="ray", cpu=64, progress=False, echo=lambda s: None)
    finally:
        ray.shutdown()


def test_serial_trials_leave_this_process_threads_as_they_were(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        batch = parallel.run_many(square, PARAMS[:1], backend="serial", cpu=1, progress=False, echo=lambda s: None)
        assert batch.rows[0]["threads"] == "1"  # inside the trial
        assert torch.get_num_threads() == 2 and "OMP_NUM_THREADS" not in os.environ  # after it
    finally:
        torch.set_num_threads(before)


def test_a_torch_still_being_imported_elsewhere_is_left_alone(monkeypatch):
    half = type(sys)("torch")  # a module object without its attributes yet, as mid-import in another thread
    monkeypatch.setitem(sys.modules, "torch", half)
    outcome = parallel.call_trial(square, {"x": 2, "tag": []}, threads=1)
    assert outcome["status"] == "finished" and outcome["result"]["y"] == 4


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:1", r"address='127.0.0.1:1': no Ray cluster could be reached"),
    ("ray://127.0.0.1:1", r"address='ray://127.0.0.1:1': no Ray cluster could be reached"),
    ("head-node", r"address='head-node': expected ray://host:port or host:port"),
])
def test_an_unreachable_cluster_is_one_line_at_once(address, message):
    with pytest.raises(ValidationError, match=message):
        parallel._check_reachable(address, timeout=2.0)
