"""A refusal reaches the caller whatever was refused: the status (its message and its
details, which travel as trailers) stays within what a default gRPC client accepts,
16 KiB of metadata, however long the refused text and however many its problems.

Found by the fuzz suite: a flag whose owner_email was 1,000 emoji was refused with a
message quoting it whole, and the client, instead of INVALID_ARGUMENT, got
RESOURCE_EXHAUSTED "received metadata size exceeds hard limit"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import flag_pb2, flag_pb2_grpc

from .conftest import serving

LONG = "\U0001f600" * 1000  # 4,000 bytes, 12,000 once percent-encoded in grpc-message


async def _refusal(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return refused.value


async def test_a_long_text_is_refused_with_a_status_the_caller_receives(tmp_path: Path) -> None:
    async with serving(tmp_path / "long.db") as running:
        flags = flag_pb2_grpc.FlagServiceStub(running.channel)
        for field in ("owner_email", "documentation_url"):
            flag = flag_pb2.FeatureFlag(key="long", name="long", **{field: LONG})
            refused = await _refusal(flags.UpsertFlag(flag_pb2.UpsertFlagRequest(flag=flag)))
            assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.details()
            assert f"flag.{field}" in (refused.details() or "")
        value = struct_pb2.Value(string_value="not an address " + LONG)
        refused = await _refusal(
            running.config.SetValue(pb.SetValueRequest(key="support.email", value=value))
        )
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.details()
        assert "email" in (refused.details() or "")


async def test_many_problems_are_refused_with_a_status_the_caller_receives(
    tmp_path: Path,
) -> None:
    rules = struct_pb2.ListValue()
    for number in range(100):
        rules.values.add().struct_value.update(
            {"id": f"r{number}", "when": {"attribute": LONG[:200], "op": LONG[:200]}}
        )
    flag = flag_pb2.FeatureFlag(key="many", name="many", targeting_rules=rules)
    async with serving(tmp_path / "many.db") as running:
        flags = flag_pb2_grpc.FlagServiceStub(running.channel)
        refused = await _refusal(flags.UpsertFlag(flag_pb2.UpsertFlagRequest(flag=flag)))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.details()
        assert "targeting_rules" in (refused.details() or "")
