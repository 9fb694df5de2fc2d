"""Metric label sets stay bounded, and a pool's use is read when /metrics is scraped."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from prometheus_client import REGISTRY, Counter
from prometheus_client.registry import CollectorRegistry

from switchyard.metrics import OTHER, KeyedChildren, track_pool, untrack_pool
from switchyard.store.sqlite import SqlitePool


def test_keys_past_the_bound_share_other() -> None:
    counter = Counter("bounded_test", "test", ["key", "kind"], registry=CollectorRegistry())
    children = KeyedChildren(counter, limit=2)
    for key in ("a", "b", "c", "d", "a"):
        children.get(key, "x").inc()
    children.get("b", "y").inc()  # a known key keeps its own child under other labels
    values = {
        (s.labels["key"], s.labels["kind"]): s.value
        for s in next(iter(counter.collect())).samples
        if s.name.endswith("_total")
    }
    assert values == {("a", "x"): 2, ("b", "x"): 1, (OTHER, "x"): 2, ("b", "y"): 1}
    assert children.get("e", "x") is children.get(OTHER, "x")


class _Pool:
    def __init__(self, usage: Mapping[str, tuple[int, int, int]]) -> None:
        self._usage = usage

    def usage(self) -> Mapping[str, tuple[int, int, int]]:
        return self._usage


def test_pools_are_read_at_scrape_time_and_summed() -> None:
    first = _Pool({"read": (1, 3, 4), "write": (1, 0, 1)})
    second = _Pool({"read": (0, 4, 4), "write": (0, 1, 1)})

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0  # other tests' live pools too

    before = (
        value("switchyard_db_pool_connections", pool="read", state="in_use"),
        value("switchyard_db_pool_connections", pool="read", state="idle"),
        value("switchyard_db_pool_max_connections", pool="write"),
    )
    track_pool(first)
    track_pool(second)
    try:
        after = (
            value("switchyard_db_pool_connections", pool="read", state="in_use"),
            value("switchyard_db_pool_connections", pool="read", state="idle"),
            value("switchyard_db_pool_max_connections", pool="write"),
        )
    finally:
        untrack_pool(first)
        untrack_pool(second)
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 7, 2]


async def test_the_sqlite_pool_reports_what_is_taken(tmp_path: Path) -> None:
    pool = await SqlitePool.open(tmp_path / "pool.db", readers=2)
    try:
        assert pool.usage() == {"read": (0, 2, 2), "write": (0, 1, 1)}
        reader = await pool.acquire(write=False)
        writer = await pool.acquire(write=True)
        assert pool.usage() == {"read": (1, 1, 2), "write": (1, 0, 1)}
        await pool.release(reader, write=False)
        await pool.release(writer, write=True)
        assert pool.usage() == {"read": (0, 2, 2), "write": (0, 1, 1)}
    finally:
        await pool.close()
