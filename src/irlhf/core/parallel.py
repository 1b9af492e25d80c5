"""Run one function over many parameter sets (trials): one after another here, in a pool of fresh processes, or as
Ray tasks (a local ``ray.init()`` on all cores, or an existing cluster). ``irlhf sweep`` runs its trials through
:func:`execute`; the benchmark scripts run theirs through :func:`run_many`, which adds the results log: each
finished trial is appended to a JSONL file as it finishes, and a trial whose parameters are already there is not
run again (resume). A trial that raises is recorded with its error (``<log>.failed.jsonl``) and the others go on.

    rows = run_many(train_and_score, [{"env": "CartPole-v1", "seed": s} for s in range(5)],
                    log="out/table.jsonl", workers=2).rows

Every trial runs with ``cpu`` torch / BLAS threads (1 by default), so a deterministic trial gives the same numbers
on every backend.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import multiprocessing
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Literal

from irlhf.core.errors import ValidationError

__all__ = ["Backend", "BACKENDS", "NO_RAY", "execute", "run_many", "Batch", "ray_available", "call_trial",
           "progress_bar", "read_log", "add_arguments"]

Backend = Literal["auto", "serial", "processes", "ray"]
BACKENDS = ("auto", "serial", "processes", "ray")
NO_RAY = "ray is not installed: pip install 'irlhf[ray]' to run the trials as Ray tasks, here or on a cluster"
Outcome = dict[str, Any]  # {"status": "finished", "result": ..., "seconds": s} or {"status": "failed", "error": ...}


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None  # why: without importing it (seconds)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _limit_threads(threads: int) -> tuple[dict[str, str | None], int | None]:
    """Set ``threads`` BLAS / torch threads; return what was set before (to restore in this process)."""
    before = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    # why: a reused worker may have imported torch before this trial; a half-imported one (another thread) has no
    # set_num_threads yet, and the env variables reach it when its import ends
    if torch is None or not hasattr(torch, "get_num_threads"):
        return before, None
    torch_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    return before, torch_before


def _restore_threads(before: tuple[dict[str, str | None], int | None]) -> None:
    variables, torch_threads = before
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if torch_threads is not None:
        sys.modules["torch"].set_num_threads(torch_threads)


def call_trial(function: Callable[[Any], Any], params: Any, threads: int) -> Outcome:
    """``function(params)`` with ``threads`` threads (the caller's restored after), timed; an exception becomes a
    failed outcome (its last line as ``error``, the traceback as ``traceback``) instead of propagating."""
    start = time.perf_counter()
    before = _limit_threads(threads)
    try:
        result = function(params)
    except Exception as exc:  # noqa: BLE001 -- why: one trial's failure is recorded, the others go on
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500], "seconds": time.perf_counter()
                - start, "traceback": traceback.format_exc()[-4000:]}
    finally:
        _restore_threads(before)
    return {"status": "finished", "result": result, "seconds": time.perf_counter() - start}


def _check_reachable(target: str | None, timeout: float = 5.0) -> None:
    """A one-line error at once when ``target`` (host:port or ray://host:port) accepts no TCP connection, where
    ``ray.init`` would retry for minutes; "auto", "local" and None are left to Ray."""
    if target is None or target in ("auto", "local"):
        return
    host, _, port = target.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValidationError(f"address={target!r}: expected ray://host:port or host:port of a running Ray cluster")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ValidationError(f"address={target!r}: no Ray cluster could be reached ({exc.strerror or exc}); "
                              "expected ray://host:port or host:port of a running cluster") from None


def _ray_submitter(address: str | None, cpu: float, gpu: float) -> Callable[[Callable, Any, int], Any]:
    """``submit(function, params, threads)`` -> a Ray object ref, after connecting (``address``, else RAY_ADDRESS,
    else a local instance on all cores) and checking the cluster can hold one trial."""
    import ray  # why: optional (ray extra)

    target = address or os.environ.get("RAY_ADDRESS") or None
    if not ray.is_initialized():
        _check_reachable(target)
        try:
            ray.init(address=target, include_dashboard=False, log_to_driver=False, configure_logging=False,
                     **({} if target else {"num_cpus": os.cpu_count()}))
        except Exception as exc:  # noqa: BLE001 -- why: Ray raises many types for an unreachable cluster
            raise ValidationError(f"address={target!r}: no Ray cluster could be reached ({type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())[:200]}); expected ray://host:port or host:port of a "
                                  "running cluster") from None
    total = ray.cluster_resources()
    for what, need in (("CPU", cpu), ("GPU", gpu)):
        if need > total.get(what, 0.0):
            raise ValidationError(f"resources.{what.lower()}={need:g}: the Ray cluster has {total.get(what, 0.0):g} "
                                  f"{what}s in all; expected at most that per trial")
    remote = ray.remote(num_cpus=cpu, num_gpus=gpu, max_retries=0)(call_trial)
    return lambda function, params, threads: remote.remote(function, params, threads)


def execute(function: Callable[[Any], Any], trials: Sequence[Any], *, backend: Backend = "serial",
            workers: int | None = None, cpu: float = 1.0, gpu: float = 0.0, address: str | None = None,
            on_done: Callable[[int, Outcome], None], on_running: Callable[[int], None] = lambda n: None) -> None:
    """Call ``function(trial)`` for every trial, ``on_done(index, outcome)`` as each ends (in the order they end).

    backend "serial": here, one after another; "processes": a pool of ``workers`` fresh (spawned) processes;
    "ray": Ray tasks of ``cpu`` CPUs and ``gpu`` GPUs each, at most ``workers`` at a time (default: as many as the
    cluster holds). ``function`` must be picklable (defined at a module's top level) for the last two. A trial
    that raises is a failed outcome; a Ray worker lost mid-trial fails that trial alone, a pool process lost
    mid-trial breaks the pool and fails every trial not yet ended (run_many runs them again next time)."""
    threads = max(1, int(cpu))
    if backend == "serial":
        for index, trial in enumerate(trials):
            on_running(1)
            on_done(index, call_trial(function, trial, threads))
        return
    if backend == "processes":
        # spawn: fresh workers, no copied locks or BLAS / torch thread pools
        size = workers or os.cpu_count() or 1
        with ProcessPoolExecutor(size, mp_context=multiprocessing.get_context("spawn"), initializer=_limit_threads,
                                 initargs=(threads,)) as pool:
            pending = {pool.submit(call_trial, function, trial, threads): i for i, trial in enumerate(trials)}
            while pending:
                on_running(min(len(pending), size))
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = pending.pop(future)
                    try:
                        outcome = future.result()
                    except Exception as exc:  # noqa: BLE001 -- why: a worker killed mid-trial (BrokenProcessPool)
                        outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500]}
                    on_done(index, outcome)
        return
    if backend != "ray":
        raise ValidationError(f"backend={backend!r}: expected one of {list(BACKENDS[1:])}")
    import ray  # why: optional (ray extra)

    submit = _ray_submitter(address, cpu, gpu)
    slots = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // cpu))
    queue = list(enumerate(trials))[::-1]
    pending: dict[Any, int] = {}
    while queue or pending:
        while queue and len(pending) < slots:  # why: at most `slots` submitted, so the next trial waits here
            index, trial = queue.pop()
            pending[submit(function, trial, threads)] = index
        on_running(len(pending))
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=5.0)
        for ref in ready:
            index = pending.pop(ref)
            try:
                outcome = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 -- why: a Ray worker lost mid-trial fails that trial alone
                outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500]}
            on_done(index, outcome)


def add_arguments(parser: Any, workers: int = 2) -> None:
    """``--workers``, ``--backend`` and ``--address`` on an argparse parser (the benchmark scripts' runner options),
    to pass on as ``run_many(..., workers=args.workers, backend=args.backend, address=args.address)``."""
    parser.add_argument("--workers", type=int, default=workers, help="trials at a time (one torch thread each)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="where trials run: auto = Ray tasks "
                        "when ray is installed, else a local process pool (irlhf.core.parallel)")
    parser.add_argument("--address", help="an existing Ray cluster (default RAY_ADDRESS, else a local instance)")


def choose_backend(backend: Backend, workers: int | None, echo: Callable[[str], None],
                   address: str | None = None) -> str:
    """"auto": Ray when installed, else a process pool (several workers) or serial (one); "ray", or a cluster
    ``address``, without Ray is an error naming the extra."""
    if backend not in BACKENDS:
        raise ValidationError(f"backend={backend!r}: expected one of {list(BACKENDS)}")
    if address and backend in ("serial", "processes"):
        raise ValidationError(f"address={address!r} with backend={backend!r}: a cluster address needs backend "
                              "'ray' or 'auto'")
    if (backend == "ray" or address) and not ray_available():
        raise ValidationError(f"{'address=' + repr(address) if address else 'backend=' + repr(backend)}: ray is not "
                              "installed; expected pip install 'irlhf[ray]'")
    if backend != "auto":
        return backend
    if ray_available():
        return "ray"
    if workers == 1:
        return "serial"
    echo(NO_RAY + "; running them in a local process pool")
    return "processes"


@dataclasses.dataclass
class Batch:
    """rows: ``{**params, **result}`` of every finished trial, in the order of the parameter sets (reused from the
    log or run now); failed: ``{**params, "error": ...}`` of the trials that failed in this call; ran / reused:
    counts of this call."""

    rows: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    ran: int
    reused: int


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as it reads back from JSON (tuples as lists), so logged rows compare equal."""
    try:
        return json.loads(json.dumps(dict(params), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"params={dict(params)!r}: not JSON ({exc}); expected names mapped to JSON values "
                              "(strings, numbers, booleans, lists)") from None


def _is_match(row: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    return all(k in row and row[k] == v for k, v in params.items())


def read_log(log: Path) -> list[dict[str, Any]]:
    """The rows of a results log; a torn last line (a run killed mid-write) is skipped, any other bad line is an
    error naming the file and line."""
    if not log.is_file():
        return []
    lines = log.read_text(encoding="utf-8").splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                continue
            raise ValidationError(f"log={str(log)!r} line {number}: not JSON; expected one result object a line")
    return rows


def run_many(function: Callable[[dict[str, Any]], Mapping[str, Any]], params: Sequence[Mapping[str, Any]], *,
             log: str | os.PathLike[str] | None = None, backend: Backend = "auto", workers: int | None = None,
             cpu: float = 1.0, gpu: float = 0.0, address: str | None = None, fresh: bool = False,
             progress: bool = True, desc: str = "trials", echo: Callable[[str], None] = print,
             on_row: Callable[[dict[str, Any]], None] | None = None) -> Batch:
    """``function(p)`` (a dict of results) for every parameter set ``p`` not already in ``log``.

    log: a JSONL file; each finished trial is appended as ``{**p, **function(p)}`` the moment it ends, and a
    parameter set whose every key and value is in some row already there is reused, not run (resume; ``fresh``
    deletes the log first). Failed trials go to ``<log>.failed.jsonl`` with their error and traceback and are run
    again next time. backend / workers / cpu / gpu / address: :func:`execute` (``auto``: Ray when installed, else a
    process pool). One progress bar (done / running / failed); ``on_row(row)`` is called with each new finished
    row as it is logged (e.g. to print it)."""
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (cpu, gpu)) or cpu <= 0 or gpu < 0:
        raise ValidationError(f"cpu={cpu!r}, gpu={gpu!r}: expected cpu > 0 and gpu >= 0 per trial")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValidationError(f"workers={workers!r}: expected an int >= 1")
    wanted = [_plain(p) for p in params]
    log_path = Path(log) if log is not None else None
    failed_path = None if log_path is None else log_path.with_name(log_path.stem + ".failed.jsonl")
    if fresh and log_path is not None:
        for path in (log_path, failed_path):
            path.unlink(missing_ok=True)
    logged = read_log(log_path) if log_path is not None else []
    rows: list[dict[str, Any] | None] = [next((r for r in logged if _is_match(r, p)), None) for p in wanted]
    todo = [i for i, row in enumerate(rows) if row is None]
    reused = len(wanted) - len(todo)
    chosen = choose_backend(backend, workers, echo, address) if todo else "serial"
    echo(f"{desc}: {len(wanted)} trials ({reused} already in {log_path.name if log_path else 'no log'}), "
         f"{len(todo)} to run{f' ({chosen})' if todo else ''}")
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    failed: list[dict[str, Any]] = []
    bar = progress_bar(len(wanted), reused, progress and bool(todo), desc)

    def on_done(position: int, outcome: Outcome) -> None:
        index = todo[position]
        if outcome["status"] == "finished":
            result = outcome["result"]
            if not isinstance(result, Mapping):
                outcome = {"status": "failed", "error": f"TypeError: {getattr(function, '__name__', function)} "
                           f"returned {type(result).__name__}; expected a dict of results"}
            else:
                rows[index] = {**wanted[index], **dict(result)}
                _append(log_path, rows[index])
                if on_row is not None:
                    on_row(rows[index])
        if outcome["status"] != "finished":
            failed.append({**wanted[index], "error": outcome.get("error"), "traceback": outcome.get("traceback")})
            _append(failed_path, failed[-1])
            echo(f"{desc}: failed {json.dumps(wanted[index])}: {outcome.get('error')}")
        bar.update(1)
        bar.set_postfix(failed=len(failed), refresh=False)

    try:
        execute(function, [wanted[i] for i in todo], backend=chosen, workers=workers, cpu=cpu, gpu=gpu,
                address=address, on_done=on_done,
                on_running=lambda n: bar.set_postfix(running=n, failed=len(failed)))
    finally:
        bar.close()
    return Batch([r for r in rows if r is not None], failed, len(todo), reused)


def _append(path: Path | None, row: Mapping[str, Any]) -> None:
    if path is None:
        return
    line = json.dumps(row, default=str) + "\n"  # why: one write of a whole line, so a kill tears at most the last
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def progress_bar(total: int, initial: int, enabled: bool, desc: str) -> Any:
    """The one bar of a batch of trials (the trials' own bars go to their logs)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="trial", disable=not enabled, leave=True)
