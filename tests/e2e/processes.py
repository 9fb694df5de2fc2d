"""`python -m switchyard ...` as a user runs it: in a process of its own."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path
from typing import IO


async def start_server_process(
    workdir: Path, *, log: IO[bytes] | None = None, **settings: str
) -> tuple[asyncio.subprocess.Process, str]:
    """`switchyard serve` on a free loopback port, over the default database path under
    `workdir` unless `settings` (SWITCHYARD_* variables) say otherwise; returns the
    process and the address it printed. Its log (stderr) is piped for
    `stop_server_process` to return, or written to `log`: a process that runs long or
    that a test kills must not block on a full pipe nobody reads."""
    env = {
        **os.environ,
        "SWITCHYARD_LISTEN": "127.0.0.1:0",
        "SWITCHYARD_CONSOLE_LISTEN": "127.0.0.1:0",  # several may run at once
    }
    env.pop("SWITCHYARD_DATABASE_URL", None)
    env.update(settings)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switchyard",
        "serve",
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE if log is None else log,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
    match = re.search(r"listening on (\S+)", line.decode())
    assert match, f"no listening line: {line!r}"
    return process, match.group(1)


async def run_switchyard(*args: str, drop_env: tuple[str, ...] = ()) -> tuple[int, str]:
    """Runs `python -m switchyard ARGS` to its end; its exit code and its output (stdout
    and stderr together, as a terminal or a container runtime shows them)."""
    env = {name: value for name, value in os.environ.items() if name not in drop_env}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switchyard",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def stop_server_process(process: asyncio.subprocess.Process) -> str:
    """SIGTERM, as an orchestrator stops it; returns what it wrote to stderr."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    return err.decode()
