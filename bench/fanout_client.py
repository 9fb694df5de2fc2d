"""One client process of the fan-out benchmark: `python -m bench.fanout_client`.

It opens its share of the streams (WatchConfig, or the null baseline's NullWatch), each
on a connection of its own by default, and stamps every message the moment its stream's
task gets it, twice: `time.monotonic_ns()`, to compare with the times the runner took
around each SetValue (CLOCK_MONOTONIC is one clock for the whole machine), and
`time.time_ns()`, to compare with the event's `changed_at`, the server's wall-clock
stamp taken as it wrote the history row, just before the commit.

Why processes: a Python gRPC client tops out near 4,000 messages/s on a 2-core machine
(about 100 µs of CPU each, measured here), so one process holding 1,000 streams would
spend a quarter of a second draining each event and measure itself, not the server.

It talks to the runner in JSON lines. On stdout: `{"complete": revision}` when all of
its streams have that revision, `{"error": text}` when a stream ends (the run is then
worthless), and, after the runner writes `stop` on stdin, `{"results": ...}`: per
stream, every event as `[revision, monotonic_ns, time_ns, value, changed_at_ns]`, plus
the number of progress messages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import empty_pb2

from bench import nullfanout
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import config_pb2_grpc
from switchyard.startup import run_until_complete

WATCH, NULL = "watch", "null"
KEY, ENVIRONMENT = nullfanout.KEY, nullfanout.ENVIRONMENT
# Without it, channels to the same target share one subchannel, hence one connection.
_OWN_CONNECTION = (("grpc.use_local_subchannel_pool", 1),)

Event = tuple[int, int, int, float, int]


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Streams:
    """This process's streams and what each has received."""

    def __init__(self, count: int) -> None:
        self.received: list[list[Event]] = [[] for _ in range(count)]
        self.progress = 0
        self._count = count
        self._arrived: Counter[int] = Counter()
        self.stopping = False

    async def follow(self, index: int, call: grpc.aio.UnaryStreamCall) -> None:
        """Records stream `index`'s events. The stamps come first: what follows them
        (parsing the fields, counting) is this client's time, not the server's."""
        events = self.received[index]
        try:
            async for response in call:
                now, wall = time.monotonic_ns(), time.time_ns()  # what follows is the client's
                if response.WhichOneof("message") == "event":
                    event = response.event
                    changed_at = event.changed_at.seconds * 1_000_000_000 + event.changed_at.nanos
                    events.append((event.revision, now, wall, event.value.number_value, changed_at))
                    self._arrived[event.revision] += 1
                    if self._arrived[event.revision] == self._count:
                        _emit({"complete": event.revision})
                else:
                    self.progress += 1
        except grpc.aio.AioRpcError as error:
            if not self.stopping:
                _emit({"error": f"stream {index}: {error.code().name} {error.details()}"})
            return
        if not self.stopping:
            _emit({"error": f"stream {index} ended by the server"})

    def results(self) -> dict[str, Any]:
        return {"streams": self.received, "progress": self.progress}


def _call(channel: grpc.aio.Channel, kind: str, from_revision: int) -> grpc.aio.UnaryStreamCall:
    if kind == WATCH:
        request = pb.WatchConfigRequest(
            keys=[KEY], environment=ENVIRONMENT, from_revision=from_revision
        )
        return config_pb2_grpc.ConfigServiceStub(channel).WatchConfig(request)
    null_watch = channel.unary_stream(
        nullfanout.WATCH_PATH,
        request_serializer=empty_pb2.Empty.SerializeToString,
        response_deserializer=pb.WatchConfigResponse.FromString,
    )
    return null_watch(empty_pb2.Empty())


async def _stdin_line() -> str:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return (await reader.readline()).decode()


async def _run(args: argparse.Namespace) -> None:
    connections = max(1, min(args.connections, args.streams))
    channels = [
        grpc.aio.insecure_channel(args.address, options=_OWN_CONNECTION) for _ in range(connections)
    ]
    streams = Streams(args.streams)
    calls = [
        _call(channels[index % connections], args.kind, args.from_revision)
        for index in range(args.streams)
    ]
    tasks = [asyncio.create_task(streams.follow(i, call)) for i, call in enumerate(calls)]
    await _stdin_line()  # "stop", or end of file when the runner went away
    streams.stopping = True
    for call in calls:
        call.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    _emit({"results": streams.results()})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout_client", description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--kind", choices=(WATCH, NULL), required=True)
    parser.add_argument("--from-revision", type=int, default=0)
    run_until_complete(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
