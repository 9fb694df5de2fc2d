"""`pf_revision`: the one counter row that numbers every committed change.

A writing transaction locks the row first and increments it once, so the order of
revisions is the order of commits: no transaction can commit revision 11 while 10 is
still open, and "everything after N" never skips a change. A sequence would not give
that.
"""

from __future__ import annotations

from switchyard.store.session import Session
from switchyard.store.sql import Sql

CURRENT_REVISION = Sql("current_revision", "SELECT revision FROM pf_revision WHERE id = 1")
# Oracle only: SQLite takes the database's write lock with BEGIN IMMEDIATE instead. WAIT
# bounds how long a writer queues behind another before giving up (UNAVAILABLE).
LOCK_REVISION = Sql(
    "lock_revision", "SELECT revision FROM pf_revision WHERE id = 1 FOR UPDATE WAIT 10"
)
BUMP_REVISION = Sql("bump_revision", "UPDATE pf_revision SET revision = revision + 1 WHERE id = 1")


class SqlRevisionCounter:
    def __init__(self, session: Session) -> None:
        self._session = session
        self.allocated: int | None = None
        """The revision this transaction took, once it took one."""

    async def current(self) -> int:
        row = await self._session.fetch_one(CURRENT_REVISION)
        return int(row["revision"]) if row else 0

    async def allocate(self) -> int:
        """The revision of this transaction: taken on the first call, the same after."""
        if self.allocated is None:
            await self._session.execute(BUMP_REVISION)
            self.allocated = await self.current()
        return self.allocated


__all__ = ["SqlRevisionCounter"]
