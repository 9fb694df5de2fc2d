"""A workload bound to a running server, and one h2load run against it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import h2load
from bench.serverproc import ServerProcess
from bench.workloads import Workload, preflight

POISSON_PER_CONNECTION = 400.0
"""Arrivals per second one h2load timing script keeps to: gaps of 2.5 ms on average,
well above its timers' millisecond grain (at 1,600/s, one script achieves about 950)."""


@dataclass(frozen=True, slots=True)
class Target:
    """The URL to load, the body file h2load sends and the size of a good answer (from
    the pre-flight call, which this module makes before anything else)."""

    workload: Workload
    url: str
    body: Path
    response_bytes: int


def bind(server: ServerProcess, workdir: Path, workloads: Sequence[Workload]) -> dict[str, Target]:
    """Prepares the server for each workload (creating what it reads, if anything),
    writes the workload's body file and checks it with a real gRPC call."""
    targets = {}
    for workload in workloads:
        if workload.prepare is not None:
            workload.prepare(server.address)
        body = workload.write_body(workdir)
        targets[workload.name] = Target(
            workload=workload,
            url=f"http://{server.address}{workload.path}",
            body=body,
            response_bytes=preflight(server.address, workload, body),
        )
    return targets


def load(tool: str, target: Target, settings: h2load.Settings, workdir: Path) -> h2load.LoadResult:
    return h2load.run(
        tool,
        target.url,
        target.body,
        settings,
        workdir / f"{target.workload.name}.log",
        response_bytes=target.response_bytes,
    )


def load_poisson(
    tool: str,
    target: Target,
    settings: h2load.Settings,
    rate: float,
    seed: int,
    workdir: Path,
) -> h2load.LoadResult:
    """One run of `settings.duration` seconds with requests arriving as a Poisson
    process of `rate` per second: the sum of independent Poisson processes of at most
    `POISSON_PER_CONNECTION` each, one h2load process and connection apiece (an h2load
    timing script is followed by every connection of its process, all at once)."""
    count = max(1, math.ceil(rate / POISSON_PER_CONNECTION))
    scripts = []
    for index in range(count):
        script = workdir / f"{target.workload.name}-{index}.script"
        h2load.poisson_script(
            script, target.url, rate / count, settings.duration, seed * 1000 + index
        )
        scripts.append(script)
    return h2load.run_scripts(
        tool, target.url, target.body, settings, scripts, response_bytes=target.response_bytes
    )
