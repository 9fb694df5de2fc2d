"""BatchService over real gRPC: many writes commit as one revision or not at all; a dry
run reports each write's changes and every refusal, and changes nothing; each write is
checked and permitted as its own RPC would be."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2
from prometheus_client import REGISTRY

from switchyard.api.batch import METHOD
from switchyard.gen.v1 import batch_pb2 as bpb
from switchyard.gen.v1 import batch_pb2_grpc
from switchyard.gen.v1 import change_pb2 as cpb
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import flag_pb2 as fpb

from .conftest import Running, serving
from .helpers import expect_status, field_violations
from .test_security import bearer, make_token


def batches(running: Running) -> batch_pb2_grpc.BatchServiceStub:
    return batch_pb2_grpc.BatchServiceStub(running.channel)


def create(key: str, value: object, kind: int = pb.CONFIG_TYPE_NUMBER) -> cpb.ProposedWrite:
    return cpb.ProposedWrite(
        create_config=pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key=key,
                type=kind,  # type: ignore[arg-type]
                category="batch",
                value=struct_pb2.Value(number_value=value)
                if isinstance(value, int | float)
                else struct_pb2.Value(string_value=str(value)),
                is_active=True,
                is_editable=True,
                is_deletable=True,
            )
        )
    )


def set_value(key: str, number: float, environment: str = "") -> cpb.ProposedWrite:
    return cpb.ProposedWrite(
        set_value=pb.SetValueRequest(
            key=key, environment=environment, value=struct_pb2.Value(number_value=number)
        )
    )


def flag(key: str, enabled: bool = True) -> cpb.ProposedWrite:
    return cpb.ProposedWrite(
        upsert_flag=fpb.UpsertFlagRequest(
            flag=fpb.FeatureFlag(key=key, name=key, is_enabled=enabled, rollout_percentage=100)
        )
    )


async def revision(running: Running, metadata: tuple[tuple[str, str], ...] = ()) -> int:
    listed = await running.config.ListEnvironments(pb.ListEnvironmentsRequest(), metadata=metadata)
    return listed.revision


async def exists(running: Running, key: str) -> bool:
    try:
        await running.config.GetConfig(pb.GetConfigRequest(key=key))
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
        return False
    return True


async def test_writes_commit_together_under_one_revision(running: Running) -> None:
    before = await revision(running)
    response = await batches(running).ApplyWrites(
        bpb.ApplyWritesRequest(
            writes=[
                create("batch.limit", 10),
                set_value("batch.limit", 20, "staging"),  # sees the key created before it
                flag("batch_flag"),
                set_value("api.timeout", 30),  # the demo value already: changes nothing
            ],
            reason="import",
            ticket="OPS-1",
        )
    )
    assert response.revision == before + 1
    assert not response.dry_run
    kinds = [[c.action for c in outcome.changes] for outcome in response.outcomes]
    assert kinds == [
        [pb.HISTORY_ACTION_CREATE],
        [pb.HISTORY_ACTION_CREATE],  # the new override
        [pb.HISTORY_ACTION_CREATE],
        [],
    ]
    history = await running.config.GetHistory(pb.GetHistoryRequest(after_revision=before))
    assert {e.revision for e in history.entries} == {before + 1}
    assert {(e.reason, e.ticket) for e in history.entries} == {("import", "OPS-1")}
    staged = await running.config.GetValue(
        pb.GetValueRequest(key="batch.limit", environment="staging")
    )
    assert staged.value.number_value == 20


async def test_a_dry_run_reports_every_write_and_every_refusal_and_changes_nothing(
    running: Running,
) -> None:
    before = await revision(running)
    response = await batches(running).ApplyWrites(
        bpb.ApplyWritesRequest(
            writes=[
                create("batch.fresh", 5),
                set_value("batch.fresh", -1, "staging"),
                set_value("no.such.key", 1),
                create("batch.word", "text"),  # a string value for a number key
                flag("batch_dry"),
            ],
            dry_run=True,
        )
    )
    assert response.dry_run
    assert response.revision == before
    first, second, missing, mistyped, flagged = response.outcomes
    assert [c.action for c in first.changes] == [pb.HISTORY_ACTION_CREATE]
    assert first.changes[0].revision == before + 1  # the revision it would have taken
    assert [c.action for c in second.changes] == [pb.HISTORY_ACTION_CREATE]
    assert missing.refusal.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "no.such.key" in missing.refusal.message
    assert mistyped.refusal.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [f.field for f in mistyped.refusal.fields]
    assert not flagged.HasField("refusal")
    assert [c.action for c in flagged.changes] == [pb.HISTORY_ACTION_CREATE]
    assert await revision(running) == before
    assert not await exists(running, "batch.fresh")


async def test_one_refused_write_refuses_the_batch_naming_every_refusal(running: Running) -> None:
    before = await revision(running)
    error = await expect_status(
        batches(running).ApplyWrites(
            bpb.ApplyWritesRequest(
                writes=[
                    create("batch.kept_out", 1),
                    create("batch.bad", "not a number"),
                    set_value("api.timeout", 99999999),  # above the demo key's maximum
                ]
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "nothing was applied" in (error.details() or "")
    fields = field_violations(error)
    assert any(f.startswith("writes[1].create_config.") for f in fields), fields
    assert any(f.startswith("writes[2].set_value.") for f in fields), fields
    assert not any(f.startswith("writes[0]") for f in fields)
    assert await revision(running) == before
    assert not await exists(running, "batch.kept_out")


async def test_the_secret_guard_refuses_a_credential_in_a_batch(running: Running) -> None:
    secret = cpb.ProposedWrite(
        create_config=pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key="batch.aws_key",
                type=pb.CONFIG_TYPE_STRING,
                value=struct_pb2.Value(string_value="AKIAIOSFODNN7EXAMPLE"),
                is_active=True,
                is_editable=True,
            )
        )
    )
    response = await batches(running).ApplyWrites(
        bpb.ApplyWritesRequest(writes=[secret], dry_run=True)
    )
    (outcome,) = response.outcomes
    assert outcome.refusal.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert not await exists(running, "batch.aws_key")


@pytest.mark.parametrize(
    ("writes", "field"),
    [
        ([], "writes"),
        ([cpb.ProposedWrite()], "writes[0]"),
        ([flag("twice"), flag("twice", enabled=False)], "writes[1].upsert_flag"),
        (
            [
                cpb.ProposedWrite(
                    apply_template=pb.ApplyTemplateRequest(template_name="t", dry_run=True)
                )
            ],
            "writes[0].apply_template.dry_run",
        ),
    ],
)
async def test_malformed_batches_are_refused_whole(
    running: Running, writes: list[cpb.ProposedWrite], field: str
) -> None:
    before = await revision(running)
    error = await expect_status(
        batches(running).ApplyWrites(bpb.ApplyWritesRequest(writes=writes)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert field in field_violations(error)
    assert await revision(running) == before


async def test_each_write_needs_its_own_permission(tmp_path: Path) -> None:
    async with serving(tmp_path / "batch-auth.db", auth=True) as running:
        editor = bearer(await make_token(running, "eve", "editor"))
        reader = bearer(await make_token(running, "rita", "reader"))
        admin = bearer(await make_token(running, "ada", "admin"))
        before = await revision(running, reader)
        # An editor may set staging, but not protected production: the batch is refused.
        error = await expect_status(
            batches(running).ApplyWrites(
                bpb.ApplyWritesRequest(
                    writes=[
                        set_value("api.timeout", 40, "staging"),
                        set_value("api.timeout", 41, "production"),
                    ]
                ),
                metadata=editor,
            ),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        assert "writes[1]" in (error.details() or "")
        await expect_status(
            batches(running).ApplyWrites(
                bpb.ApplyWritesRequest(writes=[set_value("api.timeout", 40, "staging")]),
                metadata=reader,
            ),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        counted = REGISTRY.get_sample_value(
            "switchyard_denied_calls_total", {"method": METHOD, "reason": "needs_approval"}
        )
        proposal = await expect_status(
            batches(running).ApplyWrites(
                bpb.ApplyWritesRequest(writes=[set_value("api.timeout", 41, "production")]),
                metadata=admin,
            ),
            grpc.StatusCode.FAILED_PRECONDITION,  # an admin proposes changes to production
        )
        assert "writes[0]" in (proposal.details() or "")
        assert (
            REGISTRY.get_sample_value(
                "switchyard_denied_calls_total", {"method": METHOD, "reason": "needs_approval"}
            )
            == (counted or 0) + 1
        )
        assert await revision(running, reader) == before
        applied = await batches(running).ApplyWrites(
            bpb.ApplyWritesRequest(writes=[set_value("api.timeout", 40, "staging")]),
            metadata=editor,
        )
        assert applied.revision == before + 1


async def test_an_apply_made_from_a_stale_plan_is_refused(running: Running) -> None:
    """`expected_revision`: what is applied is exactly what was planned."""
    writes = [set_value("api.timeout", 33, "staging")]
    plan = await batches(running).ApplyWrites(bpb.ApplyWritesRequest(writes=writes, dry_run=True))
    await running.config.SetValue(
        pb.SetValueRequest(
            key="cache.ttl", value=struct_pb2.Value(string_value="61s"), reason="meanwhile"
        )
    )
    moved = await revision(running)
    error = await expect_status(
        batches(running).ApplyWrites(
            bpb.ApplyWritesRequest(writes=writes, expected_revision=plan.revision)
        ),
        grpc.StatusCode.ABORTED,
    )
    assert "plan again" in (error.details() or "")
    assert await revision(running) == moved
    applied = await batches(running).ApplyWrites(
        bpb.ApplyWritesRequest(writes=writes, expected_revision=moved)
    )
    assert applied.revision == moved + 1
