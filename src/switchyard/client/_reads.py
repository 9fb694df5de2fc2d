"""Reads of many keys, in the pieces the server accepts, shared by the Client's shortcuts
and LiveConfig's loads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from switchyard.client._values import from_value
from switchyard.gen.v1 import config_pb2 as pb

if TYPE_CHECKING:
    from switchyard.gen.v1.config_pb2_grpc import ConfigServiceAsyncStub

BATCH_KEYS = 1000  # the most GetValues accepts in one call
PAGE_SIZE = 1000  # the most ListConfigs returns in one page


async def list_keys(
    stub: ConfigServiceAsyncStub, prefix: str, *, deadline: float | None = None
) -> tuple[list[str], list[int]]:
    """Every active key under `prefix`, page after page, and the revision of each page.
    `deadline`: seconds each call may take."""
    keys: list[str] = []
    revisions: list[int] = []
    token = ""
    while True:
        page = await stub.ListConfigs(
            pb.ListConfigsRequest(key_prefix=prefix, page_size=PAGE_SIZE, page_token=token),
            timeout=deadline,
        )
        keys.extend(config.key for config in page.configs)
        revisions.append(page.revision)
        token = page.next_page_token
        if not token:
            return keys, revisions


async def read_values(
    stub: ConfigServiceAsyncStub,
    keys: Iterable[str],
    environment: str | None,
    *,
    deadline: float | None = None,
) -> tuple[dict[str, Any], list[int]]:
    """The effective values of `keys` (unknown and inactive ones left out), read
    `BATCH_KEYS` at a time, and the revision of each read."""
    names = list(dict.fromkeys(keys))
    values: dict[str, Any] = {}
    revisions: list[int] = []
    for start in range(0, len(names), BATCH_KEYS):
        reply = await stub.GetValues(
            pb.GetValuesRequest(
                keys=names[start : start + BATCH_KEYS], environment=environment or ""
            ),
            timeout=deadline,
        )
        values.update((item.key, from_value(item.value)) for item in reply.values)
        revisions.append(reply.revision)
    return values, revisions


__all__ = ["BATCH_KEYS", "PAGE_SIZE", "list_keys", "read_values"]
