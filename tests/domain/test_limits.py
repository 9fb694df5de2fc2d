"""Which rate limit applies to a request: scopes, patterns, exemptions, inheritance,
priority; and what a definition must be before it is saved."""

from __future__ import annotations

import pytest

from switchyard.domain.errors import InvalidArgument
from switchyard.domain.limits import (
    Algorithm,
    LimitAction,
    RateLimit,
    ScopeType,
    Subject,
    applies,
    by_priority,
    check_limit,
    check_resolved,
    glob_matches,
    inheritance_cycle,
    ip_matches,
    is_exempt,
    limit_document,
    limit_from_document,
    resolve_inheritance,
    scope_value,
)

ALICE = Subject(
    user_id="alice",
    roles=("admin", "beta"),
    ip="10.1.2.3",
    api_key="key-1",
    endpoint="/api/orders/42",
    method="POST",
    service="checkout",
    environment="production",
)


def limit(key: str = "api", **fields: object) -> RateLimit:
    values: dict[str, object] = {"max_requests": 10, "time_window_seconds": 60, **fields}
    return RateLimit(key=key, name=key, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scope", "pattern", "expected"),
    [
        (ScopeType.GLOBAL, None, ""),
        (ScopeType.USER, None, "alice"),
        (ScopeType.USER, "a*", "alice"),
        (ScopeType.USER, "bob,carol", None),
        (ScopeType.ROLE, "bet?", "beta"),
        (ScopeType.ROLE, "viewer", None),
        (ScopeType.IP, "10.0.0.0/8", "10.1.2.3"),
        (ScopeType.IP, "192.168.0.0/16, 10.1.2.3", "10.1.2.3"),
        (ScopeType.IP, "192.168.0.0/16", None),
        (ScopeType.API_KEY, "key-*", "key-1"),
        (ScopeType.ENDPOINT, "/api/*", "/api/orders/42"),
        (ScopeType.ENDPOINT, "/api/users/*", None),
        (ScopeType.SERVICE, "check*", "checkout"),
    ],
)
def test_each_scope_counts_its_own_value(
    scope: ScopeType, pattern: str | None, expected: str | None
) -> None:
    assert scope_value(limit(scope_type=scope, scope_pattern=pattern), ALICE) == expected


def test_a_scope_the_subject_does_not_have_does_not_apply() -> None:
    anonymous = Subject(endpoint="/x")

    assert not applies(limit(scope_type=ScopeType.USER), anonymous)
    assert not applies(limit(scope_type=ScopeType.IP), anonymous)
    assert applies(limit(scope_type=ScopeType.GLOBAL), anonymous)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, True),
        ({"is_active": False}, False),
        ({"environment": "production"}, True),
        ({"environment": "staging"}, False),
        ({"http_methods": ("GET", "POST")}, True),
        ({"http_methods": ("GET",)}, False),
        ({"applies_to": "/api/orders/*"}, True),
        ({"applies_to": "/admin/*,/static/*"}, False),
    ],
)
def test_environment_methods_and_endpoints(fields: dict[str, object], expected: bool) -> None:
    assert applies(limit(**fields), ALICE) is expected


def test_globs_and_cidr_ranges() -> None:
    assert glob_matches("/api/*", "/api/a/b/c")  # * crosses slashes
    assert not glob_matches("/API/*", "/api/x")  # case matters
    assert glob_matches(None, "anything") and glob_matches("", "anything")
    assert ip_matches("2001:db8::/32", "2001:db8::1")
    assert not ip_matches("10.0.0.0/8", "not an ip")
    assert ip_matches(["127.0.0.1", "10.0.0.0/8"], "10.9.9.9")


@pytest.mark.parametrize(
    "fields",
    [
        {"exempt_users": ("alice",)},
        {"exempt_roles": ("admin",)},
        {"exempt_api_keys": ("key-1",)},
        {"exempt_ips": ("10.0.0.0/8",)},
    ],
)
def test_each_kind_of_exemption(fields: dict[str, object]) -> None:
    assert is_exempt(limit(**fields), ALICE)
    assert not is_exempt(limit(**fields), Subject(user_id="bob", ip="192.168.1.1"))


def test_the_highest_priority_wins_and_ties_go_by_key() -> None:
    ordered = by_priority(
        [limit("b", priority=100), limit("a", priority=100), limit("z", priority=500)]
    )

    assert [item.key for item in ordered] == ["z", "a", "b"]


def test_inheritance_fills_what_a_child_leaves_unset_up_the_chain() -> None:
    grandparent = limit("base", max_requests=100, time_window_seconds=3600, exempt_roles=("ops",))
    parent = limit("api", max_requests=0, time_window_seconds=60, inherit_from="base")
    child = limit(
        "orders", max_requests=0, time_window_seconds=0, inherit_from="api", applies_to="/o/*"
    )
    family = {item.key: item for item in (grandparent, parent, child)}

    resolved = resolve_inheritance(child, family)

    assert (resolved.max_requests, resolved.time_window_seconds) == (100, 60)
    assert resolved.exempt_roles == ("ops",) and resolved.applies_to == "/o/*"


def test_an_inheritance_cycle_is_spelled_out() -> None:
    a = limit("a", inherit_from="b")
    b = limit("b", inherit_from="a")

    assert inheritance_cycle(a, {"a": a, "b": b}) == ["a", "b", "a"]
    assert inheritance_cycle(limit("c", inherit_from="a"), {"a": a}) == []


@pytest.mark.parametrize(
    ("fields", "algorithm"),
    [
        ({}, Algorithm.SLIDING_WINDOW),
        ({"sliding_window": False}, Algorithm.FIXED_WINDOW),
        ({"burst_size": 5}, Algorithm.TOKEN_BUCKET),
        ({"burst_size": 5, "sliding_window": False}, Algorithm.TOKEN_BUCKET),
    ],
)
def test_the_algorithm_follows_the_definition(
    fields: dict[str, object], algorithm: Algorithm
) -> None:
    assert limit(**fields).algorithm is algorithm


def test_every_problem_of_a_definition_is_named_at_once() -> None:
    bad = limit(
        key="Bad Key",
        max_requests=-1,
        scope_type=ScopeType.IP,
        scope_pattern="10.0.0.0/33",
        exempt_ips=("nope",),
        http_methods=("FETCH",),
        action_on_limit=LimitAction.QUEUE,
        redirect_url="not a url",
        alert_threshold_percentage=0,
    )

    with pytest.raises(InvalidArgument) as raised:
        check_limit(bad)

    fields = {v.field for v in raised.value.violations}
    assert {
        "rate_limit.key",
        "rate_limit.max_requests",
        "rate_limit.scope_pattern",
        "rate_limit.exempt_ips",
        "rate_limit.http_methods",
        "rate_limit.queue_size",
        "rate_limit.redirect_url",
        "rate_limit.alert_threshold_percentage",
    } <= fields


def test_a_resolved_limit_must_count_something() -> None:
    with pytest.raises(InvalidArgument, match="max_requests"):
        check_resolved(limit(max_requests=0))
    with pytest.raises(InvalidArgument, match="sliding window"):
        check_resolved(limit(max_requests=1_000_000))
    check_resolved(limit(max_requests=1_000_000, sliding_window=False))


def test_a_definition_survives_its_history_document() -> None:
    full = limit(
        burst_size=5,
        http_methods=("GET",),
        exempt_ips=("10.0.0.0/8",),
        scope_type=ScopeType.ROLE,
        action_on_limit=LimitAction.THROTTLE,
        inherit_from="base",
        environment="staging",
    )

    assert limit_from_document(limit_document(full)) == full


@pytest.mark.parametrize(
    ("field", "width", "text"),
    [
        ("applies_to", 500, "[z-a]" * 101),  # globs that do not compile, were they read
        ("scope_pattern", 255, "[z-a]" * 52),
        ("redirect_url", 500, "no url " * 72),
    ],
)
def test_a_pattern_too_long_for_its_column_is_refused_for_its_length_alone(
    field: str, width: int, text: str
) -> None:
    """Not parsed as well: translating a megabyte of glob held the server for a second
    (found by the fuzz suite; Python's glob translation is quadratic in runs of `[`)."""
    with pytest.raises(InvalidArgument) as raised:
        check_limit(limit(**{field: text}))
    assert [(v.field, v.description) for v in raised.value.violations] == [
        (f"rate_limit.{field}", f"must be at most {width} characters")
    ]
