"""Exact counting under real concurrency: several processes (each with its own Redis
client, as replicas have) fire hundreds of concurrent decisions each at the same
counters in one real Redis, a single server and a three-node cluster. Whatever the
interleaving, each counter admits exactly its limit."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest

from switchyard.counters import RedisCounters
from switchyard.counters.redis import counter_keys
from switchyard.domain.limits import Algorithm, CountRequest
from switchyard.redis_client import connect

from ..redis_servers import RedisCluster, RedisServer

PROCESSES = 4
HITS_PER_COUNTER = 300
"""Per process and counter: 4 x 3 x 300 = 3,600 decisions, 900 in flight per process."""
LIMIT = 500

WORKER = r"""
import asyncio, json, sys, time
from switchyard.counters import RedisCounters
from switchyard.domain.errors import Unavailable
from switchyard.domain.limits import Algorithm, CountRequest
from switchyard.redis_client import connect

async def main(url, start_at, hits_per_counter, specs):
    client = connect(url)
    # The decisions queue up behind each other here: exactness is under test, not speed.
    counters = RedisCounters(client, deadline=30)
    requests = [CountRequest(**{**spec, "algorithm": Algorithm(spec["algorithm"])})
                for spec in specs]
    for request in requests:  # connect and load the script before the start
        await counters.hit(CountRequest(request.key, request.algorithm, request.limit,
                                        request.window_seconds, request.burst, 0, now=request.now))
    await asyncio.sleep(max(0.0, start_at - time.time()))
    started = time.monotonic()
    results = await asyncio.gather(
        *(counters.hit(r) for _ in range(hits_per_counter) for r in requests),
        return_exceptions=True,
    )
    elapsed = time.monotonic() - started
    admitted = {r.key: 0 for r in requests}
    errors = [repr(x) for x in results if isinstance(x, BaseException)]
    for index, result in enumerate(results):
        if not isinstance(result, BaseException) and result.allowed:
            admitted[requests[index % len(requests)].key] += 1
    await client.aclose()
    print(json.dumps({"admitted": admitted, "errors": errors[:3], "seconds": elapsed}))

asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])))
"""


async def _fire(url: str, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    start_at = time.time() + 3  # every process imported, connected and waiting by then
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            url,
            str(start_at),
            str(HITS_PER_COUNTER),
            json.dumps(specs),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    reports = []
    for process in processes:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, err.decode()[-2000:]
        reports.append(json.loads(out.splitlines()[-1]))
    return reports


@pytest.fixture(params=["server", "cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    if request.param == "server":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.url
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    return cluster.url


async def test_processes_together_admit_exactly_the_limit(redis_url: str) -> None:
    run = uuid.uuid4().hex
    specs = [
        # A fixed window at a fixed `now`: Redis's clock could cross a window's end.
        {"algorithm": "fixed_window", "now": 1_000.5, "burst": 0},
        # Redis's own clock (TIME) for the others: 60 s is far longer than the test.
        {"algorithm": "sliding_window", "now": None, "burst": 0},
        # Full at 500, refilling one token a minute: no whole token during the test.
        {"algorithm": "token_bucket", "now": None, "burst": LIMIT},
    ]
    for spec in specs:
        limit = 1 if spec["algorithm"] == "token_bucket" else LIMIT
        spec.update(key=f"exact:{run}:{spec['algorithm']}", limit=limit, window_seconds=60, hits=1)

    reports = await _fire(redis_url, specs)

    errors = [e for report in reports for e in report["errors"]]
    assert not errors, errors
    totals = {spec["key"]: sum(r["admitted"][spec["key"]] for r in reports) for spec in specs}
    print(
        f"\n{PROCESSES} processes x {len(specs) * HITS_PER_COUNTER} concurrent decisions: "
        f"admitted {totals}; each process took "
        + ", ".join(f"{r['seconds']:.2f}" for r in reports)
        + " s"
    )
    assert all(total == LIMIT for total in totals.values()), totals
    # And Redis holds what was admitted, no more.
    client = connect(redis_url)
    try:
        fixed, sliding = (counter_keys(spec["key"]) for spec in specs[:2])
        assert int(await client.hget(fixed.fixed, "n")) == LIMIT
        assert await client.zcard(sliding.sliding) == LIMIT
    finally:
        await client.aclose()


async def test_more_decisions_at_once_than_the_pool_has_connections_are_all_answered(
    redis_url: str,
) -> None:
    """redis-py refuses a 101st connection rather than wait for one: the counters must
    queue their decisions, not fail them. (A generous deadline: this is about the pool,
    not about how fast a loaded test machine gets through 300 decisions.)"""
    client = connect(redis_url)
    counters = RedisCounters(client, deadline=10)
    request = CountRequest(f"pool:{uuid.uuid4().hex}", Algorithm.SLIDING_WINDOW, 100, 60, 0, 1)
    try:
        # One decision first: the very first ones wait for each other (see RedisCounters).
        assert (await counters.hit(replace(request, hits=0))).allowed
        results = await asyncio.gather(*(counters.hit(request) for _ in range(300)))
    finally:
        await client.aclose()
    assert sum(r.allowed for r in results) == 100
