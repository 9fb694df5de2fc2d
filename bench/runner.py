"""The benchmark's sequence: start the server, check both RPCs answer correctly, warm up,
alternate the two workloads for several rounds, profile, report.

The machine is shared and noisy, so the two workloads are never measured far apart: each
round runs both back to back, the order flips every round (null then GetValue, then
GetValue then null, ...) so neither always gets the quieter slot, and the report takes
the median of the rounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import h2load, profile_runs, render, report
from bench.serverproc import ServerError, ServerProcess
from bench.targets import WORKLOADS, Target, bind, load
from bench.workloads import PreflightError
from switchyard import logs

RESULTS = Path(__file__).resolve().parent / "results"


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Cached GetValue against a null RPC, by h2load."
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of both workloads")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per workload")
    parser.add_argument("--clients", type=int, default=4, help="h2load connections (-c)")
    parser.add_argument("--streams", type=int, default=8, help="streams per connection (-m)")
    parser.add_argument("--threads", type=int, default=1, help="h2load threads (-t)")
    parser.add_argument(
        "--profiler",
        choices=("auto", "py-spy", "cprofile", "none"),
        default="auto",
        help="auto: py-spy when installed, else cProfile",
    )
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s")
    parser.add_argument(
        "--no-hot-path",
        dest="hot_path",
        action="store_false",
        help="skip timing the Python hot path in isolation",
    )
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def _rounds(
    tool: str,
    server: ServerProcess,
    targets: dict[str, Target],
    settings: h2load.Settings,
    rounds: int,
    workdir: Path,
) -> list[report.Run]:
    runs: list[report.Run] = []
    for index in range(rounds):
        order = WORKLOADS if index % 2 == 0 else WORKLOADS[::-1]
        for workload in order:
            before = server.cpu_seconds()
            result = load(tool, targets[workload.name], settings, workdir)
            after = server.cpu_seconds()
            cpu = None if before is None or after is None else after - before
            runs.append(report.Run(index + 1, workload.name, result, cpu))
            print(f"  round {index + 1}/{rounds} {workload.name:<9} {result.rps:>9.0f} RPC/s")
        if not server.alive():
            raise ServerError("the bench server died during the rounds")
    return runs


def _hot_path() -> dict[str, float]:
    """The isolated hot-path timings, or none with a warning: they reach into
    Switchyard's internals, and a refactoring there must not cost the main result."""
    print("  timing the Python hot path in isolation")
    try:
        from bench import hotpath

        return hotpath.measure()
    except Exception as error:
        print(f"  hot-path timing skipped: {error!r}", file=sys.stderr)
        return {}


def _bench(args: argparse.Namespace) -> Path:
    tool = h2load.ensure_h2load()
    settings = h2load.Settings(args.clients, args.streams, args.threads, args.duration)
    options = profile_runs.Options(
        args.profiler, args.profile_seconds, args.profile_rate, args.warmup
    )
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="switchyard-bench-run-") as tmp,
        ServerProcess() as server,
    ):
        workdir = Path(tmp)
        print(f"server pid {server.pid} on {server.address}; h2load {' '.join(settings.args())}")
        targets = bind(server, workdir)
        print("  pre-flight gRPC calls OK (GetValue = 60, Null = Empty)")
        warm = dataclasses.replace(settings, duration=args.warmup)
        for workload in WORKLOADS:  # fills the L1 cache and lets every path settle
            load(tool, targets[workload.name], warm, workdir)
        runs = _rounds(tool, server, targets, settings, args.rounds, workdir)
        profiles = profile_runs.profile(tool, server, targets, settings, options, workdir)
    # After the server has stopped, so the two do not compete for the CPUs.
    hot_path_us = _hot_path() if args.hot_path else {}
    result = report.build(
        runs=runs,
        profiles=profiles,
        hot_path_us=hot_path_us,
        settings=settings,
        warmup=args.warmup,
        h2load_path=tool,
        requests={name: (t.workload, t.response_bytes) for name, t in targets.items()},
        load=(load_before, os.getloadavg()),
    )
    print(render.render(result, profiles))
    return report.write(result, args.output_dir)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    logs.configure("console", "warning")  # the hot-path step opens an application here
    try:
        path = _bench(args)
    except (h2load.LoadError, PreflightError, ServerError) as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    print(f"raw numbers: {path}")
    return 0
