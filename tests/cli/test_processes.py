"""The command as a user runs it, in a process of its own: exit codes, no tracebacks,
Ctrl-C ending a watch cleanly, and the completion script."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from prometheus_client import REGISTRY

from switchyard.cli.exit_codes import ExitCode

from ..e2e.helpers import eventually
from ..e2e.processes import run_switchyard
from .conftest import Running
from .test_connection import free_address


async def test_exit_codes_of_a_real_process(running: Running) -> None:
    code, out = await run_switchyard("get", "api.nope", "--address", running.address)
    assert code == ExitCode.NOT_FOUND and "NOT_FOUND" in out

    code, out = await run_switchyard("get", "api.timeout", "--address", free_address())
    assert code == ExitCode.UNAVAILABLE
    assert "is a server running at" in out and "Traceback" not in out

    code, out = await run_switchyard("get")
    assert code == ExitCode.USAGE and "Missing argument" in out


def _open_streams() -> float:
    return REGISTRY.get_sample_value("switchyard_watch_streams") or 0.0


async def test_ctrl_c_ends_a_watch_with_exit_0(running: Running) -> None:
    before = _open_streams()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchyard", "watch", "--address", running.address,
        env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip

    async def watching() -> bool:
        return _open_streams() > before

    # Ctrl-C once the watch is under way (its stream is open on the server), however
    # long starting the process takes on a busy machine; 60 s is far beyond that.
    await eventually(watching, within=60)
    process.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0, err.decode()
    assert b"Traceback" not in err


async def test_completion_scripts_come_from_click() -> None:
    for shell in ("bash", "zsh", "fish"):
        code, out = await run_switchyard("completion", shell)
        assert code == 0 and "_SWITCHYARD_COMPLETE" in out, shell
