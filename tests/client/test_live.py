"""LiveConfig against real servers: the first load, every kind of change, and recovery
from a restarted server, a compacted history and a silent stream."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

import grpc
import pytest

from switchyard.app import open_application
from switchyard.client import Client, to_value
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.service.seed import DEMO_KEYS
from switchyard.settings import Settings

from .conftest import FAST_RECONNECT, TEST_WRITE, Switchyard, eventually

Change = tuple[str, Any, Any]
API = {"api.timeout": 30, "api.base_url": "https://api.example.com"}


def record(changes: list[Change]) -> Any:
    return lambda key, old, new: changes.append((key, old, new))


# --- the first load --------------------------------------------------------------------


async def test_loads_named_keys_and_prefixes_at_the_current_revision(
    switchyard: Switchyard, client: Client
) -> None:
    async with client.live(keys=["support.email"], prefixes=["api."]) as live:
        assert live.snapshot() == {**API, "support.email": "support@example.com"}
        assert live.get("api.timeout") == 30
        assert live.get("cache.ttl", "unwatched") == "unwatched"
        assert live.revision == switchyard.app.config.revision


async def test_loads_values_as_resolved_in_the_environment(client: Client) -> None:
    async with client.live(keys=["api.timeout"], environment="demo") as live:
        assert live.snapshot() == {"api.timeout": 60}  # demo inherits production's override


async def test_with_nothing_named_it_holds_every_key(client: Client) -> None:
    async with client.live() as live:
        assert set(live.snapshot()) == {definition.key for definition in DEMO_KEYS}


async def test_more_keys_than_one_watch_takes_are_refused_at_once(client: Client) -> None:
    with pytest.raises(ValueError, match="at most 1000 keys and prefixes"):
        client.live(keys=[f"key{i}" for i in range(1000)], prefixes=["api."])


async def test_an_unknown_environment_is_raised_and_not_retried(client: Client) -> None:
    view = client.live(keys=["api.timeout"], environment="nowhere")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async with view:
            pass
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert view.error is raised.value
    assert view.reconnects == 0


# --- changes ---------------------------------------------------------------------------


async def test_a_change_arrives_and_callbacks_see_old_and_new(client: Client) -> None:
    changes: list[Change] = []
    async with client.live(prefixes=["api."]) as live:
        live.on_change(record(changes))

        revision = await client.set_value("api.timeout", 45, reason="slower upstream")

        await eventually(lambda: live.get("api.timeout") == 45)
        assert changes == [("api.timeout", 30, 45)]
        await eventually(lambda: live.revision >= revision)


async def test_a_deleted_key_goes_away(client: Client) -> None:
    changes: list[Change] = []
    async with client.live(prefixes=["api."]) as live:
        live.on_change(record(changes))

        await client.config.DeleteConfig(pb.DeleteConfigRequest(key="api.base_url", reason="x"))

        await eventually(lambda: "api.base_url" not in live.snapshot())
        assert changes == [("api.base_url", "https://api.example.com", None)]


async def test_a_new_key_under_a_watched_prefix_appears(client: Client) -> None:
    async with client.live(prefixes=["api."]) as live:
        await client.config.CreateConfig(
            pb.CreateConfigRequest(
                config=pb.ConfigDefinition(
                    key="api.retries",
                    type=pb.CONFIG_TYPE_NUMBER,
                    category="api",
                    value=to_value(3),
                    is_active=True,
                    is_editable=True,
                    is_deletable=True,
                ),
                reason="retries",
            )
        )

        await eventually(lambda: live.get("api.retries") == 3)
        assert live.snapshot() == {**API, "api.retries": 3}


async def test_overrides_in_the_environment_and_in_its_parent(client: Client) -> None:
    async with client.live(keys=["api.timeout"], environment="demo") as live:
        await client.set_value("api.timeout", 90, environment="production")
        await eventually(lambda: live.get("api.timeout") == 90)

        await client.set_value("api.timeout", 120, environment="demo")
        await eventually(lambda: live.get("api.timeout") == 120)

        await client.config.DeleteOverride(
            pb.DeleteOverrideRequest(key="api.timeout", environment="demo", reason="x")
        )
        await eventually(lambda: live.get("api.timeout") == 90)


async def test_a_changed_parent_makes_the_view_load_again(client: Client) -> None:
    changes: list[Change] = []
    async with client.live(keys=["api.timeout"], environment="demo") as live:
        live.on_change(record(changes))

        await client.config.UpsertEnvironment(
            pb.UpsertEnvironmentRequest(
                environment=pb.Environment(name="demo", parent="staging"), reason="x"
            )
        )

        await eventually(lambda: live.get("api.timeout") == 30)  # no override in staging
        assert changes == [("api.timeout", 60, 30)]
        assert live.reloads == 1


async def test_a_failing_callback_is_logged_and_the_view_carries_on(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    changes: list[Change] = []

    def broken(key: str, old: Any, new: Any) -> None:
        raise RuntimeError("a bug in the application")

    async with client.live(keys=["api.timeout"]) as live:
        live.on_change(broken)
        live.on_change(record(changes))

        with caplog.at_level(logging.ERROR, logger="switchyard.client"):
            await client.set_value("api.timeout", 41)
            await eventually(lambda: live.get("api.timeout") == 41)
        await client.set_value("api.timeout", 42)
        await eventually(lambda: live.get("api.timeout") == 42)

        assert changes == [("api.timeout", 30, 41), ("api.timeout", 41, 42)]
        assert "a bug in the application" in caplog.text


# --- recovery --------------------------------------------------------------------------


async def test_catches_up_with_a_change_made_while_the_server_was_away(
    switchyard: Switchyard, client: Client
) -> None:
    changes: list[Change] = []
    async with client.live(prefixes=["api."], environment="production") as live:
        live.on_change(record(changes))

        await switchyard.stop()
        application = await switchyard.open()  # the next server, not yet listening
        write = await application.config.set_value("api.timeout", 75, "production", TEST_WRITE)
        await switchyard.serve()  # on the same port

        await eventually(lambda: live.get("api.timeout") == 75)
        assert changes == [("api.timeout", 60, 75)]
        assert live.reconnects >= 1
        await eventually(lambda: live.revision >= write.revision)

        await client.set_value("api.timeout", 80, environment="production")
        await eventually(lambda: live.get("api.timeout") == 80)


async def test_loads_again_when_the_history_it_needs_was_compacted(
    switchyard: Switchyard, client: Client
) -> None:
    async with client.live(prefixes=["api."]) as live:
        await switchyard.stop()
        application = await switchyard.open()
        await application.config.set_value("api.timeout", 31, None, TEST_WRITE)
        last = (await application.config.set_value("api.timeout", 32, None, TEST_WRITE)).revision
        await eventually(lambda: application.bus.revision >= last)
        with sqlite3.connect(switchyard.database) as database:  # a retention, recorded first
            database.execute(
                "INSERT INTO pf_history_retention (keep_from_revision, performed_by, reason) "
                "VALUES (?, 'test', 'compaction')",
                (last,),
            )
            database.execute("DELETE FROM pf_config_history WHERE revision < ?", (last,))
        await switchyard.serve()

        await eventually(lambda: live.reloads == 1)
        assert live.snapshot() == {**API, "api.timeout": 32}
        assert live.revision == last

        await client.set_value("api.timeout", 33)
        await eventually(lambda: live.get("api.timeout") == 33)


async def test_reconnects_when_the_stream_falls_silent(tmp_path: Any) -> None:
    quiet = Switchyard(tmp_path / "quiet.db", progress_seconds=60)
    await quiet.start()
    try:
        async with (
            Client(quiet.address, channel_options=FAST_RECONNECT) as client,
            client.live(keys=["api.timeout"], progress_timeout=0.2) as live,
        ):
            await eventually(lambda: live.reconnects >= 2)

            await client.set_value("api.timeout", 50)
            await eventually(lambda: live.get("api.timeout") == 50)
    finally:
        await quiet.stop()


async def test_a_slow_consumer_told_to_resume_catches_up(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cramped = Switchyard(tmp_path / "cramped.db", queue_revisions=2)
    await cramped.start()
    try:
        # Captured from the start: the server may poll, and the view be told to resume,
        # while the other replica is still closing.
        with caplog.at_level(logging.INFO, logger="switchyard.client"):
            async with (
                Client(cramped.address, channel_options=FAST_RECONNECT) as client,
                client.live(keys=["api.timeout"]) as live,
            ):
                # Another replica writes: the server hears of all 30 revisions at its next
                # poll, at once, and its 2-revision queue for this watcher overflows.
                replica = await open_application(
                    Settings(database_url=f"sqlite:///{cramped.database}", poll_seconds=60)
                )
                try:
                    for seconds in range(31, 61):
                        last = await replica.config.set_value(
                            "api.timeout", seconds, None, TEST_WRITE
                        )
                finally:
                    await replica.close()

                await eventually(lambda: live.revision >= last.revision)

                assert "StatusCode.ABORTED" in caplog.text
                assert live.get("api.timeout") == 60
    finally:
        await cramped.stop()


async def test_closing_a_view_that_cannot_connect_ends_it_cleanly(
    switchyard: Switchyard, client: Client
) -> None:
    await switchyard.stop()
    live = client.live(keys=["api.timeout"])
    waiting = asyncio.create_task(live.ready())
    await eventually(lambda: live.reconnects >= 1)

    await live.close()

    with pytest.raises(RuntimeError, match="closed before its first load"):
        await waiting
    assert live.snapshot() == {}
