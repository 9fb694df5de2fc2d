"""Every algorithm against a driven clock (`now=`), in process and in real Redis (a
single server, and a three-node cluster for the basics): the same answers, to the bit,
from both backends; the Redis keys' TTLs; and Redis going away and coming back."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchyard.counters import LocalCounters, RedisCounters
from switchyard.counters.redis import counter_keys
from switchyard.domain.errors import InvalidArgument, Unavailable
from switchyard.domain.limits import Algorithm, CountRequest, CountResult
from switchyard.redis_client import RedisClient, connect
from switchyard.service.ports import Counters

from ..redis_servers import RedisCluster, RedisServer

FIXED, SLIDING, BUCKET = Algorithm.FIXED_WINDOW, Algorithm.SLIDING_WINDOW, Algorithm.TOKEN_BUCKET


@dataclass
class Backend:
    name: str
    counters: Counters
    client: RedisClient | None = None


async def _backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "local":
        yield Backend("local", LocalCounters())
        return
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url
    else:
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        url = cluster.url
    client = connect(url)
    try:
        yield Backend(request.param, RedisCounters(client), client)
    finally:
        await client.aclose()


@pytest.fixture(params=["local", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    async for b in _backend(request):
        yield b


@pytest.fixture(params=["local", "redis", "cluster"])
async def any_backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """With the cluster too: for the tests that exercise every key of the layout."""
    async for b in _backend(request):
        yield b


@pytest.fixture(params=["redis", "cluster"])
async def redis_backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    async for b in _backend(request):
        yield b


Hit = Callable[..., Awaitable[CountResult]]


def counter(
    backend: Backend,
    algorithm: Algorithm,
    *,
    limit: int,
    window: int,
    burst: int = 0,
    block: int = 0,
    queue: int = 0,
) -> Hit:
    """A fresh counter (a key of its own): `await hit(now, hits=1)` decides once."""
    base = CountRequest(
        key=f"test:{uuid.uuid4().hex}",
        algorithm=algorithm,
        limit=limit,
        window_seconds=window,
        burst=burst,
        hits=1,
        block_seconds=block,
        queue_size=queue,
    )

    async def hit(now: float, hits: int = 1) -> CountResult:
        return await backend.counters.hit(replace(base, hits=hits, now=now))

    hit.key = base.key  # type: ignore[attr-defined]
    return hit


def ok(remaining: int, reset_after: float) -> CountResult:
    return CountResult(True, remaining, reset_after, 0.0)


def denied(remaining: int, reset_after: float, retry_after: float, **flags: bool) -> CountResult:
    return CountResult(False, remaining, reset_after, retry_after, **flags)


# --- fixed window ---------------------------------------------------------------------


async def test_a_fixed_window_counts_to_its_limit_and_reopens_exactly_at_its_end(
    any_backend: Backend,
) -> None:
    hit = counter(any_backend, FIXED, limit=3, window=10)

    assert await hit(100) == ok(2, 10)
    assert await hit(101) == ok(1, 9)
    assert await hit(102.5) == ok(0, 7.5)
    assert await hit(105) == denied(0, 5, 5)
    assert await hit(109.75) == denied(0, 0.25, 0.25)
    assert await hit(110) == ok(2, 10)  # exactly W: a new window


async def test_a_fixed_window_counts_several_hits_at_once(backend: Backend) -> None:
    hit = counter(backend, FIXED, limit=5, window=60)

    assert await hit(0, hits=3) == ok(2, 60)
    assert await hit(15, hits=3) == denied(2, 45, 45)  # 3 + 3 > 5: nothing counted
    assert await hit(30, hits=2) == ok(0, 30)
    # More than the limit never fits, in any window: it says so with a whole window.
    assert await hit(60, hits=6) == denied(5, 0, 60)
    assert await hit(60, hits=5) == ok(0, 60)


async def test_zero_hits_looks_without_counting(backend: Backend) -> None:
    hit = counter(backend, FIXED, limit=2, window=10)

    assert await hit(0, hits=0) == ok(2, 0)
    assert await hit(1) == ok(1, 9)
    assert await hit(2, hits=0) == ok(1, 8)


# --- sliding window -------------------------------------------------------------------


async def test_a_sliding_window_forgets_each_hit_exactly_one_window_later(
    any_backend: Backend,
) -> None:
    hit = counter(any_backend, SLIDING, limit=3, window=10)

    assert await hit(0) == ok(2, 10)
    assert await hit(1) == ok(1, 9)
    assert await hit(2) == ok(0, 8)
    # Full: the oldest entry (0) leaves at 10.
    assert await hit(5) == denied(0, 5, 5)
    assert await hit(9.5) == denied(0, 0.5, 0.5)
    # At exactly 10 the entry of 0 is out of (0, 10]: one place.
    assert await hit(10) == ok(0, 1)
    # Entries 1, 2, 10: two hits fit once the second oldest (2) has left, at 12.
    assert await hit(10.5, hits=2) == denied(0, 0.5, 1.5)
    assert await hit(12, hits=2) == ok(0, 8)  # entries 10, 12, 12


async def test_a_sliding_window_never_admits_more_than_its_limit(backend: Backend) -> None:
    hit = counter(backend, SLIDING, limit=4, window=10)

    assert await hit(0, hits=3) == ok(1, 10)
    assert await hit(5, hits=2) == denied(1, 5, 5)
    assert await hit(9) == ok(0, 1)
    assert await hit(10, hits=3) == ok(0, 9)  # 0's three left; 9 and three at 10
    assert await hit(10, hits=5) == denied(0, 9, 10)  # more than the limit: never
    assert await hit(18.5) == denied(0, 0.5, 0.5)
    assert await hit(19) == ok(0, 1)


# --- token bucket ---------------------------------------------------------------------


async def test_a_token_bucket_starts_full_and_refills_at_its_rate(any_backend: Backend) -> None:
    # 10 per 10 s: one token a second, at most 5 held.
    hit = counter(any_backend, BUCKET, limit=10, window=10, burst=5)

    assert await hit(1000, hits=5) == ok(0, 5)
    assert await hit(1000) == denied(0, 5, 1)
    assert await hit(1002.5, hits=3) == denied(2, 2.5, 0.5)
    assert await hit(1002.5, hits=2) == ok(0, 4.5)
    assert await hit(1002.75) == denied(0, 4.25, 0.25)  # 0.75 tokens: 0.25 s to go
    assert await hit(1100) == ok(4, 1)  # long idle: full again, never more
    assert await hit(1100, hits=6) == denied(4, 1, 10)  # more than the burst: never


async def test_a_token_bucket_admits_at_most_burst_plus_limit_in_any_window(
    backend: Backend,
) -> None:
    hit = counter(backend, BUCKET, limit=20, window=10, burst=5)
    admitted = [
        t / 10 for t in range(0, 400) if (await hit(t / 10)).allowed
    ]  # a request every 0.1 s for 40 s

    per_window = [sum(1 for a in admitted if start <= a < start + 10) for start in range(31)]
    assert max(per_window) <= 5 + 20
    assert min(per_window) >= 20  # the refill keeps up with its rate


async def test_a_fractional_refill_admits_what_exact_arithmetic_would(backend: Backend) -> None:
    # 3 per 11 s: after 11/3 s, (11/3) * (3/11) is 0.9999999999999999 in doubles.
    hit = counter(backend, BUCKET, limit=3, window=11, burst=1)

    assert (await hit(0)).allowed
    assert await hit(11 / 3) == ok(0, pytest.approx(11 / 3))  # type: ignore[arg-type]
    assert (await hit(2 * 11 / 3)).allowed


# --- block and queue ------------------------------------------------------------------


async def test_a_denial_blocks_the_counter_and_counting_resumes_after(
    any_backend: Backend,
) -> None:
    hit = counter(any_backend, FIXED, limit=2, window=10, block=30)

    assert (await hit(0)).allowed and (await hit(0)).allowed
    assert await hit(1) == denied(0, 30, 30)  # starts the block
    assert await hit(2) == denied(0, 29, 29, blocked=True)
    assert await hit(30.5, hits=0) == denied(0, 0.5, 0.5, blocked=True)
    assert await hit(31) == ok(1, 9)  # window [30, 40), nothing counted while blocked


async def test_a_block_shorter_than_the_window_reports_when_the_window_reopens(
    backend: Backend,
) -> None:
    hit = counter(backend, FIXED, limit=1, window=10, block=3)

    assert (await hit(0)).allowed
    assert await hit(1) == denied(0, 9, 9)
    # Blocked for 2 s more, but the window is full for 8: retry_after says 8, so a
    # caller that honours it is not turned away (and blocked again) on arrival.
    assert await hit(2) == denied(0, 8, 8, blocked=True)
    assert await hit(10) == ok(0, 10)


async def test_a_sliding_block_and_a_bucket_block(backend: Backend) -> None:
    sliding = counter(backend, SLIDING, limit=1, window=10, block=5)
    bucket = counter(backend, BUCKET, limit=10, window=10, burst=1, block=5)

    assert (await sliding(0)).allowed
    assert await sliding(8) == denied(0, 5, 5)
    assert await sliding(12) == denied(0, 1, 1, blocked=True)
    assert await sliding(13) == ok(0, 10)
    assert (await bucket(0)).allowed
    assert await bucket(0.5) == denied(0, 5, 5)
    assert await bucket(2) == denied(0, 3.5, 3.5, blocked=True)  # full again, but blocked
    assert await bucket(5.5) == ok(0, 1)


async def test_a_queue_takes_so_many_places_per_window_then_refuses(backend: Backend) -> None:
    hit = counter(backend, FIXED, limit=1, window=10, queue=2)

    assert (await hit(0)).allowed
    assert await hit(1) == denied(0, 9, 9, queued=True)
    assert await hit(2) == denied(0, 8, 8, queued=True)
    assert await hit(3) == denied(0, 7, 7)  # both places taken
    assert await hit(3, hits=2) == denied(0, 7, 10)  # could never fit: no place
    assert await hit(10) == ok(0, 10)
    assert await hit(11) == denied(0, 9, 9, queued=True)  # a new period, new places


async def test_a_full_queue_blocks_when_the_limit_blocks_too(backend: Backend) -> None:
    hit = counter(backend, SLIDING, limit=1, window=10, queue=1, block=20)

    assert (await hit(0)).allowed
    assert await hit(1) == denied(0, 9, 9, queued=True)
    assert await hit(2) == denied(0, 20, 20)
    assert await hit(3) == denied(0, 19, 19, blocked=True)


# --- keys, TTLs, memory ---------------------------------------------------------------


async def test_every_redis_key_expires_when_it_stops_mattering(redis_backend: Backend) -> None:
    any_backend = redis_backend
    client = redis_backend.client
    assert client is not None
    fixed = counter(any_backend, FIXED, limit=1, window=60, queue=1, block=90)
    sliding = counter(any_backend, SLIDING, limit=3, window=20)
    bucket = counter(any_backend, BUCKET, limit=10, window=10, burst=40)

    await fixed(45)
    await fixed(50)  # queued: the queue key
    await fixed(51)  # blocked: the block key
    await sliding(100)
    await sliding(105, hits=2)
    await bucket(0, hits=30)

    f, s, b = (counter_keys(h.key) for h in (fixed, sliding, bucket))  # type: ignore[attr-defined]
    ttls = {
        name: await client.pttl(key)
        for name, key in [
            ("window", f.fixed),
            ("queue", f.queue),
            ("block", f.block),
            ("log", s.sliding),
            ("sequence", s.sequence),
            ("bucket", b.bucket),
        ]
    }
    expected = {
        "window": 15_000,  # the window [0, 60) at 45
        "queue": 10_000,  # the period [0, 60) at 50
        "block": 90_000,
        "log": 20_000,  # the newest entry (105) leaves at 125, seen from 105
        "sequence": 20_000,
        "bucket": 30_000,  # 30 tokens at one a second
    }
    for name, ttl in ttls.items():
        assert expected[name] - 1_000 < ttl <= expected[name], name

    # And they do vanish: a one-second window on Redis's own clock.
    short = CountRequest(f"test:{uuid.uuid4().hex}", FIXED, 1, 1, 0, 1, now=None)
    await any_backend.counters.hit(short)
    key = counter_keys(short.key).fixed
    ttl = await client.pttl(key)
    assert 0 < ttl <= 1_000
    await asyncio.sleep(ttl / 1000 + 0.05)
    assert await client.exists(key) == 0


async def test_braces_in_a_counter_key_keep_every_key_in_one_slot(any_backend: Backend) -> None:
    for key in ("}{", "a}b{c", "{user}", "%7B", "x" * 300):
        request = CountRequest(
            f"{key}:{uuid.uuid4().hex}", SLIDING, 1, 10, 0, 1, block_seconds=5, now=1000
        )
        assert (await any_backend.counters.hit(request)).allowed
        assert (await any_backend.counters.hit(request)).retry_after == 10
        assert (await any_backend.counters.hit(request)).blocked
    assert counter_keys("%7B") != counter_keys("{")


async def test_a_request_no_counter_can_decide_is_refused(backend: Backend) -> None:
    good = CountRequest("k", BUCKET, 10, 60, 5, 1)
    for bad in [
        replace(good, key=""),
        replace(good, limit=0),
        replace(good, window_seconds=0),
        replace(good, hits=-1),
        replace(good, burst=0),
        replace(good, algorithm=SLIDING, limit=100_001),
    ]:
        with pytest.raises(InvalidArgument):
            await backend.counters.hit(bad)


def test_idle_counters_are_dropped_from_the_process_once_they_stop_mattering() -> None:
    monotonic = [0.0]
    counters = LocalCounters(monotonic=lambda: monotonic[0], max_entries=1000)
    counters.hit_now(CountRequest("a", FIXED, 5, 60, 0, 1, now=30))  # matters 30 s
    counters.hit_now(CountRequest("b", BUCKET, 10, 100, 5, 5, now=0))  # refilled in 50 s
    counters.hit_now(CountRequest("c", SLIDING, 5, 10, 0, 0, now=0))  # counted nothing
    assert counters.held() == 2

    monotonic[0] = 31
    assert counters.held() == 1
    monotonic[0] = 51
    assert counters.held() == 0


def test_the_process_holds_a_bounded_number_of_entries() -> None:
    counters = LocalCounters(max_entries=100)
    for n in range(200):
        counters.hit_now(CountRequest(f"k{n}", SLIDING, 10, 60, 0, 9, now=0))
    assert counters.held() <= 10  # 10 entries each (the counter and 9 hits)


# --- properties -----------------------------------------------------------------------

# Gaps in quarter seconds, so that timelines land on window boundaries exactly and often.
timelines = st.lists(
    st.tuples(st.integers(0, 12).map(lambda q: q / 4), st.integers(0, 3)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(timeline=timelines, limit=st.integers(1, 5), window=st.integers(1, 4))
def test_no_span_of_a_sliding_window_admits_more_than_its_limit(
    timeline: list[tuple[float, int]], limit: int, window: int
) -> None:
    counters = LocalCounters()
    now, admitted = 1_000.0, []
    for gap, hits in timeline:
        now += gap
        request = CountRequest("k", SLIDING, limit, window, 0, hits, now=now)
        if counters.hit_now(request).allowed:
            admitted.append((now, hits))
    # The busiest span ends at an admission: check every span (t - W, t].
    for end, _ in admitted:
        assert sum(h for t, h in admitted if end - window < t <= end) <= limit


requests = st.fixed_dictionaries(
    {
        "algorithm": st.sampled_from(list(Algorithm)),
        "limit": st.integers(1, 5),
        "window": st.integers(1, 7),
        "burst": st.integers(1, 6),
        "block": st.sampled_from([0, 0, 2, 5]),
        "queue": st.sampled_from([0, 0, 1, 3]),
    }
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(timeline=timelines, shape=requests)
def test_redis_answers_exactly_as_the_process_does(
    redis_server: RedisServer, timeline: list[tuple[float, int]], shape: dict[str, int]
) -> None:
    async def run() -> None:
        client = connect(redis_server.url)
        redis_counters, local = RedisCounters(client), LocalCounters()
        base = CountRequest(
            key=f"diff:{uuid.uuid4().hex}",
            algorithm=Algorithm(shape["algorithm"]),
            limit=shape["limit"],
            window_seconds=shape["window"],
            burst=shape["burst"],
            hits=1,
            block_seconds=shape["block"],
            queue_size=shape["queue"],
        )
        now = 1_700_000_000.0 + 1 / 3  # a real-looking epoch, and not a round one
        try:
            for gap, hits in timeline:
                now += gap
                request = replace(base, hits=hits, now=now)
                assert await redis_counters.hit(request) == local.hit_now(request), request
        finally:
            await client.aclose()

    asyncio.run(run())


# --- Redis out of reach ---------------------------------------------------------------


async def _timed(call: Awaitable[object]) -> float:
    started = time.monotonic()
    with pytest.raises(Unavailable) as raised:
        await call
    assert "redis_url" in raised.value.message
    return time.monotonic() - started


async def test_a_stopped_redis_fails_fast_and_counting_resumes_once_it_is_back(
    redis_server: RedisServer,
) -> None:
    client = connect(redis_server.url)
    counters = RedisCounters(client, rest_seconds=0.3)
    request = CountRequest(f"down:{uuid.uuid4().hex}", SLIDING, 3, 60, 0, 1)
    try:
        assert (await counters.hit(request)).remaining == 2
        redis_server.stop()

        first = await _timed(counters.hit(request))
        resting = await _timed(counters.hit(request))  # within the rest: not even tried
        redis_server.start()  # empty: the server keeps nothing across restarts
        deadline = time.monotonic() + 5
        while True:
            try:
                result = await counters.hit(request)
                break
            except Unavailable:
                assert time.monotonic() < deadline, "counting did not resume"
                await asyncio.sleep(0.05)

        print(f"\nRedis stopped: Unavailable after {first * 1000:.1f} ms, "
              f"then {resting * 1000:.2f} ms while resting")  # fmt: skip
        assert first < 1 and resting < 0.01
        assert result.allowed and result.remaining == 2
    finally:
        await client.aclose()


async def test_a_redis_that_stops_answering_fails_within_the_deadline(
    redis_server: RedisServer,
) -> None:
    client = connect(redis_server.url)
    counters = RedisCounters(client, rest_seconds=0)
    request = CountRequest(f"hung:{uuid.uuid4().hex}", FIXED, 10, 60, 0, 1, now=30)
    assert redis_server.process is not None
    pid = redis_server.process.pid
    try:
        assert (await counters.hit(request)).allowed
        os.kill(pid, signal.SIGSTOP)  # the process is there, the socket open, no answer
        try:
            waited = await _timed(counters.hit(request))
        finally:
            os.kill(pid, signal.SIGCONT)
        after = await counters.hit(request)  # the same client: no reconnect call
        print(f"\nRedis silent: Unavailable after {waited * 1000:.1f} ms; remaining after "
              f"it woke: {after.remaining}")  # fmt: skip
        assert waited < 1
        # 8 when the decision that timed out was still run once Redis woke (its bytes
        # were in the socket): a timeout does not say that nothing was counted.
        assert after.allowed and after.remaining in (7, 8)
    finally:
        await client.aclose()


async def test_a_dead_cluster_node_fails_its_counters_alone(tmp_path: Path) -> None:
    cluster = RedisCluster(tmp_path / "cluster")  # its own: this test stops a node
    cluster.start()
    client = connect(cluster.url)
    try:
        counters = RedisCounters(client)
        requests = [CountRequest(f"node:{n}", FIXED, 5, 60, 0, 1, now=30) for n in range(12)]
        for request in requests:
            assert (await counters.hit(request)).allowed
        dead = cluster.nodes[1]
        dead.stop()
        on_dead = [
            r
            for r in requests
            if client.get_node_from_key(counter_keys(r.key).block).port == dead.port
        ]
        assert on_dead and len(on_dead) < len(requests)

        first = await _timed(counters.hit(on_dead[0]))
        resting = [await _timed(counters.hit(r)) for r in on_dead[1:]]
        others = [await counters.hit(r) for r in requests if r not in on_dead]

        print(f"\nCluster node down: Unavailable after {first * 1000:.1f} ms, then "
              f"{max(resting, default=0) * 1000:.2f} ms at most while it rests")  # fmt: skip
        assert first < 1 and all(t < 0.01 for t in resting)
        assert all(r.allowed and r.remaining == 3 for r in others)
    finally:
        await client.aclose()
        cluster.stop()
