"""Fixtures for the labelling app's tests: a headless system chromium (Playwright) and a live uvicorn server.

    def test_page(browser, live_server):
        url = live_server(app)            # http://127.0.0.1:<free port>
        page = browser.new_page(); page.goto(url + "/")

``rebinding_browser`` is a second chromium in which evil.example resolves to 127.0.0.1 (a DNS rebinding attack).

Browser tests skip (with the reason) when playwright is not installed or there is no chromium binary;
Playwright's own browser downloads are never used.

``postgres_server`` is a throwaway PostgreSQL server (initdb + pg_ctl in a temporary directory) for the session;
``new_store_target`` (parametrized over "sqlite" and "postgres") makes fresh label store targets: a file path, or
a postgresql:// URL of a fresh schema. PostgreSQL tests skip (with the reason) without psycopg or the server
binaries (on PATH, or Debian's /usr/lib/postgresql/<version>/bin).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root in a container, where chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # tests must not reach the network
    "--disable-component-update",
    "--disable-sync",
]


def _chromium_path() -> str | None:
    """The system chromium binary, or None."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


@pytest.fixture(scope="session")
def _chromium() -> Iterator[Callable[[list[str]], Any]]:
    """Factory: launch a headless system chromium with these extra arguments (one Playwright for the session)."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]'): browser tests skipped")
    executable = _chromium_path()
    if executable is None:
        pytest.skip("no chromium binary (apt-get install chromium): browser tests skipped")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # never fetch Playwright's own browsers
    with sync_playwright() as playwright:
        launched: list[Any] = []

        def launch(extra_args: list[str]) -> Any:
            try:
                # headless=True makes Playwright pass --headless, chromium's new headless mode since v132
                browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                                     args=CHROMIUM_ARGS + extra_args)
            except PlaywrightError as exc:
                pytest.skip(f"chromium at {executable} did not start: {str(exc).splitlines()[0]}")
            launched.append(browser)
            return browser

        try:
            yield launch
        finally:
            for browser in launched:
                browser.close()


@pytest.fixture(scope="session")
def browser(_chromium: Callable[[list[str]], Any]) -> Any:
    """A headless chromium ``playwright.sync_api.Browser`` shared by the session (launch takes ~1 s)."""
    return _chromium([])


@pytest.fixture(scope="session")
def rebinding_browser(_chromium: Callable[[list[str]], Any]) -> Any:
    """A chromium in which evil.example resolves to 127.0.0.1, as after a DNS rebinding attack."""
    return _chromium(["--host-resolver-rules=MAP evil.example 127.0.0.1"])


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    """True once the server answers HTTP at all (any status: an app may have no route at /)."""
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@pytest.fixture
def live_server() -> Iterator[Callable[[Any], str]]:
    """Factory: ``live_server(app)`` serves the ASGI app with uvicorn on 127.0.0.1 (free port) in a thread,
    waits until it answers and returns its base URL (no trailing slash). Every server is stopped at teardown."""
    uvicorn = pytest.importorskip("uvicorn")
    running: list[tuple[Any, threading.Thread]] = []

    def start(app: Any, *, timeout: float = 10.0) -> str:
        port = _free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="auto",
                                timeout_graceful_shutdown=3)  # a browser's open request must not hang teardown
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # signals belong to pytest's main thread (uvicorn < 0.29)
        thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
        thread.start()
        running.append((server, thread))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while not (server.started and _answers(url + "/")):
            if not thread.is_alive():
                raise RuntimeError(f"uvicorn on port {port} exited before it answered")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn on port {port} did not answer within {timeout} s")
            time.sleep(0.02)
        return url

    yield start
    for server, thread in running:
        server.should_exit = True
    for server, thread in running:
        thread.join(timeout=5)
        if thread.is_alive():  # still draining: stop without waiting for connections
            server.force_exit = True
            thread.join(timeout=5)


# ----------------------------------------------------------------------------------------------- PostgreSQL


def _pg_binary(name: str) -> str | None:
    """``name`` (initdb, pg_ctl) on PATH, else in Debian's /usr/lib/postgresql/<version>/bin (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    debian = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                    key=lambda p: [int(x) if x.isdigit() else 0 for x in p.split("/")[4].split(".")])
    return debian[-1] if debian else None


class PostgresServer:
    """A running throwaway server: ``url(dbname)``, ``new_database()`` and ``new_schema_url()``."""

    def __init__(self, port: int) -> None:
        self.port = port

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        """Run one statement as the superuser in database postgres (autocommit: CREATE DATABASE needs it)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(sql)

    def new_database(self) -> str:
        """The URL of a new empty database."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def new_schema_url(self) -> str:
        """The URL of a new empty schema (search_path) in the shared test database: cheaper than a database."""
        name = f"s_{uuid.uuid4().hex[:12]}"
        import psycopg

        with psycopg.connect(self.url("irlhf_test"), autocommit=True) as con:
            con.execute(f"CREATE SCHEMA {name}")
        return self.url("irlhf_test") + f"?options=-csearch_path%3D{name}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server in a temporary directory on 127.0.0.1 (free port, trust auth, fsync off), stopped and
    removed at the end; run as ``nobody`` when we are root (postgres refuses to run as root)."""
    pytest.importorskip("psycopg", reason='psycopg is not installed (pip install "irlhf[postgres]"): '
                        "PostgreSQL tests skipped")
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl; apt-get install postgresql): PostgreSQL tests "
                    "skipped")
    root = tempfile.mkdtemp(prefix="irlhf-pg-")
    switch: str | None = None  # runuser or su, to run initdb / pg_ctl as nobody when we are root
    if os.geteuid() == 0:  # postgres refuses to run as root
        import pwd

        switch = shutil.which("runuser") or shutil.which("su")
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            nobody = None
        if switch is None or nobody is None:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip("running as root without runuser/su or a 'nobody' user: cannot start PostgreSQL")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
    data = os.path.join(root, "data")
    port = _free_port()

    def run(args: list[str]) -> None:
        if switch is not None and os.path.basename(switch) == "runuser":
            args = [switch, "-u", "nobody", "--", *args]
        elif switch is not None:  # su takes one shell command line
            args = [switch, "-s", "/bin/sh", "nobody", "-c", shlex.join(args)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=root)
        if done.returncode != 0:
            raise RuntimeError(f"{args} failed ({done.returncode}): {done.stderr.strip()[-800:]}")

    options = (f"-k {root} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off -c max_connections=300 -c shared_buffers=16MB")
    try:
        run([initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        run([pg_ctl, "-D", data, "-l", os.path.join(root, "log"), "-o", options, "-w", "-t", "30", "start"])
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {str(exc).splitlines()[0][:400]}")
    server = PostgresServer(port)
    try:
        server.admin("CREATE DATABASE irlhf_test")
        yield server
    finally:
        with contextlib.suppress(Exception):
            run([pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def new_store_target(request: pytest.FixtureRequest, tmp_path: Any) -> Callable[[], Any]:
    """Factory of fresh, empty label store targets of one backend: ``tmp_path / "<n>.db"`` or a postgresql:// URL."""
    if request.param == "sqlite":
        counter = iter(range(10**6))
        return lambda: tmp_path / f"store{next(counter)}.db"
    server = request.getfixturevalue("postgres_server")
    return server.new_schema_url
