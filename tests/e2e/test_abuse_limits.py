"""Limits against abuse: request size, streams per identity, and management calls per
identity counted by Switchyard's own rate-limit engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from switchyard.domain.errors import InvalidArgument
from switchyard.gen.v1 import config_pb2 as pb

from .conftest import serving
from .test_security import bearer, make_token


def _set(value: str) -> pb.SetValueRequest:
    return pb.SetValueRequest(
        key="api.base_url",
        environment="staging",
        value=struct_pb2.Value(string_value=value),
    )


async def test_management_calls_are_limited_per_identity(tmp_path: Path) -> None:
    async with serving(tmp_path / "a.db", auth=True, management_rate_limit="3/60") as running:
        first = bearer(await make_token(running, "first", "editor"))
        second = bearer(await make_token(running, "second", "editor"))
        for number in range(3):
            await running.config.SetValue(_set(f"https://{number}.example.com"), metadata=first)
        revision = running.application.config.revision
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await running.config.SetValue(_set("https://late.example.com"), metadata=first)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "management calls" in (refused.value.details() or "")
        assert running.application.config.revision == revision
        # Reads are not management calls, and another identity has its own allowance.
        await running.config.GetValue(pb.GetValueRequest(key="api.base_url"), metadata=first)
        await running.config.SetValue(_set("https://other.example.com"), metadata=second)


async def test_streams_are_limited_per_identity(tmp_path: Path) -> None:
    # Progress messages every 0.1 s: a stream that sends one is open and admitted.
    async with serving(
        tmp_path / "s.db", auth=True, max_streams_per_identity=2, watch_progress_seconds=0.1
    ) as running:
        reader = bearer(await make_token(running, "reader", "reader"))
        other = bearer(await make_token(running, "other", "reader"))
        request = pb.WatchConfigRequest(environment="staging")
        open_streams = [running.config.WatchConfig(request, metadata=reader) for _ in range(2)]
        for stream in open_streams:
            assert (await asyncio.wait_for(stream.read(), 2)).HasField("progress")
        third = running.config.WatchConfig(request, metadata=reader)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await third.read()
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        mine = running.config.WatchConfig(request, metadata=other)
        assert (await asyncio.wait_for(mine.read(), 2)).HasField("progress")
        open_streams[0].cancel()
        await asyncio.sleep(0.2)
        again = running.config.WatchConfig(request, metadata=reader)
        assert (await asyncio.wait_for(again.read(), 2)).HasField("progress")
        for stream in (*open_streams, mine, again):
            stream.cancel()


async def test_a_request_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    async with serving(tmp_path / "m.db", max_message_bytes=2048) as running:
        revision = running.application.config.revision
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await running.config.SetValue(_set("https://" + "a" * 4000 + ".example.com"))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert running.application.config.revision == revision


async def test_an_allowance_the_counter_cannot_keep_is_refused_at_start_up(tmp_path: Path) -> None:
    # Management calls are counted in a sliding window, which remembers each call and so
    # holds at most 100,000: a larger allowance was accepted at start-up and then made
    # every management call fail with INVALID_ARGUMENT about an internal counter.
    with pytest.raises(InvalidArgument, match="SWITCHYARD_MANAGEMENT_RATE_LIMIT"):
        async with serving(tmp_path / "big.db", auth=True, management_rate_limit="1000000/60"):
            pass
    most = "100000/60"
    async with serving(tmp_path / "most.db", auth=True, management_rate_limit=most) as running:
        editor = bearer(await make_token(running, "editor", "editor"))
        await running.config.SetValue(_set("https://most.example.com"), metadata=editor)
