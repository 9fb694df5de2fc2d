"""Structured logs: JSON lines for machines, key=value lines for people.

With tracing on, every line written inside a traced call carries its `trace_id` and
`span_id` (`switchyard.telemetry`). Every committed write gets one line, `committed` (see
`WriteLog`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

import structlog

from switchyard.domain.models import HistoryEntry, Principal

MAX_LOGGED_CHANGES = 20
"""How many changes of one write its log line lists; `changes` counts them all."""

log = structlog.get_logger(__name__)


def processors(log_format: str = "console") -> list[structlog.typing.Processor]:
    """The processor chain of `configure`, ending with the renderer for `log_format`."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        renderer,
    ]


def configure(log_format: str = "console", level: str = "info", file: TextIO | None = None) -> None:
    """Logs at `level` and above to `file` (standard error by default), as JSON lines
    (`log_format` "json") or for people ("console")."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    structlog.configure(
        processors=processors(log_format),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=file or sys.stderr),
        cache_logger_on_first_use=True,
    )


class WriteLog:
    """One log line per committed write, `committed`: who (user: the caller's username
    when `caller` knows it, user_id, role, address), the revision, reason, ticket and
    approver, and what changed (kind, key, environment, action of the first
    MAX_LOGGED_CHANGES changes; `changes` counts them all). Never a value: sensitive and
    encrypted keys are written like any other.

    Call it with every commit a service announces (`app.committed`): the parts of one
    revision (a batch commits many writes under one) are gathered and logged together
    once the commit's callbacks have run."""

    def __init__(self, caller: Callable[[], Principal | None] = lambda: None) -> None:
        self._caller = caller
        self._pending: dict[int, tuple[str | None, list[HistoryEntry]]] = {}

    def __call__(self, revision: int, entries: Sequence[HistoryEntry]) -> None:
        pending = self._pending.get(revision)
        if pending is not None:
            pending[1].extend(entries)
            return
        principal = self._caller()
        self._pending[revision] = (
            principal.username if principal is not None else None,
            list(entries),
        )
        try:
            asyncio.get_running_loop().call_soon(self._write, revision)
        except RuntimeError:  # no loop: nothing else can join this revision
            self._write(revision)

    def _write(self, revision: int) -> None:
        username, entries = self._pending.pop(revision, (None, []))
        if not entries:
            return
        first = entries[0]
        log.info(
            "committed",
            revision=revision,
            user=username or first.changed_by,
            user_id=first.changed_by,
            role=first.changed_by_role,
            address=first.client_address,
            reason=first.reason,
            ticket=first.ticket,
            approved_by=first.approved_by,
            changes=len(entries),
            changed=[
                {
                    "kind": entry.kind.value,
                    "key": entry.key,
                    "environment": entry.environment,
                    "action": entry.action.value,
                }
                for entry in entries[:MAX_LOGGED_CHANGES]
            ],
        )


__all__ = [
    "MAX_LOGGED_CHANGES",
    "WriteLog",
    "configure",
    "processors",
]
