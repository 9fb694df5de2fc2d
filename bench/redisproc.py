"""A throwaway redis-server for the rate-limit benchmarks, and what the bench reads of it.

The benchmarks never touch the machine's own Redis (6379 may be someone's): each starts a
redis-server of its own on a free loopback port, in a temporary directory, with nothing
saved to disk, as the tests do (tests/redis_servers.py; the bench imports nothing from
tests/), and stops it at the end.

Two readings prove that each rate-limit decision made exactly one round trip to this
Redis, and say what it cost Redis: `INFO commandstats` (EVALSHA calls, and those that
failed: a failed call is a decision answered by the limit's fail mode, which would make
the RPC look cheaper than it is) and the process's CPU time from /proc.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis

from bench.serverproc import process_cpu

INSTALL_HINT = (
    "redis-server is missing: `sudo apt-get install -y redis-server` (Debian package "
    "redis-server; `make tools` installs it), then run the benchmark again."
)
START_TIMEOUT = 10.0


class RedisProcessError(RuntimeError):
    """The throwaway redis-server is missing, did not start, or misbehaved."""


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RedisProcessError(INSTALL_HINT)
    return found


def free_port() -> int:
    """A loopback port nothing listens on, from the kernel's ephemeral range (far above
    6379)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass(frozen=True, slots=True)
class RedisSample:
    """Redis's CPU seconds so far (None without /proc) and its EVALSHA counts."""

    cpu: float | None
    evalsha: int
    evalsha_failed: int

    def __sub__(self, earlier: RedisSample) -> RedisSample:
        cpu = None if self.cpu is None or earlier.cpu is None else self.cpu - earlier.cpu
        return RedisSample(
            cpu, self.evalsha - earlier.evalsha, self.evalsha_failed - earlier.evalsha_failed
        )


class RedisServer:
    """`redis-server` on a free loopback port, as a context manager."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.executable = find_redis_server()
        self._process: subprocess.Popen[bytes] | None = None
        self._client: redis.Redis | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RedisProcessError("redis-server is not running")
        return self._process.pid

    @property
    def client(self) -> redis.Redis:
        """A synchronous client of the bench's own, for its readings and SCRIPT LOAD."""
        if self._client is None:
            self._client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)
        return self._client

    def __enter__(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / "redis.log"
        self._process = subprocess.Popen(
            [
                self.executable,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--logfile", str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                self.__exit__(None, None, None)
                raise RedisProcessError(f"redis-server on {self.port} did not start:\n{text}")
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def version(self) -> str:
        info = self.client.info("server")
        return str(info.get("redis_version", "unknown"))

    def sample(self) -> RedisSample:
        """CPU so far and EVALSHA counts, to subtract from a later sample."""
        stats = self.client.info("commandstats").get("cmdstat_evalsha", {})
        cpu = process_cpu(self.pid)
        return RedisSample(
            cpu.process if cpu is not None else None,
            int(stats.get("calls", 0)),
            int(stats.get("failed_calls", 0)),
        )
