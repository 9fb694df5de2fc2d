"""The result as a table for people: the two workloads side by side, the ratios against
the project's goal, then where GetValue's extra time goes."""

from __future__ import annotations

from typing import Any

from bench import profiling
from bench.report import GET, GOAL, NULL

_WIDTHS = (10, 9, 9, 9, 9, 11, 12)


def _row(cells: tuple[str, ...]) -> str:
    first, *rest = cells
    return "  ".join(
        [first.ljust(_WIDTHS[0]), *(c.rjust(w) for c, w in zip(rest, _WIDTHS[1:], strict=True))]
    )


def _n(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _headline(result: dict[str, Any]) -> list[str]:
    h, ratios, machine = result["h2load"], result["ratios"], result["machine"]
    lines = [
        "",
        f"Switchyard bench @ {result['commit']}: cached GetValue vs null RPC, same server stack",
        f"h2load -c {h['clients']} -m {h['streams']} -t {h['threads']} -D {h['duration']:g}s; "
        f"{h['rounds']} rounds alternating the order after {h['warmup_seconds']:g}s warm-up; "
        "medians of rounds",
        "",
        _row(("workload", "RPC/s", "p50 µs", "p90 µs", "p99 µs", "CPU µs/RPC", "loop µs/RPC")),
    ]
    for name in (NULL, GET):
        s = result["summary"][name]
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
    ratio = ratios["throughput_get_over_null"]
    verdict = "meets" if ratio >= GOAL else "is BELOW"
    rounds: dict[int, list[str]] = {}
    for run in result["runs"]:
        rounds.setdefault(run["round"], []).append(f"{run['workload']} {run['rps']:.0f}")
    lines += [
        "",
        f"GetValue/null throughput: {ratio:.3f}, which {verdict} the goal of {GOAL} "
        f"(per round: median {ratios['throughput_paired_median']:.3f}, "
        f"range {ratios['throughput_paired_min']:.3f}-{ratios['throughput_paired_max']:.3f})",
        f"GetValue/null latency: p50 {ratios['p50_get_over_null']:.2f}x, "
        f"p99 {ratios['p99_get_over_null']:.2f}x",
        f"server CPU per RPC, null/GetValue: whole process "
        f"{_n(ratios['server_cpu_null_over_get'], 3)}, event-loop thread "
        f"{_n(ratios['loop_thread_cpu_null_over_get'], 3)}",
        "RPC/s by round: " + " | ".join(", ".join(r) for r in rounds.values()),
        f"load average {machine['loadavg_before'][0]:.2f} before, "
        f"{machine['loadavg_after'][0]:.2f} after, on {machine['cpus']} CPUs",
    ]
    return lines


def _profile(profiles: dict[str, profiling.Profile], count: int = 12) -> list[str]:
    get, null = profiles.get(GET), profiles.get(NULL)
    if get is None:
        return []
    lines = [
        "",
        f"Profile of the server under GetValue load: {get.tool}, event-loop thread "
        f"{'while it holds the GIL' if get.tool == 'py-spy' else '(Python calls only)'}, "
        f"{get.seconds:g} s, ~{get.requests:,} RPCs. µs per RPC and share of the profile",
    ]
    for key, title in (("self_us", "self"), ("cumulative_us", "cumulative")):
        lines += ["", f"  by {title} time"]
        for f in get.top(key, count):
            share = f.self_share if key == "self_us" else f.cumulative_share
            lines.append(f"  {getattr(f, key):8.1f}  {share:6.1%}  {f.function}")
    if null is not None:
        lines += ["", "  beyond the null RPC: self µs/RPC under GetValue, under null"]
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


def render(result: dict[str, Any], profiles: dict[str, profiling.Profile]) -> str:
    return "\n".join(
        _headline(result) + _profile(profiles) + _hot_path(result["hot_path_us_per_call"])
    )
