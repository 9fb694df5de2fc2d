"""What differs between Oracle and SQLite, and nothing more: the row limit clause, how
timestamps are bound and read, and which driver errors mean what.

Timestamps are UTC everywhere. Oracle keeps them in `TIMESTAMP` columns (bound as naive
UTC datetimes); SQLite in text of one fixed width, so that comparing the text compares
the moments.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from functools import lru_cache

import oracledb

from switchyard.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    SwitchyardError,
    Unavailable,
)
from switchyard.store.sql import Sql

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"

# ORA codes of a database that cannot be reached or did not answer in time: the caller
# may retry. Lost connections also arrive as DPY-4011 with `isrecoverable` set.
_ORACLE_UNAVAILABLE = frozenset(
    {
        "ORA-00018",  # maximum number of sessions exceeded
        "ORA-00020",  # maximum number of processes exceeded
        "ORA-00054",  # resource busy and acquire with NOWAIT
        "ORA-01012",  # not logged on
        "ORA-01033",  # initialization or shutdown in progress
        "ORA-01034",  # ORACLE not available
        "ORA-01089",  # immediate shutdown in progress
        "ORA-03113",  # end-of-file on communication channel
        "ORA-03114",  # not connected
        "ORA-03135",  # connection lost contact
        "ORA-12170",  # connect timeout
        "ORA-12514",  # listener does not know the service
        "ORA-12528",  # listener: all instances are blocking new connections
        "ORA-12537",  # connection closed
        "ORA-12541",  # no listener
        "ORA-30006",  # resource busy; acquire with WAIT timeout expired
    }
)
_ORACLE_ALREADY_APPLIED = frozenset(
    {
        "ORA-00955",  # name is already used by an existing object
        "ORA-01430",  # column being added already exists
        "ORA-01408",  # such column list already indexed
        "ORA-02260",  # table can have only one primary key
        "ORA-02261",  # such unique or primary key already exists
        "ORA-02275",  # such a referential constraint already exists
        "ORA-02264",  # name already used by an existing constraint
        "ORA-02443",  # cannot drop constraint: it is gone (a rerun of a replacement)
    }
)


# A migration's seed row: one INSERT of one row of literal values. A unique violation
# (ORA-00001) of one means the row is there, from an earlier run of the migration; of any
# other statement (a copy of rows, an update) it means data that needs a person.
_SEED_ROW = re.compile(r"^\s*INSERT\s+INTO\s+\w+\s*\([^)]*\)\s*VALUES\s*\(", re.IGNORECASE)


class Dialect:
    """The narrow interface repositories and stores see. Subclasses fill in the parts."""

    name: str
    row_limit_clause: str
    transactional_ddl: bool

    def render(self, sql: Sql, sizes: tuple[tuple[str, int], ...] = ()) -> str:
        """The text this dialect sends for `sql` with IN lists of `sizes`. Cached: the
        set of possible texts is small and fixed."""
        return _render(self, sql, sizes)

    def bind_time(self, moment: datetime) -> object:
        raise NotImplementedError

    def read_time(self, value: object) -> datetime | None:
        raise NotImplementedError

    def adapt(self, error: BaseException) -> SwitchyardError | None:
        """The domain error a driver error means, or None when it means a bug."""
        raise NotImplementedError

    def already_applied(self, error: BaseException, statement: str) -> bool:
        """True when a migration `statement` failed only because what it makes is there
        already (a migration that was interrupted half way and runs again)."""
        raise NotImplementedError

    def missing_table(self, error: BaseException) -> bool:
        """True when a statement failed because a table it reads does not exist (and not
        for any other reason: a lost connection, a lock, a privilege)."""
        raise NotImplementedError


@lru_cache(maxsize=4096)
def _render(dialect: Dialect, sql: Sql, sizes: tuple[tuple[str, int], ...]) -> str:
    return sql.expand(dict(sizes), dialect.row_limit_clause)


class SqliteDialect(Dialect):
    name = "sqlite"
    row_limit_clause = "LIMIT :row_limit"
    transactional_ddl = True

    def bind_time(self, moment: datetime) -> object:
        # The year padded to four digits (strftime's %Y is not, before the year 1000 on
        # glibc), so that the text sorts as the moments do and reads back.
        moment = moment.astimezone(UTC)
        return f"{moment.year:04d}{moment.strftime(_SQLITE_TIME.removeprefix('%Y'))}"

    def read_time(self, value: object) -> datetime | None:
        if value is None:
            return None
        year, dash, rest = str(value).partition("-")
        # zfill reads rows written before the year was padded.
        return datetime.strptime(year.zfill(4) + dash + rest, _SQLITE_TIME).replace(tzinfo=UTC)

    def adapt(self, error: BaseException) -> SwitchyardError | None:
        message = str(error)
        if isinstance(error, sqlite3.IntegrityError):
            if "UNIQUE" in message or "PRIMARY KEY" in message:
                return AlreadyExists(f"the record exists already ({message})")
            if "FOREIGN KEY" in message:
                return NotFound("a record this one refers to does not exist")
            if "CHECK" in message or "NOT NULL" in message:
                return InvalidArgument(f"the database refused a value ({message})")
        if isinstance(error, sqlite3.OperationalError) and any(
            sign in message
            for sign in ("locked", "busy", "unable to open", "disk I/O", "readonly", "full")
        ):
            return Unavailable(f"the database cannot be used right now: {message}")
        if (isinstance(error, sqlite3.ProgrammingError) and "closed" in message) or (
            isinstance(error, ValueError) and "no active connection" in message  # aiosqlite
        ):
            return Unavailable("the database connection is closed (shutting down?)")
        return None

    def already_applied(self, error: BaseException, statement: str) -> bool:
        return isinstance(error, sqlite3.OperationalError) and "already exists" in str(error)

    def missing_table(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.OperationalError) and str(error).startswith(
            "no such table:"
        )


def _oracle_code(error: BaseException) -> tuple[str, bool]:
    if not isinstance(error, oracledb.Error) or not error.args:
        return "", False
    detail = error.args[0]
    return str(getattr(detail, "full_code", "")), bool(getattr(detail, "isrecoverable", False))


class OracleDialect(Dialect):
    name = "oracle"
    row_limit_clause = "FETCH FIRST :row_limit ROWS ONLY"
    transactional_ddl = False

    def bind_time(self, moment: datetime) -> object:
        return moment.astimezone(UTC).replace(tzinfo=None)

    def read_time(self, value: object) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)

    def adapt(self, error: BaseException) -> SwitchyardError | None:
        code, recoverable = _oracle_code(error)
        if code == "ORA-00001":
            return AlreadyExists("the record exists already")
        if code == "ORA-02291":
            return NotFound("a record this one refers to does not exist")
        if code == "ORA-02292":
            return FailedPrecondition("other records still refer to this one")
        if code in {"ORA-02290", "ORA-01400", "ORA-12899", "ORA-01438"}:
            return InvalidArgument(f"the database refused a value ({code})")
        if (
            code in _ORACLE_UNAVAILABLE
            or recoverable
            or code.startswith("DPY-6")  # cannot connect
            or code in {"DPY-4005", "DPY-4011", "DPY-4024", "DPY-1001"}  # timeouts, lost
        ):
            return Unavailable(f"the database cannot be reached right now ({code})")
        return None

    def already_applied(self, error: BaseException, statement: str) -> bool:
        code = _oracle_code(error)[0]
        if code == "ORA-00001":
            return _SEED_ROW.match(statement) is not None
        return code in _ORACLE_ALREADY_APPLIED

    def missing_table(self, error: BaseException) -> bool:
        return _oracle_code(error)[0] == "ORA-00942"


SQLITE = SqliteDialect()
ORACLE = OracleDialect()

__all__ = ["ORACLE", "SQLITE", "Dialect", "OracleDialect", "SqliteDialect"]
