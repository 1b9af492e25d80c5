"""README.md and docs/*.md point only at files inside the repository: every relative markdown link
[text](target) resolves to an existing file in the repo (anchors stripped, http(s) links skipped), and no
path in a code span climbs out of it (a clone has nothing beside the repository)."""

from __future__ import annotations

import glob
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCED = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1", re.M | re.S)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
# [text](target) and ![alt](target), text over several lines allowed; an optional "title" after the target
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s<>]+)>?", re.M)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto: ...


def link_targets(text: str) -> tuple[list[str], list[str]]:
    """(link targets, code spans) of a markdown text; links inside code are not links."""
    prose = FENCED.sub("", text)
    spans = CODE_SPAN.findall(prose)
    prose = CODE_SPAN.sub("", prose)
    return INLINE_LINK.findall(prose) + REFERENCE.findall(prose), spans


def resolve(page: Path, path: str, root: Path) -> Path:
    """A link's file: relative to the page, or to the repository root when it starts with /."""
    return (root / path.lstrip("/") if path.startswith("/") else page.parent / path).resolve()


def inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def broken_links(page: Path, text: str, root: Path = ROOT) -> list[str]:
    """What is wrong with each link (and each code-span path climbing out of ``root``) in ``text``."""
    links, spans = link_targets(text)
    problems = []
    for target in links:
        path = unquote(target.split("#", 1)[0])
        if SCHEME.match(target) or not path:  # a web address, or an anchor on this page
            continue
        resolved = resolve(page, path, root)
        if not inside(resolved, root):
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
    for span in spans:
        if not span.startswith("../"):
            continue
        resolved = resolve(page, span, root)
        if not inside(resolved, root):
            problems.append(f"`{span}`: a path outside the repository")
        elif not glob.glob(str(resolved)):  # a pattern such as 000_*.txt must match a file
            problems.append(f"`{span}`: no such file")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve_inside_the_repository(page):
    assert broken_links(page, page.read_text(encoding="utf-8")) == []


def test_the_checker_on_made_up_pages(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("")
    (tmp_path / "README.md").write_text("")
    page = tmp_path / "docs" / "b.md"
    text = """[ok](a.md#section) [up](../README.md) ![img](/docs/a.md "title") [web](https://example.org/x.md)
[anchor](#here) [gone](missing.md) [out](../../shared/DESIGN.md) [two
lines](a.md) `../../shared/seeds/` `a[0](1)` `../docs/a.md` `../shared/000_*.txt`
[ref]: ../../outside.md

```python
x = y[0](../../not_a_link.md)
```
"""
    assert broken_links(page, text, tmp_path) == [
        "missing.md: no such file", "../../shared/DESIGN.md: outside the repository",
        "../../outside.md: outside the repository", "`../../shared/seeds/`: a path outside the repository",
        "`../shared/000_*.txt`: no such file"]
