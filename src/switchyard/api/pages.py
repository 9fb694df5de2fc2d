"""What a page of a list holds: no more than a default gRPC client receives.

A list answers up to 1,000 items a page, and its items may be large: a definition holds
values of up to 64 KB, a history entry two of them and their diff. A page of them passed
the 4 MiB a default client accepts, and such a client got RESOURCE_EXHAUSTED for that
page however often it asked. `fitted_page` ends a page early instead, with a token that
goes on after its last item (the cursors are the store's, so the next page starts there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from google.protobuf.message import Message

PAGE_BYTES = 3 * 1024 * 1024
"""The most a page's items take; the rest of 4 MiB is room for the answer's other fields."""

M = TypeVar("M", bound=Message)


def fitted_page(
    items: Sequence[tuple[str, M]], next_cursor: str | None
) -> tuple[list[M], str | None]:
    """A page's messages, each with the cursor that goes on after it: the leading ones
    that fit in PAGE_BYTES (the first always), and the cursor going on after the last of
    them (the store's `next_cursor`, when all fit)."""
    size = 0
    for index, (_, message) in enumerate(items):
        size += message.ByteSize() + 8  # and its tag and length in the answer
        if size > PAGE_BYTES and index > 0:
            return [kept for _, kept in items[:index]], items[index - 1][0]
    return [kept for _, kept in items], next_cursor


__all__ = ["PAGE_BYTES", "fitted_page"]
