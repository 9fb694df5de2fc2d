"""Reads through the Python client's live view against a plain dict lookup.

An application reads its configuration on every request from `LiveConfig.get`, so the
cost of a read is what matters, and the aim is that it costs next to a dict lookup: no
I/O, no lock, no copy. The view is loaded from a real server (in this process, on a
fresh SQLite file) over a real gRPC connection, then read in a tight loop; a dict with
the same keys and values is read the same way, in the same run, and the ratio reported.
`snapshot()` (a consistent copy of every value) is timed too, for what it costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import timeit
from collections.abc import Sequence
from pathlib import Path

from bench import provenance, report
from switchyard.app import open_application, start_server
from switchyard.client import Client
from switchyard.settings import Settings

KEYS = ("api.timeout", "api.base_url", "cache.ttl", "support.email")


def _per_call_ns(statement: object, number: int, repeat: int = 7) -> float:
    """The best of `repeat` runs, in ns per call: the least disturbed by neighbours."""
    runs = timeit.repeat(statement, number=number, repeat=repeat)  # type: ignore[call-overload]
    return min(runs) / number * 1e9


async def _measure(workdir: Path, number: int) -> dict[str, float]:
    settings = Settings(listen="127.0.0.1:0", database_url=f"sqlite:///{workdir}/live.db")
    application = await open_application(settings)
    server, port, _ = await start_server(application, settings.listen)
    try:
        async with (
            Client(f"127.0.0.1:{port}") as client,
            client.live(keys=KEYS, environment="production") as live,
        ):
            await live.ready()
            plain = dict(live.snapshot())
            key = "api.timeout"
            return {
                "dict.get_ns": _per_call_ns(lambda: plain.get(key, 30), number),
                "live.get_ns": _per_call_ns(lambda: live.get(key, 30), number),
                "live.snapshot_ns": _per_call_ns(live.snapshot, number // 10),
            }
    finally:
        await server.stop(None)
        await application.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench liveview", description=__doc__)
    parser.add_argument("--number", type=int, default=1_000_000, help="reads per timing run")
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="switchyard-liveview-") as workdir:
        timings = asyncio.run(_measure(Path(workdir), args.number))
    ratio = timings["live.get_ns"] / timings["dict.get_ns"]
    result = {
        "benchmark": "live view reads",
        "commit": provenance.commit(),
        "versions": provenance.versions(["grpcio", "protobuf"]),
        "machine": provenance.machine(load_before, os.getloadavg()),
        "keys": list(KEYS),
        "number": args.number,
        "timings": timings,
        "live_get_over_dict_get": ratio,
    }
    print(
        f"per read, best of 7 x {args.number:,}: dict.get {timings['dict.get_ns']:.1f} ns, "
        f"LiveConfig.get {timings['live.get_ns']:.1f} ns ({ratio:.2f}x the dict); "
        f"snapshot() {timings['live.snapshot_ns']:.0f} ns for {len(KEYS)} keys"
    )
    path = report.write(result, args.output_dir, prefix="liveview")
    print(f"raw numbers: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
