"""A page of a list reaches a default client however large its items are: the server ends
a page early, with a token going on after its last item, rather than answer more than a
default client receives (4 MiB). Paging on reads everything exactly once.

Found by the fuzz suite: after writes of 60 KB values, a page of 200 history entries was
8 MB, and a default client got RESOURCE_EXHAUSTED for it however often it asked."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2

from switchyard.gen.v1 import config_pb2 as pb

from .conftest import serving

LARGE = "x" * 60_000
KEYS = [f"large.k{number:02}" for number in range(80)]  # 4.8 MB of values in all


async def _all_pages(call: Callable[[str], Awaitable[Any]], items: str) -> tuple[list[Any], int]:
    """Every item of a list, page by page; and how many pages it took."""
    found: list[Any] = []
    token, pages = "", 0
    while True:
        page = await call(token)
        pages += 1
        found.extend(getattr(page, items))
        token = page.next_page_token
        if not token:
            return found, pages


async def test_pages_of_large_items_fit_a_default_client(tmp_path: Path) -> None:
    async with serving(tmp_path / "pages.db") as running:
        config = running.config
        for key in KEYS:
            definition = pb.ConfigDefinition(
                key=key,
                type=pb.CONFIG_TYPE_STRING,
                category="large",
                value=struct_pb2.Value(string_value=LARGE),
                is_active=True,
                is_editable=True,
            )
            await config.CreateConfig(pb.CreateConfigRequest(config=definition))

        configs, pages = await _all_pages(
            lambda token: config.ListConfigs(
                pb.ListConfigsRequest(key_prefix="large.", page_size=1000, page_token=token)
            ),
            "configs",
        )
        assert [c.key for c in configs] == KEYS
        assert all(c.value.string_value == LARGE for c in configs)
        assert pages > 1

        entries, pages = await _all_pages(
            lambda token: config.GetHistory(pb.GetHistoryRequest(page_size=1000, page_token=token)),
            "entries",
        )
        created = [e.key for e in entries if e.key.startswith("large.")]
        assert sorted(created) == KEYS  # each once
        assert len({(e.revision, e.id) for e in entries}) == len(entries)
        assert pages > 1
