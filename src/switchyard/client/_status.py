"""Reading `google.rpc.ErrorInfo` from a failed call without googleapis-common-protos.

The server explains some statuses with an ErrorInfo in the rich status trailer
(`grpc-status-details-bin`): SLOW_CONSUMER names the revision to resume from. The
client is meant to need nothing beyond grpcio and protobuf, so it describes the two
google.rpc messages it reads (Status and ErrorInfo, wire-compatible with the published
ones) in a descriptor pool of its own, which cannot clash with the real definitions when
an application imports those too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

_STATUS_TRAILER = "grpc-status-details-bin"
_Field = descriptor_pb2.FieldDescriptorProto


def _message_classes() -> tuple[type[Any], type[Any]]:
    file = descriptor_pb2.FileDescriptorProto(
        name="switchyard/client/google_rpc.proto",
        package="google.rpc",
        syntax="proto3",
        dependency=[any_pb2.DESCRIPTOR.name],
    )
    status = file.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=_Field.TYPE_INT32, label=_Field.LABEL_OPTIONAL)
    status.field.add(name="message", number=2, type=_Field.TYPE_STRING, label=_Field.LABEL_OPTIONAL)
    status.field.add(
        name="details",
        number=3,
        type=_Field.TYPE_MESSAGE,
        label=_Field.LABEL_REPEATED,
        type_name=".google.protobuf.Any",
    )
    info = file.message_type.add(name="ErrorInfo")
    info.field.add(name="reason", number=1, type=_Field.TYPE_STRING, label=_Field.LABEL_OPTIONAL)
    info.field.add(name="domain", number=2, type=_Field.TYPE_STRING, label=_Field.LABEL_OPTIONAL)
    info.field.add(
        name="metadata",
        number=3,
        type=_Field.TYPE_MESSAGE,
        label=_Field.LABEL_REPEATED,
        type_name=".google.rpc.ErrorInfo.MetadataEntry",
    )
    entry = info.nested_type.add(name="MetadataEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_Field.TYPE_STRING, label=_Field.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=_Field.TYPE_STRING, label=_Field.LABEL_OPTIONAL)

    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(any_pb2.DESCRIPTOR.serialized_pb))
    pool.Add(file)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.ErrorInfo")),
    )


_Status, _ErrorInfo = _message_classes()


def error_info(error: Any) -> tuple[str, Mapping[str, str]] | None:
    """The reason and metadata of the ErrorInfo a failed call (`grpc.aio.AioRpcError`)
    carries; None when it carries none or the trailer cannot be read."""
    for key, value in error.trailing_metadata() or ():
        if key != _STATUS_TRAILER or not isinstance(value, bytes):
            continue
        try:
            status = _Status.FromString(value)
            for detail in status.details:
                if detail.type_url.endswith("/google.rpc.ErrorInfo"):
                    info = _ErrorInfo.FromString(detail.value)
                    return str(info.reason), dict(info.metadata)
        except Exception:  # a malformed trailer must not break the caller's recovery
            return None
    return None


__all__ = ["error_info"]
