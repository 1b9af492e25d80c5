"""The labelling web app: a FastAPI app over a :class:`~irlhf.label.store.LabelStore` (run it with
``irlhf.label.server.serve`` or ``start_server``).

``create_app`` builds a FastAPI app with these routes:

* ``GET /``                      a form asking for the annotator name (goes to ``/label?annotator=NAME``)
* ``GET /label?annotator=NAME``  the labelling page (plain HTML; JS and CSS under ``/static/``)
* ``GET /api/next?annotator=NAME``  the next query for this annotator and the progress counts
* ``POST /api/label``            ``{"query_id", "annotator", "value"}`` -> ``{"stored": true|false}``
* ``GET /api/stats``             ``store.stats`` for the served session
* ``GET /media/{media_id}``      media bytes from the store (SQLite; never the file system)

Security: every POST needs the ``X-CSRF-Token`` header equal to the ``irlhf_csrf`` cookie set by
``GET /label`` (double-submit, SameSite=Strict), and a present ``Origin`` must be the server's own.
With ``token`` set every request needs ``?token=...`` once (it then sets an HttpOnly cookie), else 401.
HTML responses carry a strict Content-Security-Policy (no inline scripts) and ``X-Frame-Options: DENY``.
"""

from __future__ import annotations

import hmac
import html
import json
import re
import secrets
import threading
from importlib import resources
from typing import Any, Awaitable, Callable, MutableMapping

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from irlhf.core.errors import ValidationError, describe
from irlhf.label.kinds import ANNOTATOR_RE, MEDIA_FIELDS, MEDIA_ID_RE, MIME_TYPES, QUERY_ID_RE, SESSION_RE
from irlhf.label.store import LabelError, LabelStore, UnknownMediaError, UnknownQueryError

__all__ = ["create_app", "CSP", "CSRF_COOKIE", "TOKEN_COOKIE"]

CSP = (
    "default-src 'self'; img-src 'self' data:; media-src 'self'; script-src 'self'; "
    "style-src 'self'; object-src 'none'; frame-ancestors 'none'"
)
CSRF_COOKIE = "irlhf_csrf"
TOKEN_COOKIE = "irlhf_token"
CSRF_HEADER = "x-csrf-token"

_CSRF_VALUE_RE = re.compile(r"[A-Za-z0-9_\-]{43}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_.~\-]{1,256}")
_STATIC_FILES = {
    "label.js": "text/javascript; charset=utf-8",
    "label.css": "text/css; charset=utf-8",
}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _error(status: int, message: str) -> JSONResponse:
    """JSON error body ``{"error": message}`` with the given status code."""
    return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store"})


def _same(a: str, b: str) -> bool:
    """Constant-time string comparison (hmac.compare_digest on UTF-8 bytes)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# -- what a request may carry: checked here, once, for every endpoint (the store checks label values)


class _Refused(Exception):
    """A request answered with ``{"error": message}`` and ``status`` (the app's exception handler)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _annotator_problem(name: Any) -> str | None:
    """The error message for a bad annotator name, or None when it is valid."""
    if not isinstance(name, str) or not ANNOTATOR_RE.fullmatch(name):
        return (
            f"annotator {describe(name)} is not a valid name: expected 1 to 40 characters "
            "from letters, digits, space, '_', '.', '-'"
        )
    return None


def _check_annotator(name: Any) -> str:
    """``name`` if it is a valid annotator name, else _Refused (422)."""
    problem = _annotator_problem(name)
    if problem is not None:
        raise _Refused(422, problem)
    return name


def _check_media_id(media_id: str) -> str:
    """``media_id`` if it is 32 lowercase hex, else _Refused (404)."""
    if not MEDIA_ID_RE.fullmatch(media_id):
        raise _Refused(404, f"media id {describe(media_id)} not found: expected 32 lowercase hex")
    return media_id


def _reject_constant(name: str) -> Any:
    """``json.loads`` hook: NaN / Infinity are not JSON, refuse them."""
    raise ValueError(f"{name} is not allowed in JSON")


def _label_body(data: bytes) -> tuple[str, str, Any]:
    """(query_id, annotator, value) of a ``POST /api/label`` body, else _Refused (400 / 422 / 404)."""
    try:
        body = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Refused(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _Refused(400, f"request body must be a JSON object, got {describe(body)}")
    missing = [k for k in ("query_id", "annotator", "value") if k not in body]
    if missing:
        raise _Refused(422, f"request body is missing {', '.join(missing)}: expected query_id, annotator, value")
    annotator = _check_annotator(body["annotator"])
    query_id = body["query_id"]
    if not isinstance(query_id, str) or not QUERY_ID_RE.fullmatch(query_id):
        raise _Refused(404, f"query_id {describe(query_id)}: no such query")
    return query_id, annotator, body["value"]


def _load_static() -> dict[str, bytes]:
    """The page's JS and CSS, read once from the package data (``irlhf/label/static``)."""
    base = resources.files("irlhf.label").joinpath("static")
    return {name: base.joinpath(name).read_bytes() for name in _STATIC_FILES}


class _SecurityMiddleware:
    """Pure ASGI middleware: token gate (401) and security headers on every HTTP response."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        """Wrap ``app``; ``token`` None turns the token gate off."""
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the token, then run the app adding headers to its response start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        set_token_cookie = False
        if self.token is not None:
            cookie = request.cookies.get(TOKEN_COOKIE)
            given = request.query_params.get("token")
            has_cookie = cookie is not None and _same(cookie, self.token)
            # First visit through the printed URL: remember the token in a cookie.
            set_token_cookie = not has_cookie and given is not None and _same(given, self.token)
            if not (has_cookie or set_token_cookie):
                response = _error(
                    401,
                    "missing or wrong token: open the URL that `serve` printed (it ends in ?token=...)",
                )
                await self._send_with_headers(response, scope, receive, send, False)
                return

        async def send_wrapper(message: Message) -> None:
            """Add the security headers (and the token cookie) to the response start."""
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                self._add_headers(headers, set_token_cookie)
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def _send_with_headers(
        self, response: Response, scope: Scope, receive: Receive, send: Send, set_cookie: bool
    ) -> None:
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
        # No Referer: the token may be in the page URL and must not leak to anything it links to.
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cache-Control", "no-store")
        if set_token_cookie and self.token is not None:
            headers.append(
                "Set-Cookie", f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
            )


def _page(title: str, body: str, head: str = "") -> str:
    """A complete HTML document; ``title`` is escaped here, ``body``/``head`` must be escaped already."""
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"{head}<title>{html.escape(title)}</title>\n"
        "<link rel=\"stylesheet\" href=\"/static/label.css\">\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _index_html(title: str, error: str | None = None, value: str = "") -> str:
    """The start page: a GET form asking for the annotator name."""
    err = f'<p class="error" role="alert">{html.escape(error)}</p>\n' if error else ""
    body = (
        f'<main class="start card">\n<h1>{html.escape(title)}</h1>\n{err}'
        '<form action="/label" method="get">\n'
        '<label for="annotator">Your name</label>\n'
        '<input id="annotator" name="annotator" required autofocus maxlength="40" '
        'pattern="[A-Za-z0-9_. \\-]{1,40}" autocomplete="username" '
        f'value="{html.escape(value)}">\n'
        '<p class="hint">1 to 40 letters, digits, spaces, "_", "." or "-". Your labels are stored '
        "under this name.</p>\n"
        '<button type="submit" class="primary">Start labelling</button>\n</form>\n</main>'
    )
    return _page(title, body)


def _label_html(title: str, annotator: str, csrf: str) -> str:
    """The labelling page shell; label.js fills ``#main`` from ``/api/next``."""
    head = (
        f'<meta name="csrf-token" content="{html.escape(csrf)}">\n'
        f'<meta name="annotator" content="{html.escape(annotator)}">\n'
        '<script src="/static/label.js" defer></script>\n'
    )
    body = (
        '<header class="top">\n'
        f'<h1>{html.escape(title)}</h1>\n'
        f'<div class="who">Labelling as <strong>{html.escape(annotator)}</strong> '
        '<a href="/">(change)</a></div>\n'
        '<div id="progress" class="progress" aria-live="polite"></div>\n'
        "</header>\n"
        '<div id="error" class="error" role="alert" hidden></div>\n'
        '<main id="main" class="card"><p class="status">Loading…</p></main>\n'
        '<footer id="help" class="help"></footer>'
    )
    return _page(title, body, head)


def create_app(
    store: LabelStore,
    *,
    session: str | None = None,
    token: str | None = None,
    max_body: int = 1_000_000,
    title: str = "irlhf label",
) -> FastAPI:
    """The labelling web app over ``store``.

    Args:
        store: where queries, labels and media live (shared with the code that adds queries).
        session: serve only this session's queries (None: all sessions).
        token: when set, every request needs ``?token=<token>`` once (then an HttpOnly cookie), else 401.
        max_body: largest accepted POST body in bytes (413 above it, by Content-Length or streamed size).
        title: shown in the page header and the window title (HTML-escaped).
    """
    if not isinstance(store, LabelStore):
        raise ValidationError(f"store: expected a LabelStore, got {describe(store)}")
    if session is not None and (not isinstance(session, str) or not SESSION_RE.fullmatch(session)):
        raise ValidationError(
            f"session {describe(session)} is not valid: expected None or 1 to 64 characters from "
            "letters, digits, '_', '.', '-'"
        )
    if token is not None and (not isinstance(token, str) or not _TOKEN_RE.fullmatch(token)):
        raise ValidationError(
            f"token {describe(token)} is not valid: expected None or 1 to 256 characters from "
            "letters, digits, '_', '.', '~', '-' (e.g. secrets.token_urlsafe(24))"
        )
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
        raise ValidationError(f"max_body {describe(max_body)} is not valid: expected an int >= 1 (bytes)")
    if not isinstance(title, str) or not title or len(title) > 200:
        raise ValidationError(f"title {describe(title)} is not valid: expected a str of 1 to 200 characters")

    static = _load_static()
    mime_cache: dict[str, str] = {}
    mime_lock = threading.Lock()

    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(_SecurityMiddleware, token=token)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Framework errors (unknown route, wrong method) as ``{"error": ...}`` like ours."""
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(_Refused)
    async def _refused(request: Request, exc: _Refused) -> JSONResponse:
        """A request that failed the checks above, as ``{"error": ...}`` with its status."""
        return _error(exc.status, str(exc))

    def media_type(media_id: str) -> str:
        """The MIME type of a media entry (cached: media are immutable once stored)."""
        with mime_lock:
            cached = mime_cache.get(media_id)
        if cached is not None:
            return cached
        _, mime = store.media(media_id)
        with mime_lock:
            if len(mime_cache) > 100_000:
                mime_cache.clear()  # bound memory on very long-running servers
            mime_cache[media_id] = mime
        return mime

    def progress(annotator: str) -> dict[str, int]:
        """Counts for the page header: labels by this annotator, queries in the session, still open."""
        stats = store.stats(session=session)
        return {
            "done_by_you": int(stats.get("per_annotator", {}).get(annotator, 0)),
            "total": int(stats.get("n_queries", 0)),
            "pending": int(stats.get("pending", 0)),
        }

    def next_for(annotator: str) -> dict[str, Any]:
        """Body of ``GET /api/next``: the query with media URLs (meta left out) and the progress."""
        query = store.next_query(annotator, session=session)
        if query is None:
            return {"query": None, "progress": progress(annotator)}
        payload = {k: v for k, v in query.payload.items() if k != "meta"}  # meta is for code, not people
        media_types: dict[str, str] = {}
        for field in MEDIA_FIELDS.get(query.kind, ()):
            media_id = payload.get(field)
            if isinstance(media_id, str):
                payload[field] = f"/media/{media_id}"
                media_types[field] = media_type(media_id)
        return {
            "query": {"id": query.id, "kind": query.kind, "payload": payload, "media_types": media_types},
            "progress": progress(annotator),
        }

    def label_one(query_id: str, annotator: str, value: Any) -> JSONResponse:
        """Store one label, mapping the store's errors to 404 / 422."""
        try:
            query = store.get_query(query_id)
            if session is not None and query.session != session:
                raise UnknownQueryError(f"query_id {describe(query_id)}: no such query in session {session!r}")
            stored = store.add_label(query_id, annotator, value)
        except UnknownQueryError as exc:
            return _error(404, str(exc))
        except LabelError as exc:
            return _error(422, str(exc))
        return JSONResponse({"stored": bool(stored)}, headers={"Cache-Control": "no-store"})

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        """Start page asking for the annotator name."""
        return HTMLResponse(_index_html(title))

    @app.get("/label", response_model=None)
    def label_page(request: Request) -> Response:
        """The labelling page; sets the CSRF cookie and echoes it in a meta tag."""
        annotator = request.query_params.get("annotator")
        if annotator is None or annotator == "":
            return RedirectResponse("/", status_code=303)
        problem = _annotator_problem(annotator)
        if problem is not None:
            return HTMLResponse(_index_html(title, problem, annotator[:40]), status_code=422)
        csrf = request.cookies.get(CSRF_COOKIE, "")
        if not _CSRF_VALUE_RE.fullmatch(csrf):
            csrf = secrets.token_urlsafe(32)  # reuse a valid cookie so several open tabs keep working
        response = HTMLResponse(_label_html(title, annotator, csrf))
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/")
        return response

    @app.get("/static/{name}")
    def static_file(name: str) -> Response:
        """The page's JS/CSS from package data (a fixed whitelist: no file-system paths)."""
        if name not in static:
            return _error(404, f"static file {describe(name)} not found")
        return Response(
            static[name], media_type=_STATIC_FILES[name], headers={"Cache-Control": "no-cache"}
        )

    @app.get("/favicon.ico")
    def favicon() -> Response:
        """No icon: an empty answer keeps browsers from logging a 404 on every page."""
        return Response(status_code=204)

    @app.get("/api/next")
    def api_next(annotator: str | None = None) -> JSONResponse:
        """The next query for ``annotator`` (``{"query": null}`` when none is open)."""
        return JSONResponse(next_for(_check_annotator(annotator)), headers={"Cache-Control": "no-store"})

    @app.get("/api/stats")
    def api_stats() -> JSONResponse:
        """``store.stats`` for the served session."""
        return JSONResponse(store.stats(session=session), headers={"Cache-Control": "no-store"})

    @app.get("/media/{media_id}")
    def media(media_id: str) -> Response:
        """Media bytes from the store with their MIME type; 404 for malformed or unknown ids."""
        try:
            data, mime = store.media(_check_media_id(media_id))
        except UnknownMediaError:
            return _error(404, f"media id {describe(media_id)} not found")
        return Response(
            data,
            media_type=mime if mime in MIME_TYPES else "application/octet-stream",
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    @app.post("/api/label")
    async def api_label(request: Request) -> JSONResponse:
        """Store one label: CSRF and Origin checks, body limit, JSON parse, then the store."""
        origin = request.headers.get("origin")
        if origin is not None:
            own = f"{request.url.scheme}://{request.headers.get('host', '')}"
            if not _same(origin.lower(), own.lower()):
                return _error(403, f"Origin {describe(origin)} is not this server ({own})")
        if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
            return _error(403, "cross-site request refused")
        cookie = request.cookies.get(CSRF_COOKIE, "")
        header = request.headers.get(CSRF_HEADER, "")
        if not cookie or not header or not _same(cookie, header):
            return _error(403, "missing or wrong X-CSRF-Token header: reload the labelling page")
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return _error(400, f"Content-Length {describe(length)} is not a number")
            if int(length) > max_body:
                return _error(413, f"request body of {int(length)} bytes is over the limit of {max_body}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:  # chunked or lying Content-Length: stop reading at the limit
                return _error(413, f"request body is over the limit of {max_body} bytes")
            chunks.append(chunk)
        query_id, annotator, value = _label_body(b"".join(chunks))
        return await run_in_threadpool(label_one, query_id, annotator, value)

    return app
