"""Atomic file writes: write a temp file beside the target, then rename, so nothing is half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_mode(*, directory: bool = False) -> int:
    """The permissions a plain ``open`` / ``mkdir`` gives: 0o666 / 0o777 less the umask (``mkstemp`` and
    ``mkdtemp`` make 0600 / 0700, and some writers, e.g. safetensors, make 0600 files)."""
    return (0o777 if directory else 0o666) & ~_umask()


def temp_sibling_prefix(target: Path) -> str:
    """The name prefix of the temp siblings written for ``target`` (``.<name>.``), also for ``tempfile``."""
    return f".{target.name}."


def naming_target(exc: OSError, target: Path) -> OSError:
    """``exc`` with its file names in terms of ``target`` where they named a temp sibling of it (or a file inside
    one): the user asked for ``target`` and never sees the temp file, which is gone by then."""
    prefix = os.path.abspath(target.parent / temp_sibling_prefix(target))

    def renamed(name: object) -> object:
        if not isinstance(name, str) or not os.path.abspath(name).startswith(prefix):
            return name
        inside = os.path.abspath(name)[len(prefix):].partition(os.sep)[2]
        return str(target / inside) if inside else str(target)

    first, second = renamed(exc.filename), renamed(exc.filename2)
    if (first, second) == (exc.filename, exc.filename2):
        return exc
    return type(exc)(exc.errno, exc.strerror, first, None, None if second == first else second)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temp file in ``path``'s directory; on success rename it over ``path``, else delete it. An OSError
    names ``path``, not the temp file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=temp_sibling_prefix(target), suffix=".tmp")
    except OSError as exc:
        raise naming_target(exc, target) from None
    try:
        os.chmod(tmp, usual_mode())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise naming_target(exc, target) from None
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)
