"""What the fuzz suite runs against and measures with: `switchyard serve` in a process of
its own over a temporary SQLite file, a stall probe in another process, a digest of every
table of that file, the server's memory, a client that sends raw request bytes to any
method, and the tally the closing summary is made from."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor, descriptor_pool, json_format
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

STREAM_SECONDS = 0.2
"""How long a server stream is read before the client ends it (DEADLINE_EXCEEDED)."""
UNARY_TIMEOUT_SECONDS = 60.0
SCHEDULER_USER_ID = "00000000-0000-0000-0000-000000000002"
"""Who the scheduler's changes (expiries, windows opening and closing) are made by: the
only changes no request makes (see `Digest.moved_by_scheduler_only`)."""


# --- methods ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """One RPC, as a path and its descriptor."""

    descriptor: descriptor.MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.descriptor.containing_service.full_name}/{self.descriptor.name}"

    @property
    def short(self) -> str:
        service = self.descriptor.containing_service.full_name
        return f"{service}/{self.descriptor.name}"

    @property
    def streams_out(self) -> bool:
        return bool(self.descriptor.server_streaming)

    @property
    def streams_in(self) -> bool:
        return bool(self.descriptor.client_streaming)

    def request_class(self) -> type[Message]:
        return GetMessageClass(self.descriptor.input_type)

    def response_class(self) -> type[Message]:
        return GetMessageClass(self.descriptor.output_type)


def methods_of(service_names: Iterable[str]) -> list[Method]:
    """Every method of these services, from the descriptors this process has loaded."""
    pool = descriptor_pool.Default()
    return [
        Method(method) for name in service_names for method in pool.FindServiceByName(name).methods
    ]


def reflected_methods(address: str) -> set[str]:
    """Every method the server at `address` says it serves (server reflection), as
    `service/Method`: what the server registers, not what this process imports."""
    with grpc.insecure_channel(address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        return {
            f"{name}/{method.name}"
            for name in database.get_services()
            for method in pool.FindServiceByName(name).methods
        }


# --- the server under test ----------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    rss: int
    """Resident set size now, in bytes."""
    peak: int
    """The largest resident set size so far (VmHWM), in bytes."""


class ServerProcess:
    """`python -m switchyard serve` over `workdir/switchyard.db`, its output in files
    (a pipe nobody reads would fill and stall it). The counters of flag evaluations and
    rate-limit triggers, which are written to the database by time, are flushed once a
    day: so nothing but requests and the scheduler changes the file while it is fuzzed."""

    def __init__(self, workdir: Path, *, auth: bool, settings: Mapping[str, str] = {}) -> None:
        self.workdir = workdir
        self.database = workdir / "switchyard.db"
        self.auth = auth
        self._settings = dict(settings)
        self._process: subprocess.Popen[bytes] | None = None
        self.address = ""

    def env(self) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("SWITCHYARD_", "OTEL_"))
        }
        env.update(
            SWITCHYARD_DATABASE_URL=f"sqlite:///{self.database}",
            SWITCHYARD_LISTEN="127.0.0.1:0",
            SWITCHYARD_CONSOLE_LISTEN="off",
            SWITCHYARD_LOG_LEVEL="warning",
            SWITCHYARD_LOG_FORMAT="json",
            SWITCHYARD_FLAG_FLUSH_SECONDS="86400",
            SWITCHYARD_RATE_LIMIT_FLUSH_SECONDS="86400",
            SWITCHYARD_AUTH="1" if self.auth else "0",
        )
        env.update(self._settings)
        return env

    def switchyard(self, *args: str) -> str:
        """Runs a `switchyard` command against the same database; its stdout. Raises
        AssertionError when it fails."""
        done = subprocess.run(
            [sys.executable, "-m", "switchyard", *args],
            env=self.env(),
            cwd=self.workdir,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout.decode()

    def start(self) -> None:
        out = (self.workdir / "server.out").open("wb")
        err = (self.workdir / "server.err").open("wb")
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SERVE_UNTIL_PARENT_DIES, "serve"],
            env=self.env(),
            cwd=self.workdir,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
        out.close()
        err.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = re.search(r"listening on (\S+)", (self.workdir / "server.out").read_text())
            if found:
                self.address = found.group(1)
                return
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"switchyard serve did not start: {self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def memory(self) -> Memory:
        status = Path(f"/proc/{self.pid}/status").read_text()
        sizes = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
        return Memory(rss=int(sizes["VmRSS"]) * 1024, peak=int(sizes["VmHWM"]) * 1024)

    def log_tail(self, lines: int = 40) -> str:
        path = self.workdir / "server.err"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=30)


_SERVE_UNTIL_PARENT_DIES = (
    "import ctypes, runpy, signal, sys;"
    "ctypes.CDLL(None).prctl(1, signal.SIGTERM);"  # PR_SET_PDEATHSIG (Linux)
    "sys.argv[0] = 'switchyard';"
    "runpy.run_module('switchyard', run_name='__main__', alter_sys=True)"
)
"""`python -m switchyard ARGS`, sent SIGTERM when the test process dies, however it dies
(a killed test run must leave no server behind on a shared machine)."""


# --- the stall probe ----------------------------------------------------------------------------


class Probe:
    """`probe.py` against the server: the worst latency of its cheap calls between two
    `mark`s is the longest the server stalled in between."""

    def __init__(self, address: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("probe.py")), address],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        ready = self._process.stdout.readline().strip()
        assert ready == "ready", f"the probe did not start: {ready!r}"
        self.calls = 0
        self.failures = 0

    def mark(self) -> float:
        """The worst latency, in seconds, since the previous mark."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("mark\n")
        self._process.stdin.flush()
        worst, calls, failures = self._process.stdout.readline().split()
        self.calls, self.failures = int(calls), int(failures)
        return float(worst)

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=30)


# --- the database's state -----------------------------------------------------------------------


@dataclass(frozen=True)
class Digest:
    """A hash of every row of every table, per table, read in one snapshot."""

    tables: Mapping[str, str]
    revision: int

    def changed_tables(self, other: Digest) -> list[str]:
        names = set(self.tables) | set(other.tables)
        return sorted(n for n in names if self.tables.get(n) != other.tables.get(n))


class Database:
    """A read-only connection to the server's SQLite file (WAL: it never blocks the
    server's writers, and each digest reads one consistent snapshot).

    Every column of every table is digested: with the time-based counter flushes off
    (see `ServerProcess`), no column moves on a read or a refusal. Only SQLite's own
    `sqlite_*` tables (statistics the engine may refresh) are left out. Two things keep
    a digest cheap when the history has grown to tens of thousands of rows:
    `PRAGMA data_version` says whether anyone has committed since the last digest (if
    not, it is the same), and the history, which triggers keep append-only (no UPDATE,
    no DELETE above a retention mark, no REPLACE), is hashed as a chain extended by the
    rows appended since, with its row count (a count that disagrees rehashes it all)."""

    APPEND_ONLY = frozenset({"pf_config_history"})

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        self._connection.isolation_level = None  # transactions as written below
        self._last: Digest | None = None
        self._version = -1
        self._chains: dict[str, tuple[int, int, Any]] = {}
        """Append-only table -> (last rowid hashed, rows hashed, running hash)."""

    def digest(self) -> Digest:
        version = self._connection.execute("PRAGMA data_version").fetchone()[0]
        if self._last is not None and version == self._version:
            return self._last
        cursor = self._connection.cursor()
        cursor.execute("BEGIN")
        try:
            names = [
                row[0]
                for row in cursor.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
                )
            ]
            tables = {
                name: self._chained(cursor, name)
                if name in self.APPEND_ONLY
                else self._hashed(cursor, name)
                for name in names
            }
            revision = cursor.execute("SELECT revision FROM pf_revision").fetchone()
        finally:
            cursor.execute("COMMIT")
        self._last = Digest(tables, int(revision[0]) if revision else 0)
        self._version = version
        return self._last

    @staticmethod
    def _hashed(cursor: sqlite3.Cursor, name: str) -> str:
        hashed = hashlib.blake2b(digest_size=16)
        for row in cursor.execute(f'SELECT * FROM "{name}" ORDER BY rowid'):
            hashed.update(repr(row).encode())
        return hashed.hexdigest()

    def _chained(self, cursor: sqlite3.Cursor, name: str) -> str:
        count = cursor.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        start = (-(2**63), 0, hashlib.blake2b(digest_size=16))
        last, rows, running = self._chains.get(name, start)
        running = running.copy()
        for row in cursor.execute(
            f'SELECT rowid, * FROM "{name}" WHERE rowid > ? ORDER BY rowid', (last,)
        ):
            running.update(repr(row).encode())
            last, rows = row[0], rows + 1
        if rows != count:  # rows went (below a retention mark): hash it all again
            self._chains.pop(name, None)
            return self._chained(cursor, name)
        self._chains[name] = (last, rows, running)
        return f"{count}:{running.hexdigest()}"

    def moved_by_scheduler_only(self, before: Digest, after: Digest) -> bool:
        """Whether every revision recorded between the two digests is the scheduler's:
        changes no request made (a window opening, an override expiring)."""
        if after.revision <= before.revision:
            return False
        authors = {
            row[0]
            for row in self._connection.execute(
                "SELECT DISTINCT changed_by FROM pf_config_history "
                "WHERE revision > ? AND revision <= ?",
                (before.revision, after.revision),
            )
        }
        return authors == {SCHEDULER_USER_ID}

    def close(self) -> None:
        self._connection.close()


# --- calls --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    code: grpc.StatusCode
    details: str
    seconds: float
    response: bytes | None = None
    """A unary call's answer, as sent."""


class Caller:
    """Sends request bytes to any method as they are (identity serializers): what the
    server does with bytes no encoder would write is part of what is fuzzed. A default
    client otherwise (4 MiB receive limit), as callers have."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)

    def send(
        self, method: Method, payload: bytes, metadata: Sequence[tuple[str, str]] = ()
    ) -> Answer:
        started = time.perf_counter()
        response = None
        try:
            if method.streams_in:
                call = self._channel.stream_stream(method.path)(
                    iter([payload]), timeout=STREAM_SECONDS, metadata=tuple(metadata)
                )
                for _ in call:
                    pass
            elif method.streams_out:
                call = self._channel.unary_stream(method.path)(
                    payload, timeout=STREAM_SECONDS, metadata=tuple(metadata)
                )
                for _ in call:
                    pass
            else:
                response = self._channel.unary_unary(method.path)(
                    payload, timeout=UNARY_TIMEOUT_SECONDS, metadata=tuple(metadata)
                )
        except grpc.RpcError as error:
            return Answer(
                error.code(),
                error.details() or "",
                time.perf_counter() - started,  # type: ignore[attr-defined]
            )
        return Answer(grpc.StatusCode.OK, "", time.perf_counter() - started, response)

    def call(
        self, method: Method, body: Mapping[str, Any], metadata: Sequence[tuple[str, str]] = ()
    ) -> tuple[Answer, Message | None]:
        """Sends a request written as JSON (proto field names); the answer and, when OK
        and unary, the parsed response."""
        request = json_format.ParseDict(body, method.request_class()())
        answer = self.send(method, request.SerializeToString(), metadata)
        if answer.response is None:
            return answer, None
        return answer, method.response_class().FromString(answer.response)

    def close(self) -> None:
        self._channel.close()


# --- the tally ----------------------------------------------------------------------------------


@dataclass
class Finding:
    """One broken promise: which, where, and the request that broke it."""

    phase: str
    rpc: str
    problem: str
    code: str
    details: str
    case: str
    identity: str = ""

    def line(self) -> str:
        who = f" as {self.identity}" if self.identity else ""
        return (
            f"[{self.phase}] {self.rpc}{who}: {self.problem} ({self.code} "
            f"{self.details[:300]!r})\n    request: {self.case[:600]}"
        )


@dataclass
class RpcTally:
    tried: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    worst_stall: float = 0.0
    worst_stall_case: str = ""
    worst_probe_wait: float = 0.0
    """The longest single wait the probe saw, confirmed or not (noise included)."""
    unconfirmed_stalls: int = 0
    """Stalls over the bound that did not recur when the request was sent again."""
    findings: list[Finding] = field(default_factory=list)


@dataclass
class Report:
    """Everything the closing summary says, per phase (authentication off or on)."""

    phases: dict[str, dict[str, RpcTally]] = field(default_factory=dict)
    memory: dict[str, dict[str, int]] = field(default_factory=dict)
    stall_bound: float = 0.0
    memory_bound: int = 0

    def tally(self, phase: str, rpc: str) -> RpcTally:
        return self.phases.setdefault(phase, {}).setdefault(rpc, RpcTally())

    def findings(self) -> Iterator[Finding]:
        for rpcs in self.phases.values():
            for tally in rpcs.values():
                yield from tally.findings

    def to_json(self) -> dict[str, Any]:
        phases: dict[str, Any] = {}
        for phase, rpcs in self.phases.items():
            worst = max(rpcs.items(), key=lambda item: item[1].worst_stall, default=None)
            codes: Counter[str] = Counter()
            for tally in rpcs.values():
                codes.update(tally.codes)
            phases[phase] = {
                "requests": sum(t.tried for t in rpcs.values()),
                "longest_probe_wait_seconds": round(
                    max((t.worst_probe_wait for t in rpcs.values()), default=0.0), 4
                ),
                "unconfirmed_stalls": sum(t.unconfirmed_stalls for t in rpcs.values()),
                "rpcs": len(rpcs),
                "codes": dict(codes.most_common()),
                "longest_stall_seconds": round(worst[1].worst_stall, 4) if worst else 0.0,
                "longest_stall_rpc": worst[0] if worst else "",
                "longest_stall_request": worst[1].worst_stall_case[:500] if worst else "",
                "findings": sum(len(t.findings) for t in rpcs.values()),
                "per_rpc": {
                    rpc: {
                        "requests": t.tried,
                        "codes": dict(t.codes.most_common()),
                        "kinds": dict(t.kinds),
                        "longest_stall_seconds": round(t.worst_stall, 4),
                        "unconfirmed_stalls": t.unconfirmed_stalls,
                        "findings": len(t.findings),
                    }
                    for rpc, t in sorted(rpcs.items())
                },
            }
        return {
            "stall_bound_seconds": self.stall_bound,
            "memory_bound_bytes": self.memory_bound,
            "phases": phases,
            "memory": self.memory,
            "findings": [f.__dict__ for f in self.findings()],
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False))

    def render(self) -> str:
        summary = self.to_json()
        lines = [
            f"stall bound {self.stall_bound:.2f} s, memory growth bound "
            f"{self.memory_bound // 2**20} MiB"
        ]
        for phase, figures in summary["phases"].items():
            memory = self.memory.get(phase, {})
            lines.append(
                f"[{phase}] {figures['requests']} requests over {figures['rpcs']} RPCs; "
                f"codes {figures['codes']}; longest stall "
                f"{figures['longest_stall_seconds']:.3f} s ({figures['longest_stall_rpc']}), "
                f"longest probe wait {figures['longest_probe_wait_seconds']:.3f} s with "
                f"{figures['unconfirmed_stalls']} unconfirmed; "
                f"RSS {memory.get('rss_before', 0) // 2**20} -> "
                f"{memory.get('rss_after', 0) // 2**20} MiB "
                f"(peak {memory.get('peak', 0) // 2**20} MiB); "
                f"{figures['findings']} findings"
            )
            for rpc, figures_of in figures["per_rpc"].items():
                lines.append(
                    f"    {rpc}: {figures_of['requests']} "
                    f"{figures_of['codes']} stall {figures_of['longest_stall_seconds']:.3f} s"
                )
        return "\n".join(lines)


__all__ = [
    "Answer",
    "Caller",
    "Database",
    "Digest",
    "Finding",
    "Memory",
    "Method",
    "Probe",
    "Report",
    "RpcTally",
    "ServerProcess",
    "methods_of",
    "reflected_methods",
]
