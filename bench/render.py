"""The result as a table for people: the workloads side by side, the ratios against the
project's aims, then where the RPC's extra time goes (the profile; with Redis, what
Redis alone does with the same script)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bench import profiling
from bench.comparison import Comparison
from bench.report import NULL
from bench.targets import POISSON_PER_CONNECTION

_WIDTHS = (13, 9, 9, 9, 9, 11, 12)


def _row(cells: tuple[str, ...]) -> str:
    first, *rest = cells
    return "  ".join(
        [first.ljust(_WIDTHS[0]), *(c.rjust(w) for c, w in zip(rest, _WIDTHS[1:], strict=True))]
    )


def _n(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _table(summary: dict[str, dict[str, Any]], names: Sequence[str]) -> list[str]:
    lines = [_row(("workload", "RPC/s", "p50 µs", "p90 µs", "p99 µs", "CPU µs/RPC", "loop µs/RPC"))]
    for name in names:
        s = summary[name]
        lines.append(
            _row(
                (
                    name,
                    _n(s["rps"]),
                    _n(s["p50_us"]),
                    _n(s["p90_us"]),
                    _n(s["p99_us"]),
                    _n(s["server_cpu_us_per_rpc"], 1),
                    _n(s["loop_thread_cpu_us_per_rpc"], 1),
                )
            )
        )
    return lines


def _by_round(runs: list[dict[str, Any]]) -> str:
    rounds: dict[int, list[str]] = {}
    for run in runs:
        rounds.setdefault(run["round"], []).append(f"{run['workload']} {run['rps']:.0f}")
    return " | ".join(", ".join(r) for r in rounds.values())


def _headline(result: dict[str, Any], comparison: Comparison) -> list[str]:
    h, ratios, machine = result["h2load"], result["ratios"], result["machine"]
    label, short = comparison.label, comparison.short
    lines = [
        "",
        f"Switchyard bench @ {result['commit']}: {comparison.title}, same server stack",
        f"h2load -c {h['clients']} -m {h['streams']} -t {h['threads']} -D {h['duration']:g}s; "
        f"{h['rounds']} rounds alternating the order after {h['warmup_seconds']:g}s warm-up; "
        "medians of rounds",
        "",
        *_table(result["summary"], [w.name for w in comparison.workloads]),
        "",
        *_ratio_lines(ratios, label, short, comparison.throughput_aim),
    ]
    for name, other in result.get("other_ratios", {}).items():
        lines += _ratio_lines(other, name, name, comparison.throughput_aim)
    lines += [
        "RPC/s by round: " + _by_round(result["runs"]),
        f"load average {machine['loadavg_before'][0]:.2f} before, "
        f"{machine['loadavg_after'][0]:.2f} after, on {machine['cpus']} CPUs",
    ]
    return lines


def _ratio_lines(ratios: dict[str, Any], label: str, short: str, aim: float) -> list[str]:
    ratio = ratios[f"throughput_{short}_over_null"]
    verdict = "meets" if ratio >= aim else "is BELOW"
    return [
        f"{label}/null throughput: {ratio:.3f}, which {verdict} the goal of {aim} "
        f"(per round: median {ratios['throughput_paired_median']:.3f}, "
        f"range {ratios['throughput_paired_min']:.3f}-{ratios['throughput_paired_max']:.3f})",
        f"{label}/null latency: p50 {ratios[f'p50_{short}_over_null']:.2f}x, "
        f"p99 {ratios[f'p99_{short}_over_null']:.2f}x",
        f"server CPU per RPC, null/{label}: whole process "
        f"{_n(ratios[f'server_cpu_null_over_{short}'], 3)}, event-loop thread "
        f"{_n(ratios[f'loop_thread_cpu_null_over_{short}'], 3)}",
    ]


def _redis(result: dict[str, Any]) -> list[str]:
    """Redis's side: what each RPC cost it, and its rate for the same script alone."""
    redis = result.get("redis")
    if redis is None:
        return []
    summary = result["summary"]
    lines = ["", "Redis under the RPC load (the rounds above): per RPC"]
    for name, s in summary.items():
        if "redis_evalsha_per_rpc" in s:
            lines.append(
                f"  {name:<13} {s['redis_evalsha_per_rpc']:5.2f} EVALSHA, "
                f"{_n(s['redis_cpu_us_per_rpc'], 1)} µs of Redis CPU"
            )
    if redis["tool"] == "redis-benchmark":
        tool = f"redis-benchmark -c {redis['clients']} -n {redis['requests']}"
    else:
        tool = (
            f"FALLBACK, not redis-benchmark: redis-py pipelines of {redis['clients']} from "
            f"one Python client, {redis['requests']:,} calls; a pipeline measures Redis's "
            "capacity rather than round trips, and the Python loop may be what limits it"
        )
    lines += [
        "",
        f"Redis alone, the same EVALSHA ({tool}; Redis {redis['redis_version']}); "
        "medians of rounds",
        _row(("script", "ops/s", "p50 µs", "p99 µs", "", "CPU µs/call", "x RPC/s")),
    ]
    for label, s in redis["summary"].items():
        rpc = summary[s["workload"]]["rps"]
        lines.append(
            _row(
                (
                    label,
                    _n(s["ops"]),
                    _n(s["p50_ms"] and s["p50_ms"] * 1000),
                    _n(s["p99_ms"] and s["p99_ms"] * 1000),
                    "",
                    _n(s["redis_cpu_us_per_call"], 1),
                    f"{s['ops'] / rpc:.1f}x",
                )
            )
        )
    for label, s in redis["serial"].items():
        lines.append(
            _row(
                (
                    f"{label}, c=1",
                    _n(s["ops"]),
                    _n(s["p50_ms"] and s["p50_ms"] * 1000),
                    _n(s["p99_ms"] and s["p99_ms"] * 1000),
                    "",
                    _n(s["redis_cpu_us_per_call"], 1),
                    "",
                )
            )
        )
    lines.append(
        "  x RPC/s: Redis alone over the RPC's rate (the workload whose decisions send that "
        "call); c=1: one call at a time, the bare round trip"
    )
    return lines


def _latency_verdict(p99_us: float, comparison: Comparison) -> str:
    aim, spec = comparison.p99_aim_ms, comparison.p99_spec_ms
    p99_ms = p99_us / 1000
    if aim is None:
        return f"p99 {p99_ms:.2f} ms"
    spec_text = "" if spec is None else f"the spec's < {spec:g} ms"
    if p99_ms < aim:
        verdict = f"meets the aim of < {aim:g} ms" + (f" ({spec_text})" if spec_text else "")
    elif spec is not None and p99_ms < spec:
        verdict = f"MISSES the aim of < {aim:g} ms, within {spec_text}"
    else:
        verdict = f"MISSES the aim of < {aim:g} ms" + (f" and {spec_text}" if spec_text else "")
    return f"p99 {p99_ms:.2f} ms, which {verdict}"


def _phase(name: str, phase: dict[str, Any], comparison: Comparison) -> list[str]:
    label, subject, h = comparison.label, comparison.subject.name, phase["h2load"]
    summary = phase["summary"]
    if phase["offered_rps"] is None:
        load = f"one request in flight (h2load -c {h['clients']} -m {h['streams']})"
    else:
        load = (
            f"Poisson arrivals, {phase['offered_rps']:,.0f}/s scripted "
            f"({phase['fraction_of_saturated']:g} of {label}'s saturated throughput) over "
            f"{math.ceil(phase['offered_rps'] / POISSON_PER_CONNECTION)} connections; "
            "RPC/s is the rate achieved"
        )
    lines = [
        "",
        f"{name}: {load}",
        *_table(summary, list(summary)),
        f"{label} at {summary[subject]['rps']:,.0f} RPC/s: "
        + _latency_verdict(summary[subject]["p99_us"], comparison)
        + f"; null p99 {summary[NULL]['p99_us'] / 1000:.2f} ms",
        "RPC/s by round: " + _by_round(phase["runs"]),
    ]
    offered = phase["offered_rps"]
    if offered is not None and summary[subject]["rps"] < 0.9 * offered:
        lines.append(
            f"  h2load sent {summary[subject]['rps'] / offered:.0%} of the scripted rate: its "
            "timers have a millisecond's grain and run late, never early"
        )
    return lines


def _latency(result: dict[str, Any], comparison: Comparison) -> list[str]:
    """The latency aim, under each load measured. At saturation a closed-loop load's
    latency is its requests in flight over the throughput, whatever the RPC: the loads
    below saturation (serial, paced) are those that say something about the RPC.
    Without an aim, the loads below saturation that were asked for, if any."""
    if comparison.p99_aim_ms is None:
        if not result["latency_phases"]:
            return []
        lines = ["", "Latency below saturation; medians of rounds alternating the order"]
        for name, phase in result["latency_phases"].items():
            lines += _phase(name, phase, comparison)
        return lines
    label, subject = comparison.label, comparison.subject.name
    h, saturated = result["h2load"], result["summary"]
    in_flight, rps = h["clients"] * h["streams"], saturated[subject]["rps"]
    aims = f"{label} p99 < {comparison.p99_aim_ms:g} ms"
    if comparison.p99_spec_ms is not None:
        aims += f"; the spec asks < {comparison.p99_spec_ms:g} ms"
    lines = [
        "",
        f"Latency against the aim ({aims}); medians of rounds alternating the order",
        "",
        f"saturated: {in_flight} in flight (h2load -c {h['clients']} -m {h['streams']}), "
        f"above; {label} at {rps:,.0f} RPC/s: "
        + _latency_verdict(saturated[subject]["p99_us"], comparison)
        + f"; null p99 {saturated[NULL]['p99_us'] / 1000:.2f} ms",
        f"  that is queueing: {in_flight} in flight / {rps:,.0f} RPC/s = "
        f"{in_flight / rps * 1000:.1f} ms on average, whatever the RPC",
    ]
    for name, phase in result["latency_phases"].items():
        lines += _phase(name, phase, comparison)
    return lines


def _profile(
    profiles: dict[str, profiling.Profile], comparison: Comparison, count: int = 12
) -> list[str]:
    get, null = profiles.get(comparison.subject.name), profiles.get(NULL)
    label = comparison.label
    if get is None:
        return []
    lines = [
        "",
        f"Profile of the server under {label} load: {get.tool}, event-loop thread "
        f"{'while it holds the GIL' if get.tool == 'py-spy' else '(Python calls only)'}, "
        f"{get.seconds:g} s, ~{get.requests:,} RPCs. µs per RPC and share of the profile",
    ]
    for key, title in (("self_us", "self"), ("cumulative_us", "cumulative")):
        lines += ["", f"  by {title} time"]
        for f in get.top(key, count):
            share = f.self_share if key == "self_us" else f.cumulative_share
            lines.append(f"  {getattr(f, key):8.1f}  {share:6.1%}  {f.function}")
    if null is not None:
        lines += ["", f"  beyond the null RPC: self µs/RPC under {label}, under null"]
        for name, get_us, null_us in profiling.beyond(get, null, count):
            lines.append(f"  {get_us:8.1f}  {null_us:6.1f}  {name}")
        totals = (sum(f.self_us for f in p.functions) for p in (get, null))
        lines.append("  {:8.1f}  {:6.1f}  total on the event-loop thread".format(*totals))
    return lines


def _hot_path(hot_path_us: dict[str, float]) -> list[str]:
    if not hot_path_us:
        return []
    lines = ["", "Python hot path in isolation (tight loop, no network): µs per call"]
    lines += [f"  {us:8.2f}  {step}" for step, us in hot_path_us.items()]
    return lines


def render(
    result: dict[str, Any], profiles: dict[str, profiling.Profile], comparison: Comparison
) -> str:
    return "\n".join(
        _headline(result, comparison)
        + _redis(result)
        + _latency(result, comparison)
        + _profile(profiles, comparison)
        + _hot_path(result["hot_path_us_per_call"])
    )
