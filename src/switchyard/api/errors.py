"""The one place where errors become gRPC statuses.

Domain errors map by class through `_CODES` (a batch's `Refused` by its first
refusal's class); field violations travel as
`google.rpc.BadRequest`, a stale version, a compacted revision or a watcher that fell
behind as `google.rpc.ErrorInfo`, an unavailable store as `google.rpc.RetryInfo`.
`api.interceptor` applies this to what every handler raises; anything unexpected becomes
INTERNAL there, with a generic message and its traceback in the log.

A status travels as trailers, and a default gRPC client refuses trailers past 16 KiB
(some past 8 KiB) with RESOURCE_EXHAUSTED, so the caller never learns why it was refused.
Messages quote what was refused, which may be megabytes, and a request may break a
thousand rules: the message and the violations are cut to `MESSAGE_BYTES` and
`VIOLATION_BYTES`, the last violation saying how many more there were. Percent-encoded
in grpc-message and in base64 in grpc-status-details-bin, that is under 6 KiB.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import structlog
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from switchyard.domain.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    OutOfRange,
    Overrun,
    PermissionDenied,
    Refused,
    ResourceExhausted,
    SwitchyardError,
    Unauthenticated,
    Unavailable,
)

log = structlog.get_logger(__name__)

ERROR_DOMAIN = "switchyard.v1"
MESSAGE_BYTES = 800
"""The most of a status message sent, in UTF-8 bytes."""
VIOLATION_BYTES = 1500
"""The most of the field violations sent, in UTF-8 bytes of their fields and
descriptions."""
_MORE = "\u2026"

_CODES: dict[type[SwitchyardError], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Conflict: grpc.StatusCode.ABORTED,
    OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    Overrun: grpc.StatusCode.ABORTED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_code(error: SwitchyardError) -> grpc.StatusCode:
    if isinstance(error, Refused):
        return status_code(error.first)
    for cls in type(error).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.UNKNOWN


def to_status(error: SwitchyardError) -> grpc.Status:
    """The rich status for a domain error, details packed as google.rpc messages."""
    code = status_code(error)
    details = []
    if isinstance(error, InvalidArgument | Refused) and error.violations:
        details.append(_bad_request(error.violations))
    elif isinstance(error, Conflict):
        metadata = {}
        if error.current_version is not None:
            metadata["current_version"] = str(error.current_version)
        details.append(
            error_details_pb2.ErrorInfo(
                reason="VERSION_MISMATCH", domain=ERROR_DOMAIN, metadata=metadata
            )
        )
    elif isinstance(error, Overrun):
        details.append(
            error_details_pb2.ErrorInfo(
                reason="SLOW_CONSUMER",
                domain=ERROR_DOMAIN,
                metadata={}
                if error.resume_from is None
                else {"resume_from_revision": str(error.resume_from)},
            )
        )
    elif isinstance(error, OutOfRange) and error.oldest_revision is not None:
        details.append(
            error_details_pb2.ErrorInfo(
                reason="COMPACTED",
                domain=ERROR_DOMAIN,
                metadata={"oldest_revision": str(error.oldest_revision)},
            )
        )
    elif isinstance(error, Unavailable):
        details.append(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1)))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=cut(error.message), details=packed)
    )


def cut(text: str, most: int = MESSAGE_BYTES) -> str:
    """`text`, or as much of it as fits in `most` UTF-8 bytes, ending in an ellipsis."""
    encoded = text.encode()
    if len(encoded) <= most:
        return text
    return encoded[: most - len(_MORE.encode())].decode(errors="ignore") + _MORE


def _bad_request(violations: Sequence[FieldViolation]) -> error_details_pb2.BadRequest:
    """The violations that fit in `VIOLATION_BYTES`, each cut short, and then one saying
    how many more there were."""
    each = VIOLATION_BYTES // 4
    request = error_details_pb2.BadRequest()
    left = VIOLATION_BYTES
    for number, violation in enumerate(violations):
        field, description = cut(violation.field, each // 2), cut(violation.description, each)
        size = len(field.encode()) + len(description.encode())
        if size > left:
            request.field_violations.add(
                field="", description=f"and {len(violations) - number} more problems"
            )
            break
        left -= size
        request.field_violations.add(field=field, description=description)
    return request


__all__ = ["MESSAGE_BYTES", "VIOLATION_BYTES", "cut", "status_code", "to_status"]
