"""The benchmarked server as a child process: started, waited for, measured, stopped.

A separate process keeps the runner's Python (and h2load's parsing) off the server's
interpreter. Its CPU time, read from /proc before and after each run, gives a second
throughput-independent measure: server CPU microseconds per RPC, which a busy neighbour
on the shared machine disturbs much less than requests per second.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bench.server import CONSOLE_MARK, READY_PREFIX

_PROJECT = Path(__file__).resolve().parent.parent  # where `-m bench.server` resolves
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ServerError(RuntimeError):
    """The bench server did not start, or died."""


class ServerProcess:
    """`python -m bench.server` in a child process, as a context manager."""

    def __init__(
        self,
        cprofile: Path | None = None,
        start_timeout: float = 60.0,
        *,
        metrics_listen: str | None = None,
        null_fanout: bool = False,
        redis_url: str | None = None,
        token_file: Path | None = None,
        otlp_endpoint: str | None = None,
        token_role: str | None = None,
        console: bool = False,
    ) -> None:
        """`metrics_listen` (HOST:PORT) serves the server's Prometheus metrics there;
        `null_fanout` adds the fan-out baseline's methods (`bench.nullfanout`);
        `redis_url` connects the server to Redis (counters, shared cache, relay);
        `token_file` turns authentication on, the server writing a reader's token there
        (or `token_role`'s); `otlp_endpoint` turns tracing on, exporting there;
        `console` serves the web console too, at `console_url` once started."""
        self._cprofile = cprofile
        self._start_timeout = start_timeout
        self.metrics_listen = metrics_listen
        self._null_fanout = null_fanout
        self._redis_url = redis_url
        self._token_file = token_file
        self._otlp_endpoint = otlp_endpoint
        self._token_role = token_role
        self._console = console
        self._process: subprocess.Popen[str] | None = None
        self.address = ""
        self.console_url = ""

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServerError("the server is not running")
        return self._process.pid

    def __enter__(self) -> ServerProcess:
        command = [sys.executable, "-m", "bench.server"]
        if self._cprofile is not None:
            command += ["--cprofile", str(self._cprofile)]
        if self.metrics_listen is not None:
            command += ["--metrics-listen", self.metrics_listen]
        if self._null_fanout:
            command.append("--null-fanout")
        if self._redis_url is not None:
            command += ["--redis-url", self._redis_url]
        if self._token_file is not None:
            command += ["--token-file", str(self._token_file)]
        if self._otlp_endpoint is not None:
            command += ["--otlp-endpoint", self._otlp_endpoint]
        if self._token_role is not None:
            command += ["--token-role", self._token_role]
        if self._console:
            command.append("--console")
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=_PROJECT)
        stdout = self._process.stdout
        assert stdout is not None
        # The server prints one line once it serves (migrations and demo data first); a
        # server that dies before that ends the read with an empty line.
        ready, _, _ = select.select([stdout], [], [], self._start_timeout)
        line = stdout.readline() if ready else ""
        if not line.startswith(READY_PREFIX):
            self.__exit__(None, None, None)
            raise ServerError(f"the bench server did not start (it printed {line!r})")
        address, _, console_url = line.removeprefix(READY_PREFIX).strip().partition(CONSOLE_MARK)
        self.address, self.console_url = address, console_url
        if self._console and not console_url:
            self.__exit__(None, None, None)
            raise ServerError(f"the bench server named no console (it printed {line!r})")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def cpu_seconds(self) -> CpuTimes | None:
        """CPU time (user plus system) used so far by the whole process and by its main
        thread, where the event loop and every handler run; None where /proc is not there.
        The rest is gRPC core's and aiosqlite's threads."""
        return process_cpu(self.pid)


@dataclass(frozen=True, slots=True)
class CpuTimes:
    process: float
    main_thread: float

    def __sub__(self, earlier: CpuTimes) -> CpuTimes:
        return CpuTimes(self.process - earlier.process, self.main_thread - earlier.main_thread)


def process_cpu(pid: int) -> CpuTimes | None:
    """CPU time used so far by process `pid` and by its main thread; None where /proc is
    not there. For the bench's own client processes too."""
    try:
        return CpuTimes(_cpu(f"/proc/{pid}/stat"), _cpu(f"/proc/{pid}/task/{pid}/stat"))
    except OSError:
        return None


def _cpu(stat_path: str) -> float:
    fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
