"""Assertions on gRPC statuses and their google.rpc details."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2, status_pb2


async def expect_status(call: Awaitable[Any], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """Awaits `call`, which must fail with `code`; returns the error for further checks."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        assert error.code() == code, f"expected {code}, got {error.code()}: {error.details()}"
        assert error.details(), "a failed call must say why"
        return error
    raise AssertionError(f"expected {code}, but the call succeeded")


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("the status carries no google.rpc details")


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The BadRequest field violations of an INVALID_ARGUMENT status, by field."""
    for detail in rich_status(error).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            return {v.field: v.description for v in bad_request.field_violations}
    raise AssertionError("the status carries no BadRequest")


def value(python: Any) -> struct_pb2.Value:
    """A google.protobuf.Value the way a JSON client would send it."""
    out = struct_pb2.Value()
    if python is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(python, bool):
        out.bool_value = python
    elif isinstance(python, int | float):
        out.number_value = python
    elif isinstance(python, str):
        out.string_value = python
    elif isinstance(python, list):
        out.list_value.extend(python)
    else:
        out.struct_value.update(python)
    return out


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Polls `check` until it holds: for state another process or a background task
    changes, which gives no event to wait on. Fails after `within` seconds."""

    async def poll() -> None:
        while not await check():  # noqa: ASYNC110 (nothing to wait on but the answer)
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), within)
