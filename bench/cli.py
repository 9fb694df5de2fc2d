"""`python -m bench [BENCHMARK] [OPTIONS]`: one benchmark by name, or all of them.

With no name (or `all`), every benchmark runs in turn, and the options go to `getvalue`,
so that `python -m bench --rounds 3` means what it meant before the others existed.
Each benchmark takes its own options after its name (`python -m bench fanout --help`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from bench import (
    auth,
    batches,
    console,
    engine,
    envoybench,
    fanout,
    hitrate,
    liveview,
    runner,
    slowconsumers,
    telemetry,
)

Main = Callable[[Sequence[str] | None], int]

BENCHMARKS: dict[str, tuple[Main, str]] = {
    "getvalue": (runner.main, "cached GetValue against a null RPC, by h2load"),
    "evalflag": (runner.main_evalflag, "EvaluateFlag against a null RPC, by h2load"),
    "checklimit": (runner.main_checklimit, "CheckRateLimit (Redis) against a null RPC"),
    "envoy": (envoybench.main, "requests/s through Envoy with and without the rate-limit filter"),
    "fanout": (fanout.main, "commit to delivery on 1,000 WatchConfig streams"),
    "slowconsumers": (
        slowconsumers.main,
        "2,000 WatchConfig streams that stop reading, beside live ones: what they cost",
    ),
    "hitrate": (hitrate.main, "L1 hit rate under Zipf-skewed reads with 1% writes"),
    "liveview": (liveview.main, "reads through the client's live view against a dict"),
    "engine": (engine.main, "the flag evaluation engine in-process, beside flagd's figures"),
    "auth": (auth.main, "what authentication with a bearer token costs a call, side by side"),
    "telemetry": (
        telemetry.main,
        "what tracing (a span per call, OTLP) costs a call, side by side",
    ),
    "console": (
        console.main,
        "the web console's search of 5,000 keys and row refresh against a null endpoint",
    ),
    "batch-stall": (batches.main_stall, "GetValue's wait while 5,000-write batches run"),
    "transfer": (batches.main_transfer, "export, apply -f and diff -f of 50,000 keys"),
}


def _usage() -> str:
    lines = [
        f"usage: python -m bench [all | {' | '.join(BENCHMARKS)}] [options]",
        "",
        "With no name, or `all`, runs them all in turn; options then go to getvalue.",
        "",
    ]
    lines += [f"  {name:<10} {about}" for name, (_, about) in BENCHMARKS.items()]
    lines += ["", "`python -m bench NAME --help` lists a benchmark's options.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in BENCHMARKS:
        run, _ = BENCHMARKS[args[0]]
        return run(args[1:])
    if args and args[0] == "all":
        args = args[1:]
    if args and args[0] in ("-h", "--help"):
        print(_usage())
        print("options of getvalue:")
        return runner.main(args)
    # One failing must not cost the others' results; the exit code says it failed.
    failed = []
    for name, (run, about) in BENCHMARKS.items():
        print(f"\n=== {name}: {about}")
        if run(args if name == "getvalue" else []) != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
