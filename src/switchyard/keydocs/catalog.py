"""What the reference documents: a server's environments, keys with their overrides,
flags and limits, read live or from an exported document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from switchyard.gen.v1 import config_pb2, flag_pb2, rate_limit_pb2
from switchyard.transfer.document import State, read_state

if TYPE_CHECKING:
    from switchyard.client import Client


@dataclass(frozen=True)
class Catalog:
    """Everything the reference documents, as the server's messages. `overrides` maps a
    key to its overrides (a key without any may be missing). Order does not matter: the
    renderers sort."""

    environments: list[config_pb2.Environment]
    configs: list[config_pb2.ConfigDefinition]
    overrides: dict[str, list[config_pb2.Override]]
    flags: list[flag_pb2.FeatureFlag]
    limits: list[rate_limit_pb2.RateLimit]


async def fetch_catalog(client: Client) -> Catalog:
    """Reads every environment, key (inactive ones included) with its overrides, flag
    and limit from the server `client` is connected to, as `switchyard export` reads
    them (`transfer.document.read_state`). Raises `grpc.aio.AioRpcError` for a failed
    call (UNAVAILABLE, or PERMISSION_DENIED for a caller that may not read everything)."""
    return catalog_of(await read_state(client))


def catalog_of(state: State) -> Catalog:
    """The catalog of a server's state, read live or from an exported document."""
    return Catalog(
        environments=list(state.environments),
        configs=list(state.configs),
        overrides=dict(state.overrides),
        flags=list(state.flags),
        limits=list(state.limits),
    )


__all__ = ["Catalog", "catalog_of", "fetch_catalog"]
