"""The domain stays pure: no I/O, transport or storage imports, and a curated surface."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import switchyard.domain

DOMAIN = Path(switchyard.domain.__file__).parent
MODULES = sorted(p for p in DOMAIN.glob("*.py"))
FORBIDDEN = (
    "switchyard.api",
    "switchyard.app",
    "switchyard.cache",
    "switchyard.events",
    "switchyard.gen",
    "switchyard.service",
    "switchyard.store",
    "aiosqlite",
    "asyncio",
    "grpc",
    "oracledb",
    "redis",
    "socket",
    "sqlite3",
)
OWNED = [
    "bucketing",
    "diff",
    "environments",
    "evaluation",
    "flagd",
    "flags",
    "keys",
    "limits",
    "resolution",
    "rules",
    "templates",
    "values",
    "windows",
]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_domain_imports_nothing_outside_the_domain(path: Path) -> None:
    bad = {
        name
        for name in imported_modules(path)
        for prefix in FORBIDDEN
        if name == prefix or name.startswith(prefix + ".")
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_every_domain_module_is_checked() -> None:
    found = {m.name for m in pkgutil.iter_modules([str(DOMAIN)])}
    assert set(OWNED) <= found
    assert {p.stem for p in MODULES} >= found


@pytest.mark.parametrize("name", OWNED)
def test_public_surface_is_declared_and_real(name: str) -> None:
    module = importlib.import_module(f"switchyard.domain.{name}")
    exported = module.__all__
    assert len(set(exported)) == len(exported)  # ruff (RUF022) keeps the order
    assert all(hasattr(module, attribute) for attribute in exported)
    public_functions = {
        attribute
        for attribute, value in vars(module).items()
        if callable(value)
        and not attribute.startswith("_")
        and getattr(value, "__module__", None) == module.__name__
    }
    assert public_functions <= set(exported)
