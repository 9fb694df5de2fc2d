"""RateLimitService over gRPC against real servers, a real SQLite file and real Redis:
decisions and their actions, exemptions, the default, live changes that keep counters,
exact counting across server processes, Redis going away, and bad input on every RPC."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from switchyard.domain.errors import InvalidArgument
from switchyard.gen.v1 import config_pb2 as config_pb
from switchyard.gen.v1 import rate_limit_pb2 as pb
from switchyard.gen.v1 import rate_limit_pb2_grpc

from ..redis_servers import RedisServer
from .conftest import Running, serving
from .helpers import eventually, expect_status, field_violations
from .processes import start_server_process, stop_server_process


@pytest.fixture
def limits(running: Running) -> rate_limit_pb2_grpc.RateLimitServiceStub:
    return rate_limit_pb2_grpc.RateLimitServiceStub(running.channel)


def api_limit(**fields: object) -> pb.RateLimit:
    values: dict[str, object] = {
        "key": "api",
        "name": "API",
        "max_requests": 3,
        "time_window_seconds": 60,
        "scope_type": pb.SCOPE_TYPE_USER,
        **fields,
    }
    return pb.RateLimit(**values)  # type: ignore[arg-type]


def check(user: str = "alice", **fields: object) -> pb.CheckRateLimitRequest:
    return pb.CheckRateLimitRequest(user_id=user, endpoint="/api/orders", method="POST", **fields)  # type: ignore[arg-type]


async def answers(
    stub: rate_limit_pb2_grpc.RateLimitServiceStub, n: int, **fields: object
) -> list[pb.CheckRateLimitResponse]:
    return [await stub.CheckRateLimit(check(**fields)) for _ in range(n)]


async def test_a_limit_admits_its_requests_then_blocks_with_retry_after(
    running: Running, limits: rate_limit_pb2_grpc.RateLimitServiceStub
) -> None:
    created = await limits.UpsertRateLimit(
        pb.UpsertRateLimitRequest(
            rate_limit=api_limit(custom_error_message="slow down"), reason="launch"
        )
    )
    assert created.created and created.rate_limit.sliding_window and created.rate_limit.is_active

    results = await answers(limits, 4)

    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results[:3]] == [2, 1, 0]
    denied = results[3]
    assert denied.limit_key == "api" and denied.limit == 3 and denied.over_limit
    assert denied.action == pb.LIMIT_ACTION_BLOCK and denied.custom_error_message == "slow down"
    assert denied.HasField("retry_after") and denied.retry_after.seconds > 0
    other = await limits.CheckRateLimit(check("bob"))
    assert other.allowed  # per user
    history = await running.config.GetHistory(config_pb.GetHistoryRequest(key="api"))
    assert [e.kind for e in history.entries] == [config_pb.CHANGE_KIND_RATE_LIMIT]


async def test_an_exemption_wins_and_counts_nothing(
    limits: rate_limit_pb2_grpc.RateLimitServiceStub,
) -> None:
    await limits.UpsertRateLimit(
        pb.UpsertRateLimitRequest(rate_limit=api_limit(max_requests=1, exempt_roles=["admin"]))
    )

    admin = [await limits.CheckRateLimit(check(roles=["admin"])) for _ in range(5)]

    assert all(a.allowed and a.exempt for a in admin)
    assert (await limits.CheckRateLimit(check())).allowed  # the admin's checks counted nothing


async def test_the_configured_default_applies_when_no_limit_does(tmp_path: Path) -> None:
    async with serving(tmp_path / "default.db", rate_limit_default="2/60") as running:
        stub = rate_limit_pb2_grpc.RateLimitServiceStub(running.channel)
        results = await answers(stub, 3, user="carol")

        assert [r.allowed for r in results] == [True, True, False]
        assert all(r.default_applied for r in results) and results[0].limit == 2
    async with serving(tmp_path / "none.db", rate_limit_default="off") as running:
        stub = rate_limit_pb2_grpc.RateLimitServiceStub(running.channel)
        free = await stub.CheckRateLimit(check())
        assert free.allowed and free.default_applied and free.limit == 0


@pytest.mark.parametrize(
    ("action", "fields", "allowed", "delayed"),
    [
        (pb.LIMIT_ACTION_THROTTLE, {}, True, True),
        (pb.LIMIT_ACTION_LOG, {}, True, False),
        (pb.LIMIT_ACTION_CAPTCHA, {"redirect_url": "https://example.com/captcha"}, False, False),
        (pb.LIMIT_ACTION_QUEUE, {"queue_size": 1}, True, True),
    ],
)
async def test_each_action_over_the_limit(
    limits: rate_limit_pb2_grpc.RateLimitServiceStub,
    action: int,
    fields: dict[str, object],
    allowed: bool,
    delayed: bool,
) -> None:
    await limits.UpsertRateLimit(
        pb.UpsertRateLimitRequest(
            rate_limit=api_limit(max_requests=1, action_on_limit=action, **fields)
        )
    )

    _, over = await answers(limits, 2)

    assert (over.allowed, over.over_limit, over.action) == (allowed, True, action)
    assert over.HasField("delay") is delayed
    if action == pb.LIMIT_ACTION_CAPTCHA:
        assert over.redirect_url == "https://example.com/captcha"
    if action == pb.LIMIT_ACTION_QUEUE:
        full = await limits.CheckRateLimit(check())
        assert not full.allowed  # one place in the queue, taken


async def test_hits_count_several_requests_at_once(
    limits: rate_limit_pb2_grpc.RateLimitServiceStub,
) -> None:
    await limits.UpsertRateLimit(pb.UpsertRateLimitRequest(rate_limit=api_limit(max_requests=5)))

    first = await limits.CheckRateLimit(check(hits=4))
    second = await limits.CheckRateLimit(check(hits=2))

    assert (first.allowed, first.remaining) == (True, 1)
    assert not second.allowed


async def test_a_changed_limit_takes_effect_at_once_and_keeps_its_counters(
    limits: rate_limit_pb2_grpc.RateLimitServiceStub,
) -> None:
    await limits.UpsertRateLimit(pb.UpsertRateLimitRequest(rate_limit=api_limit(max_requests=3)))
    assert [r.allowed for r in await answers(limits, 3)] == [True, True, True]

    await limits.UpsertRateLimit(pb.UpsertRateLimitRequest(rate_limit=api_limit(max_requests=5)))

    assert [r.allowed for r in await answers(limits, 3)] == [True, True, False]


async def test_the_highest_priority_limit_decides_and_inheritance_fills_the_rest(
    limits: rate_limit_pb2_grpc.RateLimitServiceStub,
) -> None:
    await limits.UpsertRateLimit(
        pb.UpsertRateLimitRequest(rate_limit=api_limit(key="base", max_requests=100))
    )
    await limits.UpsertRateLimit(
        pb.UpsertRateLimitRequest(
            rate_limit=api_limit(
                key="orders",
                max_requests=0,
                time_window_seconds=0,
                inherit_from="base",
                applies_to="/api/orders*",
                priority=200,
            )
        )
    )

    answer = await limits.CheckRateLimit(check())

    assert (answer.limit_key, answer.limit, answer.window_seconds) == ("orders", 100, 60)
    error = await expect_status(
        limits.UpsertRateLimit(
            pb.UpsertRateLimitRequest(rate_limit=api_limit(key="base", inherit_from="orders"))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "base -> orders -> base" in field_violations(error)["rate_limit.inherit_from"]
    await expect_status(
        limits.DeleteRateLimit(pb.DeleteRateLimitRequest(limit_key="base")),
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_rollback_and_watch_events(
    running: Running, limits: rate_limit_pb2_grpc.RateLimitServiceStub
) -> None:
    first = await limits.UpsertRateLimit(pb.UpsertRateLimitRequest(rate_limit=api_limit()))
    stream = running.config.WatchConfig(
        config_pb.WatchConfigRequest(
            kinds=[config_pb.CHANGE_KIND_RATE_LIMIT], from_revision=first.revision - 1
        )
    )
    await limits.UpsertRateLimit(pb.UpsertRateLimitRequest(rate_limit=api_limit(max_requests=50)))
    back = await limits.RollbackRateLimit(
        pb.RollbackRateLimitRequest(limit_key="api", steps=1, reason="undo")
    )
    assert (back.rate_limit.max_requests, back.rate_limit.version) == (3, 3)

    actions = []
    async with asyncio.timeout(5):
        async for message in stream:
            if message.HasField("event"):
                actions.append(message.event.action)
            if len(actions) == 3:
                break
    stream.cancel()
    assert actions == [
        config_pb.HISTORY_ACTION_CREATE,
        config_pb.HISTORY_ACTION_UPDATE,
        config_pb.HISTORY_ACTION_ROLLBACK,
    ]


async def test_redis_going_away_fails_open_or_closed_as_configured_then_recovers(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with serving(tmp_path / "outage.db", redis_url=redis_server.url) as running:
        stub = rate_limit_pb2_grpc.RateLimitServiceStub(running.channel)
        await stub.UpsertRateLimit(
            pb.UpsertRateLimitRequest(rate_limit=api_limit(key="open", max_requests=1))
        )
        await stub.UpsertRateLimit(
            pb.UpsertRateLimitRequest(
                rate_limit=api_limit(key="closed", max_requests=1, fail_closed=True)
            )
        )
        assert (await stub.CheckRateLimit(check(limit_key="open"))).allowed

        redis_server.stop()
        try:
            opened = await stub.CheckRateLimit(check(limit_key="open"))
            closed = await stub.CheckRateLimit(check(limit_key="closed"))
            assert (opened.allowed, opened.degraded) == (True, True)
            assert (closed.allowed, closed.degraded) == (False, True)
        finally:
            redis_server.start()

        async def counting_again() -> bool:
            answer = await stub.CheckRateLimit(check(limit_key="closed"))
            return not answer.degraded

        await eventually(counting_again, within=10)
        denied = await stub.CheckRateLimit(check(limit_key="closed"))
        assert not denied.degraded and not denied.allowed  # counting resumed: 1 per minute


async def test_server_processes_on_one_redis_admit_exactly_the_limit(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    settings = {
        "SWITCHYARD_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
        "SWITCHYARD_REDIS_URL": redis_server.url,
        "SWITCHYARD_POLL_SECONDS": "0.2",
    }
    servers = [await start_server_process(tmp_path, **settings) for _ in range(3)]
    channels = [grpc.aio.insecure_channel(address) for _, address in servers]
    try:
        stubs = [rate_limit_pb2_grpc.RateLimitServiceStub(channel) for channel in channels]
        await stubs[0].UpsertRateLimit(
            pb.UpsertRateLimitRequest(
                rate_limit=api_limit(
                    key="shared",
                    max_requests=250,
                    time_window_seconds=600,
                    scope_type=pb.SCOPE_TYPE_GLOBAL,
                )
            )
        )

        spent = 0  # checks that found the limit count like any other
        knowing: set[int] = set()

        async def known_everywhere() -> bool:
            nonlocal spent
            for index in set(range(1, 3)) - knowing:
                try:
                    answer = await stubs[index].CheckRateLimit(
                        pb.CheckRateLimitRequest(limit_key="shared")
                    )
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.NOT_FOUND  # not heard of it yet
                    continue
                spent += answer.allowed
                knowing.add(index)
            return len(knowing) == 2

        await eventually(known_everywhere, within=10)
        # 3,000 checks, 300 in flight at a time across the three servers: concurrent
        # enough to race, and within what two shared cores answer inside the counters'
        # 0.5 s deadline (past it a decision fails open, which is another test's subject).
        in_flight = asyncio.Semaphore(300)

        async def one(i: int) -> pb.CheckRateLimitResponse:
            async with in_flight:
                request = pb.CheckRateLimitRequest(limit_key="shared")
                return await stubs[i % 3].CheckRateLimit(request)

        results = await asyncio.gather(*(one(i) for i in range(3_000)))

        assert sum(r.allowed for r in results) == 250 - spent
        assert not any(r.degraded for r in results)
    finally:
        for channel in channels:
            await channel.close()
        for process, _ in servers:
            await stop_server_process(process)


BAD: list[
    tuple[str, Callable[[rate_limit_pb2_grpc.RateLimitServiceStub], object], grpc.StatusCode]
] = [
    (
        "CheckRateLimit",
        lambda s: s.CheckRateLimit(pb.CheckRateLimitRequest(hits=-1)),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "CheckRateLimit",
        lambda s: s.CheckRateLimit(pb.CheckRateLimitRequest(limit_key="missing")),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "GetRateLimit",
        lambda s: s.GetRateLimit(pb.GetRateLimitRequest()),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "GetRateLimit",
        lambda s: s.GetRateLimit(pb.GetRateLimitRequest(limit_key="missing")),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "ListRateLimits",
        lambda s: s.ListRateLimits(pb.ListRateLimitsRequest(page_token="!!")),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "UpsertRateLimit",
        lambda s: s.UpsertRateLimit(pb.UpsertRateLimitRequest()),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "UpsertRateLimit",
        lambda s: s.UpsertRateLimit(
            pb.UpsertRateLimitRequest(rate_limit=api_limit(scope_type=pb.SCOPE_TYPE_UNSPECIFIED))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "UpsertRateLimit",
        lambda s: s.UpsertRateLimit(
            pb.UpsertRateLimitRequest(
                rate_limit=api_limit(scope_type=pb.SCOPE_TYPE_IP, scope_pattern="10.0.0.0/99")
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "UpsertRateLimit",
        lambda s: s.UpsertRateLimit(
            pb.UpsertRateLimitRequest(rate_limit=api_limit(max_requests=0))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        "DeleteRateLimit",
        lambda s: s.DeleteRateLimit(pb.DeleteRateLimitRequest(limit_key="missing")),
        grpc.StatusCode.NOT_FOUND,
    ),
    (
        "RollbackRateLimit",
        lambda s: s.RollbackRateLimit(pb.RollbackRateLimitRequest(limit_key="x", steps=0)),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
]


@pytest.mark.parametrize(("method", "call", "code"), BAD, ids=[b[0] for b in BAD])
async def test_bad_input_gets_a_clear_status_and_changes_nothing(
    running: Running,
    limits: rate_limit_pb2_grpc.RateLimitServiceStub,
    method: str,
    call: Callable[[rate_limit_pb2_grpc.RateLimitServiceStub], object],
    code: grpc.StatusCode,
) -> None:
    before = await running.config.GetHistory(config_pb.GetHistoryRequest())

    await expect_status(call(limits), code)  # type: ignore[arg-type]

    after = await running.config.GetHistory(config_pb.GetHistoryRequest())
    assert after.revision == before.revision and len(after.entries) == len(before.entries)


async def test_triggers_are_counted_in_memory_and_written_in_batches(tmp_path: Path) -> None:
    async with serving(tmp_path / "triggers.db", rate_limit_flush_seconds=0.2) as running:
        stub = rate_limit_pb2_grpc.RateLimitServiceStub(running.channel)
        await stub.UpsertRateLimit(
            pb.UpsertRateLimitRequest(
                rate_limit=api_limit(max_requests=1, action_on_limit=pb.LIMIT_ACTION_LOG)
            )
        )
        await answers(stub, 4)  # one within the limit, three over it

        async def written() -> bool:
            stored = (await stub.GetRateLimit(pb.GetRateLimitRequest(limit_key="api"))).rate_limit
            return stored.trigger_count == 3 and stored.HasField("last_triggered")

        await eventually(written)
        stored = (await stub.GetRateLimit(pb.GetRateLimitRequest(limit_key="api"))).rate_limit
        assert stored.version == 1  # counting is not a change


async def test_a_malformed_default_is_refused_at_start_up_with_the_setting_named(
    tmp_path: Path,
) -> None:
    with pytest.raises(InvalidArgument, match="SWITCHYARD_RATE_LIMIT_DEFAULT"):
        async with serving(tmp_path / "bad.db", rate_limit_default="lots"):
            pass
