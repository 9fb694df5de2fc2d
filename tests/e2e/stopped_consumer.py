"""A client that stops reading its streams: `python -m tests.e2e.stopped_consumer`.

It opens `--streams` streams (WatchConfig of one key, or flagd's SyncFlags or
EventStream) over `--connections` connections of its own, reads the first message of
each, prints `ready`, and then reads nothing until a line arrives on stdin: the test
either leaves it running (its gRPC library still reads the socket, answers pings and
buffers what fits in each stream's window, as a client whose application stopped
reading does) or stops the whole process with SIGSTOP (nothing reads the socket). On
that line it reads every stream to its end and prints one JSON line: for each stream,
the revisions of the events it got (WatchConfig), how many messages, and how the stream
ended (code, ErrorInfo reason and metadata).

Its channels turn off gRPC's BDP probing, so each stream's receive window stays at
HTTP/2's 64 KiB instead of growing to megabytes: the server feels the back-pressure
after tens of kilobytes, and the tests take seconds. A client with the default window
only buffers more before the same thing happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from openfeature.schemas.protobuf.flagd.evaluation.v1 import evaluation_pb2 as flagd_v1
from openfeature.schemas.protobuf.flagd.evaluation.v1 import evaluation_pb2_grpc as flagd_v1_grpc
from openfeature.schemas.protobuf.flagd.sync.v1 import sync_pb2, sync_pb2_grpc

from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import config_pb2_grpc

WATCH, SYNC, EVENTS = "watch", "sync", "events"
CHANNEL_OPTIONS = (
    ("grpc.use_local_subchannel_pool", 1),  # a connection per channel
    ("grpc.http2.bdp_probe", 0),  # windows stay at 64 KiB
)


def _call(channel: grpc.aio.Channel, kind: str, key: str) -> grpc.aio.UnaryStreamCall:
    if kind == WATCH:
        return config_pb2_grpc.ConfigServiceStub(channel).WatchConfig(
            pb.WatchConfigRequest(keys=[key])
        )
    if kind == SYNC:
        return sync_pb2_grpc.FlagSyncServiceStub(channel).SyncFlags(sync_pb2.SyncFlagsRequest())
    return flagd_v1_grpc.ServiceStub(channel).EventStream(flagd_v1.EventStreamRequest())


def _ending(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    ended: dict[str, Any] = {"code": error.code().name, "details": error.details()}
    for name, value in error.trailing_metadata() or ():
        if name == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    ended["reason"] = info.reason
                    ended["metadata"] = dict(info.metadata)
    return ended


async def _drain(call: grpc.aio.UnaryStreamCall) -> dict[str, Any]:
    revisions: list[int] = []
    messages = 0
    try:
        while True:
            message = await call.read()
            if message is grpc.aio.EOF:
                return {"messages": messages, "revisions": revisions, "code": "OK"}
            messages += 1
            if isinstance(message, pb.WatchConfigResponse) and message.HasField("event"):
                revisions.append(message.event.revision)
    except grpc.aio.AioRpcError as error:
        return {"messages": messages, "revisions": revisions, **_ending(error)}


async def _stdin_line() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.readline()


async def _run(args: argparse.Namespace) -> None:
    channels = [
        grpc.aio.insecure_channel(args.address, options=CHANNEL_OPTIONS)
        for _ in range(args.connections)
    ]
    calls = [
        _call(channels[index % args.connections], args.kind, args.key)
        for index in range(args.streams)
    ]
    for call in calls:
        await call.read()
    print("ready", flush=True)
    await _stdin_line()
    ends = await asyncio.wait_for(asyncio.gather(*(_drain(call) for call in calls)), 60)
    print(json.dumps(ends), flush=True)
    for channel in channels:
        await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.stopped_consumer")
    parser.add_argument("--address", required=True)
    parser.add_argument("--kind", choices=(WATCH, SYNC, EVENTS), default=WATCH)
    parser.add_argument("--key", default="load.blob")
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--connections", type=int, default=2)
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()


__all__ = ["EVENTS", "SYNC", "WATCH"]
