"""`switchyard verify`: checks a database's invariants over one consistent snapshot.

The revision spine and the sealed rows are read by the store; the history chain is
checked by folding every history row, oldest first, into the rows it says the tables
hold, and comparing them with the rows the repositories read now, each as the document
its history rows record (`audit.row_document`, or a flag's and a limit's definition
document). The checks themselves are in `domain.integrity`.
"""

from __future__ import annotations

from switchyard.domain.errors import FailedPrecondition
from switchyard.domain.flags import flag_document
from switchyard.domain.integrity import (
    CHAIN,
    IDENTITY,
    HistoryFold,
    Report,
    RowId,
    Violation,
    chain_violations,
    spine_violations,
)
from switchyard.domain.limits import limit_document
from switchyard.domain.models import ConfigQuery, JSONValue, PageRequest
from switchyard.service.audit import row_document
from switchyard.service.ports import Reader, Store

PAGE = 500


async def verify(store: Store) -> Report:
    """Every invariant of the database, checked in one read snapshot (a running server
    may keep writing meanwhile). Raises Unavailable when the database cannot be read."""
    async with store.read() as reader:
        spine = await reader.integrity.spine()
        violations = spine_violations(spine)
        sealed_count, sealed = await reader.integrity.sealed_rows()
        violations += sealed
        violations += await reader.integrity.guards()
        notes: list[str] = []
        fold = HistoryFold()
        current: dict[RowId, dict[str, JSONValue]] = {}
        try:
            await _fold_history(reader, fold)
            current = await _current_rows(reader)
        except FailedPrecondition as error:
            if not sealed:
                violations.append(
                    Violation(CHAIN, "pf_config_history", f"cannot be read: {error.message}")
                )
            notes.append(f"the history chain was not checked: {error.message}")
        else:
            complete = spine.oldest == 1 or (spine.rows == 0 and spine.current == 0)
            if not complete:
                notes.append(
                    f"the history starts at revision {spine.oldest}: rows no kept history "
                    "row names are not checked"
                )
            for table in sorted(fold.unrecorded_tables):
                notes.append(
                    f"some history rows of {table} predate rows_after: its rows that no "
                    "later history row names are not checked"
                )
            violations += chain_violations(fold, current, complete=complete)
    return Report(
        violations=tuple(violations),
        checked={
            "revisions": spine.revisions,
            "history_rows": fold.entries,
            "sealed_rows": sealed_count,
            "table_rows": len(current),
        },
        notes=tuple(notes),
    )


async def _fold_history(reader: Reader, fold: HistoryFold) -> None:
    revision, index = 0, -1
    while True:
        entries = await reader.history.history_after(revision, PAGE, after_index=index)
        for entry in entries:
            fold.add(entry)
        if len(entries) < PAGE:
            return
        revision, index = entries[-1].revision, entries[-1].change_index


async def _current_rows(reader: Reader) -> dict[RowId, dict[str, JSONValue]]:
    """Every row of the tables the history records, as the document its history rows
    hold, by (table, identity)."""
    documents: list[tuple[str, dict[str, JSONValue]]] = []
    cursor: str | None = None
    while True:
        page = await reader.configs.list_configs(
            ConfigQuery(include_inactive=True), PageRequest(PAGE, cursor)
        )
        documents += [("pf_system_config", row_document(c)) for c in page.items]
        if (cursor := page.next_cursor) is None:
            break
    while True:
        templates = await reader.templates.list_templates(True, PageRequest(PAGE, cursor))
        documents += [("pf_config_templates", row_document(t)) for t in templates.items]
        if (cursor := templates.next_cursor) is None:
            break
    documents += [
        ("pf_environment_config", row_document(o)) for o in await reader.overrides.all_overrides()
    ]
    documents += [
        ("pf_environments", row_document(e)) for e in await reader.environments.list_environments()
    ]
    documents += [
        ("pf_maintenance_windows", row_document(w)) for w in await reader.windows.list_windows()
    ]
    documents += [("pf_feature_flags", flag_document(f)) for f in await reader.flags.all_flags()]
    documents += [("pf_rate_limits", limit_document(r)) for r in await reader.limits.all_limits()]
    documents += [("pf_api_tokens", row_document(t)) for t in await reader.tokens.all_tokens()]
    documents += [("pf_users", row_document(u)) for u in await reader.users.all_users()]
    documents += [
        ("pf_change_requests", row_document(r)) for r in await reader.change_requests.all_requests()
    ]
    return {(table, str(doc[IDENTITY[table]])): doc for table, doc in documents}


__all__ = ["verify"]
