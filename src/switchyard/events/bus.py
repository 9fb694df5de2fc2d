"""In-process fan-out of committed revisions.

The follower (`events.follower`) is the bus's only publisher, and publishes revisions in
order, each once. Listeners (cache invalidation) run first, synchronously, so that by the
time a watcher hears of a change, a read of it answers the new value. Subscribers
(watch streams) each get a bounded queue: a slow one loses its place and is told so,
rather than slowing the others or growing without bound. A subscriber is slow when its
queue is full, or, when it says how to tell, when it has stalled: its reader is held up
elsewhere (its stream's client stopped reading, and gRPC holds its last message) for
longer than it allows. Either way the bus ends it as it fans out, without waiting for
the reader, and tells its owner (`on_end`) at once.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from switchyard.domain.models import HistoryEntry

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Revision:
    """One committed revision and every history row it wrote."""

    revision: int
    entries: tuple[HistoryEntry, ...]


class Closed(enum.Enum):
    """Why a subscription stopped receiving revisions."""

    OVERFLOW = "overflow"
    STALLED = "stalled"
    SHUTDOWN = "shutdown"


Listener = Callable[[Revision], None]
Stalled = Callable[[], bool]
"""Whether a subscriber's reader is held up (asked only while it is not waiting for a
revision, as a revision arrives for it)."""
Ended = Callable[["Subscription"], None]
"""Told when a subscription stops (see `Subscription.closed`), as it stops."""


class Subscription:
    """One subscriber's view of the bus: revisions after `start`, in order.

    A deque and one future to wake the reader, rather than an asyncio.Queue and a
    timeout per wait: a server with 1,000 watchers runs this 1,000 times per revision,
    and the queue's bookkeeping was a tenth of the cost of delivering an event."""

    def __init__(
        self,
        bus: ChangeBus,
        size: int,
        start: int,
        stalled: Stalled | None = None,
        on_end: Ended | None = None,
    ) -> None:
        self._bus = bus
        self._size = size
        self._stalled = stalled
        self._on_end = on_end
        self._items: deque[Revision] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.start = start
        self.closed: Closed | None = None
        self.dropped = 0
        """History rows this subscriber never got because it was ended (those queued,
        and on overflow the revision that did not fit)."""

    def offer(self, revision: Revision) -> None:
        if self.closed is not None:
            return
        if len(self._items) >= self._size:
            self.dropped += len(revision.entries)
            self.end(Closed.OVERFLOW)
            return
        # A reader waiting in `next` is not held up; only one that is not is asked.
        if self._waiter is None and self._stalled is not None and self._stalled():
            self.dropped += len(revision.entries)
            self.end(Closed.STALLED)
            return
        self._items.append(revision)
        self._wake()

    def end(self, reason: Closed) -> None:
        """Stops the subscription and leaves the bus; what is queued is dropped (the
        subscriber resumes from its last revision anyway), a waiting reader wakes up
        with nothing, and `on_end` is told."""
        if self.closed is not None:
            return
        self.closed = reason
        self.dropped += sum(len(item.entries) for item in self._items)
        self._items.clear()
        self._bus.unsubscribe(self)
        self._wake()
        if self._on_end is not None:
            try:
                self._on_end(self)
            except Exception:  # one subscriber's owner must not stop the fan-out
                log.exception("a subscription's end handler failed", reason=reason.value)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self, within: float) -> Revision | None:
        """The next revision; None when `within` seconds pass with nothing new or the
        subscription is closed (see `closed`)."""
        if self._items:
            return self._items.popleft()
        if self.closed is not None:
            return None
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(within, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        return self._items.popleft() if self._items else None

    def close(self) -> None:
        self._bus.unsubscribe(self)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class ChangeBus:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._subscriptions: set[Subscription] = set()
        self.revision = 0
        """The newest revision published."""
        self._shut = False

    def add_listener(self, listener: Listener) -> None:
        """Called for every revision, in order, before any subscriber sees it."""
        self._listeners.append(listener)

    def subscribe(
        self, size: int, *, stalled: Stalled | None = None, on_end: Ended | None = None
    ) -> Subscription:
        """A subscription to every revision after the current one, ended when more than
        `size` revisions wait for its reader or when `stalled` says the reader is held
        up. Raises RuntimeError after `shutdown` (the caller answers UNAVAILABLE)."""
        if self._shut:
            raise RuntimeError("the change bus is shut down")
        subscription = Subscription(self, size, self.revision, stalled, on_end)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def publish(self, revision: Revision) -> None:
        """Hands one revision to the listeners, then the subscribers. Revisions must come
        in order, each once: the follower sees to it."""
        if revision.revision <= self.revision:
            return
        self.revision = revision.revision
        for listener in self._listeners:
            try:
                listener(revision)
            except Exception:
                log.exception("change listener failed", revision=revision.revision)
        for subscription in list(self._subscriptions):
            subscription.offer(revision)

    def shutdown(self) -> None:
        """Ends every subscription (their streams end with UNAVAILABLE, so clients
        reconnect elsewhere) and refuses new ones."""
        self._shut = True
        for subscription in list(self._subscriptions):
            subscription.end(Closed.SHUTDOWN)


__all__ = ["ChangeBus", "Closed", "Ended", "Listener", "Revision", "Stalled", "Subscription"]
