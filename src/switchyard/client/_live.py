"""LiveConfig: an in-memory view of some keys, kept current by WatchConfig.

An application reads its configuration from the view on every request (a dict lookup,
no I/O) and the view follows the server in the background. The protocol it follows:

1. Load: list the keys under each watched prefix (ListConfigs), read them all with the
   keys named directly (GetValues, 1000 at a time) and note the lowest revision read.
2. Watch from that revision (WatchConfig `from_revision`), so a change committed between
   the read and the watch is replayed rather than lost. Events carry the effective value
   in the watched environment, so they are applied as they come, never read back.
3. When the stream breaks (UNAVAILABLE, a slow consumer told to resume with ABORTED, a
   peer CANCELLED, a deadline, or silence: no event and no progress message for
   `progress_timeout` seconds), reconnect with exponential backoff and jitter and resume
   from the last revision applied. When the history no longer holds that revision
   (OUT_OF_RANGE) or an environment the view inherits from changes (an ENVIRONMENT
   event: any inherited value may now come from elsewhere), load again and watch from
   the revision of that load.
4. Any other status (INVALID_ARGUMENT for an unknown environment, PERMISSION_DENIED, ...)
   will not get better by retrying: the view stops, keeps serving what it last knew, and
   `ready()` raises the error (also kept in `error`).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any

import grpc

from switchyard.client._reads import list_keys, read_values
from switchyard.client._status import error_info
from switchyard.client._values import from_value
from switchyard.gen.v1 import config_pb2 as pb

if TYPE_CHECKING:
    from switchyard.gen.v1.config_pb2_grpc import ConfigServiceAsyncStub

log = logging.getLogger("switchyard.client")

ChangeCallback = Callable[[str, Any, Any], object]
"""`callback(key, old, new)`; `old` is None for a key that appeared, `new` None for one
that went away (deleted, deactivated, or no longer inherited)."""

PROGRESS_TIMEOUT = 30.0
"""Three of the server's default progress intervals (10 s): missing three in a row means
the stream is dead even when the connection looks alive."""
MAX_FILTERS = 1000
"""The most keys and prefixes one WatchConfig call may name (the server's limit)."""
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 10.0

_RETRIED = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        # Our own cancellations arrive as asyncio.CancelledError, so a CANCELLED status
        # comes from the peer or a proxy between: a broken stream like any other.
        grpc.StatusCode.CANCELLED,
    }
)
_MISSING: Any = object()


class LiveConfig:
    """A live view of `keys` and every key under `prefixes` (every key when neither is
    given) as resolved in `environment` (the base values when None).

    Made by `Client.live(...)`; use it as `async with client.live(...) as live:`, which
    returns once the first load is done, or call `await live.ready()` and later
    `await live.close()`.
    """

    def __init__(
        self,
        stub: ConfigServiceAsyncStub,
        *,
        keys: Iterable[str] = (),
        prefixes: Iterable[str] = (),
        environment: str | None = None,
        progress_timeout: float | None = None,
        on_close: Callable[[LiveConfig], None] | None = None,
    ) -> None:
        self._stub = stub
        self._keys = tuple(dict.fromkeys(keys))
        self._prefixes = tuple(dict.fromkeys(prefixes))
        if len(self._keys) + len(self._prefixes) > MAX_FILTERS:
            # The watch would be refused after the first load; say so now, and how.
            raise ValueError(
                f"a live view watches at most {MAX_FILTERS} keys and prefixes; "
                "name a common prefix instead of many keys"
            )
        self._environment = environment or ""
        self._progress_timeout = PROGRESS_TIMEOUT if progress_timeout is None else progress_timeout
        if self._progress_timeout <= 0:
            raise ValueError("progress_timeout must be positive")
        self._on_close = on_close
        self._values: dict[str, Any] = {}
        self._revision = 0
        # Every change up to this revision is reflected in `_values`: where a new watch
        # starts. Behind `_revision` while a revision's events may still be arriving.
        self._resume_from = 0
        self._callbacks: list[ChangeCallback] = []
        self._loaded = asyncio.Event()
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.reconnects = 0
        """How many times the stream (or a read) failed and the view started again."""
        self.reloads = 0
        """How many times the view loaded everything again after its first load."""

    # --- reading ---------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The key's current value, or `default` when the view does not hold it. A dict
        lookup: call it on every request instead of caching the answer."""
        return self._values.get(key, default)

    def snapshot(self) -> Mapping[str, Any]:
        """A read-only copy of every value, consistent at one moment (values that should
        be read together, read from one snapshot)."""
        return MappingProxyType(dict(self._values))

    @property
    def revision(self) -> int:
        """The newest revision applied, from a load, an event or a progress message. A
        revision that changed several keys (a template) is applied one key at a time."""
        return self._revision

    @property
    def error(self) -> BaseException | None:
        """Why the view stopped following the server, when it did (see `ready`)."""
        return self._error

    def on_change(self, callback: ChangeCallback) -> ChangeCallback:
        """Calls `callback(key, old, new)` after each change to a key's value (not for
        the first load), once the view holds the new value. Callbacks run in the event
        loop and must be quick and synchronous (start a task for anything slow); one
        that raises is logged and the view carries on. Returns `callback`, so this can
        be used as a decorator."""
        self._callbacks.append(callback)
        return callback

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Starts following the server in the background (`ready` does so too)."""
        if self._closed:
            raise RuntimeError("this LiveConfig is closed")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="switchyard-live-config")

    async def ready(self) -> None:
        """Waits for the first load (retrying while the server is unreachable: bound it
        with `asyncio.timeout` if need be). Raises the `grpc.aio.AioRpcError` that made the
        view stop, at the first load or at any time after, so it is also a health check."""
        if not self._closed:
            self.start()
        await self._loaded.wait()
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        """Stops following the server; the values stay readable. Idempotent."""
        if self._closed:
            return
        self._closed = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
        if not self._loaded.is_set():
            self._error = RuntimeError("the LiveConfig was closed before its first load")
            self._loaded.set()
        if self._on_close is not None:
            self._on_close(self)

    async def __aenter__(self) -> LiveConfig:
        try:
            await self.ready()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- following the server ----------------------------------------------------------

    async def _run(self) -> None:
        backoff = _Backoff()
        load = True
        while True:
            try:
                if load:
                    await self._load()
                    load = False
                load = await self._follow(backoff)
                if load:
                    continue  # an environment changed: load again, at once
                log.warning("the watch stream ended without a status; reconnecting")
            except grpc.aio.AioRpcError as error:
                code = error.code()
                if code == grpc.StatusCode.OUT_OF_RANGE:
                    log.info("revision %d is out of range; loading again", self._resume_from)
                    load = True
                elif code in _RETRIED:
                    if code == grpc.StatusCode.ABORTED:
                        self._resume_as_told(error)
                    log.info(
                        "watch interrupted (%s: %s); resuming from revision %d",
                        code,
                        error.details(),
                        self._resume_from,
                    )
                else:
                    self._stop(error)
                    return
            except TimeoutError:
                log.warning(
                    "no message from the server for %.1f s; reconnecting", self._progress_timeout
                )
            except Exception as error:  # a bug here must be seen, not kill the task silently
                self._stop(error)
                return
            self.reconnects += 1
            await asyncio.sleep(backoff.next())

    async def _load(self) -> None:
        """Reads every watched value. The view resumes from the *lowest* revision of the
        reads: a change between two of them is then replayed by the watch (applying it
        again is harmless, as events carry current values), where resuming from the
        highest would lose it."""
        keys = dict.fromkeys(self._keys)
        revisions: list[int] = []
        for prefix in self._prefixes or (() if self._keys else ("",)):
            listed, read_at = await list_keys(self._stub, prefix, deadline=self._progress_timeout)
            keys.update(dict.fromkeys(listed))
            revisions.extend(read_at)
        values, read_at = await read_values(
            self._stub, keys, self._environment, deadline=self._progress_timeout
        )
        revisions.extend(read_at)

        first = not self._loaded.is_set()
        previous, self._values = self._values, values
        revision = min(revisions)
        self._resume_from = revision
        self._revision = max(self._revision, revision)
        if first:
            self._loaded.set()
            return
        self.reloads += 1
        for key in dict.fromkeys([*previous, *values]):
            self._changed(key, previous.get(key, _MISSING), values.get(key, _MISSING))

    async def _follow(self, backoff: _Backoff) -> bool:
        """Applies the stream until it breaks (raising) or an environment changes
        (returning True: load again)."""
        call = self._stub.WatchConfig(
            pb.WatchConfigRequest(
                keys=self._keys,
                prefixes=self._prefixes,
                environment=self._environment,
                from_revision=self._resume_from,
            )
        )
        try:
            while True:
                async with asyncio.timeout(self._progress_timeout):
                    message = await call.read()
                if message is grpc.aio.EOF:
                    return False
                backoff.reset()  # a stream that delivers is a healthy one
                if message.WhichOneof("message") == "progress":
                    self._revision = max(self._revision, message.progress.revision)
                    self._resume_from = max(self._resume_from, message.progress.revision)
                elif self._apply(message.event):
                    return True
        finally:
            call.cancel()

    def _apply(self, event: pb.ChangeEvent) -> bool:
        if event.kind == pb.CHANGE_KIND_ENVIRONMENT:
            return True
        if event.kind == pb.CHANGE_KIND_CONFIG:
            old = self._values.get(event.key, _MISSING)
            if event.deleted:
                self._values.pop(event.key, None)
                new = _MISSING
            else:
                new = self._values[event.key] = from_value(event.value)
            self._changed(event.key, old, new)
        self._revision = max(self._revision, event.revision)
        # Other events of this revision may not have arrived yet: resume before it.
        self._resume_from = max(self._resume_from, event.revision - 1)
        return False

    def _resume_as_told(self, error: grpc.aio.AioRpcError) -> None:
        """A slow consumer is told where to resume: every change up to there has been
        sent (what was left out did not concern this view)."""
        info = error_info(error)
        if info is None or info[0] != "SLOW_CONSUMER":
            return
        try:
            revision = int(info[1]["resume_from_revision"])
        except (KeyError, ValueError):
            return
        self._resume_from = max(self._resume_from, revision)
        self._revision = max(self._revision, revision)

    def _stop(self, error: BaseException) -> None:
        if self._loaded.is_set():
            log.error("the live view stopped following the server", exc_info=error)
        self._error = error
        self._loaded.set()

    def _changed(self, key: str, old: Any, new: Any) -> None:
        if _same(old, new):
            return
        old = None if old is _MISSING else old
        new = None if new is _MISSING else new
        for callback in list(self._callbacks):
            try:
                result = callback(key, old, new)
            except Exception:
                log.exception("a LiveConfig change callback failed (key %r)", key)
                continue
            if inspect.iscoroutine(result):
                result.close()
                log.error(
                    "on_change callbacks must be synchronous: %r returned a coroutine", callback
                )


def _same(old: Any, new: Any) -> bool:
    """Equal as JSON: unlike ==, tells 1 from true and 1 from 1.5 inside lists too."""
    if old is _MISSING or new is _MISSING:
        return old is new
    return json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)


class _Backoff:
    """Exponential backoff with jitter: 0.1 s doubling to 10 s, each delay drawn from its
    upper half so that clients cut off together do not come back together."""

    def __init__(self) -> None:
        self._delay = BACKOFF_FIRST

    def next(self) -> float:
        delay = self._delay
        self._delay = min(self._delay * 2, BACKOFF_MAX)
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self._delay = BACKOFF_FIRST


__all__ = ["MAX_FILTERS", "PROGRESS_TIMEOUT", "ChangeCallback", "LiveConfig"]
