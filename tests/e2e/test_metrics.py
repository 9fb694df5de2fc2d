"""The metrics endpoint: after some traffic, the cache counters have moved, and what it
serves parses as Prometheus text."""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from switchyard.gen.v1 import config_pb2 as pb
from switchyard.metrics import serve_metrics

from ..redis_servers import free_port
from .conftest import Running


async def test_cache_counters_move_and_the_endpoint_speaks_prometheus(running: Running) -> None:
    port = free_port()
    server = serve_metrics(f"127.0.0.1:{port}")
    try:
        for _ in range(5):
            await running.config.GetValue(pb.GetValueRequest(key="api.timeout"))
        text = await asyncio.to_thread(
            lambda: (
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
                .read()
                .decode()
            )
        )
    finally:
        server.shutdown()
        server.server_close()

    families = {family.name: family for family in text_string_to_metric_families(text)}
    requests = {
        (s.labels["level"], s.labels["result"]): s.value
        for s in families["switchyard_cache_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests[("l1", "hit")] >= 4
    assert requests[("l1", "miss")] >= 1
    assert "switchyard_revision" in families
    assert "switchyard_watch_streams" in families
