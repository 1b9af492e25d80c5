"""Count function-level imports in src/irlhf (the structure issue's before/after figure).

Prints each import statement found inside a function body (``file:line  module``), grouped by the module
imported, and the total. Module-level imports, including those under ``if TYPE_CHECKING:``, are not counted.

    python benchmarks/count_imports.py [src/irlhf] [--list]
"""
from __future__ import annotations

import ast
import collections
import pathlib
import sys


def function_imports(path: pathlib.Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Import):
                found += [(node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                found.append((node.lineno, "." * node.level + (node.module or "")))
    return sorted(set(found))


def main(argv: list[str]) -> None:
    roots = [a for a in argv if not a.startswith("--")] or ["src/irlhf"]
    by_module: collections.Counter[str] = collections.Counter()
    total = 0
    for root in roots:
        for path in sorted(pathlib.Path(root).rglob("*.py")):
            for line, module in function_imports(path):
                total += 1
                top = ".".join(module.split(".")[:2]) if module.startswith("irlhf") else module.split(".")[0]
                by_module[top] += 1
                if "--list" in argv:
                    print(f"{path}:{line}  {module}")
    for module, n in by_module.most_common():
        print(f"{n:5d}  {module}")
    print(f"total: {total}")


if __name__ == "__main__":
    main(sys.argv[1:])
