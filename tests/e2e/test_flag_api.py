"""FlagService over gRPC against a real server and a real SQLite file: management with
history and revisions, evaluation, the kill switch across replicas, counters, the
error-rate guard, and bad input on every RPC."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from switchyard.gen.v1 import config_pb2 as config_pb
from switchyard.gen.v1 import flag_pb2 as pb
from switchyard.gen.v1 import flag_pb2_grpc

from ..redis_servers import RedisServer
from .conftest import Running, serving
from .helpers import eventually, expect_status, field_violations


@pytest.fixture
def flags(running: Running) -> flag_pb2_grpc.FlagServiceStub:
    return flag_pb2_grpc.FlagServiceStub(running.channel)


def rules(*items: dict[str, object]) -> struct_pb2.ListValue:
    out = struct_pb2.ListValue()
    out.extend(items)
    return out


def checkout(**fields: object) -> pb.FeatureFlag:
    values: dict[str, object] = {
        "key": "new_checkout",
        "name": "New checkout",
        "is_enabled": True,
        "rollout_percentage": 100,
        "feature_category": "beta",
        "feature_type": "release",
        **fields,
    }
    return pb.FeatureFlag(**values)  # type: ignore[arg-type]


def context(user: str = "alice", **fields: object) -> pb.EvaluationContext:
    return pb.EvaluationContext(user_id=user, **fields)  # type: ignore[arg-type]


async def history(running: Running, key: str) -> list[config_pb.HistoryEntry]:
    response = await running.config.GetHistory(config_pb.GetHistoryRequest(key=key))
    return [e for e in response.entries if e.kind == config_pb.CHANGE_KIND_FLAG]


async def test_a_flag_is_created_evaluated_changed_and_recorded(
    running: Running, flags: flag_pb2_grpc.FlagServiceStub
) -> None:
    created = await flags.UpsertFlag(
        pb.UpsertFlagRequest(flag=checkout(), reason="launch", ticket="REL-1")
    )
    assert created.created and created.flag.version == 1 and created.revision > 0
    assert created.flag.is_active and created.flag.cache_ttl_seconds == 60

    answer = await flags.EvaluateFlag(
        pb.EvaluateFlagRequest(flag_key="new_checkout", context=context())
    )
    assert (answer.enabled, answer.reason, answer.variant) == (
        True,
        pb.EVALUATION_REASON_DEFAULT,
        "on",
    )
    assert answer.value.bool_value is True and answer.revision >= created.revision

    half = await flags.UpsertFlag(
        pb.UpsertFlagRequest(flag=checkout(rollout_percentage=50), expected_version=1)
    )
    assert half.flag.version == 2 and half.revision > created.revision
    answers = [
        await flags.EvaluateFlag(
            pb.EvaluateFlagRequest(flag_key="new_checkout", context=context(f"user-{i}"))
        )
        for i in range(1_000)
    ]
    assert 450 <= sum(a.enabled for a in answers) <= 550

    rows = await history(running, "new_checkout")
    assert [(r.action, r.revision) for r in rows] == [
        (config_pb.HISTORY_ACTION_UPDATE, half.revision),
        (config_pb.HISTORY_ACTION_CREATE, created.revision),
    ]
    assert rows[1].reason == "launch" and rows[1].ticket == "REL-1"

    again = await flags.UpsertFlag(pb.UpsertFlagRequest(flag=checkout(rollout_percentage=50)))
    assert not again.created and again.flag.version == 2 and again.revision == half.revision


async def test_evaluate_flags_answers_every_active_flag_for_one_context(
    flags: flag_pb2_grpc.FlagServiceStub,
) -> None:
    await flags.UpsertFlag(pb.UpsertFlagRequest(flag=checkout()))
    await flags.UpsertFlag(
        pb.UpsertFlagRequest(
            flag=checkout(key="admin_tools", rollout_percentage=0, enabled_for_roles=["admin"])
        )
    )
    await flags.UpsertFlag(pb.UpsertFlagRequest(flag=checkout(key="retired", is_active=False)))

    response = await flags.EvaluateFlags(pb.EvaluateFlagsRequest(context=context(roles=["admin"])))

    assert {(r.flag_key, r.enabled, r.reason) for r in response.results} == {
        ("admin_tools", True, pb.EVALUATION_REASON_ROLE_TARGETED),
        ("new_checkout", True, pb.EVALUATION_REASON_DEFAULT),
    }
    assert response.revision > 0


async def test_the_kill_switch_and_rollback(
    running: Running, flags: flag_pb2_grpc.FlagServiceStub
) -> None:
    await flags.UpsertFlag(pb.UpsertFlagRequest(flag=checkout()))
    await flags.UpsertFlag(pb.UpsertFlagRequest(flag=checkout(rollout_percentage=25)))

    off = await flags.SetFlagEnabled(
        pb.SetFlagEnabledRequest(flag_key="new_checkout", enabled=False, reason="incident")
    )
    answer = await flags.EvaluateFlag(
        pb.EvaluateFlagRequest(flag_key="new_checkout", context=context())
    )
    assert (off.flag.is_enabled, answer.enabled, answer.reason) == (
        False,
        False,
        pb.EVALUATION_REASON_DISABLED,
    )
    same = await flags.SetFlagEnabled(
        pb.SetFlagEnabledRequest(flag_key="new_checkout", enabled=False)
    )
    assert same.revision == off.revision  # nothing to record

    back = await flags.RollbackFlag(
        pb.RollbackFlagRequest(flag_key="new_checkout", steps=2, reason="undo")
    )
    assert (back.flag.is_enabled, back.flag.rollout_percentage, back.flag.version) == (True, 100, 4)
    rows = await history(running, "new_checkout")
    assert [r.action for r in rows][:2] == [
        config_pb.HISTORY_ACTION_ROLLBACK,
        config_pb.HISTORY_ACTION_DISABLE,
    ]

    await expect_status(
        flags.RollbackFlag(pb.RollbackFlagRequest(flag_key="new_checkout", steps=4)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_prerequisite_cycles_and_dependents_are_refused(
    running: Running, flags: flag_pb2_grpc.FlagServiceStub
) -> None:
    await flags.UpsertFlag(pb.UpsertFlagRequest(flag=checkout(key="a")))
    await flags.UpsertFlag(
        pb.UpsertFlagRequest(flag=checkout(key="b", prerequisite_features=["a"]))
    )
    before = await running.config.GetHistory(config_pb.GetHistoryRequest())

    error = await expect_status(
        flags.UpsertFlag(pb.UpsertFlagRequest(flag=checkout(key="a", prerequisite_features=["b"]))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "a -> b -> a" in field_violations(error)["flag.prerequisite_features"]
    await expect_status(
        flags.DeleteFlag(pb.DeleteFlagRequest(flag_key="a")), grpc.StatusCode.FAILED_PRECONDITION
    )
    await flags.UpsertFlag(pb.UpsertFlagRequest(flag=checkout(key="keep", is_permanent=True)))
    await expect_status(
        flags.DeleteFlag(pb.DeleteFlagRequest(flag_key="keep")), grpc.StatusCode.FAILED_PRECONDITION
    )

    after = await running.config.GetHistory(config_pb.GetHistoryRequest())
    assert len(after.entries) == len(before.entries) + 1  # only the permanent flag's creation
    deleted = await flags.DeleteFlag(pb.DeleteFlagRequest(flag_key="b", reason="done"))
    await expect_status(flags.GetFlag(pb.GetFlagRequest(flag_key="b")), grpc.StatusCode.NOT_FOUND)
    gone = await flags.EvaluateFlag(pb.EvaluateFlagRequest(flag_key="b", context=context()))
    assert gone.reason == pb.EVALUATION_REASON_NOT_FOUND and gone.revision >= deleted.revision


async def test_list_flags_filters_and_pages(flags: flag_pb2_grpc.FlagServiceStub) -> None:
    for i in range(5):
        await flags.UpsertFlag(
            pb.UpsertFlagRequest(
                flag=checkout(
                    key=f"f{i}", owner_team="web" if i % 2 else "api", is_deprecated=i == 4
                )
            )
        )
    first = await flags.ListFlags(pb.ListFlagsRequest(page_size=2))
    second = await flags.ListFlags(
        pb.ListFlagsRequest(page_size=2, page_token=first.next_page_token)
    )
    web = await flags.ListFlags(pb.ListFlagsRequest(owner_team="web"))
    deprecated = await flags.ListFlags(pb.ListFlagsRequest(deprecated_only=True))

    assert [f.key for f in first.flags] + [f.key for f in second.flags] == ["f0", "f1", "f2", "f3"]
    assert [f.key for f in web.flags] == ["f1", "f3"]
    assert [f.key for f in deprecated.flags] == ["f4"]


async def test_flag_changes_reach_watchers_of_kind_flag(
    running: Running, flags: flag_pb2_grpc.FlagServiceStub
) -> None:
    created = await flags.UpsertFlag(pb.UpsertFlagRequest(flag=checkout()))
    stream = running.config.WatchConfig(
        config_pb.WatchConfigRequest(
            kinds=[config_pb.CHANGE_KIND_FLAG], from_revision=created.revision - 1
        )
    )
    await flags.SetFlagEnabled(pb.SetFlagEnabledRequest(flag_key="new_checkout", enabled=False))
    events = []
    async with asyncio.timeout(5):
        async for message in stream:
            if message.HasField("event"):
                events.append((message.event.key, message.event.action))
            if len(events) == 2:
                break
    stream.cancel()

    assert events == [
        ("new_checkout", config_pb.HISTORY_ACTION_CREATE),
        ("new_checkout", config_pb.HISTORY_ACTION_DISABLE),
    ]


async def test_evaluation_counts_are_written_in_batches(tmp_path: Path) -> None:
    async with serving(tmp_path / "counts.db", flag_flush_seconds=0.2) as running:
        flags = flag_pb2_grpc.FlagServiceStub(running.channel)
        await flags.UpsertFlag(pb.UpsertFlagRequest(flag=checkout()))
        for _ in range(25):
            await flags.EvaluateFlag(
                pb.EvaluateFlagRequest(flag_key="new_checkout", context=context())
            )

        async def counted() -> bool:
            flag = (await flags.GetFlag(pb.GetFlagRequest(flag_key="new_checkout"))).flag
            return flag.evaluation_count == 25 and flag.HasField("last_evaluated")

        await eventually(counted)
        flag = (await flags.GetFlag(pb.GetFlagRequest(flag_key="new_checkout"))).flag
        assert flag.version == 1  # counting is not a change


async def test_a_failing_flag_turns_itself_off(
    running: Running, flags: flag_pb2_grpc.FlagServiceStub
) -> None:
    await flags.UpsertFlag(
        pb.UpsertFlagRequest(flag=checkout(auto_disable_on_error=True, failure_threshold=0.1))
    )
    calm = await flags.ReportFlagOutcome(
        pb.ReportFlagOutcomeRequest(flag_key="new_checkout", successes=95, errors=5)
    )
    assert not calm.auto_disabled and calm.error_rate == pytest.approx(0.05)

    tripped = await flags.ReportFlagOutcome(
        pb.ReportFlagOutcomeRequest(flag_key="new_checkout", successes=0, errors=20)
    )

    assert tripped.auto_disabled and tripped.error_rate == pytest.approx(25 / 120)
    answer = await flags.EvaluateFlag(
        pb.EvaluateFlagRequest(flag_key="new_checkout", context=context())
    )
    assert answer.reason == pb.EVALUATION_REASON_DISABLED
    row = (await history(running, "new_checkout"))[0]
    assert row.action == config_pb.HISTORY_ACTION_DISABLE and "error rate" in row.reason


async def test_the_kill_switch_reaches_another_replica(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    database = tmp_path / "replicas.db"
    async with (
        serving(database, redis_url=redis_server.url, poll_seconds=30) as a,
        serving(database, redis_url=redis_server.url, poll_seconds=30) as b,
    ):
        on_a = flag_pb2_grpc.FlagServiceStub(a.channel)
        on_b = flag_pb2_grpc.FlagServiceStub(b.channel)
        await on_a.UpsertFlag(pb.UpsertFlagRequest(flag=checkout()))

        async def answer_on_b(expected: bool) -> Callable[[], object]:
            async def check() -> bool:
                result = await on_b.EvaluateFlag(
                    pb.EvaluateFlagRequest(flag_key="new_checkout", context=context())
                )
                return result.enabled is expected

            return check

        await eventually(await answer_on_b(True), within=2)
        started = asyncio.get_running_loop().time()
        await on_a.SetFlagEnabled(pb.SetFlagEnabledRequest(flag_key="new_checkout", enabled=False))
        await eventually(await answer_on_b(False), within=2)
        assert asyncio.get_running_loop().time() - started < 1.0  # not the 30 s poll


BAD_REQUESTS: list[
    tuple[str, Callable[[flag_pb2_grpc.FlagServiceStub], object], grpc.StatusCode]
] = [
    (
        "EvaluateFlag",
        lambda s: s.EvaluateFlag(pb.EvaluateFlagRequest()),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "EvaluateFlags",
        lambda s: s.EvaluateFlags(
            pb.EvaluateFlagsRequest(
                context=pb.EvaluationContext(roles=[f"r{i}" for i in range(101)])
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "GetFlag",
        lambda s: s.GetFlag(pb.GetFlagRequest(flag_key="Bad Key")),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "GetFlag",
        lambda s: s.GetFlag(pb.GetFlagRequest(flag_key="missing")),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "ListFlags",
        lambda s: s.ListFlags(pb.ListFlagsRequest(page_token="!!")),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "ListFlags",
        lambda s: s.ListFlags(pb.ListFlagsRequest(page_size=-1)),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "UpsertFlag",
        lambda s: s.UpsertFlag(pb.UpsertFlagRequest()),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "UpsertFlag",
        lambda s: s.UpsertFlag(pb.UpsertFlagRequest(flag=checkout(rollout_percentage=101))),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "UpsertFlag",
        lambda s: s.UpsertFlag(pb.UpsertFlagRequest(flag=checkout(), expected_version=7)),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "SetFlagEnabled",
        lambda s: s.SetFlagEnabled(pb.SetFlagEnabledRequest(flag_key="missing", enabled=True)),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "DeleteFlag",
        lambda s: s.DeleteFlag(pb.DeleteFlagRequest()),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "RollbackFlag",
        lambda s: s.RollbackFlag(pb.RollbackFlagRequest(flag_key="x", steps=0)),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "RollbackFlag",
        lambda s: s.RollbackFlag(pb.RollbackFlagRequest(flag_key="missing", steps=1)),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "ReportFlagOutcome",
        lambda s: s.ReportFlagOutcome(pb.ReportFlagOutcomeRequest(flag_key="missing", errors=1)),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "ReportFlagOutcome",
        lambda s: s.ReportFlagOutcome(pb.ReportFlagOutcomeRequest(flag_key="x", errors=-1)),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
]


@pytest.mark.parametrize(("method", "call", "code"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
async def test_bad_input_gets_a_clear_status_and_changes_nothing(
    running: Running,
    flags: flag_pb2_grpc.FlagServiceStub,
    method: str,
    call: Callable[[flag_pb2_grpc.FlagServiceStub], object],
    code: grpc.StatusCode,
) -> None:
    before = await running.config.GetHistory(config_pb.GetHistoryRequest())

    await expect_status(call(flags), code)  # type: ignore[arg-type]

    after = await running.config.GetHistory(config_pb.GetHistoryRequest())
    assert after.revision == before.revision and len(after.entries) == len(before.entries)


async def test_every_problem_of_a_flag_is_named_at_once(
    flags: flag_pb2_grpc.FlagServiceStub,
) -> None:
    flag = checkout(
        key="Bad Key",
        rollout_percentage=-1,
        feature_category="alpha",
        schedule_cron="every day",
        owner_email="not-an-email",
        targeting_rules=rules(
            {"id": "r", "when": {"attribute": "plan", "op": "like", "value": "x"}}
        ),
    )

    error = await expect_status(
        flags.UpsertFlag(pb.UpsertFlagRequest(flag=flag)), grpc.StatusCode.INVALID_ARGUMENT
    )

    fields = set(field_violations(error))
    assert {
        "flag.key",
        "flag.rollout_percentage",
        "flag.feature_category",
        "flag.schedule_cron",
        "flag.owner_email",
    } <= fields
    assert any(f.startswith("flag.targeting_rules[0]") for f in fields)


async def test_a_stale_flag_is_reported(tmp_path: Path) -> None:
    async with serving(tmp_path / "stale.db", flag_stale_days=0) as running:
        flags = flag_pb2_grpc.FlagServiceStub(running.channel)
        await flags.UpsertFlag(pb.UpsertFlagRequest(flag=checkout(key="everyone")))
        await flags.UpsertFlag(
            pb.UpsertFlagRequest(flag=checkout(key="half", rollout_percentage=50))
        )
        await flags.UpsertFlag(pb.UpsertFlagRequest(flag=checkout(key="kept", is_permanent=True)))

        stale = await flags.ListFlags(pb.ListFlagsRequest(stale_only=True))

        assert [f.key for f in stale.flags] == ["everyone"] and stale.flags[0].stale


async def test_an_update_that_names_no_bucketing_version_keeps_the_flags(
    flags: flag_pb2_grpc.FlagServiceStub,
) -> None:
    legacy = await flags.UpsertFlag(
        pb.UpsertFlagRequest(flag=checkout(rollout_percentage=30, bucketing_version=1))
    )
    fresh = await flags.UpsertFlag(pb.UpsertFlagRequest(flag=checkout(key="fresh")))

    updated = await flags.UpsertFlag(pb.UpsertFlagRequest(flag=checkout(rollout_percentage=40)))

    assert (legacy.flag.bucketing_version, fresh.flag.bucketing_version) == (1, 2)
    assert updated.flag.bucketing_version == 1
    await expect_status(
        flags.UpsertFlag(pb.UpsertFlagRequest(flag=checkout(bucketing_version=3))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
