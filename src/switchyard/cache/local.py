"""L1: resolved answers kept in this process, with a time to live per entry.

The one subtlety is the race between a read that missed and a write that commits while
that read is in flight: the read may come back with the old value *after* the write has
invalidated the key, and must not put it back. Every entry is therefore stored with the
revision its read reflected, and a put whose revision is older than the key's last
invalidation is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cachetools import LRUCache

from switchyard.metrics import CACHE_REQUESTS

_HITS = CACHE_REQUESTS.labels("l1", "hit")
_MISSES = CACHE_REQUESTS.labels("l1", "miss")

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    expires: float


class LocalCache(Generic[V]):
    """A size- and time-bounded map from (name, scope) to an answer.

    `name` is what changes invalidate (a config key); `scope` is the rest of what the
    answer depends on (an environment). Invalidating a name drops it in every scope.
    """

    def __init__(self, maxsize: int = 10_000, timer: Callable[[], float] = time.monotonic) -> None:
        self._timer = timer
        # LRU for the size bound; each entry's expiry is checked on the way out. (Measured:
        # a hit costs a fifth of what cachetools' TLRUCache, which tracks expiry itself,
        # spends on it, and a hit is the whole of a cached read.)
        self._entries: LRUCache[tuple[str, str], _Entry[V]] = LRUCache(maxsize=maxsize)
        self._scopes: dict[str, set[str]] = {}
        self._invalidated_at: dict[str, int] = {}
        self._cleared_at = 0
        self.hits = 0
        self.misses = 0

    def get(self, name: str, scope: str) -> V | None:
        entry = self._entries.get((name, scope))
        if entry is None or entry.expires <= self._timer():
            self.misses += 1
            _MISSES.inc()
            return None
        self.hits += 1
        _HITS.inc()
        return entry.value

    def peek(self, name: str, scope: str) -> V | None:
        """The last answer kept for (name, scope), expired or not, unless a change has
        dropped it: what a read may fall back on when the database cannot be reached."""
        entry = self._entries.get((name, scope))
        if entry is None:
            return None
        CACHE_REQUESTS.labels("l1", "stale").inc()
        return entry.value

    def invalidation_mark(self, name: str) -> int:
        """The revision of the last change that dropped `name` (0 if none): two reads
        that see the same mark were not overtaken by a change between them."""
        return max(self._cleared_at, self._invalidated_at.get(name, 0))

    def put(self, name: str, scope: str, value: V, *, ttl: float, revision: int) -> bool:
        """Keeps `value`, read at `revision`, for `ttl` seconds. Returns False (and keeps
        nothing) when the key was invalidated after that revision or `ttl` is not positive."""
        if ttl <= 0 or revision < self.invalidation_mark(name):
            return False
        self._entries[(name, scope)] = _Entry(value, self._timer() + ttl)
        self._scopes.setdefault(name, set()).add(scope)
        return True

    def invalidate(self, name: str, revision: int) -> set[str]:
        """Drops every scope of `name`: a change committed at `revision` touched it.
        Returns the scopes that held an answer (worth reading again). A change seen again
        (its own commit, then the follower) drops nothing: what was put since is newer."""
        if revision <= self._invalidated_at.get(name, 0):
            return set()
        self._invalidated_at[name] = revision
        scopes = self._scopes.pop(name, set())
        for scope in scopes:
            self._entries.pop((name, scope), None)
        return scopes

    def clear(self, revision: int) -> None:
        """Drops everything (an environment's parent changed, say)."""
        self._cleared_at = max(revision, self._cleared_at)
        self._entries.clear()
        self._scopes.clear()

    def __len__(self) -> int:
        return len(self._entries)


__all__ = [
    "LocalCache",
]
