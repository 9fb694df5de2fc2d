"""Rate-limit counters: one atomic decision per call (`service.ports.Counters`).

`RedisCounters` keeps them in Redis (a single server, Sentinel or a Cluster), shared by
every replica, so N replicas admit exactly what one would; `LocalCounters` keeps them in
this process (the embedded default, no Redis). Both implement the same semantics, to the
bit: `counters.local` is the reference and the Redis Lua script mirrors it.

Terms: W = `window_seconds`, L = `limit`, H = `hits`, now = `CountRequest.now` when set
(tests drive a clock through it), else the backend's clock: `time.time()` in process,
Redis `TIME` in Redis (one clock for every replica).

- FIXED_WINDOW: windows [k*W, (k+1)*W), k = floor(now / W). Admitted when count + H <= L.
  remaining = L - count; reset_after = end of the window - now (0 while nothing is
  counted); retry_after when denied = reset_after.
- SLIDING_WINDOW: an exact log of admitted hits (one entry each, at the time admitted).
  The window is (now - W, now]: an entry admitted at t leaves at exactly t + W. Admitted
  when entries + H <= L, so no span of W seconds ever admits more than L.
  remaining = L - entries; reset_after = when the oldest entry leaves (0 when none);
  retry_after when denied = when the (entries + H - L)th oldest entry leaves.
- TOKEN_BUCKET: capacity `burst`, refilled continuously at L per W, full at first.
  Admitted when tokens >= H (within 1e-9: float refill), then tokens -= H.
  remaining = floor(tokens); reset_after = time to refill to full; retry_after when
  denied = (H - tokens) / rate. Any span of W admits at most burst + L.
- H larger than the capacity (L, or the burst) can never be admitted: it is denied with
  retry_after = W ("not within this window"), counts nothing and takes no queue place.
- H = 0 counts nothing and is always admitted (unless blocked): a look at the counter.
- Block (`block_seconds` > 0): a denial blocks the counter for block_seconds. While
  blocked, every call is denied with blocked=True, remaining 0, nothing counted, and
  retry_after = the longer of the block's remaining time and when the algorithm would
  admit H (so a caller that honours it is not blocked again on arrival); the denial that
  starts the block reports max(retry_after, block_seconds) likewise.
- Queue (`queue_size` > 0): a denial (not blocked, H within the capacity) takes a place
  if fewer than queue_size are taken in this queue period (the fixed window of W it falls
  in): allowed=False, queued=True, retry_after as computed, and it neither counts nor
  blocks. When the places are gone it is denied (and blocked, with block_seconds).
- State whose time is over (an ended window, a refilled bucket, a lapsed block) is the
  same as no state: Redis keys carry that time as their TTL, and the process drops idle
  counters after it. A stored window newer than `now` (a clock that stepped back) is
  kept, never reopened. Expiry runs on the real clock, so a driven `now` must not run
  slower than it across long idle gaps.
"""

from switchyard.counters.local import LocalCounters
from switchyard.counters.redis import RedisCounters

__all__ = ["LocalCounters", "RedisCounters"]
