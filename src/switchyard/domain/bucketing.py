"""Percentage bucketing: which users a partial rollout reaches.

The specification, with golden vectors, is `docs/bucketing.md`; `tests/domain/
bucketing_vectors.json` holds the vectors and the tests check this module against them.
A published version never changes: changing it would move users in and out of every
running rollout. Each flag records the version it buckets with, so a new version is
chosen flag by flag and never reshuffles a running rollout.

Both versions are flagd's `fractional` operator, as it was and as it is:

- Version 1: MurmurHash3 x86 32-bit, seed 0, over the UTF-8 bytes of the flag key
  immediately followed by the bucketing key (flagd before "fractional v3"; npm
  `@openfeature/flagd-core` 4.x, PyPI `openfeature-flagd-core` 1.x).
- Version 2: the same hash over the canonical CBOR encoding of the two-element array
  [flag key, bucketing key] (flagd's "fractional v3"; PyPI `openfeature-flagd-core` 2.x,
  which the current Python flagd provider evaluates with).

Read as unsigned, the hash h gives bucket = (h * total weight) >> 32. With a total weight
of 100 the bucket is a percentile, and a user is in a rollout of p percent when their
bucket is below p. So a user in at 10% stays in at 20% (monotonic).
"""

from __future__ import annotations

import mmh3

CONCATENATED = 1
CBOR_PAIR = 2
BUCKETING_VERSIONS = (CONCATENATED, CBOR_PAIR)
DEFAULT_BUCKETING_VERSION = CBOR_PAIR
"""New flags bucket as flagd's current `fractional` does, so in-process providers agree."""
PERCENT = 100
BASIS_POINTS = 10_000


def hash_input(flag_key: str, bucketing_key: str, version: int) -> bytes:
    """The bytes a version hashes."""
    if version == CONCATENATED:
        return (flag_key + bucketing_key).encode("utf-8")
    if version == CBOR_PAIR:
        return _CBOR_PAIR + _cbor_text(flag_key) + _cbor_text(bucketing_key)
    raise ValueError(f"unknown bucketing version {version}")


# Canonical CBOR (RFC 8949, 4.2.1) of an array of two text strings, written out: cbor2
# produces the same bytes (the tests compare them on arbitrary strings) but takes 5 µs,
# the largest single cost of an evaluation with a rollout; this takes a fraction of one.
_CBOR_PAIR = b"\x82"  # major type 4 (array), two items
_TEXT = 0x60  # major type 3 (text string)
_ONE_BYTE, _TWO_BYTES, _FOUR_BYTES = 24, 25, 26  # additional information: length follows


def _cbor_text(text: str) -> bytes:
    """A text string with its shortest length header."""
    data = text.encode("utf-8")
    size = len(data)
    if size < _ONE_BYTE:
        return bytes((_TEXT | size,)) + data
    if size < 0x100:
        return bytes((_TEXT | _ONE_BYTE, size)) + data
    if size < 0x10000:
        return bytes((_TEXT | _TWO_BYTES,)) + size.to_bytes(2, "big") + data
    return bytes((_TEXT | _FOUR_BYTES,)) + size.to_bytes(4, "big") + data


def bucket(
    flag_key: str,
    bucketing_key: str,
    total_weight: int = PERCENT,
    version: int = DEFAULT_BUCKETING_VERSION,
) -> int:
    """The bucket, in [0, total_weight), of `bucketing_key` for `flag_key`."""
    digest: int = mmh3.hash(hash_input(flag_key, bucketing_key, version), 0, signed=False)
    return (digest * total_weight) >> 32


def basis_points(percentage: float) -> int:
    """`percentage` in hundredths of a percent, rounded down: the resolution of a gradual
    rollout's rising percentage."""
    return max(0, min(BASIS_POINTS, int(percentage * 100)))


def in_rollout(
    flag_key: str,
    bucketing_key: str,
    percentage: float,
    version: int = DEFAULT_BUCKETING_VERSION,
) -> bool:
    """Whether `bucketing_key` is among the first `percentage` percent for `flag_key`.

    Compared in basis points (a total weight of 10,000), so that a gradual rollout rises
    smoothly. For a whole percentage p this is exactly `bucket(...) < p`: floor(h * 10,000
    / 2^32) < 100p holds exactly when floor(h * 100 / 2^32) < p."""
    return bucket(flag_key, bucketing_key, BASIS_POINTS, version) < basis_points(percentage)


__all__ = [
    "BASIS_POINTS",
    "BUCKETING_VERSIONS",
    "CBOR_PAIR",
    "CONCATENATED",
    "DEFAULT_BUCKETING_VERSION",
    "PERCENT",
    "basis_points",
    "bucket",
    "hash_input",
    "in_rollout",
]
