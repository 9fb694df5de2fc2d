"""The storage contract of rate limits, checked against every backend through the same
ports the service layer uses."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from switchyard.domain.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from switchyard.domain.limits import LimitAction, RateLimit, RateLimitQuery, ScopeType
from switchyard.domain.models import PageRequest
from switchyard.store import SqlStore
from switchyard.store.sql import REGISTRY

NOW = datetime(2026, 11, 25, 9, 30, 15, 123456, tzinfo=UTC)


def limit(key: str, **fields: object) -> RateLimit:
    values: dict[str, object] = {
        "name": f"Limit {key}",
        "max_requests": 100,
        "time_window_seconds": 60,
        "id": str(uuid.uuid4()),
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(fields)
    return RateLimit(key=key, **values)  # type: ignore[arg-type]


async def create(store: SqlStore, *limits: RateLimit) -> None:
    async with store.transaction() as tx:
        for each in limits:
            await tx.limits.create_limit(each)


async def read(store: SqlStore, key: str) -> RateLimit:
    async with store.read() as reader:
        return await reader.limits.get_limit(key)


async def raw(store: SqlStore, statement: str) -> None:
    """A statement outside the registry, as a person at a SQL prompt would run it."""
    async with store.transaction() as tx:
        await tx.connection.execute_ddl(statement)


def test_every_limit_statement_is_registered_for_the_oracle_grammar_check() -> None:
    names = {sql.name for sql in REGISTRY}

    assert {
        "find_limit",
        "all_limits",
        "list_limits",
        "insert_limit",
        "update_limit",
        "delete_limit",
        "record_triggers",
    } <= names


# --- definitions -------------------------------------------------------------------------


async def test_a_limit_round_trips_every_field(store: SqlStore) -> None:
    original = limit(
        "api.search",
        name="Search ✓",
        description="Ünïcode and a long text " + "d" * 450,
        max_requests=5000,
        time_window_seconds=3600,
        burst_size=250,
        queue_size=40,
        scope_type=ScopeType.ENDPOINT,
        scope_pattern="/api/v1/search*, /api/v2/search*",
        applies_to="/api/*",
        http_methods=("GET", "POST", "DELETE"),
        action_on_limit=LimitAction.QUEUE,
        block_duration_seconds=300,
        retry_after_header=False,
        custom_error_message="Slow down, ünïcode included",
        redirect_url="https://status.example.com/limits",
        exempt_roles=("admin", "sre"),
        exempt_users=("u-1",),
        exempt_ips=("10.0.0.0/8", "::1"),
        exempt_api_keys=("key-a", "key-b", "key-c"),
        sliding_window=False,
        distributed=False,
        fail_closed=True,
        inherit_from="api.default",
        is_active=False,
        priority=-99999,
        environment="staging",
        track_metrics=False,
        alert_threshold_percentage=95,
        version=7,
        trigger_count=42,
        last_triggered=NOW - timedelta(seconds=5),
    )
    await create(store, original)

    found = await read(store, "api.search")

    assert found == original
    moments = [found.last_triggered, found.created_at, found.updated_at]
    assert all(moment is not None and moment.tzinfo == UTC for moment in moments)


async def test_a_limit_of_defaults_round_trips(store: SqlStore) -> None:
    original = RateLimit(key="plain", name="Plain", id=str(uuid.uuid4()), created_at=NOW)
    await create(store, original)

    found = await read(store, "plain")

    assert found == replace(original, updated_at=found.updated_at)
    assert (found.burst_size, found.http_methods, found.environment, found.exempt_ips) == (
        None,
        (),
        None,
        (),
    )


async def test_a_limit_not_stamped_by_its_caller_is_stamped_now(store: SqlStore) -> None:
    await create(store, limit("unstamped", created_at=None, updated_at=None))

    found = await read(store, "unstamped")

    assert found.created_at is not None and found.updated_at is not None
    assert abs(found.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert abs(found.updated_at - datetime.now(UTC)) < timedelta(minutes=1)


@pytest.mark.parametrize(
    "methods", [(), ("GET",), ("POST", "GET"), ("GET", "HEAD", "POST", "PUT", "PATCH")]
)
async def test_http_methods_round_trip_in_their_order(
    store: SqlStore, methods: tuple[str, ...]
) -> None:
    await create(store, limit("methods", http_methods=methods))

    assert (await read(store, "methods")).http_methods == methods


async def test_nothing_empty_is_stored_but_null(store: SqlStore) -> None:
    await create(store, limit("bare"))
    # Touches the row only where every list column holds NULL, not '' nor '[]'.
    await raw(
        store,
        "UPDATE pf_rate_limits SET priority = 7 WHERE limit_key = 'bare'"
        " AND http_methods IS NULL AND exempt_roles IS NULL AND exempt_users IS NULL"
        " AND exempt_ips IS NULL AND exempt_api_keys IS NULL",
    )

    assert (await read(store, "bare")).priority == 7


async def test_lists_written_by_hand_read_as_the_service_writes_them(store: SqlStore) -> None:
    await create(store, limit("by-hand"))
    await raw(
        store,
        "UPDATE pf_rate_limits SET http_methods = ' GET , POST,', exempt_roles = '[]',"
        " exempt_users = '[]', exempt_ips = '[]', exempt_api_keys = '[]'"
        " WHERE limit_key = 'by-hand'",
    )

    found = await read(store, "by-hand")

    assert found == limit("by-hand", id=found.id, http_methods=("GET", "POST"))


async def test_missing_limits(store: SqlStore) -> None:
    async with store.read() as reader:
        assert await reader.limits.find_limit("no.such") is None
        with pytest.raises(NotFound, match=r"'no\.such'"):
            await reader.limits.get_limit("no.such")


async def test_a_taken_key_is_already_exists(store: SqlStore) -> None:
    await create(store, limit("taken"))

    with pytest.raises(AlreadyExists, match="'taken'"):
        await create(store, limit("taken"))


async def test_all_limits_holds_every_limit_in_key_order(store: SqlStore) -> None:
    await create(store, limit("b"), limit("c", is_active=False), limit("a", priority=1))

    async with store.read() as reader:
        everything = await reader.limits.all_limits()

    assert [each.key for each in everything] == ["a", "b", "c"]


async def test_list_limits_filters_and_pages_in_key_order(store: SqlStore) -> None:
    await create(
        store,
        limit("l.a", scope_type=ScopeType.USER, environment="production"),
        limit("l.b", scope_type=ScopeType.IP, environment="production"),
        limit("l.c", scope_type=ScopeType.USER, environment="staging"),
        limit("l.d", scope_type=ScopeType.USER),
        limit("l.e", scope_type=ScopeType.USER, environment="production", is_active=False),
        limit("l.f"),
    )

    async def keys(query: RateLimitQuery, size: int = 100) -> list[list[str]]:
        pages, cursor = [], None
        while True:
            async with store.read() as reader:
                page = await reader.limits.list_limits(query, PageRequest(size, cursor))
            pages.append([each.key for each in page.items])
            cursor = page.next_cursor
            if cursor is None:
                return pages

    assert await keys(RateLimitQuery()) == [["l.a", "l.b", "l.c", "l.d", "l.f"]]
    assert await keys(RateLimitQuery(include_inactive=True)) == [
        ["l.a", "l.b", "l.c", "l.d", "l.e", "l.f"]
    ]
    assert await keys(RateLimitQuery(scope_type=ScopeType.USER)) == [["l.a", "l.c", "l.d"]]
    assert await keys(RateLimitQuery(scope_type=ScopeType.GLOBAL)) == [["l.f"]]
    assert await keys(RateLimitQuery(environment="production")) == [["l.a", "l.b"]]
    # Exact: a limit of no environment is not one of every environment's here.
    assert await keys(RateLimitQuery(environment="staging")) == [["l.c"]]
    assert await keys(
        RateLimitQuery(scope_type=ScopeType.USER, environment="production", include_inactive=True)
    ) == [["l.a", "l.e"]]
    assert await keys(RateLimitQuery(scope_type=ScopeType.SERVICE)) == [[]]
    assert await keys(RateLimitQuery(environment="nowhere")) == [[]]
    assert await keys(RateLimitQuery(), size=2) == [["l.a", "l.b"], ["l.c", "l.d"], ["l.f"]]
    # A full last page says so: no cursor to a page that would be empty.
    assert await keys(RateLimitQuery(scope_type=ScopeType.USER), size=3) == [["l.a", "l.c", "l.d"]]


@pytest.mark.parametrize("cursor", ["", "Not A Key!", "x" * 101, "a..b"])
async def test_list_limits_refuses_a_cursor_it_did_not_issue(store: SqlStore, cursor: str) -> None:
    async with store.read() as reader:
        with pytest.raises(InvalidArgument) as refused:
            await reader.limits.list_limits(RateLimitQuery(), PageRequest(10, cursor))

    assert [v.field for v in refused.value.violations] == ["page_token"]


async def test_update_is_conditional_on_the_version(store: SqlStore) -> None:
    original = limit("versioned", max_requests=10, version=3)
    await create(store, original)
    later = NOW + timedelta(hours=1)

    async with store.transaction() as tx:
        await tx.limits.update_limit(
            replace(
                original,
                max_requests=20,
                http_methods=("PUT",),
                exempt_users=("u-9",),
                burst_size=5,
                environment="demo",
                version=4,
                updated_at=later,
                created_at=later,  # not a definition column: kept as it was
            ),
            expected_version=3,
        )
    with pytest.raises(Conflict, match="'versioned'") as stale:
        async with store.transaction() as tx:
            await tx.limits.update_limit(
                replace(original, max_requests=30, version=4), expected_version=3
            )
    with pytest.raises(NotFound, match="'gone'"):
        async with store.transaction() as tx:
            await tx.limits.update_limit(limit("gone", version=2), expected_version=1)

    assert stale.value.current_version == 4
    found = await read(store, "versioned")
    assert (
        found.max_requests,
        found.version,
        found.http_methods,
        found.exempt_users,
        found.burst_size,
        found.environment,
    ) == (20, 4, ("PUT",), ("u-9",), 5, "demo")
    assert (found.created_at, found.updated_at) == (NOW, later)


async def test_update_can_empty_what_was_set(store: SqlStore) -> None:
    original = limit(
        "emptied",
        burst_size=10,
        http_methods=("GET",),
        exempt_roles=("admin",),
        environment="test",
        inherit_from="parent",
    )
    await create(store, original)

    async with store.transaction() as tx:
        await tx.limits.update_limit(
            replace(
                original,
                burst_size=None,
                http_methods=(),
                exempt_roles=(),
                environment=None,
                inherit_from=None,
                version=2,
            ),
            expected_version=1,
        )

    assert await read(store, "emptied") == limit("emptied", id=original.id, version=2)


async def test_update_leaves_the_trigger_counters_alone(store: SqlStore) -> None:
    original = limit("counted")
    await create(store, original)
    async with store.transaction() as tx:
        await tx.limits.record_triggers({"counted": (5, NOW)})

    async with store.transaction() as tx:
        await tx.limits.update_limit(
            replace(original, max_requests=1, trigger_count=0, version=2), expected_version=1
        )

    found = await read(store, "counted")
    assert (found.max_requests, found.trigger_count, found.last_triggered) == (1, 5, NOW)


async def test_delete(store: SqlStore) -> None:
    await create(store, limit("doomed"), limit("kept"))

    async with store.transaction() as tx:
        await tx.limits.delete_limit("doomed")
    with pytest.raises(NotFound, match="'doomed'"):
        async with store.transaction() as tx:
            await tx.limits.delete_limit("doomed")

    async with store.read() as reader:
        assert await reader.limits.find_limit("doomed") is None
        assert [each.key for each in await reader.limits.all_limits()] == ["kept"]


# --- the environment -------------------------------------------------------------------------


async def test_a_limit_in_an_environment_that_does_not_exist_is_refused(
    store: SqlStore,
) -> None:
    with pytest.raises(InvalidArgument, match="'nowhere'") as refused:
        await create(store, limit("lost", environment="nowhere"))

    assert [v.field for v in refused.value.violations] == ["rate_limit.environment"]
    async with store.read() as reader:
        assert await reader.limits.find_limit("lost") is None


async def test_an_update_into_an_environment_that_does_not_exist_is_refused(
    store: SqlStore,
) -> None:
    original = limit("moving", environment="staging")
    await create(store, original)

    with pytest.raises(InvalidArgument, match="'nowhere'") as refused:
        async with store.transaction() as tx:
            await tx.limits.update_limit(
                replace(original, environment="nowhere", version=2), expected_version=1
            )

    assert [v.field for v in refused.value.violations] == ["rate_limit.environment"]
    found = await read(store, "moving")
    assert (found.environment, found.version) == ("staging", 1)


async def test_every_seeded_environment_is_one_a_limit_may_name(store: SqlStore) -> None:
    names = ("development", "test", "staging", "production", "demo", "local")
    await create(store, *(limit(f"in.{name}", environment=name) for name in names))

    async with store.read() as reader:
        found = await reader.limits.all_limits()

    assert [each.environment for each in found] == sorted(names)


# --- trigger counters --------------------------------------------------------------------


async def test_triggers_add_up_and_last_triggered_only_moves_forward(store: SqlStore) -> None:
    await create(store, limit("hot", version=3), limit("cold"))
    before = await read(store, "hot")

    async with store.transaction() as tx:
        await tx.limits.record_triggers({"hot": (3, NOW), "gone": (7, NOW)})
    async with store.transaction() as tx:  # a slower replica's older batch
        await tx.limits.record_triggers({"hot": (2, NOW - timedelta(minutes=1))})
    after_older = await read(store, "hot")
    async with store.transaction() as tx:
        await tx.limits.record_triggers({"hot": (1, NOW + timedelta(microseconds=1))})
        await tx.limits.record_triggers({})
    after_newer = await read(store, "hot")

    assert (after_older.trigger_count, after_older.last_triggered) == (5, NOW)
    assert (after_newer.trigger_count, after_newer.last_triggered) == (
        6,
        NOW + timedelta(microseconds=1),
    )
    # Counting is not a change: version and updated_at stay.
    assert replace(after_newer, trigger_count=0, last_triggered=None) == before
    assert (after_newer.version, after_newer.updated_at) == (3, NOW)
    cold = await read(store, "cold")
    assert (cold.trigger_count, cold.last_triggered) == (0, None)
    async with store.read() as reader:
        assert await reader.limits.find_limit("gone") is None
