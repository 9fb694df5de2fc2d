"""`switchyard serve` runs the console as `make run` does: in its own process, printing
where it is, and refusing before anything starts a setting it cannot use."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from ..e2e.processes import run_switchyard, start_server_process, stop_server_process


async def test_serve_prints_the_console_address_and_serves_it(tmp_path: Path) -> None:
    process, _ = await start_server_process(tmp_path)
    try:
        assert process.stdout is not None
        line = (await process.stdout.readline()).decode()
        found = re.search(r"switchyard console on (http://\S+)", line)
        assert found, f"no console line: {line!r}"
        async with httpx.AsyncClient(base_url=found.group(1)) as client:
            assert (await client.get("/healthz")).text == "ok"
            sign_in = await client.get("/sign-in")
            assert "Continue as the local operator" in sign_in.text  # make run: no auth
    finally:
        await stop_server_process(process)


async def test_serve_refuses_a_session_key_it_cannot_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHYARD_CONSOLE_SESSION_KEY", "not-a-key")
    database = tmp_path / "never.db"
    code, output = await run_switchyard(
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--console-listen",
        "127.0.0.1:0",
        "--database-url",
        f"sqlite:///{database}",
    )
    assert code == 2, output
    assert "SWITCHYARD_CONSOLE_SESSION_KEY must be base64 of 32 random bytes" in output
    assert "Traceback" not in output
    assert not database.exists(), "refused before the database is touched"


async def test_serve_keeps_an_open_console_on_loopback(tmp_path: Path) -> None:
    database = tmp_path / "never.db"
    code, output = await run_switchyard(
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--console-listen",
        "0.0.0.0:0",
        "--database-url",
        f"sqlite:///{database}",
        drop_env=("SWITCHYARD_AUTH", "SWITCHYARD_INSECURE"),
    )
    assert code == 2, output
    assert "refusing to listen on 0.0.0.0:0 without authentication (--console-listen)" in output
    assert not database.exists()
