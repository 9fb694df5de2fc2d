"""The storage contract of feature flags, and of the history of one object, checked
against every backend through the same ports the service layer uses."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from switchyard.domain.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from switchyard.domain.flags import FeatureFlag, FlagQuery, Ring, RolloutStrategy
from switchyard.domain.models import Change, ChangeKind, HistoryAction, PageRequest
from switchyard.store import SqlStore
from switchyard.store.sql import REGISTRY

from .conftest import LOCAL_OPERATOR_ID

NOW = datetime(2026, 11, 25, 9, 30, 15, 123456, tzinfo=UTC)
CET = timezone(timedelta(hours=1))


def feature(key: str, **fields: object) -> FeatureFlag:
    values: dict[str, object] = {
        "name": f"Flag {key}",
        "id": str(uuid.uuid4()),
        "created_at": NOW,
        "created_by": LOCAL_OPERATOR_ID,
        "updated_at": NOW,
        "updated_by": LOCAL_OPERATOR_ID,
    }
    values.update(fields)
    return FeatureFlag(key=key, **values)  # type: ignore[arg-type]


def flag_change(key: str, action: HistoryAction, **fields: object) -> Change:
    values: dict[str, object] = {
        "kind": ChangeKind.FLAG,
        "table_name": "pf_feature_flags",
        "record_id": str(uuid.uuid4()),
        "environment": None,
        "old_value": None,
        "new_value": None,
        "value_diff": [],
        "reason": "because",
        "ticket": None,
        "changed_by": LOCAL_OPERATOR_ID,
        "changed_by_role": "site_admin",
        "client_address": None,
    }
    values.update(fields)
    return Change(key=key, action=action, **values)  # type: ignore[arg-type]


async def create(store: SqlStore, *flags: FeatureFlag) -> None:
    async with store.transaction() as tx:
        for flag in flags:
            await tx.flags.create_flag(flag)


async def read(store: SqlStore, key: str) -> FeatureFlag:
    async with store.read() as reader:
        return await reader.flags.get_flag(key)


async def record(store: SqlStore, *changes: Change) -> int:
    async with store.transaction() as tx:
        revision = await tx.allocate_revision()
        await tx.history.append(revision, changes)
    return revision


def test_every_flag_statement_is_registered_for_the_oracle_grammar_check() -> None:
    names = {sql.name for sql in REGISTRY}

    assert {
        "find_flag",
        "all_flags",
        "list_flags",
        "insert_flag",
        "update_flag",
        "delete_flag",
        "record_evaluations",
        "object_history",
    } <= names


# --- definitions -------------------------------------------------------------------------


async def test_a_flag_round_trips_every_field(store: SqlStore) -> None:
    original = feature(
        "checkout.new-flow",
        name="New checkout ✓",
        description="Ünïcode and a long text " + "d" * 900,
        is_enabled=True,
        rollout_percentage=35,
        rollout_strategy=RolloutStrategy.RING,
        enabled_for_users=("u-1", "u-2"),
        enabled_for_roles=("admin",),
        enabled_for_groups=("beta", "staff"),
        enabled_environments=("staging", "production"),
        targeting_rules=(
            {"id": "eu", "if": {"in": [{"var": "country"}, ["DE", "FR"]]}, "variant": "on"},
            {"id": "all", "variant": "off", "weight": 2.5, "note": None},
        ),
        start_date=NOW,
        end_date=NOW + timedelta(days=30),
        schedule_cron="* 9-17 * * 1-5",
        prerequisite_features=("checkout.base",),
        conflicts_with=("checkout.legacy", "checkout.old"),
        feature_category="beta",
        feature_type="experiment",
        impact_level="high",
        owner_team="payments",
        owner_email="payments@example.com",
        documentation_url="https://wiki.example.com/checkout",
        jira_ticket="PAY-123",
        metrics_enabled=False,
        success_metrics={"p95_ms": 250, "ratio": 0.75, "nested": {"ok": [True, None, "x"]}},
        failure_threshold=0.25,
        auto_disable_on_error=True,
        is_active=False,
        is_permanent=True,
        is_deprecated=True,
        deprecation_date=NOW + timedelta(days=90, microseconds=1),
        cache_ttl_seconds=300,
        variants={"on": {"color": "blue", "size": 2}, "off": {"color": "grey", "size": 1}},
        rings=(
            Ring("canary", ("staff",), None),
            Ring("early", ("beta", "friends"), NOW.astimezone(CET)),
            Ring("everyone", ("all",), NOW + timedelta(days=7, microseconds=7)),
        ),
        gradual_start=NOW - timedelta(days=1),
        gradual_end=NOW + timedelta(days=1),
        version=7,
        evaluation_count=42,
        last_evaluated=NOW - timedelta(seconds=5),
    )
    await create(store, original)

    found = await read(store, "checkout.new-flow")

    assert found == original
    moments = [
        found.start_date,
        found.end_date,
        found.deprecation_date,
        found.gradual_start,
        found.gradual_end,
        found.last_evaluated,
        found.created_at,
        found.updated_at,
        *(ring.opens_at for ring in found.rings if ring.opens_at is not None),
    ]
    assert all(moment is not None and moment.tzinfo == UTC for moment in moments)


async def test_a_flag_of_defaults_round_trips(store: SqlStore) -> None:
    original = feature("plain")
    await create(store, original)

    found = await read(store, "plain")

    assert found == original
    assert (found.rollout_strategy, found.variants, found.rings, found.success_metrics) == (
        None,
        {},
        (),
        None,
    )


async def test_a_flag_not_stamped_by_its_caller_is_stamped_now(store: SqlStore) -> None:
    await create(store, feature("unstamped", created_at=None, updated_at=None))

    found = await read(store, "unstamped")

    assert found.created_at is not None and found.updated_at is not None
    assert abs(found.created_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_empty_json_lists_and_objects_read_as_nothing(store: SqlStore) -> None:
    await create(store, feature("emptied"))
    async with store.transaction() as tx:
        await tx.connection.execute_ddl(
            "UPDATE pf_feature_flags SET enabled_for_users = '[]', enabled_for_roles = '[]',"
            " enabled_for_groups = '[]', enabled_environments = '[]', targeting_rules = '[]',"
            " prerequisite_features = '[]', conflicts_with = '[]', variants = '{}',"
            " rollout_rings = '[]' WHERE feature_key = 'emptied'"
        )

    found = await read(store, "emptied")

    assert found == feature("emptied", id=found.id)


async def test_missing_flags(store: SqlStore) -> None:
    async with store.read() as reader:
        assert await reader.flags.find_flag("no.such") is None
        with pytest.raises(NotFound, match=r"'no\.such'"):
            await reader.flags.get_flag("no.such")


async def test_a_taken_key_is_already_exists(store: SqlStore) -> None:
    await create(store, feature("taken"))

    with pytest.raises(AlreadyExists, match="'taken'"):
        await create(store, feature("taken"))


async def test_all_flags_holds_every_flag_in_key_order(store: SqlStore) -> None:
    await create(store, feature("b"), feature("c", is_active=False), feature("a", is_enabled=True))

    async with store.read() as reader:
        everything = await reader.flags.all_flags()

    assert [f.key for f in everything] == ["a", "b", "c"]


async def test_list_flags_filters_and_pages_in_key_order(store: SqlStore) -> None:
    await create(
        store,
        feature("f.a", feature_category="beta", feature_type="release", owner_team="web"),
        feature("f.b", feature_category="beta", feature_type="ops", owner_team="web"),
        feature("f.c", feature_category="stable", feature_type="release", owner_team="jobs"),
        feature("f.d", feature_category="beta", is_deprecated=True, owner_team="web"),
        feature("f.e", feature_category="beta", is_active=False, is_deprecated=True),
        feature("f.f"),
    )

    async def keys(query: FlagQuery, size: int = 100) -> list[list[str]]:
        pages, cursor = [], None
        while True:
            async with store.read() as reader:
                page = await reader.flags.list_flags(query, PageRequest(size, cursor))
            pages.append([f.key for f in page.items])
            cursor = page.next_cursor
            if cursor is None:
                return pages

    assert await keys(FlagQuery()) == [["f.a", "f.b", "f.c", "f.d", "f.f"]]
    assert await keys(FlagQuery(include_inactive=True)) == [
        ["f.a", "f.b", "f.c", "f.d", "f.e", "f.f"]
    ]
    assert await keys(FlagQuery(category="beta")) == [["f.a", "f.b", "f.d"]]
    assert await keys(FlagQuery(feature_type="release")) == [["f.a", "f.c"]]
    assert await keys(FlagQuery(owner_team="web", feature_type="ops")) == [["f.b"]]
    assert await keys(FlagQuery(deprecated_only=True)) == [["f.d"]]
    assert await keys(FlagQuery(deprecated_only=True, include_inactive=True)) == [["f.d", "f.e"]]
    assert await keys(FlagQuery(category="sunset")) == [[]]
    assert await keys(FlagQuery(), size=2) == [["f.a", "f.b"], ["f.c", "f.d"], ["f.f"]]
    # A full last page says so: no cursor to a page that would be empty.
    assert await keys(FlagQuery(category="beta"), size=3) == [["f.a", "f.b", "f.d"]]


@pytest.mark.parametrize("cursor", ["", "Not A Key!", "x" * 101, "a..b"])
async def test_list_flags_refuses_a_cursor_it_did_not_issue(store: SqlStore, cursor: str) -> None:
    async with store.read() as reader:
        with pytest.raises(InvalidArgument) as refused:
            await reader.flags.list_flags(FlagQuery(), PageRequest(10, cursor))

    assert [v.field for v in refused.value.violations] == ["page_token"]


async def test_update_is_conditional_on_the_version(store: SqlStore) -> None:
    original = feature("versioned", rollout_percentage=10, version=3)
    await create(store, original)
    later = NOW + timedelta(hours=1)

    async with store.transaction() as tx:
        await tx.flags.update_flag(
            replace(
                original,
                rollout_percentage=20,
                variants={"on": "a", "off": "b"},
                version=4,
                updated_at=later,
                created_at=later,  # not a definition column: kept as it was
            ),
            expected_version=3,
        )
    with pytest.raises(Conflict) as stale:
        async with store.transaction() as tx:
            await tx.flags.update_flag(
                replace(original, rollout_percentage=30, version=4), expected_version=3
            )
    with pytest.raises(NotFound, match="'gone'"):
        async with store.transaction() as tx:
            await tx.flags.update_flag(feature("gone", version=2), expected_version=1)

    assert stale.value.current_version == 4
    found = await read(store, "versioned")
    assert (found.rollout_percentage, found.version, found.variants) == (
        20,
        4,
        {"on": "a", "off": "b"},
    )
    assert (found.created_at, found.updated_at) == (NOW, later)


async def test_update_leaves_the_evaluation_counters_alone(store: SqlStore) -> None:
    original = feature("counted")
    await create(store, original)
    async with store.transaction() as tx:
        await tx.flags.record_evaluations({"counted": (5, NOW)})

    async with store.transaction() as tx:
        await tx.flags.update_flag(
            replace(original, is_enabled=True, version=2), expected_version=1
        )

    found = await read(store, "counted")
    assert (found.is_enabled, found.evaluation_count, found.last_evaluated) == (True, 5, NOW)


async def test_delete(store: SqlStore) -> None:
    await create(store, feature("doomed"), feature("kept"))

    async with store.transaction() as tx:
        await tx.flags.delete_flag("doomed")
    with pytest.raises(NotFound, match="'doomed'"):
        async with store.transaction() as tx:
            await tx.flags.delete_flag("doomed")

    async with store.read() as reader:
        assert await reader.flags.find_flag("doomed") is None
        assert [f.key for f in await reader.flags.all_flags()] == ["kept"]


# --- evaluation counters -------------------------------------------------------------------


async def test_evaluations_add_up_and_last_evaluated_only_moves_forward(store: SqlStore) -> None:
    await create(store, feature("hot", version=3), feature("cold"))
    before = await read(store, "hot")

    async with store.transaction() as tx:
        await tx.flags.record_evaluations({"hot": (3, NOW), "gone": (7, NOW)})
    async with store.transaction() as tx:  # a slower replica's older batch
        await tx.flags.record_evaluations({"hot": (2, NOW - timedelta(minutes=1))})
    after_older = await read(store, "hot")
    async with store.transaction() as tx:
        await tx.flags.record_evaluations({"hot": (1, NOW + timedelta(microseconds=1))})
        await tx.flags.record_evaluations({})
    after_newer = await read(store, "hot")

    assert (after_older.evaluation_count, after_older.last_evaluated) == (5, NOW)
    assert (after_newer.evaluation_count, after_newer.last_evaluated) == (
        6,
        NOW + timedelta(microseconds=1),
    )
    # Counting is not a change.
    assert replace(after_newer, evaluation_count=0, last_evaluated=None) == before
    cold = await read(store, "cold")
    assert (cold.evaluation_count, cold.last_evaluated) == (0, None)
    async with store.read() as reader:
        assert await reader.flags.find_flag("gone") is None


# --- the history of one object ---------------------------------------------------------------


async def test_object_history_holds_changes_since_the_object_was_last_created(
    store: SqlStore,
) -> None:
    await record(store, flag_change("k", HistoryAction.CREATE, new_value="first life"))
    await record(store, flag_change("k", HistoryAction.UPDATE, new_value="old"))
    await record(store, flag_change("k", HistoryAction.DELETE))
    recreated = await record(store, flag_change("k", HistoryAction.CREATE, new_value="v1"))
    await record(store, flag_change("k", HistoryAction.UPDATE, new_value="v2"))
    # Same key, other kinds and other keys: none of them belongs to the flag's history,
    # and a rate limit named "k" being created does not cut it.
    await record(
        store,
        flag_change("k", HistoryAction.CREATE, kind=ChangeKind.RATE_LIMIT, table_name="x"),
        flag_change("k", HistoryAction.UPDATE, kind=ChangeKind.CONFIG, new_value="config"),
        flag_change("other", HistoryAction.UPDATE, new_value="other"),
    )
    await record(
        store,
        flag_change("k", HistoryAction.DISABLE, new_value="v3"),
        flag_change("k", HistoryAction.ENABLE, new_value="v4"),
    )

    async with store.read() as reader:
        everything = await reader.history.object_history(ChangeKind.FLAG, "k", offset=0, limit=100)
        second = await reader.history.object_history(ChangeKind.FLAG, "k", offset=1, limit=2)
        none = await reader.history.object_history(ChangeKind.FLAG, "k", offset=0, limit=0)
        past_the_end = await reader.history.object_history(ChangeKind.FLAG, "k", offset=10, limit=5)
        unknown = await reader.history.object_history(
            ChangeKind.FLAG, "no.such", offset=0, limit=10
        )

    assert [e.new_value for e in everything] == ["v4", "v3", "v2", "v1"]
    assert [(e.revision, e.change_index) for e in everything] == [
        (7, 1),
        (7, 0),
        (5, 0),
        (recreated, 0),
    ]
    assert everything[-1].action is HistoryAction.CREATE
    assert all(e.kind is ChangeKind.FLAG and e.key == "k" for e in everything)
    assert [e.new_value for e in second] == ["v3", "v2"]
    assert none == past_the_end == unknown == []


async def test_object_history_parts_a_delete_and_a_create_in_one_revision(
    store: SqlStore,
) -> None:
    await record(store, flag_change("k", HistoryAction.CREATE, new_value="first life"))
    recreated = await record(
        store,
        flag_change("k", HistoryAction.UPDATE, new_value="last of the first life"),
        flag_change("k", HistoryAction.DELETE),
        flag_change("k", HistoryAction.CREATE, new_value="second life"),
    )
    await record(store, flag_change("k", HistoryAction.UPDATE, new_value="now"))

    async with store.read() as reader:
        found = await reader.history.object_history(ChangeKind.FLAG, "k", offset=0, limit=10)

    assert [(e.revision, e.change_index, e.new_value) for e in found] == [
        (recreated + 1, 0, "now"),
        (recreated, 2, "second life"),
    ]


async def test_object_history_without_a_create_row_holds_every_row(store: SqlStore) -> None:
    """The `create` row may have been pruned: what is left is all there is."""
    await record(store, flag_change("k", HistoryAction.UPDATE, new_value="a"))
    await record(store, flag_change("k", HistoryAction.UPDATE, new_value="b"))

    async with store.read() as reader:
        found = await reader.history.object_history(ChangeKind.FLAG, "k", offset=0, limit=10)

    assert [e.new_value for e in found] == ["b", "a"]
