"""Server reflection, so that grpcurl and other tools need no proto files.

grpcio-reflection asks the protobuf descriptor pool for "the file containing symbol X".
The upb pool that current protobuf releases use finds services, messages and enums but
not their members, so `grpcurl describe switchyard.v1.ConfigService.SetValue` fails
(grpc/grpc issue 34743). `_MemberAwarePool` answers for a method, field or enum value
with the file of the service, message or enum that declares it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FileDescriptor,
    ServiceDescriptor,
)
from grpc_reflection.v1alpha import reflection

SERVICE_NAME = reflection.SERVICE_NAME


class _MemberAwarePool:
    """The default pool, with member symbols resolved through their parent."""

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self._pool = pool

    def FindFileContainingSymbol(self, symbol: str) -> FileDescriptor:
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            parent, _, member = symbol.rpartition(".")
            if not parent or not self._declares(parent, member):
                raise
            return self._pool.FindFileContainingSymbol(parent)

    def _declares(self, parent: str, member: str) -> bool:
        finders: tuple[tuple[Any, str], ...] = (
            (self._pool.FindServiceByName, "methods_by_name"),
            (self._pool.FindMessageTypeByName, "fields_by_name"),
            (self._pool.FindEnumTypeByName, "values_by_name"),
        )
        for find, members in finders:
            try:
                found: ServiceDescriptor | Descriptor | EnumDescriptor = find(parent)
            except KeyError:
                continue
            return member in getattr(found, members)
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


def enable(server: grpc.aio.Server, service_names: Sequence[str]) -> None:
    """Serves reflection for `service_names` (reflection itself included)."""
    reflection.enable_server_reflection(
        service_names,
        server,
        pool=_MemberAwarePool(descriptor_pool.Default()),
    )


__all__ = ["SERVICE_NAME", "enable"]
