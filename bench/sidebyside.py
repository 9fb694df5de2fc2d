"""Two servers configured differently, loaded in turn by h2load, round after round, so
that both see the same noise: what `auth` and `telemetry` are made of.

Each round runs every workload against each server, the order of the servers alternating
between rounds so that neither always goes first. A server idles while the other is
loaded; the two compete only for memory. The result is requests/s per workload and
server, per round, keyed `"<workload> <server>"`; a benchmark reports their ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import h2load
from bench.runner import RESULTS
from bench.serverproc import ServerProcess
from bench.workloads import Workload, preflight


@dataclasses.dataclass(frozen=True)
class Served:
    """One of the servers compared: its name in the report, and how to start it."""

    name: str
    start: Callable[[Path], ServerProcess]
    """Makes the (not yet started) server, given a scratch folder."""
    headers: Callable[[Path], tuple[str, ...]] = lambda workdir: ()
    """Headers h2load sends besides gRPC's own, read once the server has started."""


def arguments(prog: str, description: str | None, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def run_rounds(
    args: argparse.Namespace, served: Sequence[Served], workloads: Sequence[Workload]
) -> dict[str, list[float]]:
    """Requests/s of every workload on every server, per round (see the module)."""
    tool = h2load.ensure_h2load()
    settings = h2load.Settings(args.clients, args.streams, 1, args.duration)
    rps: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-pair-")))
        servers = [stack.enter_context(s.start(workdir)) for s in served]
        headers = [(*h2load.GRPC_HEADERS, *s.headers(workdir)) for s in served]
        bodies = {w.name: w.write_body(workdir) for w in workloads}
        # The answer's size, from a real call to the first server (the same on each).
        sizes = {w.name: preflight(servers[0].address, w, bodies[w.name]) for w in workloads}

        def run(index: int, workload: Workload, duration: float) -> float:
            result = h2load.run(
                tool,
                f"http://{servers[index].address}{workload.path}",
                bodies[workload.name],
                dataclasses.replace(settings, duration=duration),
                workdir / f"{served[index].name}-{workload.name}.log",
                response_bytes=sizes[workload.name],
                headers=headers[index],
            )
            return result.rps

        for index in range(len(served)):
            for workload in workloads:
                run(index, workload, args.warmup)
        for number in range(args.rounds):
            order = list(range(len(served)))
            if number % 2:
                order.reverse()
            for index in order:
                for workload in workloads:
                    key = f"{workload.name} {served[index].name}"
                    rps.setdefault(key, []).append(run(index, workload, args.duration))
            print(f"round {number + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in rps.items()))
    return rps


def ratio(rps: dict[str, list[float]], top: str, bottom: str) -> list[float]:
    """Per-round ratios of two series of `run_rounds`."""
    return [a / b for a, b in zip(rps[top], rps[bottom], strict=True)]


__all__ = ["Served", "arguments", "ratio", "run_rounds"]
