"""Four-eyes approval through the real server: a write to production by an admin waits
as a change request; its proposer cannot approve it; a second person's approval applies
it in one transaction, recorded with both names; a stale or amended request is refused
and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from switchyard.gen.v1 import change_pb2 as cpb
from switchyard.gen.v1 import change_pb2_grpc
from switchyard.gen.v1 import config_pb2 as pb

from .conftest import Running, serving
from .test_security import bearer, make_token


class Team:
    def __init__(self, running: Running, tokens: dict[str, str]) -> None:
        self.running = running
        self.tokens = tokens
        self.changes = change_pb2_grpc.ChangeRequestServiceStub(running.channel)

    def as_(self, who: str) -> tuple[tuple[str, str], ...]:
        return bearer(self.tokens[who])


@pytest.fixture
async def team(tmp_path: Path) -> AsyncIterator[Team]:
    async with serving(tmp_path / "four-eyes.db", auth=True) as running:
        tokens = {
            "alice": await make_token(running, "alice", "admin"),
            "bob": await make_token(running, "bob", "site_admin"),
            "carol": await make_token(running, "carol", "site_admin"),
            "eve": await make_token(running, "eve", "editor"),
        }
        yield Team(running, tokens)


KEY = "api.base_url"  # a demo key: a URL


def _url(name: str) -> str:
    return f"https://{name}.example.com"


def _set_value(name: str, environment: str = "production") -> cpb.ProposedWrite:
    return cpb.ProposedWrite(
        set_value=pb.SetValueRequest(
            key=KEY, environment=environment, value=struct_pb2.Value(string_value=_url(name))
        )
    )


async def _value(team: Team, environment: str = "production") -> str:
    got = await team.running.config.GetValue(
        pb.GetValueRequest(key=KEY, environment=environment), metadata=team.as_("bob")
    )
    return got.value.string_value


async def _newest_revision(team: Team) -> int:
    """The store's newest revision. Not the config service's own: it hears of the
    fixture's token writes through the follower, a moment after they commit."""
    async with team.running.application.store.read() as reader:
        return await reader.current_revision()


async def _status(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    return raised.value


async def test_an_admin_write_to_production_must_be_proposed(team: Team) -> None:
    before = await _value(team)
    error = await _status(
        team.running.config.SetValue(_set_value("direct").set_value, metadata=team.as_("alice"))
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "ProposeChange" in (error.details() or "")
    editor = await _status(
        team.changes.ProposeChange(
            cpb.ProposeChangeRequest(write=_set_value("x")), metadata=team.as_("eve")
        )
    )
    assert editor.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await _value(team) == before


async def test_the_proposer_cannot_approve_and_a_second_person_applies_it(team: Team) -> None:
    before = await _value(team)
    proposed = await team.changes.ProposeChange(
        cpb.ProposeChangeRequest(write=_set_value("approved"), reason="rename", ticket="OPS-1"),
        metadata=team.as_("alice"),
    )
    request = proposed.change_request
    assert request.status == cpb.CHANGE_REQUEST_STATUS_PENDING
    assert await _value(team) == before, "a proposal changes nothing"

    # bob proposes too, and cannot approve his own.
    own = await team.changes.ProposeChange(
        cpb.ProposeChangeRequest(write=_set_value("bob", environment="staging")),
        metadata=team.as_("bob"),
    )
    refused = await _status(
        team.changes.ApproveChange(
            cpb.ApproveChangeRequest(
                request_id=own.change_request.id,
                content_digest=own.change_request.content_digest,
            ),
            metadata=team.as_("bob"),
        )
    )
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "your own" in (refused.details() or "")
    # alice cannot approve at all (admins propose; site_admins approve).
    not_allowed = await _status(
        team.changes.ApproveChange(
            cpb.ApproveChangeRequest(request_id=request.id, content_digest=request.content_digest),
            metadata=team.as_("alice"),
        )
    )
    assert not_allowed.code() == grpc.StatusCode.PERMISSION_DENIED

    approved = await team.changes.ApproveChange(
        cpb.ApproveChangeRequest(
            request_id=request.id,
            content_digest=request.content_digest,
            reason="looks right",
            ticket="CAB-7",
        ),
        metadata=team.as_("bob"),
    )
    assert approved.change_request.status == cpb.CHANGE_REQUEST_STATUS_APPLIED
    assert approved.revision > 0
    got = await team.changes.GetChangeRequest(
        cpb.GetChangeRequestRequest(request_id=request.id), metadata=team.as_("carol")
    )
    assert (got.change_request.proposed_by_username, got.change_request.decided_by_username) == (
        "alice",
        "bob",
    )
    assert await _value(team) == _url("approved")

    history = await team.running.config.GetHistory(
        pb.GetHistoryRequest(key=KEY, environment="production"), metadata=team.as_("bob")
    )
    row = history.entries[0]
    users = {t.username: t.user_id for t in await team.running.application.access.list_tokens()}
    assert row.revision == approved.revision
    assert row.changed_by == users["alice"], "the change is its proposer's"
    assert row.reason == "rename" and row.ticket == "OPS-1"
    # The API names both people for a reader, not only their ids.
    assert (row.changed_by_username, row.approved_by_username) == ("alice", "bob")
    assert (row.approved_by, row.approval_ticket) == (users["bob"], "CAB-7")
    assert row.value_change
    async with team.running.application.store.read() as reader:
        rows = await reader.history.history_after(approved.revision - 1, 100)
        override = await reader.overrides.find_override(KEY, "production", 100)
    value_row = next(r for r in rows if r.key == KEY)
    assert value_row.approved_by == users["bob"]
    assert value_row.approval_ticket == "CAB-7"
    assert override is not None and override.approved_by == users["bob"]
    approval_row = next(r for r in rows if r.key == request.id)
    assert approval_row.action.value == "approve"
    assert approval_row.changed_by == users["bob"]
    assert {r.revision for r in rows} == {approved.revision}, "one transaction"

    again = await _status(
        team.changes.ApproveChange(
            cpb.ApproveChangeRequest(request_id=request.id, content_digest=request.content_digest),
            metadata=team.as_("carol"),
        )
    )
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_stale_request_is_refused_and_changes_nothing(team: Team) -> None:
    proposed = await team.changes.ProposeChange(
        cpb.ProposeChangeRequest(write=_set_value("late")), metadata=team.as_("alice")
    )
    # The target changes after the proposal.
    await team.running.config.SetValue(
        _set_value("meanwhile").set_value, metadata=team.as_("carol")
    )
    current = await team.running.application.config.get_value(KEY, "production")
    error = await _status(
        team.changes.ApproveChange(
            cpb.ApproveChangeRequest(
                request_id=proposed.change_request.id,
                content_digest=proposed.change_request.content_digest,
            ),
            metadata=team.as_("bob"),
        )
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "stale" in (error.details() or "")
    assert await _value(team) == _url("meanwhile")
    after = await team.running.application.config.get_value(KEY, "production")
    assert after.revision == current.revision
    still = await team.changes.GetChangeRequest(
        cpb.GetChangeRequestRequest(request_id=proposed.change_request.id),
        metadata=team.as_("bob"),
    )
    assert still.change_request.status == cpb.CHANGE_REQUEST_STATUS_PENDING


async def test_an_amendment_voids_the_approval_of_the_old_content(team: Team) -> None:
    proposed = await team.changes.ProposeChange(
        cpb.ProposeChangeRequest(write=_set_value("first")), metadata=team.as_("alice")
    )
    seen = proposed.change_request.content_digest
    amended = await team.changes.ProposeChange(
        cpb.ProposeChangeRequest(write=_set_value("second"), request_id=proposed.change_request.id),
        metadata=team.as_("alice"),
    )
    assert amended.change_request.content_digest != seen
    error = await _status(
        team.changes.ApproveChange(
            cpb.ApproveChangeRequest(request_id=proposed.change_request.id, content_digest=seen),
            metadata=team.as_("bob"),
        )
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "amended" in (error.details() or "")
    approved = await team.changes.ApproveChange(
        cpb.ApproveChangeRequest(
            request_id=proposed.change_request.id,
            content_digest=amended.change_request.content_digest,
        ),
        metadata=team.as_("bob"),
    )
    assert approved.change_request.status == cpb.CHANGE_REQUEST_STATUS_APPLIED
    assert await _value(team) == _url("second")


async def test_a_rejected_request_is_closed_and_recorded(team: Team) -> None:
    proposed = await team.changes.ProposeChange(
        cpb.ProposeChangeRequest(write=_set_value("no")), metadata=team.as_("alice")
    )
    rejected = await team.changes.RejectChange(
        cpb.RejectChangeRequest(request_id=proposed.change_request.id, reason="not now"),
        metadata=team.as_("bob"),
    )
    assert rejected.change_request.status == cpb.CHANGE_REQUEST_STATUS_REJECTED
    assert rejected.change_request.decision_reason == "not now"
    listed = await team.changes.ListChangeRequests(
        cpb.ListChangeRequestsRequest(status=cpb.CHANGE_REQUEST_STATUS_PENDING),
        metadata=team.as_("alice"),
    )
    assert proposed.change_request.id not in {r.id for r in listed.change_requests}
    async with team.running.application.store.read() as reader:
        rows = await reader.history.history_after(0, 10_000)
    actions = [r.action.value for r in rows if r.key == proposed.change_request.id]
    assert actions == ["propose", "reject"]


async def test_a_write_the_service_would_refuse_is_refused_when_proposed(team: Team) -> None:
    """A proposal runs its write through the write's own checks (then rolls it back): a
    bad value is refused at once, with the write's own error, and nothing is recorded."""
    start = await _newest_revision(team)
    bad = cpb.ProposedWrite(
        set_value=pb.SetValueRequest(
            key=KEY,
            environment="production",
            value=struct_pb2.Value(number_value=3),  # a URL is a string
        )
    )
    error = await _status(
        team.changes.ProposeChange(cpb.ProposeChangeRequest(write=bad), metadata=team.as_("alice"))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await _newest_revision(team) == start
    await team.running.config.SetValue(_set_value("current").set_value, metadata=team.as_("bob"))
    before = await team.running.application.config.get_value(KEY, "production")
    unchanged = await _status(
        team.changes.ProposeChange(
            cpb.ProposeChangeRequest(write=_set_value("current")), metadata=team.as_("alice")
        )
    )
    assert unchanged.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "change nothing" in (unchanged.details() or "")
    listed = await team.changes.ListChangeRequests(
        cpb.ListChangeRequestsRequest(), metadata=team.as_("bob")
    )
    assert list(listed.change_requests) == []
    after = await team.running.application.config.get_value(KEY, "production")
    assert after.revision == before.revision


async def test_a_proposed_value_of_an_encrypted_key_is_sealed_at_rest(tmp_path: Path) -> None:
    """A change request carries the value it would write: for an encrypted key, the
    request row and its history rows hold it sealed, and approval still applies it."""
    database = tmp_path / "sealed.db"
    secret = "tok-" + "Zq8Lm2Vx7Rt4Wp9Ks3Nd6Hb1"  # assembled, so no scanner mistakes it
    async with serving(database, auth=True) as running:
        team = Team(
            running,
            {
                "alice": await make_token(running, "alice", "admin"),
                "bob": await make_token(running, "bob", "site_admin"),
            },
        )
        await running.config.CreateConfig(
            pb.CreateConfigRequest(
                config=pb.ConfigDefinition(
                    key="vendor.api_token",
                    type=pb.CONFIG_TYPE_STRING,
                    category="vendor",
                    is_active=True,
                    is_editable=True,
                    is_encrypted=True,
                )
            ),
            metadata=team.as_("bob"),
        )
        write = cpb.ProposedWrite(
            set_value=pb.SetValueRequest(
                key="vendor.api_token",
                environment="production",
                value=struct_pb2.Value(string_value=secret),
            )
        )
        proposed = await team.changes.ProposeChange(
            cpb.ProposeChangeRequest(write=write, reason="rotate vendor token"),
            metadata=team.as_("alice"),
        )
        # Decrypted in process for those who may reveal it (admins and up), masked for
        # the others.
        read = await team.changes.GetChangeRequest(
            cpb.GetChangeRequestRequest(request_id=proposed.change_request.id),
            metadata=team.as_("bob"),
        )
        assert read.change_request.write.set_value.value.string_value == secret
        team.tokens["reader"] = await make_token(running, "rita", "reader")
        masked = await team.changes.GetChangeRequest(
            cpb.GetChangeRequestRequest(request_id=proposed.change_request.id),
            metadata=team.as_("reader"),
        )
        assert masked.change_request.write.set_value.value.string_value == "********"
        await team.changes.ApproveChange(
            cpb.ApproveChangeRequest(
                request_id=proposed.change_request.id,
                content_digest=proposed.change_request.content_digest,
            ),
            metadata=team.as_("bob"),
        )
        got = await running.config.GetValue(
            pb.GetValueRequest(key="vendor.api_token", environment="production"),
            metadata=team.as_("bob"),
        )
        assert got.value.string_value == secret
    files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    on_disk = b"".join(p.read_bytes() for p in files if p.exists())
    assert secret.encode() not in on_disk


async def test_a_proposer_withdraws_their_own_request_but_not_anothers(team: Team) -> None:
    mine = await team.changes.ProposeChange(
        cpb.ProposeChangeRequest(write=_set_value("withdrawn")), metadata=team.as_("alice")
    )
    theirs = await team.changes.ProposeChange(
        cpb.ProposeChangeRequest(write=_set_value("theirs", environment="staging")),
        metadata=team.as_("bob"),
    )
    withdrawn = await team.changes.RejectChange(
        cpb.RejectChangeRequest(request_id=mine.change_request.id, reason="not needed"),
        metadata=team.as_("alice"),
    )
    assert withdrawn.change_request.status == cpb.CHANGE_REQUEST_STATUS_REJECTED
    refused = await _status(
        team.changes.RejectChange(
            cpb.RejectChangeRequest(request_id=theirs.change_request.id),
            metadata=team.as_("alice"),
        )
    )
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
