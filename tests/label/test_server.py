"""The labelling web app (irlhf.label.server) over a real LabelStore: routes, errors, security, concurrency."""

from __future__ import annotations

import base64
import http.client
import json
import re
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")  # FastAPI's TestClient runs on httpx

from fastapi.testclient import TestClient  # noqa: E402

from irlhf.core.errors import IrlhfError  # noqa: E402
from irlhf.label.server import CSP, create_app, serve, serve_url  # noqa: E402
from irlhf.label.store import LabelStore  # noqa: E402

# 1x1 images: real file headers, small enough to inline.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LabelStore]:
    """A fresh store in tmp_path."""
    with LabelStore(tmp_path / "labels.sqlite") as s:
        yield s


BASE = "http://127.0.0.1:8765"  # TestClient's address: scope["server"] follows it, as uvicorn's follows its socket


def _local(app: Any) -> TestClient:
    """A TestClient that talks to ``app`` as a browser on 127.0.0.1:8765 does (Host 127.0.0.1:8765)."""
    return TestClient(app, base_url=BASE)


def _opened(app: Any, annotator: str = "ann") -> TestClient:
    """A local client that has opened the labelling page (so it holds the CSRF cookie)."""
    client = _local(app)
    assert client.get("/label", params={"annotator": annotator}).status_code == 200
    return client


def _next(client: TestClient, annotator: Any, headers: dict[str, str] | None = None) -> Any:
    """``POST /api/next`` as label.js sends it: JSON body, CSRF header."""
    return client.post("/api/next", json={"annotator": annotator}, headers={**_csrf(client), **(headers or {})})


def _csrf(client: TestClient) -> dict[str, str]:
    """The CSRF header matching the client's cookie."""
    return {"X-CSRF-Token": client.cookies["irlhf_csrf"]}


def _post(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    """POST a label with the right CSRF header (plus ``headers``)."""
    return client.post("/api/label", json=body, headers={**_csrf(client), **(headers or {})})


def _add_all_kinds(store: LabelStore, session: str = "s1") -> dict[str, str]:
    """One query of every kind in ``session``; returns {kind: query id}."""
    return {
        "pair": store.add_query("pair", {"left": "a", "right": "b", "title": "Which <lands>?"}, session=session,
                                media={"a": (GIF, "image/gif"), "b": (GIF, "image/gif")}),
        "text": store.add_query("text", {"prompt": "Say hi", "responses": ["hi", "hello", "hey"]}, session=session),
        "dagger": store.add_query("dagger", {"frame": "f", "actions": ["noop", "left", "right"]}, session=session,
                                  media={"f": (PNG, "image/png")}),
        "tamer": store.add_query("tamer", {"clip": "c", "n_steps": 4, "step_seconds": 0.5}, session=session,
                                 media={"c": (GIF, "image/gif")}),
    }


LABELS = {
    "pair": "left",
    "text": {"ranking": [[2], [0, 1]]},
    "dagger": {"action": 1},
    "tamer": {"events": [{"t": 0.25, "h": 1}, {"t": 1.5, "h": -1}]},
}


def test_round_trip_all_kinds(store: LabelStore) -> None:
    ids = _add_all_kinds(store)
    client = _opened(create_app(store))
    seen = []
    while True:
        r = _next(client, "ann")
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        data = r.json()
        if data["query"] is None:
            break
        q = data["query"]
        seen.append(q["kind"])
        assert q["id"] == ids[q["kind"]]
        assert data["progress"] == {"done_by_you": len(seen) - 1, "total": 4, "pending": 5 - len(seen)}
        for field, mime in q["media_types"].items():
            url = q["payload"][field]
            assert re.fullmatch(r"/media/[0-9a-f]{32}", url)
            m = client.get(url)
            assert m.status_code == 200 and m.headers["content-type"] == mime
            assert m.content == (PNG if mime == "image/png" else GIF)
            assert m.headers["cache-control"] == "private, max-age=3600"
            assert m.headers["x-content-type-options"] == "nosniff"
        r = _post(client, {"query_id": q["id"], "annotator": "ann", "value": LABELS[q["kind"]]})
        assert r.status_code == 200 and r.json() == {"stored": True}
    assert seen == ["pair", "text", "dagger", "tamer"]
    assert data["progress"] == {"done_by_you": 4, "total": 4, "pending": 0}
    stored = {lab.query_id: lab.value for lab in store.labels()}
    assert stored[ids["pair"]] == "left" and stored[ids["dagger"]] == {"action": 1}
    assert stored[ids["text"]] == {"ranking": [[2], [0, 1]]}
    assert [e["h"] for e in stored[ids["tamer"]]["events"]] == [1, -1]


def test_resubmission_is_idempotent_and_first_wins(store: LabelStore) -> None:
    qid = _add_all_kinds(store)["pair"]
    client = _opened(create_app(store))
    assert _post(client, {"query_id": qid, "annotator": "ann", "value": "left"}).json() == {"stored": True}
    r = _post(client, {"query_id": qid, "annotator": "ann", "value": "right"})
    assert r.status_code == 200 and r.json() == {"stored": False}
    assert [(lab.annotator, lab.value) for lab in store.labels(query_id=qid)] == [("ann", "left")]


def test_session_filter_and_stats(store: LabelStore) -> None:
    mine = _add_all_kinds(store, "mine")
    other = store.add_query("text", {"prompt": "p", "responses": ["a", "b"]}, session="other")
    client = _opened(create_app(store, session="mine"))
    served = set()
    while (q := _next(client, "ann").json()["query"]) is not None:
        served.add(q["id"])
        assert _post(client, {"query_id": q["id"], "annotator": "ann", "value": "skip" if q["kind"] != "tamer"
                              else {"events": []}}).status_code == 200
    assert served == set(mine.values())
    # A query of another session is unknown to this server.
    r = _post(client, {"query_id": other, "annotator": "ann", "value": "skip"})
    assert r.status_code == 404 and "error" in r.json()
    stats = client.get("/api/stats").json()
    assert stats["n_queries"] == 4 and stats["n_labels"] == 4 and stats["per_annotator"] == {"ann": 4}
    assert stats["pending"] == 0
    assert _local(create_app(store)).get("/api/stats").json()["n_queries"] == 5


def test_error_statuses(store: LabelStore) -> None:
    ids = _add_all_kinds(store)
    client = _opened(create_app(store, max_body=2000))
    r = _post(client, {"query_id": "f" * 32, "annotator": "ann", "value": "left"})
    assert r.status_code == 404 and "no such query" in r.json()["error"]
    r = _post(client, {"query_id": "../../x", "annotator": "ann", "value": "left"})
    assert r.status_code == 404
    for kind, bad in [("pair", "up"), ("text", {"ranking": [[0], [1]]}), ("dagger", {"action": 3}),
                      ("tamer", {"events": [{"t": 99.0, "h": 1}]}), ("pair", None)]:
        r = _post(client, {"query_id": ids[kind], "annotator": "ann", "value": bad})
        assert r.status_code == 422, (kind, bad)
        assert "value" in r.json()["error"]
    r = _post(client, {"query_id": ids["pair"], "annotator": "<script>", "value": "left"})
    assert r.status_code == 422 and "annotator" in r.json()["error"]
    assert _next(client, "<script>").status_code == 422
    assert _next(client, None).status_code == 422
    r = _post(client, {"query_id": ids["pair"], "annotator": "ann"})
    assert r.status_code == 422 and "value" in r.json()["error"]
    headers = {**_csrf(client), "Content-Type": "application/json"}
    for raw in [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'{"query_id": NaN}']:
        r = client.post("/api/label", content=raw, headers=headers)
        assert r.status_code == 400, raw
        assert "error" in r.json()
    assert not store.labels()


def test_body_limit_content_length_and_chunked(store: LabelStore) -> None:
    qid = _add_all_kinds(store)["pair"]
    client = _opened(create_app(store, max_body=1000))
    big = {"query_id": qid, "annotator": "ann", "value": "x" * 5000}
    r = _post(client, big)
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks() -> Iterator[bytes]:
        body = json.dumps(big).encode()
        for i in range(0, len(body), 300):
            yield body[i:i + 300]

    r = client.post("/api/label", content=chunks(), headers={**_csrf(client), "Content-Type": "application/json"})
    assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 413
    # A Content-Length that understates the body is caught by the streamed count too.
    body = json.dumps(big).encode()
    r = client.post("/api/label", content=body, headers={**_csrf(client), "Content-Length": "10",
                                                         "Content-Type": "application/json"})
    assert r.status_code in (400, 413)
    assert not store.labels()
    # Under the limit, chunked, is fine.
    small = json.dumps({"query_id": qid, "annotator": "ann", "value": "equal"}).encode()
    r = client.post("/api/label", content=iter([small[:20], small[20:]]),
                    headers={**_csrf(client), "Content-Type": "application/json"})
    assert r.status_code == 200 and r.json() == {"stored": True}


def test_csrf_and_origin(store: LabelStore) -> None:
    qid = _add_all_kinds(store)["pair"]
    client = _opened(create_app(store))
    body = {"query_id": qid, "annotator": "ann", "value": "left"}
    assert client.post("/api/label", json=body).status_code == 403
    assert client.post("/api/label", json=body, headers={"X-CSRF-Token": "x" * 43}).status_code == 403
    fresh = _local(create_app(store))  # never opened /label: no cookie at all
    r = fresh.post("/api/label", json=body, headers={"X-CSRF-Token": "anything"})
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    for origin in ["http://evil.example", "null", "https://127.0.0.1:8765", "http://127.0.0.1:8765.evil.example",
                   "http://127.0.0.1:8765/x", "http://u@127.0.0.1:8765"]:
        r = _post(client, body, headers={"Origin": origin})
        assert r.status_code == 403, origin
    r = _post(client, body, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert not store.labels()
    r = client.post("/api/label", json=body, headers={**_csrf(client), "Origin": BASE})
    assert r.status_code == 200 and r.json() == {"stored": True}
    # The page's meta tag carries the cookie's value; a second visit keeps it (other tabs stay valid).
    page = client.get("/label", params={"annotator": "ann"})
    meta = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert meta and meta.group(1) == client.cookies["irlhf_csrf"]
    cookie = page.headers["set-cookie"].lower()
    assert "samesite=strict" in cookie and "path=/" in cookie


def test_token_mode(store: LabelStore) -> None:
    _add_all_kinds(store)
    app = create_app(store, token="s3cret-Token")
    client = _local(app)
    for path in ["/", "/label?annotator=ann", "/api/stats", "/static/label.js"]:
        r = client.get(path)
        assert r.status_code == 401, path
        assert "token" in r.json()["error"]
    assert client.post("/api/next", json={"annotator": "ann"}).status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    r = client.get("/?token=s3cret-Token")
    assert r.status_code == 200 and r.url == BASE + "/"  # redirected to the URL without the token
    cookie = r.history[0].headers["set-cookie"].lower()
    assert "irlhf_token=s3cret-token" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    # From now on the cookie alone is enough.
    assert client.get("/api/stats").status_code == 200
    assert client.get("/label", params={"annotator": "ann"}).status_code == 200
    assert _post(client, {"query_id": "f" * 32, "annotator": "ann", "value": "left"}).status_code == 404
    with pytest.raises(IrlhfError):
        create_app(store, token="has space")
    assert serve_url("127.0.0.1", 8765, "a~b") == "http://127.0.0.1:8765/?token=a~b"


def test_media_traversal_and_unknown_ids_404(store: LabelStore) -> None:
    _add_all_kinds(store)
    client = _local(create_app(store))
    for path in ["/media/..%2F..%2Fetc%2Fpasswd", "/media/../../etc/passwd", "/media/%2e%2e/%2e%2e/etc/passwd",
                 "/media/" + "0" * 32, "/media/" + "A" * 32, "/media/" + "0" * 31, "/media/" + "0" * 32 + "%00",
                 "/media/..%5c..%5cwindows", "/media/", "/static/..%2Fserver.py", "/static/server.py"]:
        r = client.get(path)
        assert r.status_code == 404, path
        assert "root:" not in r.text and "import" not in r.text


def test_refused_requests_are_json_errors_with_security_headers(store: LabelStore) -> None:
    qid = _add_all_kinds(store)["pair"]
    client = _opened(create_app(store))
    refusals = [
        (_next(client, "a/b"), 422,
         "annotator 'a/b' is not a valid name: expected 1 to 40 characters from letters, digits, space, '_', '.', '-'"),
        (client.get("/media/" + "A" * 32), 404, f"media id '{'A' * 32}' not found: expected 32 lowercase hex"),
        (_post(client, {"query_id": 7, "annotator": "ann", "value": "left"}), 404, "query_id 7: no such query"),
        (_post(client, {"query_id": qid, "annotator": "ann"}), 422,
         "request body is missing value: expected query_id, annotator, value"),
        (_post(client, [qid]), 400, f"request body must be a JSON object, got {[qid]!r}"),
    ]
    for r, status, message in refusals:
        assert (r.status_code, r.json()) == (status, {"error": message})
        assert r.headers["content-security-policy"] == CSP and r.headers["cache-control"] == "no-store"
    assert not store.labels()


def test_security_headers_and_escaping(store: LabelStore) -> None:
    client = _local(create_app(store, title="<b>Lab</b> & co"))
    for path in ["/", "/label?annotator=Ann%20O.-1"]:
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert r.headers["content-security-policy"] == CSP
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "<b>Lab</b>" not in r.text and "&lt;b&gt;Lab&lt;/b&gt; &amp; co" in r.text
        assert "<script>" not in r.text  # no inline scripts: the CSP forbids them
    assert 'content="Ann O.-1"' in client.get("/label?annotator=Ann%20O.-1").text
    r = client.get("/label", params={"annotator": "<script>alert(1)</script>"})
    assert r.status_code == 422 and "<script>alert" not in r.text and "&lt;script&gt;" in r.text
    assert client.get("/label", params={"annotator": '"><img src=x>'}).status_code == 422
    assert client.get("/label", follow_redirects=False).status_code == 303
    js = client.get("/static/label.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    # Data is rendered with textContent / createTextNode only: no HTML-parsing sinks at all.
    assert not re.search(r"\.(innerHTML|outerHTML)\s*\+?=|insertAdjacentHTML|document\.write|eval\(", js.text)
    css = client.get("/static/label.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_serve_refuses_remote_host_without_allow_remote(store: LabelStore) -> None:
    for host in ["0.0.0.0", "::", "192.168.1.5", "example.com"]:
        with pytest.raises(IrlhfError, match="token"):
            serve(store, host=host, port=1)


def _own_live_server() -> tuple[Callable[[Any], str], Callable[[], None]]:
    """Fallback when conftest has no ``live_server``: uvicorn in a daemon thread on a free loopback port."""
    import socket
    import time

    import uvicorn

    servers: list[tuple[Any, threading.Thread]] = []

    def start(app: Any) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}"

    def stop() -> None:
        for server, thread in servers:
            server.should_exit = True
            thread.join(timeout=5)

    return start, stop


@pytest.fixture
def server_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[Any], str]]:
    """conftest's ``live_server`` when present, else a small local one."""
    try:
        shared = request.getfixturevalue("live_server")
    except pytest.FixtureLookupError:
        shared = None
    if shared is not None:
        yield shared
        return
    start, stop = _own_live_server()
    try:
        yield start
    finally:
        stop()


def test_concurrent_annotators_over_real_http(store: LabelStore, server_factory: Callable[[Any], str]) -> None:
    """8 annotators x 25 POSTs (with repeats) over real HTTP: rows = the distinct (query, annotator) pairs."""
    qids = [store.add_query("pair", {"left": "a", "right": "b"}, session="s", n_annotators=8,
                            media={"a": (GIF, "image/gif"), "b": (GIF, "image/gif")}) for _ in range(12)]
    base = server_factory(create_app(store))
    expected: set[tuple[str, str]] = set()
    failures: list[str] = []
    results: dict[str, list[bool]] = {}

    def annotator(k: int) -> None:
        name = f"ann {k}"
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        try:
            opener.open(f"{base}/label?annotator=ann%20{k}", timeout=10).read()
            csrf = next(c.value for c in jar if c.name == "irlhf_csrf")
            got = []
            for i in range(25):
                qid = qids[(i * 5 + k) % len(qids)]  # 25 posts over 12 queries: repeats included
                body = json.dumps({"query_id": qid, "annotator": name, "value": ["left", "right"][i % 2]}).encode()
                req = urllib.request.Request(f"{base}/api/label", data=body, method="POST", headers={
                    "Content-Type": "application/json", "X-CSRF-Token": csrf, "Origin": base})
                with opener.open(req, timeout=10) as resp:
                    got.append(json.loads(resp.read())["stored"])
            results[name] = got
        except (urllib.error.URLError, OSError, StopIteration, KeyError) as exc:
            failures.append(f"{name}: {exc!r}")

    for k in range(8):
        expected |= {(qids[(i * 5 + k) % len(qids)], f"ann {k}") for i in range(25)}
    threads = [threading.Thread(target=annotator, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures
    assert len(results) == 8
    # Each annotator: stored=True exactly once per distinct query it posted.
    for name, got in results.items():
        assert sum(got) == len({q for q, a in expected if a == name})
    with sqlite3.connect(store.path) as con:
        rows = con.execute("SELECT query_id, annotator FROM labels").fetchall()
    assert len(rows) == len(set(rows))
    assert set(rows) == expected


# ------------------------------------------------------------------------------- hardening (issue 19)

def _raw(port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request with exactly these headers (Host included): (status, lower-cased headers, body)."""
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        con.request(method, path, body=body, headers=headers)
        response = con.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        con.close()


def test_foreign_host_header_is_refused(store: LabelStore) -> None:
    client = _local(create_app(store))
    assert client.get("/").status_code == 200
    for host in ["evil.example:8765", "evil.example", "127.0.0.1:9999", "localhost.evil.example:8765", "",
                 "127.0.0.1:8765@evil.example"]:
        r = client.get("/", headers={"Host": host})
        assert r.status_code == 421, host
        assert r.json()["error"].startswith(f"Host {host!r} is not this server: expected one of 127.0.0.1:8765")
    for host in ["localhost:8765", "LOCALHOST:8765", "[::1]:8765", "127.0.0.1:8765"]:
        assert client.get("/", headers={"Host": host}).status_code == 200, host
    # An app behind a name (a reverse proxy, an SSH tunnel on another port) lists it.
    named = _local(create_app(store, allowed_hosts=["labels.lab.example", "localhost:9000"]))
    for host, status in [("labels.lab.example:8765", 200), ("labels.lab.example:80", 421),
                         ("localhost:9000", 200), ("evil.example:8765", 421)]:
        assert named.get("/", headers={"Host": host}).status_code == status, host
    with pytest.raises(IrlhfError, match="allowed_hosts"):
        create_app(store, allowed_hosts=["bad host/"])


def test_origin_is_checked_against_the_allowed_hosts_not_the_request(store: LabelStore) -> None:
    qid = _add_all_kinds(store)["pair"]
    client = _opened(create_app(store))
    body = {"query_id": qid, "annotator": "ann", "value": "left"}
    for origin in ["http://evil.example:8765", "http://127.0.0.1:9999", "https://127.0.0.1:8765", "null"]:
        r = _post(client, body, headers={"Origin": origin})
        assert r.status_code == 403 and origin in r.json()["error"], origin
    assert not store.labels()
    r = _post(client, body, headers={"Origin": "http://localhost:8765"})  # another name of this same server
    assert r.status_code == 200 and r.json() == {"stored": True}


def test_dns_rebinding_over_real_http(store: LabelStore, server_factory: Callable[[Any], str]) -> None:
    """A page on evil.example:PORT whose name now resolves to 127.0.0.1: every request carries that Host."""
    qid = _add_all_kinds(store)["pair"]
    port = int(server_factory(create_app(store)).rsplit(":", 1)[1])
    evil = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    status, headers, body = _raw(port, "GET", "/label?annotator=ann", evil)
    assert status == 421 and "evil.example" in json.loads(body)["error"]
    assert "set-cookie" not in headers
    # Even with a CSRF pair of its own (cookie and header agree), the attacker's POST is refused.
    label = json.dumps({"query_id": qid, "annotator": "ann", "value": "left"}).encode()
    status, _, _ = _raw(port, "POST", "/api/label", {**evil, "Cookie": "irlhf_csrf=" + "a" * 43,
                                                      "X-CSRF-Token": "a" * 43, "Content-Type": "application/json"},
                        label)
    assert status == 421 and not store.labels()
    assert _raw(port, "GET", "/", {"Host": f"localhost:{port}"})[0] == 200


def test_get_next_is_405_and_leases_nothing(store: LabelStore) -> None:
    qid = store.add_query("pair", {"left": "a", "right": "b"}, session="s",
                          media={"a": (GIF, "image/gif"), "b": (GIF, "image/gif")})
    client = _opened(create_app(store))
    r = client.get("/api/next", params={"annotator": "victim"})  # what a cross-site <img src=...> sends
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json() == {"error": "GET /api/next is not allowed: expected POST"}
    assert store.next_query("other", session="s").id == qid  # not leased to "victim"
    # POST /api/next needs the CSRF header (a cross-site page cannot send it) and a JSON body.
    assert client.post("/api/next", json={"annotator": "ann"}).status_code == 403
    r = client.post("/api/next", content=b"annotator=ann", headers={**_csrf(client),
                                                                   "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    r = _next(client, "ann")
    assert r.status_code == 200 and r.json()["query"] is None  # "other" holds the only lease
    r = _next(client, "ann", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403


def test_next_round_trip_over_post(store: LabelStore) -> None:
    ids = _add_all_kinds(store)
    client = _opened(create_app(store))
    r = _next(client, "ann")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.json()["query"]["id"] == ids["pair"]
    assert _next(client, "<script>").status_code == 422
    r = client.post("/api/next", json={}, headers=_csrf(client))
    assert (r.status_code, r.json()) == (422, {"error": "request body is missing annotator: expected annotator"})


def test_deeply_nested_json_is_400_not_500(store: LabelStore) -> None:
    qid = _add_all_kinds(store)["pair"]
    client = _opened(create_app(store))
    headers = {**_csrf(client), "Content-Type": "application/json"}
    deep = b"[" * 200_000 + b"]" * 200_000
    nested_value = ('{"query_id": "%s", "annotator": "ann", "value": ' % qid).encode() + deep + b"}"
    for path, raw in [("/api/label", deep), ("/api/label", nested_value), ("/api/next", deep)]:
        r = client.post(path, content=raw, headers=headers)
        assert r.status_code == 400, path
        assert r.json()["error"] == "request body nests [ ] / { } deeper than 16 levels: expected a flat JSON object"
    # Brackets inside strings are text, not nesting.
    r = _post(client, {"query_id": qid, "annotator": "ann", "value": "[" * 100})
    assert r.status_code == 422 and "value" in r.json()["error"]
    r = client.post("/api/next", content=b'{"annotator": "' + b"x" * 2_000_000 + b'"}', headers=headers)
    assert r.status_code == 413 and "limit" in r.json()["error"]
    assert not store.labels()


def test_token_in_the_url_is_exchanged_for_a_cookie(store: LabelStore) -> None:
    client = _local(create_app(store, token="s3cret-Token"))
    r = client.get("/label?annotator=ann&token=s3cret-Token", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/label?annotator=ann"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("irlhf_token=s3cret-Token;")
    assert all(part in cookie.lower() for part in ("httponly", "samesite=strict", "path=/"))
    assert "s3cret" not in r.text
    r = client.get("/?token=s3cret-Token", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert client.get("/label?annotator=ann").status_code == 200  # the cookie alone is enough now
    r = client.get(BASE + "//evil.example/?x=1&token=s3cret-Token&y=%26", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/evil.example/?x=1&y=%26"  # never off this server
    # A link on another site: the page itself moves on, so the SameSite=Strict cookie goes with the next request.
    r = _local(client.app).get("/label?annotator=ann&token=s3cret-Token", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 200 and r.headers["set-cookie"].startswith("irlhf_token=s3cret-Token;")
    assert '<meta http-equiv="refresh" content="0; url=/label?annotator=ann">' in r.text and "s3cret" not in r.text
    stranger = _local(create_app(store, token="s3cret-Token"))
    r = stranger.get("/label?annotator=ann&token=wrong", follow_redirects=False)
    assert r.status_code == 401 and "set-cookie" not in r.headers


def test_blank_annotator_names_are_refused_and_names_trimmed(store: LabelStore) -> None:
    qid = _add_all_kinds(store)["pair"]
    client = _opened(create_app(store))
    for name in ["   ", " ", "\t"]:
        r = _next(client, name)
        assert (r.status_code, r.json()) == (400, {"error": f"annotator {name!r} is blank: expected a name with "
                                                            "at least one letter, digit, '_', '.' or '-'"})
    r = _post(client, {"query_id": qid, "annotator": "   ", "value": "left"})
    assert r.status_code == 400 and "blank" in r.json()["error"]
    page = client.get("/label", params={"annotator": "   "})
    assert page.status_code == 400 and "blank" in page.text and 'name="csrf-token"' not in page.text
    page = client.get("/label", params={"annotator": "  Ada L. "})
    assert page.status_code == 200 and '<meta name="annotator" content="Ada L.">' in page.text
    assert _next(client, " Ada L. ").json()["query"]["id"] == qid
    assert _post(client, {"query_id": qid, "annotator": "  Ada L. ", "value": "left"}).json() == {"stored": True}
    assert [lab.annotator for lab in store.labels()] == ["Ada L."]


def test_serve_prints_the_port_it_bound(store: LabelStore, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    import uvicorn

    bound: list[int] = []  # uvicorn is replaced: record the socket it would serve, then return at once
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: bound.append(sockets[0].getsockname()[1]))
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: bound.append(0))
    serve(store, port=0)
    match = re.search(r"open http://127\.0\.0\.1:(\d+)/", capsys.readouterr().out)
    assert match and bound == [int(match.group(1))] and bound[0] != 0


def test_next_reads_the_kept_counters_not_the_full_statistics(store: LabelStore, monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    _add_all_kinds(store)
    client = _opened(create_app(store))

    def full_scan(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("POST /api/next must not compute store.stats (every open tab polls it)")

    monkeypatch.setattr(store, "stats", full_scan)
    r = _next(client, "ann")
    assert r.status_code == 200
    assert r.json()["progress"] == {"done_by_you": 0, "total": 4, "pending": 4}
