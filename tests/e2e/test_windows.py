"""Maintenance windows over real gRPC: values that apply together at the start and revert
together at the end, each change once and recorded, across a restart inside the window."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from switchyard.gen.v1 import config_pb2 as pb

from .conftest import Running, serving
from .helpers import eventually, expect_status, field_violations
from .test_config_api import timestamp
from .watching import watching

FAST = {"watch_progress_seconds": 0.3, "poll_seconds": 0.2}
SCHEDULER_ID = "00000000-0000-0000-0000-000000000002"


def window(name: str, start: datetime, end: datetime, **values: object) -> pb.MaintenanceWindow:
    message = pb.MaintenanceWindow(
        name=name,
        environment="production",
        starts_at=timestamp(start),
        ends_at=timestamp(end),
        is_active=True,
    )
    message.config_values.update(values)
    return message


async def is_open(server: Running) -> bool:
    listed = await server.config.ListMaintenanceWindows(pb.ListMaintenanceWindowsRequest())
    return listed.windows[0].is_open


async def is_closed(server: Running) -> bool:
    return not await is_open(server)


async def applied(server: Running, seconds: float) -> bool:
    return (await values(server))[0] == seconds


async def values(server: Running) -> tuple[float, bool]:
    reads = await server.config.GetValues(
        pb.GetValuesRequest(
            keys=["api.timeout", "features.maintenance_mode"], environment="production"
        )
    )
    by_key = {v.key: v.value for v in reads.values}
    return by_key["api.timeout"].number_value, by_key["features.maintenance_mode"].bool_value


async def test_a_window_applies_its_values_together_and_reverts_them_together(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path / "w.db", **FAST) as server:
        start = datetime.now(UTC) + timedelta(seconds=1)
        revision = (
            await server.config.ListMaintenanceWindows(pb.ListMaintenanceWindowsRequest())
        ).revision
        request = pb.WatchConfigRequest(
            keys=["api.timeout", "features.maintenance_mode"],
            environment="production",
            from_revision=revision,
        )
        async with watching(server.config, request) as w:
            saved = await server.config.UpsertMaintenanceWindow(
                pb.UpsertMaintenanceWindowRequest(
                    window=window(
                        "reindex",
                        start,
                        start + timedelta(seconds=1.5),
                        **{"api.timeout": 120, "features.maintenance_mode": True},
                    ),
                    reason="search reindex",
                    ticket="OPS-9",
                )
            )
            before = await values(server)
            await w.until(lambda w: len(w.events) == 2, within=5)
            during = await values(server)
            listed = await server.config.ListMaintenanceWindows(pb.ListMaintenanceWindowsRequest())
            await w.until(lambda w: len(w.events) == 4, within=5)
            after = await values(server)

        history = await server.config.GetHistory(pb.GetHistoryRequest(key="reindex"))

    assert saved.created and not saved.window.is_open
    assert saved.window.next_transition.ToDatetime(tzinfo=UTC) == start.replace(
        microsecond=start.microsecond
    )
    assert (before, during, after) == ((60, False), (120, True), (60, False))
    assert listed.windows[0].is_open
    # The two keys changed in one revision when it opened, and in one when it closed.
    opened, closed = w.events[0].revision, w.events[2].revision
    assert [e.revision for e in w.events] == [opened, opened, closed, closed]
    window_rows = [(e.action, e.changed_by) for e in history.entries]
    assert window_rows == [
        (pb.HISTORY_ACTION_DISABLE, SCHEDULER_ID),
        (pb.HISTORY_ACTION_ENABLE, SCHEDULER_ID),
        (pb.HISTORY_ACTION_CREATE, "00000000-0000-0000-0000-000000000001"),
    ]


async def test_a_restart_inside_a_window_keeps_it_open_and_applies_nothing_twice(
    tmp_path: Path,
) -> None:
    database = tmp_path / "restart.db"
    start = datetime.now(UTC) + timedelta(seconds=0.5)
    async with serving(database, **FAST) as first:
        await first.config.UpsertMaintenanceWindow(
            pb.UpsertMaintenanceWindowRequest(
                window=window("freeze", start, start + timedelta(seconds=3), **{"api.timeout": 200})
            )
        )
        await eventually(lambda: is_open(first))

    async with serving(database, **FAST) as second:
        await asyncio.sleep(0.5)  # the new process's scheduler has run
        during = await second.config.GetValue(
            pb.GetValueRequest(key="api.timeout", environment="production")
        )
        await eventually(lambda: is_closed(second))
        after = await second.config.GetValue(
            pb.GetValueRequest(key="api.timeout", environment="production")
        )
        history = await second.config.GetHistory(pb.GetHistoryRequest(key="freeze"))

    assert during.value.number_value == 200
    assert after.value.number_value == 60
    assert [e.action for e in history.entries] == [
        pb.HISTORY_ACTION_DISABLE,
        pb.HISTORY_ACTION_ENABLE,
        pb.HISTORY_ACTION_CREATE,
    ]


async def test_deleting_an_open_window_reverts_its_values(tmp_path: Path) -> None:
    async with serving(tmp_path / "d.db", **FAST) as server:
        now = datetime.now(UTC)
        await server.config.UpsertMaintenanceWindow(
            pb.UpsertMaintenanceWindowRequest(
                window=window(
                    "now",
                    now - timedelta(seconds=1),
                    now + timedelta(hours=1),
                    **{"api.timeout": 240},
                )
            )
        )
        await eventually(lambda: applied(server, 240))

        await server.config.DeleteMaintenanceWindow(pb.DeleteMaintenanceWindowRequest(name="now"))

        assert (await values(server))[0] == 60
        listed = await server.config.ListMaintenanceWindows(pb.ListMaintenanceWindowsRequest())
        assert list(listed.windows) == []


async def test_bad_windows_are_refused_and_change_nothing(running: Running) -> None:
    now = datetime.now(UTC)
    before = await running.config.ListMaintenanceWindows(pb.ListMaintenanceWindowsRequest())
    refusals = [
        (
            window("w", now, now + timedelta(hours=1), **{"no.such.key": 1}),
            "window.config_values.no.such.key",
        ),
        (
            window("w", now, now + timedelta(hours=1), **{"api.timeout": 9999}),
            "window.config_values.api.timeout",
        ),
        (window("w", now, now - timedelta(hours=1), **{"api.timeout": 5}), "window.ends_at"),
        (window("bad name!", now, now + timedelta(hours=1), **{"api.timeout": 5}), "window.name"),
    ]
    for message, field in refusals:
        error = await expect_status(
            running.config.UpsertMaintenanceWindow(
                pb.UpsertMaintenanceWindowRequest(window=message)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert field in field_violations(error), field_violations(error)
    moon = window("w", now, now + timedelta(hours=1), **{"api.timeout": 5})
    moon.environment = "moon"
    await expect_status(
        running.config.UpsertMaintenanceWindow(pb.UpsertMaintenanceWindowRequest(window=moon)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await expect_status(
        running.config.DeleteMaintenanceWindow(pb.DeleteMaintenanceWindowRequest(name="nope")),
        grpc.StatusCode.NOT_FOUND,
    )
    after = await running.config.ListMaintenanceWindows(pb.ListMaintenanceWindowsRequest())
    assert after == before


def recurring(name: str, cron: str, **values: object) -> pb.MaintenanceWindow:
    message = pb.MaintenanceWindow(
        name=name,
        environment="production",
        schedule_cron=cron,
        duration_seconds=600,
        is_active=True,
    )
    message.config_values.update(values)
    return message


async def test_a_cron_that_never_fires_is_refused_and_writes_nothing(running: Running) -> None:
    """February has no 30th or 31st, April no 31st: such a window would never open. It
    used to be committed, then answered INTERNAL."""
    before = await running.config.ListMaintenanceWindows(pb.ListMaintenanceWindowsRequest())
    for cron in ("0 0 31 2 *", "0 0 30 2 *", "30 4 31 4,6,9,11 *"):
        error = await expect_status(
            running.config.UpsertMaintenanceWindow(
                pb.UpsertMaintenanceWindowRequest(
                    window=recurring("never", cron, **{"api.timeout": 5})
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "never fires" in field_violations(error)["window.schedule_cron"], cron
    after = await running.config.ListMaintenanceWindows(pb.ListMaintenanceWindowsRequest())
    assert after == before  # the same windows (none) at the same revision

    leap_day = await running.config.UpsertMaintenanceWindow(
        pb.UpsertMaintenanceWindowRequest(
            window=recurring("leap", "0 0 29 2 *", **{"api.timeout": 5})
        )
    )
    assert leap_day.window.next_transition.ToDatetime(tzinfo=UTC).strftime("%m-%d") == "02-29"


def _rewrite_window(database: Path, name: str, **columns: object) -> None:
    """Changes a stored window behind the server's back, as a row written by an older
    version (which checked less) would be."""
    assignments = ", ".join(f"{column} = ?" for column in columns)
    with sqlite3.connect(database) as raw:
        changed = raw.execute(
            f"UPDATE pf_maintenance_windows SET {assignments} WHERE window_name = ?",
            (*columns.values(), name),
        ).rowcount
    assert changed == 1


async def test_stored_windows_whose_cron_cannot_run_break_no_read_and_no_other_window(
    tmp_path: Path,
) -> None:
    """Rows an older version wrote: a cron that never fires, and text that is no cron at
    all. Listing answers (they are closed, with no next transition), and the scheduler
    still opens a window sorted after them."""
    database = tmp_path / "stored.db"
    async with serving(database) as first:
        for name in ("aaa-never", "aab-garbage"):
            await first.config.UpsertMaintenanceWindow(
                pb.UpsertMaintenanceWindowRequest(
                    window=recurring(name, "0 3 * * *", **{"api.timeout": 99})
                )
            )
    _rewrite_window(database, "aaa-never", schedule_cron="0 0 31 2 *")
    _rewrite_window(database, "aab-garbage", schedule_cron="every full moon")

    async with serving(database, **FAST) as server:
        listed = await server.config.ListMaintenanceWindows(pb.ListMaintenanceWindowsRequest())
        now = datetime.now(UTC)
        await server.config.UpsertMaintenanceWindow(
            pb.UpsertMaintenanceWindowRequest(
                window=window(
                    "zzz-now",
                    now - timedelta(seconds=1),
                    now + timedelta(hours=1),
                    **{"api.timeout": 240},
                )
            )
        )
        await eventually(lambda: applied(server, 240))
        again = await server.config.ListMaintenanceWindows(pb.ListMaintenanceWindowsRequest())

    shown = {w.name: w for w in listed.windows}
    for name in ("aaa-never", "aab-garbage"):
        assert not shown[name].is_open
        assert not shown[name].HasField("next_transition")
    assert [w.name for w in again.windows if w.is_open] == ["zzz-now"]


async def test_a_window_upserted_without_is_active_is_active(running: Running) -> None:
    now = datetime.now(UTC)
    message = window(
        "plain", now - timedelta(minutes=1), now + timedelta(hours=1), **{"api.timeout": 42}
    )
    message.ClearField("is_active")
    upserted = await running.config.UpsertMaintenanceWindow(
        pb.UpsertMaintenanceWindowRequest(window=message)
    )
    assert upserted.window.is_active
    await eventually(lambda: applied(running, 42))
