"""Targeting rules: the small language a flag's `targeting_rules` are written in.

A flag's rules are a JSON list, evaluated in order by the caller; the first rule whose
condition holds decides, serving its variant. A rule is
`{"id": "beta-testers", "when": <condition>, "variant": "on"}`: `id` is 1 to 100 characters
of `[A-Za-z0-9_.-]`, unique within the flag; `variant` (default "on") names one of the
flag's variants ("off" is allowed: a rule that excludes). Conditions:

- `{"all": [c, ...]}` holds when every `c` does (so always, for an empty list);
  `{"any": [c, ...]}` when one does (never, for an empty list); `{"not": c}`.
- `{"attribute": NAME, "op": OP, "value": V}`. NAME is a built-in, `user_id`, `roles`,
  `groups` or `environment` (the evaluation context's fields; an empty `user_id` or
  `environment` counts as missing), or else a key of the context's attributes, a dot
  descending into a nested object (`account.plan`); a key that itself contains a dot
  cannot be reached.

Operators, with the type V must have:

- `eq`, `ne` (V a string, number or boolean), `in`, `not_in` (V a list of those).
  Numbers equal across int and float (1 == 1.0); a boolean never equals a number.
- `contains`: a list attribute holds an element equal to V, or (V a string) a string
  attribute contains V.
- `gt`, `gte`, `lt`, `lte`: numbers (a boolean is not a number).
- `before`, `after`: ISO 8601 dates or datetimes, compared as instants; a date without a
  time is midnight UTC, a datetime without an offset is UTC.
- `starts_with`, `ends_with`: strings. `matches`: V a regular expression in RE2 syntax of
  at most 256 characters, found anywhere in the attribute (a search; anchor it with `^`
  and `$`); an attribute longer than 4,096 characters never matches. The dialect, and
  what it does not take (backreferences, lookaround), is `switchyard.domain.patterns`'.
- `semver_eq`, `semver_ne`, `semver_gt`, `semver_gte`, `semver_lt`, `semver_lte`:
  semantic versions; a leading "v" or "V" is ignored. V must be a full version (1.4.0);
  an attribute may be partial, "1" and "1.2" reading as 1.0.0 and 1.2.0, as flagd reads
  them, so that rules decide alike in Switchyard and in flagd.

Why comparisons never fail: a rule runs on whatever clients send, so a context cannot be
an error. A missing attribute, or null, makes every comparison false, `ne` and `not_in`
included: "absent or different" is `{"not": {... "op": "eq" ...}}`. A value of the wrong
type for the operator (a string for `gt`, a string that is no date or version) makes the
comparison false too. A list attribute (`roles`, `groups`, or a list in the attributes)
matches `eq`, `in`, `starts_with`, `ends_with`, `matches` and the number, date and version
operators when any element does (the semver operators, `semver_ne` included, are of that
kind); `ne` and `not_in` hold for a list when no element equals V, or is in V; `contains`
tests membership.

Limits, so that a rule stays cheap to evaluate on every request: 100 rules per flag,
conditions nested 10 deep, 100 conditions per rule, 1000 entries in an `in` list, string
values of 1000 characters, patterns of 256.

Everything that can be checked is checked when rules are compiled, every problem at once
(unknown keys, so typos are caught; regular expressions, dates and versions in V); a
compiled rule evaluates without parsing JSON or compiling expressions. Rules already
stored are compiled with `compile_stored_rules`, which never fails: a rule this version
cannot compile (saved by one whose pattern engine took more) never matches.
`to_json_logic` gives a rule's condition as flagd JsonLogic, for OpenFeature in-process
providers, when it can be said exactly.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import semver

from switchyard.domain.errors import InvalidArgument, Violations
from switchyard.domain.flags import ON, EvaluationContext
from switchyard.domain.models import JSONValue
from switchyard.domain.patterns import Pattern, PatternError, compile_pattern

MAX_RULES = 100
MAX_DEPTH = 10
"""How deep conditions nest: a rule's `when` is level 1."""
MAX_CONDITIONS = 100
"""Conditions in one rule, counting every all, any, not and comparison."""
MAX_IN_VALUES = 1000
MAX_VALUE_LENGTH = 1000
"""Characters of a string V (an entry of an `in` list included)."""
MAX_PATTERN_LENGTH = 256
MAX_ATTRIBUTE_LENGTH = 256

EQUALITY_OPERATORS = ("eq", "ne", "in", "not_in", "contains")
NUMBER_OPERATORS = ("gt", "gte", "lt", "lte")
DATE_OPERATORS = ("before", "after")
STRING_OPERATORS = ("starts_with", "ends_with", "matches")
SEMVER_OPERATORS = (
    "semver_eq",
    "semver_ne",
    "semver_gt",
    "semver_gte",
    "semver_lt",
    "semver_lte",
)
OPERATORS = (
    *EQUALITY_OPERATORS,
    *NUMBER_OPERATORS,
    *DATE_OPERATORS,
    *STRING_OPERATORS,
    *SEMVER_OPERATORS,
)
BUILTIN_ATTRIBUTES = ("user_id", "roles", "groups", "environment")

_RULE_KEYS = ("id", "when", "variant")
_COMPARISON_KEYS = ("attribute", "op", "value")
_COMBINATORS = ("all", "any", "not")
_RULE_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_CACHED_TEXT = 256
"""Longer attribute strings are parsed as dates or versions each time, not remembered."""

_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "before": operator.lt,
    "after": operator.gt,
    "semver_eq": operator.eq,
    "semver_ne": operator.ne,
    "semver_gt": operator.gt,
    "semver_gte": operator.ge,
    "semver_lt": operator.lt,
    "semver_lte": operator.le,
}
_JSON_LOGIC_ORDERINGS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_FLAGD_SEMVER = {
    "semver_eq": "=",
    "semver_ne": "!=",
    "semver_gt": ">",
    "semver_gte": ">=",
    "semver_lt": "<",
    "semver_lte": "<=",
}

_Getter = Callable[[EvaluationContext], object]
_Test = Callable[[EvaluationContext], bool]
_Predicate = Callable[[object], bool]
_Logic = Callable[[], JSONValue | None]
_Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class _Condition:
    """A compiled condition: how to test a context, and how to say it in JsonLogic (None
    when it cannot be said exactly)."""

    test: _Test
    logic: _Logic


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule, ready to evaluate. `when` is the condition as written."""

    id: str
    variant: str
    when: JSONValue
    _condition: _Condition = field(repr=False, compare=False)

    def matches(self, context: EvaluationContext) -> bool:
        """Whether the rule's condition holds for `context`. Never raises."""
        return self._condition.test(context)


def compile_rules(
    raw: Sequence[JSONValue] | JSONValue, variants: Mapping[str, JSONValue]
) -> tuple[CompiledRule, ...]:
    """A flag's targeting rules, checked and compiled, in order. `variants` are the
    flag's (name to value). None means no rules. Raises InvalidArgument listing every
    violation, each on a path such as `flag.targeting_rules[2].when.all[0].op`."""
    where = "flag.targeting_rules"
    if raw is None:
        return ()
    if isinstance(raw, str | bytes | Mapping) or not isinstance(raw, Sequence):
        raise InvalidArgument.field(
            where, 'must be a list of rules such as {"id": ..., "when": ..., "variant": ...}'
        )
    found = Violations()
    if len(raw) > MAX_RULES:
        found.add(where, f"at most {MAX_RULES} rules; this flag has {len(raw)}")
    compiled: list[CompiledRule] = []
    seen: dict[str, int] = {}
    for index, rule in enumerate(raw):
        result = _compile_rule(rule, f"{where}[{index}]", index, variants, seen, found)
        if result is not None:
            compiled.append(result)
    found.raise_any()
    return tuple(compiled)


def compile_stored_rules(
    raw: Sequence[JSONValue] | JSONValue, variants: Mapping[str, JSONValue]
) -> tuple[tuple[CompiledRule, ...], tuple[str, ...]]:
    """A flag's rules as stored, compiled to evaluate, and what is wrong with them.

    Stored rules were checked when they were saved, but by the version that saved them,
    which may have taken what this one refuses (a pattern RE2 cannot run). Such a rule
    never matches, whole, so that a `not` around its broken part cannot turn it into a
    rule for everyone; it keeps its place, id and variant, and has no JsonLogic form
    (the flag is left out of flagd documents). Every other rule compiles as
    `compile_rules` compiles it. The problems come back as "path: what is wrong", one
    per violation, for the caller to report. Never raises."""
    try:
        return compile_rules(raw, variants), ()
    except InvalidArgument as error:
        refused = error
    if raw is None or isinstance(raw, str | bytes | Mapping) or not isinstance(raw, Sequence):
        return (), tuple(f"{v.field}: {v.description}" for v in refused.violations)
    compiled: list[CompiledRule] = []
    problems = [
        f"{v.field}: {v.description}"
        for v in refused.violations
        if v.field == "flag.targeting_rules"
    ]
    seen: dict[str, int] = {}
    for index, rule in enumerate(raw):
        found = Violations()
        where = f"flag.targeting_rules[{index}]"
        result = _compile_rule(rule, where, index, variants, seen, found)
        if result is None or found.found:
            result = _never_matching(rule, index)
            problems += [f"{v.field}: {v.description}" for v in found.found]
        compiled.append(result)
    return tuple(compiled), tuple(problems)


_NEVER = _Condition(lambda context: False, lambda: None)


def _never_matching(rule: JSONValue, index: int) -> CompiledRule:
    fields = rule if isinstance(rule, dict) else {}
    rule_id, variant = fields.get("id"), fields.get("variant", ON)
    return CompiledRule(
        rule_id if isinstance(rule_id, str) else f"#{index}",
        variant if isinstance(variant, str) else ON,
        fields.get("when"),
        _NEVER,
    )


def to_json_logic(rule: CompiledRule) -> JSONValue | None:
    """The rule's condition as flagd JsonLogic, evaluating to `true` exactly when
    `rule.matches` would, or None when the rule uses an operator JsonLogic cannot say
    exactly (`matches`, `before`, `after`) or an attribute path JsonLogic reads otherwise
    (a `length` or list-index segment; `targetingKey`, `$flagd`), and for a stored rule
    that did not compile (`compile_stored_rules`).

    The OpenFeature context must carry `user_id` as the targeting key, `roles` and
    `groups` as lists (empty ones included), `environment`, and every other attribute by
    its own name, nested objects kept. A fresh value each call."""
    return _fresh({"!!": [logic]}) if (logic := rule._condition.logic()) is not None else None


def _compile_rule(
    rule: JSONValue,
    where: str,
    index: int,
    variants: Mapping[str, JSONValue],
    seen: dict[str, int],
    found: Violations,
) -> CompiledRule | None:
    if not isinstance(rule, dict):
        found.add(where, 'must be an object: {"id": ..., "when": ..., "variant": ...}')
        return None
    _unknown_keys(rule, _RULE_KEYS, where, "a rule has id, when and variant", found)
    ok = True
    rule_id = rule.get("id")
    if not isinstance(rule_id, str) or not _RULE_ID.fullmatch(rule_id):
        ok = False
        found.add(
            f"{where}.id",
            "is required: 1 to 100 characters of letters, digits, '_', '.' and '-'"
            + ("" if rule_id is None else f"; got {_show(rule_id)}"),
        )
    elif rule_id in seen:
        ok = False
        found.add(
            f"{where}.id",
            f"{rule_id!r} is the id of rule {seen[rule_id]} too; ids are unique within a flag",
        )
    else:
        seen[rule_id] = index
    variant = rule.get("variant", ON)
    if not isinstance(variant, str) or variant not in variants:
        ok = False
        found.add(
            f"{where}.variant",
            f"{_show(variant)} is not a variant of this flag; "
            f"use one of {', '.join(_quoted(variants))}",
        )
    if "when" not in rule:
        found.add(
            f"{where}.when",
            'is required: the condition under which the rule applies ({"all": []} for always)',
        )
        return None
    counter = [0]
    condition = _compile_condition(rule["when"], f"{where}.when", 1, counter, found)
    if counter[0] > MAX_CONDITIONS:
        found.add(
            f"{where}.when",
            f"has {counter[0]} conditions; at most {MAX_CONDITIONS} per rule "
            "(split it into several rules serving the same variant)",
        )
        return None
    if condition is None or not ok:
        return None
    assert isinstance(rule_id, str) and isinstance(variant, str)
    return CompiledRule(rule_id, variant, rule["when"], condition)


def _compile_condition(
    raw: JSONValue, where: str, depth: int, counter: list[int], found: Violations
) -> _Condition | None:
    if depth > MAX_DEPTH:
        found.add(
            where,
            f"conditions nest at most {MAX_DEPTH} levels deep; flatten this one "
            "(nested alls and nested anys can be merged)",
        )
        return None
    counter[0] += 1
    shapes = (
        '{"all": [...]}, {"any": [...]}, {"not": {...}} or '
        '{"attribute": ..., "op": ..., "value": ...}'
    )
    if not isinstance(raw, dict):
        found.add(where, f"must be a condition: {shapes}; got {_show(raw)}")
        return None
    if any(key in raw for key in _COMPARISON_KEYS):
        _unknown_keys(
            raw, _COMPARISON_KEYS, where, "a comparison has attribute, op and value", found
        )
        return _compile_comparison(raw, where, found)
    combinators = [key for key in _COMBINATORS if key in raw]
    if len(combinators) > 1:
        found.add(
            where,
            f"has both {' and '.join(combinators)}: a condition is one of them; "
            "nest conditions to combine them",
        )
        return None
    if not combinators:
        if raw:
            known = (*_COMBINATORS, *_COMPARISON_KEYS)
            _unknown_keys(raw, (), where, f"a condition is one of {shapes}", found, known)
        else:
            found.add(where, f"is empty; a condition is one of {shapes}")
        return None
    kind = combinators[0]
    _unknown_keys(raw, (kind,), where, f'a condition with "{kind}" has no other key', found)
    inner = raw[kind]
    if kind == "not":
        child = _compile_condition(inner, f"{where}.not", depth + 1, counter, found)
        return _not(child) if child is not None else None
    if not isinstance(inner, list):
        found.add(f"{where}.{kind}", f"must be a list of conditions; got {_show(inner)}")
        return None
    children = [
        _compile_condition(item, f"{where}.{kind}[{index}]", depth + 1, counter, found)
        for index, item in enumerate(inner)
    ]
    kept = [child for child in children if child is not None]
    if len(kept) != len(children):
        return None
    return _all(kept) if kind == "all" else _any(kept)


def _all(children: list[_Condition]) -> _Condition:
    tests = tuple(child.test for child in children)

    def test(context: EvaluationContext) -> bool:
        for each in tests:  # noqa: SIM110 - a loop is 3x faster than all() on a generator
            if not each(context):
                return False
        return True

    def logic() -> JSONValue | None:
        parts = [child.logic() for child in children]
        if any(part is None for part in parts):
            return None
        return {"and": parts} if parts else True

    return _Condition(test, logic)


def _any(children: list[_Condition]) -> _Condition:
    tests = tuple(child.test for child in children)

    def test(context: EvaluationContext) -> bool:
        for each in tests:  # noqa: SIM110 - a loop is 3x faster than any() on a generator
            if each(context):
                return True
        return False

    def logic() -> JSONValue | None:
        parts = [child.logic() for child in children]
        if any(part is None for part in parts):
            return None
        return {"or": parts} if parts else False

    return _Condition(test, logic)


def _not(child: _Condition) -> _Condition:
    inner = child.test

    def test(context: EvaluationContext) -> bool:
        return not inner(context)

    def logic() -> JSONValue | None:
        part = child.logic()
        return None if part is None else {"!": [part]}

    return _Condition(test, logic)


# Comparisons.


def _compile_comparison(
    raw: dict[str, JSONValue], where: str, found: Violations
) -> _Condition | None:
    name = _check_attribute(raw.get("attribute"), f"{where}.attribute", found)
    op = raw.get("op")
    if not isinstance(op, str) or op not in OPERATORS:
        found.add(f"{where}.op", _unknown_op(op))
        return None
    if "value" not in raw:
        found.add(f"{where}.value", f"is required: {_VALUE_NEEDS[op]}")
        return None
    value = raw["value"]
    target = _check_value(op, value, f"{where}.value", found)
    if name is None or target is _INVALID:
        return None
    test = _comparison_test(op, _getter(name), target)
    return _Condition(test, lambda: _comparison_logic(name, op, target))


def _check_attribute(name: JSONValue, where: str, found: Violations) -> str | None:
    what = (
        f"names a context attribute: one of {', '.join(BUILTIN_ATTRIBUTES)}, or a key of the "
        "attributes, dots descending into nested objects (account.plan)"
    )
    if name is None:
        found.add(where, f"is required: it {what}")
        return None
    if not isinstance(name, str) or not name or len(name) > MAX_ATTRIBUTE_LENGTH:
        found.add(where, f"must be a string of 1 to {MAX_ATTRIBUTE_LENGTH} characters that {what}")
        return None
    parts = name.split(".")
    if any(not part for part in parts):
        found.add(where, f"{name!r} has an empty part: no leading, trailing or double dots")
        return None
    if len(parts) > 1 and parts[0] in BUILTIN_ATTRIBUTES:
        kind = "a list" if parts[0] in ("roles", "groups") else "a string"
        found.add(where, f"{parts[0]} is a built-in ({kind}) with no fields; name it alone")
        return None
    return name


_VALUE_NEEDS = {
    **dict.fromkeys(("eq", "ne", "contains"), "a string, number or boolean"),
    **dict.fromkeys(
        ("in", "not_in"), f"a list of at most {MAX_IN_VALUES} strings, numbers or booleans"
    ),
    **dict.fromkeys(NUMBER_OPERATORS, "a number"),
    **dict.fromkeys(
        DATE_OPERATORS,
        "an ISO 8601 date or datetime such as 2026-03-01 or 2026-03-01T09:00:00Z "
        "(no offset means UTC)",
    ),
    **dict.fromkeys(("starts_with", "ends_with"), "a string"),
    "matches": f"a regular expression (RE2 syntax) of at most {MAX_PATTERN_LENGTH} characters",
    **dict.fromkeys(
        SEMVER_OPERATORS, "a semantic version such as 1.4.0 or 2.0.0-rc.1 (a leading v is allowed)"
    ),
}

_INVALID: Any = object()
"""What a value check returns for a value it refused (having said why)."""


def _check_value(op: str, value: JSONValue, where: str, found: Violations) -> Any:
    """The value an operator compares with, prepared (a compiled pattern, an instant, a
    version), or `_INVALID` after adding a violation."""
    needs = _VALUE_NEEDS[op]
    if op in ("eq", "ne", "contains"):
        problem = _scalar_problem(value)
        if problem:
            found.add(where, f"must be {needs}; {problem}")
            return _INVALID
        return value
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            found.add(where, f"must be {needs}; got {_show(value)}")
            return _INVALID
        if len(value) > MAX_IN_VALUES:
            found.add(where, f"must be {needs}; got {len(value)} entries")
            return _INVALID
        ok = True
        for index, entry in enumerate(value):
            problem = _scalar_problem(entry)
            if problem:
                ok = False
                found.add(f"{where}[{index}]", f"must be a string, number or boolean; {problem}")
        return tuple(value) if ok else _INVALID
    if op in NUMBER_OPERATORS:
        if not (isinstance(value, int | float) and _is_number(value) and math.isfinite(value)):
            found.add(where, f"must be {needs}; got {_show(value)}")
            return _INVALID
        return value
    if op in DATE_OPERATORS:
        moment = _instant(value) if isinstance(value, str) else None
        if moment is None:
            found.add(where, f"must be {needs}; got {_show(value)}")
            return _INVALID
        return moment
    if op == "matches":
        if not isinstance(value, str) or len(value) > MAX_PATTERN_LENGTH:
            found.add(where, f"must be {needs}; got {_show(value)}")
            return _INVALID
        try:
            return compile_pattern(value)
        except PatternError as error:
            found.add(where, str(error))
            return _INVALID
    if op in SEMVER_OPERATORS:
        version = _strict_version(value) if isinstance(value, str) else None
        if version is None:
            found.add(where, f"must be {needs}, in full (1.2.0, not 1.2); got {_show(value)}")
            return _INVALID
        return version
    # starts_with, ends_with
    if not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH:
        found.add(where, f"must be {needs} of at most {MAX_VALUE_LENGTH} characters")
        return _INVALID
    return value


def _scalar_problem(value: JSONValue) -> str:
    """Why `value` cannot be compared for equality; empty when it can."""
    if value is None:
        return "got null (a missing attribute never matches; use not/eq for 'absent or ...')"
    if isinstance(value, bool):
        return ""
    if isinstance(value, int | float):
        return "" if math.isfinite(value) else f"got {value}"
    if isinstance(value, str):
        if len(value) > MAX_VALUE_LENGTH:
            return f"a string is at most {MAX_VALUE_LENGTH} characters"
        return ""
    return f"got {_show(value)}"


def _comparison_test(op: str, get: _Getter, target: Any) -> _Test:
    if op == "ne":
        return _no_element(get, _equals(target))
    if op == "not_in":
        return _no_element(get, _member_of(target))
    if op == "contains":
        return _contains(get, target)
    predicate: _Predicate
    if op == "eq":
        predicate = _equals(target)
    elif op == "in":
        predicate = _member_of(target)
    elif op in NUMBER_OPERATORS:
        predicate = _number_predicate(_ORDERINGS[op], target)
    elif op in DATE_OPERATORS:
        predicate = _date_predicate(_ORDERINGS[op], target)
    elif op in SEMVER_OPERATORS:
        predicate = _version_predicate(_ORDERINGS[op], target)
    elif op == "matches":
        predicate = _pattern_predicate(target)
    elif op == "starts_with":
        predicate = _starts_with(target)
    else:
        predicate = _ends_with(target)
    return _some_element(get, predicate)


def _getter(name: str) -> _Getter:
    """Reads an attribute; None when it is missing (or null, or an empty built-in
    string)."""
    if name == "user_id":
        return lambda context: context.user_id or None
    if name == "environment":
        return lambda context: context.environment or None
    if name == "roles":
        return lambda context: context.roles
    if name == "groups":
        return lambda context: context.groups
    head, *rest = name.split(".")
    if not rest:
        return lambda context: context.attributes.get(head)

    def get(context: EvaluationContext) -> object:
        value: object = context.attributes.get(head)
        for part in rest:
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value

    return get


def _some_element(get: _Getter, predicate: _Predicate) -> _Test:
    def test(context: EvaluationContext) -> bool:
        value = get(context)
        if isinstance(value, list | tuple):
            for element in value:  # noqa: SIM110 - faster than any() on a generator
                if predicate(element):
                    return True
            return False
        return value is not None and predicate(value)

    return test


def _no_element(get: _Getter, predicate: _Predicate) -> _Test:
    def test(context: EvaluationContext) -> bool:
        value = get(context)
        if value is None:
            return False
        if isinstance(value, list | tuple):
            for element in value:  # noqa: SIM110 - faster than all() on a generator
                if predicate(element):
                    return False
            return True
        return not predicate(value)

    return test


def _contains(get: _Getter, target: _Scalar) -> _Test:
    if isinstance(target, str):
        # A list's membership and a string's substring are both `in`; a string equals
        # only a string.
        def test(context: EvaluationContext) -> bool:
            value = get(context)
            return isinstance(value, str | list | tuple) and target in value

        return test
    equals = _equals(target)

    def test_list(context: EvaluationContext) -> bool:
        value = get(context)
        if isinstance(value, list | tuple):
            for element in value:
                if equals(element):
                    return True
        return False

    return test_list


def _equals(target: _Scalar) -> _Predicate:
    if isinstance(target, bool):
        return lambda element: element is target
    if isinstance(target, str):
        return lambda element: element == target
    return lambda element: element == target and not isinstance(element, bool)


def _member_of(targets: tuple[_Scalar, ...]) -> _Predicate:
    strings = frozenset(t for t in targets if isinstance(t, str))
    booleans = frozenset(t for t in targets if isinstance(t, bool))
    numbers = frozenset(t for t in targets if _is_number(t))

    def predicate(element: object) -> bool:
        if isinstance(element, str):
            return element in strings
        if isinstance(element, bool):
            return element in booleans
        if isinstance(element, int | float):
            return element in numbers
        return False

    return predicate


def _number_predicate(compare: Callable[[Any, Any], bool], bound: float) -> _Predicate:
    return lambda element: (
        isinstance(element, int | float)
        and not isinstance(element, bool)
        and compare(element, bound)
    )


def _date_predicate(compare: Callable[[Any, Any], bool], bound: datetime) -> _Predicate:
    def predicate(element: object) -> bool:
        if not isinstance(element, str):
            return False
        moment = (
            _instant(element) if len(element) <= _CACHED_TEXT else _instant.__wrapped__(element)
        )
        return moment is not None and compare(moment, bound)

    return predicate


def _version_predicate(compare: Callable[[Any, Any], bool], bound: semver.Version) -> _Predicate:
    def verdict(text: str) -> bool:
        version = _lenient_version(text)
        return version is not None and compare(version, bound)

    # Comparing semver Versions costs microseconds; clients send few distinct versions.
    remembered = lru_cache(maxsize=1024)(verdict)

    def predicate(element: object) -> bool:
        if not isinstance(element, str):
            return False
        return remembered(element) if len(element) <= _CACHED_TEXT else verdict(element)

    return predicate


def _pattern_predicate(pattern: Pattern) -> _Predicate:
    search = pattern.search
    return lambda element: isinstance(element, str) and search(element)


def _starts_with(prefix: str) -> _Predicate:
    return lambda element: isinstance(element, str) and element.startswith(prefix)


def _ends_with(suffix: str) -> _Predicate:
    return lambda element: isinstance(element, str) and element.endswith(suffix)


@lru_cache(maxsize=4096)
def _instant(text: str) -> datetime | None:
    """An ISO 8601 date or datetime as an instant: no time is midnight, no offset UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _strict_version(text: str) -> semver.Version | None:
    """A rule's version: full, a leading v or V ignored."""
    try:
        return semver.Version.parse(text[1:] if text.startswith(("v", "V")) else text)
    except ValueError:
        return None


def _lenient_version(text: str) -> semver.Version | None:
    """An attribute's version, read as flagd's `sem_ver` reads it: a leading v or V
    ignored, and a missing minor or patch taken as 0 ("1.2" is 1.2.0)."""
    if text.startswith(("v", "V")):
        text = text[1:]
    numeric = text.split("-")[0].split("+")[0]
    dots = numeric.count(".")
    if dots < 2:
        text = numeric + ".0" * (2 - dots) + text[len(numeric) :]
    try:
        return semver.Version.parse(text)
    except ValueError:
        return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# JsonLogic. Each comparison is made exact by guards: a missing var is null, JsonLogic's
# `===` is Python's `==` (so 1 == 1.0, but also true == 1), `in` is membership on a list
# and a substring test on a string, and `some` over `merge` reads a scalar as a list of one.


def _comparison_logic(name: str, op: str, target: Any) -> JSONValue | None:
    if op in DATE_OPERATORS or op == "matches":
        return None
    var = _var(name)
    if var is None:
        return None
    item: JSONValue = {"var": ""}
    body: JSONValue
    if op == "ne":
        body = _no_element_logic(var, _equals_logic(item, target))
    elif op == "not_in":
        body = _no_element_logic(var, _member_logic(item, target))
    elif op == "contains":
        if isinstance(target, str):
            body = {"in": [target, var]}
        else:
            body = {"some": [var, _equals_logic(item, target)]}
    else:
        predicate: JSONValue
        if op == "eq":
            predicate = _equals_logic(item, target)
        elif op == "in":
            predicate = _member_logic(item, target)
        elif op in NUMBER_OPERATORS:
            predicate = {
                "and": [_is_number_logic(item), {_JSON_LOGIC_ORDERINGS[op]: [item, target]}]
            }
        elif op in SEMVER_OPERATORS:
            predicate = {
                "and": [
                    _is_string_logic(item),
                    {"sem_ver": [item, _FLAGD_SEMVER[op], str(target)]},
                ]
            }
        else:  # starts_with, ends_with
            predicate = {op: [item, target]}
        body = {"some": [{"merge": [var]}, predicate]}
    if name in ("user_id", "environment"):
        # Switchyard reads an empty one as missing, whether or not the mapping sends it.
        return {"and": [{"!==": [var, ""]}, body]}
    return body


def _var(name: str) -> JSONValue | None:
    """The JsonLogic var reading `name`, or None when JsonLogic would read it otherwise:
    flagd puts its own `targetingKey` and `$flagd` at the top, and JsonLogic indexes
    lists and strings by number and `length` where Switchyard finds no such field."""
    if name == "user_id":
        return {"var": "targetingKey"}
    head, *rest = name.split(".")
    if head in ("targetingKey", "$flagd"):
        return None
    for part in rest:
        if part == "length" or (part.isascii() and part.isdigit() and str(int(part)) == part):
            return None
    return {"var": name}


_SPELLED = {True: ("True", "true"), False: ("False", "false")}


def _no_element_logic(var: JSONValue, predicate: JSONValue) -> JSONValue:
    return {"and": [{"!==": [var, None]}, {"none": [{"merge": [var]}, predicate]}]}


def _not_boolean_logic(item: JSONValue) -> JSONValue:
    """For an item known to be a number or a boolean: not a boolean. `cat` spells a
    boolean "True" or "False" in panzi-json-logic (Python's str; JavaScript's would be
    lower case, so both are read), a number never so."""
    return {"!": [{"in": [{"cat": [item]}, [*_SPELLED[True], *_SPELLED[False]]]}]}


def _is_number_logic(item: JSONValue) -> JSONValue:
    # Only numbers (and booleans) equal themselves plus zero; NaN fails, as NaN fails
    # every ordering in Python.
    return {"and": [{"===": [item, {"+": [item]}]}, _not_boolean_logic(item)]}


def _is_string_logic(item: JSONValue) -> JSONValue:
    # flagd's starts_with answers null unless both sides are strings.
    return {"starts_with": [item, ""]}


def _equals_logic(item: JSONValue, target: _Scalar) -> JSONValue:
    if isinstance(target, bool):
        # `===` is Python's ==, so true === 1; `cat` tells them apart.
        spelled: JSONValue = list(_SPELLED[target])
        return {"and": [{"===": [item, target]}, {"in": [{"cat": [item]}, spelled]}]}
    if isinstance(target, str) or target not in (0, 1):
        return {"===": [item, target]}
    return {"and": [{"===": [item, target]}, _not_boolean_logic(item)]}


def _member_logic(item: JSONValue, targets: tuple[_Scalar, ...]) -> JSONValue:
    strings: list[JSONValue] = [t for t in targets if isinstance(t, str)]
    numbers: list[JSONValue] = [t for t in targets if _is_number(t)]
    parts: list[JSONValue] = []
    if strings:
        parts.append({"in": [item, strings]})
    if numbers:
        among: JSONValue = {"in": [item, numbers]}
        if any(n in (0, 1) for n in numbers):
            among = {"and": [among, _not_boolean_logic(item)]}
        parts.append(among)
    for boolean in (True, False):
        if any(t is boolean for t in targets):
            parts.append(_equals_logic(item, boolean))
    if not parts:
        return False
    return parts[0] if len(parts) == 1 else {"or": parts}


def _fresh(value: JSONValue) -> JSONValue:
    """A copy sharing no list or object, so a caller may change what it is given."""
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_fresh(item) for item in value]
    return value


# Messages.


def _unknown_keys(
    raw: Mapping[str, JSONValue],
    allowed: Sequence[str],
    where: str,
    what: str,
    found: Violations,
    known: Sequence[str] = (),
) -> None:
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(key, known or allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            found.add(f"{where}.{key}", f"is not a known key{hint}: {what}")


def _unknown_op(op: JSONValue) -> str:
    if op is None:
        prefix = "is required"
    else:
        close = difflib.get_close_matches(op, OPERATORS, n=1) if isinstance(op, str) else []
        prefix = f"{_show(op)} is not an operator" + (
            f" (did you mean {close[0]!r}?)" if close else ""
        )
    return f"{prefix}; use one of {', '.join(OPERATORS)}"


def _quoted(names: Mapping[str, JSONValue]) -> list[str]:
    shown = [repr(name) for name in list(names)[:20]]
    return [*shown, "..."] if len(names) > 20 else shown


def _show(value: JSONValue) -> str:
    text = "null" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = [
    "BUILTIN_ATTRIBUTES",
    "DATE_OPERATORS",
    "EQUALITY_OPERATORS",
    "MAX_ATTRIBUTE_LENGTH",
    "MAX_CONDITIONS",
    "MAX_DEPTH",
    "MAX_IN_VALUES",
    "MAX_PATTERN_LENGTH",
    "MAX_RULES",
    "MAX_VALUE_LENGTH",
    "NUMBER_OPERATORS",
    "OPERATORS",
    "SEMVER_OPERATORS",
    "STRING_OPERATORS",
    "CompiledRule",
    "compile_rules",
    "compile_stored_rules",
    "to_json_logic",
]
