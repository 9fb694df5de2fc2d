"""`pf_api_tokens` and `pf_change_requests`: the credentials callers present, and the
writes to protected environments waiting for a second person."""

from __future__ import annotations

import json

from switchyard.domain.access import grant_document, grant_from_document
from switchyard.domain.models import (
    ApiToken,
    ChangeKind,
    ChangeRequest,
    ChangeRequestStatus,
    Grant,
    JSONValue,
)
from switchyard.store.rows import from_json
from switchyard.store.sealing import REQUEST_VALUES, SealingSession
from switchyard.store.session import Row, Session
from switchyard.store.sql import Sql

_TOKEN_COLUMNS = """t.id, t.token_hash, t.token_hint, t.user_id, u.username, t.description,
    t.grants, t.expires_at, t.revoked_at, t.revoked_by, t.created_at, t.created_by"""

ALL_TOKENS = Sql(
    "all_tokens",
    f"""SELECT {_TOKEN_COLUMNS} FROM pf_api_tokens t JOIN pf_users u ON u.id = t.user_id
    ORDER BY t.created_at, t.id""",
)
FIND_TOKEN = Sql(
    "find_token",
    f"""SELECT {_TOKEN_COLUMNS} FROM pf_api_tokens t JOIN pf_users u ON u.id = t.user_id
    WHERE t.id = :id""",
)
INSERT_TOKEN = Sql(
    "insert_token",
    """INSERT INTO pf_api_tokens (id, token_hash, token_hint, user_id, description, grants,
    expires_at, created_at, created_by) VALUES (:id, :token_hash, :token_hint, :user_id,
    :description, :grants, :expires_at, :created_at, :created_by)""",
)
REVOKE_TOKEN = Sql(
    "revoke_token",
    """UPDATE pf_api_tokens SET revoked_at = :revoked_at, revoked_by = :revoked_by
    WHERE id = :id AND revoked_at IS NULL""",
)

_REQUEST_COLUMNS = """id, status, change_kind, config_key, environment, method_name,
    request_body, content_digest, base_revision, proposed_by, proposed_at, change_reason,
    change_ticket, decided_by, decided_at, decision_reason, approval_ticket,
    applied_revision, version, sealed_with"""

FIND_CHANGE_REQUEST = Sql(
    "find_change_request",
    f"SELECT {_REQUEST_COLUMNS} FROM pf_change_requests WHERE id = :id",
    REQUEST_VALUES,
)
# :status NULL lists every status; newest first, paged by (proposed_at, id).
LIST_CHANGE_REQUESTS = Sql(
    "list_change_requests",
    f"""SELECT {_REQUEST_COLUMNS} FROM pf_change_requests
    WHERE (:status IS NULL OR status = :status)
    ORDER BY proposed_at DESC, id DESC
    {{row_limit}}""",
    REQUEST_VALUES,
)
ALL_CHANGE_REQUESTS = Sql(
    "all_change_requests",
    f"SELECT {_REQUEST_COLUMNS} FROM pf_change_requests ORDER BY proposed_at, id",
    REQUEST_VALUES,
)
INSERT_CHANGE_REQUEST = Sql(
    "insert_change_request",
    f"""INSERT INTO pf_change_requests ({_REQUEST_COLUMNS})
    VALUES (:id, :status, :change_kind, :config_key, :environment, :method_name,
    :request_body, :content_digest, :base_revision, :proposed_by, :proposed_at,
    :change_reason, :change_ticket, :decided_by, :decided_at, :decision_reason,
    :approval_ticket, :applied_revision, :version, :sealed_with)""",
)
# Only a pending request at the version the caller read changes: an approval of content
# that was amended since, or a second decision, changes nothing.
UPDATE_CHANGE_REQUEST = Sql(
    "update_change_request",
    """UPDATE pf_change_requests SET status = :status, change_kind = :change_kind,
    config_key = :config_key, environment = :environment, method_name = :method_name,
    request_body = :request_body, content_digest = :content_digest,
    base_revision = :base_revision, change_reason = :change_reason,
    change_ticket = :change_ticket, decided_by = :decided_by, decided_at = :decided_at,
    decision_reason = :decision_reason, approval_ticket = :approval_ticket,
    applied_revision = :applied_revision, version = :version, sealed_with = :sealed_with
    WHERE id = :id AND status = 'pending' AND version = :expected_version
    AND content_digest = :expected_digest""",
)
# The latest change to a request's target: the same kind and key, in its environment or
# in the layer every environment reads (a base value, a definition).
TARGET_REVISION = Sql(
    "change_request_target_revision",
    """SELECT COALESCE(MAX(revision), 0) AS revision FROM pf_config_history
    WHERE change_kind = :change_kind AND config_key = :config_key
    AND (:environment IS NULL OR environment IS NULL OR environment = :environment)""",
)


class SqlTokenRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def all_tokens(self) -> list[ApiToken]:
        """Every token, revoked and expired ones too (the list shows them)."""
        return [self._token(row) for row in await self._session.fetch_all(ALL_TOKENS)]

    async def find_token(self, token_id: str) -> ApiToken | None:
        row = await self._session.fetch_one(FIND_TOKEN, {"id": token_id})
        return None if row is None else self._token(row)

    async def insert_token(self, token: ApiToken) -> None:
        await self._session.execute(
            INSERT_TOKEN,
            {
                "id": token.id,
                "token_hash": token.token_hash,
                "token_hint": token.token_hint,
                "user_id": token.user_id,
                "description": token.description,
                "grants": grants_json(token.grants),
                "expires_at": token.expires_at,
                "created_at": token.created_at,
                "created_by": token.created_by,
            },
        )

    async def revoke_token(self, token: ApiToken) -> bool:
        """False when the token was revoked already."""
        count = await self._session.execute(
            REVOKE_TOKEN,
            {"id": token.id, "revoked_at": token.revoked_at, "revoked_by": token.revoked_by},
        )
        return bool(count)

    def _token(self, row: Row) -> ApiToken:
        read_time = self._session.dialect.read_time
        return ApiToken(
            id=row["id"],
            token_hash=row["token_hash"],
            token_hint=row["token_hint"],
            user_id=row["user_id"],
            username=row["username"],
            grants=grants_from_json(row["grants"]),
            description=row["description"],
            expires_at=read_time(row["expires_at"]),
            revoked_at=read_time(row["revoked_at"]),
            revoked_by=row["revoked_by"],
            created_at=read_time(row["created_at"]),
            created_by=row["created_by"],
        )


class SqlChangeRequestRepository:
    """A request to write a config value carries the value: for a key whose values are
    encrypted, `request_body` is sealed as the key's own values are."""

    def __init__(self, session: SealingSession) -> None:
        self._session = session

    async def find_request(self, request_id: str) -> ChangeRequest | None:
        row = await self._session.fetch_one(FIND_CHANGE_REQUEST, {"id": request_id})
        return None if row is None else self._request(row)

    async def list_requests(
        self, status: ChangeRequestStatus | None, limit: int
    ) -> list[ChangeRequest]:
        rows = await self._session.fetch_all(
            LIST_CHANGE_REQUESTS,
            {"status": status.value if status else None, "row_limit": limit},
        )
        return [self._request(row) for row in rows]

    async def all_requests(self) -> list[ChangeRequest]:
        """Every request, decided ones too, oldest first."""
        return [self._request(row) for row in await self._session.fetch_all(ALL_CHANGE_REQUESTS)]

    async def insert_request(self, request: ChangeRequest) -> None:
        await self._session.execute(INSERT_CHANGE_REQUEST, await self._sealed(request))

    async def update_request(self, request: ChangeRequest, *, expected: ChangeRequest) -> bool:
        """Writes `request` over `expected` if the stored row is still `expected` (pending,
        at its version and content); False when it is not."""
        binds = await self._sealed(request)
        binds["expected_version"] = expected.version
        binds["expected_digest"] = expected.content_digest
        return bool(await self._session.execute(UPDATE_CHANGE_REQUEST, binds))

    async def target_revision(self, kind: ChangeKind, key: str, environment: str | None) -> int:
        """The revision of the latest recorded change to this target (0 if none)."""
        row = await self._session.fetch_one(
            TARGET_REVISION,
            {"change_kind": kind.value, "config_key": key, "environment": environment},
        )
        return int(row["revision"]) if row else 0

    async def _sealed(self, request: ChangeRequest) -> dict[str, object]:
        return await self._session.seal_columns(
            self._binds(request),
            config_key=request.key,
            environment=request.environment,
            columns=REQUEST_VALUES,
            # Only a request to write a config value carries one.
            encrypted=False if request.kind is not ChangeKind.CONFIG else None,
        )

    def _request(self, row: Row) -> ChangeRequest:
        read_time = self._session.dialect.read_time
        body = from_json(row["request_body"])
        proposed_at = read_time(row["proposed_at"])
        assert proposed_at is not None
        return ChangeRequest(
            id=row["id"],
            status=ChangeRequestStatus(row["status"]),
            kind=ChangeKind(row["change_kind"]),
            key=row["config_key"],
            environment=row["environment"],
            method=row["method_name"],
            request=body if isinstance(body, dict) else {},
            content_digest=row["content_digest"],
            base_revision=int(row["base_revision"]),
            proposed_by=row["proposed_by"],
            proposed_at=proposed_at,
            reason=row["change_reason"],
            ticket=row["change_ticket"],
            decided_by=row["decided_by"],
            decided_at=read_time(row["decided_at"]),
            decision_reason=row["decision_reason"],
            approval_ticket=row["approval_ticket"],
            applied_revision=None
            if row["applied_revision"] is None
            else int(row["applied_revision"]),
            version=int(row["version"]),
        )

    @staticmethod
    def _binds(request: ChangeRequest) -> dict[str, object]:
        return {
            "id": request.id,
            "status": request.status.value,
            "change_kind": request.kind.value,
            "config_key": request.key,
            "environment": request.environment,
            "method_name": request.method,
            "request_body": json.dumps(request.request, sort_keys=True),
            "content_digest": request.content_digest,
            "base_revision": request.base_revision,
            "proposed_by": request.proposed_by,
            "proposed_at": request.proposed_at,
            "change_reason": request.reason,
            "change_ticket": request.ticket,
            "decided_by": request.decided_by,
            "decided_at": request.decided_at,
            "decision_reason": request.decision_reason,
            "approval_ticket": request.approval_ticket,
            "applied_revision": request.applied_revision,
            "version": request.version,
        }


def grants_json(grants: tuple[Grant, ...]) -> str:
    return json.dumps([grant_document(grant) for grant in grants])


def grants_from_json(value: object) -> tuple[Grant, ...]:
    documents: JSONValue = from_json(value)
    if not isinstance(documents, list):
        return ()
    return tuple(grant_from_document(doc) for doc in documents if isinstance(doc, dict))


__all__ = ["SqlChangeRequestRepository", "SqlTokenRepository", "grants_from_json", "grants_json"]
