"""Run the labelling web app (``irlhf.label.app.create_app``) with uvicorn: ``serve`` blocks, ``start_server``
serves from a background thread for a training loop that waits on people.

Both refuse a non-loopback host unless ``allow_remote=True`` (anyone who can reach the port could label; set a
``token`` then), bind the port themselves (so port 0 prints the port really bound) and let the app answer only
to the Host names of that address. ``create_app`` and the security constants are re-exported here.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import time
import webbrowser
from typing import Any
from urllib.parse import quote

from irlhf.core.errors import ValidationError, describe
from irlhf.label.app import CSP, CSRF_COOKIE, TOKEN_COOKIE, create_app
from irlhf.label.store import LabelStore

__all__ = ["create_app", "serve", "start_server", "serve_url", "is_loopback", "RunningServer", "CSP", "CSRF_COOKIE",
           "TOKEN_COOKIE"]

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_WILDCARDS = ("0.0.0.0", "::", "[::]")


def is_loopback(host: str) -> bool:
    """True for localhost names and loopback IP addresses (127.0.0.0/8, ::1)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_address(host: Any, port: Any, allow_remote: bool) -> None:
    """Refuse a bad host or port, and a non-loopback host unless ``allow_remote``."""
    if not isinstance(host, str) or not host:
        raise ValidationError(f"host {describe(host)} is not valid: expected a host name or IP address")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValidationError(f"port {describe(port)} is not valid: expected an int in 0..65535 (0 = a free port)")
    if not is_loopback(host) and not allow_remote:
        raise ValidationError(
            f"host {host!r} is not loopback: anyone on the network could open the page and label. "
            "Serve on 127.0.0.1 (and use an SSH tunnel), or pass allow_remote=True (--allow-remote) "
            "and set a token (--token) so only people with the URL can label"
        )


def _allowed_hosts(host: str) -> list[str]:
    """The Host names a server bound to ``host`` answers to besides the loopback names: the host given, or for a
    wildcard address the machine's name (connections by IP address are allowed by the app itself)."""
    return [socket.gethostname()] if host in _WILDCARDS else [host]


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), port 0 = a free one; ValidationError when it cannot listen there."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets it sees as TCP (else a ~40 ms stall per poll)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except OSError as err:
        sock.close()
        raise ValidationError(f"port {port} on {host}: cannot listen ({err}); expected a free port (or 0)") from None
    return sock


def _shown_host(host: str) -> str:
    """The host to put in the printed URL: loopback for a wildcard address."""
    return "127.0.0.1" if host in _WILDCARDS else host


def serve_url(host: str, port: int, token: str | None = None) -> str:
    """The URL to open in a browser (with ``?token=`` when a token is set)."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    url = f"http://{shown}:{port}/"
    return url + (f"?token={quote(token, safe='')}" if token is not None else "")


def serve(
    store: LabelStore,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    session: str | None = None,
    token: str | None = None,
    open_browser: bool = False,
    allow_remote: bool = False,
    title: str = "irlhf label",
    max_body: int = 1_000_000,
) -> None:
    """Run the labelling app with uvicorn until interrupted; prints the URL to open (with the port bound).

    A host other than loopback is refused unless ``allow_remote=True`` (anyone who can reach the port
    could label; set a ``token`` then). Blocks until the server stops.
    """
    _check_address(host, port, allow_remote)
    import uvicorn  # optional (the `label` extra) and only serving needs it

    app = create_app(store, session=session, token=token, max_body=max_body, title=title,
                     allowed_hosts=_allowed_hosts(host))
    sock = _bind(host, port)
    bound = int(sock.getsockname()[1])
    if not is_loopback(host) and token is None:
        print(
            f"warning: serving on {host} without a token: anyone who can reach port {bound} can label",
            file=sys.stderr,
            flush=True,
        )
    url = serve_url(_shown_host(host), bound, token)
    print(f"irlhf label: open {url}", flush=True)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()  # the socket listens once uvicorn runs
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()


class RunningServer:
    """A labelling server running in a daemon thread (``start_server``); ``stop()`` or ``with`` ends it.

    url: the page to open (``http://host:port/``, with ``?token=`` when a token is set); host, port: where it
    listens.
    """

    def __init__(self, server: Any, thread: threading.Thread, sock: Any, host: str, port: int, url: str) -> None:
        self._server, self._thread, self._sock = server, thread, sock
        self.host, self.port, self.url = host, port, url

    @property
    def running(self) -> bool:
        """True while the server thread is alive."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit, wait up to ``timeout`` seconds for the thread, and release the port."""
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()  # uvicorn closes its server; closing the listening socket too frees the port at once

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningServer(url={self.url!r}, running={self.running})"


def start_server(
    store: LabelStore,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    session: str | None = None,
    token: str | None = None,
    title: str = "irlhf label",
    max_body: int = 1_000_000,
    allow_remote: bool = False,
    startup_timeout: float = 20.0,
) -> RunningServer:
    """Serve the labelling app in a background (daemon) thread, for a training loop that waits on people.

    port=0 picks a free port (the socket is bound here, so ``.url`` is final when this returns). Returns once
    the server accepts connections (at most ``startup_timeout`` seconds, else ValidationError).
    A non-loopback host is refused unless ``allow_remote=True``, as in ``serve``.
    """
    _check_address(host, port, allow_remote)
    import uvicorn  # optional (the `label` extra) and only serving needs it

    app = create_app(store, session=session, token=token, max_body=max_body, title=title,
                     allowed_hosts=_allowed_hosts(host))
    sock = _bind(host, port)
    bound = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    # uvicorn skips installing signal handlers off the main thread, so Ctrl-C still reaches the training loop
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"irlhf-label-{bound}",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5.0)
            sock.close()
            raise ValidationError(f"label server on {host}:{bound} did not start within {startup_timeout:g} s; "
                                  "expected a free loopback port")
        time.sleep(0.01)
    return RunningServer(server, thread, sock, host, bound, serve_url(_shown_host(host), bound, token))
