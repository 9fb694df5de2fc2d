"""A workload bound to a running server, and one h2load run against it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench import h2load
from bench.serverproc import ServerProcess
from bench.workloads import GET_VALUE, NULL, Workload, preflight

WORKLOADS = (NULL, GET_VALUE)


@dataclass(frozen=True, slots=True)
class Target:
    """The URL to load, the body file h2load sends and the size of a good answer (from
    the pre-flight call, which this module makes before anything else)."""

    workload: Workload
    url: str
    body: Path
    response_bytes: int


def bind(server: ServerProcess, workdir: Path) -> dict[str, Target]:
    """Writes each workload's body file and checks it with a real gRPC call."""
    targets = {}
    for workload in WORKLOADS:
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
