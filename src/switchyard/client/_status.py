"""Reading `google.rpc.ErrorInfo` from a failed call.

The server explains some statuses with an ErrorInfo in the rich status trailer: a slow
watcher's SLOW_CONSUMER names the revision to resume from, a compacted revision's
COMPACTED the oldest one still held. grpcio-status reads the trailer, and
googleapis-common-protos (a dependency of grpcio-status) has the messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.rpc import error_details_pb2
from grpc_status import rpc_status


def error_info(error: Any) -> tuple[str, Mapping[str, str]] | None:
    """The reason and metadata of the ErrorInfo a failed call (`grpc.aio.AioRpcError`)
    carries; None when it carries none or the trailer cannot be read."""
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # a trailer that disagrees with the call's own status
        return None
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason, dict(info.metadata)
    return None


__all__ = ["error_info"]
