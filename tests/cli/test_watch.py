"""`switchyard watch`: replaying history, following live changes, riding out a server
restart without printing an event twice."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from switchyard.cli.tail import _Cursor
from switchyard.client import to_value
from switchyard.gen.v1 import config_pb2 as pb

from .conftest import Running, serving, switchyard


async def _set(running: Running, value: int) -> int:
    reply = await running.config.SetValue(
        pb.SetValueRequest(key="api.timeout", value=to_value(value), environment="staging")
    )
    return int(reply.revision)


async def _revision(running: Running) -> int:
    reply = await running.config.GetValue(pb.GetValueRequest(key="api.timeout"))
    return int(reply.revision)


async def test_watch_replays_history_one_json_object_per_line(running: Running) -> None:
    shown = await switchyard(
        "watch", "--from-revision", "0", "--max-events", "3", "-o", "json",
        address=running.address,
    )  # fmt: skip
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 3
    events = [json.loads(line) for line in lines]
    assert [e["revision"] for e in events] == [1, 2, 3]
    assert events[0]["key"] == "api.timeout" and events[0]["action"] == "create"

    table = await switchyard(
        "watch", "--from-revision", "0", "--max-events", "1", address=running.address
    )
    assert "api.timeout = 30" in table.stdout


async def test_watch_follows_live_changes_in_an_environment(running: Running) -> None:
    start = await _revision(running)
    watching = asyncio.create_task(
        switchyard(
            "watch",
            "--env",
            "staging",
            "--prefix",
            "api.",
            "--from-revision",
            str(start),
            "--max-events",
            "1",
            "-o",
            "json",
            address=running.address,
        )
    )
    await asyncio.sleep(0.3)
    revision = await _set(running, 45)
    shown = await asyncio.wait_for(watching, 20)
    (event,) = [json.loads(line) for line in shown.stdout.splitlines()]
    assert (event["revision"], event["value"], event["environment"]) == (revision, 45, "staging")


async def test_watch_resumes_after_a_restart_without_repeating_itself(tmp_path: Path) -> None:
    database = tmp_path / "restart.db"
    async with serving(database) as first:
        address = first.address
        start = await _revision(first)
        watching = asyncio.create_task(
            switchyard(
                "watch",
                "--env",
                "staging",
                "--from-revision",
                str(start),
                "--max-events",
                "2",
                "-o",
                "json",
                address=address,
            )
        )
        one = await _set(first, 45)
        await asyncio.sleep(1.0)
    async with serving(database, listen=address) as second:
        two = await _set(second, 46)
        shown = await asyncio.wait_for(watching, 30)
    assert shown.code == 0, shown.stderr
    events = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [(e["revision"], e["value"]) for e in events] == [(one, 45), (two, 46)]
    assert "reconnecting" in shown.stderr


def _event(revision: int, key: str) -> pb.ChangeEvent:
    return pb.ChangeEvent(revision=revision, kind=pb.CHANGE_KIND_CONFIG, key=key)


def test_the_cursor_prints_each_event_once_and_resumes_before_a_partial_change() -> None:
    cursor = _Cursor(revision=None)
    assert cursor.resume_from() is None
    assert cursor.fresh(_event(5, "a"))
    assert cursor.resume_from() == 4, "other events of revision 5 may follow"
    assert not cursor.fresh(_event(5, "a")), "replayed: printed already"
    assert cursor.fresh(_event(5, "b"))
    assert not cursor.fresh(_event(4, "z"))
    cursor.caught_up(5)
    assert cursor.resume_from() == 5
    assert not cursor.fresh(_event(5, "c")), "revision 5 was complete"
    assert cursor.fresh(_event(6, "a"))
