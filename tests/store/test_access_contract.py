"""The storage contract of tokens, users' grants and change requests, checked against
every backend through the same ports the service layer uses."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from switchyard.domain.models import (
    ApiToken,
    Change,
    ChangeKind,
    ChangeRequest,
    ChangeRequestStatus,
    Grant,
    HistoryAction,
    User,
)
from switchyard.store import SqlStore
from switchyard.store.sql import REGISTRY

from .conftest import LOCAL_OPERATOR_ID

NOW = datetime(2026, 11, 25, 9, 30, 15, 123456, tzinfo=UTC)


def test_every_access_statement_is_registered_for_the_oracle_grammar_check() -> None:
    names = {sql.name for sql in REGISTRY}
    assert {
        "all_tokens",
        "find_token",
        "insert_token",
        "revoke_token",
        "find_change_request",
        "list_change_requests",
        "insert_change_request",
        "update_change_request",
        "change_request_target_revision",
        "find_user_by_name",
        "all_users",
        "usernames",
    } <= names


async def test_a_token_is_stored_with_its_grants_and_revoked_once(store: SqlStore) -> None:
    token = ApiToken(
        id=str(uuid.uuid4()),
        token_hash="a" * 64,
        token_hint="swy_abcd",
        user_id=LOCAL_OPERATOR_ID,
        username="local-operator",
        grants=(Grant("editor", environments=("staging",), prefixes=("payments.",)),),
        description="ci",
        expires_at=NOW + timedelta(days=1),
        created_at=NOW,
        created_by=LOCAL_OPERATOR_ID,
    )
    async with store.transaction() as tx:
        await tx.tokens.insert_token(token)
    async with store.read() as reader:
        assert await reader.tokens.all_tokens() == [token]
    revoked = replace(token, revoked_at=NOW + timedelta(hours=1), revoked_by=LOCAL_OPERATOR_ID)
    async with store.transaction() as tx:
        assert await tx.tokens.revoke_token(revoked)
        assert not await tx.tokens.revoke_token(revoked), "revoked once"
    async with store.read() as reader:
        assert await reader.tokens.find_token(token.id) == revoked


async def test_a_users_grants_read_back(store: SqlStore) -> None:
    user = User(
        id=str(uuid.uuid4()),
        username="alice",
        role="admin",
        created_at=NOW,
        grants=(Grant("admin", environments=("dev",)), Grant("reader")),
    )
    async with store.transaction() as tx:
        await tx.users.upsert_user(user)
    async with store.read() as reader:
        assert await reader.users.find_user_by_name("alice") == user
        assert user in await reader.users.all_users()
        named = await reader.users.usernames([user.id, LOCAL_OPERATOR_ID, "no-such-user"])
        assert named == {user.id: "alice", LOCAL_OPERATOR_ID: "local-operator"}
        assert await reader.users.usernames([]) == {}


def _request(**fields: object) -> ChangeRequest:
    values: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "status": ChangeRequestStatus.PENDING,
        "kind": ChangeKind.CONFIG,
        "key": "api.timeout",
        "environment": "production",
        "method": "/switchyard.v1.ConfigService/SetValue",
        "request": {"key": "api.timeout", "environment": "production", "value": 45},
        "content_digest": "d1",
        "base_revision": 0,
        "proposed_by": LOCAL_OPERATOR_ID,
        "proposed_at": NOW,
        "reason": "slow upstream",
        "ticket": "OPS-1",
    }
    values.update(fields)
    return ChangeRequest(**values)  # type: ignore[arg-type]


async def test_a_change_request_changes_only_from_the_state_it_was_read_in(
    store: SqlStore,
) -> None:
    pending = _request()
    async with store.transaction() as tx:
        await tx.change_requests.insert_request(pending)
    amended = replace(pending, content_digest="d2", version=2, request={"value": 50})
    applied = replace(
        amended,
        status=ChangeRequestStatus.APPLIED,
        decided_by=LOCAL_OPERATOR_ID,
        decided_at=NOW,
        approval_ticket="CAB-1",
        applied_revision=7,
        version=3,
    )
    async with store.transaction() as tx:
        assert await tx.change_requests.update_request(amended, expected=pending)
        # An approval of the content before the amendment matches nothing.
        assert not await tx.change_requests.update_request(applied, expected=pending)
        assert await tx.change_requests.update_request(applied, expected=amended)
        # A decided request is not pending: nothing changes it again.
        assert not await tx.change_requests.update_request(
            replace(applied, version=4), expected=applied
        )
    async with store.read() as reader:
        assert await reader.change_requests.find_request(pending.id) == applied
        listed = await reader.change_requests.list_requests(ChangeRequestStatus.APPLIED, 10)
        assert listed == [applied]
        assert await reader.change_requests.list_requests(ChangeRequestStatus.PENDING, 10) == []


async def test_the_target_revision_counts_the_environment_and_the_layer_above_it(
    store: SqlStore,
) -> None:
    def change(environment: str | None) -> Change:
        return Change(
            kind=ChangeKind.CONFIG,
            table_name="pf_environment_config",
            record_id=str(uuid.uuid4()),
            key="api.timeout",
            environment=environment,
            action=HistoryAction.UPDATE,
            old_value=None,
            new_value=1,
            value_diff=[],
            reason=None,
            ticket=None,
            changed_by=LOCAL_OPERATOR_ID,
            changed_by_role="site_admin",
            client_address=None,
        )

    revisions = {}
    for environment in ("production", None, "staging"):
        async with store.transaction() as tx:
            revision = await tx.allocate_revision()
            await tx.history.append(revision, [change(environment)])
            revisions[environment] = revision
    async with store.read() as reader:
        target = reader.change_requests.target_revision
        assert await target(ChangeKind.CONFIG, "api.timeout", "production") == revisions[None]
        assert await target(ChangeKind.CONFIG, "other", "production") == 0
        assert await target(ChangeKind.FLAG, "api.timeout", None) == 0
        # A base value's request is stale after a change in any environment.
        assert await target(ChangeKind.CONFIG, "api.timeout", None) == revisions["staging"]
