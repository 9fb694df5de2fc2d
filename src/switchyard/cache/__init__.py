"""Caches of resolved answers: L1 in process (cachetools)."""

from switchyard.cache.local import LocalCache

__all__ = ["LocalCache"]
