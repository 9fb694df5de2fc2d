"""The Node.js example (examples/node) against a real server, as a polyglot user runs it:
it prints the value it loads, hears a change made with `switchyard set` within moments,
resumes from the last revision it saw after the server restarts, and stops on SIGTERM.

`make test` installs its npm packages (`npm ci --prefix examples/node`) first."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict

from switchyard.gen.v1 import config_pb2 as pb

from .conftest import Running, serving
from .helpers import value
from .processes import run_switchyard

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "node"
KEY, ENVIRONMENT = "api.timeout", "production"


def _node() -> str:
    node = shutil.which("node")
    assert node, "node is missing: install Node.js 18 or newer (make test needs it)"
    assert (EXAMPLE / "node_modules" / "@grpc" / "grpc-js").is_dir(), (
        "the example's packages are missing: run `make test` (or npm ci --prefix examples/node)"
    )
    return node


class NodeExample:
    """`node examples/node/index.js KEY ENVIRONMENT` pointed at `address`: its JSON lines
    as they come, its stderr kept for the failure message."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stderr: list[str] = []
        assert process.stderr is not None
        self._drain = asyncio.create_task(self._read_stderr(process.stderr))

    @classmethod
    async def start(cls, address: str) -> NodeExample:
        # Nothing from the developer's shell (a token, another key) may steer it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
        env["SWITCHYARD_ADDRESS"] = address
        process = await asyncio.create_subprocess_exec(
            _node(),
            str(EXAMPLE / "index.js"),
            KEY,
            ENVIRONMENT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            self.stderr.append(line.decode())

    async def next_line(self, within: float = 5.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), within)
        except TimeoutError:
            stderr = "".join(self.stderr)
            raise AssertionError(f"no line in {within} s; stderr:\n{stderr}") from None
        assert line, f"the example ended; stderr:\n{''.join(self.stderr)}"
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    async def stop(self) -> int:
        """SIGTERM, as a process manager stops it; its exit code."""
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 5)
        await self._drain
        return code

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        await self._drain


@contextlib.asynccontextmanager
async def node_example(address: str) -> AsyncIterator[NodeExample]:
    node = await NodeExample.start(address)
    try:
        yield node
    finally:
        await node.close()


async def current(server: Running) -> Any:
    answer = await server.config.GetValue(pb.GetValueRequest(key=KEY, environment=ENVIRONMENT))
    return MessageToDict(answer.value)


async def test_the_example_passes_node_check() -> None:
    process = await asyncio.create_subprocess_exec(
        _node(), "--check", str(EXAMPLE / "index.js"), stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, err.decode()


async def test_loads_a_value_and_prints_a_change_made_with_the_cli(running: Running) -> None:
    async with node_example(running.address) as node:
        loaded = await node.next_line()
        assert loaded["event"] == "loaded"
        assert (loaded["key"], loaded["value"]) == (KEY, await current(running))

        code, out = await run_switchyard(
            "set", KEY, "45", "--env", ENVIRONMENT,
            "--address", running.address, "--reason", "node-example",
        )  # fmt: skip
        assert code == 0, out

        changed = await node.next_line(within=5)
        assert (changed["event"], changed["key"], changed["value"]) == ("changed", KEY, 45)
        assert changed["revision"] > loaded["revision"]
        assert await node.stop() == 0, "".join(node.stderr)
    assert "SIGTERM" in "".join(node.stderr)


async def test_resumes_from_the_last_revision_after_the_server_restarts(tmp_path: Path) -> None:
    database = tmp_path / "node.db"
    node: NodeExample | None = None
    try:
        async with serving(database) as first:
            address = first.address
            node = await NodeExample.start(address)
            loaded = await node.next_line()
            assert loaded["event"] == "loaded"
        # The example now retries against a closed port. A change committed meanwhile (by
        # a server elsewhere, over the same database) must reach it when its server is back.
        async with serving(database) as elsewhere:
            written = await elsewhere.config.SetValue(
                pb.SetValueRequest(
                    key=KEY, value=value(46), environment=ENVIRONMENT, reason="node-example"
                )
            )
        assert written.revision > loaded["revision"]

        async with serving(database, listen=address):
            changed = await node.next_line(within=8)
            assert changed == {
                "event": "changed",
                "key": KEY,
                "environment": ENVIRONMENT,
                "value": 46,
                "revision": written.revision,
            }
            assert await node.stop() == 0, "".join(node.stderr)
        assert any("retrying from revision" in line for line in node.stderr)
    finally:
        if node is not None:
            await node.close()
