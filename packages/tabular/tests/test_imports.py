"""polyfold-tabular's modules import each other without cycles (function-local imports too)."""

from __future__ import annotations

import ast
from pathlib import Path

import polyfold.tabular

PACKAGE = "polyfold.tabular"


def _imports(path: Path) -> set[str]:
    """The polyfold.tabular modules that ``path`` imports anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n for n in names if n.startswith(PACKAGE + ".")}
    return found


def test_no_import_cycles_inside_the_package() -> None:
    root = Path(polyfold.tabular.__file__).parent
    modules = {f"{PACKAGE}.{p.stem}": p for p in root.glob("*.py") if p.stem != "__init__"}
    graph = {m: {n for n in _imports(p) if n in modules and n != m} for m, p in modules.items()}
    assert graph[f"{PACKAGE}.backbones"] >= {f"{PACKAGE}.pfn"}  # the check sees real edges
    done: set[str] = set()

    def visit(module: str, stack: list[str]) -> None:
        if module in stack:
            cycle = " -> ".join([*stack[stack.index(module) :], module])
            raise AssertionError(f"import cycle: {cycle}")
        if module in done:
            return
        for dep in sorted(graph[module]):
            visit(dep, [*stack, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
