"""Many writes as one: an import or a declarative apply commits all of its writes under
one revision, or none of them.

The writes are the services' own, unchanged: each opens its transaction as it always
does and joins the batch's (`Store.batch`), so every check a write makes alone it makes
here too, and it sees the writes before it. Each runs under a savepoint, so a refused
write is undone alone and the others still run: a dry run reports every refusal at once,
and an apply refuses the whole batch with all of them named.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from switchyard.domain.errors import Conflict, SwitchyardError
from switchyard.domain.models import ChangeKind, HistoryEntry
from switchyard.service.ports import Reader, Store

Write = Callable[[], Awaitable[object]]

MAX_WRITES = 5000
_LOOKUP_CHUNK = 250
"""Keys looked up per query: under Oracle's limit of 1,000 on an IN list, and few enough
that decoding their rows holds the event loop only briefly (each query gives it back)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one write did (or, in a dry run, would do): its history rows, empty when it
    changes nothing; or why it was refused."""

    changes: Sequence[HistoryEntry] = ()
    refusal: SwitchyardError | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    outcomes: list[Outcome]
    revision: int
    """The revision the writes committed under; the revision before them when they were
    not applied (a dry run, or a refusal)."""
    applied: bool
    sensitive_keys: frozenset[str]
    """The config keys the batch touched that are sensitive or encrypted, before or after
    it: their values are masked for callers who may not reveal them. Worked out inside
    the batch, since a dry run's new keys never reach the database."""

    @property
    def refused(self) -> list[tuple[int, SwitchyardError]]:
        return [(i, o.refusal) for i, o in enumerate(self.outcomes) if o.refusal is not None]


class _Discard(Exception):  # not an error: the batch is a dry run or was refused
    pass


class BatchService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def apply(
        self, writes: Sequence[Write], *, dry_run: bool, expected_revision: int | None = None
    ) -> BatchResult:
        """Runs `writes` in order in one transaction. Commits when every write succeeded
        and this is not a dry run; otherwise rolls everything back. A write's domain
        error is its refusal; anything else (a bug, a lost database) rolls the batch back
        and propagates. Raises Conflict, running nothing, when `expected_revision` is
        given and is no longer the newest (checked under the writers' lock)."""
        outcomes: list[Outcome] = []
        sensitive: frozenset[str] = frozenset()
        try:
            async with self._store.batch() as tx:
                before = await tx.current_revision()
                if expected_revision is not None and expected_revision != before:
                    raise Conflict(
                        f"the configuration changed since the plan (revision "
                        f"{expected_revision}; now {before}): plan again, and apply what "
                        "that plan shows"
                    )
                for write in writes:
                    seen = len(tx.recorded)
                    try:
                        async with tx.savepoint():
                            await write()
                    except SwitchyardError as error:
                        outcomes.append(Outcome(refusal=error))
                    else:
                        outcomes.append(Outcome(changes=tuple(tx.recorded[seen:])))
                sensitive = await _sensitive_keys(tx, tx.recorded)
                if dry_run or any(o.refusal is not None for o in outcomes):
                    raise _Discard
                revision = tx.recorded[0].revision if tx.recorded else before
        except _Discard:
            return BatchResult(outcomes, before, applied=False, sensitive_keys=sensitive)
        return BatchResult(outcomes, revision, applied=True, sensitive_keys=sensitive)


async def _sensitive_keys(reader: Reader, entries: Iterable[HistoryEntry]) -> frozenset[str]:
    """Keys marked sensitive or encrypted now (inside the batch), or by a definition row
    the batch wrote: a key the batch deletes, or unmarks, keeps its values masked."""
    marked = set()
    keys = set()
    for entry in entries:
        if entry.kind is not ChangeKind.CONFIG:
            continue
        keys.add(entry.key)
        for document in (entry.old_value, entry.new_value):
            if isinstance(document, dict) and (
                document.get("is_sensitive") or document.get("is_encrypted")
            ):
                marked.add(entry.key)
    wanted = sorted(keys)
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        found = await reader.configs.get_configs(wanted[start : start + _LOOKUP_CHUNK])
        marked.update(k for k, d in found.items() if d.is_sensitive or d.is_encrypted)
    return frozenset(marked)


__all__ = ["MAX_WRITES", "BatchResult", "BatchService", "Outcome", "Write"]
