"""`switchyard health` as a container health check runs it: against a real server
(`python -m switchyard serve` in its own process) it says SERVING and exits 0; against a
port nobody listens on it says unreachable and exits 1."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest


@pytest.fixture
async def server_address(tmp_path: Path) -> AsyncIterator[str]:
    """A server on a free loopback port over a new database in a temporary directory."""
    env = {**os.environ, "SWITCHYARD_LISTEN": "127.0.0.1:0"}
    env.pop("SWITCHYARD_DATABASE_URL", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switchyard",
        "serve",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        match = re.search(r"listening on (\S+)", line.decode())
        assert match, f"no listening line: {line!r}"
        yield match.group(1)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err.decode()


async def _health(*args: str) -> tuple[int, str]:
    """Runs `python -m switchyard health ARGS`; returns its exit code and its output
    (stdout and stderr together, as a container runtime records them)."""
    env = dict(os.environ)
    env.pop("SWITCHYARD_LISTEN", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switchyard",
        "health",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, out.decode()


def _closed_port() -> int:
    """A loopback port that nothing listens on (bound for a moment, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_health_says_serving_and_exits_0(server_address: str) -> None:
    code, output = await _health("--address", server_address)

    assert code == 0, output
    assert output.strip() == "SERVING"


async def test_health_of_a_served_service(server_address: str) -> None:
    code, output = await _health(
        "--address", server_address, "--service", "switchyard.v1.ConfigService"
    )

    assert code == 0, output
    assert "SERVING" in output


async def test_health_of_an_unknown_service_exits_1(server_address: str) -> None:
    code, output = await _health("--address", server_address, "--service", "no.such.Service")

    assert code == 1, output
    assert "SERVICE_UNKNOWN" in output


async def test_health_without_a_server_says_unreachable_and_exits_1() -> None:
    address = f"127.0.0.1:{_closed_port()}"

    code, output = await _health("--address", address, "--timeout", "3")

    assert code == 1, output
    assert "unreachable" in output
    assert len(output.strip().splitlines()) == 1, output
