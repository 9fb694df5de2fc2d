"""Redis connections from one URL, whatever the deployment: a single server, a
Sentinel-managed primary, or a Redis Cluster (redis-py supports all three).

- `redis://[:password@]host:6379/0` or `rediss://...`: one server (TLS with rediss);
- `redis+sentinel://[:password@]host:26379[,host:26379]/service-name[/0]`: the primary
  that the Sentinels name for `service-name`;
- `redis+cluster://[:password@]host:7000[,host:7001]`: a cluster, from any of its nodes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

from switchyard.domain.errors import InvalidArgument

SOCKET_TIMEOUT_SECONDS = 0.5
"""Redis answers in well under a millisecond on a network that works; a call that takes
longer than this is treated as failed, and the service goes on without Redis."""

RedisClient = Redis | RedisCluster


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    hosts = []
    for part in netloc.rpartition("@")[2].split(","):
        host, sep, port = part.rpartition(":")
        if sep and not port.endswith("]"):
            hosts.append((host.strip("[]"), int(port)))
        else:
            hosts.append((part.strip("[]"), default_port))
    return hosts


def connect(url: str) -> RedisClient:
    """A client for `url`. It connects lazily: nothing is sent before the first command,
    so a Redis that is down does not stop the service from starting. Raises
    InvalidArgument for a URL of no known form."""
    options: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": SOCKET_TIMEOUT_SECONDS,
        "health_check_interval": 30,
    }
    parts = urlsplit(url)
    password = unquote(parts.password) if parts.password else None
    try:
        if parts.scheme in {"redis", "rediss"}:
            return Redis.from_url(url, **options)
        if parts.scheme == "redis+cluster":
            nodes = [ClusterNode(host, port) for host, port in _hosts(parts.netloc, 6379)]
            return RedisCluster(startup_nodes=nodes, password=password, **options)
        if parts.scheme == "redis+sentinel":
            path = [p for p in parts.path.split("/") if p]
            if not path:
                raise ValueError("the Sentinel service name is missing")
            db = int(path[1]) if len(path) > 1 else 0
            sentinel = Sentinel(  # type: ignore[no-untyped-call]
                _hosts(parts.netloc, 26379), sentinel_kwargs={"password": password}, **options
            )
            client: Redis = sentinel.master_for(path[0], db=db, password=password)
            return client
    except ValueError as error:
        raise InvalidArgument.field("redis_url", f"cannot be used: {error}") from None
    raise InvalidArgument.field(
        "redis_url",
        "use redis://host:6379/0, rediss://..., redis+sentinel://host:26379/service or "
        "redis+cluster://host:7000",
    )


__all__ = ["SOCKET_TIMEOUT_SECONDS", "RedisClient", "connect"]
