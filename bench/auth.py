"""`python -m bench auth`: what authentication costs a call, measured side by side.

Two bench servers run at once, one open (every caller the local operator) and one with
authentication on (the load generator sends a reader's bearer token on every call, which
the gate hashes, looks up, and checks against the permission table). h2load drives each
server's null RPC and cached GetValue in turn, round after round, so both see the same
noise; the report is the ratios, per round and their median:

- null (auth) / null (open) and GetValue (auth) / GetValue (open): what the gate with a
  token costs a call, relative to the same call without it;
- GetValue / null on each server: the usual figure of the `getvalue` benchmark.

The rounds are `bench.sidebyside`'s.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import h2load, provenance, report
from bench.serverproc import ServerError, ServerProcess
from bench.sidebyside import Served, arguments, ratio, run_rounds
from bench.stats import median
from bench.workloads import GET_VALUE, NULL, PreflightError


def _bench(args: argparse.Namespace) -> dict[str, list[float]]:
    def token_file(workdir: Path) -> Path:
        return workdir / "token"

    served = (
        Served("open", lambda workdir: ServerProcess()),
        Served(
            "auth",
            lambda workdir: ServerProcess(token_file=token_file(workdir)),
            lambda workdir: (f"authorization: Bearer {token_file(workdir).read_text().strip()}",),
        ),
    )
    return run_rounds(args, served, (NULL, GET_VALUE))


def _ratios(rps: dict[str, list[float]]) -> dict[str, list[float]]:
    return {
        "null: auth / open": ratio(rps, "null auth", "null open"),
        "GetValue: auth / open": ratio(rps, "get_value auth", "get_value open"),
        "GetValue / null, open": ratio(rps, "get_value open", "null open"),
        "GetValue / null, auth": ratio(rps, "get_value auth", "null auth"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments("python -m bench auth", __doc__, argv)
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
