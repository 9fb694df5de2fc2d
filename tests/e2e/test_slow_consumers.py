"""Consumers that stop reading, among live ones, against a real `switchyard serve`.

A client process opens 20 WatchConfig streams over 2 connections and stops reading them:
either its application stops (the process runs on, its gRPC library buffering what fits
in each stream's window) or the whole process is stopped with SIGSTOP. Meanwhile 10
live watchers read, and a writer changes the watched key. The server must cut the
stopped streams off by itself (counted in `switchyard_watch_streams_ended_total`
{reason="slow_consumer"}, the open-stream gauge back to the live ones), without the live
watchers missing or reordering a revision and without the writer or a reader slowing
down; when the stopped client reads again, each of its streams ends with ABORTED
SLOW_CONSUMER naming the revision to resume from, after every message it had been sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from openfeature.schemas.protobuf.flagd.evaluation.v1 import evaluation_pb2 as flagd_pb
from openfeature.schemas.protobuf.flagd.evaluation.v1 import evaluation_pb2_grpc as flagd_grpc
from openfeature.schemas.protobuf.flagd.sync.v1 import sync_pb2, sync_pb2_grpc

from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import config_pb2_grpc, flag_pb2, flag_pb2_grpc

from ..redis_servers import free_port
from .helpers import eventually, value
from .processes import start_server_process, stop_server_process
from .test_metrics import scrape, total
from .watching import Watcher, watching

LIVE = 10
STOPPED = 20
WRITES = 30
BLOB = 16_000
"""Bytes per value: a stream that does not read fills its 64 KiB window in a few events."""
STALL_SECONDS = 1.0
ENDED = "switchyard_watch_streams_ended"
FLAGD_ENDED = "switchyard_flagd_streams_ended"
OPEN = "switchyard_watch_streams"
PROJECT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    address: str
    pid: int
    metrics: int
    channel: grpc.aio.Channel
    config: config_pb2_grpc.ConfigServiceStub = field(init=False)

    def __post_init__(self) -> None:
        self.config = config_pb2_grpc.ConfigServiceStub(self.channel)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    async def metric(self, family: str, suffix: str = "_total", **labels: str) -> float:
        return total((await scrape(self.metrics)).get(family, []), suffix, **labels)


@contextlib.asynccontextmanager
async def serve(workdir: Path) -> AsyncIterator[Server]:
    metrics = free_port()
    process, address = await start_server_process(
        workdir,
        SWITCHYARD_METRICS_LISTEN=f"127.0.0.1:{metrics}",
        SWITCHYARD_STREAM_STALL_SECONDS=str(STALL_SECONDS),
        SWITCHYARD_WATCH_PROGRESS_SECONDS="0.5",
    )
    channel = grpc.aio.insecure_channel(address)
    try:
        yield Server(address, process.pid, metrics, channel)
    finally:
        await channel.close()
        await stop_server_process(process)


@dataclass
class Consumer:
    """The stopped client process (`tests.e2e.stopped_consumer`)."""

    process: asyncio.subprocess.Process

    def stop(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    async def read_again(self) -> list[dict[str, Any]]:
        """Tells it to read its streams to their ends; how each ended."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(b"read\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        ends: list[dict[str, Any]] = json.loads(line)
        return ends


@contextlib.asynccontextmanager
async def stopped_consumer(address: str, *arguments: str) -> AsyncIterator[Consumer]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.stopped_consumer",
        "--address",
        address,
        "--streams",
        str(STOPPED),
        *arguments,
        cwd=PROJECT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        ready = await asyncio.wait_for(process.stdout.readline(), 30)
        assert ready == b"ready\n", ready
        yield Consumer(process)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGCONT)
                process.kill()
            await process.wait()


@dataclass
class Pace:
    """What a phase of writes measured: writes per second, and the latencies of a GetValue
    probe that ran beside them."""

    writes_per_second: float
    probe_seconds: list[float]
    revisions: list[int]

    @property
    def probe_p99(self) -> float:
        ordered = sorted(self.probe_seconds)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def write_phase(server: Server, first: int, until: Callable[[], bool] | None = None) -> Pace:
    """WRITES changes of the watched key (then more, up to 20 s, until `until` holds),
    timed, with a GetValue every 20 ms beside them."""
    probe: list[float] = []
    done = asyncio.Event()

    async def probing() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await server.config.GetValue(pb.GetValueRequest(key="api.timeout"))
            probe.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)

    prober = asyncio.create_task(probing())
    revisions = []
    started = time.perf_counter()
    for n in range(WRITES):
        revisions.append(await write(server, first + n))
    elapsed = time.perf_counter() - started
    pace = Pace(WRITES / elapsed, probe, revisions)
    deadline = time.monotonic() + 20
    n = first + WRITES
    while until is not None and not until() and time.monotonic() < deadline:
        revisions.append(await write(server, n))
        n += 1
        await asyncio.sleep(0.1)
    done.set()
    await prober
    return pace


async def write(server: Server, n: int) -> int:
    blob = f"{n:05d}" + "x" * BLOB
    answer = await server.config.SetValue(pb.SetValueRequest(key="load.blob", value=value(blob)))
    return answer.revision


@contextlib.asynccontextmanager
async def live_watchers(server: Server, after: int) -> AsyncIterator[list[Watcher]]:
    request = pb.WatchConfigRequest(keys=["load.blob"], from_revision=after)
    async with contextlib.AsyncExitStack() as stack:
        watchers = [
            await stack.enter_async_context(watching(server.config, request)) for _ in range(LIVE)
        ]
        for watcher in watchers:  # each stream is open: its first progress message came
            await watcher.until(lambda w: bool(w.progress or w.events), within=10)
        yield watchers


@pytest.mark.parametrize("how", ["application", "process"])
async def test_stopped_consumers_are_cut_off_and_cost_the_live_ones_nothing(
    tmp_path: Path, how: str
) -> None:
    async with serve(tmp_path) as server:
        created = await server.config.CreateConfig(
            pb.CreateConfigRequest(
                config=pb.ConfigDefinition(
                    key="load.blob", type=pb.CONFIG_TYPE_STRING, category="test",
                    is_active=True, is_editable=True,
                )
            )
        )  # fmt: skip
        async with live_watchers(server, created.revision) as live:
            baseline = await write_phase(server, 0)
            rss_before = server.rss_mib()
            async with stopped_consumer(server.address, "--connections", "2") as consumer:
                if how == "process":
                    consumer.stop()
                ended: list[float] = [0.0]

                async def cut_off() -> bool:
                    ended[0] = await server.metric(ENDED, reason="slow_consumer")
                    return ended[0] >= STOPPED

                cut: list[bool] = [False]
                watcher = asyncio.create_task(_poll(cut_off, cut))
                stalled = await write_phase(server, 1000, until=lambda: cut[0])
                await watcher
                rss_during = server.rss_mib()
                assert ended[0] == STOPPED, (
                    f"{ended[0]:.0f} of {STOPPED} stopped streams were cut off"
                )
                await eventually(lambda: _open_streams_are(server, LIVE), within=5)
                written = baseline.revisions + stalled.revisions
                for each in live:
                    await each.until(lambda w: written[-1] in w.revisions(), within=10)
                    assert each.revisions() == written, "a live watcher missed or reordered"
                if how == "process":
                    consumer.resume()
                ends = await consumer.read_again()

    for end in ends:
        assert (end["code"], end.get("reason")) == ("ABORTED", "SLOW_CONSUMER"), end
        resume = int(end["metadata"]["resume_from_revision"])
        got = end["revisions"]
        # It watched from its start, after the first phase: it got every revision of the
        # second up to the one it resumes from, and nothing after it.
        assert got == [r for r in stalled.revisions if r <= resume], (got, resume)
        assert f"resume from revision {resume}" in end["details"]
    # The stopped streams cost the others nothing: the same writes kept their pace, and a
    # read its latency, within a margin for a busy shared machine (the stopped streams
    # are blocked in writes, then gone: the server does the same work in both phases).
    assert stalled.writes_per_second >= 0.5 * baseline.writes_per_second, (baseline, stalled)
    assert stalled.probe_p99 <= max(4 * baseline.probe_p99, baseline.probe_p99 + 0.25)
    # What 20 stopped streams leave on the server: gRPC's buffers for them, not a queue of
    # every change they missed (each change here is 16 kB; 60 of them for 20 streams, as
    # separate copies, would be 19 MiB).
    assert rss_during - rss_before < 16, (rss_before, rss_during)


async def _poll(check: Callable[[], Any], flag: list[bool]) -> None:
    with contextlib.suppress(TimeoutError):
        await eventually(check, within=25)
    flag[0] = True


async def _open_streams_are(server: Server, count: int) -> bool:
    return await server.metric(OPEN, suffix="") == count


DEPENDENTS = 150
"""Flags that follow `toggled`: each of its changes names them all in an EventStream
event (about 13 kB), as the big variant fills each SyncFlags document (16 kB)."""


async def flagd_setup(flags: flag_pb2_grpc.FlagServiceStub) -> None:
    big = struct_pb2.Struct()
    big.update({"on": "x" * BLOB, "off": "y"})
    await flags.UpsertFlag(
        flag_pb2.UpsertFlagRequest(
            flag=flag_pb2.FeatureFlag(key="big", name="big", is_enabled=True, variants=big)
        )
    )
    await toggle(flags, 1)
    for n in range(DEPENDENTS):
        key = f"dependent.{n:04d}." + "d" * 70
        await flags.UpsertFlag(
            flag_pb2.UpsertFlagRequest(
                flag=flag_pb2.FeatureFlag(
                    key=key, name=key, is_enabled=True, prerequisite_features=["toggled"]
                )
            )
        )


async def toggle(flags: flag_pb2_grpc.FlagServiceStub, percent: int) -> None:
    await flags.UpsertFlag(
        flag_pb2.UpsertFlagRequest(
            flag=flag_pb2.FeatureFlag(
                key="toggled", name="toggled", is_enabled=True, rollout_percentage=percent
            )
        )
    )


def live_flagd_stream(channel: grpc.aio.Channel, kind: str) -> grpc.aio.UnaryStreamCall:
    if kind == "sync":
        return sync_pb2_grpc.FlagSyncServiceStub(channel).SyncFlags(sync_pb2.SyncFlagsRequest())
    return flagd_grpc.ServiceStub(channel).EventStream(flagd_pb.EventStreamRequest())


@pytest.mark.parametrize("kind", ["sync", "events"])
async def test_stopped_flagd_streams_are_cut_off_too(tmp_path: Path, kind: str) -> None:
    async with serve(tmp_path) as server:
        flags = flag_pb2_grpc.FlagServiceStub(server.channel)
        await flagd_setup(flags)
        live = live_flagd_stream(server.channel, kind)
        heard: list[tuple[float, str]] = []

        async def listen() -> None:
            async for message in live:
                text = getattr(message, "flag_configuration", "") or str(message.data)
                heard.append((time.monotonic(), text))

        listening = asyncio.create_task(listen())
        async with stopped_consumer(server.address, "--kind", kind) as consumer:
            consumer.stop()
            percent = 1
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if await server.metric(FLAGD_ENDED, reason="slow_consumer") >= STOPPED:
                    break
                percent = percent % 98 + 2
                await toggle(flags, percent)
                await asyncio.sleep(0.05)
            assert await server.metric(FLAGD_ENDED, reason="slow_consumer") == STOPPED
            # The live stream hears the last change within 5 s.
            changed_at = time.monotonic()
            await toggle(flags, 1)
            mark = '["on",100]' if kind == "sync" else "toggled"
            await eventually(lambda: _heard_since(heard, changed_at, mark), within=5)
            consumer.resume()
            ends = await consumer.read_again()
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await listening

    for end in ends:
        assert (end["code"], end.get("reason")) == ("ABORTED", "SLOW_CONSUMER"), end
        assert end["metadata"] == {}  # nothing to resume from: a provider reads anew
        assert "reconnect to read the flags anew" in end["details"]


async def _heard_since(heard: list[tuple[float, str]], since: float, mark: str) -> bool:
    return any(at >= since and mark in text for at, text in heard)
