"""WatchConfig over real gRPC: what a watcher hears, in which order, with which value,
and how a stream ends when it must."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from prometheus_client import REGISTRY

from switchyard.gen.v1 import batch_pb2, batch_pb2_grpc
from switchyard.gen.v1 import change_pb2 as cpb
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import config_pb2_grpc as pb_grpc

from .conftest import Running, serving
from .helpers import expect_status, rich_status, value
from .watching import watching

FAST = {"watch_progress_seconds": 0.3, "poll_seconds": 0.2}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Running]:
    async with serving(tmp_path / "watch.db", **FAST) as running:
        await running.config.CreateConfig(
            pb.CreateConfigRequest(
                config=pb.ConfigDefinition(
                    key="load.counter", type=pb.CONFIG_TYPE_NUMBER, category="test",
                    is_active=True, is_editable=True, is_deletable=True,
                )
            )
        )  # fmt: skip
        yield running


def watch(**fields: object) -> pb.WatchConfigRequest:
    return pb.WatchConfigRequest(**fields)  # type: ignore[arg-type]


async def now(server: Running) -> int:
    """The current revision: watching from it sees every change made after this call,
    however soon the stream is set up."""
    return (await server.config.ListEnvironments(pb.ListEnvironmentsRequest())).revision


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    for detail in rich_status(error).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo")


async def test_a_change_arrives_with_the_effective_value_of_the_watched_environment(
    server: Running,
) -> None:
    request = watch(keys=["api.timeout"], environment="demo", from_revision=await now(server))
    async with watching(server.config, request) as w:
        await server.config.SetValue(
            pb.SetValueRequest(key="api.timeout", value=value(75), environment="production")
        )
        await w.until(lambda w: len(w.events) == 1)

    event = w.events[0]
    assert (event.key, event.environment, event.kind) == (
        "api.timeout",
        "production",
        pb.CHANGE_KIND_CONFIG,
    )
    # demo inherits from production: the value it now reads, and where it comes from.
    assert w.values("api.timeout") == [75]
    assert event.source == pb.VALUE_SOURCE_INHERITED_OVERRIDE
    assert event.action == pb.HISTORY_ACTION_UPDATE


async def test_a_watch_of_every_environment_hears_each_layer_with_its_own_value(
    server: Running,
) -> None:
    """What a view of every environment at once (the web console) watches: an override
    in any environment, and the base value, each read in the layer it was made in."""
    request = watch(keys=["api.timeout"], every_environment=True, from_revision=await now(server))
    async with watching(server.config, request) as w:
        for environment, number in (("staging", 41), ("production", 75), ("", 31)):
            await server.config.SetValue(
                pb.SetValueRequest(key="api.timeout", value=value(number), environment=environment)
            )
        await w.until(lambda w: len(w.events) == 3)

    assert [(e.environment, e.source) for e in w.events] == [
        ("staging", pb.VALUE_SOURCE_OVERRIDE),
        ("production", pb.VALUE_SOURCE_OVERRIDE),
        ("", pb.VALUE_SOURCE_BASE),
    ]
    assert w.values("api.timeout") == [41, 75, 31]
    # One environment and every environment at once is refused, saying why.
    await expect_status(
        anext(aiter(server.config.WatchConfig(watch(every_environment=True, environment="demo")))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_only_what_the_watcher_names_and_can_see_arrives(server: Running) -> None:
    await server.config.CreateConfig(
        pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key="mail.sender", type=pb.CONFIG_TYPE_EMAIL, category="mail", is_active=True,
                is_editable=True, is_deletable=True,
            )
        )
    )  # fmt: skip
    request = watch(
        prefixes=["api."],
        categories=["mail"],
        environment="production",
        from_revision=await now(server),
    )
    async with watching(server.config, request) as w:
        changes = [
            ("api.timeout", 10, "staging"),  # another environment: not read by production
            ("support.email", "help@example.com", ""),  # neither prefix nor category
            ("api.timeout", 11, ""),  # the base layer: read by every environment
            ("mail.sender", "noreply@example.com", "production"),
            ("api.base_url", "https://edge.example.com", "production"),
        ]
        for key, new, environment in changes:
            await server.config.SetValue(
                pb.SetValueRequest(key=key, value=value(new), environment=environment)
            )
        await w.until(lambda w: len(w.events) == 3)
        await asyncio.sleep(0.3)  # nothing else turns up

    assert [(e.key, e.environment) for e in w.events] == [
        ("api.timeout", ""),
        ("mail.sender", "production"),
        ("api.base_url", "production"),
    ]
    # The base changed, but production's override still answers.
    assert w.values("api.timeout") == [60]
    assert w.events[1].category == "mail"


async def test_replay_then_live_under_concurrent_writes_has_no_gap_and_no_duplicate(
    server: Running,
) -> None:
    start = (await server.config.GetValue(pb.GetValueRequest(key="load.counter"))).revision
    for n in range(20):  # history to replay
        await server.config.SetValue(pb.SetValueRequest(key="load.counter", value=value(n + 1)))

    async def writer(offset: int) -> None:
        for n in range(25):
            await server.config.SetValue(
                pb.SetValueRequest(key="load.counter", value=value(100 + offset * 100 + n))
            )

    async with watching(server.config, watch(keys=["load.counter"], from_revision=start)) as w:
        await asyncio.gather(*(writer(offset) for offset in range(4)))
        final = (await server.config.GetValue(pb.GetValueRequest(key="load.counter"))).revision
        await w.until(lambda w: bool(w.events) and w.events[-1].revision == final, within=10)

    assert w.revisions() == list(range(start + 1, final + 1))


async def test_an_idle_stream_gets_progress_with_the_current_revision(server: Running) -> None:
    async with watching(server.config, watch(keys=["api.timeout"])) as w:
        await w.until(lambda w: len(w.progress) >= 2)
        await server.config.SetValue(pb.SetValueRequest(key="support.email", value=value("a@b.co")))
        current = (await server.config.GetValue(pb.GetValueRequest(key="support.email"))).revision
        await w.until(lambda w: bool(w.progress) and w.progress[-1] == current)

    assert w.events == []


async def test_a_revision_the_history_no_longer_holds_is_out_of_range(
    server: Running, tmp_path: Path
) -> None:
    for n in range(5):
        await server.config.SetValue(pb.SetValueRequest(key="load.counter", value=value(n + 1)))

    def retention() -> None:  # an operator's retention job, in a thread of its own
        with contextlib.closing(sqlite3.connect(tmp_path / "watch.db")) as db, db:
            db.execute(
                "INSERT INTO pf_history_retention (keep_from_revision, performed_by, reason) "
                "VALUES (7, 'test', 'compaction')"
            )
            db.execute("DELETE FROM pf_config_history WHERE revision <= 6")

    await asyncio.to_thread(retention)
    oldest = 7

    async with watching(server.config, watch(keys=["api.timeout"], from_revision=2)) as w:
        await asyncio.sleep(0.3)
    ahead = server.config.WatchConfig(watch(from_revision=10_000))

    assert w.error is not None and w.error.code() == grpc.StatusCode.OUT_OF_RANGE
    info = error_info(w.error)
    assert (info.reason, info.metadata["oldest_revision"]) == ("COMPACTED", str(oldest))
    await expect_status(_drain(ahead), grpc.StatusCode.OUT_OF_RANGE)


async def _drain(call: grpc.aio.UnaryStreamCall) -> None:
    """Reads a stream to its end (its status, when it fails)."""
    while await call.read() is not grpc.aio.EOF:
        pass


async def test_bad_watch_requests_are_refused(server: Running) -> None:
    for request, field in [
        (watch(keys=["Not A Key"]), "keys"),
        (watch(environment="moon"), "environment"),
        (watch(from_revision=-1), "from_revision"),
        (watch(kinds=[99]), "kinds[0]"),
    ]:
        error = await expect_status(
            _drain(server.config.WatchConfig(request)), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert field in (error.details() or ""), error.details()


async def test_a_watcher_that_reads_too_slowly_is_told_where_to_resume(tmp_path: Path) -> None:
    async with serving(tmp_path / "slow.db", watch_queue_revisions=4, **FAST) as server:
        await server.config.CreateConfig(
            pb.CreateConfigRequest(
                config=pb.ConfigDefinition(
                    key="load.blob", type=pb.CONFIG_TYPE_STRING, category="test",
                    is_active=True, is_editable=True,
                )
            )
        )  # fmt: skip
        before = _slow_consumers_cut_off()
        # A connection whose stream windows stay at 64 KiB (no BDP probing, which grows
        # them to several MiB): the server's sends stop after a few of the values below.
        slow = grpc.aio.insecure_channel(
            server.address,
            options=[("grpc.use_local_subchannel_pool", 1), ("grpc.http2.bdp_probe", 0)],
        )
        call = pb_grpc.ConfigServiceStub(slow).WatchConfig(watch(keys=["load.blob"]))
        first = await call.read()  # the stream is open; now stop reading
        assert first.HasField("progress") or first.HasField("event")
        # Values large enough that HTTP/2 flow control stops the server's sends while the
        # client does not read, so the server's queue for this stream fills up.
        for n in range(40):
            blob = f"{n:05d}" + "x" * 16_000
            await server.config.SetValue(pb.SetValueRequest(key="load.blob", value=value(blob)))
        # The server cut it off as its queue overflowed, while it was blocked in a write:
        # not when (or if) the client reads again.
        assert _slow_consumers_cut_off() == before + 1
        error = await asyncio.wait_for(expect_status(_drain(call), grpc.StatusCode.ABORTED), 30)
        await slow.close()

    info = error_info(error)
    assert info.reason == "SLOW_CONSUMER"
    assert int(info.metadata["resume_from_revision"]) > 0
    assert "resume from revision" in (error.details() or "")


def _slow_consumers_cut_off() -> float:
    counted = REGISTRY.get_sample_value(
        "switchyard_watch_streams_ended_total", {"reason": "slow_consumer"}
    )
    return counted or 0.0


async def test_shutting_down_ends_streams_with_unavailable(tmp_path: Path) -> None:
    async with serving(tmp_path / "down.db", **FAST) as server:
        call = server.config.WatchConfig(watch(keys=["api.timeout"]))
        await call.read()
        server.application.stop_watchers()
        error = await expect_status(_drain(call), grpc.StatusCode.UNAVAILABLE)

    assert "resume from revision" in (error.details() or "")


async def test_a_temporary_override_expires_by_itself_and_is_announced(server: Running) -> None:
    request = watch(keys=["api.timeout"], environment="staging", from_revision=await now(server))
    async with watching(server.config, request) as w:
        await server.config.SetValue(
            pb.SetValueRequest(
                key="api.timeout",
                value=value(5),
                environment="staging",
                expires_at=_in(seconds=1),
                reason="incident",
            )
        )
        await w.until(lambda w: len(w.events) == 2, within=5)

    assert w.values("api.timeout") == [5, 30]
    assert w.events[1].action == pb.HISTORY_ACTION_DELETE
    history = await server.config.GetHistory(pb.GetHistoryRequest(key="api.timeout"))
    assert history.entries[0].changed_by == "00000000-0000-0000-0000-000000000002"
    assert history.entries[0].reason == "temporary override expired"


async def test_a_temporary_override_over_a_standing_one_reverts_to_it(server: Running) -> None:
    request = watch(keys=["api.timeout"], environment="production", from_revision=await now(server))
    async with watching(server.config, request) as w:
        await server.config.SetValue(
            pb.SetValueRequest(
                key="api.timeout", value=value(300), environment="production", expires_at=_in(1)
            )
        )
        await w.until(lambda w: len(w.events) == 2, within=5)

    assert w.values("api.timeout") == [300, 60]
    config = await server.config.GetConfig(pb.GetConfigRequest(key="api.timeout"))
    [standing] = config.overrides
    assert (standing.value.number_value, standing.HasField("expires_at")) == (60, False)


async def test_a_scheduled_override_starts_by_itself(server: Running) -> None:
    request = watch(keys=["api.timeout"], environment="staging", from_revision=await now(server))
    async with watching(server.config, request) as w:
        await server.config.SetValue(
            pb.SetValueRequest(
                key="api.timeout", value=value(9), environment="staging", starts_at=_in(1)
            )
        )
        before = await server.config.GetValue(
            pb.GetValueRequest(key="api.timeout", environment="staging")
        )
        await w.until(lambda w: len(w.events) == 2, within=5)
    after = await server.config.GetValue(
        pb.GetValueRequest(key="api.timeout", environment="staging")
    )

    assert before.value.number_value == 30
    assert w.values("api.timeout") == [30, 9]
    assert w.events[1].action == pb.HISTORY_ACTION_ENABLE
    assert after.value.number_value == 9


def _in(seconds: float) -> object:
    from .test_config_api import timestamp

    return timestamp(datetime.now(UTC) + timedelta(seconds=seconds))


async def test_from_revision_0_replays_the_whole_history_and_unset_starts_live(
    server: Running,
) -> None:
    request = watch(keys=["api.timeout"], environment="production", from_revision=0)
    async with watching(server.config, request) as whole:
        await whole.until(lambda w: len(w.events) == 2)  # created, then its production override
    async with watching(server.config, watch(keys=["api.timeout"])) as live:
        await live.until(lambda w: bool(w.progress))

    assert [e.action for e in whole.events] == [pb.HISTORY_ACTION_CREATE, pb.HISTORY_ACTION_CREATE]
    assert live.events == []


async def test_a_resumed_watch_never_hands_a_key_an_older_value_than_it_sent(
    server: Running,
) -> None:
    """A replayed event carries the value read as it is replayed; a later event may have
    been made for other watchers before, with the value of its own moment. The watcher
    applies events as they come, so that one must not take the key back in time: seen
    as 148, 157, 156, 157 by a client resuming on another replica."""

    async def set_counter(number: int) -> int:
        answer = await server.config.SetValue(
            pb.SetValueRequest(key="load.counter", value=value(number))
        )
        return answer.revision

    first = await set_counter(1)  # heard by nobody: replayed below, read as it is replayed
    live = watch(keys=["load.counter"], from_revision=first)
    async with watching(server.config, live) as w:
        await set_counter(2)  # heard live: its event is made now, with 2
        await set_counter(3)
        await w.until(lambda w: len(w.events) == 2)
    assert w.values("load.counter") == [2, 3]

    resumed = watch(keys=["load.counter"], from_revision=first - 1)
    async with watching(server.config, resumed) as again:
        await again.until(lambda w: len(w.events) == 3)
    assert again.revisions() == [first, first + 1, first + 2]
    assert again.values("load.counter") == [3, 3, 3]


async def test_thousands_of_watches_opened_at_once_are_all_served(tmp_path: Path) -> None:
    """A reconnect storm (a replica gone, its watchers all back at once): gRPC core
    cancels calls the server has not picked up beyond `grpc.server.max_pending_requests`
    (1,000 by default); 198 of 2,000 streams ended CANCELLED before any handler ran."""
    async with serving(tmp_path / "storm.db", watch_progress_seconds=0.5) as running:
        channels = [grpc.aio.insecure_channel(running.address) for _ in range(10)]
        stubs = [pb_grpc.ConfigServiceStub(channel) for channel in channels]
        calls = [
            stubs[n % len(stubs)].WatchConfig(watch(keys=["api.timeout"])) for n in range(2000)
        ]

        async def first_message(call: grpc.aio.UnaryStreamCall) -> str:
            try:
                await asyncio.wait_for(call.read(), 30)
            except grpc.aio.AioRpcError as error:
                return error.code().name
            return "OK"

        try:
            outcomes = await asyncio.gather(*(first_message(call) for call in calls))
        finally:
            for call in calls:
                call.cancel()
            for channel in channels:
                await channel.close()
    assert {outcome: outcomes.count(outcome) for outcome in set(outcomes)} == {"OK": 2000}


async def test_a_revision_larger_than_a_read_is_replayed_whole_and_once(
    server: Running,
) -> None:
    """One batch of 1,200 writes is one revision of 1,200 history rows: more than the
    replay reads at a time. It is read in parts, each going on from the last row, and
    every row arrives once, then the next revision."""
    start = await now(server)
    writes = [
        cpb.ProposedWrite(
            create_config=pb.CreateConfigRequest(
                config=pb.ConfigDefinition(
                    key=f"bulk.key-{n:04d}", type=pb.CONFIG_TYPE_NUMBER, category="bulk",
                    value=value(n),
                )
            )
        )
        for n in range(1200)
    ]  # fmt: skip
    batches = batch_pb2_grpc.BatchServiceStub(server.channel)
    applied = await batches.ApplyWrites(batch_pb2.ApplyWritesRequest(writes=writes))
    after = await server.config.SetValue(pb.SetValueRequest(key="load.counter", value=value(7)))

    async with watching(
        server.config, watch(prefixes=["bulk.", "load."], from_revision=start)
    ) as w:
        await w.until(lambda w: len(w.events) == 1201, within=30)
    assert w.revisions() == [applied.revision] * 1200 + [after.revision]
    assert [e.key for e in w.events[:1200]] == [f"bulk.key-{n:04d}" for n in range(1200)]
