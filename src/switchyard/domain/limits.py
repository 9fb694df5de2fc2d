"""Rate limits: the definition, the subject a request is, and which limit applies to it.

Pure data and decisions that need no counter: matching, exemptions, inheritance, the
algorithm a limit counts with, and the checks a definition must pass before it is saved.
Counting lives behind `switchyard.service.ports.Counters` (Redis, or in process).

Patterns (`scope_pattern`, `applies_to`):
- IP scope: a comma-separated list of addresses and CIDR ranges (`10.0.0.0/8, ::1`).
- Every other scope, and `applies_to` (which endpoints a limit covers): a comma-separated
  list of globs (`*` any run of characters, `/` included; `?` one character; `[...]` a
  set), matched case-sensitively against the whole value.
- An empty pattern matches any subject that has the scope's field.
"""

from __future__ import annotations

import enum
import fnmatch
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from switchyard.domain.errors import InvalidArgument, Violations
from switchyard.domain.keys import check_environment_name, check_key
from switchyard.domain.models import JSONValue
from switchyard.domain.values import check_url

MAX_SLIDING_REQUESTS = 100_000
"""A sliding window remembers each admitted request: larger limits use a fixed window or
a token bucket."""
MAX_WINDOW_SECONDS = 31 * 86_400
MAX_LIST = 1000
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE")
_COLUMN_WIDTHS = {
    "name": 255,
    "description": 500,
    "scope_pattern": 255,
    "applies_to": 500,
    "custom_error_message": 500,
    "redirect_url": 500,
}


class ScopeType(enum.StrEnum):
    """What a limit counts per (the spec's `scope_type`)."""

    GLOBAL = "global"
    USER = "user"
    ROLE = "role"
    IP = "ip"
    API_KEY = "api_key"
    ENDPOINT = "endpoint"
    SERVICE = "service"


class LimitAction(enum.StrEnum):
    """What happens to a request over the limit (the spec's `action_on_limit`)."""

    BLOCK = "block"
    THROTTLE = "throttle"
    QUEUE = "queue"
    LOG = "log"
    CAPTCHA = "captcha"


class Algorithm(enum.StrEnum):
    """How a limit counts. Chosen from the definition by `RateLimit.algorithm`."""

    SLIDING_WINDOW = "sliding_window"
    FIXED_WINDOW = "fixed_window"
    TOKEN_BUCKET = "token_bucket"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One row of `pf_rate_limits`. `max_requests` and `time_window_seconds` of 0, and
    empty optional fields, are inherited from `inherit_from` (see `resolve_inheritance`)."""

    key: str
    name: str
    max_requests: int = 0
    time_window_seconds: int = 0
    scope_type: ScopeType = ScopeType.GLOBAL
    description: str | None = None
    burst_size: int | None = None
    queue_size: int = 0
    scope_pattern: str | None = None
    applies_to: str | None = None
    http_methods: tuple[str, ...] = ()
    action_on_limit: LimitAction = LimitAction.BLOCK
    block_duration_seconds: int = 60
    retry_after_header: bool = True
    custom_error_message: str | None = None
    redirect_url: str | None = None
    exempt_roles: tuple[str, ...] = ()
    exempt_users: tuple[str, ...] = ()
    exempt_ips: tuple[str, ...] = ()
    exempt_api_keys: tuple[str, ...] = ()
    sliding_window: bool = True
    distributed: bool = True
    fail_closed: bool = False
    inherit_from: str | None = None
    is_active: bool = True
    priority: int = 100
    environment: str | None = None
    track_metrics: bool = True
    alert_threshold_percentage: int = 80
    # Bookkeeping, set by the service and the store.
    id: str = ""
    version: int = 1
    trigger_count: int = 0
    last_triggered: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def algorithm(self) -> Algorithm:
        """A burst makes a token bucket (it refills at `max_requests` per window and holds
        at most `burst_size`); otherwise a sliding window unless `sliding_window` is off."""
        if self.burst_size:
            return Algorithm.TOKEN_BUCKET
        if self.sliding_window:
            return Algorithm.SLIDING_WINDOW
        return Algorithm.FIXED_WINDOW


@dataclass(frozen=True, slots=True)
class Subject:
    """Who and what a request is, as CheckRateLimit (or an Envoy descriptor) says."""

    user_id: str = ""
    roles: tuple[str, ...] = ()
    ip: str = ""
    api_key: str = ""
    endpoint: str = ""
    method: str = ""
    service: str = ""
    environment: str = ""


@dataclass(frozen=True, slots=True)
class RateLimitQuery:
    scope_type: ScopeType | None = None
    environment: str | None = None
    include_inactive: bool = False


@dataclass(frozen=True, slots=True)
class CountRequest:
    """One decision for one counter, made atomically by a `Counters` backend."""

    key: str
    """The counter: the limit's key and the scope value it counts (the backend adds its
    own prefix; every key of one decision shares it, a Redis Cluster hash tag)."""
    algorithm: Algorithm
    limit: int
    """`max_requests`: per window, or the refill per window of a token bucket."""
    window_seconds: int
    burst: int
    """A token bucket's capacity; 0 for the windows."""
    hits: int
    block_seconds: int = 0
    """Above 0: a denial blocks the counter this long (action block)."""
    queue_size: int = 0
    """Above 0: requests over the limit may wait, this many per window (action queue)."""
    now: float | None = None
    """Seconds since the epoch; None: the backend's own clock (Redis TIME), the same for
    every replica."""


@dataclass(frozen=True, slots=True)
class CountResult:
    """What a counter decided. `allowed` means within the limit, and counted."""

    allowed: bool
    remaining: int
    reset_after: float
    """Seconds until the counter frees up: the fixed window ends, the oldest entry leaves
    the sliding log, the token bucket is full again; 0 when nothing is counted."""
    retry_after: float
    """Seconds until `hits` more would be admitted (while blocked, the longer of the block
    and the algorithm's own wait; a request larger than the capacity gets one window);
    0 when allowed."""
    blocked: bool = False
    """Denied by an earlier denial's block, without counting."""
    queued: bool = False
    """Over the limit and given a place in the queue (action queue)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to "may this request through?" (CheckRateLimit, and each Envoy
    descriptor)."""

    allowed: bool
    limit_key: str = ""
    """The limit that decided ("" when the configured default did, or nothing)."""
    limit: int = 0
    remaining: int = 0
    reset_after: float = 0.0
    retry_after: float | None = None
    """Set when denied or delayed and the limit sends a retry-after (`retry_after_header`)."""
    delay: float = 0.0
    """For throttle and queue: how long to wait before proceeding."""
    action: LimitAction | None = None
    exempt: bool = False
    default_applied: bool = False
    degraded: bool = False
    """The counters could not be reached and the limit's fail mode answered."""
    over_limit: bool = False
    """The request was over the limit, whatever the action made of it."""
    window_seconds: int = 0
    custom_error_message: str = ""
    redirect_url: str = ""


# --- patterns -------------------------------------------------------------------------


def _parts(pattern: str | None) -> tuple[str, ...]:
    if not pattern:
        return ()
    return tuple(part.strip() for part in pattern.split(",") if part.strip())


@lru_cache(maxsize=4096)
def _globs(pattern: str) -> re.Pattern[str]:
    """One compiled expression for a comma-separated list of globs."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in _parts(pattern)))


@lru_cache(maxsize=4096)
def _networks(
    pattern: str,
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part, strict=False) for part in _parts(pattern))


def glob_matches(pattern: str | None, value: str) -> bool:
    """Whether `value` matches any glob of `pattern` (an empty pattern matches all)."""
    if not pattern or not _parts(pattern):
        return True
    return _globs(pattern).fullmatch(value) is not None


def ip_matches(pattern: str | Sequence[str] | None, ip: str) -> bool:
    """Whether `ip` is one of the addresses or in one of the ranges of `pattern` (a
    comma-separated string or a list); an unparsable `ip` matches nothing."""
    text = pattern if isinstance(pattern, str) or pattern is None else ",".join(pattern)
    if not text or not _parts(text):
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in _networks(text))


# --- which limit applies --------------------------------------------------------------


def scope_value(limit: RateLimit, subject: Subject) -> str | None:
    """What `limit` counts `subject` under (the user, the ip, the role that matched...),
    or None when the subject is outside the limit's scope. `global` counts everyone
    together."""
    pattern = limit.scope_pattern
    match limit.scope_type:
        case ScopeType.GLOBAL:
            return ""
        case ScopeType.USER:
            value = subject.user_id
        case ScopeType.API_KEY:
            value = subject.api_key
        case ScopeType.ENDPOINT:
            value = subject.endpoint
        case ScopeType.SERVICE:
            value = subject.service
        case ScopeType.IP:
            return subject.ip if subject.ip and ip_matches(pattern, subject.ip) else None
        case ScopeType.ROLE:
            for role in subject.roles:
                if glob_matches(pattern, role):
                    return role
            return None
    return value if value and glob_matches(pattern, value) else None


def applies(limit: RateLimit, subject: Subject) -> bool:
    """Whether `limit` covers `subject`: active, in its environment, for its methods and
    endpoints, and within its scope."""
    if not limit.is_active:
        return False
    if limit.environment and limit.environment != subject.environment:
        return False
    if limit.http_methods and subject.method.upper() not in limit.http_methods:
        return False
    if limit.applies_to and not (
        subject.endpoint and glob_matches(limit.applies_to, subject.endpoint)
    ):
        return False
    return scope_value(limit, subject) is not None


def is_exempt(limit: RateLimit, subject: Subject) -> bool:
    """Whether an exemption of `limit` names the subject."""
    return bool(
        (subject.user_id and subject.user_id in limit.exempt_users)
        or any(role in limit.exempt_roles for role in subject.roles)
        or (subject.api_key and subject.api_key in limit.exempt_api_keys)
        or (subject.ip and limit.exempt_ips and ip_matches(limit.exempt_ips, subject.ip))
    )


def by_priority(limits: Sequence[RateLimit]) -> list[RateLimit]:
    """Highest priority first; equal priorities in key order, so the choice is stable."""
    return sorted(limits, key=lambda limit: (-limit.priority, limit.key))


# --- inheritance ----------------------------------------------------------------------

_INHERITED = (
    "max_requests",
    "time_window_seconds",
    "burst_size",
    "scope_pattern",
    "applies_to",
    "http_methods",
    "custom_error_message",
    "redirect_url",
    "exempt_roles",
    "exempt_users",
    "exempt_ips",
    "exempt_api_keys",
    "environment",
)


def resolve_inheritance(limit: RateLimit, limits: Mapping[str, RateLimit]) -> RateLimit:
    """`limit` with its unset fields (0, None, empty) filled from its parent, and the
    parent's from its own, up the chain. A parent that is gone leaves them unset."""
    seen = {limit.key}
    resolved = limit
    parent_key = limit.inherit_from
    while parent_key and parent_key not in seen and parent_key in limits:
        seen.add(parent_key)
        parent = limits[parent_key]
        filled = {
            name: getattr(parent, name)
            for name in _INHERITED
            if not getattr(resolved, name) and getattr(parent, name)
        }
        if filled:
            resolved = replace(resolved, **filled)
        parent_key = parent.inherit_from
    return resolved


def inheritance_cycle(limit: RateLimit, limits: Mapping[str, RateLimit]) -> list[str]:
    """The chain `limit -> parent -> ... -> limit` when following `inherit_from` comes back
    to it, else []."""
    chain = [limit.key]
    parent_key = limit.inherit_from
    while parent_key:
        chain.append(parent_key)
        if parent_key == limit.key:
            return chain
        parent = limits.get(parent_key)
        if parent is None or parent_key in chain[:-1]:
            return []
        parent_key = parent.inherit_from
    return []


# --- documents ------------------------------------------------------------------------

_COUNTERS = ("trigger_count", "last_triggered")


def limit_document(limit: RateLimit) -> dict[str, JSONValue]:
    """The definition as JSON: what a history row holds, so a replica applies a change
    from the row alone and a rollback restores it. Trigger counters are left out."""
    document: dict[str, JSONValue] = {}
    for item in fields(RateLimit):
        if item.name in _COUNTERS:
            continue
        value = getattr(limit, item.name)
        if isinstance(value, tuple):
            document[item.name] = list(value)
        elif isinstance(value, enum.Enum):
            document[item.name] = value.value
        elif isinstance(value, datetime):
            document[item.name] = value.isoformat()
        else:
            document[item.name] = value
    return document


def limit_from_document(document: Mapping[str, JSONValue]) -> RateLimit:
    """The inverse of `limit_document`."""
    values: dict[str, Any] = {}
    for item in fields(RateLimit):
        if item.name not in document or item.name in _COUNTERS:
            continue
        value = document[item.name]
        values[item.name] = tuple(str(v) for v in value) if isinstance(value, list) else value
    values["scope_type"] = ScopeType(str(values.get("scope_type", "global")))
    values["action_on_limit"] = LimitAction(str(values.get("action_on_limit", "block")))
    for name in ("created_at", "updated_at"):
        text = values.get(name)
        values[name] = datetime.fromisoformat(text) if isinstance(text, str) else None
    return RateLimit(**values)


# --- checks ---------------------------------------------------------------------------


def check_limit(limit: RateLimit) -> None:
    """A definition about to be saved, on its own. Raises InvalidArgument listing every
    violation, on `rate_limit.*` fields. Fields left to inherit (0, empty) are checked
    once resolved, by `check_resolved`."""
    found = Violations()
    found.check(check_key, limit.key, "rate_limit.key")
    if not limit.name or not limit.name.strip():
        found.add("rate_limit.name", "is required")
    # A text too long for its column is refused for that alone, not parsed as well:
    # translating a megabyte of glob held the server for a second.
    too_long = set()
    for name, width in _COLUMN_WIDTHS.items():
        text = getattr(limit, name)
        if text is not None and len(text) > width:
            found.add(f"rate_limit.{name}", f"must be at most {width} characters")
            too_long.add(name)
    for name in ("max_requests", "time_window_seconds"):
        if getattr(limit, name) < 0:
            found.add(f"rate_limit.{name}", "must be positive (0 inherits from inherit_from)")
    if limit.time_window_seconds > MAX_WINDOW_SECONDS:
        found.add(
            "rate_limit.time_window_seconds", f"must be at most {MAX_WINDOW_SECONDS} (31 days)"
        )
    if limit.burst_size is not None and limit.burst_size < 0:
        found.add("rate_limit.burst_size", "must not be negative")
    for name in ("queue_size", "block_duration_seconds"):
        if getattr(limit, name) < 0:
            found.add(f"rate_limit.{name}", "must not be negative")
    if limit.action_on_limit is LimitAction.QUEUE and limit.queue_size <= 0:
        found.add("rate_limit.queue_size", "the queue action needs a queue_size above 0")
    if not 0 < limit.alert_threshold_percentage <= 100:
        found.add("rate_limit.alert_threshold_percentage", "must be between 1 and 100")
    if not -99_999 <= limit.priority <= 99_999:
        found.add("rate_limit.priority", "must fit five digits (-99999 to 99999)")
    unknown = [m for m in limit.http_methods if m not in HTTP_METHODS]
    if unknown:
        found.add(
            "rate_limit.http_methods",
            f"{', '.join(unknown)} not HTTP methods; use {', '.join(HTTP_METHODS)}",
        )
    if len(",".join(limit.http_methods)) > 100:
        found.add("rate_limit.http_methods", "must fit 100 characters, comma-separated")
    if limit.environment:
        found.check(check_environment_name, limit.environment, "rate_limit.environment")
    if limit.inherit_from:
        found.check(check_key, limit.inherit_from, "rate_limit.inherit_from")
        if limit.inherit_from == limit.key:
            found.add("rate_limit.inherit_from", "a limit cannot inherit from itself")
    if limit.redirect_url and "redirect_url" not in too_long:
        found.check(check_url, limit.redirect_url, "rate_limit.redirect_url")
    _check_patterns(limit, found, too_long)
    _check_exemptions(limit, found)
    found.raise_any()


def check_resolved(limit: RateLimit, field: str = "rate_limit") -> None:
    """A limit with its inheritance resolved must count something."""
    found = Violations()
    if limit.max_requests <= 0:
        found.add(
            f"{field}.max_requests", "must be positive, here or in the limit it inherits from"
        )
    if limit.time_window_seconds <= 0:
        found.add(
            f"{field}.time_window_seconds",
            "must be positive, here or in the limit it inherits from",
        )
    if limit.algorithm is Algorithm.SLIDING_WINDOW and limit.max_requests > MAX_SLIDING_REQUESTS:
        found.add(
            f"{field}.max_requests",
            f"a sliding window admits at most {MAX_SLIDING_REQUESTS} per window (it remembers "
            "each request); turn sliding_window off for a fixed window, or set a burst_size",
        )
    found.raise_any()


def _check_patterns(limit: RateLimit, found: Violations, too_long: set[str]) -> None:
    scope_pattern = None if "scope_pattern" in too_long else limit.scope_pattern
    applies_to = None if "applies_to" in too_long else limit.applies_to
    if limit.scope_type is ScopeType.IP:
        for part in _parts(scope_pattern):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                found.add(
                    "rate_limit.scope_pattern",
                    f"{part!r} is not an IP address or CIDR range (such as 10.0.0.0/8)",
                )
    else:
        for part in _parts(scope_pattern):
            found.check(_check_glob, part, "rate_limit.scope_pattern")
    for part in _parts(applies_to):
        found.check(_check_glob, part, "rate_limit.applies_to")


def _check_glob(glob: str, field: str) -> None:
    try:
        re.compile(fnmatch.translate(glob))
    except re.error as error:
        raise InvalidArgument.field(field, f"{glob!r} is not a glob: {error}") from None


def _check_exemptions(limit: RateLimit, found: Violations) -> None:
    for name in ("exempt_roles", "exempt_users", "exempt_ips", "exempt_api_keys"):
        values: tuple[str, ...] = getattr(limit, name)
        if len(values) > MAX_LIST:
            found.add(f"rate_limit.{name}", f"must list at most {MAX_LIST} entries")
        elif any(not value or len(value) > 255 for value in values):
            found.add(f"rate_limit.{name}", "entries must be 1 to 255 characters")
    for entry in limit.exempt_ips:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            found.add(
                "rate_limit.exempt_ips",
                f"{entry!r} is not an IP address or CIDR range (such as 192.168.0.0/16)",
            )


__all__ = [
    "HTTP_METHODS",
    "MAX_SLIDING_REQUESTS",
    "Algorithm",
    "CountRequest",
    "CountResult",
    "Decision",
    "LimitAction",
    "RateLimit",
    "RateLimitQuery",
    "ScopeType",
    "Subject",
    "applies",
    "by_priority",
    "check_limit",
    "check_resolved",
    "glob_matches",
    "inheritance_cycle",
    "ip_matches",
    "is_exempt",
    "limit_document",
    "limit_from_document",
    "resolve_inheritance",
    "scope_value",
]
