"""`switchyard health` as a container health check runs it: against a real server
(`python -m switchyard serve` in its own process) it says SERVING and exits 0; against a
port nobody listens on it says unreachable and exits 1."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .processes import run_switchyard, start_server_process


@pytest.fixture
async def server_address(tmp_path: Path) -> AsyncIterator[str]:
    """A server on a free loopback port over a new database in a temporary directory."""
    process, address = await start_server_process(tmp_path)
    try:
        yield address
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err.decode()


async def _health(*args: str) -> tuple[int, str]:
    return await run_switchyard("health", *args, drop_env=("SWITCHYARD_LISTEN",))


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
