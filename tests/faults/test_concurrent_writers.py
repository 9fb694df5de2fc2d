"""Two replicas over one database, eight writers incrementing one counter through either
of them with `expected_version`: every stale write is refused with ABORTED and retried,
and the counter ends at exactly the number of increments, none lost, none doubled."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import grpc

from switchyard.client import error_info, from_value
from switchyard.gen.v1 import config_pb2 as pb

from ..e2e.helpers import eventually, value
from ..redis_servers import RedisServer
from .harness import (
    assert_invariants,
    assert_revisions_gap_free,
    client,
    create_keys,
    deployment,
    history,
    scaled,
)

WRITERS = 8
INCREMENTS = scaled(10)
"""Each writer's; 80 in all by default."""
KEY = "faults.counter"


async def test_writers_on_two_replicas_lose_no_increment(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with deployment(tmp_path, replicas=2, redis=redis_server) as deployed:
        a, b = deployed.servers
        async with client(a) as on_a, client(b) as on_b:
            start = await create_keys(on_a.config, [KEY])
            aborted = 0
            acknowledged: list[pb.SetValueResponse] = []

            async def writer(number: int) -> None:
                nonlocal aborted
                async with client((a, b)[number % 2]) as mine:
                    for _ in range(INCREMENTS):
                        while True:
                            read = await mine.config.GetValue(pb.GetValueRequest(key=KEY))
                            try:
                                written = await mine.config.SetValue(
                                    pb.SetValueRequest(
                                        key=KEY,
                                        value=value(from_value(read.value) + 1),
                                        expected_version=read.version,
                                    )
                                )
                            except grpc.aio.AioRpcError as error:
                                # Only a stale version may refuse a write here, and
                                # it says so; anything else fails the test.
                                if error.code() != grpc.StatusCode.ABORTED:
                                    raise
                                info = error_info(error)
                                assert info is not None and info[0] == "VERSION_MISMATCH"
                                aborted += 1
                                continue
                            acknowledged.append(written)
                            break

            begun = time.monotonic()
            await asyncio.gather(*(writer(n) for n in range(WRITERS)))
            elapsed = time.monotonic() - begun
            total = WRITERS * INCREMENTS

            async def both_read_total() -> bool:
                reads = [
                    await stub.GetValue(pb.GetValueRequest(key=KEY))
                    for stub in (on_a.config, on_b.config)
                ]
                return all(from_value(r.value) == total for r in reads)

            # The replica that did not take the last write hears of it through Redis in
            # milliseconds, and through the poll (0.5 s) at worst: 5 s is ten polls.
            await eventually(both_read_total, within=5)
            rows = [e for e in await history(on_a.config, after=start) if e.key == KEY]
            await assert_revisions_gap_free(on_b.config)

    print(
        f"\n{total} increments by {WRITERS} writers over 2 replicas in {elapsed:.1f} s "
        f"({total / elapsed:.0f}/s), {aborted} ABORTED and retried"
    )
    assert len(acknowledged) == total
    assert sorted(from_value(w.value) for w in acknowledged) == list(range(1, total + 1))
    assert len({w.revision for w in acknowledged}) == total
    # The history holds each increment once, in revision order, each from the value the
    # one before it wrote: no write was based on a value another had replaced.
    assert [from_value(e.new_value) for e in rows] == list(range(1, total + 1))
    for previous, current in itertools.pairwise(rows):
        assert from_value(current.old_value) == from_value(previous.new_value)
    assert sorted(e.revision for e in rows) == sorted(w.revision for w in acknowledged)
    await assert_invariants(deployed.database_url)
