"""`pf_environments`: the environments and the parent each inherits from."""

from __future__ import annotations

from datetime import UTC, datetime

from switchyard.domain.models import Environment
from switchyard.store.session import Session
from switchyard.store.sql import Sql

LIST_ENVIRONMENTS = Sql(
    "list_environments",
    "SELECT name, parent_name, description FROM pf_environments ORDER BY name",
)
UPDATE_ENVIRONMENT = Sql(
    "update_environment",
    """UPDATE pf_environments SET parent_name = :parent_name, description = :description,
    updated_at = :now WHERE name = :name""",
)
INSERT_ENVIRONMENT = Sql(
    "insert_environment",
    """INSERT INTO pf_environments (name, parent_name, description, created_at, updated_at)
    VALUES (:name, :parent_name, :description, :now, :now)""",
)


class SqlEnvironmentRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def list_environments(self) -> list[Environment]:
        rows = await self._session.fetch_all(LIST_ENVIRONMENTS)
        return [
            Environment(name=r["name"], parent=r["parent_name"], description=r["description"])
            for r in rows
        ]

    async def upsert_environment(self, environment: Environment) -> None:
        binds = {
            "name": environment.name,
            "parent_name": environment.parent,
            "description": environment.description,
            "now": datetime.now(UTC),
        }
        if not await self._session.execute(UPDATE_ENVIRONMENT, binds):
            await self._session.execute(INSERT_ENVIRONMENT, binds)


__all__ = ["SqlEnvironmentRepository"]
