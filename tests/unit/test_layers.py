"""The package's layering, checked on the source (issue 15): no import cycles, nothing outside
the CLI imports the CLI, product code never imports the devtools (demo, embedded servers), and
no module grows past 600 lines (the few that are longer today may only shrink).

Imports anywhere in a module count (function-level and ``TYPE_CHECKING`` ones too): a lazy
import is still a dependency, and the cycles that were fixed were all lazy.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

MAX_LINES = 600
LONG_TODAY: dict[str, int] = {
    # module: its length when the rule came in (2026-12-05); each may shrink, none may grow
}


def _modules() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        name = ".".join(p.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def _import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            graph[m].update(t for t in targets if t in mods and t != m)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert _cycles(_import_graph()) == []


def test_nothing_outside_the_cli_imports_it() -> None:
    graph = _import_graph()
    offenders = sorted(
        (m, t)
        for m, targets in graph.items()
        if not m.startswith("gridwatch.cli")
        for t in targets
        if t.startswith("gridwatch.cli")
    )
    assert offenders == []


def test_product_code_never_imports_the_devtools() -> None:
    """The demo, embedded servers and simulators (gridwatch_devtools) are harnesses: only the
    CLI's ``demo`` command may reach them; product code works without them."""
    graph = _import_graph()
    offenders = sorted(
        (m, t)
        for m, targets in graph.items()
        if m.startswith("gridwatch.") and m != "gridwatch.cli.main"
        for t in targets
        if t.startswith("gridwatch_devtools")
    )
    assert offenders == []


def test_modules_stay_under_600_lines() -> None:
    too_long = {}
    for name, path in _modules().items():
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > LONG_TODAY.get(name, MAX_LINES):
            too_long[name] = n
    assert too_long == {}, f"split these modules (limit {MAX_LINES} lines): {too_long}"
