"""Bucketing against its published golden vectors (docs/bucketing.md), and against the
flagd evaluators it promises to agree with."""

from __future__ import annotations

import json
from pathlib import Path

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext

from switchyard.domain.bucketing import (
    CBOR_PAIR,
    CONCATENATED,
    DEFAULT_BUCKETING_VERSION,
    bucket,
    hash_input,
    in_rollout,
)

VECTORS = json.loads((Path(__file__).parent / "bucketing_vectors.json").read_text("utf-8"))[
    "vectors"
]


@pytest.mark.parametrize(
    "vector", VECTORS, ids=lambda v: f"v{v['version']}-{v['flag_key']}-{v['bucketing_key']}"
)
def test_golden_vectors(vector: dict[str, object]) -> None:
    flag_key, key, version = vector["flag_key"], vector["bucketing_key"], vector["version"]
    assert isinstance(flag_key, str) and isinstance(key, str) and isinstance(version, int)

    assert hash_input(flag_key, key, version).hex() == vector["input_hex"]
    assert bucket(flag_key, key, 100, version) == vector["bucket_100"]
    assert bucket(flag_key, key, 10_000, version) == vector["bucket_10000"]


def test_the_vectors_cover_both_versions_and_keys_outside_ascii() -> None:
    assert {v["version"] for v in VECTORS} == {CONCATENATED, CBOR_PAIR}
    assert any(not v["bucketing_key"].isascii() for v in VECTORS)


def test_version_1_counts_the_users_the_javascript_flagd_core_counts() -> None:
    """npm @openfeature/flagd-core 4.0.1 puts 100,311 of these users in the first half."""
    inside = sum(bucket("fractional", f"user_{i}", 100, CONCATENATED) < 50 for i in range(200_000))

    assert inside == 100_311


def test_version_2_agrees_with_the_python_flagd_core_fractional_operator() -> None:
    core = FlagdCore()
    core.set_flags(
        {
            "flags": {
                "split": {
                    "state": "ENABLED",
                    "variants": {"on": True, "off": False},
                    "defaultVariant": "off",
                    "targeting": {"fractional": [["on", 37], ["off", 63]]},
                }
            }
        }
    )
    for i in range(2_000):
        user = f"user-{i}"
        theirs = core.resolve_boolean_value("split", False, EvaluationContext(user)).value

        assert theirs == in_rollout("split", user, 37, CBOR_PAIR), user


def test_new_flags_bucket_as_the_current_flagd_provider_does() -> None:
    assert DEFAULT_BUCKETING_VERSION == CBOR_PAIR


@pytest.mark.parametrize("version", [CONCATENATED, CBOR_PAIR])
def test_half_of_a_thousand_users_is_about_five_hundred(version: int) -> None:
    inside = sum(in_rollout("new_checkout", f"user-{i}", 50, version) for i in range(1_000))

    assert 450 <= inside <= 550


@pytest.mark.parametrize("version", [CONCATENATED, CBOR_PAIR])
def test_raising_the_percentage_only_adds_users(version: int) -> None:
    users = [f"user-{i}" for i in range(2_000)]
    previous: set[str] = set()
    for percentage in (0, 1, 5, 10, 20, 33.33, 50, 75, 99.99, 100):
        inside = {u for u in users if in_rollout("monotonic", u, percentage, version)}

        assert previous <= inside
        previous = inside
    assert previous == set(users)


@given(st.text(max_size=70_000), st.text(max_size=300))
@settings(max_examples=300)
def test_the_cbor_pair_is_what_cbor2_writes_canonically(flag_key: str, bucketing_key: str) -> None:
    """Version 2's bytes are written out by hand for speed; cbor2 is the reference."""
    assert hash_input(flag_key, bucketing_key, CBOR_PAIR) == cbor2.dumps(
        [flag_key, bucketing_key], canonical=True
    )


@pytest.mark.parametrize("size", [0, 23, 24, 255, 256, 65_535, 65_536])
def test_the_cbor_pair_at_every_length_boundary(size: int) -> None:
    key = "k" * size
    assert hash_input(key, "u", CBOR_PAIR) == cbor2.dumps([key, "u"], canonical=True)
