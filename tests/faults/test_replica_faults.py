"""A replica killed (`kill -9`) under a watcher, and a replica stopped with SIGTERM while
calls are in flight: the watcher resumes on the other replica from its last revision
and misses nothing, nor gets anything twice; a drained replica finishes what it took,
exits 0, and ends its watch streams with UNAVAILABLE so that clients go elsewhere."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import grpc

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
    history,
    lags,
    scaled,
    watching,
)

WRITES = scaled(300)
RESUME_BOUND = 30.0
"""Seconds for a watcher to resume on the surviving replica and catch up: the kernel
resets the dead replica's connections at once, the client retries within 0.5 s and the
replay is a few hundred rows; 30 s is wide for a busy 2-core machine."""


async def test_a_watch_resumes_on_the_other_replica_after_kill_9(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    key = "failover.value"
    async with deployment(tmp_path, replicas=2, redis=redis_server) as deployed:
        a, b = deployed.servers
        # The watchers' channel reaches B first, and A when B is gone.
        async with client(a) as on_a, client(b, a) as failover:
            start = await create_keys(on_a.config, [key])
            seen: list[Any] = []
            live = failover.live(prefixes=["failover."], progress_timeout=5)
            live.on_change(lambda _key, _old, new: seen.append(new))
            acknowledged: dict[int, float] = {}
            async with (
                live,
                watching(failover.config, prefixes=["failover."], from_revision=start) as watch,
            ):
                for n in range(1, WRITES + 1):
                    if n == WRITES // 2:
                        await b.kill()
                    written = await on_a.config.SetValue(
                        pb.SetValueRequest(key=key, value=value(n))
                    )
                    acknowledged[written.revision] = time.monotonic()
                await watch.reaches(max(acknowledged), within=RESUME_BOUND)

                async def live_caught_up() -> bool:
                    return bool(live.get(key) == WRITES)

                await eventually(live_caught_up, within=RESUME_BOUND)

            # B comes back over the same file and answers what A wrote while it was gone.
            await b.start()
            async with client(b) as on_b:

                async def b_reads_last() -> bool:
                    read = await on_b.config.GetValue(pb.GetValueRequest(key=key))
                    return bool(from_value(read.value) == WRITES)

                await eventually(b_reads_last, within=10)
                await assert_revisions_gap_free(on_b.config)

    assert_delivered_once_in_order(watch, sorted(acknowledged))
    assert watch.interruptions, "the watch never broke: it was not on the killed replica"
    assert watch.interruptions[0].code == grpc.StatusCode.UNAVAILABLE
    # The client library's view resumed too, from the revision before its last event,
    # and ended where the server is.
    assert live.reconnects >= 1
    assert seen[-1] == WRITES and set(seen) <= set(range(1, WRITES + 1))
    # Applied as they came, the values never went back in time, across the failover too.
    assert seen == sorted(seen)
    print(
        f"\nreplica kill -9 under a watch of {WRITES} writes: every revision once, in "
        f"order; {len(watch.interruptions)} interruption(s); longest lag across the "
        f"failover {max(lags(watch, acknowledged)) * 1000:.0f} ms"
    )
    await assert_invariants(deployed.database_url)


IN_FLIGHT = 8
LOCK_HELD = 1.0
"""Seconds the test holds the database's write lock, so that the calls sent to the
replica are still in flight when SIGTERM arrives. The replica waits up to 5 s for the
lock (its busy timeout): 1 s (and the moments around it) leaves a wide margin."""


async def test_sigterm_drains_in_flight_calls_and_watchers_resume_elsewhere(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    keys = [f"drain.key{n}" for n in range(IN_FLIGHT)]
    async with deployment(tmp_path, replicas=2, redis=redis_server) as deployed:
        a, b = deployed.servers
        async with client(a) as on_a, client(b) as on_b, client(a, b) as failover:
            start = await create_keys(on_a.config, [*keys, "drain.after"])
            async with watching(failover.config, prefixes=["drain."], from_revision=start) as w:
                # Another process holds the write lock (as a backup or a long migration
                # would): A's writes wait for it, in flight.
                lock = sqlite3.connect(
                    deployed.database, timeout=10, isolation_level=None, check_same_thread=False
                )
                await asyncio.to_thread(lock.execute, "BEGIN IMMEDIATE")
                try:
                    calls = [
                        asyncio.ensure_future(
                            on_a.config.SetValue(pb.SetValueRequest(key=key, value=value(1)))
                        )
                        for key in keys
                    ]
                    await asyncio.sleep(LOCK_HELD)
                    a.terminate()
                    terminated = time.monotonic()
                    await w.until(lambda w: bool(w.interruptions), within=5)
                    pending = sum(not call.done() for call in calls)
                finally:
                    await asyncio.to_thread(lock.execute, "ROLLBACK")
                    lock.close()
                answers = await asyncio.gather(*calls)
                code = await a.exited(within=30)
                drained = time.monotonic() - terminated

                after = [
                    await on_b.config.SetValue(
                        pb.SetValueRequest(key="drain.after", value=value(n))
                    )
                    for n in range(1, 21)
                ]
                await w.reaches(after[-1].revision, within=RESUME_BOUND)
            entries = await history(on_b.config, after=start)
            await assert_revisions_gap_free(on_b.config)

    assert pending == IN_FLIGHT, "the calls had finished before SIGTERM: nothing was in flight"
    assert [from_value(answer.value) for answer in answers] == [1] * IN_FLIGHT
    recorded = {(e.key, e.revision) for e in entries}
    assert {(answer.key, answer.revision) for answer in answers} <= recorded
    assert code == 0, a.log_tail()
    assert "stopped" in a.log_tail()
    first = w.interruptions[0]
    assert first.code == grpc.StatusCode.UNAVAILABLE, first
    assert "resume from revision" in first.details, first
    expected = sorted([answer.revision for answer in answers] + [x.revision for x in after])
    assert_delivered_once_in_order(w, expected)
    print(
        f"\nSIGTERM with {IN_FLIGHT} writes in flight: all {IN_FLIGHT} completed, exit 0 "
        f"{drained:.2f} s after SIGTERM; the watch resumed on the other replica, "
        f"{len(expected)} revisions once, in order"
    )
    await assert_invariants(deployed.database_url)
