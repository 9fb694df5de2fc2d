"""Every item of a paged List RPC, page after page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from google.protobuf.message import Message

Request = TypeVar("Request", bound=Message)

MAX_PAGE = 1000
"""The largest page the server answers."""


async def all_pages(
    call: Callable[[Request], Awaitable[Any]], request: Request, field: str
) -> tuple[list[Any], int]:
    """Calls a List RPC (`client.flags.ListFlags`, ...) with `request` (copied, its
    `page_size` the largest page) until `next_page_token` is empty; returns every item
    of the reply's repeated `field` and the revision of the first page. A page may be
    empty without being the last (the server leaves out what the caller may not read
    after paging), so only the token ends it."""
    page = type(request)()
    page.CopyFrom(request)
    page.page_size = MAX_PAGE  # type: ignore[attr-defined]
    items: list[Any] = []
    revision: int | None = None
    while True:
        reply = await call(page)
        items.extend(getattr(reply, field))
        revision = reply.revision if revision is None else revision
        if not reply.next_page_token:
            return items, revision
        page.page_token = reply.next_page_token  # type: ignore[attr-defined]


__all__ = ["MAX_PAGE", "all_pages"]
