"""Redis killed (`kill -9`) or hung (SIGSTOP, then SIGCONT) in the middle of a stream of
watched writes: the writes go on, every revision reaches a watcher on each replica once
and in order (through the history poll while Redis is away), and once Redis is back
both replicas read the last value (no stale entry survives in the shared cache)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from switchyard.client import from_value
from switchyard.gen.v1 import config_pb2 as pb

from ..e2e.helpers import eventually, value
from ..redis_servers import RedisServer
from .harness import (
    assert_delivered_once_in_order,
    assert_invariants,
    assert_revisions_gap_free,
    client,
    create_keys,
    deployment,
    lags,
    percentile,
    scaled,
    watching,
)

WRITES = scaled(300)
KEY = "stream.value"
LAG_BOUND = 10.0
"""Seconds from a write's acknowledgement to its arrival at a watcher, at most. Through
Redis it is milliseconds; while Redis is gone the other replica polls every 0.5 s, and a
Redis call gives up after 0.5 s: 10 s leaves a wide margin on a busy 2-core machine."""


@pytest.mark.parametrize("fault", ["kill -9", "SIGSTOP"])
async def test_watched_writes_survive_redis_faults(
    tmp_path: Path, redis_server: RedisServer, fault: str
) -> None:
    async with deployment(tmp_path, replicas=2, redis=redis_server) as deployed:
        a, b = deployed.servers
        async with client(a) as on_a, client(b) as on_b:
            start = await create_keys(on_a.config, [KEY])
            acknowledged: dict[int, float] = {}
            wrote: dict[int, int] = {}
            slowest = 0.0
            async with (
                watching(on_a.config, prefixes=["stream."], from_revision=start) as local,
                watching(on_b.config, prefixes=["stream."], from_revision=start) as remote,
            ):
                for n in range(1, WRITES + 1):
                    if n == WRITES // 3:
                        if fault == "kill -9":
                            redis_server.kill()
                        else:
                            redis_server.pause()
                    if n == 2 * WRITES // 3:
                        if fault == "kill -9":
                            redis_server.start()
                        else:
                            redis_server.resume()
                    begun = time.monotonic()
                    written = await on_a.config.SetValue(
                        pb.SetValueRequest(key=KEY, value=value(n))
                    )
                    acknowledged[written.revision] = time.monotonic()
                    slowest = max(slowest, acknowledged[written.revision] - begun)
                    wrote[written.revision] = n
                last = max(acknowledged)
                await local.reaches(last, within=LAG_BOUND)
                await remote.reaches(last, within=LAG_BOUND)

            async def both_read_last() -> bool:
                reads = [
                    await stub.GetValue(pb.GetValueRequest(key=KEY))
                    for stub in (on_a.config, on_b.config)
                ]
                return all(from_value(r.value) == WRITES for r in reads)

            await eventually(both_read_last, within=5)
            await assert_revisions_gap_free(on_a.config)

    revisions = sorted(acknowledged)
    for watch in (local, remote):
        assert_delivered_once_in_order(watch, revisions)
        # An event carries the value when it is sent: its revision's, or a newer one.
        assert all(d.value >= wrote[d.revision] for d in watch.deliveries)
        assert watch.values() == sorted(watch.values())
        assert watch.values()[-1] == WRITES
    remote_lags = lags(remote, acknowledged)
    print(
        f"\nRedis {fault} during {WRITES} writes: every revision once, in order, on both "
        f"replicas; other replica's lag p50 {percentile(remote_lags, 0.5) * 1000:.0f} ms, "
        f"max {max(remote_lags) * 1000:.0f} ms; slowest write {slowest * 1000:.0f} ms"
    )
    assert max(remote_lags) <= LAG_BOUND
    await assert_invariants(deployed.database_url)
