"""Driving h2load, nghttp2's native HTTP/2 load generator, and reading what it reports.

A Python client saturates near 4,000 RPC/s on a 2-core machine and would measure itself,
so the load comes from h2load, which speaks gRPC well enough given a framed body and the
two gRPC headers. It prints no percentiles: latencies come from its `--log-file`, one
tab-separated line per finished request (start time in microseconds since the epoch,
HTTP status, microseconds until the end of the response; status -1 for a failed stream).

Its loads are closed loops (a new request as soon as one finishes), or timed: h2load's
`--rps` sends each connection's due requests together on a timer that fires every 10 ms
at most, in bursts that queue at the server, so for latency under a given rate the bench
writes a timing script instead (`poisson_script`): one request at each moment of a
Poisson process, as independent callers arrive.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.stats import percentile

INSTALL_HINT = (
    "h2load is missing. Install it with `sudo apt-get install -y nghttp2-client` "
    "(Debian/Ubuntu) or `brew install nghttp2` (macOS), then run `make bench` again."
)

GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")


class LoadError(RuntimeError):
    """h2load failed, or reported something that makes the run worthless."""


@dataclass(frozen=True, slots=True)
class Settings:
    """h2load's knobs. `clients` connections, each with up to `streams` requests in
    flight, all from `threads` threads, for `duration` seconds. With `timing_script`
    (a file `poisson_script` wrote), requests leave at the script's moments instead, and
    `duration` is the script's length. With `h1`, HTTP/1.1 instead of HTTP/2 (`--h1`),
    for servers that speak only that (uvicorn, the console's); `streams` is then how
    many requests each connection pipelines, so keep it at 1 and count in `clients`."""

    clients: int
    streams: int
    threads: int
    duration: float
    timing_script: str | None = None
    h1: bool = False

    def args(self) -> list[str]:
        common = [
            f"--clients={self.clients}",
            f"--max-concurrent-streams={self.streams}",
            f"--threads={self.threads}",
            *(["--h1"] if self.h1 else []),
        ]
        if self.timing_script is not None:
            return [*common, f"--timing-script-file={self.timing_script}"]
        return [*common, f"--duration={self.duration:g}"]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One h2load run: its own counters plus latencies from the per-request log. `rps`
    is h2load's own figure, but for timing scripts the rate achieved, from the log
    (h2load's own counts its start-up too)."""

    rps: float
    done: int
    succeeded: int
    failed: int
    errored: int
    timeout: int
    status_2xx: int
    data_bytes: int
    logged: int
    latency_us: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _install() -> None:
    """apt-get install nghttp2-client, as root or through sudo, updating the package
    lists only if the first attempt fails (fresh images ship without them)."""
    apt = shutil.which("apt-get")
    if apt is None:
        raise LoadError(INSTALL_HINT)
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            raise LoadError(INSTALL_HINT)
        prefix = [sudo, "-n"]  # never hang on a password prompt
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, apt, "install", "-y", "-q", "nghttp2-client"]
    print("h2load not found: installing Debian's nghttp2-client", flush=True)
    if subprocess.run(install, env=env, check=False).returncode == 0:
        return
    subprocess.run([*prefix, apt, "update", "-q"], env=env, check=False)
    if subprocess.run(install, env=env, check=False).returncode != 0:
        raise LoadError(INSTALL_HINT)


def ensure_h2load() -> str:
    """The path of h2load, installing it first when it is missing."""
    found = shutil.which("h2load")
    if found is None:
        _install()
        found = shutil.which("h2load")
    if found is None:
        raise LoadError(INSTALL_HINT)
    return found


def version(h2load: str) -> str:
    completed = subprocess.run(
        [h2load, "--version"], capture_output=True, text=True, check=False, timeout=10
    )
    return completed.stdout.strip() or completed.stderr.strip()


_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
    r"(\d+) failed, (\d+) errored, (\d+) timeout"
)
_RPS = re.compile(r"finished in [\d.]+\w*, ([\d.]+) req/s")
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_DATA = re.compile(r"\((\d+)\) data")


def _field(pattern: re.Pattern[str], output: str) -> re.Match[str]:
    match = pattern.search(output)
    if match is None:
        raise LoadError(f"h2load output has no {pattern.pattern!r}:\n{output}")
    return match


def poisson_script(path: Path, url: str, rate: float, seconds: float, seed: int) -> int:
    """Writes an h2load timing script to `path`: a request to `url` at each moment of a
    Poisson process of `rate` per second over `seconds` (exponential gaps from a `seed`ed
    generator, so that two workloads can get the same moments); returns how many.

    h2load's timers have about a millisecond's grain and each waits from the moment the
    previous one fired, so requests leave late rather than early: the rate achieved is
    below `rate`, all the more as `rate` nears 1,000/s. Higher rates are several scripts
    run at once (`run_scripts`), which reports the rate achieved."""
    generator = random.Random(seed)
    moment, lines = 0.0, []
    while moment < seconds:
        lines.append(f"{moment * 1000:.3f}\t{url}\n")
        moment += generator.expovariate(rate)
    path.write_text("".join(lines))
    return len(lines)


def _latencies(log_file: Path) -> tuple[list[int], float]:
    """Every logged request's latency in microseconds, sorted, and the seconds from the
    first request's start to the last one's. Any status but 200 fails the run."""
    values: list[int] = []
    starts: list[int] = []
    with log_file.open() as lines:
        for line in lines:
            start, status, micros = line.split("\t")[:3]
            if status != "200":
                raise LoadError(f"h2load logged a request with status {status}")
            values.append(int(micros))
            starts.append(int(start))
    if not values:
        raise LoadError("h2load logged no finished request")
    values.sort()
    return values, (max(starts) - min(starts)) / 1e6


def _summary(values: list[int]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": float(values[-1]),
        "mean": sum(values) / len(values),
    }


@dataclass(frozen=True, slots=True)
class _Raw:
    """What one h2load process reported, before the checks."""

    output: str
    rps: float
    # done, succeeded, failed, errored, timeout, 2xx, data bytes, and 3xx + 4xx + 5xx
    counts: tuple[int, ...]
    latencies: list[int]
    span: float


def _execute(
    h2load: str,
    url: str,
    body: Path | None,
    settings: Settings,
    log_file: Path,
    headers: Sequence[str] = GRPC_HEADERS,
) -> _Raw:
    """One h2load process: a POST of `body` with `headers` (gRPC's by default), or with
    no body a GET (the plain HTTP of the `envoy` and `console` benchmarks)."""
    log_file.unlink(missing_ok=True)  # h2load appends to an existing log file
    command = [h2load, *settings.args(), f"--log-file={log_file}"]
    if body is not None:
        command.append(f"--data={body}")
    for header in headers:
        command += ["-H", header]
    command.append(url)
    completed = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=settings.duration + 60
    )
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise LoadError(f"h2load exited with {completed.returncode}:\n{output}")
    _total, _started, *counts = (int(n) for n in _field(_REQUESTS, output).groups())
    ok, *others = (int(n) for n in _field(_STATUS, output).groups())
    counts += [ok, int(_field(_DATA, output).group(1)), sum(others)]
    latencies, span = _latencies(log_file)
    return _Raw(output, float(_field(_RPS, output).group(1)), tuple(counts), latencies, span)


def _checked(raw: _Raw, rps: float, url: str, response_bytes: int) -> LoadResult:
    """Raises LoadError when any request failed, or when the bytes received show fewer
    complete answers than requests done (a gRPC error is a trailers-only 200 with no
    body; h2load would count it as a success)."""
    done, succeeded, failed, errored, timeout, status_2xx, data_bytes, not_2xx = raw.counts
    result = LoadResult(
        rps=rps,
        done=done,
        succeeded=succeeded,
        failed=failed,
        errored=errored,
        timeout=timeout,
        status_2xx=status_2xx,
        data_bytes=data_bytes,
        logged=len(raw.latencies),
        latency_us=_summary(raw.latencies),
    )
    # Every request done was a 2xx, and no answer was anything else. Over HTTP/1.1,
    # h2load may count one more 2xx than done: an answer whose status line arrived as
    # it stopped, its body not yet.
    if done == 0 or failed or errored or timeout or not_2xx or result.status_2xx < done:
        raise LoadError(f"h2load reported failures against {url}:\n{raw.output}")
    if result.data_bytes < done * response_bytes:
        raise LoadError(
            f"{url}: {result.data_bytes} response bytes for {done} requests, fewer than "
            f"{response_bytes} each: some answers were errors (gRPC's have no body) or "
            "shorter than the pre-flight's"
        )
    return result


def run(
    h2load: str,
    url: str,
    body: Path | None,
    settings: Settings,
    log_file: Path,
    *,
    response_bytes: int,
    headers: Sequence[str] = GRPC_HEADERS,
) -> LoadResult:
    """One timed h2load run against `url`, checked (see `_checked`)."""
    raw = _execute(h2load, url, body, settings, log_file, headers)
    return _checked(raw, raw.rps, url, response_bytes)


def run_scripts(
    h2load: str,
    url: str,
    body: Path,
    settings: Settings,
    scripts: list[Path],
    *,
    response_bytes: int,
) -> LoadResult:
    """One h2load process per timing script, all at once, as one checked result: their
    counts added up, their latencies pooled, and as `rps` the rates achieved added up
    (each process's requests over the time from its first start to its last)."""
    timed = [dataclasses.replace(settings, timing_script=str(script)) for script in scripts]
    logs = [script.with_suffix(".log") for script in scripts]
    with ThreadPoolExecutor(max_workers=len(scripts)) as pool:
        raws = list(pool.map(lambda t, log: _execute(h2load, url, body, t, log), timed, logs))
    merged = _Raw(
        output="\n".join(raw.output for raw in raws),
        rps=sum((len(raw.latencies) - 1) / raw.span for raw in raws if raw.span > 0),
        counts=tuple(sum(column) for column in zip(*(raw.counts for raw in raws), strict=True)),
        latencies=sorted(value for raw in raws for value in raw.latencies),
        span=max(raw.span for raw in raws),
    )
    return _checked(merged, merged.rps, url, response_bytes)
