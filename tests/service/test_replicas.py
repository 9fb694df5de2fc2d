"""Replicas: two Switchyards in one process, each with its own connections, caches, bus,
follower and relay, over one SQLite file and one real Redis: what one writes, the other
hears within milliseconds through Redis, and within a poll interval without it; the
shared cache serves both and never serves what a replica knows has changed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.app import Application, open_application
from switchyard.metrics import CACHE_ERRORS, CACHE_REQUESTS
from switchyard.redis_client import connect
from switchyard.service.context import WriteContext
from switchyard.settings import Settings

from ..redis_servers import RedisCluster, RedisServer

CTX = WriteContext(actor=LOCAL_OPERATOR, reason="replica test")
POLL_SECONDS = 1.5
"""Long enough that a change arriving well before it came through Redis."""


@dataclass
class Pair:
    a: Application
    b: Application
    redis_url: str


@contextlib.asynccontextmanager
async def replicas(database: Path, redis_url: str) -> AsyncIterator[Pair]:
    settings = Settings(
        database_url=f"sqlite:///{database}", redis_url=redis_url, poll_seconds=POLL_SECONDS
    )
    a = await open_application(settings)
    b = await open_application(settings)
    try:
        for application in (a, b):
            assert application.relay is not None
            await asyncio.wait_for(application.relay.connected.wait(), 5)
        yield Pair(a, b, redis_url)
    finally:
        await a.close()
        await b.close()


async def heard(application: Application, revision: int, within: float) -> float:
    """Seconds until `application`'s bus has published `revision`."""
    started = time.monotonic()

    async def wait() -> None:
        while application.bus.revision < revision:  # noqa: ASYNC110 (the bus has no waiter)
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait(), within)
    return time.monotonic() - started


def counted(level: str, result: str) -> float:
    return CACHE_REQUESTS.labels(level, result)._value.get()


@pytest.fixture(params=["server", "cluster"])
def redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    if request.param == "server":
        server = RedisServer(tmp_path / "redis")
        server.start()
        request.addfinalizer(server.stop)
        return server.url
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    return cluster.url


async def test_a_write_on_one_replica_reaches_the_other_through_redis(
    tmp_path: Path, redis_url: str
) -> None:
    async with replicas(tmp_path / "r.db", redis_url) as pair:
        before = await pair.b.config.get_value("api.timeout", "staging")  # cached on b
        result = await pair.a.config.set_value("api.timeout", 45, "staging", CTX)
        seconds = await heard(pair.b, result.revision, within=POLL_SECONDS)
        after = await pair.b.config.get_value("api.timeout", "staging")

    assert seconds < POLL_SECONDS / 3, f"took {seconds:.3f}s: the poll, not Redis"
    assert (before.value.value, after.value.value) == (30, 45)
    assert after.revision >= result.revision


async def test_the_shared_cache_serves_a_read_the_other_replica_made(
    tmp_path: Path, redis_url: str
) -> None:
    async with replicas(tmp_path / "l2.db", redis_url) as pair:
        await pair.a.config.get_value("support.email", "production")  # a reads the database
        hits = counted("l2", "hit")
        read = await pair.b.config.get_value("support.email", "production")

    assert read.value.value == "support@example.com"
    assert counted("l2", "hit") == hits + 1


async def test_a_shared_entry_read_before_a_change_a_replica_knows_of_is_refused(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with replicas(tmp_path / "stale.db", redis_server.url) as pair:
        await pair.a.config.get_value("api.timeout", None)
        result = await pair.a.config.set_value("api.timeout", 99, None, CTX)
        await heard(pair.b, result.revision, within=POLL_SECONDS)
        # An entry that missed its invalidation: the old value, read before the change.
        client = connect(redis_server.url)
        old = {"key": "api.timeout", "value": 30, "type": "number", "source": "base",
               "source_environment": None, "version": 1, "requires_restart": False,
               "expires_at": None}  # fmt: skip
        entry = {"p": json.dumps(old), "r": result.revision - 1, "x": time.time() + 60}
        await client.hset("sy:v1:cfg:api.timeout", "", json.dumps(entry))
        await client.aclose()

        read = await pair.b.config.get_value("api.timeout", None)

    assert read.value.value == 99


async def test_without_redis_the_poll_delivers_and_the_fast_path_returns_with_it(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with replicas(tmp_path / "outage.db", redis_server.url) as pair:
        redis_server.stop()
        errors = CACHE_ERRORS.labels("get")._value.get()
        down = await pair.a.config.set_value("api.timeout", 50, "staging", CTX)
        slow = await heard(pair.b, down.revision, within=POLL_SECONDS * 3)
        during = await pair.b.config.get_value("api.timeout", "staging")

        redis_server.start()
        assert pair.b.relay is not None
        await asyncio.wait_for(pair.b.relay.connected.wait(), 10)
        await asyncio.sleep(0.2)  # a's relay reconnects too
        up = await pair.a.config.set_value("api.timeout", 55, "staging", CTX)
        fast = await heard(pair.b, up.revision, within=POLL_SECONDS)
        after = await pair.b.config.get_value("api.timeout", "staging")

    assert during.value.value == 50 and after.value.value == 55
    assert slow <= POLL_SECONDS * 2
    assert fast < POLL_SECONDS / 3, f"took {fast:.3f}s after Redis came back"
    assert CACHE_ERRORS.labels("get")._value.get() > errors  # the outage was noticed
