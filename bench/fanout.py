"""Watch fan-out: how long a committed change takes to reach 1,000 WatchConfig streams.

One bench server (the production stack under uvloop, SQLite in a temporary directory,
demo data), the streams in 2-4 client processes of their own (`bench.fanout_client`),
and this process writing: a SetValue of a new `api.timeout` in production every
`interval` seconds, on a fixed schedule, so a slow fan-out is not given extra time.

The latency of a delivery is the client's receipt stamp minus the writer's stamp taken
just before the SetValue is sent. The commit happens somewhere between that and the
SetValue's return, so this over-states the delay by up to the SetValue's own duration
(a few milliseconds): it never flatters. The report also gives it from the return,
which under-states it; the truth lies between.

A scenario is one server, one stream count and one kind of stream:

- `watch`: WatchConfig on `api.timeout` in production, from the revision read just
  before, so a stream that subscribes late still gets every event (by replay), and
  two warm-up writes that every stream must receive make sure all are live before
  anything is measured;
- `null`: the baseline of `bench.nullfanout`, the same clients and message on the same
  server stack with no Switchyard work behind it. What `watch` takes beyond `null` is
  Switchyard's; what `null` takes is grpc.aio's and the clients' own.

Run with 1,000 and with 100 streams, the client processes hold 10x fewer streams each:
if 100 streams are much faster per event, the cost grows with the streams, on the
server or in the clients, and the CPU figures say which.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import grpc
from google.protobuf import empty_pb2

from bench import fanout_report, nullfanout, profiling, report, scrape
from bench.fanout_client import NULL, WATCH
from bench.fanout_workers import WorkerError, WorkerResult, Workers
from bench.serverproc import CpuTimes, ServerError, ServerProcess
from switchyard import logs
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import config_pb2_grpc
from switchyard.startup import run_until_complete

RESULTS = Path(__file__).resolve().parent / "results"
KEY, ENVIRONMENT = nullfanout.KEY, nullfanout.ENVIRONMENT
WARMUP, MEASURED, PROFILED = "warmup", "measured", "profiled"
FIRST_EVENT_TIMEOUT = 120.0  # 1,000 streams replaying from their revision at once
EVENT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Options:
    rounds: int
    streams: int
    clients: int
    connections: int | None
    """Connections in all; None: one per stream, as 1,000 separate watchers would have."""
    writes: int
    warmup_writes: int
    interval: float
    profiler: str
    profile_writes: int
    profile_rate: int

    def connections_for(self, streams: int) -> int:
        return streams if self.connections is None else min(self.connections, streams)


@dataclass(frozen=True, slots=True)
class Write:
    """One change and when it was made: `sent_ns` just before the call went out,
    `returned_ns` when its answer came back (time.monotonic_ns in this process)."""

    revision: int
    value: float
    sent_ns: int
    returned_ns: int
    phase: str


@dataclass(slots=True)
class ScenarioRun:
    """Everything one scenario measured, raw; `fanout_report` makes sense of it."""

    round: int
    kind: str
    streams: int
    clients: int
    connections: int
    writes: list[Write] = field(default_factory=list)
    received: list[WorkerResult] = field(default_factory=list)
    window_seconds: float = 0.0
    server_cpu: CpuTimes | None = None
    client_cpu: list[CpuTimes | None] = field(default_factory=list)
    server_metrics: dict[str, float] = field(default_factory=dict)
    profile: profiling.Profile | None = None
    profile_note: str = ""


class Writer(Protocol):
    async def write(self, index: int) -> tuple[int, float]:
        """Makes the `index`th change; returns its revision and value."""
        ...


def value_for(index: int) -> float:
    """61, 62, ... 299, then 61 again: always a change (production starts at 60), always
    within api.timeout's validation (1..300)."""
    return float(61 + index % 239)


class SetValueWriter:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = config_pb2_grpc.ConfigServiceStub(channel)

    async def write(self, index: int) -> tuple[int, float]:
        value = value_for(index)
        request = pb.SetValueRequest(key=KEY, environment=ENVIRONMENT, reason="fan-out bench")
        request.value.number_value = value
        answer = await self._stub.SetValue(request, timeout=30)
        if not answer.changed:
            raise ServerError(f"SetValue #{index} changed nothing")
        return answer.revision, value


class PublishWriter:
    """The null baseline's "write": a message handed to every NullWatch stream."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._publish = channel.unary_unary(
            nullfanout.PUBLISH_PATH,
            request_serializer=pb.WatchConfigResponse.SerializeToString,
            response_deserializer=empty_pb2.Empty.FromString,
        )

    async def write(self, index: int) -> tuple[int, float]:
        revision, value = index + 1, value_for(index)
        await self._publish(nullfanout.event(revision, value), timeout=30)
        return revision, value


async def _current_revision(channel: grpc.aio.Channel) -> int:
    """The revision to watch from; also checks the demo data is there."""
    answer = await config_pb2_grpc.ConfigServiceStub(channel).GetValue(
        pb.GetValueRequest(key=KEY, environment=ENVIRONMENT), timeout=30
    )
    if answer.value.number_value != 60:
        raise ServerError(f"GetValue answered {answer.value}; expected 60 (demo data)")
    revision: int = answer.revision
    return revision


class _Session:
    """One scenario in progress: the server, the client processes, the writer."""

    def __init__(
        self, run: ScenarioRun, server: ServerProcess, workers: Workers, writer: Writer
    ) -> None:
        self.run, self.server, self.workers, self.writer = run, server, workers, writer
        self._index = 0

    async def write(self, phase: str) -> Write:
        sent = time.monotonic_ns()
        revision, value = await self.writer.write(self._index)
        done = Write(revision, value, sent, time.monotonic_ns(), phase)
        self._index += 1
        self.run.writes.append(done)
        return done

    async def writes(self, count: int, interval: float, phase: str) -> Write | None:
        """`count` writes on a fixed schedule, one every `interval` seconds from the
        first; the last one, once every stream has it."""
        loop = asyncio.get_running_loop()
        start, last = loop.time(), None
        for index in range(count):
            await asyncio.sleep(max(0.0, start + index * interval - loop.time()))
            last = await self.write(phase)
        if last is not None:
            await self.workers.wait_for(last.revision, EVENT_TIMEOUT)
        return last

    async def warm_up(self, count: int) -> None:
        """Each warm-up write must reach every stream before the next: the first proves
        every stream is subscribed, the others let every path settle."""
        for index in range(count):
            written = await self.write(WARMUP)
            timeout = FIRST_EVENT_TIMEOUT if index == 0 else EVENT_TIMEOUT
            await self.workers.wait_for(written.revision, timeout)

    async def measure(self, options: Options) -> None:
        """The measured writes, with the CPU time of the server and of every client
        process, and the server's watch counters, from the first write to the moment
        the last event has reached every stream."""
        listen = self.server.metrics_listen
        counted = scrape.scrape(listen) if listen else None
        before = (self.server.cpu_seconds(), self.workers.cpu(), time.monotonic())
        await self.writes(options.writes, options.interval, MEASURED)
        after = (self.server.cpu_seconds(), self.workers.cpu(), time.monotonic())
        self.run.window_seconds = after[2] - before[2]
        self.run.server_cpu = _delta(after[0], before[0])
        self.run.client_cpu = [_delta(a, b) for a, b in zip(after[1], before[1], strict=True)]
        if listen and counted is not None:
            self.run.server_metrics = _metric_deltas(counted, scrape.scrape(listen))

    async def profile(self, options: Options, py_spy: str, workdir: Path) -> None:
        """py-spy on the server during more writes, after the measured ones: sampling
        pauses the server, so these writes' latencies are not reported."""
        seconds = math.ceil(options.profile_writes * options.interval + 1.0)  # py-spy: whole s
        output = workdir / f"{self.run.kind}-{self.run.streams}.pyspy"
        recording = asyncio.create_task(
            asyncio.to_thread(
                profiling.record_py_spy,
                py_spy,
                self.server.pid,
                seconds,
                options.profile_rate,
                output,
            )
        )
        await asyncio.sleep(0.5)  # attaching
        await self.writes(options.profile_writes, options.interval, PROFILED)
        recorded = await recording
        if recorded.returncode != 0 or not output.exists():
            self.run.profile_note = f"py-spy could not profile: {recorded.stderr.strip()[-300:]}"
            return
        with output.open() as lines:
            self.run.profile = profiling.parse_collapsed(
                lines,
                workload=f"{self.run.kind} fan-out to {self.run.streams} streams",
                requests=options.profile_writes * self.run.streams,
                seconds=seconds,
                rate=options.profile_rate,
            )


def _delta(after: CpuTimes | None, before: CpuTimes | None) -> CpuTimes | None:
    return None if after is None or before is None else after - before


_WATCHED_METRICS = ("switchyard_watch_events_sent_total", "switchyard_revisions_applied_total")


def _metric_deltas(before: scrape.Samples, after: scrape.Samples) -> dict[str, float]:
    """Server-side counts over the measured writes: events sent (should be streams x
    writes) and revisions the follower fanned out, by what woke it."""
    deltas = {}
    for (name, labels), count in after.items():
        if name in _WATCHED_METRICS:
            label = ",".join(f"{k}={v}" for k, v in labels)
            key = f"{name}{{{label}}}" if label else name
            deltas[key] = count - before.get((name, labels), 0.0)
    deltas["switchyard_watch_streams"] = scrape.value(after, "switchyard_watch_streams")
    return deltas


@contextlib.asynccontextmanager
async def _server(kind: str) -> AsyncIterator[ServerProcess]:
    """A bench server for one scenario: with metrics (the watch counters), and with the
    null fan-out handlers for the baseline."""
    server = ServerProcess(
        metrics_listen=f"127.0.0.1:{scrape.free_port()}", null_fanout=kind == NULL
    )
    await asyncio.to_thread(server.__enter__)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.__exit__, None, None, None)


async def run_scenario(
    round_: int, kind: str, streams: int, options: Options, py_spy: str | None, workdir: Path
) -> ScenarioRun:
    clients = max(1, min(options.clients, streams))
    run = ScenarioRun(round_, kind, streams, clients, options.connections_for(streams))
    async with _server(kind) as server:
        channel = grpc.aio.insecure_channel(server.address)
        try:
            start = await _current_revision(channel) if kind == WATCH else 0
            writer: Writer = SetValueWriter(channel) if kind == WATCH else PublishWriter(channel)
            workers = await Workers.start(
                address=server.address,
                kind=kind,
                streams=streams,
                connections=run.connections,
                count=clients,
                from_revision=start,
            )
            try:
                session = _Session(run, server, workers, writer)
                await session.warm_up(options.warmup_writes)
                await session.measure(options)
                if py_spy is not None:
                    await session.profile(options, py_spy, workdir)
                run.received = await workers.stop()
            except BaseException:
                await workers.kill()
                raise
        finally:
            await channel.close()
    return run


def _scenarios(args: argparse.Namespace) -> list[tuple[str, int]]:
    sizes = [args.streams] + ([args.small_streams] if args.small_streams > 0 else [])
    kinds = [WATCH] + ([NULL] if args.baseline else [])
    return [(kind, size) for size in sizes for kind in kinds]


def _py_spy(profiler: str) -> str | None:
    if profiler == "none":
        return None
    found = profiling.find_py_spy()
    if found is None and profiler == "py-spy":
        raise ServerError("py-spy is not installed: `.venv/bin/pip install py-spy`")
    return found


async def _bench(args: argparse.Namespace, options: Options) -> list[ScenarioRun]:
    """Every scenario in each round, in alternating order (neither always gets the
    quieter slot), each on a fresh server; py-spy in the first round's main scenario."""
    py_spy = _py_spy(options.profiler)
    scenarios = _scenarios(args)
    runs = []
    with tempfile.TemporaryDirectory(prefix="switchyard-fanout-") as tmp:
        for index in range(options.rounds):
            for kind, streams in scenarios if index % 2 == 0 else scenarios[::-1]:
                profiled = py_spy if index == 0 and (kind, streams) == scenarios[0] else None
                run = await run_scenario(index + 1, kind, streams, options, profiled, Path(tmp))
                runs.append(run)
                latency = fanout_report.analyse(run)["latency_ms"]["from_send"]
                print(
                    f"  round {index + 1}/{options.rounds} {kind:<5} x {streams:>4} streams: "
                    f"p50 {latency['p50']:6.1f} ms, p99 {latency['p99']:6.1f} ms"
                )
    return runs


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench fanout",
        description="Watch fan-out: SetValue to delivery on 1,000 WatchConfig streams.",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every scenario")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument(
        "--small-streams", type=int, default=100, help="the comparison run (0: none)"
    )
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument(
        "--connections", type=int, default=None, help="connections in all (default: per stream)"
    )
    parser.add_argument("--writes", type=int, default=30, help="measured writes")
    parser.add_argument("--warmup-writes", type=int, default=2)
    parser.add_argument("--interval", type=float, default=0.15, help="seconds between writes")
    parser.add_argument(
        "--no-baseline", dest="baseline", action="store_false", help="skip the null fan-out"
    )
    parser.add_argument("--profiler", choices=("auto", "py-spy", "none"), default="auto")
    parser.add_argument("--profile-writes", type=int, default=30)
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s")
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    options = Options(
        rounds=max(1, args.rounds),
        streams=args.streams,
        clients=args.clients,
        connections=args.connections,
        writes=args.writes,
        warmup_writes=max(1, args.warmup_writes),
        interval=args.interval,
        profiler=args.profiler,
        profile_writes=args.profile_writes,
        profile_rate=args.profile_rate,
    )
    logs.configure("console", "warning")
    load_before = os.getloadavg()
    print(
        f"fan-out: {options.rounds} rounds of {len(_scenarios(args))} scenarios, "
        f"{options.writes} writes {options.interval * 1000:g} ms apart in each"
    )
    try:
        runs = run_until_complete(_bench(args, options))
    except (ServerError, WorkerError, grpc.RpcError) as error:
        print(f"fan-out bench failed: {error}", file=sys.stderr)
        return 1
    result = fanout_report.build(runs, options, (load_before, os.getloadavg()))
    print(fanout_report.render(result))
    path = report.write(result, args.output_dir, prefix="fanout")
    print(f"raw numbers: {path}")
    return 0 if result["ok"] else 1
