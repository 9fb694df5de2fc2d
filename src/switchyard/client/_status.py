"""Reading the rich status details of a failed call: `google.rpc.ErrorInfo` and the
field violations of `google.rpc.BadRequest`.

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
    for detail in _details(error):
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason, dict(info.metadata)
    return None


def field_violations(error: Any) -> list[tuple[str, str]]:
    """The (field, description) pairs of the BadRequest a failed call carries, in the
    server's order: `value` for SetValue's value, `writes[3].set_value.value` in a
    batch. Empty when it carries none."""
    violations: list[tuple[str, str]] = []
    for detail in _details(error):
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend((v.field, v.description) for v in bad.field_violations)
    return violations


def _details(error: Any) -> list[Any]:
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # a trailer that disagrees with the call's own status
        return []
    return [] if status is None else list(status.details)


__all__ = ["error_info", "field_violations"]
