"""The hit-rate result: per phase, the L1 hit rate the server counted next to the
ceiling the same operations allow (`bench.zipf`), and where the misses came from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bench import provenance, zipf

if TYPE_CHECKING:
    from bench.hitrate import Phase

GOAL = 0.99


def _phase(phase: Phase) -> dict[str, Any]:
    measured, ceiling = phase.measured, phase.ceiling
    lookups = measured.hits + measured.misses
    return {
        "phase": phase.name,
        "operations": phase.reads + phase.writes,
        "reads": phase.reads,
        "writes": phase.writes,
        "seconds": phase.seconds,
        "operations_per_second": (phase.reads + phase.writes) / phase.seconds,
        "l1_hits": measured.hits,
        "l1_misses": measured.misses,
        "l1_lookups": lookups,
        "l1_hit_rate": measured.hits / lookups if lookups else None,
        "coalesced": measured.coalesced,
        # What the database (and Redis) saw: misses that did not share a read in flight.
        "database_read_rate": (measured.misses - measured.coalesced) / lookups if lookups else None,
        "ceiling_hit_rate": ceiling.hit_rate,
        "ceiling_cold_misses": ceiling.cold_misses,
        "ceiling_invalidation_misses": ceiling.invalidation_misses,
        # Misses the ideal cache would not have had: concurrent reads of a key being
        # reloaded after a write (each counts a miss), expiry, eviction.
        "misses_beyond_ceiling": measured.misses - ceiling.misses,
    }


def _skew(options: dict[str, Any]) -> dict[str, float]:
    shares = zipf.weights(options["keys"], options["exponent"])
    return {f"top_{n}_share": sum(shares[:n]) for n in (1, 10, 100) if n <= len(shares)}


def build(
    phases: list[Phase],
    options: dict[str, Any],
    load: tuple[provenance.LoadAverage, provenance.LoadAverage],
) -> dict[str, Any]:
    rows = [_phase(p) for p in phases]
    measured = rows[-1]
    return {
        "benchmark": "L1 hit rate",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": provenance.commit(),
        "versions": provenance.versions(("grpcio", "protobuf", "uvloop", "switchyard")),
        "machine": provenance.machine(*load),
        "settings": {
            **options,
            "reads": "GetValue(key, environment=production)",
            "writes": "SetValue(key, new number, environment=production)",
            "server": "bench.server --metrics-listen: default Settings (cache_size 10,000), "
            "SQLite in a temporary directory; keys created with cache_ttl_seconds 300",
            "source": "switchyard_cache_requests_total{level=l1} from the server's /metrics",
        },
        "skew": _skew(options),
        "goal": GOAL,
        "approximate_ceiling": 1 - options["write_fraction"],
        "phases": rows,
        "hit_rate": measured["l1_hit_rate"],
        "ceiling": measured["ceiling_hit_rate"],
    }


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def render(result: dict[str, Any]) -> str:
    settings, skew = result["settings"], result["skew"]
    lines = [
        "",
        f"Switchyard L1 hit rate @ {result['commit']}: {settings['keys']:,} keys, Zipf "
        f"s={settings['exponent']:g} (top key {_pct(skew.get('top_1_share'), 1)}, top 10 "
        f"{_pct(skew.get('top_10_share'), 1)}, top 100 {_pct(skew.get('top_100_share'), 1)} "
        f"of operations), {settings['write_fraction']:.1%} writes, "
        f"in flight {settings['concurrency']}, seed {settings['seed']}",
        "",
        f"{'phase':<10}{'ops':>8}{'reads':>8}{'writes':>7}{'L1 hits':>9}{'misses':>8}"
        f"{'hit rate':>10}{'ceiling':>9}{'cold':>6}{'after write':>12}{'beyond':>8}{'ops/s':>7}",
    ]
    for row in result["phases"]:
        lines.append(
            f"{row['phase']:<10}{row['operations']:>8,}{row['reads']:>8,}{row['writes']:>7,}"
            f"{row['l1_hits']:>9,.0f}{row['l1_misses']:>8,.0f}{_pct(row['l1_hit_rate']):>10}"
            f"{_pct(row['ceiling_hit_rate']):>9}{row['ceiling_cold_misses']:>6,}"
            f"{row['ceiling_invalidation_misses']:>12,}{row['misses_beyond_ceiling']:>8,.0f}"
            f"{row['operations_per_second']:>7,.0f}"
        )
    measured = result["phases"][-1]
    rate, ceiling = result["hit_rate"], result["ceiling"]
    verdict = "meets" if rate is not None and rate >= result["goal"] else "is BELOW"
    lines += [
        "",
        "ceiling: an ideal cache (unbounded, no expiry, sequential) that drops a key on a write, "
        "on the same operations; cold / after write: its misses; beyond: measured misses minus "
        "its misses (negative: Switchyard reads a dropped key again in the background, so the "
        "next read hits)",
        f"measured phase: L1 hit rate {_pct(rate)} {verdict} the aim of {result['goal']:.0%}; "
        f"the ceiling for this sequence is {_pct(ceiling)} (about 1 - write fraction = "
        f"{_pct(result['approximate_ceiling'], 1)}: each write invalidates its key, and the next "
        "read of it misses)",
        f"L1 lookups {measured['l1_lookups']:,.0f} for {measured['reads']:,} GetValue calls "
        "(they should be equal: only reads look up L1)",
        f"of the misses, {measured['coalesced']:,.0f} shared a read of the same key already in "
        f"flight: reads that reached the database {_pct(measured['database_read_rate'])} of "
        f"lookups, so {_pct(1 - (measured['database_read_rate'] or 0))} were answered from memory",
    ]
    machine = result["machine"]
    lines.append(
        f"load average {machine['loadavg_before'][0]:.2f} before, "
        f"{machine['loadavg_after'][0]:.2f} after, on {machine['cpus']} CPUs"
    )
    return "\n".join(lines)
