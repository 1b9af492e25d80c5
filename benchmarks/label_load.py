"""Load test of the labelling server: many annotators labelling at once over HTTP on loopback.

A fresh store holds ``--queries`` two-response text queries, each to be labelled by ``--annotators`` people
(``n_annotators`` = all of them). The server runs in its own process (``irlhf.label.server.serve``, uvicorn,
one worker); every annotator is a client thread with its own keep-alive connection that does what the page
does: GET /label (CSRF cookie), then repeatedly POST /api/next and POST /api/label, and POSTs every label a
second time (a double click / a retry after a lost answer), which must be stored once. Afterwards the store
must hold exactly one label per (query, annotator): none lost, none duplicated.

Baseline, in the same run: the same labels written by the same number of threads straight into a LabelStore
(no HTTP), i.e. what the store (SQLite: WAL, synchronous=FULL) itself allows on this disk.

Labelling beyond one machine: ``--database URL`` puts the store behind a PostgreSQL URL (a fresh schema of it is
made for each run and dropped after) and ``--servers N`` starts N server processes on that one store, the
annotators spread over them round-robin, as N machines behind a load balancer would be.

    python benchmarks/label_load.py                       # 16 annotators x 100 queries, SQLite, one server
    python benchmarks/label_load.py --annotators 32 --queries 50
    python benchmarks/label_load.py --annotators 100 --queries 20 --servers 2 \
        --database postgresql://postgres@127.0.0.1:5432/postgres

Prints a table and writes benchmarks/out/label_load[_postgres][_Nservers].json.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import platform
import re
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from irlhf.label.dialects import redact
from irlhf.label.store import LabelStore

OUT = Path(__file__).resolve().parent / "out"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(db: str, port: int) -> None:
    """The server process (spawned): serve the store until terminated."""
    from irlhf.label.server import serve

    serve(LabelStore(db), host="127.0.0.1", port=port)


@contextlib.contextmanager
def _fresh_target(database: str | None, workdir: Path, name: str) -> Iterator[str]:
    """A store target no run used before: a SQLite file in ``workdir``, or a new schema of the PostgreSQL
    ``database`` (its URL with that search_path; the schema is dropped afterwards)."""
    if database is None:
        yield str(workdir / f"{name}.sqlite")
        return
    import psycopg

    schema = f"label_load_{name}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
    try:
        yield database + ("&" if "?" in database else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(database, autocommit=True) as con:
            con.execute(f"DROP SCHEMA {schema} CASCADE")


def _fill(db: str, n_queries: int, n_annotators: int) -> list[str]:
    store = LabelStore(db)
    ids = [store.add_query("text", {"prompt": f"prompt {q}", "responses": [f"answer {q}a", f"answer {q}b"]},
                           session="load", n_annotators=n_annotators, query_id=f"q{q:05d}")
           for q in range(n_queries)]
    store.close()
    return ids


class Annotator:
    """One person's browser: a keep-alive connection, the CSRF cookie, and the page's request sequence."""

    def __init__(self, port: int, name: str):
        self.name, self.port = name, port
        self.con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.con.request("GET", f"/label?annotator={name}")
        response = self.con.getresponse()
        response.read()
        cookie = response.getheader("set-cookie") or ""
        match = re.search(r"irlhf_csrf=([^;]+)", cookie)
        if response.status != 200 or match is None:
            raise RuntimeError(f"GET /label answered {response.status} without a CSRF cookie")
        self.csrf = match.group(1)
        self.latencies: list[float] = []

    def _post_json(self, path: str, body: dict) -> http.client.HTTPResponse:
        """POST ``body`` as the page does: JSON, with the CSRF header and cookie."""
        self.con.request("POST", path, json.dumps(body), {"Content-Type": "application/json",
                                                          "X-CSRF-Token": self.csrf,
                                                          "Cookie": f"irlhf_csrf={self.csrf}"})
        return self.con.getresponse()

    def next_query(self) -> dict | None:
        response = self._post_json("/api/next", {"annotator": self.name})
        body = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"POST /api/next answered {response.status}: {body}")
        return body["query"]

    def post(self, query_id: str, value: object) -> bool:
        t0 = time.perf_counter()
        response = self._post_json("/api/label", {"query_id": query_id, "annotator": self.name, "value": value})
        answer = json.loads(response.read())
        self.latencies.append(time.perf_counter() - t0)
        if response.status != 200:
            raise RuntimeError(f"POST /api/label answered {response.status}: {answer}")
        return bool(answer["stored"])

    def run(self, stats: dict) -> None:
        stored = duplicates = 0
        while (query := self.next_query()) is not None:
            value = {"ranking": [[0], [1]] if int(query["id"][1:]) % 2 else [[1], [0]]}
            stored += self.post(query["id"], value)
            duplicates += not self.post(query["id"], value)  # the resend must be refused as a duplicate
        stats[self.name] = (stored, duplicates)


def http_run(n_annotators: int, n_queries: int, db: str, n_servers: int) -> dict:
    _fill(db, n_queries, n_annotators)
    ports = [_free_port() for _ in range(n_servers)]
    servers = [multiprocessing.get_context("spawn").Process(target=_serve, args=(db, port), daemon=True)
               for port in ports]
    for server in servers:
        server.start()
    deadline = time.time() + 60
    for port, server in zip(ports, servers):
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or not server.is_alive():
                    raise RuntimeError(f"the server on port {port} did not start") from None
                time.sleep(0.1)
    try:
        annotators = [Annotator(ports[k % n_servers], f"annotator{k:02d}") for k in range(n_annotators)]
        stats: dict = {}
        threads = [threading.Thread(target=a.run, args=(stats,)) for a in annotators]
        t0 = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - t0
    finally:
        for server in servers:
            server.terminate()
            server.join(10)
    store = LabelStore(db)
    labels = store.labels(session="load")
    store.close()
    pairs = {(label.query_id, label.annotator) for label in labels}
    latencies = np.concatenate([a.latencies for a in annotators]) * 1000
    return {"seconds": seconds, "posts": int(len(latencies)), "labels_stored": len(labels),
            "distinct_pairs": len(pairs), "expected": n_queries * n_annotators,
            "stored_answers": sum(s for s, _ in stats.values()), "duplicate_answers": sum(d for _, d in stats.values()),
            "posts_per_s": len(latencies) / seconds, "labels_per_s": len(labels) / seconds,
            "post_ms_p50": float(np.percentile(latencies, 50)), "post_ms_p95": float(np.percentile(latencies, 95)),
            "post_ms_max": float(latencies.max())}


def direct_run(n_annotators: int, n_queries: int, db: str) -> dict:
    ids = _fill(db, n_queries, n_annotators)
    store = LabelStore(db)

    def label_all(name: str) -> None:
        for qid in ids:
            store.add_label(qid, name, {"ranking": [[0], [1]]})
            store.add_label(qid, name, {"ranking": [[0], [1]]})  # the duplicate, as in the HTTP run

    threads = [threading.Thread(target=label_all, args=(f"annotator{k:02d}",)) for k in range(n_annotators)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - t0
    n = len(store.labels(session="load"))
    store.close()
    return {"seconds": seconds, "labels_stored": n, "expected": n_queries * n_annotators,
            "labels_per_s": n / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, default=16)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--servers", type=int, default=1, help="server processes on the one store")
    parser.add_argument("--database", help="a postgresql:// URL (default: a SQLite file in a temporary directory)")
    args = parser.parse_args()
    if args.servers < 1:
        parser.error(f"--servers {args.servers}: expected at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        with _fresh_target(args.database, Path(tmp), "direct") as db:
            direct = direct_run(args.annotators, args.queries, db)
        with _fresh_target(args.database, Path(tmp), "http") as db:
            web = http_run(args.annotators, args.queries, db, args.servers)
    ok = (web["labels_stored"] == web["distinct_pairs"] == web["expected"] == web["stored_answers"]
          and web["duplicate_answers"] == web["expected"])
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    store = "SQLite" if args.database is None else f"PostgreSQL ({redact(args.database)})"
    print(f"{args.annotators} annotators x {args.queries} queries ({web['expected']} labels, each POSTed twice); "
          f"{args.servers} server process(es); store {store}; {machine}")
    print("| path | labels stored / expected | seconds | labels/s | POST p50 / p95 / max ms |")
    print("|---|---|---|---|---|")
    print(f"| HTTP, {args.servers} server(s) (next + 2 label POSTs per label) | {web['labels_stored']} / "
          f"{web['expected']} | "
          f"{web['seconds']:.1f} | {web['labels_per_s']:.0f} | {web['post_ms_p50']:.1f} / {web['post_ms_p95']:.1f} / "
          f"{web['post_ms_max']:.0f} |")
    print(f"| direct LabelStore.add_label (x2) | {direct['labels_stored']} / {direct['expected']} | "
          f"{direct['seconds']:.1f} | {direct['labels_per_s']:.0f} | - |")
    print("no label lost or duplicated" if ok else "MISMATCH: labels lost or duplicated")
    OUT.mkdir(exist_ok=True)
    name = "label_load" + ("" if args.database is None else "_postgres") + (f"_{args.servers}servers"
                                                                           if args.servers > 1 else "")
    shown_args = {**vars(args), "database": args.database and redact(args.database)}
    (OUT / f"{name}.json").write_text(json.dumps({"args": shown_args, "machine": machine, "http": web,
                                                  "direct": direct, "ok": ok}, indent=2) + "\n")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
