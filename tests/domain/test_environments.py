"""Environment inheritance: chains, unknown names and cycles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchyard.domain.environments import ancestry, check_environment
from switchyard.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from switchyard.domain.models import Environment

ENVIRONMENTS = [
    Environment("development"),
    Environment("production"),
    Environment("demo", parent="production"),
    Environment("local", parent="development"),
    Environment("canary", parent="demo"),
]


@pytest.mark.parametrize(
    ("name", "chain"),
    [
        ("production", ["production"]),
        ("demo", ["demo", "production"]),
        ("canary", ["canary", "demo", "production"]),
        ("local", ["local", "development"]),
    ],
)
def test_ancestry_lists_the_nearest_layer_first(name: str, chain: list[str]) -> None:
    assert ancestry(ENVIRONMENTS, name) == chain
    assert ancestry({e.name: e for e in ENVIRONMENTS}, name) == chain


def test_ancestry_refuses_an_unknown_name_and_lists_the_known_ones() -> None:
    with pytest.raises(NotFound, match="unknown environment 'moon'; known: canary, demo"):
        ancestry(ENVIRONMENTS, "moon")
    with pytest.raises(NotFound, match="known: none"):
        ancestry([], "moon")


def test_ancestry_ends_at_a_dangling_parent() -> None:
    assert ancestry([Environment("a", parent="gone")], "a") == ["a", "gone"]


@pytest.mark.parametrize(
    "stored",
    [
        [Environment("a", parent="a")],
        [Environment("a", parent="b"), Environment("b", parent="a")],
        [Environment("x", parent="a"), Environment("a", parent="b"), Environment("b", parent="a")],
    ],
)
def test_ancestry_stops_on_a_stored_cycle(stored: list[Environment]) -> None:
    with pytest.raises(FailedPrecondition, match=r"cycle: .* → a"):
        ancestry(stored, stored[0].name)


@pytest.mark.parametrize(
    ("candidate", "field", "message"),
    [
        (
            Environment("production", parent="demo"),
            "environment.parent",
            "environment production would inherit from itself: production → demo → production",
        ),
        (
            Environment("production", parent="canary"),
            "environment.parent",
            "production → canary → demo → production",
        ),
        (Environment("x", parent="x"), "environment.parent", "cannot inherit from itself"),
        (Environment("x", parent="moon"), "environment.parent", "unknown environment 'moon'"),
        (Environment("Bad Name"), "environment.name", "not an environment name"),
        (Environment(""), "environment.name", "is required"),
        (Environment("x", description="d" * 501), "environment.description", "at most 500"),
    ],
)
def test_check_environment_refuses(candidate: Environment, field: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_environment(ENVIRONMENTS, candidate)
    [violation] = caught.value.violations
    assert violation.field == field
    assert message in violation.description


def test_check_environment_reports_every_violation() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_environment(ENVIRONMENTS, Environment("Bad", parent="moon", description="d" * 501))
    assert {v.field for v in caught.value.violations} == {
        "environment.name",
        "environment.parent",
        "environment.description",
    }


@pytest.mark.parametrize(
    "candidate",
    [
        Environment("staging", parent="production", description="d" * 500),
        Environment("demo", parent="development"),  # re-parenting without a cycle
        Environment("production"),
        Environment("development", parent="production"),
    ],
)
def test_check_environment_accepts(candidate: Environment) -> None:
    check_environment(ENVIRONMENTS, candidate)  # raises if refused


def test_check_environment_is_not_trapped_by_a_stored_cycle_elsewhere() -> None:
    stored = [Environment("a", parent="b"), Environment("b", parent="a"), Environment("c")]
    check_environment(stored, Environment("c", parent="a"))  # raises if refused


NAMES = ["a", "b", "c", "d", "e"]


@given(st.lists(st.sampled_from([None, *NAMES]), min_size=len(NAMES), max_size=len(NAMES)))
def test_accepted_parents_never_form_a_cycle(parents: list[str | None]) -> None:
    """Saving environments one by one through check_environment keeps ancestry total."""
    stored: dict[str, Environment] = {}
    for name, parent in zip(NAMES, parents, strict=True):
        candidate = Environment(name, parent=parent)
        try:
            check_environment(list(stored.values()), candidate)
        except InvalidArgument:
            continue
        stored[name] = candidate
    for name in stored:
        chain = ancestry(stored, name)
        assert len(chain) == len(set(chain))
