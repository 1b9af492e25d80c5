"""The ``irlhf`` command: one sub-command per job.

    irlhf --help                 list jobs
    irlhf demo --help            options of one job (every job has --seed and --out)
    irlhf demo --n-demos 16      run it: writes runs/demo-<timestamp>/ and prints a summary

Adding a job: write a module with

    def add_parser(subparsers):
        parser = cli.add_job(subparsers, "name", run, help="one line for `irlhf --help`")
        parser.add_argument("--iters", type=int, default=100, help="...")

    def run(args) -> int | None:     # args has .seed and .out; build a Config first (validates),
        ...                           # then RunDir.create("name", args.out); return an exit code or None

and add its module path to ``JOBS``. Keep a job module's top-level imports light (standard
library, ``irlhf.core``, ``irlhf.report``): every module is imported to build the parser, so
``irlhf --help`` would pay for torch or matplotlib imported at module level.

Bad input (``IrlhfError``) prints one line ``irlhf: error: <message>`` and exits 2; argparse
errors exit 2 with a usage line; an OS error (disk full, permission) prints one line and exits 1;
Ctrl-C exits 130 without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from irlhf import __version__
from irlhf.core.errors import IrlhfError

# Job modules, in the order `irlhf --help` lists them. Each defines add_parser(subparsers) and a run function.
JOBS: tuple[str, ...] = (
    "irlhf.jobs.demo",
    "irlhf.jobs.irl",
    "irlhf.jobs.imitation",
    "irlhf.jobs.prefs",
    "irlhf.jobs.demos",
    "irlhf.jobs.expert",
    "irlhf.jobs.tamer",
    "irlhf.jobs.llm",
    "irlhf.jobs.label",
)

PROG = "irlhf"


def add_job(
    subparsers: Any,
    name: str,
    run: Callable[[argparse.Namespace], int | None],
    *,
    help: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Register sub-command ``name`` running ``run(args)``, with the options every job shares."""
    parser = subparsers.add_parser(
        name,
        help=help,
        description=description or help,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same result)")
    parser.add_argument("--out", default="runs", metavar="DIR",
                        help="parent directory of run directories; each run writes DIR/<job>-<timestamp>/")
    parser.set_defaults(run=run, job=name)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="irlhf: learning behaviour from people (imitation, inverse RL, preferences, RLHF).",
        epilog=f"Run `{PROG} <job> --help` for the options of one job.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="jobs", dest="job", metavar="<job>", required=True)
    for module_name in JOBS:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def _error(message: str) -> None:
    print(f"{PROG}: error: " + " ".join(str(message).split()), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the chosen job and return its exit code."""
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, usage errors: argparse already printed
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        code = args.run(args)
        return 0 if code is None else int(code)
    except IrlhfError as exc:
        _error(str(exc))
        return 2
    except OSError as exc:
        _error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
