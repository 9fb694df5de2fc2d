"""The sequence of an RPC-against-null benchmark (`getvalue`, `evalflag`, `checklimit`):
start the server, check every RPC answers correctly, warm up, alternate the workloads
for several rounds, optionally again below saturation, profile, report.

`checklimit` counts in Redis: a throwaway redis-server starts first and the server gets
its URL; before the rounds the bench checks the EVALSHA each decision sends (MONITOR),
during them it reads what each run cost Redis (every decision must have made its round
trip), and after each round Redis alone runs the same call (`bench.scriptrate`).

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
import contextlib
import dataclasses
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import h2load, profile_runs, render, report
from bench.comparison import (
    CHECK_RATE_LIMIT_VS_NULL,
    EVALUATE_FLAG_VS_NULL,
    GET_VALUE_VS_NULL,
    Comparison,
)
from bench.redisproc import RedisProcessError, RedisServer
from bench.scriptrate import ScriptBench, ScriptError
from bench.serverproc import ServerError, ServerProcess
from bench.stats import median
from bench.targets import Target, bind, load, load_poisson
from bench.workloads import PreflightError, Workload, preflight
from switchyard import logs

RESULTS = Path(__file__).resolve().parent / "results"


def _arguments(comparison: Comparison, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m bench {comparison.name}",
        description=f"{comparison.title}, by h2load.",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every workload")
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
    if comparison.hot_path:
        parser.add_argument(
            "--no-hot-path",
            dest="hot_path",
            action="store_false",
            help="skip timing the Python hot path in isolation",
        )
    if comparison.redis:
        parser.add_argument(
            "--redis-clients",
            type=int,
            default=32,
            help="clients of Redis alone (redis-benchmark -c): as many as the server has "
            "decisions in flight (default 32)",
        )
        parser.add_argument(
            "--redis-requests",
            type=int,
            default=50_000,
            help="calls per measurement of Redis alone (redis-benchmark -n; a fifth of it "
            "one at a time)",
        )
        parser.add_argument(
            "--redis-tool",
            choices=("auto", "redis-benchmark", "python"),
            default="auto",
            help="auto: redis-benchmark when found, else a redis-py pipeline (labelled)",
        )
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    parser.set_defaults(hot_path=comparison.hot_path)
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
    redis: _Redis | None = None,
) -> list[report.Run]:
    """`rounds` rounds of every workload, closed-loop or, with `poisson_rate`, at that
    rate (round N's arrivals seeded with N: the same for every workload of the round).
    With `redis` (the saturated rounds of `checklimit`), each run also reads what it
    cost Redis, and after each round Redis alone runs the script."""
    runs: list[report.Run] = []
    for index in range(rounds):
        order = workloads if index % 2 == 0 else workloads[::-1]
        for workload in order:
            target = targets[workload.name]
            before = server.cpu_seconds()
            redis_before = redis.server.sample() if redis is not None else None
            if poisson_rate is None:
                result = load(tool, target, settings, workdir)
            else:
                result = load_poisson(tool, target, settings, poisson_rate, index, workdir)
            after = server.cpu_seconds()
            cpu = None if before is None or after is None else after - before
            spent = redis.server.sample() - redis_before if redis and redis_before else None
            run = report.Run(index + 1, workload.name, result, cpu, spent)
            if redis is not None:
                redis.check(run)
            runs.append(run)
            print(f"  round {index + 1}/{rounds} {workload.name:<9} {result.rps:>9.0f} RPC/s")
        if not server.alive():
            raise ServerError("the bench server died during the rounds")
        if redis is not None:
            redis.scripts.run_round(index)
    return runs


@dataclasses.dataclass(frozen=True, slots=True)
class _Redis:
    """The throwaway Redis the server counts in, what Redis alone is measured with, and
    the workloads each of whose requests must make one EVALSHA."""

    server: RedisServer
    scripts: ScriptBench
    counted: frozenset[str]

    def check(self, run: report.Run) -> None:
        """Every decision of a run made its round trip, and none failed: a failed or
        skipped call (Redis resting after an error) is answered by the fail mode, which
        h2load cannot tell from a real decision. h2load's count leaves out the requests
        still in flight when it stops, so Redis may have run a few more."""
        spent = run.redis
        if run.workload not in self.counted or spent is None:
            return
        if spent.evalsha_failed or spent.evalsha < run.load.done:
            raise ScriptError(
                f"{run.workload}: {run.load.done} decisions but {spent.evalsha} EVALSHA "
                f"({spent.evalsha_failed} failed): some did not reach Redis"
            )


def _start_redis(
    comparison: Comparison,
    stack: contextlib.ExitStack,
    workdir: Path,
) -> RedisServer | None:
    if not comparison.redis:
        return None
    redis = stack.enter_context(RedisServer(workdir / "redis"))
    print(f"redis-server pid {redis.pid} on 127.0.0.1:{redis.port} (throwaway)")
    return redis


def _redis_side(
    comparison: Comparison,
    redis: RedisServer | None,
    server: ServerProcess,
    targets: dict[str, Target],
    args: argparse.Namespace,
) -> _Redis | None:
    """Checks the EVALSHA each workload's decision sends against what Redis alone will
    run (one RPC of each under MONITOR)."""
    if redis is None:
        return None
    scripts = ScriptBench(
        redis,
        comparison.script_calls,
        clients=args.redis_clients,
        requests=args.redis_requests,
        serial_requests=max(1, args.redis_requests // 5),
        tool=args.redis_tool,
    )

    def one_rpc(workload: str) -> None:
        target = targets[workload]
        preflight(server.address, target.workload, target.body)

    scripts.check(one_rpc)
    print(f"  EVALSHA checked against the server's own (MONITOR); Redis alone by {scripts.tool}")
    counted = frozenset(call.workload for call in comparison.script_calls)
    return _Redis(redis, scripts, counted)


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
    extra: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="switchyard-bench-run-"))
        workdir = Path(tmp)
        redis_server = _start_redis(comparison, stack, workdir)
        server = stack.enter_context(
            ServerProcess(redis_url=redis_server.url if redis_server is not None else None)
        )
        print(f"server pid {server.pid} on {server.address}; h2load {' '.join(settings.args())}")
        targets = bind(server, workdir, workloads)
        print(f"  pre-flight gRPC calls OK ({comparison.checked})")
        redis = _redis_side(comparison, redis_server, server, targets, args)
        warm = dataclasses.replace(settings, duration=args.warmup)
        for workload in workloads:  # fills the L1 cache and lets every path settle
            load(tool, targets[workload.name], warm, workdir)
        runs = _rounds(
            tool, server, targets, settings, args.rounds, workdir, workloads, redis=redis
        )
        if redis is not None:
            redis.scripts.run_serial()
            extra["redis"] = redis.scripts.as_dict()
        phases = _latency_phases(tool, server, targets, settings, comparison, runs, args, workdir)
        profiles = profile_runs.profile(
            tool, server, targets, settings, options, workdir, comparison.profiled
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
        extra=extra,
    )
    print(render.render(result, profiles, comparison))
    return report.write(result, args.output_dir, prefix=comparison.prefix)


def run(comparison: Comparison, argv: Sequence[str] | None = None) -> int:
    args = _arguments(comparison, argv)
    logs.configure("console", "warning")  # the hot-path step opens an application here
    try:
        path = _bench(comparison, args)
    except (
        h2load.LoadError,
        PreflightError,
        ServerError,
        RedisProcessError,
        ScriptError,
    ) as error:
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


def main_checklimit(argv: Sequence[str] | None = None) -> int:
    """`python -m bench checklimit`."""
    return run(CHECK_RATE_LIMIT_VS_NULL, argv)
