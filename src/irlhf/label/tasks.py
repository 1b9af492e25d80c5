"""Task files for the labelling page: JSONL queries to import into a label store, validated row by row.

One query per line (blank lines skipped):

    {"prompt": "...", "responses": ["...", "..."], "id": "optional"}              # text: rank 2..9 responses
    {"kind": "pair", "left": "a.gif", "right": "b.gif", "title": "optional"}      # which clip is better
    {"kind": "dagger", "frame": "s.png", "actions": ["left", "right"]}            # which action here

``read_task`` checks every row (keys, payload, media) and reads the media before anything is stored, so a bad
row raises one ``FILE:LINE: ...`` error and nothing is imported. Media paths are relative to the task file's
folder (.gif, .png, .jpg, .jpeg, .mp4; never outside it, and the content must carry the type's file
signature). Query ids come from the session, the file name and the row's "id" (else its line number), so
``import_task`` of the same file twice adds nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from irlhf.core.errors import IrlhfError, ValidationError, describe
from irlhf.label.store import LabelStore, check_payload, check_query_id

MEDIA_MIMES = {".gif": "image/gif", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".mp4": "video/mp4"}
ROW_FIELDS = {  # keys a task row may have, per kind (media fields hold paths relative to the task file)
    "text": ("kind", "id", "prompt", "responses", "meta"),
    "pair": ("kind", "id", "left", "right", "title", "meta"),
    "dagger": ("kind", "id", "frame", "actions", "title", "meta"),
}
MEDIA_FIELDS = {"text": (), "pair": ("left", "right"), "dagger": ("frame",)}
MAGIC = {"image/gif": ((0, b"GIF87a"), (0, b"GIF89a")), "image/png": ((0, b"\x89PNG\r\n\x1a\n"),),
         "image/jpeg": ((0, b"\xff\xd8\xff"),), "video/mp4": ((4, b"ftyp"),)}  # file signatures per MIME type
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


@dataclasses.dataclass(frozen=True)
class TaskRow:
    """One validated task-file row: its line, query id, kind, payload and media (bytes read at parse time)."""

    line: int
    query_id: str
    kind: str
    payload: dict[str, Any]
    media: dict[str, tuple[bytes, str]]


def default_session(task: str | Path) -> str:
    """The session name of a task file: its stem, with characters a session name may not hold replaced by _."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", Path(task).stem)[:64]
    return name or "task"


def make_query_id(session: str, stem: str, key: str) -> str:
    """A stable query id from the session, the file's stem and the row's key (its "id" or line number)."""
    readable = f"{session}-{stem}-{key}" if session != stem else f"{stem}-{key}"
    if _NAME_RE.fullmatch(readable):
        return readable
    return hashlib.sha256("\0".join((session, stem, key)).encode()).hexdigest()[:32]  # too long or odd chars


def read_media(folder: Path, value: Any, field: str, where: str) -> tuple[bytes, str]:
    """The bytes and MIME type of a media path relative to the task file's folder; never outside it."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{where}: {field}={describe(value)}: expected a media path relative to the task "
                              "file's folder (e.g. \"a.gif\")")
    relative = Path(value)
    root = folder.resolve()
    target = (root / relative).resolve()
    if relative.is_absolute() or not target.is_relative_to(root):
        raise ValidationError(f"{where}: {field}={value!r} is outside the task file's folder {str(root)!r}; "
                              "expected a path inside it (no absolute paths, no ..)")
    mime = MEDIA_MIMES.get(relative.suffix.lower())
    if mime is None:
        raise ValidationError(f"{where}: {field}={value!r}: unsupported media type {relative.suffix or '(none)'!r}; "
                              f"expected one of {', '.join(MEDIA_MIMES)}")
    if not target.is_file():
        raise ValidationError(f"{where}: {field}={value!r}: no such file ({target})")
    data = target.read_bytes()
    if not any(data[offset:offset + len(magic)] == magic for offset, magic in MAGIC[mime]):
        raise ValidationError(f"{where}: {field}={value!r}: its content is not {mime} (wrong file signature); "
                              f"expected a real {relative.suffix.lower()} file")
    return data, mime


def read_task(path: str | Path, session: str) -> list[TaskRow]:
    """Parse and validate every row of the JSONL task file ``path`` (reading its media); raises
    ValidationError naming ``FILE:LINE`` on the first bad row, before anything is stored."""
    task = Path(path)
    if not task.is_file():
        raise ValidationError(f"--task {str(task)!r}: no such file; expected a JSONL task file")
    try:
        text = task.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValidationError(f"--task {str(task)!r}: not UTF-8 text ({err.reason}); expected a JSONL task "
                              "file") from None
    stem = default_session(task)
    rows: list[TaskRow] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{task}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValidationError(f"{where}: bad JSON ({err.msg} at column {err.colno}); expected one JSON "
                                  "object per line") from None
        if not isinstance(row, dict):
            raise ValidationError(f"{where}: {describe(row)}: expected a JSON object (a query)")
        kind = row.get("kind", "text")
        if kind not in ROW_FIELDS:
            raise ValidationError(f"{where}: kind={describe(kind)}: expected one of {', '.join(ROW_FIELDS)}")
        unknown = sorted(str(k) for k in row if k not in ROW_FIELDS[kind])
        if unknown:
            raise ValidationError(f"{where}: unknown key(s) {unknown} for kind {kind!r}; expected "
                                  f"{list(ROW_FIELDS[kind])}")
        key = row.get("id", f"L{lineno}")
        try:
            if "id" in row:
                check_query_id(key)
            media = {field: read_media(task.parent, row.get(field), field, where)
                     for field in MEDIA_FIELDS[kind] if field in row}
            payload = {k: v for k, v in row.items() if k not in ("kind", "id")}
            payload.update({field: field for field in media})  # the store's media names are the field names
            clean = check_payload(kind, payload, media)
        except IrlhfError as err:
            if str(err).startswith(where):
                raise
            raise ValidationError(f"{where}: {err}") from None
        if key in seen:
            raise ValidationError(f"{where}: id={key!r} also on line {seen[key]}; expected unique ids")
        seen[key] = lineno
        rows.append(TaskRow(lineno, make_query_id(session, stem, str(key)), kind, clean, media))
    if not rows:
        raise ValidationError(f"--task {str(task)!r}: holds no queries; expected one JSON object per line")
    return rows


def import_task(store: LabelStore, rows: list[TaskRow], session: str, n_annotators: int = 1) -> tuple[int, int]:
    """Add the rows to ``store`` under ``session`` (idempotent by query id); (new, already there)."""
    existing = {q.id for q in store.queries(session)} if session in store.sessions() else set()
    new = 0
    for row in rows:
        if row.query_id in existing:
            continue
        store.add_query(row.kind, row.payload, session=session, media=row.media, n_annotators=n_annotators,
                        query_id=row.query_id)
        new += 1
    return new, len(rows) - new


def format_stats(stats: dict[str, Any], session: str, db: str | Path) -> list[str]:
    """The lines ``--stats`` prints."""
    who = ", ".join(f"{name}: {n}" for name, n in stats["per_annotator"].items()) or "none yet"
    agreement = ("n/a (no query has two non-skip labels)" if stats["agreement"] is None
                 else f"{stats['agreement']:.3f} (share of pairs of annotators on the same query who agree, "
                      "skips excluded)")
    return [f"session {session} in {db}",
            f"queries: {stats['n_queries']} ({stats['n_complete']} complete, {stats['pending']} pending)",
            f"labels: {stats['n_labels']}",
            f"labels per annotator: {who}",
            f"agreement: {agreement}"]
