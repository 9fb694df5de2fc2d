"""The metrics endpoint: after a burst of traffic (reads, a failed call, a flag
evaluation, a rate-limit check, a watch stream, a write) the request, latency, flag,
limit, pool and replication series have moved, and what it serves parses as Prometheus
text."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import flag_pb2, flag_pb2_grpc, rate_limit_pb2, rate_limit_pb2_grpc
from switchyard.metrics import serve_metrics

from ..redis_servers import free_port
from .conftest import Running
from .helpers import eventually, expect_status, value
from .watching import watching

GET_VALUE = "/switchyard.v1.ConfigService/GetValue"
WATCH = "/switchyard.v1.ConfigService/WatchConfig"


async def scrape(port: int) -> dict[str, list[Sample]]:
    """Every sample /metrics serves, by family name."""
    text = await asyncio.to_thread(
        lambda: (
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        )
    )
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def total(samples: list[Sample], suffix: str = "_total", **labels: str) -> float:
    """The sum of the samples named with `suffix` whose labels include `labels`."""
    return sum(
        s.value
        for s in samples
        if s.name.endswith(suffix) and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def test_a_burst_of_traffic_moves_every_series(running: Running) -> None:
    port = free_port()
    server = serve_metrics(f"127.0.0.1:{port}")
    try:
        before = await scrape(port)
        flags = flag_pb2_grpc.FlagServiceStub(running.channel)
        limits = rate_limit_pb2_grpc.RateLimitServiceStub(running.channel)

        async with watching(running.config, pb.WatchConfigRequest(keys=["api.timeout"])) as w:
            for _ in range(5):
                await running.config.GetValue(pb.GetValueRequest(key="api.timeout"))
            await expect_status(
                running.config.GetValue(pb.GetValueRequest(key="no.such.key")),
                grpc.StatusCode.NOT_FOUND,
            )
            await flags.UpsertFlag(
                flag_pb2.UpsertFlagRequest(
                    flag=flag_pb2.FeatureFlag(key="metered", name="Metered", is_enabled=True),
                    reason="metrics",
                )
            )
            await flags.EvaluateFlag(flag_pb2.EvaluateFlagRequest(flag_key="metered"))
            await limits.CheckRateLimit(
                rate_limit_pb2.CheckRateLimitRequest(user_id="alice", endpoint="/orders")
            )
            written = await running.config.SetValue(
                pb.SetValueRequest(key="api.timeout", value=value(45), reason="load test")
            )
            await w.until(lambda w: written.revision in w.revisions())

        async def stream_counted() -> bool:
            return total((await scrape(port))["switchyard_grpc_requests"], method=WATCH) > total(
                before.get("switchyard_grpc_requests", []), method=WATCH
            )

        await eventually(stream_counted)
        after = await scrape(port)
    finally:
        server.shutdown()
        server.server_close()

    def moved(family: str, suffix: str = "_total", **labels: str) -> float:
        return total(after.get(family, []), suffix, **labels) - total(
            before.get(family, []), suffix, **labels
        )

    assert moved("switchyard_grpc_requests", method=GET_VALUE, code="OK") >= 5
    assert moved("switchyard_grpc_requests", method=GET_VALUE, code="NOT_FOUND") == 1
    assert moved("switchyard_grpc_requests", method=WATCH, code="CANCELLED") == 1
    assert moved("switchyard_grpc_request_duration_seconds", "_count", method=GET_VALUE) >= 6
    buckets = [
        s
        for s in after["switchyard_grpc_request_duration_seconds"]
        if s.name.endswith("_bucket") and s.labels["method"] == GET_VALUE
    ]
    assert {s.labels["le"] for s in buckets} >= {"0.0001", "0.001", "1.0", "+Inf"}
    assert moved("switchyard_flag_evaluations", flag="metered") == 1
    assert moved("switchyard_rate_limit_decisions", limit="default") == 1
    assert moved("switchyard_cache_requests", level="l1", result="hit") >= 4
    assert moved("switchyard_watch_events_sent") >= 1
    assert "switchyard_watch_events_dropped" in after

    pools = {
        (s.labels["pool"], s.labels["state"]): s.value
        for s in after["switchyard_db_pool_connections"]
    }
    assert set(pools) >= {("read", "in_use"), ("read", "idle"), ("write", "in_use")}
    most = {s.labels["pool"]: s.value for s in after["switchyard_db_pool_max_connections"]}
    assert most["write"] >= 1 and most["read"] >= 1
    assert after["switchyard_replica_lag_revisions"][0].value == 0  # one replica: current
    revision = after["switchyard_revision"][0].value
    assert revision >= written.revision
    assert 0 <= after["switchyard_revision_age_seconds"][0].value < 60
