"""Redis's own rate for the rate-limit script, beside the RPC's: where does a decision's
time go?

Every CheckRateLimit decision on a distributed limit makes one round trip to Redis:
EVALSHA of `switchyard.counters.redis.SCRIPT` with the counter's four keys and eight
arguments. To tell how much of the RPC's cost that round trip is, the bench has Redis
run the very same call without Switchyard: `redis-benchmark` (shipped with redis-server,
looked for next to it) sends it from C clients, as many at once as the server has
decisions in flight, and reports ops/s and latency. Where redis-benchmark is missing, a
Python loop sending it through redis-py pipelines stands in, labelled as such: a pipeline
measures Redis's capacity for the script rather than round trips, and the Python loop may
well be slower than Redis.

The call is built from the limit as the server builds it (`ScriptCall.of` mirrors
`RateLimitService._decide` and `RedisCounters.hit`), then checked against what the
server really sends: during the pre-flight the bench watches Redis with MONITOR while
one RPC is made, and the EVALSHA seen there must be, argument for argument, the one it
replays.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench.redisproc import RedisServer
from bench.stats import median
from switchyard.counters.redis import _ALGORITHM_CODES, SCRIPT, counter_keys
from switchyard.domain.limits import Algorithm, LimitAction, RateLimit, ScopeType

PYTHON_TOOL = "redis-py pipeline"


class ScriptError(RuntimeError):
    """The script's call is not the server's, or Redis failed it."""


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One decision's EVALSHA, as the server sends it for `workload`'s limit."""

    label: str
    workload: str
    keys: tuple[str, ...]
    args: tuple[str, ...]

    @classmethod
    def of(cls, limit: RateLimit, workload: str, label: str) -> ScriptCall:
        """The call a decision of one hit against `limit` (global scope) sends: the
        counter `KEY:` (the limit's key and the empty scope value of `global`), the
        algorithm's state key first, and the arguments as `RedisCounters.hit` writes
        them (Redis's own clock: no `now`)."""
        if limit.scope_type is not ScopeType.GLOBAL:
            raise ScriptError(f"{limit.key}: only a global limit's counter is built here")
        algorithm = limit.algorithm
        action = limit.action_on_limit
        args = (
            _ALGORITHM_CODES[algorithm],
            limit.max_requests,
            limit.time_window_seconds,
            (limit.burst_size or 0) if algorithm is Algorithm.TOKEN_BUCKET else 0,
            1,
            limit.block_duration_seconds if action is LimitAction.BLOCK else 0,
            limit.queue_size if action is LimitAction.QUEUE else 0,
            "",
        )
        keys = counter_keys(f"{limit.key}:").of(algorithm)
        return cls(label, workload, tuple(keys), tuple(str(a) for a in args))

    def argv(self, sha: str) -> list[str]:
        return ["EVALSHA", sha, str(len(self.keys)), *self.keys, *self.args]


@dataclass(frozen=True, slots=True)
class ScriptRate:
    """One measurement of `call` alone: `clients` at once, `requests` in all."""

    label: str
    tool: str
    clients: int
    requests: int
    ops: float
    p50_ms: float | None
    p99_ms: float | None
    redis_cpu_us_per_call: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def script_sha() -> str:
    """The SHA1 redis-py's `register_script` calls EVALSHA with."""
    return hashlib.sha1(SCRIPT.encode()).hexdigest()


def find_redis_benchmark(redis_server: str) -> str | None:
    """redis-benchmark next to redis-server (Debian installs both from redis-tools),
    else on the PATH."""
    beside = Path(redis_server).resolve().parent / "redis-benchmark"
    if beside.is_file():
        return str(beside)
    return shutil.which("redis-benchmark")


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})|\\(.)")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b"}


def _unquote(text: str) -> str:
    """One argument as MONITOR prints it (Redis's sdscatrepr), back to its text."""

    def one(match: re.Match[str]) -> str:
        if match.group(1):
            return chr(int(match.group(1), 16))
        return _ESCAPES.get(match.group(2), match.group(2))

    return _ESCAPE.sub(one, text)


def observe_evalsha(port: int, trigger: Callable[[], None], timeout: float = 10.0) -> list[str]:
    """The first EVALSHA a client sends to Redis on `port` while `trigger` runs, read
    with MONITOR, as its arguments. The script's own commands (`[0 lua]`) and other
    clients' commands (health checks, the relay) are skipped."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(b"MONITOR\r\n")
        lines = conn.makefile("rb")
        first = lines.readline()
        if not first.startswith(b"+OK"):
            raise ScriptError(f"MONITOR answered {first!r}")
        trigger()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = lines.readline().decode(errors="replace")
            if not line:
                break
            if "[0 lua]" in line:
                continue
            argv = [_unquote(arg) for arg in _QUOTED.findall(line.split("]", 1)[-1])]
            if argv and argv[0].upper() == "EVALSHA":
                return argv
    raise ScriptError(f"no EVALSHA reached Redis within {timeout:g} s of the RPC")


class ScriptBench:
    """Redis alone running the script's calls, measured between the rounds of RPCs.

    `tool` is `auto` (redis-benchmark when found, else the Python pipeline),
    `redis-benchmark` or `python`."""

    def __init__(
        self,
        redis: RedisServer,
        calls: Sequence[ScriptCall],
        *,
        clients: int,
        requests: int,
        serial_requests: int,
        tool: str = "auto",
    ) -> None:
        self._redis = redis
        self.calls = tuple(calls)
        self.clients = clients
        self.requests = requests
        self.serial_requests = serial_requests
        self.benchmark = None if tool == "python" else find_redis_benchmark(redis.executable)
        if self.benchmark is None and tool == "redis-benchmark":
            raise ScriptError("redis-benchmark is not installed (Debian package redis-tools)")
        self.sha = script_sha()
        self.rounds: list[tuple[int, ScriptRate]] = []
        self.serial: list[ScriptRate] = []

    @property
    def tool(self) -> str:
        return "redis-benchmark" if self.benchmark is not None else PYTHON_TOOL

    def tool_version(self) -> str:
        if self.benchmark is None:
            from importlib import metadata

            return f"redis-py {metadata.version('redis')}"
        done = subprocess.run(
            [self.benchmark, "--version"], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    def check(self, trigger: Callable[[str], None]) -> None:
        """Loads the script (as the server's client would on a NOSCRIPT) and checks that
        each call is exactly what the server sends: `trigger(workload)` makes one RPC of
        that workload while MONITOR watches."""
        loaded = self._redis.client.script_load(SCRIPT)
        if loaded != self.sha:
            raise ScriptError(f"SCRIPT LOAD gave {loaded}, redis-py calls {self.sha}")
        for call in self.calls:
            seen = observe_evalsha(self._redis.port, partial(trigger, call.workload))
            expected = call.argv(self.sha)
            if seen != expected:
                raise ScriptError(
                    f"{call.workload}: the server sent {seen}, the bench would replay {expected}"
                )

    def run_round(self, index: int) -> None:
        """Every call once at `clients` at once, in the order of the round (flipped
        every other round, as the RPCs are)."""
        order = self.calls if index % 2 == 0 else self.calls[::-1]
        for call in order:
            rate = self._measure(call, self.clients, self.requests)
            self.rounds.append((index + 1, rate))
            print(f"  round {index + 1} redis alone {call.label:<13} {rate.ops:>9.0f} ops/s")

    def run_serial(self) -> None:
        """Every call once with one client: the bare round trip, no queue."""
        for call in self.calls:
            rate = self._measure(call, 1, self.serial_requests)
            self.serial.append(rate)
            print(f"  redis alone, one at a time, {call.label:<13} {rate.ops:>9.0f} ops/s")

    def _measure(self, call: ScriptCall, clients: int, requests: int) -> ScriptRate:
        before = self._redis.sample()
        if self.benchmark is not None:
            ops, p50, p99 = self._redis_benchmark(call, clients, requests)
        else:
            ops, p50, p99 = self._pipelined(call, clients, requests), None, None
        spent = self._redis.sample() - before
        if spent.evalsha_failed or spent.evalsha < requests:
            raise ScriptError(
                f"{call.label}: Redis ran {spent.evalsha} EVALSHA for {requests} sent, "
                f"{spent.evalsha_failed} of them failed"
            )
        cpu = None if spent.cpu is None else spent.cpu * 1e6 / requests
        return ScriptRate(call.label, self.tool, clients, requests, ops, p50, p99, cpu)

    def _redis_benchmark(
        self, call: ScriptCall, clients: int, requests: int
    ) -> tuple[float, float, float]:
        assert self.benchmark is not None
        command = [
            self.benchmark,
            "-h", "127.0.0.1",
            "-p", str(self._redis.port),
            "-c", str(clients),
            "-n", str(requests),
            "--csv",
            *call.argv(self.sha),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
        rows = list(csv.reader(done.stdout.splitlines()))
        if done.returncode != 0 or len(rows) < 2 or "rps" not in rows[0]:
            raise ScriptError(f"redis-benchmark failed:\n{done.stdout}{done.stderr}")
        fields = dict(zip(rows[0], rows[1], strict=False))
        return (
            float(fields["rps"]),
            float(fields["p50_latency_ms"]),
            float(fields["p99_latency_ms"]),
        )

    def _pipelined(self, call: ScriptCall, batch: int, requests: int) -> float:
        """The fallback: pipelines of `batch` calls from this process, one after the
        other; every answer must be an admission."""
        client, done = self._redis.client, 0
        start = time.perf_counter()
        while done < requests:
            count = min(batch, requests - done)
            pipe = client.pipeline(transaction=False)
            for _ in range(count):
                pipe.evalsha(self.sha, len(call.keys), *call.keys, *call.args)
            replies = pipe.execute()
            if any(int(reply[0]) != 1 for reply in replies):
                raise ScriptError(f"{call.label}: Redis denied a call: {replies[0]!r}")
            done += count
        return requests / (time.perf_counter() - start)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "tool_version": self.tool_version(),
            "redis_version": self._redis.version(),
            "sha": self.sha,
            "clients": self.clients,
            "requests": self.requests,
            "serial_requests": self.serial_requests,
            "calls": [{**asdict(c), "argv": c.argv(self.sha)} for c in self.calls],
            "summary": {c.label: self._summary(c.label) for c in self.calls},
            "serial": {r.label: r.as_dict() for r in self.serial},
            "rounds": [{"round": i, **r.as_dict()} for i, r in self.rounds],
        }

    def _summary(self, label: str) -> dict[str, Any]:
        mine = [r for _, r in self.rounds if r.label == label]
        cpu = [r.redis_cpu_us_per_call for r in mine if r.redis_cpu_us_per_call is not None]
        p50 = [r.p50_ms for r in mine if r.p50_ms is not None]
        p99 = [r.p99_ms for r in mine if r.p99_ms is not None]
        workload = next(c.workload for c in self.calls if c.label == label)
        return {
            "workload": workload,
            "ops": median([r.ops for r in mine]),
            "ops_min": min(r.ops for r in mine),
            "ops_max": max(r.ops for r in mine),
            "p50_ms": median(p50) if p50 else None,
            "p99_ms": median(p99) if p99 else None,
            "redis_cpu_us_per_call": median(cpu) if cpu else None,
        }
