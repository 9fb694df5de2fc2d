"""WatchConfig: a stream of every change to what a client watches, replayed from the
history after the revision it names and then live from the change bus, with no gap and
no duplicate at the seam between the two.

Each event carries the effective value of its key in the watched environment after the
change (read when the event is sent, so at or after the event's revision), so a client
applies events as they come and never reads back. An idle stream gets a progress
message with the current revision every `progress_interval` seconds (jittered), so a
client knows it is current, and knows the stream is dead when they stop coming.

A stream whose client stops reading is cut off rather than allowed to cost the others:
when more than `queue_revisions` revisions wait for it, or when its `Delivery` says that
gRPC has held one of its messages for `stall_seconds` as another revision arrives for
it. Its queue is dropped and it leaves the bus at once, as the bus fans out; it ends with
Overrun naming the last revision it was sent in full, so the client resumes without a
gap. If the stream is blocked in a write at that moment its generator cannot raise, so
the delivery is told to end the call (`Delivery.abandon`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from switchyard.domain.environments import ancestry
from switchyard.domain.errors import (
    InvalidArgument,
    NotFound,
    OutOfRange,
    Overrun,
    SwitchyardError,
    Unavailable,
)
from switchyard.domain.keys import check_environment_name, check_key
from switchyard.domain.models import (
    ChangeKind,
    HistoryAction,
    HistoryEntry,
    JSONValue,
    ValueSource,
)
from switchyard.events.bus import ChangeBus, Closed, Subscription
from switchyard.events.follower import read_revisions
from switchyard.metrics import WATCH_DROPPED, WATCH_ENDED, WATCH_EVENTS, WATCH_STREAMS
from switchyard.service.config import SYSTEM_TABLE, ConfigService
from switchyard.service.ports import Store

PROGRESS_SECONDS = 10.0
MEMO_EVENTS = 4096
QUEUE_REVISIONS = 1024
STALL_SECONDS = 10.0
REPLAY_ROWS = 500
MAX_FILTERS = 1000


@dataclass(frozen=True, slots=True)
class WatchRequest:
    """What a client watches. With no keys, prefixes or categories: every key."""

    keys: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    categories: frozenset[str] = frozenset()
    kinds: frozenset[ChangeKind] = frozenset({ChangeKind.CONFIG})
    environment: str | None = None
    from_revision: int | None = None
    """Replay the history after this revision first (0: all of it); None starts live."""
    every_environment: bool = False
    """Changes in every layer, each read in its own (`environment` is then None)."""

    def selects(self, key: str, category: str | None) -> bool:
        if not (self.keys or self.prefixes or self.categories):
            return True
        return (
            key in self.keys
            or any(key.startswith(prefix) for prefix in self.prefixes)
            or (category is not None and category in self.categories)
        )


@dataclass(frozen=True, slots=True)
class WatchEvent:
    revision: int
    kind: ChangeKind
    key: str
    environment: str | None
    action: HistoryAction
    changed_at: datetime
    value: JSONValue = None
    source: ValueSource | None = None
    deleted: bool = False
    category: str | None = None
    sensitive: bool = False


@dataclass(frozen=True, slots=True)
class WatchProgress:
    revision: int


@dataclass
class _Shared:
    """An event being made for every stream that sends it."""

    ready: asyncio.Event = field(default_factory=asyncio.Event)
    event: WatchEvent | None = None
    read_at: int = 0
    """The revision its value was read at (at or after the event's own)."""


class Delivery(Protocol):
    """How a stream's messages reach its client (`api.delivery.Delivery`)."""

    @property
    def blocked(self) -> bool:
        """Whether the transport holds a message of the stream it has not sent yet."""
        ...

    def stalled(self, seconds: float) -> bool:
        """Whether it has held the current message for at least `seconds`."""
        ...

    def abandon(self, error: SwitchyardError) -> None:
        """Ends the stream with `error` now, though its generator is blocked in a write."""
        ...


class _Undelivered:
    """A stream consumed in-process: never blocked in a write."""

    blocked = False

    def stalled(self, seconds: float) -> bool:
        return False

    def abandon(self, error: SwitchyardError) -> None:
        pass


@dataclass
class _Stream:
    request: WatchRequest
    delivery: Delivery
    chain: list[str] = field(default_factory=list)
    last: int = 0
    """Revisions up to this one are sent or need not be (replayed already)."""
    sent: int = 0
    """The last revision the client was sent in full: where it resumes."""
    completing: int | None = None
    """The revision the message being sent completes, if it is its last event: a client
    that reads the status after that message resumes from it."""
    error: SwitchyardError | None = None
    """How the stream ended, once its subscription did."""
    counted: bool = True
    """Counted in `switchyard_watch_streams` (until it ends, or is cut off)."""
    read_at: int = 0
    """The newest revision a value this stream sent was read at. An event made earlier
    for other streams, with an older value, is made again rather than sent: a client
    applies events as they come, and a key's value must never go back in time."""

    def resume_from(self) -> int:
        if self.delivery.blocked and self.completing is not None:
            return self.completing
        return self.sent

    def check(self) -> None:
        """Raises how the stream ended, once it has: nothing more is sent."""
        if self.error is not None:
            raise self.error


class WatchService:
    def __init__(
        self,
        store: Store,
        bus: ChangeBus,
        config: ConfigService,
        *,
        progress_interval: float = PROGRESS_SECONDS,
        queue_revisions: int = QUEUE_REVISIONS,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self._store = store
        self._bus = bus
        self._config = config
        self._progress_interval = progress_interval
        self._queue_revisions = queue_revisions
        self._stall_seconds = stall_seconds
        # Categories of keys, shared by every stream (filled on demand, kept current from
        # the definition rows of the history).
        self._categories: dict[str, str] = {}
        # Each history row becomes one event per watched environment, shared by every
        # stream that sends it: one read of the value, one event object, however many
        # watchers (which lets the API layer build its message once too).
        self._events: OrderedDict[tuple[str, str | None], _Shared] = OrderedDict()

    async def watch(
        self, request: WatchRequest, delivery: Delivery | None = None
    ) -> AsyncIterator[WatchEvent | WatchProgress]:
        """Raises InvalidArgument for a bad request, OutOfRange for a `from_revision`
        the history no longer holds (or that is ahead of it), Overrun when the client
        reads too slowly to keep up, Unavailable when the server shuts down. `delivery`
        says when the transport holds a message up, and ends a stream blocked in a
        write; without it the stream is cut off only when its queue overflows."""
        _check(request)
        stream = _Stream(request, delivery or _Undelivered())
        await self._follow_environments(stream)

        def stalled() -> bool:
            return stream.delivery.stalled(self._stall_seconds)

        try:
            subscription = self._bus.subscribe(
                self._queue_revisions, stalled=stalled, on_end=lambda s: self._end(stream, s)
            )
        except RuntimeError:
            raise Unavailable("the server is shutting down; reconnect to another") from None
        WATCH_STREAMS.inc()
        try:
            stream.last = max(request.from_revision or 0, subscription.start)
            stream.sent = (
                subscription.start if request.from_revision is None else request.from_revision
            )
            if request.from_revision is not None:
                async for event in self._replay(stream, request.from_revision, subscription.start):
                    stream.check()
                    yield event
                stream.sent = stream.last
            while True:
                item = await subscription.next(self._progress_wait())
                stream.check()
                if item is None:
                    yield WatchProgress(max(stream.last, self._bus.revision))
                    continue
                if item.revision <= stream.last:
                    continue  # replayed already
                final = len(item.entries) - 1
                for index, entry in enumerate(item.entries):
                    live = await self._event(stream, entry)
                    stream.check()
                    if live is not None:
                        WATCH_EVENTS.inc()
                        stream.completing = item.revision if index == final else None
                        yield live
                stream.completing = None
                stream.last = stream.sent = item.revision
        finally:
            subscription.close()
            self._close(stream)

    def _end(self, stream: _Stream, subscription: Subscription) -> None:
        """The subscription ended (cut off, or shutdown), as the bus fanned out: counted
        now, and the stream ended now if it is blocked in a write."""
        assert subscription.closed is not None
        stream.error = self._ended(subscription.closed, stream.resume_from(), subscription.dropped)
        if stream.delivery.blocked:
            self._close(stream)
            stream.delivery.abandon(stream.error)

    def _close(self, stream: _Stream) -> None:
        if stream.counted:
            stream.counted = False
            WATCH_STREAMS.dec()

    def _ended(self, reason: Closed, last: int, dropped: int) -> Overrun | Unavailable:
        if reason is Closed.SHUTDOWN:
            WATCH_ENDED.labels("shutdown").inc()
            WATCH_DROPPED.labels("shutdown").inc(dropped)
            return Unavailable(
                f"the server is shutting down; reconnect and resume from revision {last}"
            )
        WATCH_ENDED.labels("slow_consumer").inc()
        WATCH_DROPPED.labels("slow_consumer").inc(dropped)
        if reason is Closed.STALLED:
            why = (
                f"this watcher's client took no message for {self._stall_seconds:g} s while "
                "changes waited for it"
            )
        else:
            why = f"this watcher fell more than {self._queue_revisions} revisions behind"
        return Overrun(f"{why}; resume from revision {last}", resume_from=last)

    def _progress_wait(self) -> float:
        return self._progress_interval * random.uniform(0.9, 1.1)

    async def _replay(self, stream: _Stream, after: int, up_to: int) -> AsyncIterator[WatchEvent]:
        async with self._store.read() as reader:
            current = await reader.current_revision()
            oldest = await reader.history.oldest_revision()
        if after > current:
            raise OutOfRange(
                f"revision {after} is ahead of the newest one, {current}: re-read and watch "
                "from the revision of that read"
            )
        if oldest > 0 and after < oldest - 1:
            WATCH_ENDED.labels("compacted").inc()
            raise OutOfRange(
                f"the history no longer holds revision {after + 1}; the oldest available is "
                f"{oldest}: re-read and watch from the revision of that read",
                oldest_revision=oldest,
            )
        if after >= up_to:
            return
        revisions = read_revisions(self._config.history_after, after, REPLAY_ROWS)
        async with contextlib.aclosing(revisions):
            async for complete in revisions:
                for revision, entries in complete:
                    if revision > up_to:
                        return
                    final = len(entries) - 1
                    for index, entry in enumerate(entries):
                        event = await self._event(stream, entry)
                        if event is not None:
                            WATCH_EVENTS.inc()
                            stream.completing = revision if index == final else None
                            yield event
                    stream.completing = None
                    stream.sent = revision
                if stream.sent >= up_to:
                    return

    async def _event(self, stream: _Stream, entry: HistoryEntry) -> WatchEvent | None:
        request = stream.request
        if entry.kind is ChangeKind.CONFIG and entry.table_name == SYSTEM_TABLE:
            self._learn_category(entry)
        if entry.kind is ChangeKind.ENVIRONMENT:
            # Inheritance may have changed: a config watcher re-reads what it watches.
            await self._follow_environments(stream)
            if not (request.kinds & {ChangeKind.ENVIRONMENT, ChangeKind.CONFIG}):
                return None
            if (
                ChangeKind.ENVIRONMENT not in request.kinds
                and not request.every_environment
                and entry.key not in stream.chain
            ):
                return None
            return _event(entry)
        if entry.kind not in request.kinds:
            return None
        if entry.kind is not ChangeKind.CONFIG:
            return _event(entry) if request.selects(entry.key, None) else None
        if request.every_environment:
            read_in = entry.environment
        elif entry.environment is not None and entry.environment not in stream.chain:
            return None  # an override in a layer the watched environment does not read
        else:
            read_in = request.environment
        category = await self._category(entry.key) if request.categories else None
        if not request.selects(entry.key, category):
            return None
        made = await self._shared_event(entry, read_in, stream.read_at)
        stream.read_at = max(stream.read_at, made.read_at)
        assert made.event is not None
        return made.event

    async def _shared_event(
        self, entry: HistoryEntry, environment: str | None, read_at: int
    ) -> _Shared:
        """The event of a config row for watchers of `environment`, its value read at
        `read_at` or later, made once: the first stream reads the value, the others wait
        on an asyncio.Event (cheaper per waiter than a shielded future, and one waiter's
        cancellation touches no other). One made with an older value is made again, for
        this stream and those after it."""
        memo = (entry.id, environment)
        while True:
            made = self._events.get(memo)
            if made is not None and not made.ready.is_set():
                await made.ready.wait()
                continue  # look again: its maker may have gone, or read too early for us
            if made is None or made.event is None or made.read_at < read_at:
                made = self._events[memo] = _Shared()
                self._events.move_to_end(memo)
                while len(self._events) > MEMO_EVENTS:
                    self._events.popitem(last=False)
                await self._make(made, memo, entry, environment)  # raises to this stream
            if made.event is not None:
                return made

    async def _make(
        self,
        made: _Shared,
        memo: tuple[str, str | None],
        entry: HistoryEntry,
        environment: str | None,
    ) -> None:
        category = self._categories.get(entry.key)
        try:
            read = await self._config.get_value(entry.key, environment)
            made.read_at = read.revision
            made.event = _event(
                entry,
                value=read.value.value,
                source=read.value.source,
                category=category,
                sensitive=read.value.sensitive,
            )
        except NotFound:
            made.read_at = self._config.revision  # at least what the read saw
            made.event = _event(entry, deleted=True, category=category)
        except BaseException:
            self._events.pop(memo, None)  # the next stream to need it tries again
            raise
        finally:
            made.ready.set()

    def _learn_category(self, entry: HistoryEntry) -> None:
        document = entry.new_value if entry.new_value is not None else entry.old_value
        if isinstance(document, dict) and isinstance(document.get("category"), str):
            self._categories[entry.key] = str(document["category"])

    async def _category(self, key: str) -> str | None:
        if key not in self._categories:
            async with self._store.read() as reader:
                definition = await reader.configs.find_config(key)
            if definition is None:
                return None
            self._categories[key] = definition.category
        return self._categories[key]

    async def _follow_environments(self, stream: _Stream) -> None:
        environment = stream.request.environment
        if environment is None:
            stream.chain = []
            return
        async with self._store.read() as reader:
            environments = await reader.environments.list_environments()
        try:
            stream.chain = ancestry(environments, environment)
        except NotFound as error:
            raise InvalidArgument.field("environment", error.message) from None


def _event(
    entry: HistoryEntry,
    *,
    value: JSONValue = None,
    source: ValueSource | None = None,
    deleted: bool = False,
    category: str | None = None,
    sensitive: bool = False,
) -> WatchEvent:
    return WatchEvent(
        revision=entry.revision,
        kind=entry.kind,
        key=entry.key,
        environment=entry.environment,
        action=entry.action,
        changed_at=entry.changed_at,
        value=value,
        source=source,
        deleted=deleted,
        category=category,
        sensitive=sensitive,
    )


def _check(request: WatchRequest) -> None:
    if request.from_revision is not None and request.from_revision < 0:
        raise InvalidArgument.field("from_revision", "must not be negative")
    if request.environment:
        check_environment_name(request.environment)
    filters: Sequence[str] = [*request.keys, *request.prefixes, *request.categories]
    if len(filters) > MAX_FILTERS:
        raise InvalidArgument.field("keys", f"at most {MAX_FILTERS} keys, prefixes and categories")
    for key in sorted(request.keys):
        check_key(key, "keys")


__all__ = [
    "PROGRESS_SECONDS",
    "QUEUE_REVISIONS",
    "STALL_SECONDS",
    "Delivery",
    "WatchEvent",
    "WatchProgress",
    "WatchRequest",
    "WatchService",
]
