"""A client process of the slow-consumer benchmark: `python -m bench.slowconsumer_client`.

It opens `--streams` WatchConfig streams of one key over `--connections` connections of
its own (`--from-revision` on), then either reads them (`live`: each stream's event
revisions are kept) or stops reading after the first message of each (`stopped`: its
gRPC library buffers what fits in each stream's 64 KiB window, BDP probing being off so
that windows do not grow to megabytes, and then the server's sends stop). It prints
`ready` once every stream has had its first message; on a line on stdin it reads every
stream to its end (a live one once it has the revision that line names, then cancelled)
and prints one JSON object: per stream, the event revisions it got and how it ended.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import config_pb2_grpc
from switchyard.startup import run_until_complete

LIVE, STOPPED = "live", "stopped"
_OPTIONS = (("grpc.use_local_subchannel_pool", 1), ("grpc.http2.bdp_probe", 0))
_BATCH = 250
stub = config_pb2_grpc.ConfigServiceStub


class Stream:
    def __init__(self, call: grpc.aio.UnaryStreamCall) -> None:
        self.call = call
        self.revisions: list[int] = []
        self.ended: dict[str, Any] = {}
        self.first = asyncio.Event()

    async def read(self, until_first: bool = False) -> None:
        try:
            while True:
                message = await self.call.read()
                if message is grpc.aio.EOF:
                    self.ended = {"code": "OK"}
                    return
                self.first.set()
                if message.HasField("event"):
                    self.revisions.append(message.event.revision)
                if until_first:
                    return
        except grpc.aio.AioRpcError as error:
            self.first.set()
            self.ended = _ending(error)
        except asyncio.CancelledError:
            if not self.call.cancelled():
                raise
            self.ended = {"code": "CANCELLED"}  # by this client, at the end of a run

    def result(self) -> dict[str, Any]:
        return {"revisions": self.revisions, **self.ended}


def _ending(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    ended: dict[str, Any] = {"code": error.code().name, "details": error.details()}
    for name, value in error.trailing_metadata() or ():
        if name == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    ended["reason"] = info.reason
                    ended["resume_from"] = int(info.metadata.get("resume_from_revision", -1))
    return ended


async def _stdin_line() -> int:
    """The revision on the next line of stdin (0 when there is none)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    line = (await reader.readline()).decode().strip()
    return int(line) if line.isdigit() else 0


async def _run(args: argparse.Namespace) -> None:
    channels = [
        grpc.aio.insecure_channel(args.address, options=_OPTIONS) for _ in range(args.connections)
    ]
    request = pb.WatchConfigRequest(keys=[args.key], from_revision=args.from_revision)
    streams: list[Stream] = []
    readers: list[asyncio.Task[None]] = []
    # In batches, each open before the next: grpc core cancels calls beyond 1,000 that the
    # server has not picked up yet (`grpc.server.max_pending_requests`).
    for first in range(0, args.streams, _BATCH):
        batch = [
            Stream(stub(channels[n % args.connections]).WatchConfig(request))
            for n in range(first, min(first + _BATCH, args.streams))
        ]
        streams += batch
        if args.mode == LIVE:
            readers += [asyncio.create_task(stream.read()) for stream in batch]
            await asyncio.gather(*(stream.first.wait() for stream in batch))
        else:
            await asyncio.gather(*(stream.read(until_first=True) for stream in batch))
    early = [stream.ended for stream in streams if stream.ended]
    if early:
        print(f"{len(early)} streams ended at once: {early[0]}", file=sys.stderr, flush=True)
    print("ready", flush=True)
    last = await _stdin_line()
    if args.mode == LIVE:
        # Until every stream has the last revision written (or 30 s pass), then cancel.
        deadline = asyncio.get_running_loop().time() + 30
        while any(not s.ended and last not in s.revisions[-1:] for s in streams):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        for stream in streams:
            stream.call.cancel()
        await asyncio.gather(*readers)
    else:
        await asyncio.wait_for(asyncio.gather(*(stream.read() for stream in streams)), 120)
    print(json.dumps([stream.result() for stream in streams]), flush=True)
    for channel in channels:
        await channel.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.slowconsumer_client", description=__doc__
    )
    parser.add_argument("--address", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--mode", choices=(LIVE, STOPPED), required=True)
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--from-revision", type=int, default=0)
    run_until_complete(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
