"""The targeting-rule language: what each operator means, what is refused and where, and
that the JsonLogic given to flagd decides exactly as Switchyard does."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openfeature.contrib.tools.flagd.core.targeting import targeting
from openfeature.evaluation_context import EvaluationContext as OpenFeatureContext

from switchyard.domain.errors import FieldViolation, InvalidArgument
from switchyard.domain.flags import DEFAULT_VARIANTS, EvaluationContext, FeatureFlag, check_flag
from switchyard.domain.models import JSONValue
from switchyard.domain.patterns import MAX_TEXT_LENGTH
from switchyard.domain.rules import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_IN_VALUES,
    MAX_RULES,
    OPERATORS,
    CompiledRule,
    compile_rules,
    to_json_logic,
)
from tests.domain.strategies import json_values

VARIANTS: dict[str, JSONValue] = {"on": "green", "off": "grey", "blue": "blue"}


def compiled(when: JSONValue, **fields: JSONValue) -> CompiledRule:
    (rule,) = compile_rules([{"id": "r", "when": when, **fields}], VARIANTS)
    return rule


def holds(when: JSONValue, context: EvaluationContext) -> bool:
    return compiled(when).matches(context)


def attrs(**attributes: JSONValue) -> EvaluationContext:
    return EvaluationContext(attributes=attributes)


def cmp(attribute: JSONValue, op: JSONValue, value: JSONValue) -> JSONValue:
    return {"attribute": attribute, "op": op, "value": value}


def violations(raw: JSONValue, variants: dict[str, JSONValue] = VARIANTS) -> list[FieldViolation]:
    with pytest.raises(InvalidArgument) as caught:
        compile_rules(raw, variants)
    return caught.value.violations


def fields_of(raw: JSONValue) -> list[str]:
    return [v.field for v in violations(raw)]


def one_violation(when: JSONValue) -> FieldViolation:
    (found,) = violations([{"id": "r", "when": when}])
    return found


MISSING = EvaluationContext()


# Operators: true, false, missing, wrong type, lists.

CASES: list[tuple[JSONValue, EvaluationContext, bool]] = [
    # eq / ne
    (cmp("plan", "eq", "pro"), attrs(plan="pro"), True),
    (cmp("plan", "eq", "pro"), attrs(plan="Pro"), False),
    (cmp("plan", "eq", "pro"), MISSING, False),
    (cmp("plan", "eq", "pro"), attrs(plan=None), False),
    (cmp("plan", "eq", "pro"), attrs(plan=["basic", "pro"]), True),
    (cmp("plan", "eq", "pro"), attrs(plan=["basic"]), False),
    (cmp("plan", "eq", "pro"), attrs(plan={"pro": 1}), False),
    (cmp("seats", "eq", 1), attrs(seats=1.0), True),
    (cmp("seats", "eq", 1.0), attrs(seats=1), True),
    (cmp("seats", "eq", 1), attrs(seats=True), False),
    (cmp("seats", "eq", 1), attrs(seats="1"), False),
    (cmp("beta", "eq", True), attrs(beta=True), True),
    (cmp("beta", "eq", True), attrs(beta=1), False),
    (cmp("beta", "eq", False), attrs(beta=0), False),
    (cmp("beta", "eq", True), attrs(beta="true"), False),
    (cmp("plan", "ne", "pro"), attrs(plan="basic"), True),
    (cmp("plan", "ne", "pro"), attrs(plan="pro"), False),
    (cmp("plan", "ne", "pro"), MISSING, False),
    (cmp("plan", "ne", "pro"), attrs(plan=None), False),
    (cmp("plan", "ne", "pro"), attrs(plan=42), True),
    (cmp("plan", "ne", "pro"), attrs(plan=["basic", "free"]), True),
    (cmp("plan", "ne", "pro"), attrs(plan=["basic", "pro"]), False),
    (cmp("plan", "ne", "pro"), attrs(plan=[]), True),
    (cmp("seats", "ne", 1), attrs(seats=True), True),
    (cmp("seats", "ne", 1), attrs(seats=1.0), False),
    # in / not_in
    (cmp("plan", "in", ["pro", "enterprise"]), attrs(plan="enterprise"), True),
    (cmp("plan", "in", ["pro", "enterprise"]), attrs(plan="free"), False),
    (cmp("plan", "in", ["pro", "enterprise"]), MISSING, False),
    (cmp("plan", "in", ["pro", "enterprise"]), attrs(plan=["free", "pro"]), True),
    (cmp("plan", "in", []), attrs(plan="pro"), False),
    (cmp("n", "in", [1, "2", False]), attrs(n=1.0), True),
    (cmp("n", "in", [1, "2", False]), attrs(n=True), False),
    (cmp("n", "in", [1, "2", False]), attrs(n=False), True),
    (cmp("n", "in", [1, "2", False]), attrs(n=0), False),
    (cmp("n", "in", [1, "2", False]), attrs(n=2), False),
    (cmp("n", "in", [1, "2", False]), attrs(n="2"), True),
    (cmp("n", "in", [1, "2", False]), attrs(n=[[1]]), False),
    (cmp("plan", "not_in", ["pro", "enterprise"]), attrs(plan="free"), True),
    (cmp("plan", "not_in", ["pro", "enterprise"]), attrs(plan="pro"), False),
    (cmp("plan", "not_in", ["pro", "enterprise"]), MISSING, False),
    (cmp("plan", "not_in", ["pro", "enterprise"]), attrs(plan=["free", "pro"]), False),
    (cmp("plan", "not_in", ["pro", "enterprise"]), attrs(plan=["free", "trial"]), True),
    (cmp("plan", "not_in", []), attrs(plan="pro"), True),
    # contains
    (cmp("tags", "contains", "beta"), attrs(tags=["alpha", "beta"]), True),
    (cmp("tags", "contains", "beta"), attrs(tags=["alphabetagamma"]), False),
    (cmp("tags", "contains", "beta"), attrs(tags="alphabetagamma"), True),
    (cmp("tags", "contains", "beta"), attrs(tags="alpha"), False),
    (cmp("tags", "contains", "beta"), attrs(tags=7), False),
    (cmp("tags", "contains", "beta"), MISSING, False),
    (cmp("tags", "contains", 1), attrs(tags=[0, 1.0]), True),
    (cmp("tags", "contains", 1), attrs(tags=[True]), False),
    (cmp("tags", "contains", 1), attrs(tags="1"), False),
    (cmp("tags", "contains", True), attrs(tags=[1, True]), True),
    # numbers
    (cmp("age", "gt", 18), attrs(age=19), True),
    (cmp("age", "gt", 18), attrs(age=18), False),
    (cmp("age", "gte", 18), attrs(age=18.0), True),
    (cmp("age", "lt", 18), attrs(age=17.5), True),
    (cmp("age", "lte", 18), attrs(age=18), True),
    (cmp("age", "lte", 18), attrs(age=18.01), False),
    (cmp("age", "gt", 18), attrs(age="19"), False),
    (cmp("age", "gt", 0), attrs(age=True), False),
    (cmp("age", "gt", 18), attrs(age=None), False),
    (cmp("age", "gt", 18), MISSING, False),
    (cmp("age", "gt", 18), attrs(age=[3, 30]), True),
    (cmp("age", "gt", 18), attrs(age=[3, "30"]), False),
    (cmp("age", "lt", 18), attrs(age=float("nan")), False),
    # dates
    (cmp("signup", "before", "2026-03-01"), attrs(signup="2026-02-28T23:59:59Z"), True),
    (cmp("signup", "before", "2026-03-01"), attrs(signup="2026-03-01T00:00:00"), False),
    (cmp("signup", "before", "2026-03-01"), attrs(signup="2026-03-01T00:30:00+01:00"), True),
    (
        cmp("signup", "after", "2026-03-01T10:00:00+02:00"),
        attrs(signup="2026-03-01T08:00:01"),
        True,
    ),
    (
        cmp("signup", "after", "2026-03-01T10:00:00+02:00"),
        attrs(signup="2026-03-01T08:00:00Z"),
        False,
    ),
    (cmp("signup", "after", "2026-03-01"), attrs(signup="2026-03-02"), True),
    (cmp("signup", "after", "2026-03-01"), attrs(signup="yesterday"), False),
    (cmp("signup", "after", "2026-03-01"), attrs(signup=1767225600), False),
    (cmp("signup", "after", "2026-03-01"), attrs(signup=["2020-01-01", "2027-01-01"]), True),
    (cmp("signup", "after", "2026-03-01"), MISSING, False),
    # strings
    (cmp("email", "starts_with", "ops-"), attrs(email="ops-alice@example.com"), True),
    (cmp("email", "starts_with", "ops-"), attrs(email="alice@example.com"), False),
    (cmp("email", "ends_with", "@example.com"), attrs(email="alice@example.com"), True),
    (cmp("email", "ends_with", "@example.com"), attrs(email="alice@example.org"), False),
    (cmp("email", "ends_with", "1"), attrs(email=1), False),
    (cmp("email", "ends_with", "@example.com"), attrs(email=["x@y.z", "a@example.com"]), True),
    (cmp("email", "ends_with", "@example.com"), MISSING, False),
    (cmp("email", "matches", r"@example\.(com|org)$"), attrs(email="a@example.org"), True),
    (cmp("email", "matches", r"example"), attrs(email="a@example.org"), True),  # search
    (cmp("email", "matches", r"^example"), attrs(email="a@example.org"), False),
    (cmp("email", "matches", r"\d"), attrs(email=5), False),
    (cmp("email", "matches", r"\d"), attrs(email=["a", "b2"]), True),
    (cmp("email", "matches", r".*"), MISSING, False),
    # semantic versions
    (cmp("app", "semver_gte", "2.1.0"), attrs(app="2.1.0"), True),
    (cmp("app", "semver_gte", "2.1.0"), attrs(app="2.1.0-rc.1"), False),
    (cmp("app", "semver_gt", "v2.1.0"), attrs(app="v2.10.0"), True),
    (cmp("app", "semver_lt", "2.1.0"), attrs(app="V2.0.9"), True),
    (cmp("app", "semver_lte", "2.1.0"), attrs(app="2.1"), True),  # partial: 2.1.0
    (cmp("app", "semver_eq", "2.0.0"), attrs(app="2"), True),
    (cmp("app", "semver_eq", "2.0.0"), attrs(app="2.0.0+build.7"), True),  # build ignored
    (cmp("app", "semver_ne", "2.0.0"), attrs(app="2.0.1"), True),
    (cmp("app", "semver_ne", "2.0.0"), attrs(app="two"), False),
    (cmp("app", "semver_ne", "2.0.0"), MISSING, False),
    (cmp("app", "semver_gt", "1.0.0"), attrs(app="1.2.3.4"), False),
    (cmp("app", "semver_gt", "1.0.0"), attrs(app=2), False),
    (cmp("app", "semver_gt", "1.0.0"), attrs(app=["0.9.0", "1.0.1"]), True),
]


@pytest.mark.parametrize(("when", "context", "expected"), CASES)
def test_each_operator(when: JSONValue, context: EvaluationContext, expected: bool) -> None:
    assert holds(when, context) is expected


def test_every_operator_is_exercised() -> None:
    used = {when["op"] for when, _, _ in CASES if isinstance(when, dict)}
    assert used == set(OPERATORS)


def test_built_in_attributes_come_from_the_context_fields() -> None:
    context = EvaluationContext(
        user_id="alice",
        roles=("admin", "staff"),
        groups=("emea",),
        environment="production",
        attributes={"user_id": "mallory", "roles": ["guest"], "environment": "dev"},
    )
    assert holds(cmp("user_id", "eq", "alice"), context)
    assert holds(cmp("roles", "eq", "admin"), context)
    assert not holds(cmp("roles", "eq", "guest"), context)
    assert holds(cmp("roles", "contains", "staff"), context)
    assert holds(cmp("groups", "in", ["emea", "apac"]), context)
    assert holds(cmp("environment", "starts_with", "prod"), context)


def test_an_empty_user_id_or_environment_is_missing() -> None:
    assert not holds(cmp("user_id", "ne", "alice"), EvaluationContext())
    assert not holds(cmp("environment", "ne", "production"), EvaluationContext())
    assert holds(cmp("environment", "ne", "production"), EvaluationContext(environment="dev"))


def test_empty_roles_are_present_and_hold_nothing() -> None:
    assert not holds(cmp("roles", "eq", "admin"), EvaluationContext())
    assert holds(cmp("roles", "ne", "admin"), EvaluationContext())
    assert holds(cmp("roles", "not_in", ["admin"]), EvaluationContext())


def test_dots_descend_into_nested_objects_only() -> None:
    rule = cmp("account.plan.tier", "eq", "gold")
    assert holds(rule, attrs(account={"plan": {"tier": "gold"}}))
    assert not holds(rule, attrs(account={"plan": {"tier": "silver"}}))
    assert not holds(rule, attrs(account={"plan": "gold"}))
    assert not holds(rule, attrs(account=[{"plan": {"tier": "gold"}}]))
    assert not holds(rule, attrs(**{"account.plan.tier": "gold"}))
    assert not holds(rule, MISSING)
    assert not holds(cmp("tags.0", "eq", "a"), attrs(tags=["a"]))
    assert not holds(cmp("name.length", "eq", 3), attrs(name="bob"))


def test_absent_or_different_is_said_with_not() -> None:
    absent_or_different = {"not": cmp("plan", "eq", "pro")}
    assert holds(absent_or_different, MISSING)
    assert holds(absent_or_different, attrs(plan="free"))
    assert not holds(absent_or_different, attrs(plan="pro"))


def test_all_any_and_not() -> None:
    pro = cmp("plan", "eq", "pro")
    adult = cmp("age", "gte", 18)
    assert holds({"all": []}, MISSING)
    assert not holds({"any": []}, MISSING)
    assert holds({"all": [pro, adult]}, attrs(plan="pro", age=30))
    assert not holds({"all": [pro, adult]}, attrs(plan="pro", age=3))
    assert holds({"any": [pro, adult]}, attrs(plan="free", age=30))
    assert not holds({"any": [pro, adult]}, attrs(plan="free", age=3))
    assert holds({"not": {"any": [pro, adult]}}, attrs(plan="free", age=3))
    assert not holds({"not": {"all": []}}, MISSING)


def test_rules_keep_their_order_id_variant_and_condition() -> None:
    when = cmp("plan", "eq", "pro")
    rules = compile_rules(
        [
            {"id": "z-last-alphabetically", "when": when, "variant": "blue"},
            {"id": "a.first_alphabetically", "when": {"all": []}, "variant": "off"},
            {"id": "default-variant", "when": {"any": []}},
        ],
        VARIANTS,
    )
    assert [(r.id, r.variant) for r in rules] == [
        ("z-last-alphabetically", "blue"),
        ("a.first_alphabetically", "off"),
        ("default-variant", "on"),
    ]
    assert rules[0].when == when
    assert compile_rules((), VARIANTS) == ()
    assert compile_rules(None, VARIANTS) == ()


def test_patterns_are_compiled_once_when_rules_are(monkeypatch: pytest.MonkeyPatch) -> None:
    rule = compiled(cmp("email", "matches", r"^ops-\w+@"))

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("compiled a pattern while evaluating")

    monkeypatch.setattr(re, "compile", refuse)
    monkeypatch.setattr(re, "search", refuse)
    assert rule.matches(attrs(email="ops-alice@example.com"))
    assert not rule.matches(attrs(email="alice@example.com"))


def test_matching_never_raises_whatever_the_context_holds() -> None:
    rules = [compiled(cmp("x", op, _value_for(op))) for op in OPERATORS]
    oddities: list[JSONValue] = [
        None, True, 0, -1.5, float("inf"), float("nan"), "", "x" * 10_000, [], [[]], [None],
        {}, {"a": [1, {"b": None}]}, ["2026-01-01", "1.0.0", 3],
    ]  # fmt: skip
    for value in oddities:
        for rule in rules:
            assert rule.matches(attrs(x=value)) in (True, False)


def _value_for(op: str) -> JSONValue:
    values: dict[str, JSONValue] = {
        "in": ["a", 1],
        "not_in": ["a", 1],
        "before": "2026-01-01",
        "after": "2026-01-01",
        "matches": "a+",
        "starts_with": "a",
        "ends_with": "a",
        "gt": 1,
        "gte": 1,
        "lt": 1,
        "lte": 1,
        "contains": "a",
        "eq": "a",
        "ne": "a",
    }
    return values.get(op, "1.0.0")


# Validation.


def test_an_unknown_operator_names_the_allowed_ones() -> None:
    found = one_violation(cmp("plan", "equals", "pro"))
    assert found.field == "flag.targeting_rules[0].when.op"
    assert "'equals' is not an operator" in found.description
    assert all(op in found.description for op in OPERATORS)


def test_a_near_miss_operator_gets_a_suggestion() -> None:
    assert "did you mean 'starts_with'" in one_violation(cmp("a", "startswith", "x")).description


RULE = "flag.targeting_rules[0]"


@pytest.mark.parametrize(
    ("rule", "field", "words"),
    [
        ({"when": {"all": []}, "varient": "on"}, ".varient", "did you mean 'variant'"),
        ({"when": {}}, ".when", "is empty"),
        ({"when": "plan == pro"}, ".when", "must be a condition"),
        ({"when": {"all": [], "any": []}}, ".when", "both all and any"),
        ({"when": {"all": [], "comment": "x"}}, ".when.comment", 'with "all" has no other key'),
        ({"when": {"alll": []}}, ".when.alll", "did you mean 'all'"),
        ({"when": {"all": {}}}, ".when.all", "must be a list"),
        ({"when": {"not": [{"all": []}]}}, ".when.not", "must be a condition"),
        ({}, ".when", "is required"),
        ({"id": None, "when": {"all": []}}, ".id", "is required"),
        ({"id": "beta testers", "when": {"all": []}}, ".id", "letters, digits"),
        ({"id": "x" * 101, "when": {"all": []}}, ".id", "1 to 100"),
        ({"id": 7, "when": {"all": []}}, ".id", "1 to 100"),
        ({"when": {"all": []}, "variant": "purple"}, ".variant", "one of 'on', 'off', 'blue'"),
        ({"when": {"all": []}, "variant": None}, ".variant", "null is not a variant"),
    ],
)
def test_each_rule_mistake_is_reported_on_its_field(
    rule: dict[str, JSONValue], field: str, words: str
) -> None:
    found = violations([{"id": "r", **rule}])
    assert [v.field for v in found] == [RULE + field]
    assert words in found[0].description


@pytest.mark.parametrize(
    ("when", "field", "words"),
    [
        (
            {"attribute": "a", "op": "eq", "value": 1, "negate": True},
            ".negate",
            "attribute, op and value",
        ),
        ({"attribute": "a", "op": "eq", "value": 1, "vaule": 2}, ".vaule", "did you mean 'value'"),
        ({"op": "eq", "value": 1}, ".attribute", "is required"),
        (cmp("", "eq", 1), ".attribute", "1 to 256"),
        (cmp("a" * 257, "eq", 1), ".attribute", "1 to 256"),
        (cmp(["a"], "eq", 1), ".attribute", "1 to 256"),
        (cmp("account..plan", "eq", 1), ".attribute", "empty part"),
        (cmp(".plan", "eq", 1), ".attribute", "empty part"),
        (cmp("roles.name", "eq", "a"), ".attribute", "built-in (a list) with no fields"),
        ({"attribute": "a", "value": 1}, ".op", "is required"),
        (cmp("a", 5, 1), ".op", "5 is not an operator"),
        ({"attribute": "a", "op": "eq"}, ".value", "is required"),
        (cmp("a", "eq", None), ".value", "got null"),
        (cmp("a", "eq", ["x"]), ".value", "string, number or boolean"),
        (cmp("a", "ne", {"x": 1}), ".value", "string, number or boolean"),
        (cmp("a", "eq", "x" * 1001), ".value", "at most 1000"),
        (cmp("a", "eq", float("nan")), ".value", "got nan"),
        (cmp("a", "contains", None), ".value", "got null"),
        (cmp("a", "in", "pro"), ".value", "must be a list"),
        (cmp("a", "not_in", None), ".value", "must be a list"),
        (cmp("a", "in", ["x", None]), ".value[1]", "got null"),
        (cmp("a", "not_in", [["x"]]), ".value[0]", "string, number or boolean"),
        (cmp("a", "in", list(range(MAX_IN_VALUES + 1))), ".value", "1001 entries"),
        (cmp("a", "gt", "5"), ".value", "a number"),
        (cmp("a", "gte", True), ".value", "a number"),
        (cmp("a", "lt", float("inf")), ".value", "a number"),
        (cmp("a", "before", "next tuesday"), ".value", "ISO 8601"),
        (cmp("a", "after", "2026-02-30"), ".value", "ISO 8601"),
        (cmp("a", "after", 20260301), ".value", "ISO 8601"),
        (cmp("a", "matches", "(unclosed"), ".value", "not a valid regular expression"),
        (cmp("a", "matches", "a" * 257), ".value", "at most 256"),
        (cmp("a", "matches", 5), ".value", "regular expression"),
        (cmp("a", "semver_gt", "1.2"), ".value", "in full (1.2.0, not 1.2)"),
        (cmp("a", "semver_eq", "latest"), ".value", "semantic version"),
        (cmp("a", "semver_lte", 1), ".value", "semantic version"),
        (cmp("a", "starts_with", 1), ".value", "a string"),
        (cmp("a", "ends_with", "x" * 1001), ".value", "at most 1000"),
    ],
)
def test_each_condition_mistake_is_reported_on_its_field(
    when: JSONValue, field: str, words: str
) -> None:
    found = one_violation(when)
    assert found.field == RULE + ".when" + field
    assert words in found.description


def test_a_misspelt_key_is_reported_with_what_it_leaves_missing() -> None:
    found = violations([{"id": "r", "when": {"atribute": "a", "op": "eq", "value": 1}}])
    assert [(v.field, v.description.split(":")[0]) for v in found] == [
        (RULE + ".when.atribute", "is not a known key (did you mean 'attribute'?)"),
        (RULE + ".when.attribute", "is required"),
    ]


def test_the_rules_must_be_a_list() -> None:
    shapes: list[JSONValue] = [{"id": "r", "when": {"all": []}}, "rules", 5]
    for raw in shapes:
        assert fields_of(raw) == ["flag.targeting_rules"]


def test_ids_are_unique_within_a_flag() -> None:
    rule: JSONValue = {"id": "beta", "when": {"all": []}}
    found = violations([rule, {"id": "other", "when": {"all": []}}, rule])
    assert found == [
        FieldViolation(
            "flag.targeting_rules[2].id",
            "'beta' is the id of rule 0 too; ids are unique within a flag",
        )
    ]


def test_variants_are_the_flags_own() -> None:
    rule: JSONValue = {"id": "r", "when": {"all": []}, "variant": "blue"}
    assert compile_rules([rule], VARIANTS)[0].variant == "blue"
    found = violations([rule], dict(DEFAULT_VARIANTS))
    assert found[0].field == "flag.targeting_rules[0].variant"
    assert "use one of 'on', 'off'" in found[0].description


def test_conditions_nest_at_most_ten_deep() -> None:
    def nested(levels: int) -> JSONValue:
        when: JSONValue = cmp("a", "eq", 1)
        for _ in range(levels - 1):
            when = {"not": when}
        return when

    assert compiled(nested(MAX_DEPTH)).matches(attrs(a=1)) is (MAX_DEPTH % 2 == 1)
    found = violations([{"id": "r", "when": nested(MAX_DEPTH + 1)}])
    assert [v.field for v in found] == ["flag.targeting_rules[0].when" + ".not" * MAX_DEPTH]
    assert "nest at most 10 levels" in found[0].description


def test_a_rule_has_at_most_a_hundred_conditions() -> None:
    fits: JSONValue = {"all": [cmp("a", "eq", i) for i in range(MAX_CONDITIONS - 1)]}
    assert compiled(fits).matches(attrs(a=1)) is False
    found = violations([{"id": "r", "when": {"any": [cmp("a", "eq", i) for i in range(100)]}}])
    assert [v.field for v in found] == ["flag.targeting_rules[0].when"]
    assert "has 101 conditions; at most 100" in found[0].description


def test_a_flag_has_at_most_a_hundred_rules() -> None:
    rules: list[JSONValue] = [{"id": f"r{i}", "when": {"all": []}} for i in range(MAX_RULES)]
    assert len(compile_rules(rules, VARIANTS)) == MAX_RULES
    found = violations([*rules, {"id": "one-more", "when": {"all": []}}])
    assert [v.field for v in found] == ["flag.targeting_rules"]
    assert "at most 100 rules" in found[0].description


def test_every_violation_is_reported_at_once_on_its_path() -> None:
    raw: JSONValue = [
        {"id": "ok", "when": cmp("plan", "eq", "pro")},
        {
            "id": "bad id",
            "variant": "purple",
            "when": {
                "all": [
                    cmp("age", "gt", 18),
                    {"any": [cmp("plan", "equals", "pro"), cmp("email", "matches", "[")]},
                    {"not": {"attribute": "a", "op": "in", "value": "x", "why": 1}},
                ]
            },
        },
        {"id": "ok", "when": cmp("app", "semver_gte", "two")},
        {"id": "dates", "when": cmp("signup", "after", "soon")},
    ]
    assert fields_of(raw) == [
        "flag.targeting_rules[1].id",
        "flag.targeting_rules[1].variant",
        "flag.targeting_rules[1].when.all[1].any[0].op",
        "flag.targeting_rules[1].when.all[1].any[1].value",
        "flag.targeting_rules[1].when.all[2].not.why",
        "flag.targeting_rules[1].when.all[2].not.value",
        "flag.targeting_rules[2].id",
        "flag.targeting_rules[2].when.value",
        "flag.targeting_rules[3].when.value",
    ]


def test_check_flag_reports_rule_violations_with_the_rest() -> None:
    flag = FeatureFlag(
        key="checkout.new_flow",
        name="New checkout",
        rollout_percentage=150,
        targeting_rules=({"id": "r", "when": cmp("plan", "eqq", "pro"), "variant": "blue"},),
    )
    with pytest.raises(InvalidArgument) as caught:
        check_flag(flag)
    assert {v.field for v in caught.value.violations} == {
        "flag.rollout_percentage",
        "flag.targeting_rules[0].when.op",
        "flag.targeting_rules[0].variant",
    }
    check_flag(replace(flag, rollout_percentage=50, targeting_rules=()))


# JsonLogic for flagd.


@pytest.fixture(autouse=True)
def _quiet_flagd() -> Iterator[None]:
    """flagd logs a traceback for every version it cannot parse; the tests send many."""
    logger = logging.getLogger("openfeature.contrib")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def openfeature(context: EvaluationContext, *, send_empty_environment: bool) -> OpenFeatureContext:
    """The mapping of a Switchyard context to OpenFeature's the translation assumes."""
    attributes: dict[str, object] = dict(context.attributes)
    attributes["roles"] = list(context.roles)
    attributes["groups"] = list(context.groups)
    if context.environment or send_empty_environment:
        attributes["environment"] = context.environment
    else:
        attributes.pop("environment", None)
    return OpenFeatureContext(targeting_key=context.user_id or None, attributes=attributes)  # type: ignore[arg-type]


def flagd_says(
    rule: CompiledRule, context: EvaluationContext, *, send_empty: bool = False
) -> object:
    logic = to_json_logic(rule)
    assert isinstance(logic, dict)
    return targeting("flag", logic, openfeature(context, send_empty_environment=send_empty))


TRANSLATABLE: list[JSONValue] = [
    cmp("user_id", "eq", "alice"),
    cmp("user_id", "ne", "alice"),
    cmp("user_id", "in", ["alice", "1"]),
    cmp("user_id", "starts_with", "a"),
    cmp("environment", "eq", "production"),
    cmp("environment", "ne", "production"),
    cmp("environment", "not_in", ["staging", ""]),
    cmp("environment", "ends_with", ""),
    cmp("roles", "eq", "admin"),
    cmp("roles", "ne", "admin"),
    cmp("roles", "contains", "admin"),
    cmp("roles", "not_in", ["admin", "true"]),
    cmp("groups", "in", ["beta", "1"]),
    cmp("groups", "contains", "beta"),
    cmp("plan", "eq", "pro"),
    cmp("plan", "ne", "pro"),
    cmp("plan", "in", ["pro", "enterprise"]),
    cmp("plan", "not_in", ["pro", "enterprise"]),
    cmp("plan", "contains", "pr"),
    cmp("plan", "starts_with", "pro"),
    cmp("plan", "ends_with", "e"),
    cmp("n", "eq", 1),
    cmp("n", "eq", 0),
    cmp("n", "eq", 2.5),
    cmp("n", "eq", -1),
    cmp("n", "ne", 1),
    cmp("n", "ne", 0.0),
    cmp("n", "eq", True),
    cmp("n", "eq", False),
    cmp("n", "ne", True),
    cmp("n", "eq", "1"),
    cmp("n", "in", [0, 1, 2.5, "1", True]),
    cmp("n", "in", [False, "true"]),
    cmp("n", "in", []),
    cmp("n", "not_in", [1, "2.5", False]),
    cmp("n", "not_in", []),
    cmp("n", "gt", 1),
    cmp("n", "gte", 0),
    cmp("n", "lt", 1),
    cmp("n", "lte", 2.5),
    cmp("n", "gt", -1),
    cmp("n", "contains", 1),
    cmp("n", "contains", True),
    cmp("n", "contains", "1"),
    cmp("tags", "contains", "beta"),
    cmp("tags", "contains", 0),
    cmp("tags", "eq", "beta"),
    cmp("tags", "ne", "beta"),
    cmp("tags", "gt", 0.5),
    cmp("tags", "starts_with", ""),
    cmp("version", "semver_eq", "1.2.3"),
    cmp("version", "semver_ne", "1.2.3"),
    cmp("version", "semver_gt", "v1.2.3"),
    cmp("version", "semver_gte", "2.0.0-rc.1"),
    cmp("version", "semver_lt", "2.0.0"),
    cmp("version", "semver_lte", "1.2.0"),
    cmp("tags", "semver_gte", "1.0.0"),
    cmp("account.plan", "eq", "pro"),
    cmp("account.plan", "ne", "pro"),
    cmp("account.seats", "gt", 1),
    cmp("account.owner.id", "in", ["alice", "bob"]),
    {"all": []},
    {"any": []},
    {"not": {"all": []}},
    {"all": [cmp("plan", "eq", "pro"), cmp("n", "gte", 1)]},
    {"any": [cmp("roles", "eq", "admin"), {"not": cmp("version", "semver_lt", "1.0.0")}]},
    {"not": cmp("plan", "eq", "pro")},
    {"not": {"any": [cmp("tags", "contains", "beta"), cmp("environment", "eq", "staging")]}},
]

SCALARS: list[JSONValue] = [
    None, True, False, 0, 1, 0.0, 1.0, -1, 2, 2.5, 10, -0.5, 1e20, 2**63,
    float("nan"), float("inf"), float("-inf"),
    "", "pro", "Pro", "enterprise", "professional", "beta", "alice", "bob", "admin",
    "0", "1", "2.5", "true", "false", "null", "production", "staging",
    "1.2.3", "v1.2.3", "V1.2.3", "1.2", "1", "v2", "2.0.0-rc.1", "2.0.0-rc.2", "1.2.3+build.5",
    "1.2-beta", "1.2.3.4", "01.2.3", "v", "vv1.2.3", "1.2.3-", "2026-01-01",
]  # fmt: skip


def _value(rng: random.Random, depth: int = 0) -> JSONValue:
    roll = rng.random()
    if depth < 2 and roll < 0.2:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if depth < 2 and roll < 0.27:
        return {
            key: _value(rng, depth + 1)
            for key in rng.sample(["plan", "seats", "owner", "id", "length", "0"], rng.randrange(4))
        }
    return rng.choice(SCALARS)


def _context(rng: random.Random) -> EvaluationContext:
    attributes: dict[str, JSONValue] = {}
    for name in ("plan", "n", "tags", "version", "account", "extra"):
        if rng.random() < 0.8:
            attributes[name] = _value(rng)
    if "account" in attributes and rng.random() < 0.5:
        plans: list[JSONValue] = ["pro", "free", None, ["pro"], 1]
        seats: list[JSONValue] = [1, 2, 0.5, "3", True, None]
        owners: list[JSONValue] = [{"id": "alice"}, {"id": ["bob"]}, {"id": 7}, "alice", None]
        attributes["account"] = {
            "plan": rng.choice(plans),
            "seats": rng.choice(seats),
            "owner": rng.choice(owners),
        }
    names = ["admin", "beta", "staff", "1", "true", ""]
    return EvaluationContext(
        user_id=rng.choice(["", "alice", "bob", "1", "ann"]),
        roles=tuple(rng.sample(names, rng.randrange(4))),
        groups=tuple(rng.sample(names, rng.randrange(3))),
        environment=rng.choice(["", "production", "staging", "prod"]),
        attributes=attributes,
    )


def test_json_logic_decides_as_switchyard_does_for_generated_contexts() -> None:
    rng = random.Random(20260301)
    contexts = [_context(rng) for _ in range(300)]
    rules = [compiled(when) for when in TRANSLATABLE]
    outcomes: dict[int, set[bool]] = {index: set() for index in range(len(rules))}
    for number, context in enumerate(contexts):
        for index, rule in enumerate(rules):
            expected = rule.matches(context)
            outcomes[index].add(expected)
            said = flagd_says(rule, context, send_empty=number % 2 == 0)
            assert said is expected, (TRANSLATABLE[index], context, to_json_logic(rule))
    # The contexts reach both answers for nearly every rule: the agreement means something.
    undecided = [TRANSLATABLE[i] for i, seen in outcomes.items() if seen != {True, False}]
    assert undecided == [cmp("n", "in", []), {"all": []}, {"any": []}, {"not": {"all": []}}]


TRANSLATABLE_ON_X = [
    cmp("x", op, value)
    for op, values in dict[str, list[JSONValue]](
        {
            "eq": ["a", 0, 1, 1.5, True, False],
            "ne": ["a", 1, False],
            "in": [["a", 0, 1, True], [1.5, "b", False]],
            "not_in": [["a", 0, True]],
            "contains": ["a", 1, True],
            "gt": [0, 1],
            "gte": [0.0],
            "lt": [1],
            "lte": [-1],
            "starts_with": ["", "a"],
            "ends_with": ["a"],
            "semver_gte": ["0.0.0"],
            "semver_ne": ["1.0.0"],
        }
    ).items()
    for value in values
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values, nan=st.booleans())
def test_json_logic_agrees_on_any_json_value(value: JSONValue, nan: bool) -> None:
    context = attrs(x=[value, float("nan")] if nan else value)
    for when in TRANSLATABLE_ON_X:
        rule = compiled(when)
        assert flagd_says(rule, context) is rule.matches(context), when


def test_the_json_logic_is_a_boolean_jsonlogic_expression() -> None:
    logic = to_json_logic(compiled({"all": [cmp("plan", "eq", "pro"), cmp("user_id", "ne", "x")]}))
    assert logic == {
        "!!": [
            {
                "and": [
                    {"some": [{"merge": [{"var": "plan"}]}, {"===": [{"var": ""}, "pro"]}]},
                    {
                        "and": [
                            {"!==": [{"var": "targetingKey"}, ""]},
                            {
                                "and": [
                                    {"!==": [{"var": "targetingKey"}, None]},
                                    {
                                        "none": [
                                            {"merge": [{"var": "targetingKey"}]},
                                            {"===": [{"var": ""}, "x"]},
                                        ]
                                    },
                                ]
                            },
                        ]
                    },
                ]
            }
        ]
    }


def test_each_call_gives_a_fresh_value() -> None:
    rule = compiled(cmp("plan", "in", ["pro"]))
    first = to_json_logic(rule)
    assert isinstance(first, dict)
    first.clear()
    assert to_json_logic(rule) != first
    assert flagd_says(rule, attrs(plan="pro")) is True


@pytest.mark.parametrize(
    "when",
    [
        cmp("email", "matches", "@example"),
        cmp("signup", "before", "2026-01-01"),
        cmp("signup", "after", "2026-01-01T00:00:00Z"),
        {"all": [cmp("plan", "eq", "pro"), cmp("email", "matches", "x")]},
        {"any": [cmp("plan", "eq", "pro"), {"not": cmp("signup", "after", "2026-01-01")}]},
        {"not": {"not": cmp("signup", "before", "2026-01-01")}},
        # Paths JsonLogic reads otherwise than Switchyard.
        cmp("tags.0", "eq", "a"),
        cmp("name.length", "eq", 3),
        cmp("targetingKey", "eq", "alice"),
        cmp("$flagd.flagKey", "eq", "flag"),
    ],
)
def test_what_json_logic_cannot_say_exactly_has_no_translation(when: JSONValue) -> None:
    assert to_json_logic(compiled(when)) is None


def test_paths_that_only_look_like_indexes_translate() -> None:
    for name in ("tags.01", "tags.-1", "account.lengthy"):
        rule = compiled(cmp(name, "eq", "a"))
        assert to_json_logic(rule) is not None
        for context in (attrs(tags=["a", "b"], account="abc"), attrs(tags={"01": "a"})):
            assert flagd_says(rule, context) is rule.matches(context)


# Patterns: RE2's dialect, linear time.


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(\w+)-\1", r"invalid escape sequence: \1"),
        ("(?=beta)", "invalid perl operator: (?="),
        ("(?<!x)y", "invalid perl operator: (?<"),
        (r"end\Z", r"invalid escape sequence: \Z"),
        ("a++", "bad repetition operator: ++"),
        (r"(?:.|\pL){700}", "too costly"),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused_with_its_reason(pattern: str, reason: str) -> None:
    (violation,) = violations([{"id": "r", "when": cmp("a", "matches", pattern)}])

    assert violation.field == "flag.targeting_rules[0].when.value"
    assert reason in violation.description


def test_a_pattern_that_backtracks_exponentially_elsewhere_is_searched_as_written() -> None:
    rule = compiled(cmp("name", "matches", "(a+)+$"))

    assert rule.matches(attrs(name="a" * 40))
    assert rule.matches(attrs(name="b" + "a" * 40))  # a search: found at the end
    assert not rule.matches(attrs(name="a" * 40 + "!"))


def test_classes_are_ascii_and_unicode_is_named() -> None:
    digit, letter = (
        compiled(cmp("x", "matches", r"^\d+$")),
        compiled(cmp("x", "matches", r"^\pL+$")),
    )

    assert digit.matches(attrs(x="123")) and not digit.matches(attrs(x="١٢٣"))
    assert letter.matches(attrs(x="Ünïcödé")) and not letter.matches(attrs(x="abc1"))


def test_an_attribute_longer_than_the_text_limit_never_matches() -> None:
    rule = compiled(cmp("x", "matches", "a"))

    assert rule.matches(attrs(x="a" * MAX_TEXT_LENGTH))
    assert not rule.matches(attrs(x="a" * (MAX_TEXT_LENGTH + 1)))
