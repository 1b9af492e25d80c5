"""Latency of the labelling page's poll (``POST /api/next``) on a big store, with the old full-stats path as baseline.

A store is bulk-loaded with ``--labels`` labels (2 per query, spread over ``--annotators`` annotators) plus
``--open`` queries nobody has labelled yet. The server runs in its own process (``irlhf.label.server.start_server``,
uvicorn, one worker), so the clients' threads do not share its GIL; ``--annotators`` client threads, each with its
own keep-alive connection and CSRF cookie, poll the next-query endpoint back to back (``--interval`` 0) for
``--seconds`` after a warm-up, as every open tab of the page does every 2 s. Each answer carries the query leased to
that annotator and the page's progress counts.

Baseline, in the same run: the same server with ``LabelStore.progress`` replaced by the old path, which computed
the counts from ``store.stats`` (every label of the session read on every poll).

    python benchmarks/label_next.py                       # 120k labels, 8 annotators, 10 s per path
    python benchmarks/label_next.py --only current --seconds 3

Prints a table (p50 / p95 / p99 / max latency in ms) and writes benchmarks/out/label_next.json. The request
itself is ``Poller.request_next``: adapt only that if the endpoint changes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import re
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from irlhf.label.kinds import canonical_json
from irlhf.label.store import LabelStore

OUT = Path(__file__).resolve().parent / "out"
SESSION = "bench"
PER_QUERY = 2  # labels (annotators) per complete query
LABELLERS = 8  # the store's labels are spread over annotator00..07 (the first 8 pollers)


# -- the store: bulk-loaded straight into its tables (one transaction; the schema's triggers keep the counters)


def annotator_name(k: int) -> str:
    return f"annotator{k:02d}"


def build_store(db: Path, n_labels: int, n_open: int) -> dict[str, Any]:
    """Fill ``db`` with n_labels / PER_QUERY complete text queries (query k labelled by annotators k, k+1 mod
    LABELLERS) and ``n_open`` unlabelled ones; returns the sizes and the seconds it took."""
    t0 = time.perf_counter()
    LabelStore(db).close()  # creates the schema
    n_complete = n_labels // PER_QUERY
    now = time.time()
    value = canonical_json({"ranking": [[0], [1]]})

    def query(k: int) -> tuple:
        payload = canonical_json({"prompt": f"prompt {k}", "responses": [f"answer {k}a", f"answer {k}b"]})
        return f"q{k:07d}", "text", SESSION, payload, PER_QUERY, PER_QUERY if k < n_complete else 0, now

    labels = ((f"q{k:07d}", annotator_name((k + j) % LABELLERS), value, now)
              for k in range(n_complete) for j in range(PER_QUERY))
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO sessions (name, created) VALUES (?, ?)", (SESSION, now))
        con.executemany("INSERT INTO queries (id, kind, session, payload, n_annotators, n_labels, created) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)", (query(k) for k in range(n_complete + n_open)))
        con.executemany("INSERT INTO labels (query_id, annotator, value, created) VALUES (?, ?, ?, ?)", labels)
        con.execute("COMMIT")
    finally:
        con.close()
    return {"queries": n_complete + n_open, "labels": n_complete * PER_QUERY, "open": n_open,
            "build_s": time.perf_counter() - t0}


def check_store(db: Path, annotator: str) -> dict[str, Any]:
    """The counters agree with a full ``stats``; returns the seconds one ``stats`` and one ``progress`` take."""
    with LabelStore(db) as store:
        t0 = time.perf_counter()
        stats = store.stats(SESSION)
        t1 = time.perf_counter()
        counts = store.progress(annotator, session=SESSION)
        t2 = time.perf_counter()
    expected = {"n_queries": stats["n_queries"], "n_complete": stats["n_complete"], "pending": stats["pending"],
                "n_labels": stats["per_annotator"].get(annotator, 0)}
    if counts != expected:
        raise RuntimeError(f"store.progress {counts} disagrees with store.stats {expected}")
    return {"stats_ms": (t1 - t0) * 1000, "progress_ms": (t2 - t1) * 1000, "progress": counts}


# -- the server, in its own process


def progress_from_stats(self: LabelStore, annotator: str, session: str | None = None) -> dict[str, int]:
    """The old path: the page's counts taken from a full ``stats`` of the session on every poll."""
    stats = self.stats(session)
    return {"n_queries": stats["n_queries"], "n_complete": stats["n_complete"], "pending": stats["pending"],
            "n_labels": stats["per_annotator"].get(annotator, 0)}


def serve(db: str, baseline: bool, pipe: Any) -> None:
    """Server process (spawned): serve the session until the parent sends anything; sends the port first."""
    from irlhf.label.server import start_server

    if baseline:
        LabelStore.progress = progress_from_stats  # type: ignore[method-assign]
    with start_server(LabelStore(db), session=SESSION) as running:
        pipe.send(running.port)
        pipe.recv()


# -- the clients


class Poller:
    """One annotator's open tab: a keep-alive connection, the CSRF cookie from ``GET /label``, and the poll."""

    def __init__(self, port: int, name: str) -> None:
        self.name = name
        self.con = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.con.request("GET", f"/label?annotator={name}")
        response = self.con.getresponse()
        response.read()
        match = re.search(r"irlhf_csrf=([^;]+)", response.getheader("set-cookie") or "")
        if response.status != 200 or match is None:
            raise RuntimeError(f"GET /label answered {response.status} without a CSRF cookie")
        self.csrf = match.group(1)
        self.latencies: list[float] = []

    def request_next(self) -> dict[str, Any]:
        """One poll, as label.js sends it: POST /api/next {"annotator"} with the CSRF header and cookie."""
        body = json.dumps({"annotator": self.name})
        self.con.request("POST", "/api/next", body, {"Content-Type": "application/json", "X-CSRF-Token": self.csrf,
                                                     "Cookie": f"irlhf_csrf={self.csrf}"})
        response = self.con.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST /api/next answered {response.status}: {data[:200]!r}")
        return json.loads(data)

    def run(self, warmup_until: float, stop_at: float, interval: float, errors: list[BaseException]) -> None:
        """Poll until ``stop_at``; latencies (seconds) of polls started after ``warmup_until`` are kept."""
        try:
            while (start := time.perf_counter()) < stop_at:
                self.request_next()
                if start >= warmup_until:
                    self.latencies.append(time.perf_counter() - start)
                if interval:
                    time.sleep(interval)
        except BaseException as err:  # reported by the caller: a thread's exception is otherwise lost
            errors.append(err)


def poll_run(db: Path, baseline: bool, n_annotators: int, seconds: float, warmup: float,
             interval: float) -> dict[str, Any]:
    """Serve ``db`` (the old stats path if ``baseline``), poll it from ``n_annotators`` threads, and summarise."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(str(db), baseline, child), daemon=True)
    server.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the server did not start within 60 s")
        port = parent.recv()
        pollers = [Poller(port, annotator_name(k)) for k in range(n_annotators)]
        first = pollers[0].request_next()
        errors: list[BaseException] = []
        t0 = time.perf_counter()
        threads = [threading.Thread(target=p.run, args=(t0 + warmup, t0 + warmup + seconds, interval, errors))
                   for p in pollers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
    finally:
        parent.send("stop")
        server.join(30)
        if server.is_alive():
            server.terminate()
    ms = np.concatenate([p.latencies for p in pollers]) * 1000
    if ms.size == 0:
        raise RuntimeError(f"no poll finished within {seconds} s after the warm-up; expected at least one")
    return {"path": "old: progress from store.stats" if baseline else "current: store.progress",
            "polls": int(ms.size), "polls_per_s": ms.size / seconds,
            "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()), "first_answer": first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=120_000, help="labels in the store (2 per complete query)")
    parser.add_argument("--open", type=int, default=10_000, help="queries not labelled yet")
    parser.add_argument("--annotators", type=int, default=8, help="polling annotators (client threads)")
    parser.add_argument("--seconds", type=float, default=10.0, help="polling time per path, after the warm-up")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of polling not counted")
    parser.add_argument("--interval", type=float, default=0.0, help="pause between one annotator's polls (s)")
    parser.add_argument("--only", choices=("current", "baseline"), default=None, help="run one path only")
    parser.add_argument("--dir", default=None, help="folder for the store (default: a temporary one; its disk's "
                                                    "fsync time is part of every poll, which leases a query)")
    args = parser.parse_args()
    if args.labels < 0 or args.open < 0 or args.annotators < 1 or args.seconds <= 0 or args.warmup < 0 \
            or args.interval < 0:
        parser.error("expected --labels, --open, --warmup, --interval >= 0, --annotators >= 1 and --seconds > 0")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        db = Path(tmp) / "labels.sqlite"
        sizes = build_store(db, args.labels, args.open)
        check = check_store(db, annotator_name(0))
        paths = [False, True] if args.only is None else [args.only == "baseline"]
        runs = [poll_run(db, baseline, args.annotators, args.seconds, args.warmup, args.interval)
                for baseline in paths]
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"{sizes['labels']} labels, {sizes['queries']} queries ({sizes['open']} open), built in "
          f"{sizes['build_s']:.1f} s; {args.annotators} annotators polling for {args.seconds:g} s each "
          f"(interval {args.interval:g} s); {machine}")
    print(f"one store.stats: {check['stats_ms']:.0f} ms; one store.progress: {check['progress_ms']:.2f} ms "
          f"({check['progress']})")
    print("| path | polls | polls/s | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    for run in runs:
        print(f"| {run['path']} | {run['polls']} | {run['polls_per_s']:.0f} | {run['p50_ms']:.1f} | "
              f"{run['p95_ms']:.1f} | {run['p99_ms']:.1f} | {run['max_ms']:.0f} |")
    OUT.mkdir(exist_ok=True)
    (OUT / "label_next.json").write_text(json.dumps({"args": vars(args), "machine": machine, "store": sizes,
                                                     "check": check, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
