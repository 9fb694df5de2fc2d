"""Envoy's rate-limit protocol, mapped both ways without a server: descriptors to the
subject, limit and hits RateLimitService.check is asked, and decisions to the statuses,
codes and headers Envoy acts on. The servicer is driven over a recording checker, so
that what each descriptor asks is visible; tests/e2e/test_envoy.py runs a real Envoy."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2  # type: ignore[import-untyped]
from envoy.service.ratelimit.v3 import rls_pb2  # type: ignore[import-untyped]
from google.protobuf import wrappers_pb2

import switchyard.app
from switchyard.api import envoy
from switchyard.api.envoy import (
    ENTRY_KEYS,
    MAX_DESCRIPTORS,
    MAX_ENTRIES,
    MAX_ROLES,
    MAX_VALUE_LENGTH,
    DescriptorCheck,
    EnvoyRateLimitServicer,
    Field,
    descriptor_check,
    domain_environment,
    rate_limit_headers,
    rate_limit_response,
)
from switchyard.domain.errors import InvalidArgument, NotFound
from switchyard.domain.limits import Decision, LimitAction, Subject

Code = rls_pb2.RateLimitResponse.Code
Unit = rls_pb2.RateLimitResponse.RateLimit.Unit
Descriptor = ratelimit_pb2.RateLimitDescriptor


def descriptor(*entries: tuple[str, str], hits: int | None = None) -> Any:
    message = Descriptor(entries=[Descriptor.Entry(key=k, value=v) for k, v in entries])
    if hits is not None:
        message.hits_addend.CopyFrom(wrappers_pb2.UInt64Value(value=hits))
    return message


def checked(*entries: tuple[str, str], environment: str = "production", hits: int = 0) -> Any:
    check = descriptor_check(descriptor(*entries), environment=environment, request_hits=hits)
    assert check is not None
    return check


def decision(**fields: Any) -> Decision:
    values: dict[str, Any] = {
        "allowed": True,
        "limit_key": "edge",
        "limit": 3,
        "remaining": 2,
        "reset_after": 59.2,
        "window_seconds": 60,
        **fields,
    }
    return Decision(**values)


def headers(response: Any) -> dict[str, str]:
    return {header.key: header.value for header in response.response_headers_to_add}


# --- descriptors -> check --------------------------------------------------------------


def test_the_service_is_envoys_v3_rate_limit_service_and_imports_beside_switchyard() -> None:
    assert envoy.SERVICE_NAME == "envoy.service.ratelimit.v3.RateLimitService"
    assert switchyard.app.Application is not None  # both descriptor sets in one pool


def test_generic_key_names_the_limit_and_remote_address_the_ip() -> None:
    check = checked(("generic_key", "edge"), ("remote_address", "203.0.113.7"))

    assert check == DescriptorCheck(
        Subject(ip="203.0.113.7", environment="production"), limit_key="edge", hits=1
    )


def test_without_generic_key_the_subject_alone_is_checked() -> None:
    check = checked(("x-user-id", "alice"))

    assert check.limit_key is None and check.subject.user_id == "alice"


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("user_id", "user_id"),
        ("x-user-id", "user_id"),
        ("api_key", "api_key"),
        ("x-api-key", "api_key"),
        ("path", "endpoint"),
        (":path", "endpoint"),
        ("method", "method"),
        (":method", "method"),
        ("service", "service"),
        ("destination_cluster", "service"),
        ("remote_address", "ip"),
    ],
)
def test_each_documented_entry_key_sets_its_subject_field(key: str, field: str) -> None:
    subject = checked((key, "v1")).subject

    assert getattr(subject, field) == "v1"
    others = {"user_id", "api_key", "endpoint", "method", "service", "ip"} - {field}
    assert all(getattr(subject, other) == "" for other in others)


def test_the_table_is_the_documented_one() -> None:
    assert set(ENTRY_KEYS) == {
        "generic_key",
        "remote_address",
        "user_id",
        "x-user-id",
        "api_key",
        "x-api-key",
        "role",
        "x-user-role",
        "path",
        ":path",
        "method",
        ":method",
        "service",
        "destination_cluster",
    }
    assert ENTRY_KEYS["generic_key"] is Field.LIMIT_KEY
    assert all(key == key.lower() for key in ENTRY_KEYS)


def test_roles_add_up_split_on_commas_once_each() -> None:
    subject = checked(("role", "admin, editor"), ("x-user-role", "viewer"), ("role", "admin"))

    assert subject.subject.roles == ("admin", "editor", "viewer")


def test_keys_are_read_in_lower_case_and_the_first_of_a_key_counts() -> None:
    check = checked(("X-User-Id", "alice"), ("user_id", "bob"), ("Generic_Key", "edge"))

    assert check.subject.user_id == "alice" and check.limit_key == "edge"


def test_the_endpoint_is_the_path_without_its_query() -> None:
    assert checked((":path", "/api/orders?page=2")).subject.endpoint == "/api/orders"


def test_unknown_keys_are_ignored() -> None:
    check = checked(
        ("header_match", "yes"),
        ("masked_remote_address", "10.0.0.0/24"),
        ("source_cluster", "front"),
        ("tenant", "acme"),
        ("remote_address", "10.0.0.1"),
    )

    assert check.subject == Subject(ip="10.0.0.1", environment="production")
    assert check.limit_key is None


def test_a_descriptor_without_any_known_key_is_not_for_switchyard() -> None:
    unknown = descriptor(("header_match", "yes"), ("tenant", "acme"))
    empty_values = descriptor(("generic_key", ""))

    assert descriptor_check(unknown, environment="production", request_hits=1) is None
    assert descriptor_check(empty_values, environment="production", request_hits=1) is None


@pytest.mark.parametrize(
    ("request_hits", "descriptor_hits", "expected"),
    [(0, None, 1), (1, None, 1), (5, None, 5), (5, 7, 7), (0, 7, 7), (5, 0, 5)],
)
def test_hits_come_from_the_descriptor_then_the_request_and_zero_means_one(
    request_hits: int, descriptor_hits: int | None, expected: int
) -> None:
    message = descriptor(("generic_key", "edge"), hits=descriptor_hits)

    check = descriptor_check(message, environment="", request_hits=request_hits)

    assert check is not None and check.hits == expected


@pytest.mark.parametrize(
    ("domain", "environment"),
    [("production", "production"), ("staging-eu", "staging-eu"), ("Edge.Proxy", ""), ("", "")],
)
def test_the_domain_is_the_environment_when_it_is_an_environment_name(
    domain: str, environment: str
) -> None:
    assert domain_environment(domain) == environment


def test_values_are_cut_to_what_check_accepts() -> None:
    roles = ",".join(f"r{n}" for n in range(MAX_ROLES + 20))
    check = checked((":path", "/" + "a" * 5000), ("role", roles), ("x-api-key", "k" * 3000))

    assert len(check.subject.endpoint) == MAX_VALUE_LENGTH
    assert len(check.subject.api_key) == MAX_VALUE_LENGTH
    assert len(check.subject.roles) == MAX_ROLES


# --- decisions -> response --------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "unit"),
    [
        (1, Unit.SECOND),
        (60, Unit.MINUTE),
        (3600, Unit.HOUR),
        (86_400, Unit.DAY),
        (604_800, Unit.WEEK),
    ],
)
def test_a_window_of_one_unit_is_that_unit(window: int, unit: int) -> None:
    status = rate_limit_response([decision(window_seconds=window)]).statuses[0]

    assert status.current_limit.unit == unit
    assert status.current_limit.requests_per_unit == 3
    assert status.current_limit.name == "edge"


@pytest.mark.parametrize("window", [90, 120, 7200, 2_592_000])
def test_any_other_window_is_unknown_and_the_name_says_it(window: int) -> None:
    limit = rate_limit_response([decision(window_seconds=window)]).statuses[0].current_limit

    assert limit.unit == Unit.UNKNOWN
    assert limit.name == f"edge: 3 per {window}s"


def test_an_allowed_decision_is_ok_with_its_limit_remaining_and_reset() -> None:
    response = rate_limit_response([decision(remaining=2, reset_after=59.25)])

    assert response.overall_code == Code.OK
    status = response.statuses[0]
    assert status.code == Code.OK
    assert status.limit_remaining == 2
    assert status.duration_until_reset.seconds == 59
    assert status.duration_until_reset.nanos == 250_000_000
    assert headers(response) == {
        "x-ratelimit-limit": "3",
        "x-ratelimit-remaining": "2",
        "x-ratelimit-reset": "60",
    }
    assert not response.raw_body


def test_a_denial_is_over_limit_with_retry_after_and_its_message_as_the_body() -> None:
    denied = decision(
        allowed=False,
        remaining=0,
        retry_after=12.1,
        over_limit=True,
        action=LimitAction.BLOCK,
        custom_error_message="slow down",
    )

    response = rate_limit_response([denied])

    assert response.overall_code == Code.OVER_LIMIT
    assert response.statuses[0].code == Code.OVER_LIMIT
    assert headers(response)["retry-after"] == "13"
    assert headers(response)["x-ratelimit-remaining"] == "0"
    assert response.raw_body == b"slow down"


def test_a_denial_of_a_limit_without_retry_after_sends_none() -> None:
    response = rate_limit_response([decision(allowed=False, remaining=0, retry_after=None)])

    assert response.overall_code == Code.OVER_LIMIT
    assert "retry-after" not in headers(response)
    assert "x-ratelimit-limit" in headers(response)


@pytest.mark.parametrize("action", [LimitAction.THROTTLE, LimitAction.QUEUE])
def test_allowed_with_a_delay_is_ok_since_envoy_cannot_delay(action: LimitAction) -> None:
    delayed = decision(
        allowed=True, remaining=0, delay=2.5, retry_after=2.5, over_limit=True, action=action
    )

    response = rate_limit_response([delayed])

    assert response.overall_code == Code.OK
    assert "retry-after" not in headers(response)


def test_action_log_over_the_limit_is_ok() -> None:
    logged = decision(allowed=True, remaining=0, over_limit=True, action=LimitAction.LOG)

    assert rate_limit_response([logged]).overall_code == Code.OK


def test_an_exemption_is_ok_with_no_limit_and_no_headers() -> None:
    response = rate_limit_response([Decision(allowed=True, exempt=True, limit_key="edge")])

    assert response.overall_code == Code.OK
    assert not response.statuses[0].HasField("current_limit")
    assert headers(response) == {}


def test_degraded_fail_open_is_ok_with_no_limit_and_fail_closed_is_over() -> None:
    fail_open = decision(allowed=True, degraded=True, remaining=0, reset_after=0.0)
    fail_closed = decision(allowed=False, degraded=True, remaining=0, reset_after=0.0)

    opened = rate_limit_response([fail_open])
    closed = rate_limit_response([fail_closed])

    assert opened.overall_code == Code.OK
    assert not opened.statuses[0].HasField("current_limit") and headers(opened) == {}
    assert closed.overall_code == Code.OVER_LIMIT


def test_no_limit_and_the_default() -> None:
    nothing = rate_limit_response([Decision(allowed=True, default_applied=True)])
    default = rate_limit_response(
        [decision(limit_key="", default_applied=True, limit=1000, window_seconds=3600)]
    )

    assert nothing.overall_code == Code.OK and headers(nothing) == {}
    assert not nothing.statuses[0].HasField("current_limit")
    limit = default.statuses[0].current_limit
    assert (limit.name, limit.requests_per_unit, limit.unit) == ("default", 1000, Unit.HOUR)


def test_several_descriptors_answer_in_order_and_any_denial_makes_the_request_over() -> None:
    statuses = [decision(remaining=5), None, decision(allowed=False, remaining=0, limit=10)]

    response = rate_limit_response(statuses)

    assert [s.code for s in response.statuses] == [Code.OK, Code.OK, Code.OVER_LIMIT]
    assert response.overall_code == Code.OVER_LIMIT
    assert headers(response)["x-ratelimit-limit"] == "10"


def test_the_headers_tell_of_the_fewest_remaining_when_all_are_allowed() -> None:
    chosen = rate_limit_headers(
        [
            decision(limit_key="a", limit=100, remaining=40),
            decision(limit_key="b", limit=10, remaining=1, reset_after=5.0),
            None,
        ]
    )

    assert {h.key: h.value for h in chosen} == {
        "x-ratelimit-limit": "10",
        "x-ratelimit-remaining": "1",
        "x-ratelimit-reset": "5",
    }


def test_the_headers_tell_of_the_longest_wait_among_denials() -> None:
    short = decision(allowed=False, limit=5, remaining=0, retry_after=1.0, reset_after=1.0)
    long = decision(allowed=False, limit=50, remaining=0, retry_after=30.0, reset_after=30.0)

    chosen = {h.key: h.value for h in rate_limit_headers([short, long])}

    assert chosen["x-ratelimit-limit"] == "50" and chosen["retry-after"] == "30"


def test_numbers_beyond_uint32_are_capped() -> None:
    status = rate_limit_response([decision(limit=2**40, remaining=2**40)]).statuses[0]

    assert status.current_limit.requests_per_unit == 2**32 - 1
    assert status.limit_remaining == 2**32 - 1


# --- the servicer -----------------------------------------------------------------------


class Recording:
    """A checker that answers from a script and remembers what it was asked."""

    def __init__(self, *answers: Decision | Exception) -> None:
        self.answers = list(answers)
        self.asked: list[DescriptorCheck] = []

    async def check(
        self, subject: Subject, *, hits: int = 1, limit_key: str | None = None
    ) -> tuple[Decision, int]:
        self.asked.append(DescriptorCheck(subject, limit_key, hits))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer, 7


def request(*descriptors: Any, domain: str = "production", hits: int = 0) -> Any:
    return rls_pb2.RateLimitRequest(domain=domain, descriptors=descriptors, hits_addend=hits)


async def should_rate_limit(limits: Recording, message: Any) -> Any:
    context: Any = None  # not read
    return await EnvoyRateLimitServicer(limits).ShouldRateLimit(message, context)


async def test_each_descriptor_is_checked_on_its_own() -> None:
    limits = Recording(decision(remaining=1), decision(allowed=False, remaining=0))
    message = request(
        descriptor(("generic_key", "edge"), ("remote_address", "10.0.0.1")),
        descriptor(("header_match", "yes")),
        descriptor(("x-user-id", "alice"), (":method", "POST"), hits=4),
        hits=2,
    )

    response = await should_rate_limit(limits, message)

    assert limits.asked == [
        DescriptorCheck(Subject(ip="10.0.0.1", environment="production"), "edge", 2),
        DescriptorCheck(Subject(user_id="alice", method="POST", environment="production"), None, 4),
    ]
    assert [s.code for s in response.statuses] == [Code.OK, Code.OK, Code.OVER_LIMIT]
    assert response.overall_code == Code.OVER_LIMIT


async def test_a_limit_that_does_not_exist_yet_is_ok_and_the_rest_still_count() -> None:
    limits = Recording(NotFound("rate limit 'later' not found"), decision(remaining=0))
    message = request(descriptor(("generic_key", "later")), descriptor(("generic_key", "edge")))

    response = await should_rate_limit(limits, message)

    assert [s.code for s in response.statuses] == [Code.OK, Code.OK]
    assert not response.statuses[0].HasField("current_limit")
    assert response.statuses[1].current_limit.name == "edge"


async def test_bad_input_fails_the_call_for_the_interceptor_to_map() -> None:
    limits = Recording(InvalidArgument.field("limit_key", "is not a key"))

    with pytest.raises(InvalidArgument):
        await should_rate_limit(limits, request(descriptor(("generic_key", "Not A Key"))))


async def test_a_request_of_no_known_descriptor_checks_nothing() -> None:
    limits = Recording()

    response = await should_rate_limit(limits, request(descriptor(("tenant", "acme"))))

    assert limits.asked == [] and response.overall_code == Code.OK


async def test_more_descriptors_or_entries_than_envoy_makes_are_refused_before_any_check() -> None:
    """Each descriptor is decided in turn: 20,000 in one request held the server for half
    a second (found by `make fuzz`). Envoy makes one per matching `rate_limits` entry."""
    limits = Recording()
    crowded = request(*[descriptor(("generic_key", "edge"))] * (MAX_DESCRIPTORS + 1))
    wide = request(descriptor(*[("x-tag", "t")] * (MAX_ENTRIES + 1)))

    for message, field in ((crowded, "descriptors"), (wide, "descriptors[0].entries")):
        with pytest.raises(InvalidArgument) as raised:
            await should_rate_limit(limits, message)
        assert [v.field for v in raised.value.violations] == [field]
    assert limits.asked == []

    at_most = Recording(*[decision(remaining=5)] * MAX_DESCRIPTORS)
    response = await should_rate_limit(
        at_most, request(*[descriptor(("generic_key", "edge"))] * MAX_DESCRIPTORS)
    )
    assert len(response.statuses) == MAX_DESCRIPTORS
