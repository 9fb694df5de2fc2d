"""`pf_users`: the people and services that history rows name."""

from __future__ import annotations

from datetime import UTC, datetime

from switchyard.domain.models import User
from switchyard.store.rows import flag
from switchyard.store.session import Session
from switchyard.store.sql import Sql

FIND_USER = Sql(
    "find_user",
    """SELECT id, username, role_name, display_name, email, is_active, created_at
    FROM pf_users WHERE id = :id""",
)
UPDATE_USER = Sql(
    "update_user",
    """UPDATE pf_users SET username = :username, role_name = :role_name,
    display_name = :display_name, email = :email, is_active = :is_active WHERE id = :id""",
)
INSERT_USER = Sql(
    "insert_user",
    """INSERT INTO pf_users (id, username, role_name, display_name, email, is_active,
    created_at) VALUES (:id, :username, :role_name, :display_name, :email, :is_active,
    :created_at)""",
)


class SqlUserRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def find_user(self, user_id: str) -> User | None:
        row = await self._session.fetch_one(FIND_USER, {"id": user_id})
        if row is None:
            return None
        return User(
            id=row["id"],
            username=row["username"],
            role=row["role_name"],
            display_name=row["display_name"],
            email=row["email"],
            is_active=flag(row["is_active"]),
            created_at=self._session.dialect.read_time(row["created_at"]),
        )

    async def upsert_user(self, user: User) -> None:
        binds = {
            "id": user.id,
            "username": user.username,
            "role_name": user.role,
            "display_name": user.display_name,
            "email": user.email,
            "is_active": user.is_active,
        }
        if not await self._session.execute(UPDATE_USER, binds):
            created = user.created_at or datetime.now(UTC)
            await self._session.execute(INSERT_USER, {**binds, "created_at": created})


__all__ = ["SqlUserRepository"]
