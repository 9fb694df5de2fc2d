"""The shared cache against real Redis deployments: a single server, a primary found
through Sentinel, and a three-node cluster, each reached by its URL form."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchyard.cache.shared import SharedCache
from switchyard.domain.errors import InvalidArgument
from switchyard.redis_client import connect

from ..redis_servers import RedisCluster, RedisSentinel, RedisServer


@pytest.fixture(params=["server", "sentinel", "cluster"])
def redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "server":
        server = RedisServer(tmp_path / "redis")
        server.start()
        yield server.url
        server.stop()
    elif request.param == "sentinel":
        sentinel = RedisSentinel(tmp_path / "sentinel")
        sentinel.start()
        yield sentinel.url
        sentinel.stop()
    else:
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        yield cluster.url


async def test_entries_round_trip_expire_and_are_dropped_per_key(redis_url: str) -> None:
    client = connect(redis_url)
    cache = SharedCache(client, prefix=f"test:{time.monotonic_ns()}:")
    try:
        keys = [f"key.{n}" for n in range(20)]  # spread over a cluster's nodes
        for key in keys:
            await cache.put(key, "production", f"answer {key}", revision=7, ttl=60)
            await cache.put(key, "", f"base {key}", revision=7, ttl=60)
        await cache.put("short.lived", "", "gone soon", revision=7, ttl=0.05)
        found = await cache.get("key.3", "production")
        time.sleep(0.1)  # noqa: ASYNC251 (a wall-clock expiry, nothing to await)
        expired = await cache.get("short.lived", "")

        await cache.invalidate(keys[:10])

        assert found is not None and (found.payload, found.revision) == ("answer key.3", 7)
        assert expired is None
        assert [await cache.get(k, "") for k in keys[:10]] == [None] * 10
        assert all([await cache.get(k, "production") for k in keys[10:]])
        assert cache.available
    finally:
        await client.aclose()


async def test_an_unreachable_redis_is_a_miss_and_is_left_alone_for_a_while() -> None:
    client = connect("redis://127.0.0.1:1/0")
    cache = SharedCache(client)
    try:
        started = time.monotonic()
        assert await cache.get("k", "") is None
        await cache.put("k", "", "v", revision=1, ttl=60)  # skipped: Redis is resting
        assert not cache.available
        assert time.monotonic() - started < 2
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "url",
    ["memcached://host:11211", "redis+sentinel://127.0.0.1:26379", "http://redis:6379"],
)
def test_urls_of_no_known_form_are_refused(url: str) -> None:
    with pytest.raises(InvalidArgument):
        connect(url)
