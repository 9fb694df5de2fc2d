"""The storage contract: what every backend's repositories must do, checked against each
backend through the same ports the service layer uses."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from switchyard.domain.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from switchyard.domain.models import (
    BASE_LAYER,
    Change,
    ChangeKind,
    ConfigDefinition,
    ConfigQuery,
    ConfigType,
    Environment,
    HistoryAction,
    HistoryQuery,
    JSONValue,
    MaintenanceWindow,
    Override,
    PageRequest,
    Template,
    User,
    Validation,
    WindowState,
)
from switchyard.domain.values import MAX_VALUE_BYTES
from switchyard.store import SqlStore, migrate

from .conftest import LOCAL_OPERATOR_ID, SEEDED_ENVIRONMENTS

NOW = datetime(2026, 11, 25, 9, 30, 15, 123456, tzinfo=UTC)


def definition(key: str, **fields: object) -> ConfigDefinition:
    values: dict[str, object] = {
        "type": ConfigType.STRING,
        "category": "test",
        "id": str(uuid.uuid4()),
        "created_at": NOW,
        "created_by": LOCAL_OPERATOR_ID,
        "updated_at": NOW,
        "updated_by": LOCAL_OPERATOR_ID,
    }
    values.update(fields)
    return ConfigDefinition(key=key, **values)  # type: ignore[arg-type]


def override(
    config: ConfigDefinition, environment: str, value: JSONValue, **fields: object
) -> Override:
    values: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "base_config_id": config.id,
        "created_at": NOW,
        "created_by": LOCAL_OPERATOR_ID,
        "updated_at": NOW,
        "updated_by": LOCAL_OPERATOR_ID,
    }
    values.update(fields)
    return Override(key=config.key, environment=environment, value=value, **values)  # type: ignore[arg-type]


def change(key: str, environment: str | None = None, **fields: object) -> Change:
    values: dict[str, object] = {
        "kind": ChangeKind.CONFIG,
        "table_name": "pf_system_config" if environment is None else "pf_environment_config",
        "record_id": str(uuid.uuid4()),
        "action": HistoryAction.UPDATE,
        "old_value": 1,
        "new_value": 2,
        "value_diff": [{"op": "replace", "path": "", "value": 2}],
        "reason": "because",
        "ticket": "OPS-1",
        "changed_by": LOCAL_OPERATOR_ID,
        "changed_by_role": "site_admin",
        "client_address": "ipv4:127.0.0.1:5555",
        "version": 2,
    }
    values.update(fields)
    return Change(key=key, environment=environment, **values)  # type: ignore[arg-type]


async def create(store: SqlStore, *configs: ConfigDefinition) -> None:
    async with store.transaction() as tx:
        for config in configs:
            await tx.configs.create_config(config)


async def record(store: SqlStore, *changes: Change) -> int:
    async with store.transaction() as tx:
        revision = await tx.allocate_revision()
        await tx.history.append(revision, changes)
    return revision


# --- migrations and seeds --------------------------------------------------------------


async def test_migrating_again_changes_nothing(store: SqlStore) -> None:
    assert await migrate(store) == []


async def test_a_new_database_has_the_seeded_environments_and_no_revision(store: SqlStore) -> None:
    async with store.read() as reader:
        environments = await reader.environments.list_environments()
        assert await reader.current_revision() == 0
        assert await reader.history.oldest_revision() == 0
        operator = await reader.users.find_user(LOCAL_OPERATOR_ID)

    assert {e.name: e.parent for e in environments} == SEEDED_ENVIRONMENTS
    assert [e.name for e in environments] == sorted(SEEDED_ENVIRONMENTS)
    assert operator is not None and operator.role == "site_admin"


# --- definitions -----------------------------------------------------------------------


async def test_a_definition_round_trips_every_field(store: SqlStore) -> None:
    original = definition(
        "api.rich",
        type=ConfigType.JSON,
        subcategory="sub",
        display_name="Ünïcode ✓",
        description="d" * 1000,
        help_text="h" * 5000,
        value={"nested": [1, 2.5, "三", None, True], "empty": ""},
        default_value=[],
        validation=Validation(
            min_value=0.000001,
            max_value=1e20,
            regex_pattern=r"^\w+$",
            allowed_values=({"nested": [1, 2.5, "三", None, True], "empty": ""}, 7, "x"),
            depends_on=("a.b", "c.d"),
            conflicts_with=("e.f",),
            validation_rule="free text",
        ),
        is_required=True,
        is_sensitive=True,
        is_encrypted=True,
        is_active=False,
        is_editable=False,
        is_deletable=False,
        requires_restart=True,
        cache_ttl_seconds=86_400,
        version=7,
    )
    await create(store, original)

    async with store.read() as reader:
        found = await reader.configs.get_config("api.rich")

    assert found == original


async def test_empty_text_is_stored_as_no_text_on_every_backend(store: SqlStore) -> None:
    # Oracle stores '' as NULL; SQLite is made to agree rather than differ quietly.
    await create(store, definition("empty.text", description="", value=""))

    async with store.read() as reader:
        found = await reader.configs.get_config("empty.text")

    assert found.description is None
    assert found.value == ""  # a value is JSON: the empty string is '""', not ''


async def test_a_value_of_the_maximum_size_round_trips(store: SqlStore) -> None:
    big = "é" * ((MAX_VALUE_BYTES - 2) // 2)  # two bytes each in UTF-8, quotes included
    await create(store, definition("big.value", value=big))

    async with store.read() as reader:
        assert (await reader.configs.get_config("big.value")).value == big


async def test_missing_definitions(store: SqlStore) -> None:
    async with store.read() as reader:
        assert await reader.configs.find_config("no.such") is None
        with pytest.raises(NotFound):
            await reader.configs.get_config("no.such")


async def test_a_taken_key_is_already_exists(store: SqlStore) -> None:
    await create(store, definition("taken"))

    with pytest.raises(AlreadyExists):
        await create(store, definition("taken"))


async def test_get_configs_finds_what_exists_across_chunks(store: SqlStore) -> None:
    configs = [definition(f"bulk.k{i:04d}") for i in range(1_005)]
    await create(store, *configs)
    wanted = [c.key for c in configs] + ["bulk.missing", configs[0].key]

    async with store.read() as reader:
        found = await reader.configs.get_configs(wanted)

    assert set(found) == {c.key for c in configs}


async def test_list_configs_filters_and_pages_in_key_order(store: SqlStore) -> None:
    await create(
        store,
        definition("a_b.one", category="web"),
        definition("a_b.two", category="web", subcategory="x"),
        definition("axb.three", category="web"),
        definition("a_b.off", category="web", is_active=False),
        definition("other", category="jobs"),
    )

    async def keys(query: ConfigQuery, size: int = 100) -> list[list[str]]:
        pages, cursor = [], None
        while True:
            async with store.read() as reader:
                page = await reader.configs.list_configs(query, PageRequest(size, cursor))
            pages.append([c.key for c in page.items])
            cursor = page.next_cursor
            if cursor is None:
                return pages

    # '_' is a key character, not a LIKE wildcard: a_b does not match axb.
    assert await keys(ConfigQuery(key_prefix="a_b")) == [["a_b.one", "a_b.two"]]
    assert await keys(ConfigQuery(key_prefix="a_b", include_inactive=True)) == [
        ["a_b.off", "a_b.one", "a_b.two"]
    ]
    assert await keys(ConfigQuery(category="web", subcategory="x")) == [["a_b.two"]]
    assert await keys(ConfigQuery(category="web"), size=2) == [
        ["a_b.one", "a_b.two"],
        ["axb.three"],
    ]
    assert await keys(ConfigQuery(category="none")) == [[]]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("api.", ["api.timeout", "api.url"]),
        ("api", ["api.timeout", "api.url", "api_x", "apix"]),
        ("api_", ["api_x"]),  # '_' is a character, not a wildcard
        ("API.", []),  # keys compare exactly, on every backend: no case folding
        ("Api", []),
        ("api%", []),
        ("api.timeout", ["api.timeout"]),
        ("api.timeout.", []),
        ("z", ["z\u00e9", "z\U0010ffff"]),
        ("z\U0010ffff", ["z\U0010ffff"]),
        ("é", []),
        ("a" * 50_000, []),  # no pattern to be too complex
    ],
)
async def test_a_key_prefix_matches_exactly_the_keys_that_start_with_it(
    store: SqlStore, prefix: str, expected: list[str]
) -> None:
    keys = ["api.timeout", "api.url", "api_x", "apix", "apa", "aq", "z\u00e9", "z\U0010ffff"]
    await create(store, *(definition(key) for key in keys))

    async with store.read() as reader:
        page = await reader.configs.list_configs(ConfigQuery(key_prefix=prefix), PageRequest(100))

    assert [c.key for c in page.items] == expected


async def test_update_is_conditional_on_the_version(store: SqlStore) -> None:
    original = definition("versioned", value="v1", version=3)
    await create(store, original)

    async with store.transaction() as tx:
        await tx.configs.update_config(replace(original, value="v2", version=4), expected_version=3)
    with pytest.raises(Conflict) as stale:
        async with store.transaction() as tx:
            await tx.configs.update_config(
                replace(original, value="v3", version=4), expected_version=3
            )
    with pytest.raises(NotFound):
        async with store.transaction() as tx:
            await tx.configs.update_config(definition("gone", version=2), expected_version=1)

    assert stale.value.current_version == 4
    async with store.read() as reader:
        found = await reader.configs.get_config("versioned")
    assert (found.value, found.version) == ("v2", 4)


async def test_deleting_a_definition_deletes_its_overrides(store: SqlStore) -> None:
    config = definition("doomed")
    await create(store, config)
    async with store.transaction() as tx:
        await tx.overrides.upsert_override(override(config, "production", 1))

    async with store.transaction() as tx:
        await tx.configs.delete_config("doomed")
    with pytest.raises(NotFound):
        async with store.transaction() as tx:
            await tx.configs.delete_config("doomed")

    async with store.read() as reader:
        assert await reader.configs.find_config("doomed") is None
        assert await reader.overrides.list_overrides("doomed") == []


# --- overrides --------------------------------------------------------------------------


async def test_overrides_insert_update_list_and_delete(store: SqlStore) -> None:
    config = definition("api.timeout", type=ConfigType.NUMBER)
    other = definition("api.retries", type=ConfigType.NUMBER)
    await create(store, config, other)
    standing = override(config, "production", 60)
    temporary = override(
        config,
        "production",
        90,
        priority=200,
        expires_at=NOW + timedelta(hours=1),
        reason="incident",
    )
    staging = override(config, "staging", 5)

    async with store.transaction() as tx:
        for row in (standing, temporary, staging, override(other, "production", 3)):
            await tx.overrides.upsert_override(row)
        # Same (key, environment, priority): an update that keeps the row's id.
        await tx.overrides.upsert_override(replace(staging, id=str(uuid.uuid4()), value=6))

    async with store.read() as reader:
        listed = await reader.overrides.list_overrides("api.timeout")
        production = await reader.overrides.list_overrides("api.timeout", ["production"])
        batch = await reader.overrides.list_overrides_for_keys(
            ["api.timeout", "api.retries", "nope"], ["production"]
        )
        found = await reader.overrides.find_override("api.timeout", "production", 200)
        absent = await reader.overrides.find_override("api.timeout", "production", 150)

    assert [(o.environment, o.priority, o.value) for o in listed] == [
        ("production", 200, 90),
        ("production", 100, 60),
        ("staging", 100, 6),
    ]
    assert listed[2].id == staging.id
    assert [o.priority for o in production] == [200, 100]
    assert sorted((o.key, o.priority) for o in batch) == [
        ("api.retries", 100),
        ("api.timeout", 100),
        ("api.timeout", 200),
    ]
    assert (
        found == temporary and found.is_temporary and found.expires_at == NOW + timedelta(hours=1)
    )
    assert absent is None

    async with store.transaction() as tx:
        await tx.overrides.delete_override(temporary.id)
    async with store.read() as reader:
        assert [
            o.priority for o in await reader.overrides.list_overrides("api.timeout", ["production"])
        ] == [100]


async def test_an_override_in_an_unknown_environment_is_refused(store: SqlStore) -> None:
    config = definition("k")
    await create(store, config)

    with pytest.raises(NotFound):
        async with store.transaction() as tx:
            await tx.overrides.upsert_override(override(config, "moon", 1))


# --- environments ------------------------------------------------------------------------


async def test_environments_are_created_and_changed(store: SqlStore) -> None:
    async with store.transaction() as tx:
        await tx.environments.upsert_environment(
            Environment("qa", parent="staging", description="QA")
        )
    async with store.transaction() as tx:
        await tx.environments.upsert_environment(Environment("qa", parent="test"))

    async with store.read() as reader:
        environments = {e.name: e for e in await reader.environments.list_environments()}

    assert environments["qa"] == Environment("qa", parent="test", description=None, protected=False)
    assert environments["production"].protected is True, "production is protected from the start"


async def test_protection_is_kept_by_an_upsert_that_does_not_name_it(store: SqlStore) -> None:
    async with store.transaction() as tx:
        await tx.environments.upsert_environment(Environment("qa", protected=True))
    async with store.transaction() as tx:
        await tx.environments.upsert_environment(Environment("qa", description="QA"))
    async with store.read() as reader:
        environments = {e.name: e for e in await reader.environments.list_environments()}
    assert environments["qa"].protected is True
    async with store.transaction() as tx:
        await tx.environments.upsert_environment(Environment("qa", protected=False))
    async with store.read() as reader:
        environments = {e.name: e for e in await reader.environments.list_environments()}
    assert environments["qa"].protected is False


# --- history and revisions --------------------------------------------------------------


async def test_revisions_count_transactions_and_rows_are_numbered_within_one(
    store: SqlStore,
) -> None:
    first = await record(store, change("a"), change("b"))
    second = await record(store, change("a"))

    async with store.read() as reader:
        page = await reader.history.list_history(HistoryQuery(), PageRequest(100))
        assert await reader.current_revision() == 2
        assert await reader.history.oldest_revision() == 1

    assert (first, second) == (1, 2)
    assert [(e.revision, e.change_index, e.key) for e in page.items] == [
        (2, 0, "a"),
        (1, 1, "b"),
        (1, 0, "a"),
    ]


async def test_a_batch_is_one_transaction_and_a_savepoint_undoes_only_its_block(
    store: SqlStore,
) -> None:
    """What `service.batch` stands on: transactions opened inside a batch join it, and a
    savepoint rolled back takes its rows, its history rows and its revision with it."""

    class Refused(Exception):
        pass

    async with store.batch() as batch:
        async with store.transaction() as joined:
            assert joined is batch
            await joined.configs.create_config(definition("batch.kept"))
        with pytest.raises(Refused):
            async with batch.savepoint():
                await batch.configs.create_config(definition("batch.undone"))
                revision = await batch.allocate_revision()
                batch.recorded.extend(await batch.history.append(revision, [change("x")]))
                raise Refused
        assert batch.recorded == []
        revision = await batch.allocate_revision()
        await batch.history.append(revision, [change("batch.kept")])

    async with store.read() as reader:
        found = await reader.configs.get_configs(["batch.kept", "batch.undone"])
        rows = await reader.history.history_after(0, 10)
        assert await reader.current_revision() == 1
    assert set(found) == {"batch.kept"}
    assert [(e.revision, e.key) for e in rows] == [(1, "batch.kept")]


async def test_a_history_entry_round_trips(store: SqlStore) -> None:
    written = change(
        "api.timeout",
        "production",
        old_value={"a": [1, "ü"]},
        new_value=None,
        value_diff=[{"op": "remove", "path": ""}],
        priority=200,
        action=HistoryAction.ROLLBACK,
        version=9,
    )
    async with store.transaction() as tx:
        revision = await tx.allocate_revision()
        [appended] = await tx.history.append(revision, [written])

    async with store.read() as reader:
        [read] = (await reader.history.list_history(HistoryQuery(), PageRequest(10))).items

    # A history read names the user the row's id stands for, for people to read.
    assert read == replace(appended, changed_by_username="local-operator")
    assert (read.priority, read.version, read.action, read.environment) == (
        200,
        9,
        HistoryAction.ROLLBACK,
        "production",
    )
    assert abs(read.changed_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_history_filters_and_pages(store: SqlStore) -> None:
    await record(store, change("k"))  # base layer
    await record(store, change("k", "production"))
    await record(store, change("other"))
    await record(
        store, change("production", kind=ChangeKind.ENVIRONMENT, table_name="pf_environments")
    )
    await record(store, change("k", "staging"))

    async def revisions(query: HistoryQuery, size: int = 100) -> list[int]:
        found, cursor = [], None
        while True:
            async with store.read() as reader:
                page = await reader.history.list_history(query, PageRequest(size, cursor))
            found += [e.revision for e in page.items]
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    assert await revisions(HistoryQuery()) == [5, 4, 3, 2, 1]
    assert await revisions(HistoryQuery(), size=2) == [5, 4, 3, 2, 1]
    assert await revisions(HistoryQuery(key="k")) == [5, 2, 1]
    assert await revisions(HistoryQuery(key="k", environment=BASE_LAYER)) == [1]
    assert await revisions(HistoryQuery(key="k", environment="production")) == [2]
    assert await revisions(HistoryQuery(after_revision=3)) == [5, 4]
    assert await revisions(HistoryQuery(kinds=(ChangeKind.ENVIRONMENT,))) == [4]
    with pytest.raises(InvalidArgument):
        async with store.read() as reader:
            await reader.history.list_history(HistoryQuery(), PageRequest(10, "not-a-cursor"))


async def test_layer_history_holds_value_changes_since_the_key_was_created(store: SqlStore) -> None:
    create_row = {"action": HistoryAction.CREATE, "rollback_available": False}
    await record(store, change("k", **create_row))
    await record(store, change("k", new_value="old life"))
    await record(store, change("k", action=HistoryAction.DELETE, rollback_available=False))
    await record(store, change("k", **create_row))  # created again
    await record(store, change("k", new_value="b1"))
    await record(store, change("k", "production", new_value="p1"))
    await record(store, change("k", new_value="b2"))
    await record(store, change("k", action=HistoryAction.UPDATE, rollback_available=False))

    async with store.read() as reader:
        base = await reader.history.layer_history("k", None, offset=0, limit=10)
        production = await reader.history.layer_history("k", "production", offset=0, limit=10)
        second = await reader.history.layer_history("k", None, offset=1, limit=1)

    assert [e.new_value for e in base] == ["b2", "b1"]
    assert [e.new_value for e in production] == ["p1"]
    assert [e.new_value for e in second] == ["b1"]


async def test_a_failed_transaction_leaves_nothing_behind(store: SqlStore) -> None:
    ran: list[str] = []
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.configs.create_config(definition("half.done"))
            revision = await tx.allocate_revision()
            await tx.history.append(revision, [change("half.done")])
            tx.after_commit(lambda: ran.append("committed"))
            raise RuntimeError("boom")

    async with store.read() as reader:
        assert await reader.configs.find_config("half.done") is None
        assert await reader.current_revision() == 0
        assert (await reader.history.list_history(HistoryQuery(), PageRequest(10))).items == []
    assert ran == []


async def test_after_commit_runs_once_the_transaction_has_committed(store: SqlStore) -> None:
    seen: list[int] = []

    async def current() -> int:
        async with store.read() as reader:
            return await reader.current_revision()

    async with store.transaction() as tx:
        revision = await tx.allocate_revision()
        assert await tx.allocate_revision() == revision  # one revision per transaction
        await tx.history.append(revision, [change("x")])
        tx.after_commit(lambda: seen.append(revision))
        assert seen == []

    assert seen == [1]
    assert await current() == 1


async def test_a_reader_sees_one_snapshot_while_a_writer_commits(store: SqlStore) -> None:
    await create(store, definition("snap", value="before"))

    async with store.read() as reader:
        first = await reader.configs.get_config("snap")
        async with store.transaction() as tx:
            await tx.configs.update_config(
                replace(first, value="after", version=2), expected_version=1
            )
            await tx.history.append(await tx.allocate_revision(), [change("snap")])
        again = await reader.configs.get_config("snap")
        revision = await reader.current_revision()

    assert (first.value, again.value, revision) == ("before", "before", 0)
    async with store.read() as reader:
        assert (await reader.configs.get_config("snap")).value == "after"


async def test_concurrent_writers_get_revisions_in_commit_order(store: SqlStore) -> None:
    async def write(n: int) -> int:
        async with store.transaction() as tx:
            revision = await tx.allocate_revision()
            await asyncio.sleep(0)  # let the others queue up behind this one
            await tx.history.append(revision, [change(f"w{n}"), change(f"w{n}")])
        return revision

    revisions = await asyncio.gather(*(write(n) for n in range(25)))

    assert sorted(revisions) == list(range(1, 26))
    async with store.read() as reader:
        rows = (await reader.history.list_history(HistoryQuery(), PageRequest(1000))).items
    assert sorted({(e.revision, e.key) for e in rows}) == sorted(
        (r, f"w{n}") for n, r in enumerate(revisions)
    )


# --- templates and users ------------------------------------------------------------------


async def test_templates_upsert_list_and_count_use(store: SqlStore) -> None:
    template = Template(
        name="high-traffic",
        template_type="scale",
        config_values={"api.timeout": 10, "cache.ttl": "1m", "nested": {"a": [1, None]}},
        description="For busy days",
        suitable_environments=("production", "staging"),
        prerequisites=("cache.enabled",),
        version="1.0",
        id=str(uuid.uuid4()),
        created_at=NOW,
        updated_at=NOW,
    )
    async with store.transaction() as tx:
        assert await tx.templates.upsert_template(template) is True
        assert await tx.templates.upsert_template(replace(template, description="changed")) is False
        await tx.templates.upsert_template(
            replace(template, name="quiet", id=str(uuid.uuid4()), is_active=False)
        )
        await tx.templates.increment_usage("high-traffic")

    async with store.read() as reader:
        found = await reader.templates.get_template("high-traffic")
        active = await reader.templates.list_templates(False, PageRequest(10))
        first = await reader.templates.list_templates(True, PageRequest(1))
        rest = await reader.templates.list_templates(True, PageRequest(1, first.next_cursor))
        with pytest.raises(NotFound):
            await reader.templates.get_template("nope")

    assert found == replace(template, description="changed", usage_count=1)
    assert [t.name for t in active.items] == ["high-traffic"]
    assert [t.name for t in first.items] + [t.name for t in rest.items] == ["high-traffic", "quiet"]
    assert rest.next_cursor is None


async def test_users_upsert_and_find(store: SqlStore) -> None:
    user = User(
        id=str(uuid.uuid4()), username="ada", role="admin", email="ada@example.com", created_at=NOW
    )
    async with store.transaction() as tx:
        await tx.users.upsert_user(user)
        await tx.users.upsert_user(replace(user, role="site_admin"))

    async with store.read() as reader:
        assert await reader.users.find_user(user.id) == replace(user, role="site_admin")
        assert await reader.users.find_user("nobody") is None


async def test_history_must_name_a_known_user(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        await record(store, change("k", changed_by="not-a-user"))


# --- live changes: scheduled overrides, the history in order, windows ----------------------


async def test_scheduled_and_temporary_overrides_come_due(store: SqlStore) -> None:
    config = definition("scheduled")
    await create(store, config)
    rows = {
        "standing": override(config, "production", 1),
        "starts_later": override(
            config,
            "production",
            2,
            priority=150,
            is_active=False,
            starts_at=NOW + timedelta(minutes=5),
        ),
        "expires_later": override(
            config, "staging", 3, expires_at=NOW + timedelta(minutes=10), revert_to_value={"was": 1}
        ),
        "expired": override(config, "test", 4, expires_at=NOW - timedelta(seconds=1)),
    }
    async with store.transaction() as tx:
        for row in rows.values():
            await tx.overrides.upsert_override(row)

    async with store.read() as reader:
        due_now = await reader.overrides.due_overrides(NOW)
        due_later = await reader.overrides.due_overrides(NOW + timedelta(minutes=10))
        next_now = await reader.overrides.next_scheduled_change(NOW)
        next_later = await reader.overrides.next_scheduled_change(NOW + timedelta(minutes=5))
        never = await reader.overrides.next_scheduled_change(NOW + timedelta(hours=1))
        kept = await reader.overrides.find_override("scheduled", "staging", 100)

    assert [o.id for o in due_now] == [rows["expired"].id]
    assert {o.id for o in due_later} == {
        rows[k].id for k in ("starts_later", "expires_later", "expired")
    }
    assert next_now == NOW + timedelta(minutes=5)
    assert next_later == NOW + timedelta(minutes=10)
    assert never is None
    assert kept is not None and kept.revert_to_value == {"was": 1}
    assert rows["starts_later"] == next(o for o in due_later if o.priority == 150)


async def test_history_after_a_revision_comes_oldest_first(store: SqlStore) -> None:
    await record(store, change("a"), change("b"))
    await record(store, change("c"))
    await record(store, change("d"))

    async with store.read() as reader:
        everything = await reader.history.history_after(0, 100)
        after_first = await reader.history.history_after(1, 100)
        cut = await reader.history.history_after(0, 2)

    assert [(e.revision, e.change_index, e.key) for e in everything] == [
        (1, 0, "a"),
        (1, 1, "b"),
        (2, 0, "c"),
        (3, 0, "d"),
    ]
    assert [e.key for e in after_first] == ["c", "d"]
    assert [e.key for e in cut] == ["a", "b"]


async def test_maintenance_windows_round_trip(store: SqlStore) -> None:
    window = MaintenanceWindow(
        name="nightly-reindex",
        environment="production",
        config_values={"features.maintenance_mode": True, "api.timeout": 120},
        description="Search index rebuild",
        schedule_cron="0 2 * * *",
        duration_seconds=1800,
        id=str(uuid.uuid4()),
        created_at=NOW,
        created_by=LOCAL_OPERATOR_ID,
        updated_at=NOW,
        updated_by=LOCAL_OPERATOR_ID,
    )
    async with store.transaction() as tx:
        assert await tx.windows.upsert_window(window) is True
        assert (
            await tx.windows.upsert_window(
                replace(window, state=WindowState.OPEN, window_start=NOW, version=2)
            )
            is False
        )
        await tx.windows.upsert_window(
            replace(
                window,
                name="once",
                id=str(uuid.uuid4()),
                schedule_cron=None,
                duration_seconds=None,
                starts_at=NOW,
                ends_at=NOW + timedelta(hours=1),
            )
        )

    async with store.read() as reader:
        found = await reader.windows.get_window("nightly-reindex")
        names = [w.name for w in await reader.windows.list_windows()]
    async with store.transaction() as tx:
        await tx.windows.delete_window("once")
        with pytest.raises(NotFound):
            await tx.windows.delete_window("once")
    async with store.read() as reader:
        assert await reader.windows.find_window("once") is None
        with pytest.raises(NotFound):
            await reader.windows.get_window("once")

    assert found == replace(window, state=WindowState.OPEN, window_start=NOW, version=2)
    assert names == ["nightly-reindex", "once"]


async def test_a_large_revision_is_read_on_from_one_of_its_rows(store: SqlStore) -> None:
    await record(store, change("a"), change("b"), change("c"))
    await record(store, change("d"))

    async with store.read() as reader:
        first = await reader.history.history_after(0, 2)
        rest = await reader.history.history_after(1, 2, after_index=first[-1].change_index)
        last = await reader.history.history_after(1, 10, after_index=2)

    assert [(e.revision, e.key) for e in first] == [(1, "a"), (1, "b")]
    assert [(e.revision, e.key) for e in rest] == [(1, "c"), (2, "d")]
    assert [(e.revision, e.key) for e in last] == [(2, "d")]
