"""When the database cannot be reached, reads go on from what the cache last held and say
so; writes fail with UNAVAILABLE; a key the cache never held is UNAVAILABLE too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from switchyard.gen.v1 import config_pb2 as pb

from .conftest import serving
from .helpers import expect_status, value


async def test_reads_answer_from_the_cache_marked_stale_and_writes_are_unavailable(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path / "down.db") as server:
        await server.config.CreateConfig(
            pb.CreateConfigRequest(
                config=pb.ConfigDefinition(
                    key="short.lived", type=pb.CONFIG_TYPE_NUMBER, category="test",
                    is_active=True, is_editable=True, cache_ttl_seconds=1, value=value(7),
                )
            )
        )  # fmt: skip
        fresh = await server.config.GetValue(pb.GetValueRequest(key="short.lived"))
        await asyncio.sleep(1.1)  # the cached answer has expired, but is still held

        await server.application.store.close()  # the database is gone

        stale = await server.config.GetValue(pb.GetValueRequest(key="short.lived"))
        batch = await server.config.GetValues(pb.GetValuesRequest(keys=["short.lived"]))
        await expect_status(
            server.config.SetValue(pb.SetValueRequest(key="short.lived", value=value(8))),
            grpc.StatusCode.UNAVAILABLE,
        )
        await expect_status(
            server.config.GetValue(pb.GetValueRequest(key="support.email")),
            grpc.StatusCode.UNAVAILABLE,
        )

    assert not fresh.stale
    assert stale.stale and stale.value.number_value == 7 and stale.revision == fresh.revision
    assert batch.stale and batch.values[0].value.number_value == 7
