"""The result as data: medians of the rounds, the ratios, the settings and versions that
produced them. Written as JSON under bench/results/ to compare runs later."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import h2load, profiling, provenance
from bench.serverproc import CpuTimes
from bench.stats import median
from bench.workloads import Workload

GOAL = 0.8
NULL, GET = "null", "get_value"


@dataclass(frozen=True, slots=True)
class Run:
    """One h2load run of one workload in one round, with the server's CPU meanwhile."""

    round: int
    workload: str
    load: h2load.LoadResult
    server_cpu: CpuTimes | None

    def cpu_us_per_rpc(self) -> tuple[float, float] | None:
        """Server CPU µs per RPC: whole process, and its event-loop thread alone."""
        if self.server_cpu is None:
            return None
        per = 1e6 / self.load.done
        return self.server_cpu.process * per, self.server_cpu.main_thread * per

    def as_dict(self) -> dict[str, Any]:
        cpu = self.cpu_us_per_rpc()
        return {
            "round": self.round,
            "workload": self.workload,
            "server_cpu_us_per_rpc": cpu[0] if cpu else None,
            "loop_thread_cpu_us_per_rpc": cpu[1] if cpu else None,
            **self.load.as_dict(),
        }


def _versions(h2load_path: str) -> dict[str, str]:
    found = provenance.versions(("grpcio", "protobuf", "uvloop", "switchyard", "py-spy"))
    return {"python": found.pop("python"), "h2load": h2load.version(h2load_path), **found}


def _summary(runs: list[Run], workload: str) -> dict[str, float | None]:
    mine = [r for r in runs if r.workload == workload]
    cpu = [c for c in (r.cpu_us_per_rpc() for r in mine) if c is not None]
    return {
        "rps": median([r.load.rps for r in mine]),
        "rps_min": min(r.load.rps for r in mine),
        "rps_max": max(r.load.rps for r in mine),
        "p50_us": median([r.load.latency_us["p50"] for r in mine]),
        "p90_us": median([r.load.latency_us["p90"] for r in mine]),
        "p99_us": median([r.load.latency_us["p99"] for r in mine]),
        "server_cpu_us_per_rpc": median([c[0] for c in cpu]) if cpu else None,
        "loop_thread_cpu_us_per_rpc": median([c[1] for c in cpu]) if cpu else None,
    }


def _paired(runs: list[Run]) -> list[float]:
    """GetValue/null throughput within each round: neighbours in time share the noise."""
    by = {(r.round, r.workload): r.load.rps for r in runs}
    return [by[i, GET] / by[i, NULL] for i in sorted({r.round for r in runs})]


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


def build(
    *,
    runs: list[Run],
    profiles: dict[str, profiling.Profile],
    hot_path_us: dict[str, float],
    settings: h2load.Settings,
    warmup: float,
    h2load_path: str,
    requests: dict[str, tuple[Workload, int]],
    load: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> dict[str, Any]:
    null, get = _summary(runs, NULL), _summary(runs, GET)
    paired = _paired(runs)
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": provenance.commit(),
        "versions": _versions(h2load_path),
        "machine": provenance.machine(*load),
        "h2load": {
            **settings.as_dict(),
            "warmup_seconds": warmup,
            "rounds": len(paired),
            "order": "alternating: null first in rounds 1, 3, ...; get_value first in 2, 4, ...",
            "headers": list(h2load.GRPC_HEADERS),
        },
        "requests": {
            name: {"path": w.path, "request_hex": w.request.hex(), "response_bytes": size}
            for name, (w, size) in requests.items()
        },
        "summary": {NULL: null, GET: get},
        "ratios": {
            "goal": GOAL,
            "throughput_get_over_null": _ratio(get["rps"], null["rps"]),
            "throughput_paired_median": median(paired),
            "throughput_paired_min": min(paired),
            "throughput_paired_max": max(paired),
            "p50_get_over_null": _ratio(get["p50_us"], null["p50_us"]),
            "p99_get_over_null": _ratio(get["p99_us"], null["p99_us"]),
            "server_cpu_null_over_get": _ratio(
                null["server_cpu_us_per_rpc"], get["server_cpu_us_per_rpc"]
            ),
            "loop_thread_cpu_null_over_get": _ratio(
                null["loop_thread_cpu_us_per_rpc"], get["loop_thread_cpu_us_per_rpc"]
            ),
        },
        "runs": [r.as_dict() for r in runs],
        "profiles": {name: p.as_dict() for name, p in profiles.items()},
        "hot_path_us_per_call": hot_path_us,
    }


def write(result: dict[str, Any], directory: Path, prefix: str = "bench") -> Path:
    """Writes `result` as `PREFIX-TIMESTAMP.json` under `directory` (each benchmark has
    its prefix: bench for GetValue/null, fanout, hitrate)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{prefix}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
