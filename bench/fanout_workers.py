"""The fan-out benchmark's client processes, seen from the runner: started, waited on
until every stream has an event, stopped, their results collected.

Each runs `python -m bench.fanout_client` (see there for the line protocol). The runner
learns that a revision reached every stream from the `complete` lines, which is how it
knows the streams are live before it measures, and when the last event has arrived.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.fanout_client import Event
from bench.serverproc import CpuTimes, process_cpu

_PROJECT = Path(__file__).resolve().parent.parent
_RESULTS_LIMIT = 256 * 1024 * 1024  # one JSON line with every event of every stream


class WorkerError(RuntimeError):
    """A client process failed, or one of its streams ended."""


@dataclass(frozen=True, slots=True)
class WorkerResult:
    """What one client process received: per stream, every event as `(revision,
    monotonic_ns, time_ns, value, changed_at_ns)` (see `bench.fanout_client`)."""

    streams: list[list[Event]]
    progress: int


class Worker:
    """One client process, its output read as it comes: the newest revision complete on
    all of its streams, the first error, and at the end its results."""

    def __init__(self, process: asyncio.subprocess.Process, streams: int) -> None:
        self.process = process
        self.streams = streams
        self.complete = 0
        """The newest revision all of this process's streams have (they arrive in order)."""
        self.results: WorkerResult | None = None
        self.error: str | None = None
        self._changed = asyncio.Event()
        self._reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        async for line in stdout:
            message = json.loads(line)
            if "complete" in message:
                self.complete = max(self.complete, int(message["complete"]))
            elif "error" in message:
                self.error = self.error or str(message["error"])
            elif "results" in message:
                found = message["results"]
                streams = [
                    [(int(r), int(t), int(w), float(v), int(c)) for r, t, w, v, c in events]
                    for events in found["streams"]
                ]
                self.results = WorkerResult(streams, int(found["progress"]))
            self._changed.set()
        code = await self.process.wait()
        if self.results is None:
            self.error = self.error or f"a client process ended (exit code {code})"
        self._changed.set()

    async def changed(self) -> None:
        await self._changed.wait()
        self._changed.clear()

    def cpu(self) -> CpuTimes | None:
        return process_cpu(self.process.pid)

    async def finished(self) -> WorkerResult:
        await asyncio.wait_for(self.process.wait(), 60)
        await self._reading
        if self.results is None:
            raise WorkerError(self.error or "a client process sent no results")
        return self.results


class Workers:
    """`count` client processes sharing `streams` streams (and `connections`) evenly."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    @classmethod
    async def start(
        cls,
        *,
        address: str,
        kind: str,
        streams: int,
        connections: int,
        count: int,
        from_revision: int,
    ) -> Workers:
        workers = []
        for index in range(count):
            share = streams // count + (1 if index < streams % count else 0)
            links = max(1, connections // count + (1 if index < connections % count else 0))
            command = [
                sys.executable,
                "-m",
                "bench.fanout_client",
                f"--address={address}",
                f"--streams={share}",
                f"--connections={links}",
                f"--kind={kind}",
                f"--from-revision={from_revision}",
            ]
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd=_PROJECT,
                limit=_RESULTS_LIMIT,
            )
            workers.append(Worker(process, share))
        return cls(workers)

    def _check(self) -> None:
        for worker in self.workers:
            if worker.error is not None:
                raise WorkerError(worker.error)

    async def wait_for(self, revision: int, seconds: float) -> None:
        """Until every stream of every process has `revision`. Raises WorkerError when a
        stream ended or `seconds` ran out."""

        async def one(worker: Worker) -> None:
            while worker.complete < revision:
                if worker.error is not None:
                    raise WorkerError(worker.error)
                await worker.changed()

        try:
            await asyncio.wait_for(asyncio.gather(*(one(w) for w in self.workers)), seconds)
        except TimeoutError:
            behind = [w.complete for w in self.workers]
            raise WorkerError(
                f"revision {revision} did not reach every stream in {seconds:g} s "
                f"(complete revisions per process: {behind})"
            ) from None
        self._check()

    def cpu(self) -> list[CpuTimes | None]:
        return [w.cpu() for w in self.workers]

    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers]

    async def stop(self) -> list[WorkerResult]:
        """Ends every stream and collects what each process received."""
        for worker in self.workers:
            stdin = worker.process.stdin
            assert stdin is not None
            stdin.write(b"stop\n")
            await stdin.drain()
            stdin.close()
        return [await worker.finished() for worker in self.workers]

    async def kill(self) -> None:
        """After a failure: ends the processes that are still running."""
        for worker in self.workers:
            if worker.process.returncode is None:
                worker.process.kill()
            await worker.process.wait()
