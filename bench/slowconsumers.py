"""Slow consumers: what 2,000 WatchConfig streams whose client stopped reading cost the
writes, the reads and the live watchers of one server.

One bench server (default settings: a stream is cut off at the first change after gRPC
has held its message for 10 s). One client process holds `--live` streams that read
(`bench.slowconsumer_client`, live); this process writes a `--value-bytes` value of one
key, one SetValue after another, with a GetValue every 20 ms beside the writes. Three
phases:

1. `without`: `--writes` writes, with the live streams only;
2. `cutting`: a second client process opens `--stopped` streams over `--connections`
   connections and stops reading them; writes go on until the server has cut every one
   off (`switchyard_watch_streams_ended_total{reason="slow_consumer"}`);
3. `after`: `--writes` more writes, the stopped client still connected and silent.

Reported: writes per second and GetValue p50/p99 per phase, and `after` and `cutting`
as ratios of `without`; how long the cut took; the server's memory (RSS) and its CPU per
write; whether every live stream got every revision in order; how each stopped stream
ended once its client read again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2

from bench import provenance, report, scrape
from bench.serverproc import ServerProcess
from bench.slowconsumer_client import LIVE, STOPPED
from bench.stats import percentile
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import config_pb2_grpc
from switchyard.startup import run_until_complete

RESULTS = Path(__file__).resolve().parent / "results"
KEY = "bench.blob"
CUT = "switchyard_watch_streams_ended_total"


@dataclass
class Phase:
    name: str
    writes: int
    seconds: float
    probe_ms: list[float]
    cpu_seconds: float
    rss_mib: float

    @property
    def writes_per_second(self) -> float:
        return self.writes / self.seconds

    def probe(self, p: float) -> float:
        return percentile(sorted(self.probe_ms), p)

    def as_dict(self) -> dict[str, Any]:
        summary = {k: v for k, v in asdict(self).items() if k != "probe_ms"}
        return {
            **summary,
            "writes_per_second": self.writes_per_second,
            "probe_p50_ms": self.probe(50),
            "probe_p99_ms": self.probe(99),
            "cpu_ms_per_write": 1000 * self.cpu_seconds / self.writes,
        }


class Client:
    """A `bench.slowconsumer_client` process."""

    def __init__(self, address: str, mode: str, streams: int, connections: int, start: int):
        command = [
            sys.executable, "-m", "bench.slowconsumer_client", "--address", address,
            "--key", KEY, "--mode", mode, "--streams", str(streams),
            "--connections", str(connections), "--from-revision", str(start),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if line != "ready\n":
            raise RuntimeError(f"the {mode} client did not start: {line!r}")

    def finish(self, last: int) -> list[dict[str, Any]]:
        """Its streams, read to their ends (a live one once it has revision `last`)."""
        out, _ = self._process.communicate(f"{last}\n", timeout=300)
        ends: list[dict[str, Any]] = json.loads(out)
        return ends


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu(server: ServerProcess) -> float:
    times = server.cpu_seconds()
    return times.process if times is not None else float("nan")


async def _phase(
    name: str,
    server: ServerProcess,
    stub: config_pb2_grpc.ConfigServiceStub,
    value_bytes: int,
    writes: int,
    revisions: list[int],
    until_cut: int | None = None,
) -> Phase:
    probe: list[float] = []
    done = asyncio.Event()

    async def probing() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await stub.GetValue(pb.GetValueRequest(key="api.timeout"))
            probe.append(1000 * (time.perf_counter() - started))
            await asyncio.sleep(0.02)

    prober = asyncio.create_task(probing())
    cpu = _cpu(server)
    started = time.perf_counter()
    made = 0
    while True:
        if until_cut is None and made >= writes:
            break
        if until_cut is not None and made % 5 == 0:
            samples = await asyncio.to_thread(scrape.scrape, server.metrics_listen or "")
            if scrape.value(samples, CUT, {"reason": "slow_consumer"}) >= until_cut:
                break
            if time.perf_counter() - started > 300:
                raise RuntimeError("the stopped streams were not cut off in 300 s")
        text = f"{len(revisions):06d}" + "x" * value_bytes
        answer = await stub.SetValue(
            pb.SetValueRequest(key=KEY, value=struct_pb2.Value(string_value=text))
        )
        revisions.append(answer.revision)
        made += 1
    seconds = time.perf_counter() - started
    done.set()
    await prober
    return Phase(name, made, seconds, probe, _cpu(server) - cpu, _rss_mib(server.pid))


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    metrics = f"127.0.0.1:{scrape.free_port()}"
    with ServerProcess(metrics_listen=metrics) as server:
        channel = grpc.aio.insecure_channel(server.address)
        stub = config_pb2_grpc.ConfigServiceStub(channel)
        created = await stub.CreateConfig(
            pb.CreateConfigRequest(
                config=pb.ConfigDefinition(
                    key=KEY, type=pb.CONFIG_TYPE_STRING, category="bench",
                    is_active=True, is_editable=True,
                )
            )
        )  # fmt: skip
        live = await asyncio.to_thread(
            Client, server.address, LIVE, args.live, max(1, args.live // 50), created.revision
        )
        revisions: list[int] = []
        without = await _phase("without", server, stub, args.value_bytes, args.writes, revisions)
        rss_before = _rss_mib(server.pid)
        stopped = await asyncio.to_thread(
            # From the revision before the last write: each gets that write at once (its
            # first message), and then follows live.
            Client,
            server.address,
            STOPPED,
            args.stopped,
            args.connections,
            revisions[-2],
        )
        stopped_from = revisions[-2]
        cutting = await _phase(
            "cutting", server, stub, args.value_bytes, 0, revisions, until_cut=args.stopped
        )
        after = await _phase("after", server, stub, args.value_bytes, args.writes, revisions)
        lives = await asyncio.to_thread(live.finish, revisions[-1])
        ends = await asyncio.to_thread(stopped.finish, revisions[-1])
        await channel.close()

    complete = sum(1 for stream in lives if stream["revisions"] == revisions)
    endings: dict[str, int] = {}
    exact = 0
    for end in ends:
        label = f"{end.get('code')} {end.get('reason', '')}".strip()
        endings[label] = endings.get(label, 0) + 1
        resume = end.get("resume_from", -1)
        if end["revisions"] == [r for r in revisions if stopped_from < r <= resume]:
            exact += 1
    phases = [without, cutting, after]
    return {
        "benchmark": "slowconsumers",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": provenance.commit(),
        "versions": provenance.versions(["grpcio", "protobuf"]),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "load": os.getloadavg()},
        "settings": vars(args),
        "phases": {phase.name: phase.as_dict() for phase in phases},
        "ratios": {
            "writes_per_second_after": after.writes_per_second / without.writes_per_second,
            "writes_per_second_cutting": cutting.writes_per_second / without.writes_per_second,
            "probe_p99_after": after.probe(99) / without.probe(99),
            "probe_p99_cutting": cutting.probe(99) / without.probe(99),
            "cpu_per_write_after": after.cpu_seconds
            / after.writes
            / (without.cpu_seconds / without.writes),
            "cpu_per_write_cutting": cutting.cpu_seconds
            / cutting.writes
            / (without.cpu_seconds / without.writes),
        },
        "cut_seconds": cutting.seconds,
        "rss_mib": {"before_stopped": rss_before, "after": after.rss_mib},
        "live_streams_complete": f"{complete}/{len(lives)}",
        "stopped_streams_ended": endings,
        "stopped_streams_exact_resume": f"{exact}/{len(ends)}",
    }


def _print(result: dict[str, Any]) -> None:
    columns = ("writes", "w/s", "p50 ms", "p99 ms", "cpu ms/w", "rss MiB")
    print(f"{'phase':<8} " + " ".join(f"{c:>8}" for c in columns))
    for name, phase in result["phases"].items():
        print(
            f"{name:<8} {phase['writes']:>8} {phase['writes_per_second']:>8.1f} "
            f"{phase['probe_p50_ms']:>8.1f} {phase['probe_p99_ms']:>8.1f} "
            f"{phase['cpu_ms_per_write']:>8.1f} {phase['rss_mib']:>8.0f}"
        )
    for name, ratio in result["ratios"].items():
        print(f"{name}: {ratio:.2f}")
    print(f"cut off in {result['cut_seconds']:.1f} s")
    print(f"live streams with every revision in order: {result['live_streams_complete']}")
    print(f"stopped streams ended: {result['stopped_streams_ended']}")
    print(f"... with exactly the revisions up to resume: {result['stopped_streams_exact_resume']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench slowconsumers", description=__doc__)
    parser.add_argument("--live", type=int, default=100, help="streams that read (default 100)")
    parser.add_argument("--stopped", type=int, default=2000, help="streams that stop (2000)")
    parser.add_argument("--connections", type=int, default=20, help="of the stopped client (20)")
    parser.add_argument("--writes", type=int, default=40, help="per measured phase (40)")
    parser.add_argument("--value-bytes", type=int, default=2000, help="size of a value (2000)")
    args = parser.parse_args(argv)
    result = run_until_complete(_run(args))
    _print(result)
    print(f"wrote {report.write(result, RESULTS, 'slowconsumers')}")
    return 0
