"""`pf_maintenance_windows`: values that apply together for a while, once or on a schedule."""

from __future__ import annotations

from switchyard.domain.errors import NotFound
from switchyard.domain.models import JSONValue, MaintenanceWindow, WindowState
from switchyard.store.rows import document, flag, from_json
from switchyard.store.session import Row, Session
from switchyard.store.sql import Sql

_COLUMNS = """id, window_name, description, environment, config_values, starts_at, ends_at,
    schedule_cron, duration_seconds, is_active, window_state, window_start, version,
    created_at, created_by, updated_at, updated_by"""

FIND_WINDOW = Sql(
    "find_window",
    f"SELECT {_COLUMNS} FROM pf_maintenance_windows WHERE window_name = :window_name",
)
LIST_WINDOWS = Sql(
    "list_windows", f"SELECT {_COLUMNS} FROM pf_maintenance_windows ORDER BY window_name"
)
INSERT_WINDOW = Sql(
    "insert_window",
    f"""INSERT INTO pf_maintenance_windows ({_COLUMNS})
    VALUES (:id, :window_name, :description, :environment, :config_values, :starts_at,
    :ends_at, :schedule_cron, :duration_seconds, :is_active, :window_state, :window_start,
    :version, :created_at, :created_by, :updated_at, :updated_by)""",
)
UPDATE_WINDOW = Sql(
    "update_window",
    """UPDATE pf_maintenance_windows SET description = :description,
    environment = :environment, config_values = :config_values, starts_at = :starts_at,
    ends_at = :ends_at, schedule_cron = :schedule_cron, duration_seconds = :duration_seconds,
    is_active = :is_active, window_state = :window_state, window_start = :window_start,
    version = :version, updated_at = :updated_at, updated_by = :updated_by
    WHERE window_name = :window_name""",
)
DELETE_WINDOW = Sql(
    "delete_window", "DELETE FROM pf_maintenance_windows WHERE window_name = :window_name"
)


class SqlWindowRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    async def find_window(self, name: str) -> MaintenanceWindow | None:
        row = await self._session.fetch_one(FIND_WINDOW, {"window_name": name})
        return None if row is None else self._window(row)

    async def get_window(self, name: str) -> MaintenanceWindow:
        found = await self.find_window(name)
        if found is None:
            raise NotFound(f"maintenance window {name!r} not found")
        return found

    async def list_windows(self) -> list[MaintenanceWindow]:
        return [self._window(row) for row in await self._session.fetch_all(LIST_WINDOWS)]

    async def upsert_window(self, window: MaintenanceWindow) -> bool:
        """Inserts or replaces by name; True when it was created."""
        binds = self._binds(window)
        if await self._session.execute(UPDATE_WINDOW, binds):
            return False
        await self._session.execute(INSERT_WINDOW, binds)
        return True

    async def delete_window(self, name: str) -> None:
        if not await self._session.execute(DELETE_WINDOW, {"window_name": name}):
            raise NotFound(f"maintenance window {name!r} not found")

    def _window(self, row: Row) -> MaintenanceWindow:
        read_time = self._session.dialect.read_time
        values = from_json(row["config_values"])
        return MaintenanceWindow(
            id=row["id"],
            name=row["window_name"],
            description=row["description"],
            environment=row["environment"],
            config_values=_mapping(values),
            starts_at=read_time(row["starts_at"]),
            ends_at=read_time(row["ends_at"]),
            schedule_cron=row["schedule_cron"],
            duration_seconds=(
                None if row["duration_seconds"] is None else int(row["duration_seconds"])
            ),
            is_active=flag(row["is_active"]),
            state=WindowState(row["window_state"]),
            window_start=read_time(row["window_start"]),
            version=int(row["version"]),
            created_at=read_time(row["created_at"]),
            created_by=row["created_by"],
            updated_at=read_time(row["updated_at"]),
            updated_by=row["updated_by"],
        )

    @staticmethod
    def _binds(window: MaintenanceWindow) -> dict[str, object]:
        return {
            "id": window.id,
            "window_name": window.name,
            "description": window.description,
            "environment": window.environment,
            "config_values": document(window.config_values),
            "starts_at": window.starts_at,
            "ends_at": window.ends_at,
            "schedule_cron": window.schedule_cron,
            "duration_seconds": window.duration_seconds,
            "is_active": window.is_active,
            "window_state": window.state.value,
            "window_start": window.window_start,
            "version": window.version,
            "created_at": window.created_at,
            "created_by": window.created_by,
            "updated_at": window.updated_at,
            "updated_by": window.updated_by,
        }


def _mapping(value: JSONValue) -> dict[str, JSONValue]:
    return value if isinstance(value, dict) else {}


__all__ = ["SqlWindowRepository"]
