"""The sequence of an RPC-against-null benchmark (`getvalue`, `evalflag`): start the
server, check both RPCs answer correctly, warm up, alternate the two workloads for
several rounds, optionally again below saturation, profile, report.

The machine is shared and noisy, so the two workloads are never measured far apart: each
round runs both back to back, the order flips every round (null then the RPC, then the
RPC then null, ...) so neither always gets the quieter slot, and the report takes the
median of the rounds.

The saturated rounds measure throughput; their latencies are mostly queueing (requests in
flight / throughput), whatever the RPC. A latency aim needs loads below saturation,
alternated just the same: `--serial`, one request in flight (h2load -c 1 -m 1), the RPC's
own latency with no queue at all; `--paced FRACTION`, requests arriving as a Poisson
process (an h2load timing script, the same moments for both workloads in a round) at that
fraction of the RPC's saturated throughput, queueing now and then as independent callers'
requests do.
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
from bench.comparison import EVALUATE_FLAG_VS_NULL, GET_VALUE_VS_NULL, Comparison
from bench.serverproc import ServerError, ServerProcess
from bench.stats import median
from bench.targets import Target, bind, load, load_poisson
from bench.workloads import PreflightError, Workload
from switchyard import logs

RESULTS = Path(__file__).resolve().parent / "results"


def _arguments(comparison: Comparison, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m bench {comparison.name}",
        description=f"{comparison.title}, by h2load.",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of both workloads")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per workload")
    parser.add_argument("--clients", type=int, default=4, help="h2load connections (-c)")
    parser.add_argument("--streams", type=int, default=8, help="streams per connection (-m)")
    parser.add_argument("--threads", type=int, default=1, help="h2load threads (-t)")
    parser.add_argument(
        "--serial",
        action=argparse.BooleanOptionalAction,
        default=comparison.serial,
        help="then run both with one request in flight (-c 1 -m 1), for latency",
    )
    parser.add_argument(
        "--paced",
        type=float,
        default=comparison.paced_fraction,
        metavar="FRACTION",
        help="then run both at this fraction of the RPC's saturated throughput, for "
        f"latency; 0 skips it (default {comparison.paced_fraction:g})",
    )
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
    workloads: Sequence[Workload],
    poisson_rate: float | None = None,
) -> list[report.Run]:
    """`rounds` rounds of every workload, closed-loop or, with `poisson_rate`, at that
    rate (round N's arrivals seeded with N: the same for every workload of the round)."""
    runs: list[report.Run] = []
    for index in range(rounds):
        order = workloads if index % 2 == 0 else workloads[::-1]
        for workload in order:
            target = targets[workload.name]
            before = server.cpu_seconds()
            if poisson_rate is None:
                result = load(tool, target, settings, workdir)
            else:
                result = load_poisson(tool, target, settings, poisson_rate, index, workdir)
            after = server.cpu_seconds()
            cpu = None if before is None or after is None else after - before
            runs.append(report.Run(index + 1, workload.name, result, cpu))
            print(f"  round {index + 1}/{rounds} {workload.name:<9} {result.rps:>9.0f} RPC/s")
        if not server.alive():
            raise ServerError("the bench server died during the rounds")
    return runs


def _latency_phases(
    tool: str,
    server: ServerProcess,
    targets: dict[str, Target],
    settings: h2load.Settings,
    comparison: Comparison,
    runs: list[report.Run],
    args: argparse.Namespace,
    workdir: Path,
) -> list[report.Phase]:
    """Both workloads again below saturation: one request in flight, then Poisson
    arrivals at `args.paced` of the subject's median saturated throughput (see
    `targets.load_poisson`), each connection with room for 100 requests in flight, so
    that its script never waits for an answer."""
    phases = []
    workloads = comparison.workloads
    if args.serial:
        serial = dataclasses.replace(settings, clients=1, streams=1, threads=1)
        print("  serial: one request in flight (h2load -c 1 -m 1)")
        serial_runs = _rounds(tool, server, targets, serial, args.rounds, workdir, workloads)
        phases.append(report.Phase("serial", serial, serial_runs))
    if args.paced > 0:
        saturated = median([r.load.rps for r in runs if r.workload == comparison.subject.name])
        rate = args.paced * saturated
        paced = dataclasses.replace(settings, clients=1, streams=100, threads=1)
        print(
            f"  paced: Poisson arrivals at {rate:.0f}/s, {args.paced:g} of "
            f"{comparison.label}'s {saturated:.0f} RPC/s"
        )
        paced_runs = _rounds(
            tool, server, targets, paced, args.rounds, workdir, workloads, poisson_rate=rate
        )
        phases.append(report.Phase("paced", paced, paced_runs, args.paced, rate))
    return phases


def _hot_path(comparison: Comparison) -> dict[str, float]:
    """The isolated hot-path timings, or none with a warning: they reach into
    Switchyard's internals, and a refactoring there must not cost the main result."""
    print("  timing the Python hot path in isolation")
    try:
        from bench import hotpath

        return hotpath.measure(comparison.name)
    except Exception as error:
        print(f"  hot-path timing skipped: {error!r}", file=sys.stderr)
        return {}


def _bench(comparison: Comparison, args: argparse.Namespace) -> Path:
    tool = h2load.ensure_h2load()
    settings = h2load.Settings(args.clients, args.streams, args.threads, args.duration)
    options = profile_runs.Options(
        args.profiler, args.profile_seconds, args.profile_rate, args.warmup
    )
    workloads = comparison.workloads
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="switchyard-bench-run-") as tmp,
        ServerProcess() as server,
    ):
        workdir = Path(tmp)
        print(f"server pid {server.pid} on {server.address}; h2load {' '.join(settings.args())}")
        targets = bind(server, workdir, workloads)
        print(f"  pre-flight gRPC calls OK ({comparison.checked})")
        warm = dataclasses.replace(settings, duration=args.warmup)
        for workload in workloads:  # fills the L1 cache and lets every path settle
            load(tool, targets[workload.name], warm, workdir)
        runs = _rounds(tool, server, targets, settings, args.rounds, workdir, workloads)
        phases = _latency_phases(tool, server, targets, settings, comparison, runs, args, workdir)
        profiles = profile_runs.profile(
            tool, server, targets, settings, options, workdir, workloads
        )
    # After the server has stopped, so the two do not compete for the CPUs.
    hot_path_us = _hot_path(comparison) if args.hot_path else {}
    result = report.build(
        comparison=comparison,
        runs=runs,
        phases=phases,
        profiles=profiles,
        hot_path_us=hot_path_us,
        settings=settings,
        warmup=args.warmup,
        h2load_path=tool,
        requests={name: (t.workload, t.response_bytes) for name, t in targets.items()},
        load=(load_before, os.getloadavg()),
    )
    print(render.render(result, profiles, comparison))
    return report.write(result, args.output_dir, prefix=comparison.prefix)


def run(comparison: Comparison, argv: Sequence[str] | None = None) -> int:
    args = _arguments(comparison, argv)
    logs.configure("console", "warning")  # the hot-path step opens an application here
    try:
        path = _bench(comparison, args)
    except (h2load.LoadError, PreflightError, ServerError) as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    print(f"raw numbers: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench getvalue`."""
    return run(GET_VALUE_VS_NULL, argv)


def main_evalflag(argv: Sequence[str] | None = None) -> int:
    """`python -m bench evalflag`."""
    return run(EVALUATE_FLAG_VS_NULL, argv)
