"""The background tasks stop when asked, even when woken at the same moment: on Python
3.11 `asyncio.wait_for` swallowed that cancellation and a shutdown hung for ever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchyard.events.bus import ChangeBus
from switchyard.events.follower import HistoryFollower
from switchyard.service.config import ConfigService
from switchyard.service.context import utc_now
from switchyard.service.scheduler import Scheduler
from switchyard.store import migrate, open_store


@pytest.fixture
async def config(tmp_path: Path) -> AsyncIterator[ConfigService]:
    store = await open_store(f"sqlite:///{tmp_path / 'bg.db'}")
    await migrate(store)
    service = ConfigService(store)
    await service.start()
    try:
        yield service
    finally:
        await store.close()


async def test_the_scheduler_stops_when_woken_as_it_is_stopped(config: ConfigService) -> None:
    for _ in range(20):
        scheduler = Scheduler(config, clock=utc_now, max_sleep=60)
        scheduler.start()
        await asyncio.sleep(0.01)  # asleep, waiting to be woken
        scheduler.kick()
        await asyncio.wait_for(scheduler.stop(), 5)


async def test_the_follower_stops_when_woken_as_it_is_stopped(config: ConfigService) -> None:
    for _ in range(20):
        follower = HistoryFollower(config.history_after, ChangeBus(), poll_interval=60)
        follower.start(config.revision)
        await asyncio.sleep(0.01)
        follower.kick()
        await asyncio.wait_for(follower.stop(), 5)
