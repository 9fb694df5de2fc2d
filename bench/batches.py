"""Large writes: what the largest batch costs everyone else, and a declarative apply of
a document far larger than one batch.

`python -m bench batch-stall`: one bench server (`bench.server`, built as `switchyard
serve`), a stall probe in a process of its own (`tests/e2e/stall_probe.py`: GetValue
every 10 ms on its own connection), and batches of `--writes` new keys (5,000, the most
the server takes): a dry run, then the same writes applied. A GetValue that arrives
while the event loop is held waits as long as the hold lasts, so the probe's worst
latency during the batches is the longest stall. A control window of the same length
without a batch says what the machine alone costs the probe (on a shared 2-core machine,
tens of milliseconds). It also reports each answer's size (a default client takes at
most 4 MiB) and how many outcomes had their diffs left out to fit.

`python -m bench transfer`: `--keys` keys (50,000 by default, every tenth with an
override) written to one bench server in batches, `switchyard export` of it, then
`switchyard apply -f` of that document to a second, freshly seeded server and
`switchyard diff -f` against it (which must exit 0: the apply reproduced the document),
each timed, as a person runs them (the commands in processes of their own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2

from bench import provenance, report
from bench.serverproc import ServerProcess
from bench.stats import median
from switchyard.gen.v1 import batch_pb2 as bpb
from switchyard.gen.v1 import batch_pb2_grpc
from switchyard.gen.v1 import change_pb2 as cpb
from switchyard.gen.v1 import config_pb2 as pb

_PROJECT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_RECEIVE_LIMIT = 4 * 1024 * 1024


def _create(index: int, prefix: str = "bulk") -> cpb.ProposedWrite:
    return cpb.ProposedWrite(
        create_config=pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key=f"{prefix}.key_{index:06d}",
                type=pb.CONFIG_TYPE_NUMBER,
                category=prefix,
                description="a key of the bulk import, described as a real one would be",
                value=struct_pb2.Value(number_value=index),
                is_active=True,
                is_editable=True,
                is_deletable=True,
            )
        )
    )


class _Probe:
    """The stall probe in a process of its own; `finish` returns its latencies."""

    def __init__(self, address: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.stall_probe", address],
            cwd=_PROJECT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        ready = self._process.stdout.readline().strip()
        if ready != "ready":
            raise RuntimeError(f"the stall probe did not start ({ready!r})")

    def finish(self) -> list[float]:
        out, _ = self._process.communicate(timeout=120)
        latencies: list[float] = json.loads(out)["latencies"]
        return latencies


def _figures(latencies: Sequence[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "calls": len(ordered),
        "p50_ms": median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        "worst_ms": ordered[-1] * 1000,
    }


async def _stall_round(address: str, writes: int, start: int) -> dict[str, Any]:
    probe = _Probe(address)
    figures: dict[str, Any] = {}
    async with grpc.aio.insecure_channel(address) as channel:  # default limits
        batches = batch_pb2_grpc.BatchServiceStub(channel)
        request = bpb.ApplyWritesRequest(writes=[_create(start + i) for i in range(writes)])
        began = time.perf_counter()
        for dry_run in (True, False):
            request.dry_run = dry_run
            started = time.perf_counter()
            reply = await batches.ApplyWrites(request)
            name = "dry_run" if dry_run else "apply"
            figures[f"{name}_seconds"] = time.perf_counter() - started
            figures[f"{name}_answer_bytes"] = reply.ByteSize()
            figures[f"{name}_details_left_out"] = reply.details_left_out
        await asyncio.sleep(1.5)  # the follower reads and publishes the revision
        figures["seconds"] = time.perf_counter() - began
    figures["probe"] = _figures(probe.finish())
    control = _Probe(address)
    await asyncio.sleep(figures["seconds"])
    figures["control"] = _figures(control.finish())
    return figures


def main_stall(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench batch-stall", description=__doc__)
    parser.add_argument("--writes", type=int, default=5000, help="writes per batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    rounds = []
    with ServerProcess() as server:
        for number in range(args.rounds):
            before = server.cpu_seconds()
            figures = asyncio.run(_stall_round(server.address, args.writes, number * args.writes))
            after = server.cpu_seconds()
            if before is not None and after is not None:
                figures["server_main_thread_cpu_seconds"] = (after - before).main_thread
            rounds.append(figures)
            print(
                f"round {number + 1}: dry run {figures['dry_run_seconds']:.1f} s "
                f"({figures['dry_run_answer_bytes'] / 1e6:.2f} MB, "
                f"{figures['dry_run_details_left_out']} diffs left out), apply "
                f"{figures['apply_seconds']:.1f} s ({figures['apply_answer_bytes'] / 1e6:.2f} MB); "
                f"GetValue meanwhile p50 {figures['probe']['p50_ms']:.1f} ms, p99 "
                f"{figures['probe']['p99_ms']:.0f} ms, worst {figures['probe']['worst_ms']:.0f} ms "
                f"(without a batch: p99 {figures['control']['p99_ms']:.0f} ms, worst "
                f"{figures['control']['worst_ms']:.0f} ms)"
            )
    worst = [r["probe"]["worst_ms"] for r in rounds]
    result = {
        "benchmark": "batch stall",
        "commit": provenance.commit(),
        "versions": provenance.versions(["grpcio", "protobuf"]),
        "machine": provenance.machine(load_before, os.getloadavg()),
        "writes": args.writes,
        "rounds": rounds,
        "worst_stall_ms_median": median(worst),
        "answers_fit_a_default_client": all(
            r[f"{name}_answer_bytes"] < DEFAULT_RECEIVE_LIMIT
            for r in rounds
            for name in ("dry_run", "apply")
        ),
    }
    print(f"worst GetValue wait during a batch, median of rounds: {median(worst):.0f} ms")
    print(f"raw numbers: {report.write(result, args.output_dir, prefix='batch-stall')}")
    return 0


# --- a document far larger than one batch --------------------------------------------------


async def _furnish(address: str, keys: int) -> None:
    """`keys` keys, every tenth with an override in staging, in batches of 5,000."""
    writes = []
    for index in range(keys):
        writes.append(_create(index, "doc"))
        if index % 10 == 0:
            writes.append(
                cpb.ProposedWrite(
                    set_value=pb.SetValueRequest(
                        key=f"doc.key_{index:06d}",
                        environment="staging",
                        value=struct_pb2.Value(number_value=-index),
                    )
                )
            )
    async with grpc.aio.insecure_channel(address) as channel:
        batches = batch_pb2_grpc.BatchServiceStub(channel)
        for start in range(0, len(writes), 5000):
            # A key's override after its creation: never split between batches.
            chunk = writes[start : start + 5000]
            await batches.ApplyWrites(bpb.ApplyWritesRequest(writes=chunk), timeout=600)


def _switchyard(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "switchyard", *args, "--timeout", "7200"],
        capture_output=True,
        text=True,
        check=False,
    )
    return time.perf_counter() - started, done


def main_transfer(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench transfer", description=__doc__)
    parser.add_argument("--keys", type=int, default=50_000)
    parser.add_argument("--piece-size", type=int, default=1000)
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    steps: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="switchyard-transfer-") as workdir:
        document = Path(workdir) / "document.yaml"
        with ServerProcess(start_timeout=120) as source:
            started = time.perf_counter()
            asyncio.run(_furnish(source.address, args.keys))
            steps["furnish_seconds"] = time.perf_counter() - started
            seconds, done = _switchyard("export", "-f", str(document), "--address", source.address)
            steps["export"] = {"seconds": seconds, "exit": done.returncode}
        steps["document_bytes"] = document.stat().st_size
        print(
            f"{args.keys:,} keys: written in {steps['furnish_seconds']:.0f} s; exported in "
            f"{steps['export']['seconds']:.0f} s ({steps['document_bytes'] / 1e6:.1f} MB)"
        )
        with ServerProcess(start_timeout=120) as target:
            pieces = ["--piece-size", str(args.piece_size)]
            for name, command in (
                ("diff_before", ["diff", "-f", str(document), "-o", "json", *pieces]),
                ("apply", ["apply", "-f", str(document), "--yes", *pieces]),
                ("diff_after", ["diff", "-f", str(document), *pieces]),
            ):
                seconds, done = _switchyard(*command, "--address", target.address)
                steps[name] = {"seconds": seconds, "exit": done.returncode}
                if name == "diff_before" and done.stdout:
                    plan = json.loads(done.stdout)
                    steps[name]["pieces"] = plan["pieces"]
                    steps[name]["summary"] = plan["summary"]
                else:
                    steps[name]["said"] = done.stderr.strip().splitlines()[-1:]
                print(f"{name}: exit {done.returncode} in {seconds:.0f} s {steps[name]}")
    result = {
        "benchmark": "declarative apply of a large document",
        "commit": provenance.commit(),
        "versions": provenance.versions(["grpcio", "protobuf"]),
        "machine": provenance.machine(load_before, os.getloadavg()),
        "keys": args.keys,
        "piece_size": args.piece_size,
        "steps": steps,
        "reproduced": steps["apply"]["exit"] == 0 and steps["diff_after"]["exit"] == 0,
    }
    print(f"raw numbers: {report.write(result, args.output_dir, prefix='transfer')}")
    return 0 if result["reproduced"] else 1


__all__ = ["main_stall", "main_transfer"]
