"""The key list: every key the user may read, with its effective value in each layer.

A search looks at keys, names and descriptions, never at values, so the catalog holds
every definition (ListConfigs, a thousand to a page) and reads values only for the rows
it shows (GetValues, one call per layer for a page of rows), keeping them. It is kept
per user and caught up when the revision moves: the history since its revision names
the keys that changed, and only those are read again. Searching 5,000 keys is then one
cheap call (ListEnvironments, which says the newest revision) and a scan in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from switchyard.client import all_pages, enum_name
from switchyard.console.formatting import Layer, display, layer, short, value_of
from switchyard.console.gateway import Api, unless_gone
from switchyard.gen.v1 import config_pb2 as pb

BATCH_KEYS = 1000
"""The most keys GetValues resolves in one call."""
KEPT_USERS = 32
"""How many users' catalogs are kept; the least recently used goes first."""
CATCH_UP_CHANGES = 500
"""The most history rows a catalog catches up on; beyond, it is read again whole."""
REREAD_SECONDS = 300.0
"""A catalog is read again whole at least this often: a change of the user's own grants
is not in the history they may read, and it must not narrow or widen their list for
longer than this."""


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
class Entry:
    """A key as a search finds it: its definition, not its values."""

    key: str
    display_name: str
    category: str
    type: str
    sensitive: bool
    requires_restart: bool
    words: str  # what a search looks in, lower-cased

    @classmethod
    def of(cls, definition: pb.ConfigDefinition) -> Entry:
        return cls(
            key=definition.key,
            display_name=definition.display_name,
            category=definition.category or "uncategorised",
            type=enum_name(pb.ConfigType, definition.type),
            sensitive=definition.is_sensitive or definition.is_encrypted,
            requires_restart=definition.requires_restart,
            words=" ".join(
                (definition.key, definition.display_name, definition.description)
            ).lower(),
        )


@dataclass(frozen=True)
class Row:
    """A key as the list shows it: its entry and its value in each column."""

    entry: Entry
    cells: tuple[Cell, ...]

    @property
    def key(self) -> str:
        return self.entry.key


@dataclass
class Catalog:
    revision: int
    columns: tuple[Column, ...]
    entries: tuple[Entry, ...]  # in key order
    read_at: float = field(default_factory=time.monotonic)
    _cells: dict[str, tuple[Cell, ...]] = field(default_factory=dict)
    _shown: dict[str, str] = field(default_factory=dict)

    @property
    def categories(self) -> list[tuple[str, int]]:
        return sorted(Counter(entry.category for entry in self.entries).items())

    def search(self, query: str = "", category: str = "") -> list[Entry]:
        """The entries whose key, display name or description holds every word of
        `query` (in any case), in `category` when one is given; in key order."""
        found = [e for e in self.entries if e.category == category] if category else self.entries
        for word in query.lower().split():  # each word narrows what the one before found
            found = [entry for entry in found if word in entry.words]
        return list(found)

    async def rows(self, api: Api, entries: Sequence[Entry]) -> list[Row]:
        """The rows of `entries`, reading the values not read yet (one call per column)."""
        unread = [entry.key for entry in entries if entry.key not in self._cells]
        if unread:
            answers = await asyncio.gather(
                *(_resolve(api, unread, column.environment) for column in self.columns)
            )
            for key in unread:
                self._cells[key] = tuple(_cell(found.get(key)) for found in answers)
        return [Row(entry, self._cells[entry.key]) for entry in entries]

    def shown(self, row: Row, render: Callable[[Row], str]) -> str:
        """`render(row)`, kept until the row's key changes: a hundred rows are rendered
        once per change, not once per keystroke of a search."""
        html = self._shown.get(row.key)
        if html is None:
            html = self._shown[row.key] = render(row)
        return html

    def changed(self, revision: int, entries: dict[str, Entry | None]) -> Catalog:
        """This catalog at `revision`, where `entries` changed (None: gone): their values
        are read again when next shown, the others' are kept."""
        kept = {entry.key: entry for entry in self.entries}
        for key, entry in entries.items():
            if entry is None:
                kept.pop(key, None)
            else:
                kept[key] = entry
        cells = {key: cells for key, cells in self._cells.items() if key not in entries}
        shown = {key: html for key, html in self._shown.items() if key not in entries}
        ordered = tuple(kept[key] for key in sorted(kept))
        return Catalog(revision, self.columns, ordered, self.read_at, cells, shown)


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


async def read(api: Api, columns: tuple[Column, ...], revision: int) -> Catalog:
    """Every definition the user may read, at (or just after) `revision`."""
    definitions, _ = await all_pages(
        lambda request: api(api.config.ListConfigs, request), pb.ListConfigsRequest(), "configs"
    )
    return Catalog(revision, columns, tuple(Entry.of(d) for d in definitions))


async def caught_up(api: Api, catalog: Catalog, revision: int) -> Catalog | None:
    """`catalog` moved on to `revision` by what the history says changed since; None
    when that is too much, or an environment changed (inheritance may move any value):
    then it is read again whole."""
    reply = await api(
        api.config.GetHistory,
        pb.GetHistoryRequest(after_revision=catalog.revision, page_size=CATCH_UP_CHANGES),
    )
    if reply.next_page_token:
        return None
    if any(entry.kind == pb.CHANGE_KIND_ENVIRONMENT for entry in reply.entries):
        return None
    keys = {entry.key for entry in reply.entries if entry.kind == pb.CHANGE_KIND_CONFIG}
    definitions = await asyncio.gather(*(_definition(api, key) for key in keys))
    return catalog.changed(revision, dict(zip(keys, definitions, strict=True)))


async def _definition(api: Api, key: str) -> Entry | None:
    got = await unless_gone(api(api.config.GetConfig, pb.GetConfigRequest(key=key)))
    return Entry.of(got.config) if got is not None and got.config.is_active else None


async def row_of(api: Api, columns: tuple[Column, ...], key: str) -> Row | None:
    """The row of one key as it is now, read on its own (a live change refreshes one row
    without the list); None for a key that is gone or inactive."""
    entry = await _definition(api, key)
    if entry is None:
        return None
    replies = await asyncio.gather(*(resolve_one(api, key, c.environment) for c in columns))
    return Row(entry, tuple(_cell(reply) for reply in replies))


async def resolve_one(api: Api, key: str, environment: str) -> pb.GetValueResponse | None:
    """One key in one layer: GetValue, whose answers the server caches, so refreshing a
    row or a key's page after a change reads the database only for what changed."""
    return await unless_gone(
        api(api.config.GetValue, pb.GetValueRequest(key=key, environment=environment))
    )


async def _resolve(
    api: Api, keys: Iterable[str], environment: str
) -> dict[str, pb.GetValueResponse]:
    names = list(keys)
    chunks = [names[start : start + BATCH_KEYS] for start in range(0, len(names), BATCH_KEYS)]
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
        self._locks: dict[str, asyncio.Lock] = {}

    async def current(self, api: Api, user: str | None) -> Catalog:
        """The user's catalog at the newest revision. Concurrent requests of one user
        wait for one read."""
        columns, revision = await columns_of(api)
        owner = hashlib.sha256((user or "").encode()).hexdigest()
        async with self._locks.setdefault(owner, asyncio.Lock()):
            kept = self._catalogs.get(owner)
            if (
                kept is None
                or kept.columns != columns
                or time.monotonic() - kept.read_at > REREAD_SECONDS
            ):
                kept = await read(api, columns, revision)
            elif kept.revision != revision:
                kept = await caught_up(api, kept, revision) or await read(api, columns, revision)
            self._catalogs[owner] = kept
            self._catalogs.move_to_end(owner)
            while len(self._catalogs) > self._kept:
                gone, _ = self._catalogs.popitem(last=False)
                self._locks.pop(gone, None)
        return kept


__all__ = [
    "BATCH_KEYS",
    "CATCH_UP_CHANGES",
    "REREAD_SECONDS",
    "Catalog",
    "Catalogs",
    "Cell",
    "Column",
    "Entry",
    "Row",
    "caught_up",
    "columns_of",
    "read",
    "resolve_one",
    "row_of",
]
