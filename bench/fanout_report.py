"""The fan-out result: delivery latencies, the exactly-once-in-order check, CPU per
delivery on both sides; as JSON and as tables.

A delivery is one event on one stream: 1,000 streams x 30 writes make 30,000 per round.
Its latency is measured from three origins, because the commit itself cannot be
observed from outside the server:

- from send: the writer's monotonic stamp just before the SetValue went out. The commit
  comes later, so this over-states; it is the headline because it never flatters.
- from changed_at: the server's wall-clock stamp on the history row, taken as the
  change is written, a couple of statements before the commit; against the client's
  wall-clock receipt stamp (same machine, same clock). The closest to "from the commit",
  still over-stating by the last statements and the commit.
- from return: when the SetValue's answer reached the writer, after the commit: this
  under-states.

The machine is shared, so each scenario runs several rounds (each on a fresh server)
and the table shows the median of the rounds' figures, with every round's p99 beside it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bench import provenance
from bench.fanout_workers import WorkerResult
from bench.serverproc import CpuTimes
from bench.stats import median, percentile

if TYPE_CHECKING:
    from bench.fanout import Options, ScenarioRun

GOAL_P99_MS = 100.0
SPEC_P99_MS = 1000.0
PERCENTILES = (50, 90, 99)
ORIGINS = ("from_send", "from_changed_at", "from_return")


def distribution(values: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99 (nearest rank), max and mean; empty when there are no values."""
    if not values:
        return {}
    ordered = sorted(values)
    found = {f"p{p}": percentile(ordered, p) for p in PERCENTILES}
    return {**found, "max": ordered[-1], "mean": sum(ordered) / len(ordered)}


def _check(received: list[WorkerResult], expected: list[tuple[int, float]]) -> dict[str, Any]:
    """Whether every stream got exactly the events written, each once, in order, with
    the value written; and, when not, how it went wrong."""
    wanted = {r for r, _ in expected}
    streams = [s for worker in received for s in worker.streams]
    bad = {"missing": 0, "duplicated": 0, "out_of_order": 0, "wrong_value": 0, "unexpected": 0}
    good = 0
    for events in streams:
        got = [(e[0], e[3]) for e in events]
        if got == expected:
            good += 1
            continue
        seen = [r for r, _ in got]
        bad["missing"] += len(wanted - set(seen))
        bad["duplicated"] += len(seen) - len(set(seen))
        bad["out_of_order"] += sum(1 for a, b in itertools.pairwise(seen) if b <= a)
        bad["wrong_value"] += sum(1 for pair in got if pair[0] in wanted and pair not in expected)
        bad["unexpected"] += len(set(seen) - wanted)
    return {
        "ok": good == len(streams) > 0,
        "streams": len(streams),
        "streams_exact": good,
        "events_per_stream": len(expected),
        **bad,
    }


def _per(delta: CpuTimes | None, count: float, scale: float) -> dict[str, float] | None:
    """CPU seconds over `count` things, in units of 1/`scale` s (1e3: ms, 1e6: µs)."""
    if delta is None or count <= 0:
        return None
    return {
        "process": delta.process * scale / count,
        "main_thread": delta.main_thread * scale / count,
    }


Spread = dict[str, dict[int, float]]


def _latencies(run: ScenarioRun) -> tuple[dict[str, list[float]], list[list[float]], Spread]:
    """Per origin, every measured delivery's latency in ms; the from-send latencies by
    client process; and, per measured write, its first and last delivery (from its
    changed_at: the first shows the fixed path from commit to the first stream, the
    follower and the bus; the last, that plus the fan-out)."""
    measured = {w.revision: w for w in run.writes if w.phase == "measured"}
    found: dict[str, list[float]] = {origin: [] for origin in ORIGINS}
    by_client: list[list[float]] = []
    spread: Spread = {"first": {}, "last": {}}
    first, last = spread["first"], spread["last"]
    for worker in run.received:
        mine: list[float] = []
        for events in worker.streams:
            for revision, stamp, wall, _, changed_at in events:
                write = measured.get(revision)
                if write is None:
                    continue
                mine.append((stamp - write.sent_ns) / 1e6)
                at_commit = (wall - changed_at) / 1e6
                found["from_changed_at"].append(at_commit)
                found["from_return"].append((stamp - write.returned_ns) / 1e6)
                first[revision] = min(first.get(revision, at_commit), at_commit)
                last[revision] = max(last.get(revision, at_commit), at_commit)
        found["from_send"] += mine
        by_client.append(mine)
    return found, by_client, spread


def analyse(run: ScenarioRun) -> dict[str, Any]:
    """One round of one scenario: what the JSON keeps and the table summarises."""
    latencies, by_client, spread = _latencies(run)
    writes = [w for w in run.writes if w.phase == "measured"]
    deliveries = len(writes) * run.streams
    clients = [c for c in run.client_cpu if c is not None]
    client_total = (
        CpuTimes(sum(c.process for c in clients), sum(c.main_thread for c in clients))
        if clients
        else None
    )
    client_us = _per(client_total, deliveries, 1e6)
    return {
        "round": run.round,
        "kind": run.kind,
        "streams": run.streams,
        "client_processes": run.clients,
        "connections": run.connections,
        "writes_measured": len(writes),
        "deliveries_measured": len(latencies["from_send"]),
        "latency_ms": {origin: distribution(values) for origin, values in latencies.items()},
        "latency_from_send_by_client_process_ms": [distribution(c) for c in by_client],
        "first_delivery_per_write_ms": distribution(list(spread["first"].values())),
        "last_delivery_per_write_ms": distribution(list(spread["last"].values())),
        "write_call_ms": distribution([(w.returned_ns - w.sent_ns) / 1e6 for w in writes]),
        "checks": _check(run.received, [(w.revision, w.value) for w in run.writes]),
        "progress_messages": sum(w.progress for w in run.received),
        "window_seconds": run.window_seconds,
        "server_cpu_seconds": asdict(run.server_cpu) if run.server_cpu else None,
        "server_cpu_ms_per_write": _per(run.server_cpu, len(writes), 1e3),
        "server_cpu_us_per_delivery": _per(run.server_cpu, deliveries, 1e6),
        "client_cpu_us_per_delivery": client_us,
        # The least time one client process needs to take one event in on all of its
        # streams, at its measured CPU cost per message, had it a core to itself.
        "client_drain_ms_per_write": (
            client_us["process"] * run.streams / run.clients / 1e3 if client_us else None
        ),
        "server_metrics_during_measured_writes": run.server_metrics,
        "profile": run.profile.as_dict(40) if run.profile else None,
        "profile_note": run.profile_note,
    }


def _median(rounds: list[dict[str, Any]], *path: str) -> float | None:
    """The median over the rounds of the figure at `path` (keys into each round's
    analysis), leaving out rounds that lack it."""
    values = []
    for found in rounds:
        value: Any = found
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            values.append(float(value))
    return median(values) if values else None


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One scenario over its rounds: the median of each round's figure."""
    first = rounds[0]
    summary: dict[str, Any] = {
        "kind": first["kind"],
        "streams": first["streams"],
        "client_processes": first["client_processes"],
        "connections": first["connections"],
        "rounds": len(rounds),
        "all_delivered_exactly_once_in_order": all(r["checks"]["ok"] for r in rounds),
        "p99_from_send_by_round_ms": [r["latency_ms"]["from_send"].get("p99") for r in rounds],
    }
    for origin in ORIGINS:
        summary[f"latency_{origin}_ms"] = {
            stat: _median(rounds, "latency_ms", origin, stat)
            for stat in ("p50", "p90", "p99", "max")
        }
    for name in ("first_delivery_per_write_ms", "last_delivery_per_write_ms", "write_call_ms"):
        summary[name] = {stat: _median(rounds, name, stat) for stat in ("p50", "max")}
    for name in (
        "server_cpu_ms_per_write",
        "server_cpu_us_per_delivery",
        "client_cpu_us_per_delivery",
    ):
        summary[name] = {part: _median(rounds, name, part) for part in ("process", "main_thread")}
    summary["client_drain_ms_per_write"] = _median(rounds, "client_drain_ms_per_write")
    return summary


def build(
    runs: list[ScenarioRun],
    options: Options,
    load: tuple[provenance.LoadAverage, provenance.LoadAverage],
) -> dict[str, Any]:
    analysed = [analyse(run) for run in runs]
    keys = list(dict.fromkeys((a["kind"], a["streams"]) for a in analysed))
    scenarios = [summarise([a for a in analysed if (a["kind"], a["streams"]) == k]) for k in keys]
    return {
        "benchmark": "watch fan-out",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": provenance.commit(),
        "versions": provenance.versions(("grpcio", "protobuf", "uvloop", "switchyard", "py-spy")),
        "machine": provenance.machine(*load),
        "settings": {
            **asdict(options),
            "latency_headline": "from_send: the writer's monotonic clock just before SetValue",
            "watch": "WatchConfig keys=[api.timeout] environment=production",
            "server": "bench.server: open_application + start_server, uvloop, SQLite in a "
            "temporary directory, demo data, default Settings",
        },
        "goal_p99_ms": GOAL_P99_MS,
        "spec_p99_ms": SPEC_P99_MS,
        "ok": all(s["all_delivered_exactly_once_in_order"] for s in scenarios),
        "scenarios": scenarios,
        "rounds": analysed,
    }


def _n(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


_COLUMNS = (
    ("scenario", 11),
    ("streams", 8),
    ("p50", 7),
    ("p90", 7),
    ("p99", 7),
    ("max", 7),
    ("at commit p50/p99", 18),
    ("first/last", 13),
    ("srv ms/write", 13),
    ("srv µs/msg", 11),
    ("loop µs/msg", 12),
    ("cli µs/msg", 11),
)


def _line(cells: Sequence[str]) -> str:
    (_, width), *rest = _COLUMNS
    return cells[0].ljust(width) + "".join(
        c.rjust(w) for c, (_, w) in zip(cells[1:], rest, strict=True)
    )


def _row(s: dict[str, Any]) -> str:
    send, commit = s["latency_from_send_ms"], s["latency_from_changed_at_ms"]
    return _line(
        (
            s["kind"],
            str(s["streams"]),
            _n(send["p50"]),
            _n(send["p90"]),
            _n(send["p99"]),
            _n(send["max"]),
            f"{_n(commit['p50'])}/{_n(commit['p99'])}",
            f"{_n(s['first_delivery_per_write_ms']['p50'])}/"
            f"{_n(s['last_delivery_per_write_ms']['p50'])}",
            _n(s["server_cpu_ms_per_write"]["process"]),
            _n(s["server_cpu_us_per_delivery"]["process"], 0),
            _n(s["server_cpu_us_per_delivery"]["main_thread"], 0),
            _n(s["client_cpu_us_per_delivery"]["process"], 0),
        )
    )


def _details(s: dict[str, Any]) -> str:
    back, call = s["latency_from_return_ms"], s["write_call_ms"]
    rounds = ", ".join(_n(p) for p in s["p99_from_send_by_round_ms"])
    once = "yes" if s["all_delivered_exactly_once_in_order"] else "NO"
    return (
        f"  {s['kind']} x {s['streams']} ({s['client_processes']} client processes, "
        f"{s['connections']} connections): p99 by round {rounds} ms; from the write's return "
        f"p50 {_n(back['p50'])}, p99 {_n(back['p99'])} ms; the write call p50 {_n(call['p50'])} "
        f"ms; a client process needs >= {_n(s['client_drain_ms_per_write'])} ms of CPU per "
        f"write; every event exactly once, in order, on every stream: {once}"
    )


def _problems(rounds: list[dict[str, Any]]) -> list[str]:
    return [
        f"  DELIVERY PROBLEMS in round {r['round']} of {r['kind']} x {r['streams']}: {r['checks']}"
        for r in rounds
        if not r["checks"]["ok"]
    ]


def _profile(round_: dict[str, Any], count: int = 14) -> list[str]:
    profile = round_["profile"]
    if profile is None:
        return [f"  ({round_['profile_note']})"] if round_["profile_note"] else []
    lines = [
        "",
        f"Profile of the server during {round_['kind']} fan-out to {round_['streams']} streams "
        f"(py-spy --gil, event-loop thread, {profile['seconds']:g} s): µs per delivery, share",
    ]
    for key, title, value, share in (
        ("top_self", "self", "self_us", "self_share"),
        ("top_cumulative", "cumulative", "cumulative_us", "cumulative_share"),
    ):
        lines.append(f"  by {title} time")
        lines += [
            f"  {f[value]:8.1f}  {f[share]:6.1%}  {f['function']}" for f in profile[key][:count]
        ]
    return lines


def render(result: dict[str, Any]) -> str:
    settings = result["settings"]
    lines = [
        "",
        f"Switchyard watch fan-out @ {result['commit']}: commit to delivery, per stream and "
        f"event; {settings['writes']} writes {settings['interval'] * 1000:g} ms apart after "
        f"{settings['warmup_writes']} warm-up, medians of {settings['rounds']} rounds",
        "latency in ms from just before SetValue is sent (never flatters); 'at commit': from "
        "the history row's changed_at; first/last: p50 over writes of each write's first and "
        "last delivery, from changed_at; CPU per write and per delivered message (msg)",
        "",
        _line([name for name, _ in _COLUMNS]),
    ]
    lines += [_row(s) for s in result["scenarios"]]
    lines += ["", *(_details(s) for s in result["scenarios"]), *_problems(result["rounds"])]
    main = result["scenarios"][0]
    p99 = main["latency_from_send_ms"]["p99"]
    if p99 is not None:
        aim = "meets" if p99 < result["goal_p99_ms"] else "MISSES"
        spec = "meets" if p99 < result["spec_p99_ms"] else "MISSES"
        lines += [
            "",
            f"{main['kind']} x {main['streams']}: p99 {p99:.1f} ms {aim} the project's aim of "
            f"{result['goal_p99_ms']:g} ms, and {spec} the spec's {result['spec_p99_ms']:g} ms",
        ]
    machine = result["machine"]
    lines.append(
        f"load average {machine['loadavg_before'][0]:.2f} before, "
        f"{machine['loadavg_after'][0]:.2f} after, on {machine['cpus']} CPUs"
    )
    for round_ in result["rounds"]:
        lines += _profile(round_)
    return "\n".join(lines)
