"""What the fault scenarios share: server processes a test can kill, pause, drain and start
again; a watch that resumes as a client does; the checks every scenario ends with.

Scale: `SWITCHYARD_FAULT_SCALE=N` multiplies the counts of the scenarios (writes,
increments, kill rounds, stopped streams) for a longer run than `make test` affords; 1
by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import grpc

from switchyard.client import Client, error_info, from_value
from switchyard.gen.v1 import batch_pb2, batch_pb2_grpc, change_pb2
from switchyard.gen.v1 import config_pb2 as pb

from ..e2e.helpers import value
from ..e2e.processes import run_switchyard, start_server_process
from ..redis_servers import RedisServer, free_port

if TYPE_CHECKING:
    from switchyard.gen.v1.config_pb2_grpc import ConfigServiceAsyncStub

ROOT = Path(__file__).resolve().parents[2]

SCALE = max(1, int(os.environ.get("SWITCHYARD_FAULT_SCALE", "1")))


def scaled(count: int) -> int:
    """`count` times SWITCHYARD_FAULT_SCALE."""
    return count * SCALE


SETTINGS = {
    # Each scenario writes hundreds of times as one identity (the local operator): the
    # abuse limit on management calls is not what is under test.
    "SWITCHYARD_MANAGEMENT_RATE_LIMIT": "off",
    "SWITCHYARD_CONSOLE_LISTEN": "off",
    # With Redis down, changes made on another replica arrive by the poll: every 0.5 s.
    "SWITCHYARD_POLL_SECONDS": "0.5",
    # An idle stream hears its current revision every 0.5 s (resumes start from it).
    "SWITCHYARD_WATCH_PROGRESS_SECONDS": "0.5",
}

FAST_RECONNECT = (
    # Try a restarted or surviving server within 0.1-0.5 s, not grpc's default minute.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
)


# --- server processes ------------------------------------------------------------------


@dataclass
class ServerProcess:
    """One `switchyard serve` on a fixed loopback port (so that it comes back where its
    clients look for it), logging to a file of its own."""

    name: str
    workdir: Path
    settings: dict[str, str]
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    _log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        """Starts the process and waits until it listens (30 s at most)."""
        assert not self.running, f"{self.name} is running already"
        if self._log is None:
            self._log = self.log_path.open("ab")
        self.process, address = await start_server_process(
            self.workdir, log=self._log, SWITCHYARD_LISTEN=self.address, **self.settings
        )
        assert address == self.address, address

    async def kill(self) -> None:
        """`kill -9`: no drain, no clean-up, sockets reset by the kernel."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    def terminate(self) -> None:
        """SIGTERM, as an orchestrator stops it; `exited` waits for the end."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    async def exited(self, within: float = 30) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), within)

    async def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after 30 s); the exit code, None if it never
        started."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, characters: int = 3000) -> str:
        """The end of the process's log, for a failure message."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-characters:]


@dataclass
class Deployment:
    """Server processes over one SQLite file (and one Redis when given)."""

    directory: Path
    servers: list[ServerProcess]

    @property
    def database(self) -> Path:
        return self.directory / "switchyard.db"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database}"

    def logs(self) -> str:
        """The end of each server's log."""
        return "\n".join(f"--- {s.name} ---\n{s.log_tail()}" for s in self.servers)


@contextlib.asynccontextmanager
async def deployment(
    directory: Path, replicas: int, redis: RedisServer | None = None, **settings: str
) -> AsyncIterator[Deployment]:
    """`replicas` server processes over `directory`/switchyard.db (`directory` exists),
    started one after the other (the first creates, migrates and seeds the file),
    stopped at the end."""
    shared = {
        **SETTINGS,
        "SWITCHYARD_DATABASE_URL": f"sqlite:///{directory / 'switchyard.db'}",
        **({"SWITCHYARD_REDIS_URL": redis.url} if redis is not None else {}),
        **settings,
    }
    servers = [ServerProcess(name, directory, shared) for name in ("a", "b", "c", "d")[:replicas]]
    deployed = Deployment(directory, servers)
    try:
        for server in servers:
            await server.start()
        yield deployed
    except BaseException:
        print(f"\nthe servers' logs:\n{deployed.logs()}")  # shown with the failure
        raise
    finally:
        for server in servers:
            await server.stop()
            server.close()


async def assert_invariants(database_url: str) -> None:
    """The database's invariants, as `switchyard verify` checks them (the revision spine
    without gaps, the history chain consistent with current values, every sealed column
    openable): exit 0 when they hold, 1 with one line per violation."""
    code, out = await run_switchyard("verify", "--database-url", database_url, "--json")
    assert code == 0, f"switchyard verify --database-url {database_url} --json: exit {code}\n{out}"


# --- reads and writes --------------------------------------------------------------------


def client(*servers: ServerProcess) -> Client:
    """A client of these servers; with several, one channel that uses the first that
    answers and moves to the next when it goes away (grpc's pick_first over a list)."""
    if len(servers) == 1:
        return Client(servers[0].address, channel_options=FAST_RECONNECT)
    return Client("ipv4:" + ",".join(s.address for s in servers), channel_options=FAST_RECONNECT)


def batches(connected: Client) -> batch_pb2_grpc.BatchServiceStub:
    return batch_pb2_grpc.BatchServiceStub(connected.channel)


async def create_keys(
    stub: ConfigServiceAsyncStub,
    keys: Iterable[str],
    kind: pb.ConfigType.ValueType = pb.CONFIG_TYPE_NUMBER,
    initial: Any = 0,
) -> int:
    """Creates each key (active, editable, category `faults`) with `initial` as its base
    value; the revision of the last."""
    revision = 0
    for key in keys:
        created = await stub.CreateConfig(
            pb.CreateConfigRequest(
                config=pb.ConfigDefinition(
                    key=key, type=kind, category="faults", is_active=True,
                    is_editable=True, value=value(initial),
                )
            )
        )  # fmt: skip
        revision = created.revision
    return revision


async def history(stub: ConfigServiceAsyncStub, after: int = 0) -> list[pb.HistoryEntry]:
    """Every history row after revision `after`, oldest first, through GetHistory."""
    entries: list[pb.HistoryEntry] = []
    token = ""
    while True:
        page = await stub.GetHistory(
            pb.GetHistoryRequest(after_revision=after, page_size=1000, page_token=token)
        )
        entries.extend(page.entries)
        token = page.next_page_token
        if not token:
            break
    return sorted(entries, key=lambda e: e.revision)


async def assert_revisions_gap_free(stub: ConfigServiceAsyncStub) -> list[pb.HistoryEntry]:
    """Every revision from 1 to the newest has history rows: none lost, none skipped.
    Returns the whole history, oldest first."""
    entries = await history(stub)
    newest = (await stub.GetHistory(pb.GetHistoryRequest(page_size=1))).revision
    revisions = sorted({e.revision for e in entries})
    assert revisions == list(range(1, newest + 1)), (
        f"revisions with no history rows: {sorted(set(range(1, newest + 1)) - set(revisions))}"
    )
    return entries


# --- watching as a client does -------------------------------------------------------------

RESUMED = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)
"""The statuses after which a client resumes (those of switchyard.client.LiveConfig)."""


@dataclass(frozen=True)
class Delivery:
    revision: int
    key: str
    value: Any
    at: float
    """time.monotonic() when it arrived."""


@dataclass(frozen=True)
class Interruption:
    code: grpc.StatusCode
    details: str
    reason: str | None
    """The google.rpc.ErrorInfo reason, when the status carries one (SLOW_CONSUMER)."""
    resume_from: int | None
    """The revision the server said to resume from, when it said."""


class ResumingWatch:
    """A WatchConfig stream that is resumed as a client resumes it (the protocol of
    switchyard.client.LiveConfig): after UNAVAILABLE, ABORTED, CANCELLED, a deadline or a
    silent end, it calls again after 50 ms with `from_revision` = the last revision it
    received (an event's, a progress message's, or the `resume_from_revision` of a
    SLOW_CONSUMER status). It records every event, never removing a duplicate: a
    duplicate or a gap is the server's. Each revision of these scenarios writes one
    watched key, so the last event received completes its revision."""

    def __init__(
        self,
        stub: ConfigServiceAsyncStub,
        *,
        prefixes: Sequence[str],
        from_revision: int,
    ) -> None:
        self._stub = stub
        self._prefixes = list(prefixes)
        self.last = from_revision
        self.deliveries: list[Delivery] = []
        self.progress = 0
        """Progress messages received."""
        self.interruptions: list[Interruption] = []
        self.error: grpc.aio.AioRpcError | None = None
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def revisions(self) -> list[int]:
        return [d.revision for d in self.deliveries]

    def values(self) -> list[Any]:
        return [d.value for d in self.deliveries]

    async def until(self, predicate: Callable[[ResumingWatch], bool], within: float) -> None:
        """Waits until `predicate(self)` holds; fails on a status no client retries, or
        after `within` seconds."""

        async def wait() -> None:
            while not predicate(self):
                self._arrived.clear()
                if self.error is not None:
                    raise AssertionError(f"the watch stopped: {self.error.code()}")
                await self._arrived.wait()

        try:
            await asyncio.wait_for(wait(), within)
        except TimeoutError:
            raise AssertionError(
                f"not within {within} s: last revision {self.last}, "
                f"{len(self.deliveries)} events, interruptions {self.interruptions}"
            ) from None

    async def reaches(self, revision: int, within: float) -> None:
        await self.until(lambda w: w.last >= revision, within)

    async def _run(self) -> None:
        while True:
            call = self._stub.WatchConfig(
                pb.WatchConfigRequest(prefixes=self._prefixes, from_revision=self.last)
            )
            try:
                async for message in call:
                    if message.HasField("event"):
                        event = message.event
                        self.deliveries.append(
                            Delivery(
                                event.revision,
                                event.key,
                                None if event.deleted else from_value(event.value),
                                time.monotonic(),
                            )
                        )
                        self.last = max(self.last, event.revision)
                    else:
                        self.progress += 1
                        self.last = max(self.last, message.progress.revision)
                    self._arrived.set()
                self.interruptions.append(Interruption(grpc.StatusCode.OK, "", None, None))
            except grpc.aio.AioRpcError as error:
                if error.code() not in RESUMED:
                    self.error = error
                    self._arrived.set()
                    return
                self.interruptions.append(_interruption(error))
                told = self.interruptions[-1]
                if told.reason == "SLOW_CONSUMER" and told.resume_from is not None:
                    self.last = max(self.last, told.resume_from)
                self._arrived.set()
            finally:
                call.cancel()
            await asyncio.sleep(0.05)


def _interruption(error: grpc.aio.AioRpcError) -> Interruption:
    info = error_info(error)
    reason, resume_from = None, None
    if info is not None:
        reason = info[0]
        with contextlib.suppress(KeyError, ValueError):
            resume_from = int(info[1]["resume_from_revision"])
    return Interruption(error.code(), error.details() or "", reason, resume_from)


@contextlib.asynccontextmanager
async def watching(
    stub: ConfigServiceAsyncStub, *, prefixes: Sequence[str], from_revision: int
) -> AsyncIterator[ResumingWatch]:
    """A ResumingWatch, started, and live once it has had its first message."""
    watch = ResumingWatch(stub, prefixes=prefixes, from_revision=from_revision)
    watch.start()
    try:
        await watch.until(lambda w: w.progress > 0 or bool(w.deliveries), within=30)
        yield watch
    finally:
        await watch.close()


def assert_delivered_once_in_order(watch: ResumingWatch, revisions: Sequence[int]) -> None:
    """The watch received exactly these revisions, each once, in this order."""
    received = watch.revisions()
    duplicates = sorted({r for r in received if received.count(r) > 1})
    missing = sorted(set(revisions) - set(received))
    assert received == list(revisions), (
        f"{len(received)} events for {len(revisions)} revisions; missing {missing[:20]}, "
        f"twice {duplicates[:20]}, interruptions {watch.interruptions}"
    )


def lags(watch: ResumingWatch, acknowledged: dict[int, float]) -> list[float]:
    """Per revision acknowledged at a (monotonic) time: how long after it the watch got
    it, in seconds."""
    return [d.at - acknowledged[d.revision] for d in watch.deliveries if d.revision in acknowledged]


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- a burst of writes ---------------------------------------------------------------


@dataclass(frozen=True)
class BurstKeys:
    """The keys one burst writes: four number keys, each written by one stream of
    SetValue calls, and four text keys that every batch sets together to one text (any
    other state of them is a half-applied batch)."""

    prefix: str = "burst"

    @property
    def singles(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}.single{n}" for n in range(4))

    @property
    def batched(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}.batch{n}" for n in range(4))

    async def create(self, stub: ConfigServiceAsyncStub) -> None:
        await create_keys(stub, self.singles, pb.CONFIG_TYPE_NUMBER, 0)
        await create_keys(stub, self.batched, pb.CONFIG_TYPE_STRING, "none")


async def burst(
    connected: Client,
    keys: BurstKeys,
    tag: str,
    acknowledged: Callable[[dict[str, Any]], None],
) -> None:
    """Writes until cancelled or the server goes away, in eight concurrent streams of
    calls: four each SetValue one of `keys.singles` to its value + 1, + 2, ...; four
    each apply batches (ApplyWrites) that set all of `keys.batched` to one new text.
    Calls `acknowledged` with each write the server acknowledged: {"key", "value",
    "revision"} or {"batch", "value", "revision"}. Returns when every stream has
    failed (UNAVAILABLE and the like: the outcome of that call is unknown)."""
    stub = batches(connected)

    async def singles(key: str) -> None:
        # On from the stored value: a write of what is stored would be a no-op.
        start = from_value((await connected.config.GetValue(pb.GetValueRequest(key=key))).value)
        for n in itertools.count(start + 1):
            answer = await connected.config.SetValue(
                pb.SetValueRequest(key=key, value=value(n), reason=f"burst {tag}")
            )
            acknowledged({"key": key, "value": n, "revision": answer.revision})

    async def batched(stream: int) -> None:
        for n in itertools.count(1):
            text = f"{tag}-{stream}-{n}"
            answer = await stub.ApplyWrites(
                batch_pb2.ApplyWritesRequest(
                    writes=[
                        change_pb2.ProposedWrite(
                            set_value=pb.SetValueRequest(key=key, value=value(text))
                        )
                        for key in keys.batched
                    ],
                    reason=f"burst {tag}",
                )
            )
            acknowledged({"batch": True, "value": text, "revision": answer.revision})

    tasks = [singles(key) for key in keys.singles] + [batched(n) for n in range(4)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, grpc.aio.AioRpcError):
            raise result


async def assert_acknowledged_present(
    stub: ConfigServiceAsyncStub, keys: BurstKeys, acknowledged: Sequence[dict[str, Any]]
) -> None:
    """Every acknowledged write of a burst is in the history at its revision with its
    value, and no batch is half there: each revision that touched `keys.batched` set all
    four to one text, and their current values agree. `acknowledged` holds every write
    acknowledged to every burst over `keys` so far."""
    rows: dict[int, list[pb.HistoryEntry]] = {}
    for entry in await history(stub):
        # The keys' creation is one revision each; the burst's writes are updates.
        if entry.key.startswith(keys.prefix + ".") and entry.action != pb.HISTORY_ACTION_CREATE:
            rows.setdefault(entry.revision, []).append(entry)

    for ack in acknowledged:
        at = {e.key: from_value(e.new_value) for e in rows.get(ack["revision"], [])}
        if "batch" in ack:
            assert at == dict.fromkeys(keys.batched, ack["value"]), (ack, at)
        else:
            assert at == {ack["key"]: ack["value"]}, (ack, at)

    for revision, written in rows.items():
        touched = [e for e in written if e.key in keys.batched]
        if touched:
            assert sorted(e.key for e in touched) == sorted(keys.batched), (revision, touched)
            assert len({json.dumps(from_value(e.new_value)) for e in touched}) == 1, touched

    current = await stub.GetValues(pb.GetValuesRequest(keys=list(keys.batched)))
    assert len({json.dumps(from_value(v.value)) for v in current.values}) == 1, current
    for key in keys.singles:
        last = max((a["value"] for a in acknowledged if a.get("key") == key), default=0)
        now = from_value((await stub.GetValue(pb.GetValueRequest(key=key))).value)
        # The call in flight when the server died may have committed, and no other.
        assert now in (last, last + 1), (key, last, now)


# --- other processes' view -------------------------------------------------------------


def client_process_command(*args: str) -> list[str]:
    """`python -m tests.faults.client_process ARGS` (run from the repository root)."""
    return [sys.executable, "-m", "tests.faults.client_process", *args]


async def metric(address: str, name: str, labels: str = "") -> float:
    """One sample from a server's Prometheus endpoint (0 when absent)."""

    def read() -> str:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
            return str(answer.read().decode())

    text = await asyncio.to_thread(read)
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


__all__ = [
    "ROOT",
    "SCALE",
    "BurstKeys",
    "Delivery",
    "Deployment",
    "Interruption",
    "ResumingWatch",
    "ServerProcess",
    "assert_acknowledged_present",
    "assert_delivered_once_in_order",
    "assert_invariants",
    "assert_revisions_gap_free",
    "batches",
    "burst",
    "client",
    "client_process_command",
    "create_keys",
    "deployment",
    "history",
    "lags",
    "metric",
    "percentile",
    "scaled",
    "watching",
]
