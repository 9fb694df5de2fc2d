"""Envoy's global rate-limit protocol (`envoy.service.ratelimit.v3.RateLimitService`,
`ShouldRateLimit`) over Switchyard's RateLimitService, so that an unmodified Envoy's
`envoy.filters.http.ratelimit` filter (or the network filter) is answered by the limits
in Switchyard's database, which change live, instead of the reference service's YAML.

Request → `RateLimitService.check`:

- `domain` is the subject's environment when it is an environment name (`production`);
  any other domain leaves the environment empty, so that only limits without an
  environment apply (Envoy requires a domain; it need not be one of ours).
- Each descriptor (Envoy sends one per matching `rate_limits` entry) is decided on its
  own, in order, by one `check`: every descriptor counts, as with Envoy's reference
  service, and a request is over the limit when any descriptor is.
- Within a descriptor, entries map by key as `ENTRY_KEYS` says (keys compared in lower
  case; for a key given twice the first entry counts, except roles, which add up).
  `generic_key` names the one limit to check (`limit_key`); without it, the
  highest-priority limit that applies to the subject decides. Other keys
  (`header_match`, `masked_remote_address`, `source_cluster`, custom ones) are ignored,
  and a descriptor with no known key at all is answered OK without counting: it was
  meant for another limiter, as the reference service treats descriptors it has no
  configuration for.
- `:path` is the endpoint without its query string. Roles may be comma-separated.
  Values are cut to what `check` accepts (2040 characters, 100 roles), so that a long
  client header cannot turn a decision into an error that Envoy would fail open on.
- Hits: the descriptor's `hits_addend` when set and above 0, else the request's
  `hits_addend`, where 0 (unset) means 1.
- A request of more than 100 descriptors, or a descriptor of more than 100 entries, is
  refused with INVALID_ARGUMENT: an Envoy configuration makes a handful.
- A `generic_key` naming no limit is answered OK without counting (logged once per key):
  Envoy's configuration may name a limit before it is created, and it takes effect the
  moment it is. A key Switchyard cannot hold, or a hit count out of range, fails the
  call with INVALID_ARGUMENT (the interceptor maps domain errors), which Envoy treats by
  its `failure_mode_deny`.

Decision → `DescriptorStatus`:

- Allowed → OK; denied → OVER_LIMIT, with the limit's `custom_error_message` as the
  429's body (`raw_body`). Allowed with a delay (throttle, queue) is OK: Envoy cannot
  hold a request back. Action `log` is OK. An exemption is OK with no limit.
  Degraded (counters unreachable) answers as the limit's fail mode says: fail-open is
  OK with no limit (nothing was counted), fail-closed is OVER_LIMIT. A redirect URL is
  not sent: Envoy answers a denial with its own status (429 by default).
- `current_limit`: `requests_per_unit` is the limit's `max_requests` and `unit` the
  window when it is exactly a second, minute, hour, day or week. Other windows (90 s,
  two hours) have no unit: `unit` is UNKNOWN and `name` says the window
  (`edge: 3 per 90s`); otherwise `name` is the limit's key (`default` for the configured
  default limit). Envoy only reports `current_limit` (debugging, its draft headers).
- `limit_remaining` and `duration_until_reset` are the counter's.

Headers (`response_headers_to_add`, on Envoy's 429 and on allowed responses alike), from
the descriptor that matters most to the client: the denied one with the longest wait,
else the one with the fewest requests left: `x-ratelimit-limit`, `x-ratelimit-remaining`,
`x-ratelimit-reset` (whole seconds, rounded up), and `retry-after` (seconds, rounded up)
when denied and the limit sends one (`retry_after_header`). Leave the filter's own
`enable_x_ratelimit_headers` off, or the headers come twice.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import grpc
import structlog

# xds-protos ships no type information: its messages are Any here.
from envoy.config.core.v3 import base_pb2  # type: ignore[import-untyped]
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc  # type: ignore[import-untyped]

from switchyard.api.mapping import to_duration
from switchyard.domain.errors import InvalidArgument, NotFound
from switchyard.domain.keys import check_environment_name
from switchyard.domain.limits import Decision, Subject

log = structlog.get_logger(__name__)

SERVICE_NAME: str = rls_pb2.DESCRIPTOR.services_by_name["RateLimitService"].full_name

MAX_VALUE_LENGTH = 2040
"""The longest subject value `RateLimitService.check` accepts."""
MAX_ROLES = 100
"""The most roles `RateLimitService.check` accepts."""
MAX_DESCRIPTORS = 100
"""Descriptors in one request. Envoy sends one per `rate_limits` entry that matches a
request, a handful; each is decided in turn, and 20,000 held the server for half a
second."""
MAX_ENTRIES = 100
"""Entries in one descriptor: Envoy makes one per action of its `rate_limits` entry."""
_UINT32 = 2**32 - 1
_WARNED_LIMIT = 1024

_Code = rls_pb2.RateLimitResponse.Code
_Unit = rls_pb2.RateLimitResponse.RateLimit.Unit


class Field(enum.StrEnum):
    """What a descriptor entry sets: the limit to check, or a field of the Subject."""

    LIMIT_KEY = "limit_key"
    USER_ID = "user_id"
    ROLES = "roles"
    IP = "ip"
    API_KEY = "api_key"
    ENDPOINT = "endpoint"
    METHOD = "method"
    SERVICE = "service"


ENTRY_KEYS: Mapping[str, Field] = MappingProxyType(
    {
        # Envoy's generic_key action (descriptor_key left at its default).
        "generic_key": Field.LIMIT_KEY,
        # Envoy's remote_address action: the trusted client address.
        "remote_address": Field.IP,
        # request_headers actions, by the descriptor_key they are given.
        "user_id": Field.USER_ID,
        "x-user-id": Field.USER_ID,
        "api_key": Field.API_KEY,
        "x-api-key": Field.API_KEY,
        "role": Field.ROLES,
        "x-user-role": Field.ROLES,
        "path": Field.ENDPOINT,
        ":path": Field.ENDPOINT,
        "method": Field.METHOD,
        ":method": Field.METHOD,
        "service": Field.SERVICE,
        # Envoy's destination_cluster action: the upstream cluster is the service.
        "destination_cluster": Field.SERVICE,
    }
)
"""The descriptor entry keys Switchyard reads; every other key is ignored."""

_UNITS: Mapping[int, int] = MappingProxyType(
    {
        1: _Unit.SECOND,
        60: _Unit.MINUTE,
        3_600: _Unit.HOUR,
        86_400: _Unit.DAY,
        604_800: _Unit.WEEK,
    }
)


class Limits(Protocol):
    """What this protocol needs of RateLimitService: its decision."""

    async def check(
        self, subject: Subject, *, hits: int = 1, limit_key: str | None = None
    ) -> tuple[Decision, int]: ...


@dataclass(frozen=True, slots=True)
class DescriptorCheck:
    """One descriptor as the arguments of `RateLimitService.check`."""

    subject: Subject
    limit_key: str | None
    hits: int


# --- request -> check -------------------------------------------------------------------


def domain_environment(domain: str) -> str:
    """The Switchyard environment Envoy's `domain` names, or "" when it names none."""
    try:
        check_environment_name(domain)
    except InvalidArgument:
        return ""
    return domain


def check_request(request: Any) -> None:
    """Raises InvalidArgument for a request with more descriptors, or a descriptor with
    more entries, than an Envoy configuration makes (Envoy then answers by its
    `failure_mode_deny`)."""
    if len(request.descriptors) > MAX_DESCRIPTORS:
        raise InvalidArgument.field(
            "descriptors",
            f"at most {MAX_DESCRIPTORS} descriptors in one request; got {len(request.descriptors)}",
        )
    for index, descriptor in enumerate(request.descriptors):
        if len(descriptor.entries) > MAX_ENTRIES:
            raise InvalidArgument.field(
                f"descriptors[{index}].entries",
                f"at most {MAX_ENTRIES} entries in one descriptor; got {len(descriptor.entries)}",
            )


def _cut(value: str) -> str:
    return value[:MAX_VALUE_LENGTH]


def descriptor_check(
    descriptor: Any, *, environment: str, request_hits: int
) -> DescriptorCheck | None:
    """What one `RateLimitDescriptor` asks, or None when none of its entries is one
    Switchyard reads (the descriptor is not for it). `request_hits` is the request's
    `hits_addend` (0 means 1)."""
    values: dict[Field, str] = {}
    roles: dict[str, None] = {}
    for entry in descriptor.entries:
        field = ENTRY_KEYS.get(entry.key.lower())
        if field is None or not entry.value:
            continue
        if field is Field.ROLES:
            roles.update(dict.fromkeys(r.strip() for r in entry.value.split(",") if r.strip()))
        else:
            values.setdefault(field, entry.value)
    if not values and not roles:
        return None
    hits = request_hits or 1
    if descriptor.HasField("hits_addend") and descriptor.hits_addend.value > 0:
        hits = descriptor.hits_addend.value
    subject = Subject(
        user_id=_cut(values.get(Field.USER_ID, "")),
        roles=tuple(_cut(role) for role in list(roles)[:MAX_ROLES]),
        ip=_cut(values.get(Field.IP, "")),
        api_key=_cut(values.get(Field.API_KEY, "")),
        endpoint=_cut(values.get(Field.ENDPOINT, "").split("?", 1)[0]),
        method=_cut(values.get(Field.METHOD, "")),
        service=_cut(values.get(Field.SERVICE, "")),
        environment=environment,
    )
    return DescriptorCheck(subject, values.get(Field.LIMIT_KEY), hits)


# --- decision -> response ---------------------------------------------------------------


def _reports_limit(decision: Decision | None) -> bool:
    """Whether the decision is about a limit that counted (or denied without counting)."""
    if decision is None or decision.exempt or decision.limit <= 0:
        return False
    return not (decision.degraded and decision.allowed)


def _seconds(value: float) -> int:
    return max(0, math.ceil(value))


def current_limit(decision: Decision) -> Any:
    """The `RateLimitResponse.RateLimit` describing the limit that decided."""
    name = decision.limit_key or ("default" if decision.default_applied else "")
    window = decision.window_seconds
    unit = _UNITS.get(window, _Unit.UNKNOWN)
    if unit == _Unit.UNKNOWN and window > 0:
        name = f"{name}: {decision.limit} per {window}s"
    return rls_pb2.RateLimitResponse.RateLimit(
        name=name, requests_per_unit=min(decision.limit, _UINT32), unit=unit
    )


def descriptor_status(decision: Decision | None) -> Any:
    """The `DescriptorStatus` for one descriptor's decision (None: not decided, OK)."""
    if decision is None:
        return rls_pb2.RateLimitResponse.DescriptorStatus(code=_Code.OK)
    code = _Code.OK if decision.allowed else _Code.OVER_LIMIT
    if not _reports_limit(decision):
        return rls_pb2.RateLimitResponse.DescriptorStatus(code=code)
    return rls_pb2.RateLimitResponse.DescriptorStatus(
        code=code,
        current_limit=current_limit(decision),
        limit_remaining=min(max(decision.remaining, 0), _UINT32),
        duration_until_reset=to_duration(decision.reset_after),
    )


def _telling(decisions: Iterable[Decision | None]) -> Decision | None:
    """The decision the client most needs to hear of: the denial with the longest wait,
    else the limit with the fewest requests left (the first of equals)."""
    reported = [d for d in decisions if d is not None and _reports_limit(d)]
    denied = [d for d in reported if not d.allowed]
    if denied:
        return max(denied, key=lambda d: (d.retry_after or 0.0, d.reset_after))
    if reported:
        return min(reported, key=lambda d: d.remaining)
    return None


def rate_limit_headers(decisions: Sequence[Decision | None]) -> list[Any]:
    """`x-ratelimit-limit`, `-remaining`, `-reset` and, when denied, `retry-after`, as
    `HeaderValue`s; none when no descriptor met a limit."""
    telling = _telling(decisions)
    if telling is None:
        return []
    headers = {
        "x-ratelimit-limit": str(telling.limit),
        "x-ratelimit-remaining": str(max(telling.remaining, 0)),
        "x-ratelimit-reset": str(_seconds(telling.reset_after)),
    }
    if not telling.allowed and telling.retry_after is not None:
        headers["retry-after"] = str(_seconds(telling.retry_after))
    return [base_pb2.HeaderValue(key=key, value=value) for key, value in headers.items()]


def rate_limit_response(decisions: Sequence[Decision | None]) -> Any:
    """The `RateLimitResponse` for the decisions of a request's descriptors, in order."""
    statuses = [descriptor_status(decision) for decision in decisions]
    over = any(status.code == _Code.OVER_LIMIT for status in statuses)
    response = rls_pb2.RateLimitResponse(
        overall_code=_Code.OVER_LIMIT if over else _Code.OK,
        statuses=statuses,
        response_headers_to_add=rate_limit_headers(decisions),
    )
    if over:
        telling = _telling(decisions)
        denials = [d for d in decisions if d is not None and not d.allowed]
        messages = [d.custom_error_message for d in [telling, *denials] if d is not None]
        message = next((m for m in messages if m), "")
        if message:
            response.raw_body = message.encode()
    return response


# --- the servicer -----------------------------------------------------------------------


class EnvoyRateLimitServicer:
    """`ShouldRateLimit`, one `check` per descriptor (the module docstring says how)."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._warned: set[str] = set()

    async def ShouldRateLimit(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        check_request(request)
        environment = domain_environment(request.domain)
        decisions: list[Decision | None] = []
        for descriptor in request.descriptors:
            check = descriptor_check(
                descriptor, environment=environment, request_hits=request.hits_addend
            )
            decisions.append(await self._decide(check))
        return rate_limit_response(decisions)

    async def _decide(self, check: DescriptorCheck | None) -> Decision | None:
        if check is None:
            return None
        try:
            decision, _ = await self._limits.check(
                check.subject, hits=check.hits, limit_key=check.limit_key
            )
        except NotFound:
            self._warn_unknown(check.limit_key or "")
            return None
        return decision

    def _warn_unknown(self, limit_key: str) -> None:
        """Once per key (and at most `_WARNED_LIMIT` keys): Envoy asks on every request."""
        if limit_key in self._warned or len(self._warned) >= _WARNED_LIMIT:
            return
        self._warned.add(limit_key)
        log.warning(
            "Envoy names a rate limit that does not exist; answering OK until it is created",
            limit_key=limit_key,
        )


def register(server: grpc.aio.Server, limits: Limits) -> None:
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(EnvoyRateLimitServicer(limits), server)


__all__ = [
    "ENTRY_KEYS",
    "MAX_DESCRIPTORS",
    "MAX_ENTRIES",
    "MAX_ROLES",
    "MAX_VALUE_LENGTH",
    "SERVICE_NAME",
    "DescriptorCheck",
    "EnvoyRateLimitServicer",
    "Field",
    "Limits",
    "check_request",
    "current_limit",
    "descriptor_check",
    "descriptor_status",
    "domain_environment",
    "rate_limit_headers",
    "rate_limit_response",
    "register",
]
