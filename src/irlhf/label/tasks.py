"""Task files for the labelling page: JSONL queries to import into a label store, validated row by row.

One query per line (blank lines skipped):

    {"prompt": "...", "responses": ["...", "..."], "id": "optional"}              # text: rank 2..9 responses
    {"kind": "pair", "left": "a.gif", "right": "b.gif", "title": "optional"}      # which clip is better
    {"kind": "dagger", "frame": "s.png", "actions": ["left", "right"]}            # which action here

``read_task`` checks every row (keys, payload, media) and reads the media before anything is stored, so a bad
row raises one ``FILE:LINE: ...`` error and nothing is imported. Media paths are relative to the task file's
folder (.gif, .png, .jpg, .jpeg, .mp4; never outside it, and the content must carry the type's file
signature). Query ids come one-to-one from the session, the file name and the row's "id" (else its line
number: ``make_query_id``), so ``import_task`` of the same file twice adds nothing; it imports in one
transaction, so a failed import leaves the store as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import stat
from pathlib import Path
from typing import Any

from irlhf.core.errors import IrlhfError, ValidationError, describe
from irlhf.label.store import LabelStore, Query, check_payload, check_query_id, check_session

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
    """One validated task-file row: its line, query id, kind, payload and media (bytes read at parse time).

    ``task``: the task file's path (for error messages); ``legacy_id``: the id irlhf gave this row before ids
    were made unambiguous, when it differs (a store filled then still knows the row by it).
    """

    line: int
    query_id: str
    kind: str
    payload: dict[str, Any]
    media: dict[str, tuple[bytes, str]]
    task: str = ""
    legacy_id: str | None = None

    @property
    def where(self) -> str:
        """``FILE:LINE`` of the row for error messages (``line N`` when the file is not known)."""
        return f"{self.task}:{self.line}" if self.task else f"line {self.line}"


def default_session(task: str | Path) -> str:
    """The session name of a task file: its stem, with characters a session name may not hold replaced by _."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", Path(task).stem)[:64]
    return name or "task"


def _hashed_id(session: str, stem: str, key: str) -> str:
    """32 hex digits of sha256 of the parts joined by NUL (no part can hold a NUL, so the join is one-to-one)."""
    return hashlib.sha256("\0".join((session, stem, key)).encode()).hexdigest()[:32]


def make_query_id(session: str, stem: str, key: str) -> str:
    """The query id of a row, one-to-one with (session, the file's stem, the row's key: its "id" or ``L<line>``).

    Readable where the parts allow, else hashed; the forms cannot meet, since only the first holds a "-" and
    only the second a "." without one:

    - ``STEM-KEY``: the default session (= stem) when the stem holds no "-" (the ids irlhf always gave these)
    - ``SESSION.STEM.KEY``: when no part holds a "-" or a "."
    - 32 hex digits of sha256 of the parts: otherwise, or when a readable id would pass 64 characters
    """
    if session == stem and "-" not in stem:
        readable = f"{stem}-{key}"
    elif not any(c in part for part in (session, stem, key) for c in "-."):
        readable = f"{session}.{stem}.{key}"
    else:
        readable = ""
    return readable if _NAME_RE.fullmatch(readable) else _hashed_id(session, stem, key)


def legacy_query_id(session: str, stem: str, key: str) -> str:
    """The id irlhf gave a row before ``make_query_id``: the parts joined by "-", which distinct rows could share."""
    readable = f"{session}-{stem}-{key}" if session != stem else f"{stem}-{key}"
    return readable if _NAME_RE.fullmatch(readable) else _hashed_id(session, stem, key)


def _media_file(target: Path) -> Path:
    """``target`` if it is a regular file; else ValidationError saying what it is (the caller adds FILE:LINE)."""
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        raise ValidationError(f"no such file ({target})") from None
    except OSError as err:
        raise ValidationError(f"cannot read it ({err.strerror or err}); expected a readable media file") from None
    if stat.S_ISDIR(mode):
        raise ValidationError(f"is a directory ({target}); expected a media file")
    if not stat.S_ISREG(mode):
        raise ValidationError(f"not a regular file ({target}); expected a media file")
    return target


def _resolved(root: Path, relative: Path) -> Path:
    """``root / relative`` with symlinks resolved; ValidationError for a symlink loop or an unusable path."""
    try:
        return (root / relative).resolve()
    except RuntimeError:  # Python < 3.13 reports a symlink loop this way
        raise ValidationError("cannot resolve it (a symlink loop); expected a media file") from None
    except OSError as err:
        raise ValidationError(f"cannot resolve it ({err.strerror or err}); expected a media file") from None


def read_media(folder: Path, value: Any, field: str, where: str) -> tuple[bytes, str]:
    """The bytes and MIME type of a media path relative to the task file's folder; never outside it.

    Any unusable path (NUL byte, outside the folder, missing, a directory, unreadable) is one ValidationError
    naming ``where`` (``FILE:LINE``), the field and the path.
    """
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{where}: {field}={describe(value)}: expected a media path relative to the task "
                              "file's folder (e.g. \"a.gif\")")
    if "\0" in value:  # the OS cannot take it: Path would raise a bare ValueError
        raise ValidationError(f"{where}: {field}={value!r}: holds a NUL byte; expected a media path relative to "
                              "the task file's folder")
    relative = Path(value)
    root = folder.resolve()
    try:
        target = _resolved(root, relative)
        if relative.is_absolute() or not target.is_relative_to(root):
            raise ValidationError(f"is outside the task file's folder {str(root)!r}; expected a path inside it "
                                  "(no absolute paths, no ..)")
        mime = MEDIA_MIMES.get(relative.suffix.lower())
        if mime is None:
            raise ValidationError(f"unsupported media type {relative.suffix or '(none)'!r}; expected one of "
                                  f"{', '.join(MEDIA_MIMES)}")
        data = _read_bytes(_media_file(target))
    except ValidationError as err:
        raise ValidationError(f"{where}: {field}={value!r}: {err}") from None
    if not any(data[offset:offset + len(magic)] == magic for offset, magic in MAGIC[mime]):
        raise ValidationError(f"{where}: {field}={value!r}: its content is not {mime} (wrong file signature); "
                              f"expected a real {relative.suffix.lower()} file")
    return data, mime


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; ValidationError (not a bare OSError) when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise ValidationError(f"cannot read it ({err.strerror or err}); expected a readable media file") from None


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
    except OSError as err:
        raise ValidationError(f"--task {str(task)!r}: cannot read it ({err.strerror or err}); expected a "
                              "readable JSONL task file") from None
    stem = default_session(task)
    rows: list[TaskRow] = []
    seen: dict[str, tuple[int, bool]] = {}
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
        _check_new_key(seen, key, "id" in row, where, lineno)
        query_id, legacy = make_query_id(session, stem, key), legacy_query_id(session, stem, key)
        rows.append(TaskRow(lineno, query_id, kind, clean, media, str(task), None if legacy == query_id else legacy))
    if not rows:
        raise ValidationError(f"--task {str(task)!r}: holds no queries; expected one JSON object per line")
    return rows


def _check_new_key(seen: dict[str, tuple[int, bool]], key: str, explicit: bool, where: str, line: int) -> None:
    """Record a row's key (its "id", else ``L<line>``) in ``seen``; ValidationError naming both rows if taken."""
    if key in seen:
        first, first_explicit = seen[key]
        if not explicit:
            clash = f"this row has no \"id\", and its default id {key!r} (from line {line}) is also the id on line"
        elif first_explicit:
            clash = f"id={key!r} also on line"
        else:
            clash = f"id={key!r} is also the default id (no \"id\" given) of line"
        raise ValidationError(f"{where}: {clash} {first}; expected unique ids")
    seen[key] = (line, explicit)


def _check_unique_query_ids(rows: list[TaskRow]) -> None:
    """ValidationError naming both rows when two rows would get one query id (one would be lost)."""
    first: dict[str, TaskRow] = {}
    for row in rows:
        if row.query_id in first:
            raise ValidationError(f"{row.where}: query id {row.query_id!r} also belongs to the row at "
                                  f"{first[row.query_id].where}; expected one query id per row")
        first[row.query_id] = row


def _content(kind: str, payload: dict[str, Any], media_of: Any) -> dict[str, Any]:
    """A payload with each media field's name or id replaced by its ``(bytes, mime)``, to compare queries."""
    return {k: tuple(media_of(v)) if k in MEDIA_FIELDS[kind] else v for k, v in payload.items()}


def _holds_row(store: LabelStore, query: Query, row: TaskRow) -> bool:
    """True when a stored query is this row: the same kind, payload and media bytes (media ids aside)."""
    return query.kind == row.kind and (_content(query.kind, query.payload, store.media)
                                       == _content(row.kind, row.payload, row.media.__getitem__))


def _already_there(store: LabelStore, existing: dict[str, Query], row: TaskRow, session: str) -> bool:
    """True when ``session`` holds the row already, under its id or its legacy id (then with the same content).

    Its id with other content is refused: an edited row would otherwise be dropped without a word.
    """
    stored = existing.get(row.query_id)
    if stored is not None:
        if not _holds_row(store, stored, row):
            raise ValidationError(f"{row.where}: query id {row.query_id!r} is already in session {session!r} with "
                                  "other content (kind, payload or media); expected the row as imported before "
                                  "(give a changed row a new \"id\", or import into a new --session)")
        return True
    legacy = existing.get(row.legacy_id) if row.legacy_id is not None else None
    return legacy is not None and _holds_row(store, legacy, row)


def import_task(store: LabelStore, rows: list[TaskRow], session: str, n_annotators: int = 1) -> tuple[int, int]:
    """Add the rows to ``store`` under ``session`` in one transaction; (new, already there).

    Idempotent: a row already in the session (``_already_there``) is skipped. Any error names the row's
    ``FILE:LINE`` and leaves the store exactly as it was: nothing of the import is committed.
    """
    check_session(session)
    _check_unique_query_ids(rows)
    new = 0
    with store.batch():
        existing = {q.id: q for q in store.queries(session)}
        for row in rows:
            if _already_there(store, existing, row, session):
                continue
            try:
                store.add_query(row.kind, row.payload, session=session, media=row.media,
                                n_annotators=n_annotators, query_id=row.query_id)
            except IrlhfError as err:
                raise type(err)(f"{row.where}: {err}") from None
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
