"""Changes that happen by themselves happen once, however many replicas run a scheduler:
two replicas over one database, a temporary override that expires and a maintenance
window that opens and closes; the history holds each change once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.app import open_application
from switchyard.domain.models import (
    ChangeKind,
    HistoryAction,
    HistoryQuery,
    MaintenanceWindow,
    PageRequest,
)
from switchyard.service.context import SCHEDULER, WriteContext
from switchyard.settings import Settings

CTX = WriteContext(actor=LOCAL_OPERATOR, reason="scheduled once")


async def test_two_replicas_make_each_scheduled_change_once(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'once.db'}", poll_seconds=0.1)
    first = await open_application(settings)
    second = await open_application(settings)
    try:
        now = datetime.now(UTC)
        await first.config.set_value(
            "api.timeout", 5, "staging", CTX, expires_at=now + timedelta(seconds=0.5)
        )
        await second.config.upsert_window(
            MaintenanceWindow(
                name="both",
                environment="production",
                config_values={"features.maintenance_mode": True},
                starts_at=now + timedelta(seconds=0.5),
                ends_at=now + timedelta(seconds=1.2),
            ),
            CTX,
        )
        for application in (first, second):
            application.scheduler.kick()
        await asyncio.sleep(2.0)
        page, _ = await first.config.get_history(HistoryQuery(), PageRequest(size=1000))
    finally:
        await first.close()
        await second.close()

    automatic = [e for e in page.items if e.changed_by == SCHEDULER.user_id]
    expiries = [e for e in automatic if e.key == "api.timeout"]
    window = [e.action for e in automatic if e.kind is ChangeKind.MAINTENANCE_WINDOW]
    applied = [e.action for e in automatic if e.key == "features.maintenance_mode"]
    assert [e.action for e in expiries] == [HistoryAction.DELETE]
    assert window == [HistoryAction.DISABLE, HistoryAction.ENABLE]  # newest first
    assert applied == [HistoryAction.DELETE, HistoryAction.CREATE]
