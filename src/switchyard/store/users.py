"""`pf_users`: the people and services that history rows name."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from switchyard.domain.models import User
from switchyard.store.access import grants_from_json, grants_json
from switchyard.store.rows import flag
from switchyard.store.session import Row, Session
from switchyard.store.sql import Sql

_COLUMNS = "id, username, role_name, display_name, email, is_active, created_at, grants"
FIND_USER = Sql("find_user", f"SELECT {_COLUMNS} FROM pf_users WHERE id = :id")
FIND_USER_BY_NAME = Sql(
    "find_user_by_name", f"SELECT {_COLUMNS} FROM pf_users WHERE username = :username"
)
ALL_USERS = Sql("all_users", f"SELECT {_COLUMNS} FROM pf_users ORDER BY username")
USERNAMES = Sql("usernames", "SELECT id, username FROM pf_users WHERE id IN ({ids})")
UPDATE_USER = Sql(
    "update_user",
    """UPDATE pf_users SET username = :username, role_name = :role_name,
    display_name = :display_name, email = :email, is_active = :is_active, grants = :grants
    WHERE id = :id""",
)
INSERT_USER = Sql(
    "insert_user",
    """INSERT INTO pf_users (id, username, role_name, display_name, email, is_active,
    grants, created_at) VALUES (:id, :username, :role_name, :display_name, :email,
    :is_active, :grants, :created_at)""",
)


class SqlUserRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def find_user(self, user_id: str) -> User | None:
        row = await self._session.fetch_one(FIND_USER, {"id": user_id})
        return None if row is None else self._user(row)

    async def find_user_by_name(self, username: str) -> User | None:
        row = await self._session.fetch_one(FIND_USER_BY_NAME, {"username": username})
        return None if row is None else self._user(row)

    async def all_users(self) -> list[User]:
        return [self._user(row) for row in await self._session.fetch_all(ALL_USERS)]

    async def usernames(self, user_ids: Collection[str]) -> dict[str, str]:
        if not user_ids:
            return {}
        rows = await self._session.fetch_all(USERNAMES, lists={"ids": tuple(user_ids)})
        return {row["id"]: row["username"] for row in rows}

    def _user(self, row: Row) -> User:
        return User(
            id=row["id"],
            username=row["username"],
            role=row["role_name"],
            display_name=row["display_name"],
            email=row["email"],
            is_active=flag(row["is_active"]),
            created_at=self._session.dialect.read_time(row["created_at"]),
            grants=None if row["grants"] is None else grants_from_json(row["grants"]),
        )

    async def upsert_user(self, user: User) -> None:
        binds = {
            "id": user.id,
            "username": user.username,
            "role_name": user.role,
            "display_name": user.display_name,
            "email": user.email,
            "is_active": user.is_active,
            "grants": None if user.grants is None else grants_json(user.grants),
        }
        if not await self._session.execute(UPDATE_USER, binds):
            created = user.created_at or datetime.now(UTC)
            await self._session.execute(INSERT_USER, {**binds, "created_at": created})


__all__ = ["SqlUserRepository"]
