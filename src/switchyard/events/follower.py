"""The follower: reads the history for revisions this process has not seen, and hands
them to the bus in order, each once.

Whatever wakes it (this process's own commit, a notice from another replica on Redis
pub/sub, or the periodic poll) it does the same thing: read what comes after the last
revision it delivered. Pub/sub makes it fast; the poll makes it complete, since pub/sub
delivers at most once. Revisions are gap-free and in commit order (the revision row sees
to that), so "after the last one delivered" misses nothing.

The history is read `batch` rows at a time, a large revision (a batch of thousands of
writes) too: each read goes on from the last row of the one before, so no row is read
twice and no read holds the event loop for longer than decoding `batch` rows takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from itertools import groupby
from typing import Protocol

import structlog

from switchyard.domain.errors import SwitchyardError
from switchyard.domain.models import HistoryEntry
from switchyard.events.bus import ChangeBus, Revision
from switchyard.metrics import REPLICA_LAG, REVISION, REVISIONS_APPLIED, revision_committed_at

log = structlog.get_logger(__name__)

DEFAULT_POLL_SECONDS = 1.0
BATCH_ROWS = 200
"""Rows read at a time: decoding them holds the event loop, for about 20 ms here."""


class HistoryAfter(Protocol):
    """Reads the history rows after a revision, oldest first, at most `limit`; with
    `after_index`, the rows of that revision itself after that change_index too."""

    def __call__(
        self, after_revision: int, limit: int, *, after_index: int | None = None
    ) -> Awaitable[list[HistoryEntry]]: ...


NewestRevision = Callable[[], Awaitable[int]]
"""Reads the newest revision committed to the database."""


class HistoryFollower:
    def __init__(
        self,
        history_after: HistoryAfter,
        bus: ChangeBus,
        *,
        poll_interval: float = DEFAULT_POLL_SECONDS,
        batch: int = BATCH_ROWS,
        newest: NewestRevision | None = None,
    ) -> None:
        """With `newest`, each poll (at most once per `poll_interval`, however often
        commits wake it) also reads the database's newest revision, for the replica lag
        gauge."""
        self._history_after = history_after
        self._newest = newest
        self._newest_seen = 0
        self._lag_read_at = float("-inf")
        self._bus = bus
        self._poll_interval = poll_interval
        self._batch = batch
        self._wake = asyncio.Event()
        self._wakeup = "poll"
        self._task: asyncio.Task[None] | None = None
        self.position = 0
        """The last revision handed to the bus."""

    def start(self, position: int) -> None:
        """Follows the history from after `position`: the revision this process's
        caches were empty at."""
        self.position = position
        self._bus.revision = max(self._bus.revision, position)
        self._task = asyncio.create_task(self._run(), name="switchyard-history-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def kick(self, wakeup: str = "local") -> None:
        """Asks for a catch-up now (a commit happened here, or elsewhere)."""
        self._wakeup = wakeup
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for may swallow a
                # cancellation that arrives as the event is set, and stop() would wait
                # for ever.
                async with asyncio.timeout(self._poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                self._wakeup = "poll"
            self._wake.clear()
            try:
                await self._read_newest()
                await self.catch_up()
            except SwitchyardError as error:
                log.warning("history follower cannot read the history", error=error.message)
            except Exception:
                log.exception("history follower failed; it will try again")

    async def catch_up(self) -> int:
        """Delivers every revision committed after `position`; returns how many."""
        delivered = 0
        async for complete in read_revisions(self._history_after, self.position, self._batch):
            for revision, entries in complete:
                self._bus.publish(Revision(revision, entries))
                self.position = revision
                delivered += 1
                REVISIONS_APPLIED.labels(self._wakeup).inc()
            REVISION.set(self.position)
            REPLICA_LAG.set(max(0, self._newest_seen - self.position))
            revision_committed_at(complete[-1][1][-1].changed_at.timestamp())
        return delivered

    async def _read_newest(self) -> None:
        """Reads the database's newest revision when a poll interval has passed since
        the last read; sets the lag gauge from it (the catch-up that follows lowers it)."""
        now = time.monotonic()
        if self._newest is None or now - self._lag_read_at < self._poll_interval:
            return
        self._lag_read_at = now
        self._newest_seen = max(self._newest_seen, await self._newest())
        REPLICA_LAG.set(max(0, self._newest_seen - self.position))


async def read_revisions(
    history_after: HistoryAfter, after: int, batch: int = BATCH_ROWS
) -> AsyncGenerator[list[tuple[int, tuple[HistoryEntry, ...]]], None]:
    """The revisions committed after `after`, whole and oldest first, in lists of those
    that each read of at most `batch` rows completed (never an empty list). A revision
    larger than `batch` rows (a batch of thousands of writes) is read in parts, each read
    going on from the last row of the one before: no row is read twice, and no read holds
    the event loop for longer than decoding `batch` rows takes. The other calls run in
    between reads."""
    partial: list[HistoryEntry] = []  # the first rows of a revision read in parts
    while True:
        if partial:
            last = partial[-1]
            rows = await history_after(last.revision, batch, after_index=last.change_index)
        else:
            rows = await history_after(after, batch)
        cut = len(rows) >= batch
        complete = complete_revisions(partial + rows, cut=cut)
        partial = [] if not cut else _last_revision(partial + rows, complete)
        if complete:
            yield complete
            after = complete[-1][0]
        if not cut:
            return
        await asyncio.sleep(0)


def _last_revision(
    rows: list[HistoryEntry], complete: list[tuple[int, tuple[HistoryEntry, ...]]]
) -> list[HistoryEntry]:
    """The rows of a cut read that `complete_revisions` left out: its last revision's."""
    return rows[sum(len(entries) for _, entries in complete) :]


def complete_revisions(
    rows: list[HistoryEntry], *, cut: bool
) -> list[tuple[int, tuple[HistoryEntry, ...]]]:
    """Rows grouped by revision, oldest first. When the read was `cut` at its limit, the
    last revision may be incomplete and is left for the next read."""
    grouped = [(r, tuple(g)) for r, g in groupby(rows, key=lambda e: e.revision)]
    return grouped[:-1] if cut else grouped


__all__ = [
    "DEFAULT_POLL_SECONDS",
    "HistoryAfter",
    "HistoryFollower",
    "NewestRevision",
    "complete_revisions",
    "read_revisions",
]
