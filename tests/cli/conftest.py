"""The `switchyard` command against a real server on loopback: the server runs in the
test's event loop, the command in a thread of its own (where its own asyncio.run makes
its own loop), through Click's test runner. No contexts file but the test's own, and no
connection setting from the developer's shell."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

from switchyard.cli import main

from ..e2e.conftest import Running, running, serving

__all__ = ["Outcome", "Running", "running", "serving", "switchyard"]

_SETTINGS = (
    "SWITCHYARD_ADDRESS",
    "SWITCHYARD_CONTEXT",
    "SWITCHYARD_TOKEN",
    "SWITCHYARD_TLS_CA",
    "SWITCHYARD_CLIENT_TLS_CERT",
    "SWITCHYARD_CLIENT_TLS_KEY",
    "SWITCHYARD_TIMEOUT",
)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A contexts file of the test's own (absent until written), a clean environment,
    and the server's log kept apart: Click's runner takes over sys.stdout while a command
    runs, and the server's lines would land in what the command printed."""
    config = tmp_path / "config" / "config.yaml"
    monkeypatch.setenv("SWITCHYARD_CONFIG", str(config))
    for name in _SETTINGS:
        monkeypatch.delenv(name, raising=False)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=io.StringIO()))
    try:
        yield config
    finally:
        structlog.reset_defaults()


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


async def switchyard(*args: str, address: str | None = None, **env: str) -> Outcome:
    """Runs `switchyard ARGS` (with `--address` when given); an exception other than the
    exit itself fails the test: the command must never end in a traceback."""
    argv = [*args, "--address", address] if address else list(args)
    result = await asyncio.to_thread(CliRunner().invoke, main, argv, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)
