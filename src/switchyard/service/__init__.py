"""Use cases: the read path (cache, then store) and the write path (validate, transact, record)."""

__all__: list[str] = []
