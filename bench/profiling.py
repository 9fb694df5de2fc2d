"""Where the server's time goes under load, per RPC, for one workload.

The preferred profiler is py-spy (PyPI package `py-spy`): it samples the running server
from outside, so the measured code runs unmodified. When it is missing, or may not
attach (no ptrace permission), a cProfile run of a dedicated server is the fallback: it
needs nothing installed but slows Python code several-fold, so its shares lean towards
Python and away from gRPC's C core.

Either way the result is a list of functions with self and cumulative time, expressed as
microseconds per RPC (time in the function divided by the requests served meanwhile) so
that GetValue's profile and the null RPC's line up: the difference is what GetValue does
beyond the null RPC.
"""

from __future__ import annotations

import pstats
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MAIN_THREAD = "MainThread"
# When the innermost Python frame is the one running the event loop, the thread is in
# native code the loop called: uvloop, grpc's Cython aio server, protobuf's C extension.
NATIVE = "[C code under the event loop: uvloop, grpc's Cython server, protobuf]"
_LOOP_FRAMES = frozenset({"Runner.run (asyncio/runners.py)", "run (uvloop/__init__.py)"})
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")
_THREAD = re.compile(r"^thread \(\w+\): (?P<name>.*)$")
_TRIM = ("site-packages/", "/src/", "/lib/python3.", "/bench/")


@dataclass(frozen=True, slots=True)
class FunctionCost:
    """One function: share of the profiled thread's time, and microseconds per RPC."""

    function: str
    self_share: float
    cumulative_share: float
    self_us: float
    cumulative_us: float


@dataclass(slots=True)
class Profile:
    tool: str
    workload: str
    requests: int
    seconds: float
    threads: dict[str, float] = field(default_factory=dict)
    functions: list[FunctionCost] = field(default_factory=list)

    def top(self, key: str, count: int) -> list[FunctionCost]:
        """The `count` costliest functions by `key` (self_us or cumulative_us), leaving
        out the ancestors every sample shares (the interpreter's entry, the loop runner),
        which say nothing about where the time goes."""
        informative = [f for f in self.functions if f.cumulative_share < 0.99]
        return sorted(informative, key=lambda f: getattr(f, key), reverse=True)[:count]

    def as_dict(self, count: int = 60) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "workload": self.workload,
            "requests": self.requests,
            "seconds": self.seconds,
            "threads_sampled_us_per_rpc": self.threads,
            "top_self": [asdict(f) for f in self.top("self_us", count)],
            "top_cumulative": [asdict(f) for f in self.top("cumulative_us", count)],
        }


def find_py_spy() -> str | None:
    """py-spy from the virtualenv the bench runs in, else from PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _short(path: str) -> str:
    for marker in _TRIM:
        if marker in path:
            path = path.rsplit(marker, 1)[1]
            if marker == "/lib/python3.":
                path = path.split("/", 1)[-1]
    return path


def _frame(raw: str) -> str:
    """`function (file:line)` without the line, so a function is one row however many
    lines of it were sampled."""
    match = _FRAME.match(raw)
    if match is None:
        return raw
    return f"{match['function']} ({_short(match['file'])})"


def _costs(
    self_counts: Counter[str], cumulative: Counter[str], total: float, us_per_unit: float
) -> list[FunctionCost]:
    return [
        FunctionCost(
            function=name,
            self_share=self_counts[name] / total,
            cumulative_share=count / total,
            self_us=self_counts[name] * us_per_unit,
            cumulative_us=count * us_per_unit,
        )
        for name, count in cumulative.items()
    ]


def record_py_spy(
    py_spy: str, pid: int, seconds: float, rate: int, output: Path
) -> subprocess.CompletedProcess[str]:
    """Samples `pid` for `seconds` into a collapsed-stack file, one prefix per thread.

    `--gil` samples only the thread holding the GIL, which is where Python runs. Without
    it, py-spy under-attributes Python here: a test handler that burns a known 20 µs of
    Python per call showed as 2 µs in the default mode and 19 µs with `--gil`. Time the
    event-loop thread spends in gRPC core without the GIL is thus not in the profile; the
    /proc CPU figures of the rounds count it. Blocking mode (the default) pauses the server
    at each sample, so stacks are exact; at 100 Hz it slows the server by about a fifth
    while profiling."""
    command = [
        py_spy,
        "record",
        f"--pid={pid}",
        f"--rate={rate}",
        f"--duration={seconds:g}",
        "--format=raw",
        f"--output={output}",
        "--threads",
        "--gil",
    ]
    return subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=seconds + 60
    )


def sample_under_load(
    py_spy: str,
    pid: int,
    workload: str,
    seconds: float,
    rate: int,
    workdir: Path,
    run_load: Callable[[float], float],
) -> Profile | None:
    """py-spy samples process `pid` for `seconds` while `run_load(duration)` (which returns
    the requests/s it reached) loads it; the load starts first and outlasts the sampling
    on both ends. None when py-spy may not attach."""
    output = workdir / f"{workload}.pyspy"
    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = pool.submit(run_load, seconds + 2)
        time.sleep(1)
        recorded = record_py_spy(py_spy, pid, seconds, rate, output)
        rps = loading.result()
    if recorded.returncode != 0 or not output.exists():
        print(f"  py-spy could not profile: {recorded.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    with output.open() as lines:
        return parse_collapsed(
            lines, workload=workload, requests=round(rps * seconds), seconds=seconds, rate=rate
        )


def parse_collapsed(
    lines: Iterable[str], *, workload: str, requests: int, seconds: float, rate: int
) -> Profile:
    """Aggregates py-spy's collapsed stacks (`frame;frame;... count`) of the main thread,
    where grpc.aio's event loop and every handler run. µs per RPC are sampled time
    (samples / rate) over the requests served while sampling."""
    threads: Counter[str] = Counter()
    self_counts: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = _THREAD.match(frames[0])
        name = thread["name"] if thread else MAIN_THREAD
        threads[name] += count
        if name != MAIN_THREAD:
            continue
        functions = [_frame(f) for f in frames[1 if thread else 0 :]]
        if functions and functions[-1] in _LOOP_FRAMES:
            functions.append(NATIVE)
        if functions:
            self_counts[functions[-1]] += count
        for function in set(functions):  # once per sample, however deep the recursion
            cumulative[function] += count
    total = threads[MAIN_THREAD] or 1
    us_per_sample = 1e6 / rate / max(requests, 1)
    return Profile(
        tool="py-spy",
        workload=workload,
        requests=requests,
        seconds=seconds,
        threads={name: count * us_per_sample for name, count in threads.most_common()},
        functions=_costs(self_counts, cumulative, total, us_per_sample),
    )


def parse_cprofile(stats_file: Path, *, workload: str, requests: int, seconds: float) -> Profile:
    """Self (tottime) and cumulative (cumtime) seconds per function, from a dump of the
    whole server run, per request served during that run."""
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    stats = pstats.Stats(str(stats_file)).stats  # type: ignore[attr-defined]
    self_time: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    for (file, _line, function), (_cc, _nc, tottime, cumtime, _callers) in stats.items():
        name = f"{function} ({_short(file)})" if file != "~" else function
        self_time[name] += int(tottime * 1e6)
        cumulative[name] = max(cumulative[name], int(cumtime * 1e6))
    total = sum(self_time.values()) or 1
    return Profile(
        tool="cProfile",
        workload=workload,
        requests=requests,
        seconds=seconds,
        functions=_costs(self_time, cumulative, total, 1 / max(requests, 1)),
    )


def beyond(profile: Profile, baseline: Profile, count: int) -> list[tuple[str, float, float]]:
    """The functions whose self time per RPC grew most from `baseline` to `profile`:
    (function, µs per RPC in profile, µs per RPC in baseline)."""
    base = {f.function: f.self_us for f in baseline.functions}
    rows = [(f.function, f.self_us, base.get(f.function, 0.0)) for f in profile.functions]
    rows.sort(key=lambda row: row[1] - row[2], reverse=True)
    return rows[:count]
