"""Import contracts of the house (docs/architecture.md), checked on the source text.

Every `import` counts, also those inside functions: a cycle hidden in a function is still
a cycle for whoever reads the code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import loyalwallet

SRC = Path(loyalwallet.__file__).parent
PACKAGE = "loyalwallet"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py") if "migrations" not in p.relative_to(SRC).parts}


def _imports(path: Path, name: str, known: set[str]) -> Iterator[str]:
    """The loyalwallet modules a module imports (a `from x import y` names x.y when y is a module)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                yield sub if sub in known else module


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = set()
        for target in _imports(path, name, known):
            if not target.startswith(PACKAGE):
                continue
            # `import loyalwallet.a.b` loads the package a too, but a package __init__ here is empty.
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in known and target != name:
                targets.add(target)
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


# Pure rules: what a rules module (and everything it imports from loyalwallet) may not use.
IO_PACKAGES = {
    "sqlalchemy", "fastapi", "starlette", "httpx", "h2", "jinja2", "psycopg", "asyncpg",
    "uvicorn", "alembic", "socket", "sqlite3", "smtplib", "http", "urllib", "subprocess",
}  # fmt: skip
IO_MODULES = {"loyalwallet.db", "loyalwallet.config"}


def _externals(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


def _reach(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_rules_modules_do_no_io() -> None:
    mods, edges = modules(), graph()
    pure = [m for m in mods if m.rsplit(".", 1)[-1] == "rules" or m == "loyalwallet.cards.lots"]
    assert len(pure) >= 8
    problems = []
    for rules in pure:
        for m in sorted(_reach(edges, rules)):
            bad = (_externals(mods[m]) & IO_PACKAGES) | ({m} & IO_MODULES)
            if bad:
                problems.append(f"{rules} -> {m}: {sorted(bad)}")
    assert problems == []


HTTP_MODULES = {"api", "pages", "public"}


def test_the_outbox_knows_no_part() -> None:
    """The outbox's core (queue, worker, dispatch) imports only itself and the plumbing;
    which part handles what is listed in wiring.py. Its own admin page may use the auth."""
    allowed = ("loyalwallet.outbox", "loyalwallet.db", "loyalwallet.config", "loyalwallet.errors")
    edges = graph()
    problems = [
        f"{m} -> {t}"
        for m, targets in edges.items()
        if m.startswith("loyalwallet.outbox.") and m.rsplit(".", 1)[-1] not in HTTP_MODULES | {"routes"}
        for t in targets
        if not t.startswith(allowed)
    ]
    assert problems == []


def test_only_http_modules_import_the_web_shell() -> None:
    """web/ is the shared shell of the pages; services, rules and models never use it."""
    entry_points = {"loyalwallet.wiring", "loyalwallet.api.app", "loyalwallet.models"}
    edges = graph()
    problems = [
        f"{m} -> {t}"
        for m, targets in edges.items()
        if not m.startswith("loyalwallet.web.")
        and m not in entry_points
        and m.rsplit(".", 1)[-1] not in HTTP_MODULES
        for t in targets
        if t.startswith("loyalwallet.web.")
    ]
    assert problems == []
