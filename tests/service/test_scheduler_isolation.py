"""One window the scheduler cannot change never stops the others: it is logged, counted
and tried again on the next run, over a real SQLite file with a real failure (the
database refuses to open that one window)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import REGISTRY

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.app import open_application
from switchyard.domain.models import MaintenanceWindow, WindowState
from switchyard.service.context import WriteContext
from switchyard.settings import Settings

CTX = WriteContext(actor=LOCAL_OPERATOR, reason="scheduler isolation")


def _failures() -> float:
    return REGISTRY.get_sample_value("switchyard_scheduler_failures_total", {"what": "window"}) or 0


async def test_a_window_that_cannot_open_does_not_keep_the_next_one_shut(tmp_path: Path) -> None:
    database = tmp_path / "isolation.db"
    application = await open_application(
        Settings(database_url=f"sqlite:///{database}", poll_seconds=0.1)
    )
    try:
        # The database itself refuses to open the first window (windows are synced in
        # name order), as a constraint or a lost connection would.
        with sqlite3.connect(database) as raw:
            raw.execute(
                "CREATE TRIGGER refuse_aaa BEFORE UPDATE ON pf_maintenance_windows "
                "WHEN NEW.window_name = 'aaa-refused' AND NEW.window_state = 'open' "
                "BEGIN SELECT RAISE(ABORT, 'this window cannot open'); END"
            )
        failures = _failures()
        now = datetime.now(UTC)
        for name, environment, timeout in (
            ("aaa-refused", "staging", 111),
            ("zzz-opens", "production", 222),
        ):
            await application.config.upsert_window(
                MaintenanceWindow(
                    name=name,
                    environment=environment,
                    config_values={"api.timeout": timeout},
                    starts_at=now - timedelta(seconds=1),
                    ends_at=now + timedelta(hours=1),
                ),
                CTX,
            )

        async def opened() -> bool:
            windows, _ = await application.config.list_windows()
            return any(w.name == "zzz-opens" and w.state is WindowState.OPEN for w in windows)

        for _ in range(100):
            if await opened():
                break
            application.scheduler.kick()
            await asyncio.sleep(0.05)
        windows, _ = await application.config.list_windows()
        production = await application.config.get_value("api.timeout", "production")
        staging = await application.config.get_value("api.timeout", "staging")
    finally:
        await application.close()

    states = {w.name: w.state for w in windows}
    assert states == {"aaa-refused": WindowState.CLOSED, "zzz-opens": WindowState.OPEN}
    assert production.value.value == 222
    assert staging.value.value != 111  # the refused window's values were rolled back
    assert _failures() > failures
