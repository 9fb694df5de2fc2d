"""`kill -9` in the middle of a burst of writes, of the server or of a writer: every write
that was acknowledged is there afterwards (after a restart, for the server), and no
write is half there: a batch is all in or all out, and the one call in flight on each
stream either committed or left no trace."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from switchyard.gen.v1 import config_pb2 as pb

from ..e2e.helpers import value
from .harness import (
    ROOT,
    BurstKeys,
    assert_acknowledged_present,
    assert_invariants,
    assert_revisions_gap_free,
    burst,
    client,
    client_process_command,
    create_keys,
    deployment,
    scaled,
)

ROUNDS = scaled(3)
KILL_AFTER = 40
"""Acknowledged writes before each kill: by then all eight streams are writing."""
BURST_BOUND = 30.0
"""Seconds for a burst to reach KILL_AFTER acknowledgements (a burst acknowledges some
hundreds a second here; 30 s is for a machine busy with other work)."""


async def until_acknowledged(acknowledged: list[dict[str, Any]], count: int) -> None:
    async def wait() -> None:
        while len(acknowledged) < count:  # noqa: ASYNC110 (acks arrive from another task)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), BURST_BOUND)


async def test_acknowledged_writes_survive_kill_9_of_the_server_mid_burst(
    tmp_path: Path,
) -> None:
    keys = BurstKeys()
    acknowledged: list[dict[str, Any]] = []
    per_round: list[int] = []
    async with deployment(tmp_path, replicas=1) as deployed:
        (server,) = deployed.servers
        async with client(server) as connected:
            await keys.create(connected.config)
        for round_ in range(ROUNDS):
            async with client(server) as connected:
                before = len(acknowledged)
                writing = asyncio.create_task(
                    burst(connected, keys, f"round{round_}", acknowledged.append)
                )
                await until_acknowledged(acknowledged, before + KILL_AFTER)
                await server.kill()
                # Every stream fails once its connection is reset: the burst ends.
                await asyncio.wait_for(writing, BURST_BOUND)
                per_round.append(len(acknowledged) - before)
            await server.start()
            async with client(server) as connected:
                await assert_acknowledged_present(connected.config, keys, acknowledged)
        async with client(server) as connected:
            await assert_revisions_gap_free(connected.config)

    print(
        f"\nserver kill -9 mid-burst, {ROUNDS} rounds: acknowledged writes per round "
        f"{per_round}, all {len(acknowledged)} present after restarts, no batch half-applied"
    )
    await assert_invariants(deployed.database_url)


async def test_a_writer_killed_mid_burst_leaves_nothing_half_applied(
    tmp_path: Path,
) -> None:
    killed, other = BurstKeys("killed"), BurstKeys("other")
    from_process: list[dict[str, Any]] = []
    from_here: list[dict[str, Any]] = []
    async with deployment(tmp_path, replicas=2) as deployed:
        a, b = deployed.servers
        async with client(a) as on_a, client(b) as on_b:
            await killed.create(on_a.config)
            await other.create(on_a.config)
            await create_keys(on_a.config, ["after.kill"])
            # A writer process bursts through A while this one bursts through B, so that
            # the killed writer's calls also wait for the database's lock when it dies.
            writer = await asyncio.create_subprocess_exec(
                *client_process_command("write", a.address, killed.prefix, "process"),
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
            )
            assert writer.stdout is not None

            async def read_acks() -> None:
                assert writer.stdout is not None
                async for line in writer.stdout:
                    if line.endswith(b"\n"):  # a line cut by the kill was never printed
                        from_process.append(json.loads(line))

            reading = asyncio.create_task(read_acks())
            writing: asyncio.Task[None] | None = None
            try:
                await until_acknowledged(from_process, 1)
                writing = asyncio.create_task(burst(on_b, other, "here", from_here.append))
                await until_acknowledged(from_process, KILL_AFTER)
                await until_acknowledged(from_here, 10)  # both are writing
                writer.kill()
                await writer.wait()
                await asyncio.wait_for(reading, BURST_BOUND)
                # A goes on serving: a write through it lands at once.
                begun = time.monotonic()
                await on_a.config.SetValue(pb.SetValueRequest(key="after.kill", value=value(1)))
                after_kill = time.monotonic() - begun
                await until_acknowledged(from_here, len(from_here) + 20)
            finally:
                if writer.returncode is None:
                    writer.kill()
                    await writer.wait()
                if writing is not None:
                    writing.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await writing
            await assert_acknowledged_present(on_b.config, other, from_here)
            await assert_acknowledged_present(on_b.config, killed, from_process)
            await assert_revisions_gap_free(on_a.config)

    print(
        f"\nwriter process kill -9 mid-burst: its {len(from_process)} acknowledged "
        f"writes present, no batch half-applied; the next write through its replica took "
        f"{after_kill * 1000:.0f} ms"
    )
    await assert_invariants(deployed.database_url)
