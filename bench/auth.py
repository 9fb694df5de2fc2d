"""`python -m bench auth`: what authentication costs a call, measured side by side.

Two bench servers run at once, one open (every caller the local operator) and one with
authentication on (the load generator sends a reader's bearer token on every call, which
the gate hashes, looks up, and checks against the permission table). h2load drives each
server's null RPC and cached GetValue in turn, round after round, so both see the same
noise; the report is the ratios, per round and their median:

- null (auth) / null (open) and GetValue (auth) / GetValue (open): what the gate with a
  token costs a call, relative to the same call without it;
- GetValue / null on each server: the usual figure of the `getvalue` benchmark.

A server idles while the other is loaded; the two compete only for memory.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import h2load, provenance, report
from bench.runner import RESULTS
from bench.serverproc import ServerError, ServerProcess
from bench.stats import median
from bench.workloads import GET_VALUE, NULL, PreflightError, Workload, preflight


@dataclasses.dataclass(frozen=True)
class _Served:
    name: str
    address: str
    headers: tuple[str, ...]


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench auth", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def _bench(args: argparse.Namespace) -> dict[str, list[float]]:
    tool = h2load.ensure_h2load()
    settings = h2load.Settings(args.clients, args.streams, 1, args.duration)
    workloads: tuple[Workload, ...] = (NULL, GET_VALUE)
    rps: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-auth-")))
        token_file = workdir / "token"
        open_server = stack.enter_context(ServerProcess())
        auth_server = stack.enter_context(ServerProcess(token_file=token_file))
        bearer = f"authorization: Bearer {token_file.read_text().strip()}"
        served = (
            _Served("open", open_server.address, h2load.GRPC_HEADERS),
            _Served("auth", auth_server.address, (*h2load.GRPC_HEADERS, bearer)),
        )
        bodies = {w.name: w.write_body(workdir) for w in workloads}
        # The answer's size, from a real call to the open server (the same on both).
        sizes = {w.name: preflight(open_server.address, w, bodies[w.name]) for w in workloads}

        def run(server: _Served, workload: Workload, duration: float) -> float:
            result = h2load.run(
                tool,
                f"http://{server.address}{workload.path}",
                bodies[workload.name],
                dataclasses.replace(settings, duration=duration),
                workdir / f"{server.name}-{workload.name}.log",
                response_bytes=sizes[workload.name],
                headers=server.headers,
            )
            return result.rps

        for server in served:
            for workload in workloads:
                run(server, workload, args.warmup)
        for number in range(args.rounds):
            # Alternate the order, so that neither server always goes first.
            order = served if number % 2 == 0 else served[::-1]
            for server in order:
                for workload in workloads:
                    key = f"{workload.name} {server.name}"
                    rps.setdefault(key, []).append(run(server, workload, args.duration))
            print(f"round {number + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in rps.items()))
    return rps


def _ratios(rps: dict[str, list[float]]) -> dict[str, list[float]]:
    def ratio(top: str, bottom: str) -> list[float]:
        return [a / b for a, b in zip(rps[top], rps[bottom], strict=True)]

    return {
        "null: auth / open": ratio("null auth", "null open"),
        "GetValue: auth / open": ratio("get_value auth", "get_value open"),
        "GetValue / null, open": ratio("get_value open", "null open"),
        "GetValue / null, auth": ratio("get_value auth", "null auth"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    load_before = os.getloadavg()
    try:
        rps = _bench(args)
    except (h2load.LoadError, PreflightError, ServerError) as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    print("\nrequests/s, median of rounds:")
    for name, values in rps.items():
        print(f"  {name:<18} {median(values):>9,.0f}")
    print("\nratios, median of the per-round ratios (per round):")
    for name, values in _ratios(rps).items():
        rounds = " ".join(f"{v:.2f}" for v in values)
        print(f"  {name:<24} {median(values):.2f}   ({rounds})")
    result = {
        "benchmark": "auth",
        "commit": provenance.commit(),
        "machine": provenance.machine(load_before, os.getloadavg()),
        "settings": vars(args) | {"output_dir": str(args.output_dir)},
        "rps": rps,
        "ratios": _ratios(rps),
    }
    print(f"raw numbers: {report.write(result, args.output_dir, prefix='auth')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
