"""L1: answers kept for their time to live, within a size bound, dropped exactly when a
change touches them, and never put back by a read that a change overtook."""

from __future__ import annotations

from switchyard.cache.local import LocalCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_for_its_time_to_live() -> None:
    clock = Clock()
    cache: LocalCache[str] = LocalCache(timer=clock)
    cache.put("api.timeout", "production", "60", ttl=5, revision=1)

    clock.now += 4.9
    assert cache.get("api.timeout", "production") == "60"
    clock.now += 0.1
    assert cache.get("api.timeout", "production") is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_nothing_is_kept_without_a_positive_time_to_live() -> None:
    cache: LocalCache[str] = LocalCache()

    assert cache.put("k", "", "v", ttl=0, revision=1) is False
    assert cache.get("k", "") is None


def test_the_size_is_bounded_and_the_least_recently_read_goes_first() -> None:
    cache: LocalCache[int] = LocalCache(maxsize=2)
    cache.put("a", "", 1, ttl=60, revision=1)
    cache.put("b", "", 2, ttl=60, revision=1)
    assert cache.get("a", "") == 1

    cache.put("c", "", 3, ttl=60, revision=1)

    assert len(cache) == 2
    assert (cache.get("a", ""), cache.get("b", ""), cache.get("c", "")) == (1, None, 3)


def test_invalidating_a_name_drops_it_in_every_scope_and_nothing_else() -> None:
    cache: LocalCache[int] = LocalCache()
    for scope in ("", "production", "staging"):
        cache.put("api.timeout", scope, 1, ttl=60, revision=1)
    cache.put("api.retries", "production", 2, ttl=60, revision=1)

    cache.invalidate("api.timeout", revision=2)

    assert [cache.get("api.timeout", s) for s in ("", "production", "staging")] == [None] * 3
    assert cache.get("api.retries", "production") == 2


def test_a_read_overtaken_by_a_change_is_not_put_back() -> None:
    """A read that started at revision 4 comes back after a write at revision 5 has
    invalidated the key: its answer is stale and must not be cached."""
    cache: LocalCache[str] = LocalCache()
    cache.invalidate("api.timeout", revision=5)

    assert cache.put("api.timeout", "production", "old", ttl=60, revision=4) is False
    assert cache.get("api.timeout", "production") is None
    assert cache.put("api.timeout", "production", "new", ttl=60, revision=5) is True
    assert cache.get("api.timeout", "production") == "new"


def test_clearing_drops_everything_and_refuses_older_reads() -> None:
    cache: LocalCache[int] = LocalCache()
    cache.put("a", "", 1, ttl=60, revision=1)

    cache.clear(revision=3)

    assert len(cache) == 0
    assert cache.put("b", "", 2, ttl=60, revision=2) is False
    assert cache.put("b", "", 2, ttl=60, revision=3) is True


def test_invalidating_returns_what_was_cached_and_a_repeat_drops_nothing() -> None:
    cache: LocalCache[int] = LocalCache()
    cache.put("k", "production", 1, ttl=60, revision=1)
    cache.put("k", "", 1, ttl=60, revision=1)

    assert cache.invalidate("k", revision=2) == {"production", ""}
    cache.put("k", "production", 2, ttl=60, revision=2)  # read again after the change
    assert cache.invalidate("k", revision=2) == set()  # the same change, heard again
    assert cache.get("k", "production") == 2
