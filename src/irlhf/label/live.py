"""Live labelling for training jobs: people answer a learner's queries in a browser while it trains.

A ``WebSession`` owns one training run's run directory, label store and labelling server; the learner asks
people through the adapters of ``irlhf.label.people`` (``WebLabeller`` for segment preferences, ``WebExpert``
for DAgger actions, ``WebTrainer`` for TAMER feedback), made by the session on its store and session name.
``WebOptions`` are the server options (``--db``, ``--host``, ``--port``, ``--token``, ``--allow-remote``,
``--n-annotators``, ``--label-timeout``), validated once; ``check_server_options`` refuses a non-loopback
host without ``allow_remote``, before anything is written. ``resolve_token`` reads the access token from
``--token``, ``--token-file`` or the environment variable ``IRLHF_LABEL_TOKEN`` (the last two keep it out of
``ps``). Used by ``irlhf prefs rl --labeller web``,
``irlhf dagger --expert web`` and ``irlhf tamer --trainer web``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

from irlhf.core.errors import IrlhfError, ValidationError, describe
from irlhf.core.rundir import RunDir
from irlhf.label.people import WebExpert, WebLabeller, WebTrainer
from irlhf.label.store import LabelStore, export_jsonl

DEFAULT_PORT = 8765
SERVER_OPTIONS = ("db", "host", "port", "token", "allow_remote", "n_annotators", "label_timeout")  # attribute names
TOKEN_ENV = "IRLHF_LABEL_TOKEN"  # the access token, when neither --token nor --token-file gives it


def resolve_token(token: str | None, token_file: str | None) -> str | None:
    """The access token: ``--token``, else the first line of ``--token-file``, else $IRLHF_LABEL_TOKEN, else None.

    A command-line value is visible to every user in ``ps``; the file and the environment are not.
    """
    if token is not None and token_file is not None:
        raise ValidationError("--token, --token-file: expected one of them (--token-file keeps the token out of "
                              "`ps`)")
    if token is not None:
        return token
    if token_file is not None:
        return _read_token_file(token_file)
    return os.environ.get(TOKEN_ENV, "").strip() or None


def _read_token_file(path: str) -> str:
    """The first line of ``path`` without surrounding blanks, else ValidationError naming the file."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValidationError(f"--token-file {path!r}: cannot read it ({reason}); expected a file holding the "
                              "token") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise ValidationError(f"--token-file {path!r} is empty: expected the token on its first line")
    return token


def check_server_options(host: Any, port: Any, token: Any, allow_remote: bool) -> None:
    """Refuse a bad host / port / token, and a non-loopback host without ``allow_remote``."""
    try:
        from irlhf.label.server import is_loopback  # FastAPI / uvicorn: the `label` extra, needed only to serve
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
            raise ValidationError(f"--db {describe(self.db)}: expected an SQLite file or a postgresql:// URL")
        if isinstance(self.n_annotators, bool) or not isinstance(self.n_annotators, int) or self.n_annotators < 1:
            raise ValidationError(f"--n-annotators {describe(self.n_annotators)}: expected an int >= 1")
        if self.timeout is not None and not (isinstance(self.timeout, (int, float)) and math.isfinite(self.timeout)
                                             and self.timeout > 0):
            raise ValidationError(f"--label-timeout {describe(self.timeout)}: expected seconds > 0 (or leave it out "
                                  "to wait forever)")

    def to_dict(self) -> dict[str, Any]:
        """For config.json: everything but the token's value (a secret)."""
        data = dataclasses.asdict(self)
        data["token"] = None if self.token is None else "(set)"
        return data


def web_options(args: Any, enabled: bool, choice: str) -> WebOptions | None:
    """The validated server options of a job (``args`` has the attributes SERVER_OPTIONS and ``token_file``, e.g.
    an argparse namespace) when it asks people (``enabled``), else None; refuses server options given to a job
    that does not (``choice``, e.g. "--labeller web", names what would use them)."""
    values = {name: getattr(args, name) for name in SERVER_OPTIONS}
    token_file = getattr(args, "token_file", None)
    if enabled:
        values["token"] = resolve_token(values["token"], token_file)
        return WebOptions(**{("timeout" if k == "label_timeout" else k): v for k, v in values.items()})
    defaults = WebOptions()
    given = [f"--{name.replace('_', '-')}" for name, value in values.items()
             if value != getattr(defaults, "timeout" if name == "label_timeout" else name)]
    given += ["--token-file"] if token_file is not None else []
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
        self.store: LabelStore | None = None
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
        self.run = RunDir.create(self.job, self.out)
        db = self.options.db if self.options.db is not None else self.run.file("labels.sqlite")
        self.store = LabelStore(db)
        from irlhf.label.server import start_server  # FastAPI / uvicorn: the `label` extra, needed only to serve

        self.server = start_server(self.store, host=self.options.host, port=self.options.port,
                                   session=self.session, token=self.options.token,
                                   allow_remote=self.options.allow_remote)
        self.url = self.server.url
        bar = "=" * max(60, len(self.url) + 16)
        wait = "" if self.options.timeout is None else f", up to {self.options.timeout:g} s each"
        print(f"\n{bar}\n  irlhf {self.job.replace('-', ' ')}: people label at  {self.url}\n"
              f"  session {self.session}, store {self.store.path}\n"
              f"  (training waits for their answers{wait})\n{bar}\n", flush=True)
        return self.run

    def labeller(self, env_id: str, seed: int = 0) -> WebLabeller:
        """A ``people.WebLabeller`` (segment preferences) on this session."""
        return WebLabeller(self.store, env_id, session=self.session, n_annotators=self.options.n_annotators,
                           timeout=self.options.timeout, seed=seed, url=self.url)

    def expert(self, env_id: str) -> WebExpert:
        """A ``people.WebExpert`` (DAgger action labels) on this session."""
        return WebExpert(self.store, env_id, session=self.session, n_annotators=self.options.n_annotators,
                         timeout=self.options.timeout, url=self.url)

    def trainer(self, env_id: str) -> WebTrainer:
        """A ``people.WebTrainer`` (TAMER feedback) on this session."""
        return WebTrainer(self.store, env_id, session=self.session, n_annotators=self.options.n_annotators,
                          timeout=self.options.timeout, url=self.url)

    def export(self) -> tuple[str, str]:
        """Write the session's queries and labels to <run dir>/labels.jsonl; (file name, one summary line)."""
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
            if self.run is not None and self.run.path.is_dir() and self.run.is_empty():
                shutil.rmtree(self.run.path, ignore_errors=True)  # nothing to keep: do not leave an empty run

    def __enter__(self) -> WebSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
