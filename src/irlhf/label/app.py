"""The labelling web app: a FastAPI app over a :class:`~irlhf.label.store.LabelStore` (run it with
``irlhf.label.server.serve`` or ``start_server``).

``create_app`` builds a FastAPI app with these routes:

* ``GET /``                      a form asking for the annotator name (goes to ``/label?annotator=NAME``)
* ``GET /label?annotator=NAME``  the labelling page (plain HTML; JS and CSS under ``/static/``)
* ``POST /api/next``             ``{"annotator"}`` -> the next query for this annotator (leased to them) and the
  progress counts
* ``POST /api/label``            ``{"query_id", "annotator", "value"}`` -> ``{"stored": true|false}``
* ``GET /api/stats``             ``store.stats`` for the served session
* ``GET /media/{media_id}``      media bytes from the store (SQLite; never the file system)

No GET changes state. Security: every request's ``Host`` must name this server (127.0.0.1, localhost or
[::1] at the port it listens on, or an ``allowed_hosts`` entry), else 421, so a DNS-rebound name reaches
nothing. Every POST needs a JSON body (415), the ``X-CSRF-Token`` header equal to the ``irlhf_csrf`` cookie
set by ``GET /label`` (double-submit, SameSite=Strict), and a present ``Origin`` among the allowed hosts;
bodies are bounded in size (413) and nesting depth (400). With ``token`` set every request needs the
``irlhf_token`` cookie; a GET with ``?token=...`` gets it on a 303 redirect to the same URL without the
token, else 401. HTML responses carry a strict Content-Security-Policy (no inline scripts) and
``X-Frame-Options: DENY``.
"""

from __future__ import annotations

import secrets
import threading
from importlib import resources
from typing import Any, Iterable

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from irlhf.core.errors import ValidationError, describe
from irlhf.label.guard import (CSP, CSRF_COOKIE, CSRF_VALUE_RE, LOOPBACK_HOSTS, MAX_JSON_DEPTH, TOKEN_COOKIE, TOKEN_RE,
                               HostPolicy, Refused, SecurityMiddleware, check_annotator, check_media_id, check_post,
                               error_response, json_object, label_body, read_body)
from irlhf.label.kinds import MEDIA_FIELDS, MIME_TYPES, SESSION_RE
from irlhf.label.pages import index_html, label_html
from irlhf.label.store import LabelError, LabelStore, UnknownMediaError, UnknownQueryError

__all__ = ["create_app", "CSP", "CSRF_COOKIE", "TOKEN_COOKIE", "LOOPBACK_HOSTS", "MAX_JSON_DEPTH"]

_STATIC_FILES = {
    "label.js": "text/javascript; charset=utf-8",
    "label.css": "text/css; charset=utf-8",
}


def _load_static() -> dict[str, bytes]:
    """The page's JS and CSS, read once from the package data (``irlhf/label/static``)."""
    base = resources.files("irlhf.label").joinpath("static")
    return {name: base.joinpath(name).read_bytes() for name in _STATIC_FILES}


def create_app(
    store: LabelStore,
    *,
    session: str | None = None,
    token: str | None = None,
    max_body: int = 1_000_000,
    title: str = "irlhf label",
    allowed_hosts: Iterable[str] = (),
) -> FastAPI:
    """The labelling web app over ``store``.

    Args:
        store: where queries, labels and media live (shared with the code that adds queries).
        session: serve only this session's queries (None: all sessions).
        token: when set, every request needs ``?token=<token>`` once (exchanged for an HttpOnly cookie on a
            redirect that drops it from the URL), else 401.
        max_body: largest accepted POST body in bytes (413 above it, by Content-Length or streamed size).
        title: shown in the page header and the window title (HTML-escaped).
        allowed_hosts: Host names the server answers to besides 127.0.0.1, localhost, [::1] and the IP
            address a connection arrives at: ``name`` (at the listening port) or ``name:port`` (a reverse
            proxy, an SSH tunnel from another port). Any other Host gets 421.
    """
    if not isinstance(store, LabelStore):
        raise ValidationError(f"store: expected a LabelStore, got {describe(store)}")
    if session is not None and (not isinstance(session, str) or not SESSION_RE.fullmatch(session)):
        raise ValidationError(
            f"session {describe(session)} is not valid: expected None or 1 to 64 characters from "
            "letters, digits, '_', '.', '-'"
        )
    if token is not None and (not isinstance(token, str) or not TOKEN_RE.fullmatch(token)):
        raise ValidationError(
            f"token {describe(token)} is not valid: expected None or 1 to 256 characters from "
            "letters, digits, '_', '.', '~', '-' (e.g. secrets.token_urlsafe(24))"
        )
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
        raise ValidationError(f"max_body {describe(max_body)} is not valid: expected an int >= 1 (bytes)")
    if not isinstance(title, str) or not title or len(title) > 200:
        raise ValidationError(f"title {describe(title)} is not valid: expected a str of 1 to 200 characters")
    if isinstance(allowed_hosts, (str, bytes)):
        raise ValidationError(f"allowed_hosts {describe(allowed_hosts)} is not valid: expected a list of host names")
    hosts = HostPolicy(allowed_hosts)

    static = _load_static()
    mime_cache: dict[str, str] = {}
    mime_lock = threading.Lock()

    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SecurityMiddleware, hosts=hosts, token=token)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Framework errors (unknown route, wrong method) as ``{"error": ...}`` like ours."""
        allow = (exc.headers or {}).get("Allow")
        if exc.status_code == 405 and allow:
            message = f"{request.method} {request.url.path} is not allowed: expected {allow}"
            return error_response(405, message, {"Allow": allow})
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> JSONResponse:
        """A request that failed the checks above, as ``{"error": ...}`` with its status."""
        return error_response(exc.status, str(exc))

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
        # counters the store keeps on every write: every open tab polls this, so it must not scan the labels
        counts = store.progress(annotator, session=session)
        return {"done_by_you": counts["n_labels"], "total": counts["n_queries"], "pending": counts["pending"]}

    def next_for(annotator: str) -> dict[str, Any]:
        """Body of ``POST /api/next``: the query with media URLs (meta left out) and the progress."""
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
            return error_response(404, str(exc))
        except LabelError as exc:
            return error_response(422, str(exc))
        return JSONResponse({"stored": bool(stored)}, headers={"Cache-Control": "no-store"})

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        """Start page asking for the annotator name."""
        return HTMLResponse(index_html(title))

    @app.get("/label", response_model=None)
    def label_page(request: Request) -> Response:
        """The labelling page; sets the CSRF cookie and echoes it in a meta tag."""
        given = request.query_params.get("annotator")
        if given is None or given == "":
            return RedirectResponse("/", status_code=303)
        try:
            annotator = check_annotator(given)
        except Refused as refused:
            return HTMLResponse(index_html(title, str(refused), given[:40]), status_code=refused.status)
        csrf = request.cookies.get(CSRF_COOKIE, "")
        if not CSRF_VALUE_RE.fullmatch(csrf):
            csrf = secrets.token_urlsafe(32)  # reuse a valid cookie so several open tabs keep working
        response = HTMLResponse(label_html(title, annotator, csrf))
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/")
        return response

    @app.get("/static/{name}")
    def static_file(name: str) -> Response:
        """The page's JS/CSS from package data (a fixed whitelist: no file-system paths)."""
        if name not in static:
            return error_response(404, f"static file {describe(name)} not found")
        return Response(
            static[name], media_type=_STATIC_FILES[name], headers={"Cache-Control": "no-cache"}
        )

    @app.get("/favicon.ico")
    def favicon() -> Response:
        """No icon: an empty answer keeps browsers from logging a 404 on every page."""
        return Response(status_code=204)

    async def posted(request: Request, fields: tuple[str, ...]) -> dict[str, Any]:
        """The JSON object of a POST from this server's own page, holding ``fields``; else Refused."""
        check_post(request, hosts)
        return json_object(await read_body(request, max_body), fields)

    @app.post("/api/next")
    async def api_next(request: Request) -> JSONResponse:
        """The next query for ``{"annotator"}``, leased to them (``{"query": null}`` when none is open).

        A POST, not a GET: leasing changes state, and a cross-site ``<img src>`` must not lease anything."""
        annotator = check_annotator((await posted(request, ("annotator",)))["annotator"])
        body = await run_in_threadpool(next_for, annotator)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @app.get("/api/stats")
    def api_stats() -> JSONResponse:
        """``store.stats`` for the served session."""
        return JSONResponse(store.stats(session=session), headers={"Cache-Control": "no-store"})

    @app.get("/media/{media_id}")
    def media(media_id: str) -> Response:
        """Media bytes from the store with their MIME type; 404 for malformed or unknown ids."""
        try:
            data, mime = store.media(check_media_id(media_id))
        except UnknownMediaError:
            return error_response(404, f"media id {describe(media_id)} not found")
        return Response(
            data,
            media_type=mime if mime in MIME_TYPES else "application/octet-stream",
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    @app.post("/api/label")
    async def api_label(request: Request) -> JSONResponse:
        """Store one label: Origin, CSRF and content-type checks, size and depth limits, then the store."""
        query_id, annotator, value = label_body(await posted(request, ("query_id", "annotator", "value")))
        return await run_in_threadpool(label_one, query_id, annotator, value)

    return app
