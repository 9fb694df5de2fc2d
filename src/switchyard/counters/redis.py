"""Counters in Redis, shared by every replica: one Lua script per decision.

One round trip decides: the script checks the block, runs the algorithm, and does the
queue and block bookkeeping, atomically (Redis runs one script at a time). It mirrors
`switchyard.counters.local.decide` operation for operation, so both backends answer
alike to the last bit; floats cross the Lua boundary as "%.17g" text, which round-trips
a double exactly (a Lua number in a reply would be truncated to an integer).

Key layout, for counter key K (every key of one decision shares the hash tag `{K}`, so a
Redis Cluster keeps them in one slot, as a script requires):

- `switchyard:rl:v1:{K}:fw`  hash  fixed window: `s` its start, `n` its count
- `switchyard:rl:v1:{K}:sw`  zset  sliding log: one member per admitted hit, scored by time
- `switchyard:rl:v1:{K}:sn`  str   the sliding log's member sequence (members are unique)
- `switchyard:rl:v1:{K}:tb`  hash  token bucket: `t` tokens, `ts` when last refilled
- `switchyard:rl:v1:{K}:b`   str   blocked until (seconds since the epoch)
- `switchyard:rl:v1:{K}:q`   hash  queue places: `s` the period's start, `n` places taken

Each algorithm has its own key, so a limit that changes algorithm finds no key of the
wrong type. Braces in K are escaped (`%7B`, `%7D`; `%` as `%25`), so that the whole of
K is the tag. Every write sets a TTL: the window's end, the newest entry's exit, the
bucket's full refill, the block's end, so idle counters vanish by themselves.

Failures: a decision that cannot reach Redis, or takes longer than `deadline` seconds
(redis-py's cluster client retries for seconds on its own; the deadline includes the
wait for one of `max_in_flight` places), raises `Unavailable`. After a connection
failure Redis is left alone for `rest_seconds`: every call in between raises at once,
so an outage costs one timeout per interval, not one per request; the next call after
it tries again, so counting resumes by itself when Redis is back. In a cluster only the
node that failed is left alone: counters on the others go on. A decision that timed out
may still have been counted (its command was sent): a timeout is not a refusal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import structlog
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    ClusterError,
    MaxConnectionsError,
    RedisClusterException,
    RedisError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from switchyard.counters.local import check_request
from switchyard.domain.errors import Unavailable
from switchyard.domain.limits import Algorithm, CountRequest, CountResult
from switchyard.redis_client import SOCKET_TIMEOUT_SECONDS, RedisClient

log = structlog.get_logger(__name__)

PREFIX = "switchyard:rl:v1:"
"""Versioned, so a changed key layout can roll out without replicas misreading each
other's keys."""
DEADLINE_SECONDS = SOCKET_TIMEOUT_SECONDS
"""The most one decision may take, retries included: a rate-limit check sits in front of
every request, and a decision later than this is no better than a failed one."""
REST_SECONDS = 1.0
MAX_IN_FLIGHT = 50
"""Decisions sent at once; the rest wait (within the deadline). redis-py's pools hold
100 connections (per node in a cluster) and refuse, rather than wait, past that; the
client is shared with the cache and the relay, so the counters take half."""

_ALGORITHM_CODES = {
    Algorithm.FIXED_WINDOW: "f",
    Algorithm.SLIDING_WINDOW: "s",
    Algorithm.TOKEN_BUCKET: "t",
}
_REACHABILITY = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterError,
    RedisClusterException,
    OSError,
    TimeoutError,
)
"""Errors that say Redis (or the slot's node) is out of reach: they start a rest."""

SCRIPT = r"""
-- KEYS: 1 the algorithm's state, 2 block, 3 queue, 4 sliding log sequence
-- ARGV: 1 algorithm (f, s, t), 2 limit, 3 window, 4 burst, 5 hits, 6 block seconds,
--       7 queue size, 8 now ('' for Redis's clock)
-- Returns {allowed, remaining, reset_after, retry_after, blocked, queued}, the two floats
-- as '%.17g' text. Mirrors switchyard.counters.local.decide: change both together.
local state, block_key, queue_key, seq_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local algorithm = ARGV[1]
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local hits = tonumber(ARGV[5])
local block = tonumber(ARGV[6])
local queue = tonumber(ARGV[7])
local now
if ARGV[8] == '' then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
else
  now = tonumber(ARGV[8])
end
local EPSILON = 1e-9

local function num(x) return string.format('%.17g', x) end

local function expire(key, seconds)
  redis.call('PEXPIRE', key, string.format('%d', math.max(1, math.ceil(seconds * 1000))))
end

local function fixed(count)
  local start = math.floor(now / window) * window
  local n = 0
  local stored = redis.call('HMGET', state, 's', 'n')
  if stored[1] and tonumber(stored[1]) >= start then
    start = tonumber(stored[1])
    n = tonumber(stored[2])
  end
  local fits = n + hits <= limit
  if fits and count and hits > 0 then
    n = n + hits
    redis.call('HSET', state, 's', num(start), 'n', num(n))
    expire(state, start + window - now)
  end
  local reset = 0
  if n > 0 then reset = start + window - now end
  local retry = 0
  if not fits then
    if hits > limit then retry = window else retry = reset end
  end
  return fits, math.max(0, limit - n), reset, retry
end

local function score(index)
  return tonumber(redis.call('ZRANGE', state, index, index, 'WITHSCORES')[2])
end

local function sliding(count)
  redis.call('ZREMRANGEBYSCORE', state, '-inf', num(now - window))
  local n = redis.call('ZCARD', state)
  local fits = n + hits <= limit
  if fits and count and hits > 0 then
    local last = redis.call('INCRBY', seq_key, hits)
    local at = num(now)
    local args = {}
    for i = 1, hits do
      args[#args + 1] = at
      args[#args + 1] = num(last - hits + i)
      -- unpack() has a stack limit: add in slices.
      if #args >= 1000 or i == hits then
        redis.call('ZADD', state, unpack(args))
        args = {}
      end
    end
    n = n + hits
    local lives = score(-1) + window - now
    expire(state, lives)
    expire(seq_key, lives)
  end
  local reset = 0
  if n > 0 then reset = score(0) + window - now end
  local retry = 0
  if not fits then
    if hits > limit then retry = window else retry = score(n + hits - limit - 1) + window - now end
  end
  return fits, math.max(0, limit - n), reset, retry
end

local function bucket(count)
  local rate = limit / window
  local tokens = burst
  local refilled_at = now
  local stored = redis.call('HMGET', state, 't', 'ts')
  if stored[1] then
    local ts = tonumber(stored[2])
    tokens = math.min(burst, tonumber(stored[1]) + math.max(0, now - ts) * rate)
    refilled_at = math.max(ts, now)
  end
  local fits = tokens + EPSILON >= hits
  if fits and count and hits > 0 then
    tokens = math.max(0, tokens - hits)
    redis.call('HSET', state, 't', num(tokens), 'ts', num(refilled_at))
    expire(state, (burst - tokens) / rate)
  end
  local reset = math.max(0, (burst - tokens) / rate)
  local retry = 0
  if not fits then
    if hits > burst then retry = window else retry = (hits - tokens) / rate end
  end
  return fits, math.floor(tokens + EPSILON), reset, retry
end

local run = ({f = fixed, s = sliding, t = bucket})[algorithm]
local capacity = limit
if algorithm == 't' then capacity = burst end

local blocked_until = redis.call('GET', block_key)
if blocked_until and tonumber(blocked_until) > now then
  local fits, _, reset, retry = run(false)
  local left = tonumber(blocked_until) - now
  if fits then retry = left else retry = math.max(left, retry) end
  return {0, 0, num(math.max(left, reset)), num(retry), 1, 0}
end

local fits, remaining, reset, retry = run(true)
if fits then return {1, remaining, num(reset), '0', 0, 0} end
local queued = 0
if queue > 0 and hits <= capacity then
  local start = math.floor(now / window) * window
  local taken = 0
  local stored = redis.call('HMGET', queue_key, 's', 'n')
  if stored[1] and tonumber(stored[1]) >= start then
    start = tonumber(stored[1])
    taken = tonumber(stored[2])
  end
  if taken < queue then
    redis.call('HSET', queue_key, 's', num(start), 'n', num(taken + 1))
    expire(queue_key, start + window - now)
    queued = 1
  end
end
if queued == 0 and block > 0 then
  redis.call('SET', block_key, num(now + block))
  expire(block_key, block)
  remaining = 0
  retry = math.max(retry, block)
  reset = math.max(reset, block)
end
return {0, remaining, num(reset), num(retry), 0, queued}
"""


class CounterKeys(NamedTuple):
    """The Redis keys of one counter (see the module docstring)."""

    fixed: str
    sliding: str
    sequence: str
    bucket: str
    block: str
    queue: str

    def state(self, algorithm: Algorithm) -> str:
        """The key holding `algorithm`'s state."""
        match algorithm:
            case Algorithm.FIXED_WINDOW:
                return self.fixed
            case Algorithm.SLIDING_WINDOW:
                return self.sliding
            case Algorithm.TOKEN_BUCKET:
                return self.bucket

    def of(self, algorithm: Algorithm) -> list[str]:
        """The script's KEYS for a decision with `algorithm`, in its order."""
        return [self.state(algorithm), self.block, self.queue, self.sequence]


def counter_keys(key: str, prefix: str = PREFIX) -> CounterKeys:
    """The keys of counter `key`, all under the hash tag `{key}` (braces escaped)."""
    tag = key.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    base = f"{prefix}{{{tag}}}:"
    return CounterKeys(*(base + suffix for suffix in ("fw", "sw", "sn", "tb", "b", "q")))


class RedisCounters:
    """`service.ports.Counters` in Redis. `client` (from `redis_client.connect`, any
    deployment) belongs to the caller, who closes it."""

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = PREFIX,
        deadline: float = DEADLINE_SECONDS,
        rest_seconds: float = REST_SECONDS,
        max_in_flight: int = MAX_IN_FLIGHT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._script = client.register_script(SCRIPT)
        self._prefix = prefix
        self._deadline = deadline
        self._rest_seconds = rest_seconds
        self._monotonic = monotonic
        self._resting_until: dict[str, float] = {}
        """By node ("host:port" in a cluster; "" for a single server, or a cluster whose
        map is not known yet)."""
        self._in_flight = asyncio.Semaphore(max_in_flight)
        # redis-py 8.1's cluster client, new and hit by many commands at once, maps the
        # cluster once per waiting command and marks the connections in use for
        # reconnection each time, which breaks some mid-connect (AttributeError inside
        # redis-py). One decision first, alone, and it maps the cluster once.
        self._warm = False
        self._warming = asyncio.Lock()

    def keys(self, key: str) -> CounterKeys:
        return counter_keys(key, self._prefix)

    async def hit(self, request: CountRequest) -> CountResult:
        check_request(request)
        keys = self.keys(request.key)
        node = self._node(keys.block)
        if self._monotonic() < self._resting_until.get(node, 0.0):
            where = f"Redis {node}" if node else "Redis"
            raise Unavailable(
                f"rate-limit counters unavailable: {where} failed less than "
                f"{self._rest_seconds:g} s ago and is left alone until then; "
                "check that it is running and reachable (redis_url)"
            )
        args = (
            _ALGORITHM_CODES[request.algorithm],
            request.limit,
            request.window_seconds,
            request.burst,
            request.hits,
            request.block_seconds,
            request.queue_size,
            "" if request.now is None else repr(float(request.now)),
        )
        try:
            async with asyncio.timeout(self._deadline):
                reply = None
                if not self._warm:
                    async with self._warming:
                        if not self._warm:  # the first; the others go on together
                            reply = await self._call(keys.of(request.algorithm), args)
                            self._warm = True
                if reply is None:
                    reply = await self._call(keys.of(request.algorithm), args)
        except MaxConnectionsError as error:
            # Other users of the client took the pool: this process is busy, Redis is
            # not down, so no rest.
            raise Unavailable(
                "rate-limit counters unavailable: every Redis connection of this replica "
                "is in use; raise the pool size or lower the load"
            ) from error
        except _REACHABILITY as error:
            raise self._unreachable(node, error) from error
        except RedisError as error:
            # Redis answered, with an error (out of memory, a read-only replica, a
            # script error): no rest, but the caller still falls back to its fail mode.
            log.error("rate-limit counter refused", key=request.key, error=str(error))
            raise Unavailable(
                f"rate-limit counters unavailable: Redis refused the decision ({error})"
            ) from error
        except Exception as error:
            # A failure inside the client itself (a bug of redis-py's, like the one
            # `__init__` works around, should a cluster's map be refreshed under load):
            # the limit's fail mode is a better answer than an internal error.
            log.exception("rate-limit counter failed in the Redis client", key=request.key)
            raise Unavailable(
                f"rate-limit counters unavailable: the Redis client failed ({error!r})"
            ) from error
        return _result(reply)

    async def _call(self, keys: list[str], args: Sequence[str | int]) -> Any:
        async with self._in_flight:
            return await self._script(keys=keys, args=args)

    def _node(self, key: str) -> str:
        """The cluster node serving `key` as far as the client knows, else ""."""
        if not isinstance(self._client, RedisCluster):
            return ""
        try:
            node = self._client.get_node_from_key(key)
        except (RedisClusterException, RedisError):
            return ""  # no map yet: the first call makes it
        return node.name if node is not None else ""

    def _unreachable(self, node: str, error: BaseException) -> Unavailable:
        if self._monotonic() >= self._resting_until.get(node, 0.0):
            log.warning(
                "rate-limit counters unavailable; limits answer by their fail mode",
                node=node or None,
                error=str(error) or type(error).__name__,
                retry_in=self._rest_seconds,
            )
        self._resting_until[node] = self._monotonic() + self._rest_seconds
        what = (
            f"no answer within {self._deadline:g} s"
            if isinstance(error, TimeoutError)
            else f"{type(error).__name__}: {error}"
        )
        return Unavailable(
            f"rate-limit counters unavailable: cannot reach Redis ({what}); check that it "
            "is running and reachable from this replica (redis_url); retrying in "
            f"{self._rest_seconds:g} s"
        )

    async def close(self) -> None:
        """Nothing to release: the client is the caller's."""


def _result(reply: Sequence[Any]) -> CountResult:
    allowed, remaining, reset_after, retry_after, blocked, queued = reply
    return CountResult(
        allowed=bool(allowed),
        remaining=int(remaining),
        reset_after=float(reset_after),
        retry_after=float(retry_after),
        blocked=bool(blocked),
        queued=bool(queued),
    )


__all__ = [
    "DEADLINE_SECONDS",
    "MAX_IN_FLIGHT",
    "PREFIX",
    "REST_SECONDS",
    "SCRIPT",
    "CounterKeys",
    "RedisCounters",
    "counter_keys",
]
