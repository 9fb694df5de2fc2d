"""Driver errors become domain errors here, once, for every statement of every store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from switchyard.store.dialect import Dialect


@contextmanager
def adapt_errors(dialect: Dialect) -> Iterator[None]:
    """Re-raises what a driver raises as the domain error it means (AlreadyExists,
    NotFound, Unavailable, ...). Errors that mean a bug in the SQL pass unchanged, to be
    logged as INTERNAL by the API layer."""
    try:
        yield
    except Exception as error:
        adapted = dialect.adapt(error)
        if adapted is None:
            raise
        raise adapted from error


__all__ = ["adapt_errors"]
