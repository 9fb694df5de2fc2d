"""A client that stops reading its WatchConfig streams (a process stopped with SIGSTOP)
among clients that read: the live watchers get every revision in order and on time,
and the server ends the stopped client's streams with ABORTED `SLOW_CONSUMER` naming the
revision to resume from, as the README promises, without waiting for the client to
read again. Resumed from there, the stopped client misses nothing and gets nothing
twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path

from switchyard.gen.v1 import config_pb2 as pb

from ..e2e.helpers import value
from ..redis_servers import free_port
from .harness import (
    ROOT,
    assert_delivered_once_in_order,
    assert_invariants,
    assert_revisions_gap_free,
    client,
    client_process_command,
    create_keys,
    deployment,
    lags,
    metric,
    percentile,
    scaled,
    watching,
)

STOPPED_STREAMS = scaled(20)
LIVE_WATCHERS = 3
WRITES = 150
"""At most: the writes stop once the server has ended every stopped stream."""
QUEUE = 16
"""SWITCHYARD_WATCH_QUEUE_REVISIONS for this server (1024 by default): a stopped consumer
overflows it some 30 revisions after it stops (its 16 and what its flow-control windows
took), well within 150 writes, and soon enough for a busy machine (see STOPPED_FOR)."""
PADDING = "x" * 4000
"""Each value is 4 KB, so that the stopped client's flow-control windows fill within the
first few dozen revisions."""
LAG_BOUND = 5.0
"""Seconds from a write's acknowledgement to its arrival at a live watcher, at most.
Unhindered it is milliseconds here; a server held up by the stopped client would show
seconds. 5 s leaves room for a busy 2-core machine."""
STOPPED_FOR = 7.0
"""Seconds the client stays stopped at most: until the server has ended all its streams
(checked every 8 writes), and not 10 s, when grpc drops a connection whose peer has
stopped reading (a ping times out) and the client could no longer hear how its streams
ended. The writes up to the cut-off take about a second here, 4 s when the machine is
busiest."""
KEY = "stall.value"


async def slow_consumers_ended(metrics: str) -> float:
    """How many watch streams the server has ended as slow consumers."""
    return await metric(metrics, "switchyard_watch_streams_ended_total", 'reason="slow_consumer"')


async def test_a_stopped_consumer_is_cut_off_and_the_live_ones_keep_up(tmp_path: Path) -> None:
    metrics = f"127.0.0.1:{free_port()}"
    async with deployment(
        tmp_path,
        replicas=1,
        SWITCHYARD_WATCH_QUEUE_REVISIONS=str(QUEUE),
        SWITCHYARD_METRICS_LISTEN=metrics,
        SWITCHYARD_MAX_STREAMS_PER_IDENTITY=str(STOPPED_STREAMS + LIVE_WATCHERS + 10),
    ) as deployed:
        (server,) = deployed.servers
        async with client(server) as connected:
            start = await create_keys(connected.config, [KEY], pb.CONFIG_TYPE_STRING, "")
            consumer = await asyncio.create_subprocess_exec(
                *client_process_command(
                    "watch", server.address, "stall.", str(start), str(STOPPED_STREAMS)
                ),
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            assert consumer.stdin is not None and consumer.stdout is not None
            acknowledged: dict[int, float] = {}
            try:
                ready = await asyncio.wait_for(consumer.stdout.readline(), 60)
                assert ready == b"ready\n", ready
                async with contextlib.AsyncExitStack() as stack:
                    live = [
                        await stack.enter_async_context(
                            watching(connected.config, prefixes=["stall."], from_revision=start)
                        )
                        for _ in range(LIVE_WATCHERS)
                    ]
                    consumer.send_signal(signal.SIGSTOP)
                    stopped = time.monotonic()
                    ended = 0.0
                    for n in range(1, WRITES + 1):
                        written = await connected.config.SetValue(
                            pb.SetValueRequest(key=KEY, value=value(f"{n}:{PADDING}"))
                        )
                        acknowledged[written.revision] = time.monotonic()
                        if n >= QUEUE and n % 8 == 0:
                            ended = await slow_consumers_ended(metrics)
                            if ended >= STOPPED_STREAMS:
                                break  # cut off: the client may read again
                    last = max(acknowledged)
                    for watch in live:
                        await watch.reaches(last, within=LAG_BOUND)

                    # Still stopped: the server must end its streams by itself.
                    while ended < STOPPED_STREAMS and time.monotonic() - stopped < STOPPED_FOR:
                        await asyncio.sleep(0.1)
                        ended = await slow_consumers_ended(metrics)
                    stopped_for = time.monotonic() - stopped
                    consumer.send_signal(signal.SIGCONT)

                consumer.stdin.write(f"{last}\n".encode())
                await consumer.stdin.drain()
                line = await asyncio.wait_for(consumer.stdout.readline(), 120)
                assert await asyncio.wait_for(consumer.wait(), 30) == 0
            finally:
                if consumer.returncode is None:
                    consumer.kill()
                    await consumer.wait()
            await assert_revisions_gap_free(connected.config)

    revisions = sorted(acknowledged)
    all_lags = [lag for watch in live for lag in lags(watch, acknowledged)]
    p50, p99 = (percentile(all_lags, f) * 1000 for f in (0.5, 0.99))
    print(
        f"\n{STOPPED_STREAMS} streams of a stopped client among {LIVE_WATCHERS} live ones, "
        f"{len(acknowledged)} writes of 4 KB: live lag p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
        f"max {max(all_lags) * 1000:.0f} ms; {ended:.0f} stopped streams ended by the "
        f"server while it was stopped ({stopped_for:.1f} s)"
    )
    for watch in live:
        assert_delivered_once_in_order(watch, revisions)
        assert not watch.interruptions, watch.interruptions
    assert max(all_lags) <= LAG_BOUND
    assert ended >= STOPPED_STREAMS, (
        f"the server ended {ended:.0f} of the {STOPPED_STREAMS} stopped streams as slow "
        f"consumers in the {stopped_for:.1f} s the client was stopped "
        "(switchyard_watch_streams_ended_total)"
    )

    report = json.loads(line)
    assert len(report) == STOPPED_STREAMS
    for stream in report:
        told = [i for i in stream["interruptions"] if i["reason"] == "SLOW_CONSUMER"]
        assert told, (f"stopped for {stopped_for:.1f} s", stream["interruptions"])
        assert all(i["code"] == "ABORTED" and i["resume_from"] for i in told), told
        # Resumed where it was told: every revision once, in order.
        assert stream["revisions"] == revisions
    await assert_invariants(deployed.database_url)
