"""The layers stay where ARCHITECTURE.md puts them: imports flow api -> service ->
domain/store/cache, only api touches generated code, only store speaks SQL or loads a
database driver, and every module declares its public surface."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import switchyard

PACKAGE = Path(switchyard.__file__).parent
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "gen" not in p.relative_to(PACKAGE).parts)

# Which of Switchyard's own packages each layer may import.
ALLOWED = {
    "domain": {"domain"},
    "store": {"domain", "store"},
    "cache": {"domain", "cache", "metrics", "redis_client"},
    "events": {"domain", "events", "metrics", "redis_client"},
    "counters": {"domain", "counters", "metrics", "redis_client"},
    "service": {"domain", "service", "cache", "events", "metrics"},
    "api": {"domain", "service", "api", "gen", "metrics"},
    "client": {"client", "gen"},
    # The operator's tools talk to a server as any client does: never to the store.
    "transfer": {"transfer", "client", "gen", "domain"},
    "keydocs": {"keydocs", "transfer", "client", "gen"},
    # The web console calls the API as the signed-in user, as any client does.
    "console": {"console", "client", "gen"},
    "metrics": set(),
    "redis_client": {"domain"},
}
DRIVERS = {"sqlite3", "aiosqlite", "oracledb"}
TRANSPORT = {"grpc", "grpc_health", "grpc_reflection", "grpc_status", "google.rpc"}
_SQL = re.compile(
    r"\b(SELECT\s+[\w*(]|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX))",
    re.IGNORECASE,
)


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _strings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_down_the_layers(path: Path) -> None:
    layer = _layer(path)
    allowed = ALLOWED.get(layer)
    imported = _imports(path)
    own = {name.split(".")[1] for name in imported if name.startswith("switchyard.")}
    if allowed is not None:
        assert own <= allowed, f"{layer} imports {sorted(own - allowed)}"
    if layer != "store":
        assert not {n.split(".")[0] for n in imported} & DRIVERS, "database drivers belong in store"
    if layer in {"domain", "store", "service", "cache", "events", "counters"}:
        transport = {n for n in imported for t in TRANSPORT if n == t or n.startswith(t + ".")}
        assert not transport, f"{layer} imports gRPC: {sorted(transport)}"


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if _layer(p) != "store"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_sql_is_written_only_in_store(path: Path) -> None:
    statements = [s for s in _strings(path) if _SQL.search(s)]
    assert not statements, f"SQL outside store/: {statements[0][:60]!r}"


def test_the_sql_check_recognises_sql() -> None:
    store_module = PACKAGE / "store" / "configs.py"
    assert any(_SQL.search(s) for s in _strings(store_module))


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if p.name != "__main__.py"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_every_module_declares_its_public_surface(path: Path) -> None:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    name = ".".join(p for p in relative.parts if p != "__init__")
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert all(hasattr(module, attribute) for attribute in exported), name
