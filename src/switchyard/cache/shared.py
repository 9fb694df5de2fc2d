"""L2: resolved answers in Redis, shared by every replica.

One Redis hash per config key (`sy:v1:cfg:<key>`), one field per environment, so that a
change drops every environment of a key with one DEL, and every operation touches one
key (a Redis Cluster routes it to one node). Each field holds the answer as text, the
revision it was read at and the moment it expires.

The cache is best effort. A call that fails or is slow (see
`redis_client.SOCKET_TIMEOUT_SECONDS`) counts as a miss; after a failure Redis is left
alone for `RETRY_AFTER_SECONDS`, so an outage costs one timeout, not one per request,
and the service goes on with L1 and the database. Correctness never depends on a DEL
reaching Redis: readers check an entry's revision against the changes they know of
(`ConfigService`), so an entry that missed its invalidation is refused, not served.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog
from redis.exceptions import RedisError

from switchyard.metrics import CACHE_ERRORS, CACHE_REQUESTS
from switchyard.redis_client import RedisClient

log = structlog.get_logger(__name__)

PREFIX = "sy:v1:cfg:"
RETRY_AFTER_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class SharedEntry:
    payload: str
    revision: int
    expires: float
    """Wall-clock seconds (time.time()): replicas share no monotonic clock."""


class SharedCache:
    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = PREFIX,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._monotonic = monotonic
        self._resting_until = 0.0

    @property
    def available(self) -> bool:
        return self._monotonic() >= self._resting_until

    async def get(self, name: str, scope: str) -> SharedEntry | None:
        if not self.available:
            return None
        try:
            raw = await self._client.hget(self._prefix + name, scope)
        except (RedisError, OSError) as error:
            self._failed("get", error)
            return None
        entry = _decode(raw)
        if entry is None or entry.expires <= self._clock():
            CACHE_REQUESTS.labels("l2", "miss").inc()
            return None
        CACHE_REQUESTS.labels("l2", "hit").inc()
        return entry

    async def put(self, name: str, scope: str, payload: str, *, revision: int, ttl: float) -> None:
        if ttl <= 0 or not self.available:
            return
        key = self._prefix + name
        text = json.dumps({"p": payload, "r": revision, "x": self._clock() + ttl})
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(key, scope, text)
                # The hash lives as long as its longest-lived field may.
                pipe.expire(key, max(1, int(ttl) + 1), gt=True)
                pipe.expire(key, max(1, int(ttl) + 1), nx=True)
                await pipe.execute()
        except (RedisError, OSError) as error:
            self._failed("put", error)

    async def invalidate(self, names: Iterable[str]) -> None:
        keys = [self._prefix + name for name in names]
        if not keys or not self.available:
            return
        try:
            # One key per DEL: a cluster may hold each on another node.
            for key in keys:
                await self._client.delete(key)
        except (RedisError, OSError) as error:
            self._failed("invalidate", error)

    def _failed(self, operation: str, error: BaseException) -> None:
        CACHE_ERRORS.labels(operation).inc()
        if self.available:
            log.warning(
                "shared cache unavailable; serving from L1 and the database",
                operation=operation,
                error=str(error),
                retry_in=RETRY_AFTER_SECONDS,
            )
        self._resting_until = self._monotonic() + RETRY_AFTER_SECONDS


def _decode(raw: bytes | str | None) -> SharedEntry | None:
    if raw is None:
        return None
    try:
        fields = json.loads(raw)
        return SharedEntry(str(fields["p"]), int(fields["r"]), float(fields["x"]))
    except (ValueError, KeyError, TypeError):
        return None  # written by another version: a miss


__all__ = ["PREFIX", "RETRY_AFTER_SECONDS", "SharedCache", "SharedEntry"]
