"""Several `switchyard serve` processes over one database file and one real Redis: a
write on one reaches a watcher on another in milliseconds, and a read there answers the
new value; with Redis stopped, the poll of the history still delivers everything; with
Redis back, the fast path returns."""

from __future__ import annotations

import time
from pathlib import Path

import grpc

from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import config_pb2_grpc

from ..redis_servers import RedisServer
from .helpers import eventually, value
from .processes import start_server_process, stop_server_process
from .watching import watching

POLL_SECONDS = 2.0


async def test_replicas_in_separate_processes_stay_in_step(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    settings = {
        "SWITCHYARD_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
        "SWITCHYARD_REDIS_URL": redis_server.url,
        "SWITCHYARD_POLL_SECONDS": str(POLL_SECONDS),
        "SWITCHYARD_WATCH_PROGRESS_SECONDS": "0.5",
    }
    first, first_address = await start_server_process(tmp_path, **settings)
    second, second_address = await start_server_process(tmp_path, **settings)
    try:
        async with (
            grpc.aio.insecure_channel(first_address) as a_channel,
            grpc.aio.insecure_channel(second_address) as b_channel,
        ):
            a = config_pb2_grpc.ConfigServiceStub(a_channel)
            b = config_pb2_grpc.ConfigServiceStub(b_channel)
            start = (await b.GetValue(pb.GetValueRequest(key="api.timeout"))).revision
            request = pb.WatchConfigRequest(
                keys=["api.timeout"], environment="staging", from_revision=start
            )
            async with watching(b, request) as w:
                await w.until(lambda w: bool(w.progress))  # b's stream is live

                async def write_and_wait(n: int) -> float:
                    begun = time.monotonic()
                    await a.SetValue(
                        pb.SetValueRequest(key="api.timeout", value=value(n), environment="staging")
                    )
                    await w.until(lambda w: w.values("api.timeout")[-1:] == [n], within=10)
                    return time.monotonic() - begun

                async def b_reads(n: int) -> bool:
                    read = await b.GetValue(
                        pb.GetValueRequest(key="api.timeout", environment="staging")
                    )
                    return read.value.number_value == n

                fast = await write_and_wait(41)
                await eventually(lambda: b_reads(41), within=1)

                redis_server.stop()
                polled = await write_and_wait(42)
                await eventually(lambda: b_reads(42), within=POLL_SECONDS * 2)

                redis_server.start()
                back = [await write_and_wait(43 + n) for n in range(8)]
    finally:
        await stop_server_process(first)
        await stop_server_process(second)

    assert fast < POLL_SECONDS / 4, f"{fast:.3f}s: through Redis it takes milliseconds"
    assert polled <= POLL_SECONDS * 2
    # The relays reconnect within a second or two; once they have, the fast path is back.
    assert min(back) < POLL_SECONDS / 4, [round(t, 3) for t in back]
    assert w.values("api.timeout") == list(range(41, 51))  # every change, once, in order
