"""Fixtures for the labelling app's tests: a headless system chromium (Playwright) and a live uvicorn server.

    def test_page(browser, live_server):
        url = live_server(app)            # http://127.0.0.1:<free port>
        page = browser.new_page(); page.goto(url + "/")

``rebinding_browser`` is a second chromium in which evil.example resolves to 127.0.0.1 (a DNS rebinding attack).

Browser tests skip (with the reason) when playwright is not installed or there is no chromium binary;
Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
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
