"""The result as data: medians of the rounds, the ratios, the settings and versions that
produced them. Written as JSON under bench/results/ to compare runs later.

The keys are those the GetValue benchmark has always written (its ratios are
`throughput_get_over_null` ...); another RPC's are named after its `Comparison.short`
(`throughput_eval_over_null` ...), and `subject` says which workload is the RPC. The
variants measured alongside it (`Comparison.others`) have theirs under `other_ratios`,
named after the workload; with Redis, each run also says what it cost Redis."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import h2load, profiling, provenance
from bench.comparison import Comparison
from bench.redisproc import RedisSample
from bench.serverproc import CpuTimes
from bench.stats import median
from bench.workloads import NULL as NULL_WORKLOAD
from bench.workloads import Workload

NULL = NULL_WORKLOAD.name


@dataclass(frozen=True, slots=True)
class Run:
    """One h2load run of one workload in one round, with the server's CPU meanwhile."""

    round: int
    workload: str
    load: h2load.LoadResult
    server_cpu: CpuTimes | None
    redis: RedisSample | None = None
    """What Redis did meanwhile (CPU, EVALSHA calls), when the server counts there."""

    def cpu_us_per_rpc(self) -> tuple[float, float] | None:
        """Server CPU µs per RPC: whole process, and its event-loop thread alone."""
        if self.server_cpu is None:
            return None
        per = 1e6 / self.load.done
        return self.server_cpu.process * per, self.server_cpu.main_thread * per

    def redis_per_rpc(self) -> tuple[float | None, float] | None:
        """Redis CPU µs per RPC, and EVALSHA calls per RPC (one per decision)."""
        if self.redis is None:
            return None
        cpu = None if self.redis.cpu is None else self.redis.cpu * 1e6 / self.load.done
        return cpu, self.redis.evalsha / self.load.done

    def as_dict(self) -> dict[str, Any]:
        cpu = self.cpu_us_per_rpc()
        redis = self.redis_per_rpc()
        return {
            "round": self.round,
            "workload": self.workload,
            "server_cpu_us_per_rpc": cpu[0] if cpu else None,
            "loop_thread_cpu_us_per_rpc": cpu[1] if cpu else None,
            **(
                {"redis_cpu_us_per_rpc": redis[0], "redis_evalsha_per_rpc": redis[1]}
                if redis
                else {}
            ),
            **self.load.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class Phase:
    """Rounds of both workloads under a load below saturation, for latency: `name` is
    `serial` (one request in flight) or `paced` (`offered_rps` in all, `fraction` of the
    RPC's saturated throughput)."""

    name: str
    settings: h2load.Settings
    runs: list[Run]
    fraction: float | None = None
    offered_rps: float | None = None


def _versions(h2load_path: str) -> dict[str, str]:
    found = provenance.versions(("grpcio", "protobuf", "uvloop", "switchyard", "py-spy"))
    return {"python": found.pop("python"), "h2load": h2load.version(h2load_path), **found}


def _summary(runs: list[Run], workload: str) -> dict[str, float | None]:
    mine = [r for r in runs if r.workload == workload]
    cpu = [c for c in (r.cpu_us_per_rpc() for r in mine) if c is not None]
    summary = {
        "rps": median([r.load.rps for r in mine]),
        "rps_min": min(r.load.rps for r in mine),
        "rps_max": max(r.load.rps for r in mine),
        "p50_us": median([r.load.latency_us["p50"] for r in mine]),
        "p90_us": median([r.load.latency_us["p90"] for r in mine]),
        "p99_us": median([r.load.latency_us["p99"] for r in mine]),
        "server_cpu_us_per_rpc": median([c[0] for c in cpu]) if cpu else None,
        "loop_thread_cpu_us_per_rpc": median([c[1] for c in cpu]) if cpu else None,
    }
    redis = [c for c in (r.redis_per_rpc() for r in mine) if c is not None]
    if redis:
        redis_cpu = [c for c, _ in redis if c is not None]
        summary["redis_cpu_us_per_rpc"] = median(redis_cpu) if redis_cpu else None
        summary["redis_evalsha_per_rpc"] = median([calls for _, calls in redis])
    return summary


def _paired(runs: list[Run], subject: str) -> list[float]:
    """RPC/null throughput within each round: neighbours in time share the noise."""
    by = {(r.round, r.workload): r.load.rps for r in runs}
    return [by[i, subject] / by[i, NULL] for i in sorted({r.round for r in runs})]


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


def _phase(phase: Phase, subject: str, short: str) -> dict[str, Any]:
    names = dict.fromkeys(r.workload for r in phase.runs)  # null, the subject, others
    summary = {name: _summary(phase.runs, name) for name in names}
    null, rpc = summary[NULL], summary[subject]
    return {
        "h2load": phase.settings.as_dict(),
        "fraction_of_saturated": phase.fraction,
        "offered_rps": phase.offered_rps,
        "summary": summary,
        "ratios": {
            f"throughput_{short}_over_null": _ratio(rpc["rps"], null["rps"]),
            f"p50_{short}_over_null": _ratio(rpc["p50_us"], null["p50_us"]),
            f"p99_{short}_over_null": _ratio(rpc["p99_us"], null["p99_us"]),
        },
        "runs": [r.as_dict() for r in phase.runs],
    }


def _ratios(
    null: dict[str, Any], rpc: dict[str, Any], paired: list[float], short: str
) -> dict[str, float | None]:
    """An RPC's figures over the null RPC's; `paired` are the per-round throughput ratios."""
    return {
        f"throughput_{short}_over_null": _ratio(rpc["rps"], null["rps"]),
        "throughput_paired_median": median(paired),
        "throughput_paired_min": min(paired),
        "throughput_paired_max": max(paired),
        f"p50_{short}_over_null": _ratio(rpc["p50_us"], null["p50_us"]),
        f"p99_{short}_over_null": _ratio(rpc["p99_us"], null["p99_us"]),
        f"server_cpu_null_over_{short}": _ratio(
            null["server_cpu_us_per_rpc"], rpc["server_cpu_us_per_rpc"]
        ),
        f"loop_thread_cpu_null_over_{short}": _ratio(
            null["loop_thread_cpu_us_per_rpc"], rpc["loop_thread_cpu_us_per_rpc"]
        ),
    }


def _order(comparison: Comparison) -> str:
    if not comparison.others:
        subject = comparison.subject.name
        return f"alternating: null first in rounds 1, 3, ...; {subject} first in 2, 4, ..."
    names = ", ".join(w.name for w in comparison.workloads)
    return f"alternating: {names} in rounds 1, 3, ...; the reverse in 2, 4, ..."


def build(
    *,
    comparison: Comparison,
    runs: list[Run],
    phases: list[Phase],
    profiles: dict[str, profiling.Profile],
    hot_path_us: dict[str, float],
    settings: h2load.Settings,
    warmup: float,
    h2load_path: str,
    requests: dict[str, tuple[Workload, int]],
    load: tuple[tuple[float, float, float], tuple[float, float, float]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The result as JSON-ready data; `extra` adds sections of a benchmark's own (the
    `redis` of `checklimit`)."""
    subject, short = comparison.subject.name, comparison.short
    summary = {w.name: _summary(runs, w.name) for w in comparison.workloads}
    null, rpc = summary[NULL], summary[subject]
    paired = _paired(runs, subject)
    others = {
        w.name: _ratios(null, summary[w.name], _paired(runs, w.name), w.name)
        for w in comparison.others
    }
    return {
        "benchmark": comparison.name,
        "subject": subject,
        "label": comparison.label,
        "title": comparison.title,
        "aims": {
            "throughput_over_null": comparison.throughput_aim,
            "p99_ms": comparison.p99_aim_ms,
            "p99_spec_ms": comparison.p99_spec_ms,
        },
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": provenance.commit(),
        "versions": _versions(h2load_path),
        "machine": provenance.machine(*load),
        "h2load": {
            **settings.as_dict(),
            "warmup_seconds": warmup,
            "rounds": len(paired),
            "order": _order(comparison),
            "headers": list(h2load.GRPC_HEADERS),
        },
        "requests": {
            name: {"path": w.path, "request_hex": w.request.hex(), "response_bytes": size}
            for name, (w, size) in requests.items()
        },
        "summary": summary,
        "ratios": {"goal": comparison.throughput_aim, **_ratios(null, rpc, paired, short)},
        **({"other_ratios": others} if others else {}),
        "runs": [r.as_dict() for r in runs],
        "latency_phases": {p.name: _phase(p, subject, short) for p in phases},
        "profiles": {name: p.as_dict() for name, p in profiles.items()},
        "hot_path_us_per_call": hot_path_us,
        **(extra or {}),
    }


def write(result: dict[str, Any], directory: Path, prefix: str = "bench") -> Path:
    """Writes `result` as `PREFIX-TIMESTAMP.json` under `directory` (each benchmark has
    its prefix: bench for GetValue/null, evalflag, fanout, hitrate, liveview, engine)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{prefix}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
