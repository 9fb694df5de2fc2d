"""`pf_environments`: the environments and the parent each inherits from."""

from __future__ import annotations

from datetime import UTC, datetime

from switchyard.domain.models import Environment
from switchyard.store.rows import flag
from switchyard.store.session import Session
from switchyard.store.sql import Sql

LIST_ENVIRONMENTS = Sql(
    "list_environments",
    "SELECT name, parent_name, description, is_protected FROM pf_environments ORDER BY name",
)
UPDATE_ENVIRONMENT = Sql(
    "update_environment",
    """UPDATE pf_environments SET parent_name = :parent_name, description = :description,
    is_protected = COALESCE(:is_protected, is_protected), updated_at = :now
    WHERE name = :name""",
)
INSERT_ENVIRONMENT = Sql(
    "insert_environment",
    """INSERT INTO pf_environments (name, parent_name, description, is_protected,
    created_at, updated_at)
    VALUES (:name, :parent_name, :description, COALESCE(:is_protected, 0), :now, :now)""",
)


class SqlEnvironmentRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def list_environments(self) -> list[Environment]:
        rows = await self._session.fetch_all(LIST_ENVIRONMENTS)
        return [
            Environment(
                name=r["name"],
                parent=r["parent_name"],
                description=r["description"],
                protected=flag(r["is_protected"]),
            )
            for r in rows
        ]

    async def upsert_environment(
        self, environment: Environment, *, now: datetime | None = None
    ) -> None:
        """`now` stamps the row (created_at when it is new, updated_at); the moment the
        history row of the change records."""
        binds = {
            "name": environment.name,
            "parent_name": environment.parent,
            "description": environment.description,
            "is_protected": environment.protected,
            "now": now or datetime.now(UTC),
        }
        if not await self._session.execute(UPDATE_ENVIRONMENT, binds):
            await self._session.execute(INSERT_ENVIRONMENT, binds)


__all__ = ["SqlEnvironmentRepository"]
