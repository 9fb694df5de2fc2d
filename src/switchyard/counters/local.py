"""Counters in this process: the embedded default, when no Redis is configured.

This module is also the reference for the semantics (see the package docstring):
`switchyard.counters.redis` runs the same arithmetic in Lua, operation for operation, so
that both backends give bit-identical answers for the same timeline (a test checks it).

A decision never awaits, so concurrent asyncio callers cannot interleave inside one; a
lock makes it atomic across threads too. Idle counters are dropped once nothing in them
matters any more (their window ended, their bucket refilled, their block lapsed), and the
total held is bounded, least recently used first.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

from cachetools import TLRUCache

from switchyard.domain.errors import InvalidArgument
from switchyard.domain.limits import (
    MAX_SLIDING_REQUESTS,
    Algorithm,
    CountRequest,
    CountResult,
)

EPSILON = 1e-9
"""Tokens closer than this to `hits` count as enough: the refill is float arithmetic, and
(60 / 7) * (7 / 60) need not be exactly 1.0."""
MAX_ENTRIES = 2_000_000
"""What `LocalCounters` holds at most: one per counter plus one per sliding-log entry
(about 60 MB when full). Beyond it the least recently used counter is forgotten."""


def check_request(request: CountRequest) -> None:
    """Refuses a request no counter can decide. The definitions are checked when saved
    (`domain.limits.check_limit`), so this guards against callers' bugs, not users'."""
    problems = []
    if not request.key:
        problems.append("key is empty")
    if request.limit < 1:
        problems.append("limit must be at least 1")
    if request.window_seconds < 1:
        problems.append("window_seconds must be at least 1")
    if request.hits < 0:
        problems.append("hits must not be negative")
    if request.block_seconds < 0 or request.queue_size < 0:
        problems.append("block_seconds and queue_size must not be negative")
    if request.algorithm is Algorithm.TOKEN_BUCKET and request.burst < 1:
        problems.append("a token bucket needs a burst of at least 1")
    if request.algorithm is Algorithm.SLIDING_WINDOW and (
        request.limit > MAX_SLIDING_REQUESTS or request.hits > MAX_SLIDING_REQUESTS
    ):
        problems.append(f"a sliding window counts at most {MAX_SLIDING_REQUESTS} requests")
    if problems:
        raise InvalidArgument(f"counter {request.key!r}: {'; '.join(problems)}")


def capacity(request: CountRequest) -> int:
    """The most `hits` one request can ever be admitted with."""
    return request.burst if request.algorithm is Algorithm.TOKEN_BUCKET else request.limit


@dataclass(slots=True)
class _Counter:
    """Everything one counter key holds; each part mirrors one Redis key."""

    window_start: float = -math.inf  # :fw
    window_count: int = 0
    log: list[float] = field(default_factory=list)  # :sw, sorted
    tokens: float | None = None  # :tb (None: full, as an absent key is)
    refilled_at: float = 0.0
    blocked_until: float = -math.inf  # :b
    queue_start: float = -math.inf  # :q
    queue_taken: int = 0
    expires_at: float = -math.inf
    """When nothing in here matters any more (the request clock): the latest of the
    expiries the Redis keys would have been given."""
    lifetime: float = 0.0
    """`expires_at` as seconds from the last decision, for the cache's own clock."""

    def size(self) -> int:
        return 1 + len(self.log)


@dataclass(frozen=True, slots=True)
class _Outcome:
    fits: bool
    remaining: int
    reset_after: float
    retry_after: float


def _fixed(c: _Counter, r: CountRequest, now: float, count: bool) -> _Outcome:
    window = r.window_seconds
    start = float(math.floor(now / window)) * window
    n = 0
    # A stored window newer than ours (a clock that went back) is kept, never reopened.
    if c.window_start >= start:
        start = c.window_start
        n = c.window_count
    fits = n + r.hits <= r.limit
    if fits and count and r.hits > 0:
        n += r.hits
        c.window_start, c.window_count = start, n
        c.expires_at = max(c.expires_at, start + window)
    reset = start + window - now if n > 0 else 0.0
    retry = 0.0
    if not fits:
        # More hits than the limit can never fit: the answer is "not in this window".
        retry = float(window) if r.hits > r.limit else reset
    return _Outcome(fits, max(0, r.limit - n), reset, retry)


def _sliding(c: _Counter, r: CountRequest, now: float, count: bool) -> _Outcome:
    window = r.window_seconds
    log = c.log
    # Entries at or before now - W have left the window (it is (now - W, now]).
    del log[: bisect_right(log, now - window)]
    n = len(log)
    fits = n + r.hits <= r.limit
    if fits and count and r.hits > 0:
        at = bisect_right(log, now)
        log[at:at] = [now] * r.hits
        n += r.hits
        c.expires_at = max(c.expires_at, log[-1] + window)
    reset = log[0] + window - now if n > 0 else 0.0
    retry = 0.0
    if not fits and r.hits > r.limit:
        retry = float(window)  # can never fit, as for the fixed window
    elif not fits:
        # The hits fit once the (n + hits - limit)th oldest entry has left.
        retry = log[n + r.hits - r.limit - 1] + window - now
    return _Outcome(fits, max(0, r.limit - n), reset, retry)


def _bucket(c: _Counter, r: CountRequest, now: float, count: bool) -> _Outcome:
    burst = r.burst
    rate = r.limit / r.window_seconds
    tokens: float = burst
    refilled_at = now
    if c.tokens is not None:
        tokens = min(burst, c.tokens + max(0.0, now - c.refilled_at) * rate)
        refilled_at = max(c.refilled_at, now)
    fits = tokens + EPSILON >= r.hits
    if fits and count and r.hits > 0:
        tokens = max(0.0, tokens - r.hits)
        c.tokens, c.refilled_at = tokens, refilled_at
        c.expires_at = max(c.expires_at, now + (burst - tokens) / rate)
    reset = max(0.0, (burst - tokens) / rate)
    retry = 0.0
    if not fits:
        retry = float(r.window_seconds) if r.hits > burst else (r.hits - tokens) / rate
    return _Outcome(fits, math.floor(tokens + EPSILON), reset, retry)


_ALGORITHMS: dict[Algorithm, Callable[[_Counter, CountRequest, float, bool], _Outcome]] = {
    Algorithm.FIXED_WINDOW: _fixed,
    Algorithm.SLIDING_WINDOW: _sliding,
    Algorithm.TOKEN_BUCKET: _bucket,
}


def decide(c: _Counter, r: CountRequest, now: float) -> CountResult:
    """One decision on counter `c` at `now`: block check, algorithm, then the queue or
    the block for a denial. Mutates `c`; the Lua script in `counters.redis` mirrors it."""
    run = _ALGORITHMS[r.algorithm]
    if c.blocked_until > now:
        # Counted nothing, but say when the hits would really fit: a caller that honours
        # retry_after must not come back to a full window and be blocked again.
        peek = run(c, r, now, False)
        left = c.blocked_until - now
        retry = left if peek.fits else max(left, peek.retry_after)
        return CountResult(
            allowed=False,
            remaining=0,
            reset_after=max(left, peek.reset_after),
            retry_after=retry,
            blocked=True,
        )
    outcome = run(c, r, now, True)
    if outcome.fits:
        return CountResult(True, outcome.remaining, outcome.reset_after, 0.0)
    remaining, reset, retry = outcome.remaining, outcome.reset_after, outcome.retry_after
    queued = False
    # A request that can never fit would wait for nothing: it takes no place.
    if r.queue_size > 0 and r.hits <= capacity(r):
        start = float(math.floor(now / r.window_seconds)) * r.window_seconds
        taken = 0
        if c.queue_start >= start:
            start, taken = c.queue_start, c.queue_taken
        if taken < r.queue_size:
            c.queue_start, c.queue_taken = start, taken + 1
            c.expires_at = max(c.expires_at, start + r.window_seconds)
            queued = True
    if not queued and r.block_seconds > 0:
        c.blocked_until = now + r.block_seconds
        c.expires_at = max(c.expires_at, c.blocked_until)
        remaining = 0
        retry = max(retry, float(r.block_seconds))
        reset = max(reset, float(r.block_seconds))
    return CountResult(False, remaining, reset, retry, queued=queued)


class LocalCounters:
    """`service.ports.Counters` in this process: exact for one replica, and each replica
    of several counts on its own (use Redis to share counters)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        max_entries: int = MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # Expiry runs on the monotonic clock, by each counter's own lifetime: a counter
        # that still matters is never dropped for being idle.
        self._counters: TLRUCache[str, _Counter] = TLRUCache(
            maxsize=max_entries,
            ttu=lambda _key, counter, at: at + counter.lifetime,
            timer=monotonic,
            getsizeof=_Counter.size,
        )

    async def hit(self, request: CountRequest) -> CountResult:
        return self.hit_now(request)

    def hit_now(self, request: CountRequest) -> CountResult:
        """`hit` without the coroutine: the decision itself, never awaiting."""
        check_request(request)
        with self._lock:
            now = float(self._clock() if request.now is None else request.now)
            counter = self._counters.get(request.key) or _Counter()
            result = decide(counter, request, now)
            counter.lifetime = counter.expires_at - now
            # Set again even when it was there: the lifetime and the size have changed.
            self._counters[request.key] = counter
            return result

    def held(self) -> int:
        """How many counters are held (after dropping those that no longer matter)."""
        with self._lock:
            self._counters.expire()
            return len(self._counters)

    async def close(self) -> None:
        with self._lock:
            self._counters.clear()


__all__ = ["EPSILON", "MAX_ENTRIES", "LocalCounters", "capacity", "check_request", "decide"]
