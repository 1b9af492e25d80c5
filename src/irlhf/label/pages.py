"""The labelling server's HTML: the start form, the labelling page shell (``label.js`` fills it) and the
page that forwards a cross-site token link. Every value is HTML-escaped here; no inline script (the CSP)."""

from __future__ import annotations

import html

def page(title: str, body: str, head: str = "") -> str:
    """A complete HTML document; ``title`` is escaped here, ``body``/``head`` must be escaped already."""
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"{head}<title>{html.escape(title)}</title>\n"
        "<link rel=\"stylesheet\" href=\"/static/label.css\">\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def continue_html(location: str) -> str:
    """A page that sends the browser on to ``location`` itself (meta refresh: no script, so the CSP holds)."""
    url = html.escape(location)
    head = f'<meta http-equiv="refresh" content="0; url={url}">\n'
    body = f'<main class="start card"><p><a href="{url}">Continue to the labelling page</a></p></main>'
    return page("irlhf label", body, head)


def index_html(title: str, error: str | None = None, value: str = "") -> str:
    """The start page: a GET form asking for the annotator name."""
    err = f'<p class="error" role="alert">{html.escape(error)}</p>\n' if error else ""
    body = (
        f'<main class="start card">\n<h1>{html.escape(title)}</h1>\n{err}'
        '<form action="/label" method="get">\n'
        '<label for="annotator">Your name</label>\n'
        '<input id="annotator" name="annotator" required autofocus maxlength="40" '
        'pattern=" *[A-Za-z0-9_.\\-][A-Za-z0-9_. \\-]*" autocomplete="username" '
        f'value="{html.escape(value)}">\n'
        '<p class="hint">1 to 40 letters, digits, spaces, "_", "." or "-". Your labels are stored '
        "under this name.</p>\n"
        '<button type="submit" class="primary">Start labelling</button>\n</form>\n</main>'
    )
    return page(title, body)


def label_html(title: str, annotator: str, csrf: str) -> str:
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
    return page(title, body, head)
