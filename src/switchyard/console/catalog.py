"""The key list: every key the user may read, with its effective value in each layer.

Building it reads every definition (ListConfigs, a thousand to a page) and resolves every
key in each column (GetValues, a thousand keys to a call), so it is built once per user
and revision and kept: searching and filtering 5,000 keys then costs one cheap call
(ListEnvironments, which says the newest revision) and a scan in memory. A change
anywhere moves the revision, and the next page built after it reads everything again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from switchyard.client import all_pages
from switchyard.console.formatting import Layer, display, enum_label, layer, short, value_of
from switchyard.console.gateway import Api, unless_gone
from switchyard.gen.v1 import config_pb2 as pb

BATCH_KEYS = 1000
"""The most keys GetValues resolves in one call."""
KEPT_USERS = 32
"""How many users' lists are kept; the least recently used goes first."""


@dataclass(frozen=True)
class Column:
    """A layer the list shows: the base value (`environment` empty) or an environment."""

    environment: str
    parent: str
    protected: bool

    @property
    def title(self) -> str:
        return self.environment or "base"


@dataclass(frozen=True)
class Cell:
    text: str
    full: str
    layer: Layer


@dataclass(frozen=True)
class Row:
    key: str
    display_name: str
    category: str
    type: str
    sensitive: bool
    requires_restart: bool
    cells: tuple[Cell, ...]
    words: str  # what a search looks in, lower-cased


@dataclass(frozen=True)
class Catalog:
    revision: int
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]

    @property
    def categories(self) -> list[tuple[str, int]]:
        counts = Counter(row.category for row in self.rows)
        return sorted(counts.items())

    def search(self, query: str = "", category: str = "") -> list[Row]:
        """The rows whose key, display name or description holds every word of `query`
        (in any case), in `category` when one is given; in key order."""
        words = query.lower().split()
        return [
            row
            for row in self.rows
            if (not category or row.category == category)
            and all(word in row.words for word in words)
        ]

    def row(self, key: str) -> Row | None:
        return next((row for row in self.rows if row.key == key), None)


async def columns_of(api: Api) -> tuple[tuple[Column, ...], int]:
    """The layers to show, base first, then the environments (parents before their
    children), and the newest revision."""
    reply = await api(api.config.ListEnvironments, pb.ListEnvironmentsRequest())
    environments = sorted(reply.environments, key=lambda e: (_depth(e, reply.environments), e.name))
    return (
        Column("", "", False),
        *(Column(e.name, e.parent, e.protected) for e in environments),
    ), reply.revision


def _depth(environment: pb.Environment, every: Sequence[pb.Environment]) -> int:
    parents = {e.name: e.parent for e in every}
    depth, name, seen = 0, environment.parent, set()
    while name and name not in seen:
        seen.add(name)
        depth += 1
        name = parents.get(name, "")
    return depth


async def build(api: Api, columns: tuple[Column, ...], revision: int) -> Catalog:
    definitions, _ = await all_pages(
        lambda request: api(api.config.ListConfigs, request), pb.ListConfigsRequest(), "configs"
    )
    keys = [d.key for d in definitions]
    answers = await asyncio.gather(*(_resolve(api, keys, c.environment) for c in columns))
    rows = tuple(_row(d, [found.get(d.key) for found in answers]) for d in definitions)
    return Catalog(revision, columns, rows)


async def row_of(api: Api, columns: tuple[Column, ...], key: str) -> Row | None:
    """The row of one key as it is now, read on its own (a live change refreshes one row
    without reading the whole list again); None for a key that is gone or inactive."""
    got = await unless_gone(api(api.config.GetConfig, pb.GetConfigRequest(key=key)))
    if got is None or not got.config.is_active:
        return None
    answers = await asyncio.gather(*(_resolve(api, [key], c.environment) for c in columns))
    return _row(got.config, [found.get(key) for found in answers])


def _row(definition: pb.ConfigDefinition, answers: list[pb.GetValueResponse | None]) -> Row:
    return Row(
        key=definition.key,
        display_name=definition.display_name,
        category=definition.category or "uncategorised",
        type=enum_label(pb.ConfigType, definition.type),
        sensitive=definition.is_sensitive or definition.is_encrypted,
        requires_restart=definition.requires_restart,
        cells=tuple(_cell(answer) for answer in answers),
        words=" ".join((definition.key, definition.display_name, definition.description)).lower(),
    )


async def _resolve(api: Api, keys: list[str], environment: str) -> dict[str, pb.GetValueResponse]:
    chunks = [keys[start : start + BATCH_KEYS] for start in range(0, len(keys), BATCH_KEYS)]
    replies = await asyncio.gather(
        *(
            api(api.config.GetValues, pb.GetValuesRequest(keys=chunk, environment=environment))
            for chunk in chunks
        )
    )
    return {answer.key: answer for reply in replies for answer in reply.values}


def _cell(reply: pb.GetValueResponse | None) -> Cell:
    if reply is None:
        return Cell("", "", Layer("—", "unset", "not readable here"))
    text = display(value_of(reply, "value"))
    return Cell(short(text), text, layer(reply))


class Catalogs:
    """The latest catalog of each user, by a digest of their token (so that one user's
    list, which their grants narrow, is never shown to another)."""

    def __init__(self, kept: int = KEPT_USERS) -> None:
        self._kept = kept
        self._catalogs: OrderedDict[str, Catalog] = OrderedDict()
        self._building: dict[str, asyncio.Lock] = {}

    async def current(self, api: Api, user: str | None) -> Catalog:
        """The user's catalog at the newest revision, built when the revision moved.
        Concurrent requests of one user wait for one build."""
        columns, revision = await columns_of(api)
        owner = hashlib.sha256((user or "").encode()).hexdigest()
        lock = self._building.setdefault(owner, asyncio.Lock())
        async with lock:
            kept = self._catalogs.get(owner)
            if kept is None or kept.revision != revision or kept.columns != columns:
                kept = await build(api, columns, revision)
                self._catalogs[owner] = kept
            self._catalogs.move_to_end(owner)
            while len(self._catalogs) > self._kept:
                gone, _ = self._catalogs.popitem(last=False)
                self._building.pop(gone, None)
        return kept


__all__ = [
    "BATCH_KEYS",
    "Catalog",
    "Catalogs",
    "Cell",
    "Column",
    "Row",
    "build",
    "columns_of",
    "row_of",
]
