"""Count hand-written validation lines in src/irlhf (the structure issue's before/after figure).

Two measures, printed per file and in total:
- post_init: lines of ``__post_init__`` bodies (config validation written by hand);
- checks: lines of ``if ...: raise <...Error>`` blocks and of statements calling a ``check*`` function,
  anywhere in src (validation repeated inside learners and loops included).

    python benchmarks/count_validation.py [src/irlhf]
"""
from __future__ import annotations

import ast
import pathlib
import sys


def _is_check_call(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return False
    func = node.value.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    return name.lstrip("_").startswith("check")


def _is_raise_if(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and not node.orelse and len(node.body) == 1 and isinstance(node.body[0], ast.Raise)


def count(path: pathlib.Path) -> tuple[int, int]:
    tree = ast.parse(path.read_text())
    post_init = sum(n.end_lineno - n.lineno + 1 for n in ast.walk(tree)
                    if isinstance(n, ast.FunctionDef) and n.name == "__post_init__")
    lines: set[int] = set()
    for node in ast.walk(tree):
        if _is_check_call(node) or _is_raise_if(node):
            lines.update(range(node.lineno, node.end_lineno + 1))
    return post_init, len(lines)


def main(root: str = "src/irlhf") -> None:
    totals = [0, 0]
    rows = []
    for path in sorted(pathlib.Path(root).rglob("*.py")):
        post_init, checks = count(path)
        totals[0] += post_init
        totals[1] += checks
        if post_init or checks:
            rows.append((checks, post_init, str(path)))
    for checks, post_init, name in sorted(rows, reverse=True):
        print(f"{checks:5d} {post_init:5d}  {name}")
    print(f"total: checks {totals[1]}, post_init {totals[0]}")


if __name__ == "__main__":
    main(*sys.argv[1:])
