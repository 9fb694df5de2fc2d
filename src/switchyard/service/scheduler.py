"""The scheduler: the changes nobody asks for at the moment they happen. Temporary
overrides expire, scheduled ones start, maintenance windows open and close.

Every replica runs one. Each change is made by `ConfigService` in a transaction that
re-reads what is due under the writers' lock, so the first replica to get there makes
it and the others find nothing left to do: each change happens once, is recorded with
its revision, and reaches watchers like any other. The scheduler sleeps until the next
moment something is due (at most `MAX_SLEEP_SECONDS`), and wakes early when a change
may have scheduled something sooner.

Each window is a change of its own: one that fails (its transaction rolled back) is
logged, counted (`switchyard_scheduler_failures_total`) and tried again after
`RETRY_SECONDS`, and never stops the windows after it, nor do due overrides that fail.
A stored window whose schedule cannot run (an older version saved it) is never open and
is reported once per version.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from switchyard.domain.cron import cron_problem
from switchyard.domain.errors import SwitchyardError
from switchyard.domain.models import MaintenanceWindow, WindowState
from switchyard.domain.windows import occurrence_at
from switchyard.metrics import SCHEDULER_FAILURES, UNUSABLE_STORED
from switchyard.service.config import ConfigService
from switchyard.service.context import Clock

log = structlog.get_logger(__name__)

MAX_SLEEP_SECONDS = 30.0
RETRY_SECONDS = 2.0


class Scheduler:
    def __init__(
        self, config: ConfigService, *, clock: Clock, max_sleep: float = MAX_SLEEP_SECONDS
    ) -> None:
        self._config = config
        self._clock = clock
        self._max_sleep = max_sleep
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failed = False
        self._checked: dict[str, tuple[int, str]] = {}
        """Per window name, the version and schedule last checked by _report_unusable."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="switchyard-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def kick(self) -> None:
        """Something changed that may be due sooner than the scheduler planned."""
        self._wake.set()

    async def run_once(self) -> int:
        """Makes every change that is due now; returns how many revisions it recorded.
        A change that fails is logged and counted, and the others are still made (see
        the module docstring). Raises only when the windows cannot be listed."""
        now = self._clock()
        made = 0
        self._failed = False
        try:
            if await self._config.run_due_overrides(now) is not None:
                made += 1
        except Exception as error:
            self._failure("overrides", error)
        windows, _ = await self._config.list_windows()
        for window in windows:
            self._report_unusable(window)
            due = occurrence_at(window, now)
            is_open = window.state is WindowState.OPEN
            wrong_window = due is not None and window.window_start != due.start
            if not ((due is not None) != is_open or (is_open and wrong_window)):
                continue
            try:
                if await self._config.sync_window(window.name, now) is not None:
                    made += 1
            except Exception as error:
                self._failure("window", error, window=window.name)
        return made

    def _failure(self, what: str, error: Exception, **fields: str) -> None:
        self._failed = True
        SCHEDULER_FAILURES.labels(what).inc()
        if isinstance(error, SwitchyardError):
            log.warning(
                "scheduled change failed; retrying", what=what, error=error.message, **fields
            )
        else:
            log.error("scheduled change failed; retrying", what=what, exc_info=error, **fields)

    def _report_unusable(self, window: MaintenanceWindow) -> None:
        """Warns, once per version of a window, that its stored schedule cannot run."""
        if window.schedule_cron is None or not window.is_active:
            return
        seen = (window.version, window.schedule_cron)
        if self._checked.get(window.name) == seen:
            return
        self._checked[window.name] = seen
        problem = cron_problem(window.schedule_cron, "0 2 * * SUN")
        if problem is not None:
            UNUSABLE_STORED.labels("window_schedule").inc()
            log.warning(
                "stored maintenance window never opens; save it with a schedule that fires",
                window=window.name,
                problem=problem,
            )

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_once()
                wait = RETRY_SECONDS if self._failed else await self._until_next()
            except SwitchyardError as error:
                log.warning("scheduler cannot run now; retrying", error=error.message)
                wait = RETRY_SECONDS
            except Exception:
                log.exception("scheduler failed; retrying")
                wait = RETRY_SECONDS
            # asyncio.timeout, not wait_for, which may swallow a cancellation on 3.11.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _until_next(self) -> float:
        now = self._clock()
        moment = await self._config.next_scheduled_change(now)
        if moment is None:
            return self._max_sleep
        return min(self._max_sleep, max(0.0, (moment - now).total_seconds()) + 0.005)


__all__ = ["MAX_SLEEP_SECONDS", "Scheduler"]
