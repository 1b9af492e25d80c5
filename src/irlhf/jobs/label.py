"""``irlhf label``: serve the labelling page for a session of a label store; import task files; export; stats.

    irlhf label --db labels.sqlite --task examples/label_texts.jsonl      # import (idempotent), then serve
    irlhf label --db labels.sqlite --session label_texts                   # serve an existing session
    irlhf label --db labels.sqlite --session label_texts --stats           # counts, labels per annotator, agreement
    irlhf label --db labels.sqlite --session label_texts --export out.jsonl                # every query + labels
    irlhf label --db labels.sqlite --session label_texts --export pairs.jsonl --format pairs  # TextPairs rows
    irlhf label --database postgresql://me@dbhost:5432/labels --session label_texts    # a PostgreSQL store

Task files (``irlhf.label.tasks``) are JSONL, one query per line: text rankings, clip pairs, DAgger frames,
with media paths relative to the task file's folder. Every row is checked before anything is written, so a
bad row is one ``irlhf: error: FILE:LINE: ...`` line, exit code 2, and nothing imported; importing the same
file twice adds nothing. The access token comes from ``--token``, ``--token-file`` or ``$IRLHF_LABEL_TOKEN``
(the last two keep it out of ``ps``). The same server options and startup (``irlhf.label.live``) serve the
jobs that learn from people live: ``irlhf prefs rl --labeller web``, ``irlhf dagger --expert web``,
``irlhf tamer --trainer web``.
"""

from __future__ import annotations

import argparse

from irlhf.core.errors import ValidationError
from irlhf.label import LabelStore, export_jsonl, export_text_pairs
from irlhf.label.dialects import sqlite_file
from irlhf.label.live import check_server_options, resolve_token
from irlhf.label.store import check_session
from irlhf.label.tasks import default_session, format_stats, import_task, read_task


def run(args: argparse.Namespace) -> int:
    """Import (--task), then --stats / --export, or serve the session until Ctrl-C."""
    if args.task is None and args.session is None:
        raise ValidationError("label: give --task FILE (import it, then serve) or --session NAME (an existing "
                              "session of --db)")
    serving = args.export is None and not args.stats
    token = resolve_token(args.token, args.token_file) if serving else None
    if serving:  # before touching anything: a refused server should leave no store behind
        check_server_options(args.host, args.port, token, args.allow_remote)
    if isinstance(args.n_annotators, bool) or args.n_annotators < 1:
        raise ValidationError(f"--n-annotators {args.n_annotators}: expected an int >= 1")
    session = check_session(args.session if args.session is not None else default_session(args.task))
    file = sqlite_file(args.db)  # None: a database server, nothing on disk to look for
    rows = read_task(args.task, session) if args.task is not None else None
    if rows is None and file is not None and not file.exists():
        raise ValidationError(f"--db {str(file)!r}: no such label store; expected an existing store, or --task FILE "
                              "to create it")
    with LabelStore(args.db) as store:
        db = store.path  # the file, or the URL without its password
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
        from irlhf.label import server  # FastAPI / uvicorn: the `label` extra, needed only to serve

        server.serve(store, host=args.host, port=args.port, session=session, token=token,
                     open_browser=args.open, allow_remote=args.allow_remote)
    return 0

