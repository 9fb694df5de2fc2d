"""Who is calling, and what they may do: API tokens, users who sign in with a client
certificate, and which environments are protected.

Every replica holds the tokens, users and protected environments in memory, so that
authenticating a call is a dictionary lookup, not a database read. They are reloaded
whenever a change to one of them is applied (the bus brings other replicas' changes in
about a second), so a revoked token stops working everywhere within the poll interval.
Token and user changes are recorded in the history like every other change.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import structlog

from switchyard.domain.access import check_grants, check_token_description, strongest_role
from switchyard.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unauthenticated,
)
from switchyard.domain.models import (
    ApiToken,
    Change,
    ChangeKind,
    Grant,
    HistoryAction,
    HistoryEntry,
    Principal,
    User,
)
from switchyard.service.audit import row_document
from switchyard.service.context import Clock, WriteContext, utc_now
from switchyard.service.ports import Reader, Store
from switchyard.service.recorded import CommitListener, Recorder

log = structlog.get_logger(__name__)

TOKEN_PREFIX = "swy_"
TOKEN_TABLE = "pf_api_tokens"
USER_TABLE = "pf_users"
_RELOADED_BY = frozenset({ChangeKind.TOKEN, ChangeKind.USER, ChangeKind.ENVIRONMENT})
MAX_USERNAME_LENGTH = 100
RESERVED_USERNAMES = frozenset({"local-operator", "switchyard-scheduler"})


def hash_token(token: str) -> str:
    """The only form of a token that is stored. A token carries 256 random bits, so a
    fast hash is as safe as a slow one and keeps authentication off the hot path."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AccessService:
    def __init__(self, store: Store, *, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock
        self._tokens: dict[str, tuple[ApiToken, str]] = {}
        self._users: dict[str, User] = {}
        self._protected: frozenset[str] = frozenset()
        self._recorder = Recorder(self.apply)
        self._stale = False
        self._reloading: asyncio.Task[None] | None = None

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._recorder.add_listener(listener)

    async def start(self) -> None:
        await self.reload()

    async def reload(self) -> None:
        async with self._store.read() as reader:
            await self._load(reader)

    def apply(self, revision: int, entries: Sequence[HistoryEntry]) -> None:
        """Reloads, in the background, when a change touched tokens, users or
        environments. Called for this process's commits and, through the bus, for every
        replica's. Reloads that pile up while one runs collapse into one more."""
        if not any(entry.kind in _RELOADED_BY for entry in entries):
            return
        self._stale = True
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.get_running_loop().create_task(self._reload_while_stale())

    async def _reload_while_stale(self) -> None:
        while self._stale:
            self._stale = False
            try:
                await self.reload()
            except Exception:
                log.exception("reloading tokens, users and environments failed")
                return

    async def _caught_up(self) -> None:
        """Waits for the reload this process's own commit started (`apply`), so that the
        caller's next call already sees the change."""
        if self._reloading is not None:
            await asyncio.shield(self._reloading)

    async def close(self) -> None:
        if self._reloading is not None:
            self._reloading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reloading

    # --- authentication ---------------------------------------------------------------

    @property
    def protected_environments(self) -> frozenset[str]:
        return self._protected

    def authenticate_token(self, token: str, address: str | None) -> Principal:
        """The caller a bearer token names. Raises Unauthenticated, saying why, for an
        unknown, revoked or expired token (the message never echoes the token)."""
        known = self._tokens.get(hash_token(token))
        if known is None:
            raise Unauthenticated("the bearer token is not known: check it, or create one")
        found, role = known
        if found.revoked_at is not None:
            raise Unauthenticated(f"token {found.token_hint}… was revoked")
        if found.expires_at is not None and found.expires_at <= self._clock():
            raise Unauthenticated(f"token {found.token_hint}… expired at {found.expires_at}")
        return Principal(found.user_id, found.username, role, address, found.grants)

    def authenticate_certificate(self, username: str, address: str | None) -> Principal:
        """The caller a verified client certificate names (its subject's common name is
        a username). Raises Unauthenticated for a name with no active user."""
        user = self._users.get(username)
        # Only grants given for certificates count: a user made otherwise (a token's
        # owner, the seeded local-operator) does not sign in by certificate on its role.
        if user is None or not user.is_active or not user.grants:
            raise Unauthenticated(
                f"the client certificate names {username!r}, who has no grants to sign in "
                f"with: run `switchyard user grant {username} ROLE` first"
            )
        grants = user.grants
        return Principal(
            user_id=user.id,
            username=user.username,
            role=strongest_role(grants),
            address=address,
            grants=grants,
        )

    # --- tokens and users -------------------------------------------------------------

    async def list_tokens(self) -> list[ApiToken]:
        async with self._store.read() as reader:
            return await reader.tokens.all_tokens()

    async def create_token(
        self,
        username: str,
        grants: Sequence[Grant],
        ctx: WriteContext,
        *,
        expires_at: datetime | None = None,
        description: str | None = None,
    ) -> tuple[str, ApiToken, int]:
        """A new token for `username` (created as a user if new). Returns the token (the
        only time it is seen), its row and the revision."""
        ctx.check()
        _check_username(username)
        if not grants:
            raise InvalidArgument("a token needs at least one grant (a role)")
        check_grants(grants)
        check_token_description(description)
        now = self._clock()
        if expires_at is not None and expires_at <= now:
            raise InvalidArgument("expires_at must be in the future")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self._store.transaction() as tx:
            changes: list[Change] = []
            user = await tx.users.find_user_by_name(username)
            if user is None:
                user = User(
                    id=str(uuid.uuid4()),
                    username=username,
                    role=strongest_role(grants),
                    created_at=now,
                )
                await tx.users.upsert_user(user)
                changes.append(_user_change(ctx, None, user))
            token = ApiToken(
                id=str(uuid.uuid4()),
                token_hash=hash_token(secret),
                token_hint=secret[: len(TOKEN_PREFIX) + 4],
                user_id=user.id,
                username=user.username,
                grants=tuple(grants),
                description=description,
                expires_at=expires_at,
                created_at=now,
                created_by=ctx.actor.user_id,
            )
            await tx.tokens.insert_token(token)
            changes.append(_token_change(ctx, HistoryAction.CREATE, None, token))
            revision = await self._recorder.record(tx, changes)
        await self._caught_up()
        return secret, token, revision

    async def revoke_token(self, token_id: str, ctx: WriteContext) -> tuple[ApiToken, int]:
        """Raises NotFound for an unknown id, FailedPrecondition for a revoked token."""
        ctx.check()
        async with self._store.transaction() as tx:
            before = await tx.tokens.find_token(token_id)
            if before is None:
                raise NotFound(f"no token with id {token_id!r}: `switchyard token list`")
            revoked = replace(before, revoked_at=self._clock(), revoked_by=ctx.actor.user_id)
            if not await tx.tokens.revoke_token(revoked):
                raise FailedPrecondition(f"token {token_id} was revoked already")
            revision = await self._recorder.record(
                tx, [_token_change(ctx, HistoryAction.REVOKE, before, revoked)]
            )
        await self._caught_up()
        return revoked, revision

    async def set_user_grants(
        self, username: str, grants: Sequence[Grant], ctx: WriteContext
    ) -> tuple[User, int]:
        """What a user signing in with a client certificate may do (created if new)."""
        ctx.check()
        _check_username(username)
        check_grants(grants)
        async with self._store.transaction() as tx:
            before = await tx.users.find_user_by_name(username)
            user = User(
                id=before.id if before else str(uuid.uuid4()),
                username=username,
                role=strongest_role(grants) if grants else "none",
                display_name=before.display_name if before else None,
                email=before.email if before else None,
                is_active=bool(grants),
                created_at=before.created_at if before else self._clock(),
                grants=tuple(grants),
            )
            await tx.users.upsert_user(user)
            revision = await self._recorder.record(tx, [_user_change(ctx, before, user)])
        await self._caught_up()
        return user, revision

    async def _load(self, reader: Reader) -> None:
        tokens = await reader.tokens.all_tokens()
        users = await reader.users.all_users()
        environments = await reader.environments.list_environments()
        # With each token, the role its history rows name: worked out once, not per call.
        self._tokens = {t.token_hash: (t, strongest_role(t.grants)) for t in tokens}
        self._users = {user.username: user for user in users}
        self._protected = frozenset(e.name for e in environments if e.protected)


def _token_change(
    ctx: WriteContext, action: HistoryAction, before: ApiToken | None, after: ApiToken
) -> Change:
    return ctx.change(
        kind=ChangeKind.TOKEN,
        table_name=TOKEN_TABLE,
        record_id=after.id,
        key=after.id,
        action=action,
        old=None if before is None else row_document(before),
        new=row_document(after),
        rollback_available=False,
    )


def _user_change(ctx: WriteContext, before: User | None, after: User) -> Change:
    return ctx.change(
        kind=ChangeKind.USER,
        table_name=USER_TABLE,
        record_id=after.id,
        key=after.username,
        action=HistoryAction.CREATE if before is None else HistoryAction.UPDATE,
        old=None if before is None else row_document(before),
        new=row_document(after),
        rollback_available=False,
    )


def _check_username(username: str) -> None:
    if not username.strip() or len(username) > MAX_USERNAME_LENGTH:
        raise InvalidArgument(
            f"a username is 1 to {MAX_USERNAME_LENGTH} characters; got {username!r}"
        )
    if username in RESERVED_USERNAMES:
        raise InvalidArgument(
            f"{username!r} is Switchyard's own user (history rows name it for the open "
            "server and for automatic changes): choose another name"
        )


__all__ = ["TOKEN_PREFIX", "AccessService", "hash_token"]
