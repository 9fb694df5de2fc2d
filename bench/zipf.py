"""The hit-rate benchmark's workload: a seeded, Zipf-skewed sequence of reads and
writes over N keys, and the best hit rate any cache that drops a key on each write of
it could reach on that very sequence.

The ceiling is computed by replaying the sequence through an ideal cache: unbounded,
never expiring, every read taking effect in order. It misses only on a key's first
read (cold) and on the first read after each write of it (the write invalidated it).
With a write fraction w, almost every write is followed, sooner or later, by a read of
its key (the next operation on that key is a read with probability 1 - w), so the
invalidation misses alone are about w x operations, and the ceiling is about 1 - w of
the reads minus the cold misses: 99% writes 1% is a ceiling just under 99%, not a
floor. A measured rate below the ceiling is the cache's own doing: concurrent reads of
a key that has just been invalidated (each counts a miss, though single-flight lets
only one of them read the database), expiry, eviction.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Op:
    write: bool
    key: int
    """The key's rank: 0 is the most read."""


def weights(keys: int, exponent: float) -> list[float]:
    """Zipf's law: the key of rank r (1-based) is drawn with probability ∝ 1 / r^s."""
    raw = [1.0 / (rank**exponent) for rank in range(1, keys + 1)]
    total = sum(raw)
    return [w / total for w in raw]


def operations(
    count: int, keys: int, exponent: float, write_fraction: float, seed: int
) -> list[Op]:
    """`count` operations: each a write with probability `write_fraction`, else a read;
    either way of a key drawn from the same Zipf distribution. Seeded: a rerun replays
    the same sequence."""
    rng = random.Random(seed)
    cumulative = list(itertools.accumulate(weights(keys, exponent)))
    population = range(keys)
    drawn = rng.choices(population, cum_weights=cumulative, k=count)
    return [Op(rng.random() < write_fraction, key) for key in drawn]


@dataclass(slots=True)
class Ceiling:
    """What the ideal cache did over a stretch of operations."""

    reads: int = 0
    writes: int = 0
    hits: int = 0
    cold_misses: int = 0
    invalidation_misses: int = 0

    @property
    def misses(self) -> int:
        return self.cold_misses + self.invalidation_misses

    @property
    def hit_rate(self) -> float:
        return self.hits / self.reads if self.reads else 0.0


class IdealCache:
    """Unbounded, never expiring, strictly sequential: misses only when it must."""

    def __init__(self) -> None:
        self._cached: set[int] = set()
        self._seen: set[int] = set()

    def replay(self, ops: Iterable[Op]) -> Ceiling:
        found = Ceiling()
        for op in ops:
            if op.write:
                found.writes += 1
                self._cached.discard(op.key)
                continue
            found.reads += 1
            if op.key in self._cached:
                found.hits += 1
            elif op.key in self._seen:
                found.invalidation_misses += 1
            else:
                found.cold_misses += 1
            self._cached.add(op.key)
            self._seen.add(op.key)
        return found


def distinct(ops: Sequence[Op]) -> int:
    return len({op.key for op in ops})
