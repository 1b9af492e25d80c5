"""A minimal HTML report: sections of paragraphs, tables, code blocks and images, written atomically.

    report = Report("irlhf demo")
    report.section("Expert").text("Soft value iteration ...").table([["return", 4.1]], header=["metric", "value"])
    report.image("heatmaps.png", caption="reward and occupancy")   # path relative to the run directory
    report.write(run)                                                # -> <run>/report.html

Every piece of text is HTML-escaped; images are referenced by relative path (so the run directory
can be moved or zipped as a whole) and must exist when the report is written. The report of a run whose
``run.json`` says it was interrupted or failed opens with a banner saying so (``irlhf.core.rundir``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import html
import math
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from irlhf.core.errors import ValidationError
from irlhf.core.io import atomic_write_text
from irlhf.core.rundir import FAILED, INTERRUPTED, read_status

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 70rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; }
.meta { color: #666; font-size: 0.9rem; margin-top: 0; }
nav ol { padding-left: 1.4rem; }
section { margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.95rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.7rem; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9rem; }
pre { background: #f6f6f6; padding: 0.6rem 0.8rem; overflow-x: auto; }
.unfinished { background: #fff3cd; border: 1px solid #e0b84c; padding: 0.6rem 0.8rem; font-weight: 600; }
""".strip()


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _unwrap(value: Any) -> Any:
    """numpy scalars (np.float64(1.5), np.int64(3)) to Python scalars; anything else unchanged."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def _is_number(value: Any) -> bool:
    value = _unwrap(value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def unfinished_banner(status: dict[str, Any]) -> str:
    """The warning that opens the report of an interrupted or failed run (``run.json``); "" otherwise."""
    if status.get("status") not in (INTERRUPTED, FAILED):
        return ""
    where = f" during step {status['step']!r}" if status.get("step") else ""
    error = f" ({status['error']})" if status.get("error") else ""
    return (f'<p class="unfinished">This run did not finish: {_esc(status["status"])}{_esc(where)}{_esc(error)}. '
            "The report shows only what was done before it stopped.</p>")


def format_value(value: Any) -> str:
    """Plain-text form of a table cell: floats to 4 significant digits, numpy scalars unwrapped."""
    value = _unwrap(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


@dataclasses.dataclass
class Section:
    heading: str | None
    blocks: list[str] = dataclasses.field(default_factory=list)  # HTML fragments, already escaped
    images: list[str] = dataclasses.field(default_factory=list)  # relative paths, checked at write time


class Report:
    """An HTML report built section by section; content methods return ``self`` for chaining."""

    def __init__(self, title: str):
        self.title = str(title)
        self.sections: list[Section] = []

    # ------------------------------------------------------------------ building

    def section(self, heading: str) -> "Report":
        """Start a new section; following content goes into it."""
        self.sections.append(Section(str(heading)))
        return self

    def _current(self) -> Section:
        if not self.sections:  # content before any heading: an untitled introduction
            self.sections.append(Section(None))
        return self.sections[-1]

    def text(self, text: str) -> "Report":
        """Paragraph(s) of plain text; blank lines separate paragraphs."""
        for paragraph in str(text).split("\n\n"):
            if paragraph.strip():
                self._current().blocks.append(f"<p>{_esc(paragraph.strip())}</p>")
        return self

    def code(self, text: str) -> "Report":
        """A preformatted block (commands, logs)."""
        self._current().blocks.append(f"<pre><code>{_esc(text)}</code></pre>")
        return self

    def table(self, rows: Sequence[Sequence[Any]], header: Sequence[Any] | None = None) -> "Report":
        """A table; numbers are right-aligned and floats shown to 4 significant digits."""
        rows = [list(row) for row in rows]
        width = len(header) if header is not None else (len(rows[0]) if rows else 0)
        for k, row in enumerate(rows):
            if len(row) != width:
                raise ValidationError(f"table: row {k} has {len(row)} cells; expected {width} like the header/first row")
        parts = ["<table>"]
        if header is not None:
            parts.append("<thead><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr></thead>")
        parts.append("<tbody>")
        for row in rows:
            cells = "".join(
                f'<td class="num">{_esc(format_value(v))}</td>' if _is_number(v) else f"<td>{_esc(format_value(v))}</td>"
                for v in row
            )
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</tbody></table>")
        self._current().blocks.append("".join(parts))
        return self

    def image(self, path: str | os.PathLike[str], caption: str = "") -> "Report":
        """An image file inside the run directory, given by a relative path (e.g. ``"heatmaps.png"``)."""
        rel = PurePosixPath(Path(path).as_posix())
        if rel.is_absolute() or Path(path).is_absolute() or ".." in rel.parts or str(rel) in ("", "."):
            raise ValidationError(f"image path={str(path)!r}: expected a path relative to the run directory, without '..'")
        src = _esc(quote(str(rel)))
        alt = _esc(caption or rel.name)
        figure = f'<figure><img src="{src}" alt="{alt}">'
        if caption:
            figure += f"<figcaption>{_esc(caption)}</figcaption>"
        section = self._current()
        section.blocks.append(figure + "</figure>")
        section.images.append(str(rel))
        return self

    # ------------------------------------------------------------------ output

    def to_html(self, status: dict[str, Any] | None = None) -> str:
        """The page; ``status`` (a run's ``run.json``) adds the unfinished-run banner where it applies."""
        stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        out = [
            "<!DOCTYPE html>",
            '<html lang="en">',
            '<head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_esc(self.title)}</title>",
            f"<style>\n{STYLE}\n</style></head>",
            "<body>",
            *filter(None, [unfinished_banner(status or {})]),
            f"<h1>{_esc(self.title)}</h1>",
            f'<p class="meta">generated {_esc(stamp)}</p>',
        ]
        titled = [(k, s) for k, s in enumerate(self.sections) if s.heading is not None]
        if len(titled) > 1:
            out.append("<nav><ol>" + "".join(f'<li><a href="#s{k}">{_esc(s.heading)}</a></li>' for k, s in titled) + "</ol></nav>")
        for k, s in enumerate(self.sections):
            out.append(f'<section id="s{k}">')
            if s.heading is not None:
                out.append(f"<h2>{_esc(s.heading)}</h2>")
            out.extend(s.blocks)
            out.append("</section>")
        out += ["</body>", "</html>", ""]
        return "\n".join(out)

    def finish(self, run_dir: Any, files: Sequence[str], summary: Sequence[str]) -> Path:
        """End a job's run directory: add a "Files" section listing ``files``, write ``report.html`` and
        ``summary.txt`` (one line per entry of ``summary``). Returns the report's path."""
        self.section("Files").table([[f] for f in files], header=["file"])
        target = self.write(run_dir)
        root = Path(getattr(run_dir, "path", run_dir))
        atomic_write_text(root / "summary.txt", "\n".join(summary) + "\n")
        return target

    def write(self, run_dir: Any, name: str = "report.html") -> Path:
        """Write ``<run_dir>/<name>`` atomically; ``run_dir`` is a ``RunDir`` or a directory path.

        Every image must already exist in the run directory (so the report never has broken links).
        """
        root = Path(getattr(run_dir, "path", run_dir))
        missing = [p for s in self.sections for p in s.images if not (root / p).is_file()]
        if missing:
            raise ValidationError(f"report images {missing}: not found in {str(root)!r}; save them before writing the report")
        target = root / name
        atomic_write_text(target, self.to_html(read_status(root)))
        return target
