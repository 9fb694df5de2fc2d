"""Prometheus metrics, served on an optional port (`--metrics-listen`).

One module defines them all, so that their names and labels stay few, fixed and
documented; the code that moves them imports what it needs from here.
"""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, start_http_server

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
WATCH_ENDED = Counter(
    "switchyard_watch_streams_ended",
    "Watch streams the server ended, by reason (slow_consumer, shutdown, compacted).",
    ["reason"],
)
SCHEDULED_CHANGES = Counter(
    "switchyard_scheduled_changes",
    "Changes the scheduler made by itself (override_start, override_expiry, window_open, "
    "window_close).",
    ["what"],
)


FLAG_EVALUATIONS = Counter(
    "switchyard_flag_evaluations", "Flag evaluations, by the reason that decided.", ["reason"]
)
FLAG_AUTO_DISABLED = Counter(
    "switchyard_flag_auto_disabled",
    "Flags that turned themselves off because their error rate crossed failure_threshold.",
)


RATE_LIMIT_DECISIONS = Counter(
    "switchyard_rate_limit_decisions",
    "Rate-limit decisions, by outcome (allowed, exempt, default, over_<action>).",
    ["outcome"],
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
    "FLAG_AUTO_DISABLED",
    "FLAG_EVALUATIONS",
    "RATE_LIMIT_ALERTS",
    "RATE_LIMIT_DECISIONS",
    "RATE_LIMIT_DEGRADED",
    "READS_COALESCED",
    "RELAY_ERRORS",
    "REVISION",
    "REVISIONS_APPLIED",
    "SCHEDULED_CHANGES",
    "STALE_ANSWERS",
    "WATCH_ENDED",
    "WATCH_EVENTS",
    "WATCH_STREAMS",
    "serve_metrics",
]
