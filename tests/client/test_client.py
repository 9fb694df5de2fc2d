"""Client: the shortcuts answer plain Python values, errors are grpc's own, and the
generated stubs are there for everything else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from switchyard.client import Client, from_value, to_value
from switchyard.gen.v1 import config_pb2 as pb

from .conftest import Switchyard


async def test_get_value_answers_plain_values(client: Client) -> None:
    assert await client.get_value("api.timeout") == 30
    assert await client.get_value("api.timeout", "demo") == 60
    assert await client.get_value("features.maintenance_mode") is False


async def test_get_values_leaves_unknown_keys_out_across_several_calls(client: Client) -> None:
    unknown = [f"absent.key{i}" for i in range(1500)]  # more than one call takes

    values = await client.get_values([*unknown, "api.timeout", "cache.ttl"], "production")

    assert values == {"api.timeout": 60, "cache.ttl": "5m"}
    assert await client.get_values([]) == {}


async def test_set_value_returns_the_new_revision(switchyard: Switchyard, client: Client) -> None:
    revision = await client.set_value(
        "api.timeout", 45, environment="staging", reason="load test", ticket="OPS-7"
    )

    assert revision == switchyard.app.config.revision
    assert await client.get_value("api.timeout", "staging") == 45
    entry = await anext(client.history("api.timeout"))
    assert (entry.revision, entry.environment, entry.ticket) == (revision, "staging", "OPS-7")


async def test_set_value_passes_the_optional_fields(client: Client) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)

    await client.set_value(
        "api.timeout", 99, environment="test", priority=200, expires_at=expires, reason="spike"
    )

    config = await client.config.GetConfig(pb.GetConfigRequest(key="api.timeout"))
    (override,) = [o for o in config.overrides if o.environment == "test"]
    assert override.priority == 200
    assert abs(override.expires_at.ToDatetime(UTC) - expires) < timedelta(milliseconds=1)


async def test_errors_are_grpc_errors(client: Client) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await client.get_value("no.such.key")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await client.set_value("api.timeout", 40, expected_version=1)
    assert stale.value.code() == grpc.StatusCode.ABORTED

    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await client.set_value("api.timeout", "thirty")
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_history_pages_newest_first(client: Client) -> None:
    for seconds in range(31, 31 + 120):  # more than one page of history
        await client.set_value("api.timeout", seconds)

    revisions = [entry.revision async for entry in client.history("api.timeout")]

    assert len(revisions) == 120 + 2  # and the creation and the production override
    assert revisions == sorted(revisions, reverse=True)


async def test_the_generated_stubs_are_at_hand(client: Client) -> None:
    environments = await client.config.ListEnvironments(pb.ListEnvironmentsRequest())
    assert {"production", "demo"} <= {e.name for e in environments.environments}


async def test_closing_the_client_closes_its_views(client: Client) -> None:
    live = client.live(keys=["api.timeout"])
    await live.ready()

    await client.close()

    assert live.get("api.timeout") == 30  # still readable, no longer followed
    assert live.error is None


@pytest.mark.parametrize(
    "python",
    [None, True, False, 0, 60, -3, 2.5, "x", [], [1, "a", None], {"a": {"b": [True, 1.5]}}],
)
def test_values_travel_unchanged(python: object) -> None:
    assert from_value(to_value(python)) == python
    assert type(from_value(to_value(python))) is type(python)


def test_whole_numbers_come_back_as_int_and_the_rest_as_float() -> None:
    assert from_value(to_value(60.0)) == 60
    assert isinstance(from_value(to_value(60.0)), int)
    assert isinstance(from_value(to_value(2.0**60)), float)  # beyond exact integers
    assert from_value(to_value((1, 2))) == [1, 2]


def test_what_json_cannot_carry_is_refused_at_once() -> None:
    with pytest.raises(TypeError):
        to_value({1: "non-string key"})
    with pytest.raises(TypeError):
        to_value({"when": datetime.now(UTC)})
