"""Typed values: what each config type accepts, the constraints of a key, and the
canonical JSON form values are stored and compared in.

Every check reports all the violations it finds at once, each on a field path, so a
person fixes a request in one go rather than one error per round trip.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from datetime import date, datetime
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from switchyard.domain.cron import cron_problem
from switchyard.domain.errors import FieldViolation, InvalidArgument
from switchyard.domain.keys import check_key
from switchyard.domain.models import ConfigDefinition, ConfigType, JSONValue
from switchyard.domain.patterns import MAX_TEXT_LENGTH, PatternError, compile_pattern

MAX_VALUE_BYTES = 65_536
"""The canonical JSON of one value may be at most this many bytes (UTF-8)."""
MAX_EMAIL_LENGTH = 254
"""The longest email address (RFC 5321's limit on a path, less its angle brackets)."""

MAX_ALLOWED_VALUES = 1000
MAX_CACHE_TTL_SECONDS = 86_400
MAX_REGEX_LENGTH = 500
MAX_CATEGORY_LENGTH = 50
MAX_DISPLAY_NAME_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 1000
MAX_VALIDATION_RULE_LENGTH = 500

_EXACT_INT_LIMIT = 2**53
"""Beyond this a double no longer holds every integer, so 1e300 stays a float rather
than becoming a 301-digit int that no client sent."""

# RFC 3986 scheme syntax. Any scheme with a host is a URL worth configuring: services
# point at redis://, postgres://, amqp:// as often as at https://. A key that wants one
# scheme only says so with `regex_pattern`.
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
# Go accepts both the micro sign (U+00B5) and the Greek mu (U+03BC) for microseconds.
_GO_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|μs|ms|s|m|h))+")
_ISO_NUMBER = r"\d+(?:[.,]\d+)?"
_ISO_DURATION = re.compile(
    rf"P(?!$)(?:{_ISO_NUMBER}Y)?(?:{_ISO_NUMBER}M)?(?:{_ISO_NUMBER}W)?(?:{_ISO_NUMBER}D)?"
    rf"(?:T(?=\d)(?:{_ISO_NUMBER}H)?(?:{_ISO_NUMBER}M)?(?:{_ISO_NUMBER}S)?)?"
)
_SHOWN_ALLOWED_VALUES = 10


def _raise(violations: list[FieldViolation]) -> None:
    if violations:
        raise InvalidArgument(
            "; ".join(f"{v.field}: {v.description}" for v in violations), violations
        )


# --- canonical form ------------------------------------------------------------------


def encode_value(value: JSONValue) -> str | None:
    """The canonical JSON text of a value, as stored; None for no value (SQL NULL).

    Raises ValueError for NaN or infinity: `normalize` refuses those before a value gets
    this far."""
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def decode_value(text: str | None) -> JSONValue:
    """The value `encode_value` produced `text` from; None for NULL."""
    if text is None:
        return None
    result: JSONValue = json.loads(text)
    return result


def _comparable(value: JSONValue) -> str:
    """A text equal for equal JSON values only: member order does not matter and
    `true` differs from `1` (Python's `True == 1` would say otherwise)."""
    return json.dumps(normalize(value), sort_keys=True, separators=(",", ":"))


def normalize(value: JSONValue, field: str = "value") -> JSONValue:
    """Integral floats become ints, recursively (values arrive as protobuf doubles: 30.0
    is stored and shown as 30). Floats of magnitude 2**53 or more stay floats. Raises
    InvalidArgument on `field` for NaN or infinity, which JSON cannot hold."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument.field(
                field, f"numbers must be finite (no NaN or infinity); got {value}"
            )
        return int(value) if value.is_integer() and abs(value) < _EXACT_INT_LIMIT else value
    if isinstance(value, list):
        return [normalize(item, field) for item in value]
    if isinstance(value, dict):
        return {name: normalize(item, field) for name, item in value.items()}
    return value


def _size_problem(value: JSONValue) -> str | None:
    encoded = encode_value(value)
    if encoded is None:
        return None
    try:
        size = len(encoded.encode("utf-8"))
    except UnicodeEncodeError:
        return "must be valid UTF-8 text (it holds an unpaired surrogate)"
    if size > MAX_VALUE_BYTES:
        return f"is {size} bytes as JSON; at most {MAX_VALUE_BYTES} bytes are allowed"
    return None


def check_value_size(value: JSONValue, field: str = "value") -> None:
    """Refuses a value whose canonical JSON exceeds MAX_VALUE_BYTES (UTF-8): values are
    cached, streamed to watchers and kept in history, so each stays small. Raises
    InvalidArgument."""
    problem = _size_problem(value)
    if problem:
        raise InvalidArgument.field(field, problem)


# --- types -----------------------------------------------------------------------------


def _is_number(value: JSONValue) -> bool:
    # bool is an int subclass in Python, but `true` is not a number in JSON.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_problem(kind: ConfigType, value: JSONValue) -> str | None:
    """Why `value` is not of `kind`, or None when it is. Strict: the string "30" is not a
    number and 1 is not a boolean."""
    if kind is ConfigType.JSON:
        return None
    if kind is ConfigType.NUMBER:
        return None if _is_number(value) else f"must be a number; got {_describe(value)}"
    if kind is ConfigType.BOOLEAN:
        return None if isinstance(value, bool) else f"must be true or false; got {_describe(value)}"
    if kind is ConfigType.ARRAY:
        return None if isinstance(value, list) else f"must be an array; got {_describe(value)}"
    if not isinstance(value, str):
        return f"must be a string ({kind.value}); got {_describe(value)}"
    if kind is ConfigType.STRING:
        return None
    return _STRING_FORMATS[kind](value)


def _date_problem(text: str) -> str | None:
    parsers: tuple[Callable[[str], object], ...] = (date.fromisoformat, datetime.fromisoformat)
    for parse in parsers:
        try:
            parse(text)
        except ValueError:
            continue
        return None
    return (
        "must be an ISO 8601 date or date-time such as 2026-11-25 or "
        f"2026-11-25T09:30:00Z; got {text!r}"
    )


def _url_problem(text: str) -> str | None:
    wanted = (
        "must be an absolute URL with a host, such as https://api.example.com or "
        f"redis://cache:6379; got {text!r}"
    )
    if any(c.isspace() for c in text):
        return wanted
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises for a port that is not a number in 0..65535
    except ValueError as error:
        return f"{wanted} ({error})"
    if not _URL_SCHEME.fullmatch(parts.scheme) or not parts.hostname:
        return wanted
    return None


def _email_problem(text: str) -> str | None:
    # No address is longer (RFC 5321's path limit), and the parser takes a second over a
    # megabyte: refuse the length before parsing.
    if len(text) > MAX_EMAIL_LENGTH:
        return f"must be an email address of at most {MAX_EMAIL_LENGTH} characters"
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        return f"must be an email address such as ops@example.com: {error}; got {text!r}"
    return None


def check_url(text: str, field: str = "url") -> None:
    """An absolute URL with a host. Raises InvalidArgument on `field`."""
    problem = _url_problem(text)
    if problem is not None:
        raise InvalidArgument.field(field, problem)


def check_email(text: str, field: str = "email") -> None:
    """An email address (syntax only). Raises InvalidArgument on `field`."""
    problem = _email_problem(text)
    if problem is not None:
        raise InvalidArgument.field(field, problem)


def _duration_problem(text: str) -> str | None:
    if _GO_DURATION.fullmatch(text) or _ISO_DURATION.fullmatch(text):
        return None
    return f"must be a duration such as 250ms, 1h30m or PT90S; got {text!r}"


def _cron_problem(text: str) -> str | None:
    # The reading flags and windows use: a value of type cron is a schedule some
    # consumer runs, and one that never fires would schedule nothing.
    return cron_problem(text, "*/5 * * * *")


_STRING_FORMATS: dict[ConfigType, Callable[[str], str | None]] = {
    ConfigType.DATE: _date_problem,
    ConfigType.URL: _url_problem,
    ConfigType.EMAIL: _email_problem,
    ConfigType.DURATION: _duration_problem,
    ConfigType.CRON: _cron_problem,
}


_INFERRED_ORDER = (
    ConfigType.URL,
    ConfigType.EMAIL,
    ConfigType.DURATION,
    ConfigType.DATE,
    ConfigType.CRON,
)


def string_format_of(text: str) -> ConfigType | None:
    """The string type `text` is written in (URL, email, duration, date or cron, tried in
    that order), or None for plain text: how an import types a value nobody declared."""
    for kind in _INFERRED_ORDER:
        if _STRING_FORMATS[kind](text) is None:
            return kind
    return None


def _describe(value: JSONValue) -> str:
    """`number 500`, `string "30"`: what a value was, short enough for an error."""
    encoded = encode_value(value) or "null"
    shown = encoded if len(encoded) <= 40 else encoded[:37] + "..."
    kind = {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }
    return f"{kind.get(type(value), 'null')} {shown}"


# --- constraints ---------------------------------------------------------------------------


def _measure(definition: ConfigDefinition, value: JSONValue) -> tuple[float, str] | None:
    """What min/max bound for this value, and how to say it; None when they do not apply
    (booleans, objects)."""
    if _is_number(value):
        return float(value), "the value"  # type: ignore[arg-type]
    if isinstance(value, str):
        return float(len(value)), "its length"
    if isinstance(value, list):
        return float(len(value)), "its number of items"
    return None


def _format_bound(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _span(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {_format_bound(low)} and {_format_bound(high)}"
    if low is not None:
        return f"at least {_format_bound(low)}"
    return f"at most {_format_bound(high)}"  # type: ignore[arg-type]


def _constraint_problems(definition: ConfigDefinition, value: JSONValue) -> list[str]:
    rules = definition.validation
    problems = []
    measured = _measure(definition, value)
    low, high = rules.min_value, rules.max_value
    if measured is not None and (low is not None or high is not None):
        amount, what = measured
        if (low is not None and amount < low) or (high is not None and amount > high):
            problems.append(f"{what} must be {_span(low, high)}; got {_format_bound(amount)}")
    if rules.regex_pattern and isinstance(value, str):
        problems += _pattern_problems(rules.regex_pattern, value)
    if rules.allowed_values:
        allowed = {_comparable(a) for a in rules.allowed_values}
        if _comparable(value) not in allowed:
            shown = ", ".join(
                encode_value(a) or "null" for a in rules.allowed_values[:_SHOWN_ALLOWED_VALUES]
            )
            if len(rules.allowed_values) > _SHOWN_ALLOWED_VALUES:
                shown += f", ... ({len(rules.allowed_values)} in all)"
            problems.append(f"must be one of {shown}; got {_describe(value)}")
    return problems


def _pattern_problems(pattern: str, value: str) -> list[str]:
    try:
        compiled = compile_pattern(pattern)
    except PatternError as error:
        # A pattern stored before patterns were RE2's: the value cannot be checked, and
        # an unchecked value is not let through.
        return [
            f"cannot be checked: the key's regex_pattern {pattern!r} {error}; change "
            "config.validation.regex_pattern (UpdateConfig) first"
        ]
    if len(value) > MAX_TEXT_LENGTH:
        return [
            f"is {len(value)} characters; a key with a regex_pattern takes strings of at "
            f"most {MAX_TEXT_LENGTH}"
        ]
    if not compiled.fullmatch(value):
        return [f"must match the pattern {pattern!r}; got {_shown(value)}"]
    return []


def _shown(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 200 else shown[:197] + "..."


def check_value(definition: ConfigDefinition, value: JSONValue, field: str = "value") -> JSONValue:
    """Checks `value` against the key's type and constraints and returns it normalized.

    `None` (no value) passes unless the key `is_required`. The constraints, from
    `definition.validation`:

    - `min_value`/`max_value` bound a number by its value, a string (of any string type)
      by its length in characters and an array by its number of items; booleans and
      objects are not bounded.
    - `regex_pattern` (RE2 syntax, `switchyard.domain.patterns`) must match a string
      value as a whole; a string of more than 4,096 characters is refused, and other
      values are not matched.
    - `allowed_values` compare as JSON: 1 equals 1.0, `true` does not equal 1, member order
      of objects does not matter.

    Constraints are checked only once the type is right (a bound on a number says nothing
    useful about a string given instead). Raises InvalidArgument on `field` listing every
    violation found, the size limit included."""
    value = normalize(value, field)
    if value is None:
        if definition.is_required:
            raise InvalidArgument.field(
                field, f"is required: config key {definition.key!r} cannot be cleared"
            )
        return None
    try:
        encode_value(value).encode("utf-8")  # type: ignore[union-attr]
    except UnicodeEncodeError:
        raise InvalidArgument.field(
            field, "must be valid UTF-8 text (it holds an unpaired surrogate)"
        ) from None
    size_problem = _size_problem(value)
    type_problem = _type_problem(definition.type, value)
    problems = [p for p in (size_problem, type_problem) if p]
    if type_problem is None:
        problems += _constraint_problems(definition, value)
    _raise([FieldViolation(field, p) for p in problems])
    return value


# --- definitions ----------------------------------------------------------------------------


def _length_problem(
    text: str | None, limit: int, field: str, *, required: bool = False
) -> FieldViolation | None:
    if not text:
        return FieldViolation(field, "is required") if required else None
    if len(text) > limit:
        return FieldViolation(field, f"must be at most {limit} characters; got {len(text)}")
    return None


def _metadata_violations(definition: ConfigDefinition) -> list[FieldViolation]:
    violations: list[FieldViolation] = []
    try:
        check_key(definition.key, "config.key")
    except InvalidArgument as error:
        violations.extend(error.violations)
    for problem in (
        _length_problem(definition.category, MAX_CATEGORY_LENGTH, "config.category", required=True),
        _length_problem(definition.subcategory, MAX_CATEGORY_LENGTH, "config.subcategory"),
        _length_problem(definition.display_name, MAX_DISPLAY_NAME_LENGTH, "config.display_name"),
        _length_problem(definition.description, MAX_DESCRIPTION_LENGTH, "config.description"),
    ):
        if problem:
            violations.append(problem)
    if not 0 <= definition.cache_ttl_seconds <= MAX_CACHE_TTL_SECONDS:
        violations.append(
            FieldViolation(
                "config.cache_ttl_seconds",
                f"must be between 0 and {MAX_CACHE_TTL_SECONDS} seconds; "
                f"got {definition.cache_ttl_seconds}",
            )
        )
    return violations


def _regex_violations(pattern: str | None) -> list[FieldViolation]:
    field = "config.validation.regex_pattern"
    if not pattern:
        return []
    if len(pattern) > MAX_REGEX_LENGTH:
        return [
            FieldViolation(
                field, f"must be at most {MAX_REGEX_LENGTH} characters; got {len(pattern)}"
            )
        ]
    try:
        compile_pattern(pattern)
    except PatternError as error:
        return [FieldViolation(field, str(error))]
    return []


def _bound_violations(low: float | None, high: float | None) -> list[FieldViolation]:
    violations = [
        FieldViolation(f"config.validation.{name}", f"must be a finite number; got {bound}")
        for name, bound in (("min_value", low), ("max_value", high))
        if bound is not None and not math.isfinite(bound)
    ]
    if not violations and low is not None and high is not None and low > high:
        violations.append(
            FieldViolation(
                "config.validation.min_value",
                f"must not exceed max_value ({_format_bound(low)} > {_format_bound(high)})",
            )
        )
    return violations


def _allowed_values(
    definition: ConfigDefinition, violations: list[FieldViolation]
) -> tuple[JSONValue, ...]:
    """The allowed values normalized; each must be a non-null value of the key's type."""
    raw_values = definition.validation.allowed_values
    if len(raw_values) > MAX_ALLOWED_VALUES:
        violations.append(
            FieldViolation(
                "config.validation.allowed_values",
                f"must hold at most {MAX_ALLOWED_VALUES} values; got {len(raw_values)}",
            )
        )
    allowed: list[JSONValue] = []
    for index, raw in enumerate(raw_values):
        field = f"config.validation.allowed_values[{index}]"
        try:
            candidate = normalize(raw, field)
        except InvalidArgument as error:
            violations.extend(error.violations)
            continue
        if candidate is None:
            violations.append(FieldViolation(field, "must not be null"))
            continue
        problem = _type_problem(definition.type, candidate) or _size_problem(candidate)
        if problem:
            violations.append(FieldViolation(field, problem))
        allowed.append(candidate)
    return tuple(allowed)


def _relation_violations(definition: ConfigDefinition) -> list[FieldViolation]:
    rules = definition.validation
    violations: list[FieldViolation] = []
    for name in ("depends_on", "conflicts_with"):
        seen: set[str] = set()
        for index, other in enumerate(getattr(rules, name)):
            field = f"config.validation.{name}[{index}]"
            try:
                check_key(other, field)
            except InvalidArgument as error:
                violations.extend(error.violations)
                continue
            if other == definition.key:
                violations.append(FieldViolation(field, f"{other} cannot name the key itself"))
            elif other in seen:
                violations.append(FieldViolation(field, f"{other} is listed twice"))
            seen.add(other)
    both = set(rules.depends_on) & set(rules.conflicts_with)
    if both:
        violations.append(
            FieldViolation(
                "config.validation.conflicts_with",
                f"{', '.join(sorted(both))} cannot be both a dependency (depends_on) "
                "and a conflict (conflicts_with)",
            )
        )
    return violations


def check_definition(definition: ConfigDefinition) -> ConfigDefinition:
    """Checks a definition as a whole and returns it with its base value, default and
    allowed values normalized.

    `is_required` means "never reads as no value": a required key must hold a base value
    or a default (either will do, since reading falls back to the default), and its base
    value cannot be cleared later (`check_value`). The default itself is checked without
    `is_required`.

    The base value and default are checked against the constraints only when the
    constraints themselves are sound; otherwise the messages would describe rules that
    are about to change. Raises InvalidArgument listing every violation, on paths such
    as `config.validation.min_value` or `config.default_value`."""
    rules = definition.validation
    violations = _metadata_violations(definition)
    rule_violations = [
        *_regex_violations(rules.regex_pattern),
        *_bound_violations(rules.min_value, rules.max_value),
        *_relation_violations(definition),
    ]
    rule_problem = _length_problem(
        rules.validation_rule, MAX_VALIDATION_RULE_LENGTH, "config.validation.validation_rule"
    )
    if rule_problem:
        rule_violations.append(rule_problem)
    allowed = _allowed_values(definition, rule_violations)
    violations += rule_violations

    checked = replace(definition, validation=replace(rules, allowed_values=allowed))
    base, default = definition.value, definition.default_value
    if not rule_violations:
        optional = replace(checked, is_required=False)
        try:
            default = check_value(optional, definition.default_value, "config.default_value")
        except InvalidArgument as error:
            violations.extend(error.violations)
        try:
            base = check_value(optional, definition.value, "config.value")
        except InvalidArgument as error:
            violations.extend(error.violations)
    if definition.is_required and definition.value is None and definition.default_value is None:
        violations.append(
            FieldViolation(
                "config.is_required",
                "a required key needs a base value or a default value; set one of them "
                "or make the key optional",
            )
        )
    _raise(violations)
    return replace(checked, value=base, default_value=default)


# --- relations between keys ----------------------------------------------------------------


def is_truthy(value: JSONValue) -> bool:
    """Whether a value counts as "set" for `depends_on` and `conflicts_with`.

    null, false, "", [] and {} do not; every number does, 0 included: a timeout of 0 or a
    limit of 0 is a deliberate setting, not an absence (turn a feature off with a
    boolean)."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def _state(value: JSONValue) -> str:
    """`not set`, `not set (false)`, `set ("on")`: how a related key stands."""
    encoded = encode_value(value)
    if encoded is None:
        return "not set"
    shown = encoded if len(encoded) <= 40 else encoded[:37] + "..."
    return f"{'set' if is_truthy(value) else 'not set'} ({shown})"


def check_relations(
    definition: ConfigDefinition,
    value: JSONValue,
    related: Mapping[str, JSONValue | None],
    missing: Collection[str],
    environment: str | None,
) -> None:
    """When `value` is truthy (`is_truthy`), every `depends_on` key must exist and be
    truthy, and no `conflicts_with` key may be truthy, in the same environment.

    `related` holds the other keys' effective values there (an absent entry reads as no
    value); `missing` names keys that do not exist or are inactive: a missing dependency
    breaks the relation, a missing conflict cannot. A falsy value relates to nothing, so
    clearing or disabling a key is never refused here. Raises InvalidArgument with one
    violation on `value` per broken relation."""
    if not is_truthy(value):
        return
    where = f"in {environment}" if environment else "in the base layer"
    violations = []
    for other in definition.validation.depends_on:
        if other in missing:
            violations.append(
                FieldViolation(
                    "value",
                    f"depends on {other}, which does not exist or is inactive; "
                    f"create or activate {other} first",
                )
            )
        elif not is_truthy(related.get(other)):
            violations.append(
                FieldViolation(
                    "value",
                    f"depends on {other}, which is {_state(related.get(other))} "
                    f"{where}; set {other} first",
                )
            )
    for other in definition.validation.conflicts_with:
        if other not in missing and is_truthy(related.get(other)):
            violations.append(
                FieldViolation(
                    "value",
                    f"conflicts with {other}, which is {_state(related.get(other))} "
                    f"{where}; unset {other} first",
                )
            )
    if violations:
        raise InvalidArgument("; ".join(v.description for v in violations), violations)


__all__ = [
    "MAX_ALLOWED_VALUES",
    "MAX_CACHE_TTL_SECONDS",
    "MAX_EMAIL_LENGTH",
    "MAX_REGEX_LENGTH",
    "MAX_VALUE_BYTES",
    "check_definition",
    "check_email",
    "check_relations",
    "check_url",
    "check_value",
    "check_value_size",
    "decode_value",
    "encode_value",
    "is_truthy",
    "normalize",
    "string_format_of",
]
