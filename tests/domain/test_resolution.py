"""Which layer answers a read: overrides along the chain, then base, then default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchyard.domain.environments import ancestry
from switchyard.domain.models import (
    ConfigDefinition,
    ConfigType,
    Environment,
    Override,
    ValueSource,
)
from switchyard.domain.resolution import next_expiry, resolve

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SOON = NOW + timedelta(minutes=5)
PAST = NOW - timedelta(seconds=1)
KEY = ConfigDefinition(
    key="api.timeout",
    type=ConfigType.NUMBER,
    category="api",
    value=30,
    default_value=10,
    version=7,
    requires_restart=True,
)
ENVIRONMENTS = [
    Environment("development"),
    Environment("production"),
    Environment("demo", parent="production"),
]


def override(environment: str, value: Any, priority: int = 100, **fields: Any) -> Override:
    return Override(
        key="api.timeout", environment=environment, value=value, priority=priority, **fields
    )


def test_override_beats_base() -> None:
    resolved = resolve(KEY, [override("production", 60, expires_at=SOON)], ["production"], NOW)
    assert (resolved.value, resolved.source) == (60, ValueSource.OVERRIDE)
    assert resolved.source_environment == "production"
    assert resolved.expires_at == SOON
    assert (resolved.key, resolved.type) == ("api.timeout", ConfigType.NUMBER)
    assert (resolved.version, resolved.requires_restart) == (7, True)


def test_another_environments_override_does_not_answer() -> None:
    resolved = resolve(KEY, [override("production", 60)], ["development"], NOW)
    assert (resolved.value, resolved.source, resolved.source_environment) == (
        30,
        ValueSource.BASE,
        None,
    )


def test_base_layer_read_ignores_every_override() -> None:
    resolved = resolve(KEY, [override("production", 60)], [], NOW)
    assert (resolved.value, resolved.source) == (30, ValueSource.BASE)


def test_default_then_none() -> None:
    no_base = ConfigDefinition(key="k", type=ConfigType.NUMBER, category="c", default_value=10)
    resolved = resolve(no_base, [], ["production"], NOW)
    assert (resolved.value, resolved.source) == (10, ValueSource.DEFAULT)
    empty = ConfigDefinition(key="k", type=ConfigType.NUMBER, category="c")
    resolved = resolve(empty, [], ["production"], NOW)
    assert (resolved.value, resolved.source, resolved.expires_at) == (None, ValueSource.NONE, None)


def test_a_false_or_zero_base_value_still_answers() -> None:
    zero = ConfigDefinition(key="k", type=ConfigType.NUMBER, category="c", value=0, default_value=5)
    assert resolve(zero, [], [], NOW).source is ValueSource.BASE
    off = ConfigDefinition(
        key="k", type=ConfigType.BOOLEAN, category="c", value=False, default_value=True
    )
    assert resolve(off, [], [], NOW).value is False


def test_highest_priority_applying_override_wins() -> None:
    overrides = [
        override("production", 60),
        override("production", 90, priority=200, expires_at=PAST),
        override("production", 70, priority=150, is_active=False),
        override("production", 80, priority=120),
    ]
    assert resolve(KEY, overrides, ["production"], NOW).value == 80


@pytest.mark.parametrize(
    "skipped",
    [
        override("production", 99, expires_at=PAST),
        override("production", 99, expires_at=NOW),  # expiry is exclusive
        override("production", 99, is_active=False),
        override("production", 99, is_active=False, expires_at=SOON),
    ],
)
def test_expired_and_inactive_overrides_are_skipped(skipped: Override) -> None:
    resolved = resolve(KEY, [skipped], ["production"], NOW)
    assert (resolved.value, resolved.source) == (30, ValueSource.BASE)


def test_equal_priorities_prefer_the_latest_write() -> None:
    older = override("production", 1, updated_at=NOW - timedelta(hours=1), id="z")
    newer = override("production", 2, updated_at=NOW - timedelta(minutes=1), id="a")
    assert resolve(KEY, [older, newer], ["production"], NOW).value == 2
    assert resolve(KEY, [newer, older], ["production"], NOW).value == 2


def test_inheritance_names_the_answering_layer() -> None:
    chain = ancestry(ENVIRONMENTS, "demo")
    resolved = resolve(KEY, [override("production", 60)], chain, NOW)
    assert chain == ["demo", "production"]
    assert resolved.source is ValueSource.INHERITED_OVERRIDE
    assert resolved.source_environment == "production"
    assert resolved.value == 60


def test_nearest_layer_wins_whatever_the_priority() -> None:
    overrides = [override("production", 60, priority=9999), override("demo", 45, priority=1)]
    resolved = resolve(KEY, overrides, ["demo", "production"], NOW)
    assert (resolved.value, resolved.source, resolved.source_environment) == (
        45,
        ValueSource.OVERRIDE,
        "demo",
    )


def test_expired_child_override_falls_back_to_the_parent() -> None:
    overrides = [override("demo", 45, expires_at=PAST), override("production", 60)]
    resolved = resolve(KEY, overrides, ["demo", "production"], NOW)
    assert (resolved.value, resolved.source_environment) == (60, "production")


def test_null_override_falls_through() -> None:
    resolved = resolve(KEY, [override("production", None)], ["production"], NOW)
    assert resolved.source is ValueSource.BASE
    overrides = [override("demo", None, priority=500), override("production", 60)]
    resolved = resolve(KEY, overrides, ["demo", "production"], NOW)
    assert (resolved.value, resolved.source) == (60, ValueSource.INHERITED_OVERRIDE)


def test_a_null_top_priority_override_lets_a_lower_one_answer() -> None:
    overrides = [override("production", None, priority=500), override("production", 60)]
    assert resolve(KEY, overrides, ["production"], NOW).value == 60


def test_next_expiry_is_the_earliest_future_one_in_the_chain() -> None:
    overrides = [
        override("production", 1, expires_at=NOW + timedelta(minutes=5)),
        override("production", 2, priority=5, expires_at=NOW + timedelta(minutes=1)),
        override("development", 3, expires_at=NOW + timedelta(seconds=1)),  # not in chain
        override("production", 4, priority=6, expires_at=PAST),  # gone already
        override("demo", 5, is_active=False, expires_at=NOW + timedelta(seconds=2)),  # inactive
        override("demo", 6),  # never expires
    ]
    assert next_expiry(overrides, ["demo", "production"], NOW) == NOW + timedelta(minutes=1)
    assert next_expiry([], ["production"], NOW) is None
    assert next_expiry(overrides, [], NOW) is None


overrides_strategy = st.lists(
    st.builds(
        override,
        environment=st.sampled_from(["demo", "production", "development"]),
        value=st.none() | st.integers(0, 1000),
        priority=st.integers(0, 300),
        is_active=st.booleans(),
        expires_at=st.none() | st.integers(-100, 100).map(lambda s: NOW + timedelta(seconds=s)),
    ),
    max_size=10,
)


@given(overrides_strategy)
def test_resolve_never_answers_with_an_expired_or_inactive_override(
    overrides: list[Override],
) -> None:
    resolved = resolve(KEY, overrides, ["demo", "production"], NOW)
    if resolved.source in (ValueSource.OVERRIDE, ValueSource.INHERITED_OVERRIDE):
        answering = [
            o
            for o in overrides
            if o.environment == resolved.source_environment and o.value == resolved.value
        ]
        assert any(o.applies_at(NOW) for o in answering)
        assert resolved.expires_at is None or resolved.expires_at > NOW
        assert resolved.value is not None
    else:
        assert not any(
            o.applies_at(NOW) and o.value is not None and o.environment != "development"
            for o in overrides
        )


@given(overrides_strategy)
def test_the_answer_holds_until_next_expiry(overrides: list[Override]) -> None:
    """Nothing changes between now and the next expiry: caching until then is safe."""
    chain = ["demo", "production"]
    until = next_expiry(overrides, chain, NOW)
    later = (until - timedelta(microseconds=1)) if until else NOW + timedelta(days=365)
    assert resolve(KEY, overrides, chain, later) == resolve(KEY, overrides, chain, NOW)
