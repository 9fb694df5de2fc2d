"""Prometheus metrics, served on an optional port (`--metrics-listen`).

One module defines them all, so that their names and labels stay few, fixed and
documented; the code that moves them imports what it needs from here.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

MAX_KEYS = 200
"""The most distinct flag keys or limit keys a metric labels; later ones count as OTHER."""
OTHER = "other"
"""The label value of the keys past MAX_KEYS (and of unknown flags)."""

REQUESTS = Counter(
    "switchyard_grpc_requests",
    "Calls answered, by full method name (/package.Service/Method: Switchyard's own, flagd's "
    "and Envoy's) and final status code (OK, NOT_FOUND, ...). A stream counts once, when it "
    "ends, by the code it ends with.",
    ["method", "code"],
)
REQUEST_SECONDS = Histogram(
    "switchyard_grpc_request_duration_seconds",
    "How long calls took, by method, from the interceptor's start to the answer (a stream: "
    "its lifetime), authentication and permission checks included.",
    ["method"],
    buckets=(
        0.0001,
        0.00025,
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
        2.5,
        5.0,
        10.0,
        30.0,
    ),
)

CACHE_REQUESTS = Counter(
    "switchyard_cache_requests",
    "Cache lookups by level (l1: this process, l2: Redis) and result (hit, miss, stale).",
    ["level", "result"],
)
READS_COALESCED = Counter(
    "switchyard_reads_coalesced",
    "L1 misses answered by a read of the same key already in flight: they reached neither "
    "Redis nor the database (after a change, every watcher of a key asks at once).",
)
CACHE_ERRORS = Counter(
    "switchyard_cache_errors",
    "Operations on the shared cache (Redis) that failed; the service went on without it.",
    ["operation"],
)
DENIED_CALLS = Counter(
    "switchyard_denied_calls",
    "Calls refused before their handler ran, by method and reason (unauthenticated, "
    "permission_denied, needs_approval, rate_limited).",
    ["method", "reason"],
)
STALE_ANSWERS = Counter(
    "switchyard_stale_answers",
    "Reads answered from the cache because the database could not be reached.",
)
REVISION = Gauge(
    "switchyard_revision", "The newest revision this process has applied to its caches."
)
REPLICA_LAG = Gauge(
    "switchyard_replica_lag_revisions",
    "How many revisions this process is behind the newest one in the database, as the "
    "follower's poll last read it (0 when current).",
)
REVISION_AGE = Gauge(
    "switchyard_revision_age_seconds",
    "Seconds since the newest revision this process has applied was committed (grows "
    "while nothing is written; a replica whose age exceeds its peers' lags by the "
    "difference). 0 until this process has applied one.",
)
REVISIONS_APPLIED = Counter(
    "switchyard_revisions_applied",
    "Revisions this process has read from the history and fanned out, by how it learned "
    "of them (local: its own commit, relay: Redis pub/sub, poll: the periodic poll).",
    ["wakeup"],
)
RELAY_ERRORS = Counter(
    "switchyard_relay_errors",
    "Failures to publish or receive change notices on Redis pub/sub; the poll covers them.",
    ["operation"],
)
WATCH_STREAMS = Gauge("switchyard_watch_streams", "WatchConfig streams open now.")
WATCH_EVENTS = Counter("switchyard_watch_events_sent", "Change events sent on watch streams.")
WATCH_DROPPED = Counter(
    "switchyard_watch_events_dropped",
    "Changes (history rows) queued for a watcher that it never got because the server "
    "ended its stream, by reason (slow_consumer: its queue overflowed; shutdown). Counted "
    "before the watcher's filter, so an upper bound; the client resumes from its last "
    "revision and gets them on replay.",
    ["reason"],
)
WATCH_ENDED = Counter(
    "switchyard_watch_streams_ended",
    "Watch streams the server ended, by reason (slow_consumer: its queue overflowed, or "
    "gRPC held its message for stream_stall_seconds as a change arrived; shutdown; "
    "compacted).",
    ["reason"],
)
FLAGD_STREAMS_ENDED = Counter(
    "switchyard_flagd_streams_ended",
    "flagd EventStream and SyncFlags streams the server ended, by reason (slow_consumer: "
    "gRPC held its message for stream_stall_seconds as a flag changed; shutdown).",
    ["reason"],
)
SCHEDULED_CHANGES = Counter(
    "switchyard_scheduled_changes",
    "Changes the scheduler made by itself (override_start, override_expiry, window_open, "
    "window_close).",
    ["what"],
)
SCHEDULER_FAILURES = Counter(
    "switchyard_scheduler_failures",
    "Scheduled changes that failed, by what (overrides, window): each is logged and tried "
    "again on the next run, and a failing window never stops the others.",
    ["what"],
)
UNUSABLE_STORED = Counter(
    "switchyard_unusable_stored_expressions",
    "Stored expressions this version cannot run as written (saved by an older one), by what "
    "(flag_rule, flag_schedule, window_schedule), counted when they are loaded: such a rule "
    "never matches, such a schedule never opens, until the definition is saved again.",
    ["what"],
)


FLAG_EVALUATIONS = Counter(
    "switchyard_flag_evaluations",
    f"Flag evaluations, by flag key (the first {MAX_KEYS} seen; later ones and unknown flags "
    f"are '{OTHER}') and the reason that decided.",
    ["flag", "reason"],
)
FLAG_AUTO_DISABLED = Counter(
    "switchyard_flag_auto_disabled",
    "Flags that turned themselves off because their error rate crossed failure_threshold.",
)


RATE_LIMIT_DECISIONS = Counter(
    "switchyard_rate_limit_decisions",
    f"Rate-limit decisions, by limit key (the first {MAX_KEYS} seen, later ones '{OTHER}'; "
    "'default' for the default limit, '' when none applied), the limit's action on_limit "
    "(block, throttle, log, ...; '' when none applied) and outcome (allowed, exempt, "
    "default, over_<action>).",
    ["limit", "action", "outcome"],
)
RATE_LIMIT_DEGRADED = Counter(
    "switchyard_rate_limit_degraded",
    "Decisions the fail mode made because the counters could not be reached (open: let "
    "through, closed: denied).",
    ["mode"],
)
RATE_LIMIT_ALERTS = Counter(
    "switchyard_rate_limit_alerts",
    "Times a counter's usage crossed its limit's alert_threshold_percentage.",
    ["limit"],
)


DB_CONNECTIONS = "switchyard_db_pool_connections"
DB_MAX_CONNECTIONS = "switchyard_db_pool_max_connections"


@runtime_checkable
class PoolUsage(Protocol):
    """A connection pool that can say how it is used: per pool ("read", "write"), the
    connections in use, idle, and the most it holds."""

    def usage(self) -> Mapping[str, tuple[int, int, int]]: ...


class _Pools(Collector):
    """Reads the database pools' use when /metrics is scraped: nothing on the hot path."""

    def __init__(self) -> None:
        self._pools: weakref.WeakSet[Any] = weakref.WeakSet()

    def track(self, pool: PoolUsage) -> None:
        self._pools.add(pool)

    def untrack(self, pool: PoolUsage) -> None:
        self._pools.discard(pool)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        connections, most = self._families()
        totals: dict[str, list[int]] = {}
        for pool in list(self._pools):
            for name, (in_use, idle, maximum) in pool.usage().items():
                total = totals.setdefault(name, [0, 0, 0])
                total[0] += in_use
                total[1] += idle
                total[2] += maximum
        for name, (in_use, idle, maximum) in sorted(totals.items()):
            connections.add_metric([name, "in_use"], in_use)
            connections.add_metric([name, "idle"], idle)
            most.add_metric([name], maximum)
        return [connections, most]

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                DB_CONNECTIONS,
                "Database connections by pool (read, write) and state (in_use, idle). On "
                "Oracle both draw on one pool: in_use is per kind of use, idle that pool's.",
                labels=["pool", "state"],
            ),
            GaugeMetricFamily(
                DB_MAX_CONNECTIONS,
                "The most connections each database pool (read, write) holds.",
                labels=["pool"],
            ),
        ]


_POOLS = _Pools()
REGISTRY.register(_POOLS)


def track_pool(pool: object) -> None:
    """Reports `pool`'s use in the switchyard_db_pool_* gauges until `untrack_pool` (or
    until it is garbage); a pool that cannot say (no `usage()`) is left out."""
    if isinstance(pool, PoolUsage):
        _POOLS.track(pool)


def untrack_pool(pool: object) -> None:
    if isinstance(pool, PoolUsage):
        _POOLS.untrack(pool)


_committed_at = [0.0]  # Unix time; a list so that the setter needs no `global`


def revision_committed_at(timestamp: float) -> None:
    """Records when the newest revision this process applied was committed (Unix time)."""
    _committed_at[0] = timestamp


def _revision_age() -> float:
    return time.time() - _committed_at[0] if _committed_at[0] else 0.0


REVISION_AGE.set_function(_revision_age)


class KeyedChildren:
    """The labelled children of a metric whose first label is a key callers choose (a
    flag key, a limit key), bounded: the first `limit` distinct keys get children of
    their own, later ones share OTHER's. Children are cached, so a call costs one
    dictionary lookup."""

    def __init__(self, metric: MetricWrapperBase, limit: int = MAX_KEYS) -> None:
        self._metric = metric
        self._limit = limit
        self._keys: set[str] = set()
        self._children: dict[tuple[str, ...], Any] = {}

    def get(self, key: str, *rest: str) -> Any:
        """The child for `key` and the metric's other label values, `rest`."""
        labels = (key, *rest)
        child = self._children.get(labels)
        if child is None:
            if key not in self._keys and key != OTHER:
                if len(self._keys) >= self._limit:
                    return self.get(OTHER, *rest)
                self._keys.add(key)
            child = self._children[labels] = self._metric.labels(*labels)
        return child


def exposed_names() -> frozenset[str]:
    """Every sample name this module's metrics expose (with their _total, _bucket, ...
    suffixes): what a dashboard may query."""
    names = {DB_CONNECTIONS, DB_MAX_CONNECTIONS}
    for value in globals().values():
        if isinstance(value, Counter):
            base = value._name
            names |= {f"{base}_total", f"{base}_created"}
        elif isinstance(value, Histogram):
            base = value._name
            names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count", f"{base}_created"}
        elif isinstance(value, Gauge):
            names.add(value._name)
    return frozenset(names)


def serve_metrics(listen: str) -> WSGIServer:
    """Serves /metrics over HTTP on `listen` (HOST:PORT) from a thread of its own;
    returns the server (`shutdown()` stops it)."""
    host, _, port = listen.rpartition(":")
    server, _ = start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0")
    return server


__all__ = [
    "CACHE_ERRORS",
    "CACHE_REQUESTS",
    "DENIED_CALLS",
    "FLAGD_STREAMS_ENDED",
    "FLAG_AUTO_DISABLED",
    "FLAG_EVALUATIONS",
    "MAX_KEYS",
    "OTHER",
    "RATE_LIMIT_ALERTS",
    "RATE_LIMIT_DECISIONS",
    "RATE_LIMIT_DEGRADED",
    "READS_COALESCED",
    "RELAY_ERRORS",
    "REPLICA_LAG",
    "REQUESTS",
    "REQUEST_SECONDS",
    "REVISION",
    "REVISIONS_APPLIED",
    "REVISION_AGE",
    "SCHEDULED_CHANGES",
    "SCHEDULER_FAILURES",
    "STALE_ANSWERS",
    "UNUSABLE_STORED",
    "WATCH_DROPPED",
    "WATCH_ENDED",
    "WATCH_EVENTS",
    "WATCH_STREAMS",
    "KeyedChildren",
    "PoolUsage",
    "exposed_names",
    "revision_committed_at",
    "serve_metrics",
    "track_pool",
    "untrack_pool",
]
