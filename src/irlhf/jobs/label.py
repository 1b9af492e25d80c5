"""``irlhf label``: serve the labelling page for a session of a label store; import task files; export; stats.

    irlhf label --db labels.sqlite --task examples/label_texts.jsonl      # import (idempotent), then serve
    irlhf label --db labels.sqlite --session label_texts                   # serve an existing session
    irlhf label --db labels.sqlite --session label_texts --stats           # counts, labels per annotator, agreement
    irlhf label --db labels.sqlite --session label_texts --export out.jsonl                # every query + labels
    irlhf label --db labels.sqlite --session label_texts --export pairs.jsonl --format pairs  # TextPairs rows

Task files are JSONL, one query per line (blank lines skipped):

    {"prompt": "...", "responses": ["...", "..."], "id": "optional"}              # text: rank 2..9 responses
    {"kind": "pair", "left": "a.gif", "right": "b.gif", "title": "optional"}      # which clip is better
    {"kind": "dagger", "frame": "s.png", "actions": ["left", "right"]}            # which action here

Media paths are relative to the task file's folder (.gif, .png, .jpg, .jpeg, .mp4; never outside it) and
are read into the store at import. Every row is checked before anything is written, so a bad row is one
``irlhf: error: FILE:LINE: ...`` line, exit code 2, and nothing imported. Query ids come from the session,
the file name and the row's "id" (else its line number), so importing the same file twice adds nothing.

The same server options (``add_server_options``) and startup (``WebSession``) serve the jobs that learn from
people live: ``irlhf prefs rl --labeller web``, ``irlhf dagger --expert web``, ``irlhf tamer --trainer web``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

from irlhf.core.errors import IrlhfError, ValidationError, describe
from irlhf.core.rundir import RunDir

WEB = "web"  # the choice that makes prefs rl / dagger / tamer ask people through the labelling page
DEFAULT_PORT = 8765
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
EXPORT_FORMATS = ("jsonl", "pairs")
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


# -- shared server options (irlhf label, prefs rl --labeller web, dagger --expert web, tamer --trainer web) ---
def check_server_options(host: Any, port: Any, token: Any, allow_remote: bool) -> None:
    """Refuse a bad host / port / token, and a non-loopback host without ``allow_remote``."""
    try:
        from irlhf.label.server import is_loopback
    except ImportError as exc:  # FastAPI / uvicorn are the `label` extra
        raise IrlhfError(f"the labelling page needs {exc.name}, which is not installed: "
                         "pip install 'irlhf[label]'") from None
    if not isinstance(host, str) or not host.strip():
        raise ValidationError(f"--host {describe(host)}: expected a host name or IP address (e.g. 127.0.0.1)")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValidationError(f"--port {describe(port)}: expected an int in 0..65535 (0 = a free port)")
    if token is not None and not re.fullmatch(r"[A-Za-z0-9_.~\-]{1,256}", str(token)):
        raise ValidationError("--token: expected 1 to 256 letters, digits or _ . ~ - (it goes into the URL)")
    if not is_loopback(host) and not allow_remote:
        raise ValidationError(
            f"--host {host!r} is not loopback: anyone on the network could open the page and label. Serve on "
            "127.0.0.1 (and use an SSH tunnel), or pass --allow-remote and set --token so only people with the "
            "URL can label")


def add_server_options(parser: argparse.ArgumentParser, *, live: bool) -> None:
    """Add --db, --host, --port, --token, --allow-remote, --n-annotators (and, with ``live``, --label-timeout).

    ``live``: the options of a training job that asks people while it runs (--db then defaults to
    <run dir>/labels.sqlite and the port to 8765, 0 = a free one).
    """
    group = parser.add_argument_group("labelling page (people answer in a browser)" if live else "server")
    if live:
        group.add_argument("--db", default=None, metavar="FILE",
                           help="label store (SQLite) for the queries and answers; default <run dir>/labels.sqlite")
    group.add_argument("--host", default="127.0.0.1", help="address to serve the labelling page on")
    group.add_argument("--port", type=int, default=DEFAULT_PORT, help="port of the labelling page (0 = a free port)")
    group.add_argument("--token", default=None, help="secret every browser must present once (in the URL printed)")
    group.add_argument("--allow-remote", action="store_true",
                       help="allow a non-loopback --host (set --token too: anyone who can reach the port can label)")
    group.add_argument("--n-annotators", type=int, default=1, metavar="K", help="people asked per query")
    if live:
        group.add_argument("--label-timeout", type=float, default=None, metavar="SECONDS",
                           help="give up waiting for an answer after this long (default: wait forever)")


@dataclasses.dataclass(frozen=True)
class WebOptions:
    """The server options of a job that asks people live; validated on construction."""

    db: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    allow_remote: bool = False
    n_annotators: int = 1
    timeout: float | None = None

    def __post_init__(self) -> None:
        check_server_options(self.host, self.port, self.token, self.allow_remote)
        if self.db is not None and (not isinstance(self.db, str) or not self.db):
            raise ValidationError(f"--db {describe(self.db)}: expected a path to an SQLite file")
        if isinstance(self.n_annotators, bool) or not isinstance(self.n_annotators, int) or self.n_annotators < 1:
            raise ValidationError(f"--n-annotators {describe(self.n_annotators)}: expected an int >= 1")
        if self.timeout is not None and not (isinstance(self.timeout, (int, float)) and math.isfinite(self.timeout)
                                             and self.timeout > 0):
            raise ValidationError(f"--label-timeout {describe(self.timeout)}: expected seconds > 0 (or leave it out "
                                  "to wait forever)")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> WebOptions:
        return cls(db=args.db, host=args.host, port=args.port, token=args.token, allow_remote=args.allow_remote,
                   n_annotators=args.n_annotators, timeout=args.label_timeout)

    def to_dict(self) -> dict[str, Any]:
        """For config.json: everything but the token's value (a secret)."""
        data = dataclasses.asdict(self)
        data["token"] = None if self.token is None else "(set)"
        return data


def web_options(args: argparse.Namespace, enabled: bool, choice: str) -> WebOptions | None:
    """The validated server options when the job asks people (``enabled``), else None; refuses server options
    given to a job that does not (``choice``, e.g. "--labeller web", names what would use them)."""
    if enabled:
        return WebOptions.from_args(args)
    defaults = WebOptions()
    given = [f"--{name.replace('_', '-')}" for name, value in (
        ("db", args.db), ("host", args.host), ("port", args.port), ("token", args.token),
        ("allow_remote", args.allow_remote), ("n_annotators", args.n_annotators), ("label_timeout", args.label_timeout))
        if value != getattr(defaults, "timeout" if name == "label_timeout" else name)]
    if given:
        raise ValidationError(f"{', '.join(given)}: labelling-page options only apply with {choice}; expected "
                              f"{choice} or none of them")
    return None


class WebSession:
    """The live labelling of one training run: its run directory, label store and server.

    Use as a context manager; ``start()`` (called by the job once its input is validated) creates the run
    directory, opens the store (``--db`` or <run dir>/labels.sqlite), starts the server with session = the run
    directory's name and prints the URL. Leaving the ``with`` block stops the server (also on an error or
    Ctrl-C) and removes the run directory if nothing was written to it.
    """

    def __init__(self, options: WebOptions, job: str, out: str | None) -> None:
        self.options = options
        self.job = job
        self.out = out
        self.run: RunDir | None = None
        self.store: Any = None
        self.server: Any = None
        self.url: str | None = None

    @property
    def session(self) -> str:
        """The session name: the run directory's name."""
        if self.run is None:
            raise ValidationError("web labelling: start() the session before using it")
        return self.run.path.name

    def start(self) -> RunDir:
        """Create the run directory, open the store, start the server, print the URL; returns the run directory."""
        from irlhf.label import LabelStore
        from irlhf.label.server import start_server

        self.run = RunDir.create(self.job, self.out)
        db = Path(self.options.db) if self.options.db is not None else self.run.file("labels.sqlite")
        self.store = LabelStore(db)
        self.server = start_server(self.store, host=self.options.host, port=self.options.port,
                                   session=self.session, token=self.options.token,
                                   allow_remote=self.options.allow_remote)
        self.url = self.server.url
        bar = "=" * max(60, len(self.url) + 16)
        wait = "" if self.options.timeout is None else f", up to {self.options.timeout:g} s each"
        print(f"\n{bar}\n  irlhf {self.job.replace('-', ' ')}: people label at  {self.url}\n  session {self.session}, store {db}\n"
              f"  (training waits for their answers{wait})\n{bar}\n", flush=True)
        return self.run

    def labeller(self, env_id: str, seed: int = 0) -> Any:
        """A ``people.WebLabeller`` (segment preferences) on this session."""
        from irlhf.label.people import WebLabeller

        return WebLabeller(self.store, env_id, session=self.session, n_annotators=self.options.n_annotators,
                           timeout=self.options.timeout, seed=seed, url=self.url)

    def expert(self, env_id: str) -> Any:
        """A ``people.WebExpert`` (DAgger action labels) on this session."""
        from irlhf.label.people import WebExpert

        return WebExpert(self.store, env_id, session=self.session, n_annotators=self.options.n_annotators,
                         timeout=self.options.timeout, url=self.url)

    def trainer(self, env_id: str) -> Any:
        """A ``people.WebTrainer`` (TAMER feedback) on this session."""
        from irlhf.label.people import WebTrainer

        return WebTrainer(self.store, env_id, session=self.session, n_annotators=self.options.n_annotators,
                          timeout=self.options.timeout, url=self.url)

    def export(self) -> tuple[str, str]:
        """Write the session's queries and labels to <run dir>/labels.jsonl; (file name, one summary line)."""
        from irlhf.label import export_jsonl

        stats = self.store.stats(self.session)
        if stats["n_queries"]:
            export_jsonl(self.store, self.session, self.run.file("labels.jsonl"))
        else:  # export_jsonl refuses a session that never got a query: write the empty export ourselves
            self.run.write_text("labels.jsonl", "")
        who = ", ".join(f"{name} {n}" for name, n in stats["per_annotator"].items()) or "nobody"
        line = (f"people: {stats['n_labels']} labels on {stats['n_queries']} queries (session {self.session}, "
                f"store {self.store.path}; by {who}); labels.jsonl")
        return "labels.jsonl", line

    def close(self) -> None:
        """Stop the server and close the store; drop the run directory if it stayed empty."""
        try:
            if self.server is not None:
                self.server.stop()
        finally:
            self.server = None
            if self.store is not None:
                self.store.close()
                self.store = None
            if self.run is not None and self.run.path.is_dir() and not any(self.run.path.iterdir()):
                shutil.rmtree(self.run.path, ignore_errors=True)  # nothing to keep: do not leave an empty run

    def __enter__(self) -> WebSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- task files --------------------------------------------------------------------------------------------
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


def _query_id(session: str, stem: str, key: str) -> str:
    """A stable query id from the session, the file's stem and the row's key (its "id" or line number)."""
    readable = f"{session}-{stem}-{key}" if session != stem else f"{stem}-{key}"
    if _NAME_RE.fullmatch(readable):
        return readable
    return hashlib.sha256("\0".join((session, stem, key)).encode()).hexdigest()[:32]  # too long or odd chars


def _read_media(folder: Path, value: Any, field: str, where: str) -> tuple[bytes, str]:
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
    from irlhf.label.store import check_payload, check_query_id

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
            media = {field: _read_media(task.parent, row.get(field), field, where)
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
        rows.append(TaskRow(lineno, _query_id(session, stem, str(key)), kind, clean, media))
    if not rows:
        raise ValidationError(f"--task {str(task)!r}: holds no queries; expected one JSON object per line")
    return rows


def import_task(store: Any, rows: list[TaskRow], session: str, n_annotators: int = 1) -> tuple[int, int]:
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


# -- the job -----------------------------------------------------------------------------------------------
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


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from irlhf.cli import add_job

    parser = add_job(subparsers, "label", run,
                     help="serve the labelling page for people (import a task file, export labels, stats)",
                     description="Serve the labelling web page for one session of a label store (SQLite). "
                     "--task imports a JSONL task file first (text rankings, clip pairs, DAgger frames; "
                     "idempotent). --export / --stats write or print the session and exit without serving.")
    parser.add_argument("--db", required=True, metavar="FILE", help="label store (SQLite file; --task creates it)")
    parser.add_argument("--task", default=None, metavar="FILE",
                        help="JSONL task file to import first (media paths relative to its folder)")
    parser.add_argument("--session", default=None, metavar="NAME",
                        help="session to serve / export (default with --task: the task file's name without suffix)")
    parser.add_argument("--export", default=None, metavar="PATH",
                        help="write the session out and exit: .jsonl (every query, its labels and consensus); "
                        "with --format pairs, text preference pairs as .jsonl, .parquet or a datasets directory")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="jsonl", help="what --export writes")
    parser.add_argument("--stats", action="store_true",
                        help="print the session's queries, labels per annotator and agreement, and exit")
    add_server_options(parser, live=False)
    parser.add_argument("--open", action="store_true", help="open the page in a web browser")
    return parser


def run(args: argparse.Namespace) -> int:
    """Import (--task), then --stats / --export, or serve the session until Ctrl-C."""
    from irlhf.label import LabelStore, export_jsonl, export_text_pairs
    from irlhf.label.store import check_session

    if args.task is None and args.session is None:
        raise ValidationError("label: give --task FILE (import it, then serve) or --session NAME (an existing "
                              "session of --db)")
    serving = args.export is None and not args.stats
    if serving:  # before touching anything: a refused server should leave no store behind
        check_server_options(args.host, args.port, args.token, args.allow_remote)
    if isinstance(args.n_annotators, bool) or args.n_annotators < 1:
        raise ValidationError(f"--n-annotators {args.n_annotators}: expected an int >= 1")
    session = check_session(args.session if args.session is not None else default_session(args.task))
    db = Path(args.db)
    rows = read_task(args.task, session) if args.task is not None else None
    if rows is None and not db.exists():
        raise ValidationError(f"--db {str(db)!r}: no such label store; expected an existing store, or --task FILE "
                              "to create it")
    with LabelStore(db) as store:
        if rows is not None:
            new, old = import_task(store, rows, session, args.n_annotators)
            print(f"imported {new} new queries ({old} already there) from {args.task} into session {session} "
                  f"of {db}", flush=True)
        elif session not in store.sessions():
            raise ValidationError(f"--session {session!r}: no such session in {str(db)!r}; expected one of "
                                  f"{store.sessions()}")
        if args.stats:
            print("\n".join(format_stats(store.stats(session), session, db)))
        if args.export is not None:
            if args.format == "pairs":
                target = export_text_pairs(store, session, args.export)
                print(f"wrote the text preference pairs of session {session} to {target}")
            else:
                target = export_jsonl(store, session, args.export)
                print(f"wrote {store.stats(session)['n_queries']} queries of session {session} to {target}")
        if not serving:
            return 0
        from irlhf.label import server

        server.serve(store, host=args.host, port=args.port, session=session, token=args.token,
                     open_browser=args.open, allow_remote=args.allow_remote)
    return 0

