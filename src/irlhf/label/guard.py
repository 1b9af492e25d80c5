"""The labelling server's request guard: which Host and Origin name this server (DNS rebinding), what a POST
must carry (JSON, CSRF double-submit, bounded size and nesting), the access token's exchange for a cookie, and
the security headers of every response. ``irlhf.label.app`` builds its routes on these; see its docstring for
the rules as a client sees them.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
from typing import Any, Awaitable, Callable, Iterable, MutableMapping
from urllib.parse import unquote, urlsplit

import numpy as np
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import MutableHeaders

from irlhf.core.errors import ValidationError, describe
from irlhf.label.kinds import ANNOTATOR_RE, MEDIA_ID_RE, QUERY_ID_RE
from irlhf.label.pages import continue_html

CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self'; script-src 'self'; "
    "style-src 'self'; object-src 'none'; frame-ancestors 'none'"
)
CSRF_COOKIE = "irlhf_csrf"
TOKEN_COOKIE = "irlhf_token"
CSRF_HEADER = "x-csrf-token"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")  # Host names a loopback server always answers to
MAX_JSON_DEPTH = 16  # a label body nests 4 deep; json.loads recurses once per level

CSRF_VALUE_RE = re.compile(r"[A-Za-z0-9_\-]{43}")
TOKEN_RE = re.compile(r"[A-Za-z0-9_.~\-]{1,256}")
_HOST_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_\-.]+)(?::([0-9]{1,5}))?")
# A JSON string, or an unterminated one up to the end: always matching keeps re.sub linear on hostile input.
_JSON_STRING_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_OPENING = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSING = np.frombuffer(b"]}", dtype=np.uint8)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]




def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """JSON error body ``{"error": message}`` with the given status code (and extra headers)."""
    return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store",
                                                                         **(headers or {})})


def _same(a: str, b: str) -> bool:
    """Constant-time string comparison (hmac.compare_digest on UTF-8 bytes)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# -- which Host and Origin values name this server (DNS rebinding: a hostile name that resolves to us)


def _split_host(value: str, default_port: int) -> tuple[str, int] | None:
    """(lower-cased name, port) of a Host header or URL authority, None when it is not ``name[:port]``."""
    match = _HOST_RE.fullmatch(value)
    if match is None:
        return None
    return match.group(1).lower(), int(match.group(2)) if match.group(2) else default_port


def _allowed_entry(entry: Any) -> tuple[str, int | None]:
    """(name, port or None = the listening port) of an ``allowed_hosts`` entry, else ValidationError."""
    if isinstance(entry, str) and entry.count(":") > 1 and not entry.startswith("["):
        entry = f"[{entry}]"  # a bare IPv6 address, as a Host header writes it
    parsed = _split_host(entry, 0) if isinstance(entry, str) else None
    if parsed is None or parsed[1] > 65535:
        raise ValidationError(f"allowed_hosts entry {describe(entry)} is not valid: expected a host name or IP "
                              "address, optionally with :PORT (e.g. 'labels.example.org' or 'localhost:9000')")
    return parsed[0], parsed[1] or None


def _default_port(scheme: str) -> int:
    """The port a URL of ``scheme`` means when it names none."""
    return 443 if scheme in ("https", "wss") else 80


class HostPolicy:
    """The Host values this server answers to: the loopback names, ``allowed_hosts`` and the IP address a
    connection arrived at, each at the port the server listens on (read per request from the ASGI scope, so
    an app made before a port-0 bind follows the port actually bound) unless an entry names its own port."""

    def __init__(self, allowed_hosts: Iterable[str]) -> None:
        given = [(name, None) for name in LOOPBACK_HOSTS] + [_allowed_entry(e) for e in allowed_hosts]
        self.entries = list(dict.fromkeys(given))  # serve() passes its --host, often a loopback name already

    def _entries(self, scope: Scope) -> list[tuple[str, int | None]]:
        """The configured entries plus the local IP address of this connection (an IP literal cannot rebind)."""
        server = scope.get("server")
        local = _ip_literal(str(server[0])) if server else None
        extra = [(local, None)] if local is not None and (local, None) not in self.entries else []
        return self.entries + extra

    def allows(self, authority: str, scheme: str, scope: Scope) -> bool:
        """True when ``authority`` (``name[:port]``) names this server for a request of ``scope``."""
        parsed = _split_host(authority, _default_port(scheme))
        server = scope.get("server")
        listening = int(server[1]) if server and server[1] is not None else None
        return parsed is not None and any(
            parsed[0] == name and (parsed[1] == port if port is not None else listening in (None, parsed[1]))
            for name, port in self._entries(scope))

    def expected(self, scope: Scope) -> list[str]:
        """The allowed ``name:port`` values, for error messages."""
        server = scope.get("server")
        listening = server[1] if server else "PORT"
        return [f"{name}:{port if port is not None else listening}" for name, port in self._entries(scope)]


def _ip_literal(host: str) -> str | None:
    """``host`` as a Host header writes an IP address (IPv6 in brackets), or None when it is not one."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return f"[{address}]" if address.version == 6 else str(address)


# -- what a request may carry: checked here, once, for every endpoint (the store checks label values)


class Refused(Exception):
    """A request answered with ``{"error": message}`` and ``status`` (the app's exception handler)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_annotator(name: Any) -> str:
    """``name`` without surrounding blanks if it is a valid annotator name, else Refused (400 blank, 422 bad)."""
    if isinstance(name, str) and not name.strip():
        raise Refused(400, f"annotator {describe(name)} is blank: expected a name with at least one letter, "
                            "digit, '_', '.' or '-'")
    if not isinstance(name, str) or not ANNOTATOR_RE.fullmatch(name.strip()):
        raise Refused(422, f"annotator {describe(name)} is not a valid name: expected 1 to 40 characters "
                            "from letters, digits, space, '_', '.', '-'")
    return name.strip()


def check_media_id(media_id: str) -> str:
    """``media_id`` if it is 32 lowercase hex, else Refused (404)."""
    if not MEDIA_ID_RE.fullmatch(media_id):
        raise Refused(404, f"media id {describe(media_id)} not found: expected 32 lowercase hex")
    return media_id


def _reject_constant(name: str) -> Any:
    """``json.loads`` hook: NaN / Infinity are not JSON, refuse them."""
    raise ValueError(f"{name} is not allowed in JSON")


def _nests_too_deep(data: bytes) -> bool:
    """True when ``[ ]`` and ``{ }`` nest deeper than MAX_JSON_DEPTH outside strings (vectorised: a 1 MB body is
    counted in milliseconds)."""
    if data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH:  # the usual label body: skip the scan
        return False
    codes = np.frombuffer(_JSON_STRING_RE.sub(b"", data), dtype=np.uint8)
    steps = np.isin(codes, _OPENING).astype(np.int64) - np.isin(codes, _CLOSING)
    return int(np.cumsum(steps).max(initial=0)) > MAX_JSON_DEPTH


def json_object(data: bytes, fields: tuple[str, ...]) -> dict[str, Any]:
    """The JSON object of a POST body holding ``fields``, else Refused (400 / 422); depth checked first."""
    if _nests_too_deep(data):
        raise Refused(400, f"request body nests [ ] / {{ }} deeper than {MAX_JSON_DEPTH} levels: expected a "
                            "flat JSON object")
    try:
        body = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Refused(400, f"request body must be a JSON object, got {describe(body)}")
    missing = [k for k in fields if k not in body]
    if missing:
        raise Refused(422, f"request body is missing {', '.join(missing)}: expected {', '.join(fields)}")
    return body


def label_body(body: dict[str, Any]) -> tuple[str, str, Any]:
    """(query_id, annotator, value) of a ``POST /api/label`` body, else Refused (422 / 404)."""
    annotator = check_annotator(body["annotator"])
    query_id = body["query_id"]
    if not isinstance(query_id, str) or not QUERY_ID_RE.fullmatch(query_id):
        raise Refused(404, f"query_id {describe(query_id)}: no such query")
    return query_id, annotator, body["value"]



def _origin_allowed(origin: str, scope: Scope, hosts: HostPolicy) -> bool:
    """True when ``origin`` (``scheme://name[:port]``) is this server as the request's scheme reaches it."""
    try:
        parts = urlsplit(origin)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return (parts.scheme == scope.get("scheme") and not (parts.path or parts.query or parts.fragment)
            and "@" not in parts.netloc and hosts.allows(parts.netloc, parts.scheme, scope))


def check_post(request: Request, hosts: HostPolicy) -> None:
    """A POST that this server's own page sent, else Refused: Origin and CSRF (403), JSON content type (415)."""
    origin = request.headers.get("origin")
    if origin is not None and not _origin_allowed(origin, request.scope, hosts):
        expected = ", ".join(f"{request.url.scheme}://{host}" for host in hosts.expected(request.scope))
        raise Refused(403, f"Origin {describe(origin)} is not this server: expected one of {expected}")
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise Refused(403, "cross-site request refused")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not header or not _same(cookie, header):
        raise Refused(403, "missing or wrong X-CSRF-Token header: reload the labelling page")
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        # A cross-site form or "simple" fetch cannot send application/json without a CORS preflight.
        raise Refused(415, f"Content-Type {describe(content_type)} is not accepted: expected application/json")


async def read_body(request: Request, max_body: int) -> bytes:
    """The request body, at most ``max_body`` bytes by Content-Length and by streamed size, else Refused."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise Refused(400, f"Content-Length {describe(length)} is not a number")
        if int(length) > max_body:
            raise Refused(413, f"request body of {int(length)} bytes is over the limit of {max_body}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:  # chunked or lying Content-Length: stop reading at the limit
            raise Refused(413, f"request body is over the limit of {max_body} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _without_token(scope: Scope) -> str:
    """The request's path and query without its ``token`` parameter: where the token exchange redirects."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8")
    path = "/" + raw.decode("latin-1").lstrip("/\\")  # one leading slash: "//host" or "/\\host" leaves the site
    query = scope.get("query_string", b"").decode("latin-1")
    kept = [part for part in query.split("&") if part and unquote(part.split("=", 1)[0]) != "token"]
    return path + ("?" + "&".join(kept) if kept else "")


def _token_exchange(scope: Scope, request: Request, url_token: bool) -> Response:
    """The answer to a GET with ``?token=``: a 303 redirect to the same URL without it (the middleware adds the
    cookie). A navigation that another site started (a link in a web mail) stays cross-site through redirects,
    so the SameSite=Strict cookie would not come along: there this server's own page moves on instead."""
    location = _without_token(scope)
    if url_token and request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        return HTMLResponse(continue_html(location))
    return RedirectResponse(location, status_code=303)


class SecurityMiddleware:
    """Pure ASGI middleware: Host allow-list (421), token gate (401, and the URL token's exchange for a
    cookie), and security headers on every HTTP response."""

    def __init__(self, app: ASGIApp, hosts: HostPolicy, token: str | None) -> None:
        """Wrap ``app``; ``token`` None turns the token gate off."""
        self.app = app
        self.hosts = hosts
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the Host and the token, then run the app adding headers to its response start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        host = request.headers.get("host", "")
        if not self.hosts.allows(host, scope["scheme"], scope):
            expected = ", ".join(self.hosts.expected(scope))
            message = f"Host {describe(host)} is not this server: expected one of {expected}"
            await self._send_own(error_response(421, message), scope, receive, send, False)
            return
        given = request.query_params.get("token") if self.token is not None else None
        url_token = given is not None and _same(given, self.token or "")
        if self.token is not None:
            cookie = request.cookies.get(TOKEN_COOKIE)
            if not (url_token or (cookie is not None and _same(cookie, self.token))):
                response = error_response(401, "missing or wrong token: open the URL that `serve` printed (it ends in "
                                       "?token=...)")
                await self._send_own(response, scope, receive, send, False)
                return
        if given is not None and scope["method"] in ("GET", "HEAD"):
            # Keep the token out of the address bar, history and logs: a cookie carries it from now on.
            await self._send_own(_token_exchange(scope, request, url_token), scope, receive, send, url_token)
            return

        async def send_wrapper(message: Message) -> None:
            """Add the security headers (and the token cookie) to the response start."""
            if message["type"] == "http.response.start":
                self._add_headers(MutableHeaders(scope=message), url_token)
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def _send_own(self, response: Response, scope: Scope, receive: Receive, send: Send,
                        set_cookie: bool) -> None:
        """Send a response produced by the middleware itself, with the security headers."""

        async def send_wrapper(message: Message) -> None:
            """Add the security headers to the response start."""
            if message["type"] == "http.response.start":
                self._add_headers(MutableHeaders(scope=message), set_cookie)
            await send(message)

        await response(scope, receive, send_wrapper)

    def _add_headers(self, headers: MutableHeaders, set_token_cookie: bool) -> None:
        """Security headers for every response; CSP and frame denial apply to HTML and everything else."""
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Content-Security-Policy", CSP)
        # No Referer: a URL must never carry anything to the sites it links to.
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cache-Control", "no-store")
        if set_token_cookie and self.token is not None:
            headers.append(
                "Set-Cookie", f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
            )
