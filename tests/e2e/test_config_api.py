"""Every ConfigService RPC over real gRPC: what it does, and what it refuses.

Every refusal is checked twice: the status (with field violations where a field is at
fault) and a read afterwards showing that nothing changed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2, timestamp_pb2
from google.rpc import error_details_pb2

from switchyard.gen.v1 import config_pb2 as pb

from .conftest import Running
from .helpers import expect_status, field_violations, rich_status, value

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def definition(key: str, kind: int, **fields: Any) -> pb.ConfigDefinition:
    fields.setdefault("category", "test")
    fields.setdefault("is_active", True)
    fields.setdefault("is_editable", True)
    fields.setdefault("is_deletable", True)
    return pb.ConfigDefinition(key=key, type=kind, **fields)


async def create(running: Running, key: str, kind: int, **fields: Any) -> pb.ConfigDefinition:
    response = await running.config.CreateConfig(
        pb.CreateConfigRequest(config=definition(key, kind, **fields), reason="test setup")
    )
    return response.config


async def state(running: Running, key: str | None = None) -> tuple[int, bytes]:
    """The current revision and, for a key, its whole stored state: enough to prove that
    a refused request changed nothing."""
    listing = await running.config.ListConfigs(
        pb.ListConfigsRequest(page_size=1000, include_inactive=True)
    )
    detail = b""
    if key is not None:
        try:
            detail = (
                await running.config.GetConfig(pb.GetConfigRequest(key=key))
            ).SerializeToString(deterministic=True)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
    return listing.revision, listing.SerializeToString(deterministic=True) + detail


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(moment)
    return out


# --- GetValue --------------------------------------------------------------------------------


async def test_get_value_reports_source_version_and_revision(running: Running) -> None:
    base = await running.config.GetValue(pb.GetValueRequest(key="api.timeout"))
    assert base.value.number_value == 30
    assert base.source == pb.VALUE_SOURCE_BASE
    assert base.type == pb.CONFIG_TYPE_NUMBER
    assert base.version >= 1
    assert base.revision > 0


async def test_get_value_inherits_through_parent_environment(running: Running) -> None:
    # The seeded environments: demo inherits from production.
    demo = await running.config.GetValue(pb.GetValueRequest(key="api.timeout", environment="demo"))

    assert demo.value.number_value == 60
    assert demo.source == pb.VALUE_SOURCE_INHERITED_OVERRIDE
    assert demo.source_environment == "production"


async def test_get_value_highest_priority_override_wins(running: Running) -> None:
    await running.config.SetValue(
        pb.SetValueRequest(
            key="api.timeout", value=value(90), environment="production", priority=200
        )
    )

    answer = await running.config.GetValue(
        pb.GetValueRequest(key="api.timeout", environment="production")
    )

    assert answer.value.number_value == 90
    config = await running.config.GetConfig(pb.GetConfigRequest(key="api.timeout"))
    assert sorted(o.priority for o in config.overrides) == [100, 200]


async def test_temporary_override_stops_applying_when_it_expires(running: Running) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=1)
    await running.config.SetValue(
        pb.SetValueRequest(
            key="api.timeout",
            value=value(5),
            environment="staging",
            expires_at=timestamp(expires),
        )
    )
    during = await running.config.GetValue(
        pb.GetValueRequest(key="api.timeout", environment="staging")
    )
    assert during.value.number_value == 5
    assert during.HasField("expires_at")

    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)

    after = await running.config.GetValue(
        pb.GetValueRequest(key="api.timeout", environment="staging")
    )
    assert after.value.number_value == 30
    assert after.source == pb.VALUE_SOURCE_BASE


async def test_get_value_default_then_none(running: Running) -> None:
    await create(running, "with.default", pb.CONFIG_TYPE_STRING, default_value=value("fallback"))
    await create(running, "without.anything", pb.CONFIG_TYPE_STRING)

    with_default = await running.config.GetValue(pb.GetValueRequest(key="with.default"))
    nothing = await running.config.GetValue(pb.GetValueRequest(key="without.anything"))

    assert with_default.value.string_value == "fallback"
    assert with_default.source == pb.VALUE_SOURCE_DEFAULT
    assert nothing.value.WhichOneof("kind") == "null_value"
    assert nothing.source == pb.VALUE_SOURCE_NONE


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (pb.GetValueRequest(key="no.such.key"), grpc.StatusCode.NOT_FOUND),
        (pb.GetValueRequest(key=""), INVALID),
        (pb.GetValueRequest(key="Bad Key!"), INVALID),
        (pb.GetValueRequest(key="api.timeout", environment="moon"), INVALID),
        (pb.GetValueRequest(key="api.timeout", environment="NOT VALID"), INVALID),
    ],
)
async def test_get_value_refusals(
    running: Running, request_: pb.GetValueRequest, code: grpc.StatusCode
) -> None:
    await expect_status(running.config.GetValue(request_), code)


async def test_inactive_key_is_not_found(running: Running) -> None:
    await running.config.UpdateConfig(
        pb.UpdateConfigRequest(
            config=pb.ConfigDefinition(key="api.timeout", is_active=False),
            update_mask=field_mask_pb2.FieldMask(paths=["is_active"]),
        )
    )

    await expect_status(
        running.config.GetValue(pb.GetValueRequest(key="api.timeout")), grpc.StatusCode.NOT_FOUND
    )


# --- GetValues, GetConfig, ListConfigs -------------------------------------------------------


async def test_get_values_reports_missing_keys(running: Running) -> None:
    response = await running.config.GetValues(
        pb.GetValuesRequest(keys=["api.timeout", "nope", "support.email"], environment="production")
    )

    assert {v.key: v for v in response.values}["api.timeout"].value.number_value == 60
    assert [v.key for v in response.values] == ["api.timeout", "support.email"]
    assert list(response.missing_keys) == ["nope"]
    assert all(v.revision == response.revision for v in response.values)


async def test_get_values_refusals(running: Running) -> None:
    await expect_status(running.config.GetValues(pb.GetValuesRequest()), INVALID)
    error = await expect_status(
        running.config.GetValues(pb.GetValuesRequest(keys=["ok", "NOT OK"])), INVALID
    )
    assert "keys[1]" in field_violations(error)


async def test_get_config_unknown_key(running: Running) -> None:
    await expect_status(
        running.config.GetConfig(pb.GetConfigRequest(key="nope")), grpc.StatusCode.NOT_FOUND
    )


async def test_list_configs_pages_through_every_key_once(running: Running) -> None:
    seen: list[str] = []
    token = ""
    while True:
        page = await running.config.ListConfigs(
            pb.ListConfigsRequest(page_size=2, page_token=token)
        )
        assert len(page.configs) <= 2
        seen.extend(c.key for c in page.configs)
        token = page.next_page_token
        if not token:
            break

    assert seen == sorted(seen)
    assert len(seen) == len(set(seen)) >= 6


async def test_list_configs_filters(running: Running) -> None:
    api = await running.config.ListConfigs(pb.ListConfigsRequest(category="api"))
    prefixed = await running.config.ListConfigs(pb.ListConfigsRequest(key_prefix="api."))

    assert {c.key for c in api.configs} == {"api.timeout", "api.base_url"}
    assert {c.key for c in prefixed.configs} == {"api.timeout", "api.base_url"}


async def test_list_configs_refusals(running: Running) -> None:
    error = await expect_status(
        running.config.ListConfigs(pb.ListConfigsRequest(page_token="!!not-a-token!!")), INVALID
    )
    assert "page_token" in field_violations(error)
    await expect_status(running.config.ListConfigs(pb.ListConfigsRequest(page_size=-1)), INVALID)


@pytest.mark.parametrize("length", [101, 50_000, 200_000])
async def test_a_key_prefix_longer_than_any_key_is_refused(running: Running, length: int) -> None:
    """No key is longer than 100 characters, so neither can a prefix of one be."""
    error = await expect_status(
        running.config.ListConfigs(pb.ListConfigsRequest(key_prefix="a" * length)), INVALID
    )
    assert "at most 100" in field_violations(error)["key_prefix"]
    longest = await running.config.ListConfigs(pb.ListConfigsRequest(key_prefix="a" * 100))
    assert list(longest.configs) == []


# --- CreateConfig, UpdateConfig, DeleteConfig ------------------------------------------------


async def test_create_config_records_history(running: Running) -> None:
    created = await running.config.CreateConfig(
        pb.CreateConfigRequest(
            config=definition("new.key", pb.CONFIG_TYPE_NUMBER, value=value(3)),
            reason="because",
            ticket="OPS-1",
        )
    )

    assert created.config.version == 1
    assert created.config.created_by
    history = await running.config.GetHistory(pb.GetHistoryRequest(key="new.key"))
    assert [e.action for e in history.entries] == [pb.HISTORY_ACTION_CREATE]
    assert history.entries[0].revision == created.revision
    assert history.entries[0].ticket == "OPS-1"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (definition("ok.key", pb.CONFIG_TYPE_UNSPECIFIED), "config.type"),
        (definition("Bad Key", pb.CONFIG_TYPE_STRING), "config.key"),
        (definition("ok.key", pb.CONFIG_TYPE_STRING, category=""), "config.category"),
        (
            definition(
                "ok.key", pb.CONFIG_TYPE_STRING, validation=pb.Validation(regex_pattern="(")
            ),
            "config.validation.regex_pattern",
        ),
        (
            definition(
                "ok.key", pb.CONFIG_TYPE_NUMBER, validation=pb.Validation(min_value=5, max_value=1)
            ),
            "config.validation.min_value",
        ),
        (
            definition(
                "ok.key",
                pb.CONFIG_TYPE_NUMBER,
                value=value(500),
                validation=pb.Validation(max_value=10),
            ),
            "config.value",
        ),
    ],
)
async def test_create_config_refusals(
    running: Running, config: pb.ConfigDefinition, field: str
) -> None:
    before = await state(running, "ok.key")

    error = await expect_status(
        running.config.CreateConfig(pb.CreateConfigRequest(config=config)), INVALID
    )

    violations = field_violations(error)
    assert any(f == field or f.startswith(field) for f in violations), violations
    assert await state(running, "ok.key") == before


async def test_create_config_missing_config_and_duplicate(running: Running) -> None:
    before = await state(running)
    await expect_status(running.config.CreateConfig(pb.CreateConfigRequest()), INVALID)
    await expect_status(
        running.config.CreateConfig(
            pb.CreateConfigRequest(config=definition("api.timeout", pb.CONFIG_TYPE_NUMBER))
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert await state(running) == before


async def test_update_config_changes_only_the_masked_fields(running: Running) -> None:
    before = (await running.config.GetConfig(pb.GetConfigRequest(key="api.timeout"))).config

    updated = await running.config.UpdateConfig(
        pb.UpdateConfigRequest(
            config=pb.ConfigDefinition(key="api.timeout", description="new words"),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
            expected_version=before.version,
        )
    )

    assert updated.config.description == "new words"
    assert updated.config.category == before.category
    assert updated.config.validation.max_value == before.validation.max_value
    assert updated.config.version == before.version + 1


async def test_update_config_refusals(running: Running) -> None:
    before = await state(running, "api.timeout")
    current = (await running.config.GetConfig(pb.GetConfigRequest(key="api.timeout"))).config

    # The production override (60) and base value (30) would break max 20.
    await expect_status(
        running.config.UpdateConfig(
            pb.UpdateConfigRequest(
                config=pb.ConfigDefinition(
                    key="api.timeout", validation=pb.Validation(max_value=20)
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["validation.max_value"]),
            )
        ),
        INVALID,
    )
    stale = await expect_status(
        running.config.UpdateConfig(
            pb.UpdateConfigRequest(
                config=pb.ConfigDefinition(key="api.timeout", description="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["description"]),
                expected_version=current.version - 1,
            )
        ),
        grpc.StatusCode.ABORTED,
    )
    assert str(current.version) in stale.details()
    error = await expect_status(
        running.config.UpdateConfig(
            pb.UpdateConfigRequest(
                config=pb.ConfigDefinition(key="api.timeout"),
                update_mask=field_mask_pb2.FieldMask(paths=["value"]),
            )
        ),
        INVALID,
    )
    assert "update_mask" in field_violations(error)
    await expect_status(
        running.config.UpdateConfig(
            pb.UpdateConfigRequest(
                config=pb.ConfigDefinition(key="nope", description="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["description"]),
            )
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert await state(running, "api.timeout") == before


async def test_delete_config(running: Running) -> None:
    await create(running, "doomed", pb.CONFIG_TYPE_STRING, value=value("x"))

    deleted = await running.config.DeleteConfig(pb.DeleteConfigRequest(key="doomed", reason="gone"))

    await expect_status(
        running.config.GetValue(pb.GetValueRequest(key="doomed")), grpc.StatusCode.NOT_FOUND
    )
    history = await running.config.GetHistory(pb.GetHistoryRequest(key="doomed"))
    assert history.entries[0].action == pb.HISTORY_ACTION_DELETE
    assert history.entries[0].revision == deleted.revision


async def test_delete_config_refusals(running: Running) -> None:
    await create(running, "kept", pb.CONFIG_TYPE_STRING, value=value("x"), is_deletable=False)
    before = await state(running, "kept")

    await expect_status(
        running.config.DeleteConfig(pb.DeleteConfigRequest(key="kept")),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await expect_status(
        running.config.DeleteConfig(pb.DeleteConfigRequest(key="nope")), grpc.StatusCode.NOT_FOUND
    )
    await expect_status(running.config.DeleteConfig(pb.DeleteConfigRequest(key="")), INVALID)
    await expect_status(
        running.config.DeleteConfig(pb.DeleteConfigRequest(key="kept", expected_version=99)),
        grpc.StatusCode.ABORTED,
    )
    assert await state(running, "kept") == before


# --- SetValue --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (pb.CONFIG_TYPE_STRING, "text", 5),
        (pb.CONFIG_TYPE_NUMBER, 2.5, "30"),
        (pb.CONFIG_TYPE_BOOLEAN, True, "true"),
        (pb.CONFIG_TYPE_JSON, {"a": [1, {"b": None}]}, None),
        (pb.CONFIG_TYPE_ARRAY, [1, "two"], "[1, 2"),
        (pb.CONFIG_TYPE_DATE, "2026-11-25", "25/11/2026"),
        (pb.CONFIG_TYPE_URL, "https://example.com/path", "not a url"),
        (pb.CONFIG_TYPE_EMAIL, "ops@example.com", "ops-at-example"),
        (pb.CONFIG_TYPE_DURATION, "1h30m", "ninety minutes"),
        (pb.CONFIG_TYPE_CRON, "*/5 * * * *", "every five minutes"),
    ],
)
async def test_set_value_checks_every_type(
    running: Running, kind: int, good: Any, bad: Any
) -> None:
    # A required key must read as something from the start: its default.
    await create(running, "typed", kind, is_required=True, default_value=value(good))

    stored = await running.config.SetValue(pb.SetValueRequest(key="typed", value=value(good)))
    assert stored.changed
    read = await running.config.GetValue(pb.GetValueRequest(key="typed"))
    assert read.value == value(good)

    before = await state(running, "typed")
    error = await expect_status(
        running.config.SetValue(pb.SetValueRequest(key="typed", value=value(bad))), INVALID
    )
    assert "value" in field_violations(error)
    assert await state(running, "typed") == before


async def test_set_value_constraints(running: Running) -> None:
    await create(
        running,
        "bounded",
        pb.CONFIG_TYPE_NUMBER,
        validation=pb.Validation(min_value=1, max_value=10),
    )
    await create(
        running,
        "patterned",
        pb.CONFIG_TYPE_STRING,
        validation=pb.Validation(regex_pattern="[a-z]+-[0-9]+"),
    )
    await create(
        running,
        "choice",
        pb.CONFIG_TYPE_STRING,
        validation=pb.Validation(allowed_values=[value("red"), value("green")]),
    )
    before = await state(running)

    for key, bad in (("bounded", 11), ("bounded", 0), ("patterned", "ABC-1"), ("choice", "blue")):
        error = await expect_status(
            running.config.SetValue(pb.SetValueRequest(key=key, value=value(bad))), INVALID
        )
        assert "value" in field_violations(error)

    assert await state(running) == before
    assert (
        await running.config.SetValue(pb.SetValueRequest(key="bounded", value=value(10)))
    ).changed
    assert (
        await running.config.SetValue(pb.SetValueRequest(key="patterned", value=value("ab-12")))
    ).changed
    assert (
        await running.config.SetValue(pb.SetValueRequest(key="choice", value=value("green")))
    ).changed


async def test_set_value_refusals(running: Running) -> None:
    await create(running, "big", pb.CONFIG_TYPE_STRING)
    before = await state(running, "api.timeout")
    huge = value("x" * 70_000)
    nan = struct_pb2.Value(number_value=float("nan"))
    refusals = [
        (pb.SetValueRequest(key="api.timeout"), "value"),
        (pb.SetValueRequest(value=value(1)), "key"),
        (pb.SetValueRequest(key="api.timeout", value=value("thirty")), "value"),
        (pb.SetValueRequest(key="api.timeout", value=value(301)), "value"),
        (pb.SetValueRequest(key="api.timeout", value=nan), "value"),
        (
            pb.SetValueRequest(key="api.timeout", value=value(None), environment="production"),
            "value",
        ),
        (pb.SetValueRequest(key="api.timeout", value=value(5), environment="moon"), "environment"),
        (pb.SetValueRequest(key="api.timeout", value=value(5), priority=5), "priority"),
        (
            pb.SetValueRequest(
                key="api.timeout", value=value(5), environment="production", priority=-1
            ),
            "priority",
        ),
        (
            pb.SetValueRequest(
                key="api.timeout",
                value=value(5),
                environment="production",
                expires_at=timestamp(datetime.now(UTC) - timedelta(minutes=1)),
            ),
            "expires_at",
        ),
        (pb.SetValueRequest(key="api.timeout", value=value(5), reason="r" * 1001), "reason"),
    ]
    for request_, field in refusals:
        error = await expect_status(running.config.SetValue(request_), INVALID)
        assert field in field_violations(error), (request_, field_violations(error))

    error = await expect_status(
        running.config.SetValue(pb.SetValueRequest(key="big", value=huge)), INVALID
    )
    assert "65536" in field_violations(error)["value"]
    await expect_status(
        running.config.SetValue(pb.SetValueRequest(key="nope", value=value(1))),
        grpc.StatusCode.NOT_FOUND,
    )
    assert await state(running, "api.timeout") == before


async def test_set_value_stale_version_is_aborted_with_the_current_version(
    running: Running,
) -> None:
    current = await running.config.GetValue(pb.GetValueRequest(key="api.timeout"))
    await running.config.SetValue(pb.SetValueRequest(key="api.timeout", value=value(31)))
    before = await state(running, "api.timeout")

    error = await expect_status(
        running.config.SetValue(
            pb.SetValueRequest(key="api.timeout", value=value(32), expected_version=current.version)
        ),
        grpc.StatusCode.ABORTED,
    )

    info = error_details_pb2.ErrorInfo()
    assert rich_status(error).details[0].Unpack(info)
    assert info.reason == "VERSION_MISMATCH"
    assert int(info.metadata["current_version"]) == current.version + 1
    assert await state(running, "api.timeout") == before


async def test_set_value_with_matching_version_and_restart_flag(running: Running) -> None:
    current = await running.config.GetValue(pb.GetValueRequest(key="jobs.cleanup_schedule"))

    result = await running.config.SetValue(
        pb.SetValueRequest(
            key="jobs.cleanup_schedule", value=value("0 4 * * *"), expected_version=current.version
        )
    )

    assert result.requires_restart
    assert result.version == current.version + 1
    assert result.revision > current.revision


async def test_set_value_same_value_changes_nothing(running: Running) -> None:
    before = await state(running, "api.timeout")

    result = await running.config.SetValue(pb.SetValueRequest(key="api.timeout", value=value(30)))

    assert not result.changed
    assert await state(running, "api.timeout") == before


async def test_set_value_refused_for_read_only_key(running: Running) -> None:
    await create(running, "frozen", pb.CONFIG_TYPE_NUMBER, value=value(1), is_editable=False)
    before = await state(running, "frozen")

    await expect_status(
        running.config.SetValue(pb.SetValueRequest(key="frozen", value=value(2))),
        grpc.StatusCode.FAILED_PRECONDITION,
    )

    assert await state(running, "frozen") == before


async def test_set_value_depends_on_and_conflicts_with(running: Running) -> None:
    await create(running, "cache.enabled", pb.CONFIG_TYPE_BOOLEAN, value=value(False))
    await create(
        running,
        "cache.redis_url",
        pb.CONFIG_TYPE_URL,
        validation=pb.Validation(depends_on=["cache.enabled"]),
    )
    await create(
        running,
        "auth.sso_only",
        pb.CONFIG_TYPE_BOOLEAN,
        value=value(True),
    )
    await create(
        running,
        "auth.basic_enabled",
        pb.CONFIG_TYPE_BOOLEAN,
        validation=pb.Validation(conflicts_with=["auth.sso_only"]),
    )
    before = await state(running)

    error = await expect_status(
        running.config.SetValue(
            pb.SetValueRequest(key="cache.redis_url", value=value("redis://cache:6379"))
        ),
        INVALID,
    )
    assert "cache.enabled" in field_violations(error)["value"]
    error = await expect_status(
        running.config.SetValue(pb.SetValueRequest(key="auth.basic_enabled", value=value(True))),
        INVALID,
    )
    assert "auth.sso_only" in field_violations(error)["value"]
    assert await state(running) == before

    await running.config.SetValue(
        pb.SetValueRequest(key="cache.enabled", value=value(True), environment="staging")
    )
    staged = await running.config.SetValue(
        pb.SetValueRequest(
            key="cache.redis_url", value=value("redis://cache:6379"), environment="staging"
        )
    )
    assert staged.changed


# --- DeleteOverride --------------------------------------------------------------------------


async def test_delete_override_falls_back_to_base(running: Running) -> None:
    deleted = await running.config.DeleteOverride(
        pb.DeleteOverrideRequest(key="api.timeout", environment="production", reason="revert")
    )

    assert deleted.deleted == 1
    answer = await running.config.GetValue(
        pb.GetValueRequest(key="api.timeout", environment="production")
    )
    assert answer.value.number_value == 30
    history = await running.config.GetHistory(pb.GetHistoryRequest(key="api.timeout"))
    assert history.entries[0].action == pb.HISTORY_ACTION_DELETE
    assert history.entries[0].environment == "production"


async def test_delete_override_refusals(running: Running) -> None:
    before = await state(running, "api.timeout")

    await expect_status(
        running.config.DeleteOverride(
            pb.DeleteOverrideRequest(key="api.timeout", environment="staging")
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_status(
        running.config.DeleteOverride(
            pb.DeleteOverrideRequest(key="api.timeout", environment="production", priority=7)
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_status(
        running.config.DeleteOverride(pb.DeleteOverrideRequest(key="api.timeout")), INVALID
    )
    await expect_status(
        running.config.DeleteOverride(
            pb.DeleteOverrideRequest(key="api.timeout", environment="moon")
        ),
        INVALID,
    )
    await expect_status(
        running.config.DeleteOverride(
            pb.DeleteOverrideRequest(key="nope", environment="production")
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert await state(running, "api.timeout") == before


# --- Rollback --------------------------------------------------------------------------------


async def test_rollback_dry_run_shows_the_diff_and_changes_nothing(running: Running) -> None:
    await create(running, "doc", pb.CONFIG_TYPE_JSON)
    await running.config.SetValue(pb.SetValueRequest(key="doc", value=value({"a": 1})))
    await running.config.SetValue(pb.SetValueRequest(key="doc", value=value({"a": 2, "b": 3})))
    before = await state(running, "doc")

    plan = await running.config.Rollback(pb.RollbackRequest(key="doc", steps=1, dry_run=True))

    assert plan.dry_run
    assert plan.new_value == value({"a": 1})
    ops = [dict(op) for op in (o.struct_value.fields for o in plan.diff.values)]
    assert {op["path"].string_value for op in ops} == {"/a", "/b"}
    assert await state(running, "doc") == before


async def test_rollback_of_an_override_and_to_a_version(running: Running) -> None:
    await running.config.SetValue(
        pb.SetValueRequest(key="api.timeout", value=value(120), environment="production")
    )
    rolled = await running.config.Rollback(
        pb.RollbackRequest(key="api.timeout", environment="production")
    )
    assert rolled.new_value.number_value == 60

    v1 = await running.config.GetValue(pb.GetValueRequest(key="api.timeout"))
    await running.config.SetValue(pb.SetValueRequest(key="api.timeout", value=value(40)))
    await running.config.SetValue(pb.SetValueRequest(key="api.timeout", value=value(50)))
    back = await running.config.Rollback(
        pb.RollbackRequest(key="api.timeout", to_version=v1.version)
    )

    assert back.new_value.number_value == 30
    answer = await running.config.GetValue(pb.GetValueRequest(key="api.timeout"))
    assert answer.value.number_value == 30


async def test_rollback_of_a_new_override_removes_it(running: Running) -> None:
    await running.config.SetValue(
        pb.SetValueRequest(
            key="support.email", value=value("staging@example.com"), environment="staging"
        )
    )

    await running.config.Rollback(pb.RollbackRequest(key="support.email", environment="staging"))

    config = await running.config.GetConfig(pb.GetConfigRequest(key="support.email"))
    assert [o.environment for o in config.overrides] == []


async def test_rollback_refusals(running: Running) -> None:
    before = await state(running, "api.timeout")

    await expect_status(
        running.config.Rollback(pb.RollbackRequest(key="api.timeout", steps=50)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await expect_status(
        running.config.Rollback(pb.RollbackRequest(key="api.timeout", steps=1, to_version=1)),
        INVALID,
    )
    await expect_status(
        running.config.Rollback(pb.RollbackRequest(key="api.timeout", steps=-1)), INVALID
    )
    await expect_status(
        running.config.Rollback(pb.RollbackRequest(key="api.timeout", to_version=10_000)), INVALID
    )
    await expect_status(
        running.config.Rollback(pb.RollbackRequest(key="nope")), grpc.StatusCode.NOT_FOUND
    )
    await expect_status(
        running.config.Rollback(pb.RollbackRequest(key="api.timeout", environment="moon")), INVALID
    )
    assert await state(running, "api.timeout") == before


# --- GetHistory ------------------------------------------------------------------------------


async def test_history_says_who_when_why_and_what(running: Running) -> None:
    result = await running.config.SetValue(
        pb.SetValueRequest(key="api.timeout", value=value(45), reason="load test", ticket="OPS-7")
    )

    entry = (
        await running.config.GetHistory(pb.GetHistoryRequest(key="api.timeout", page_size=1))
    ).entries[0]

    assert entry.revision == result.revision
    assert entry.action == pb.HISTORY_ACTION_UPDATE
    assert entry.old_value.number_value == 30
    assert entry.new_value.number_value == 45
    assert entry.diff.values[0].struct_value.fields["op"].string_value == "replace"
    assert entry.reason == "load test"
    assert entry.ticket == "OPS-7"
    assert entry.changed_by
    assert entry.changed_by_role == "site_admin"
    assert "127.0.0.1" in entry.client_address
    assert entry.changed_at.seconds > 0
    assert entry.version == result.version


async def test_history_filters_layers_and_pages(running: Running) -> None:
    base_only = await running.config.GetHistory(
        pb.GetHistoryRequest(key="api.timeout", environment="-")
    )
    production = await running.config.GetHistory(
        pb.GetHistoryRequest(key="api.timeout", environment="production")
    )
    assert all(e.environment == "" for e in base_only.entries)
    assert [e.environment for e in production.entries] == ["production"]

    first = await running.config.GetHistory(pb.GetHistoryRequest(page_size=3))
    second = await running.config.GetHistory(
        pb.GetHistoryRequest(page_size=3, page_token=first.next_page_token)
    )
    revisions = [e.revision for e in (*first.entries, *second.entries)]
    assert revisions == sorted(revisions, reverse=True)
    assert len({e.id for e in (*first.entries, *second.entries)}) == 6


async def test_history_refusals(running: Running) -> None:
    await expect_status(running.config.GetHistory(pb.GetHistoryRequest(page_token="%%%")), INVALID)
    await expect_status(running.config.GetHistory(pb.GetHistoryRequest(key="BAD KEY")), INVALID)
    await expect_status(running.config.GetHistory(pb.GetHistoryRequest(after_revision=-1)), INVALID)


# --- environments ----------------------------------------------------------------------------


async def test_new_environment_inherits(running: Running) -> None:
    await running.config.UpsertEnvironment(
        pb.UpsertEnvironmentRequest(environment=pb.Environment(name="canary", parent="production"))
    )

    answer = await running.config.GetValue(
        pb.GetValueRequest(key="api.timeout", environment="canary")
    )
    environments = await running.config.ListEnvironments(pb.ListEnvironmentsRequest())

    assert answer.value.number_value == 60
    assert answer.source_environment == "production"
    assert {e.name: e.parent for e in environments.environments}["canary"] == "production"


async def test_environment_refusals(running: Running) -> None:
    before = await state(running)

    # production <- demo; making production inherit from demo closes a cycle.
    error = await expect_status(
        running.config.UpsertEnvironment(
            pb.UpsertEnvironmentRequest(
                environment=pb.Environment(name="production", parent="demo")
            )
        ),
        INVALID,
    )
    assert "environment.parent" in field_violations(error)
    await expect_status(
        running.config.UpsertEnvironment(
            pb.UpsertEnvironmentRequest(environment=pb.Environment(name="x", parent="nowhere"))
        ),
        INVALID,
    )
    await expect_status(
        running.config.UpsertEnvironment(
            pb.UpsertEnvironmentRequest(environment=pb.Environment(name="Bad Name"))
        ),
        INVALID,
    )
    await expect_status(running.config.UpsertEnvironment(pb.UpsertEnvironmentRequest()), INVALID)
    assert await state(running) == before


# --- templates -------------------------------------------------------------------------------


def template(name: str, values: dict[str, Any], **fields: Any) -> pb.Template:
    config_values = struct_pb2.Struct()
    config_values.update(values)
    fields.setdefault("is_active", True)
    return pb.Template(name=name, template_type="preset", config_values=config_values, **fields)


async def test_apply_template_dry_run_then_apply(running: Running) -> None:
    await running.config.UpsertTemplate(
        pb.UpsertTemplateRequest(template=template("fast", {"api.timeout": 10, "cache.ttl": "1m"}))
    )
    before = await state(running)

    plan = await running.config.ApplyTemplate(
        pb.ApplyTemplateRequest(template_name="fast", environment="staging", dry_run=True)
    )
    assert plan.dry_run and not plan.applied
    assert {r.key: r.outcome for r in plan.results} == {
        "api.timeout": pb.TEMPLATE_ITEM_OUTCOME_UPDATED,
        "cache.ttl": pb.TEMPLATE_ITEM_OUTCOME_UPDATED,
    }
    assert await state(running) == before

    applied = await running.config.ApplyTemplate(
        pb.ApplyTemplateRequest(template_name="fast", environment="staging", reason="speed")
    )
    assert applied.applied
    answer = await running.config.GetValue(
        pb.GetValueRequest(key="api.timeout", environment="staging")
    )
    assert answer.value.number_value == 10
    assert answer.revision == applied.revision
    listed = await running.config.ListTemplates(pb.ListTemplatesRequest())
    assert {t.name: t.usage_count for t in listed.templates}["fast"] == 1


async def test_apply_template_is_all_or_nothing_unless_best_effort(running: Running) -> None:
    await running.config.UpsertTemplate(
        pb.UpsertTemplateRequest(
            template=template("mixed", {"api.timeout": 20, "support.email": "not-an-email"})
        )
    )
    before = await state(running)

    error = await expect_status(
        running.config.ApplyTemplate(
            pb.ApplyTemplateRequest(template_name="mixed", environment="staging")
        ),
        INVALID,
    )
    assert "config_values.support.email" in field_violations(error)
    assert await state(running) == before

    partial = await running.config.ApplyTemplate(
        pb.ApplyTemplateRequest(template_name="mixed", environment="staging", best_effort=True)
    )
    assert partial.applied
    assert {r.key: r.outcome for r in partial.results} == {
        "api.timeout": pb.TEMPLATE_ITEM_OUTCOME_UPDATED,
        "support.email": pb.TEMPLATE_ITEM_OUTCOME_REFUSED,
    }


async def test_template_refusals(running: Running) -> None:
    before = await state(running)

    await expect_status(running.config.UpsertTemplate(pb.UpsertTemplateRequest()), INVALID)
    await expect_status(
        running.config.UpsertTemplate(pb.UpsertTemplateRequest(template=template("empty", {}))),
        INVALID,
    )
    await expect_status(
        running.config.UpsertTemplate(
            pb.UpsertTemplateRequest(template=template("bad", {"BAD KEY": 1}))
        ),
        INVALID,
    )
    await expect_status(
        running.config.ApplyTemplate(pb.ApplyTemplateRequest(template_name="nope")),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_status(running.config.ApplyTemplate(pb.ApplyTemplateRequest()), INVALID)
    await expect_status(
        running.config.ListTemplates(pb.ListTemplatesRequest(page_token="@@")), INVALID
    )
    assert await state(running) == before


# --- defaults: unset means what the specification says ---------------------------------


async def test_a_key_created_without_its_flags_is_active_editable_and_deletable(
    running: Running,
) -> None:
    """The specification's defaults (pf_system_config: is_active, is_editable and
    is_deletable DEFAULT 1), not proto3's false: such a key reads, takes values and
    can be deleted."""
    created = await running.config.CreateConfig(
        pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key="plain.key", type=pb.CONFIG_TYPE_NUMBER, category="c", value=value(1)
            )
        )
    )
    config = created.config
    assert (config.is_active, config.is_editable, config.is_deletable) == (True, True, True)
    assert all(config.HasField(f) for f in ("is_active", "is_editable", "is_deletable"))
    read = await running.config.GetValue(pb.GetValueRequest(key="plain.key"))
    assert read.value.number_value == 1
    await running.config.SetValue(
        pb.SetValueRequest(key="plain.key", environment="staging", value=value(2))
    )
    await running.config.DeleteConfig(pb.DeleteConfigRequest(key="plain.key"))


async def test_flags_set_to_false_are_kept(running: Running) -> None:
    created = await running.config.CreateConfig(
        pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key="locked.key",
                type=pb.CONFIG_TYPE_NUMBER,
                category="c",
                value=value(1),
                is_active=True,
                is_editable=False,
                is_deletable=False,
            )
        )
    )
    assert (created.config.is_editable, created.config.is_deletable) == (False, False)
    assert created.config.HasField("is_editable"), "answers set the field, false included"
    await expect_status(
        running.config.SetValue(pb.SetValueRequest(key="locked.key", value=value(2))),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_an_update_keeps_what_its_mask_does_not_name_and_defaults_what_it_names(
    running: Running,
) -> None:
    await create(running, "retired.key", pb.CONFIG_TYPE_STRING, is_active=False)

    described = await running.config.UpdateConfig(
        pb.UpdateConfigRequest(
            config=pb.ConfigDefinition(key="retired.key", description="still retired"),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        )
    )
    assert not described.config.is_active, "a field the mask does not name is kept"

    named = await running.config.UpdateConfig(
        pb.UpdateConfigRequest(
            config=pb.ConfigDefinition(key="retired.key"),
            update_mask=field_mask_pb2.FieldMask(paths=["is_active"]),
        )
    )
    assert named.config.is_active, "a field the mask names takes the request's: unset is true"

    await running.config.UpdateConfig(
        pb.UpdateConfigRequest(
            config=pb.ConfigDefinition(key="retired.key", is_active=False),
            update_mask=field_mask_pb2.FieldMask(paths=["is_active"]),
        )
    )
    replaced = await running.config.UpdateConfig(
        pb.UpdateConfigRequest(
            config=pb.ConfigDefinition(
                key="retired.key", type=pb.CONFIG_TYPE_STRING, category="test"
            )
        )
    )
    config = replaced.config
    assert (config.is_active, config.is_editable, config.is_deletable) == (True, True, True)


async def test_a_template_upserted_without_is_active_is_active(running: Running) -> None:
    values = struct_pb2.Struct()
    values.update({"api.timeout": 12})
    upserted = await running.config.UpsertTemplate(
        pb.UpsertTemplateRequest(
            template=pb.Template(name="plain", template_type="preset", config_values=values)
        )
    )
    assert upserted.template.is_active
    applied = await running.config.ApplyTemplate(
        pb.ApplyTemplateRequest(template_name="plain", environment="staging")
    )
    assert applied.applied


# --- not served yet --------------------------------------------------------------------------


async def test_cache_ttl_is_300_seconds_unless_set_and_0_is_kept(running: Running) -> None:
    unset = await create(running, "ttl.default", pb.CONFIG_TYPE_STRING)
    never = await create(running, "ttl.never", pb.CONFIG_TYPE_STRING, cache_ttl_seconds=0)

    assert unset.cache_ttl_seconds == 300
    assert never.HasField("cache_ttl_seconds") and never.cache_ttl_seconds == 0
