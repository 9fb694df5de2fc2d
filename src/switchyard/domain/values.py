"""Typed values: what each config type accepts, the constraints of a key, and the
canonical JSON form values are stored and compared in.

Every check reports all the violations it finds at once, each on a field path, so a
person fixes a request in one go rather than one error per round trip.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import date, datetime
from urllib.parse import urlsplit

from croniter import croniter
from email_validator import EmailNotValidError, validate_email

from switchyard.domain.errors import FieldViolation, InvalidArgument
from switchyard.domain.keys import check_key
from switchyard.domain.models import ConfigDefinition, ConfigType, JSONValue

MAX_VALUE_BYTES = 65_536
"""The canonical JSON of one value may be at most this many bytes (UTF-8)."""

MAX_ALLOWED_VALUES = 1000
MAX_CACHE_TTL_SECONDS = 86_400
MAX_REGEX_LENGTH = 500

_URL_SCHEMES = frozenset({"http", "https", "grpc", "grpcs"})
_GO_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")
_ISO_DURATION = re.compile(
    r"P(?!$)(?:\d+(?:\.\d+)?Y)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?W)?(?:\d+(?:\.\d+)?D)?"
    r"(?:T(?=\d)(?:\d+(?:\.\d+)?H)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?S)?)?"
)


# --- canonical form ------------------------------------------------------------------


def encode_value(value: JSONValue) -> str | None:
    """The canonical JSON text of a value; None for no value."""
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def decode_value(text: str | None) -> JSONValue:
    if text is None:
        return None
    result: JSONValue = json.loads(text)
    return result


def normalize(value: JSONValue, field: str = "value") -> JSONValue:
    """Integral floats become ints (values arrive as protobuf doubles: 30.0 is 30), so a
    value reads back as it was meant. Raises InvalidArgument for NaN or infinity."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument.field(field, "numbers must be finite (no NaN or infinity)")
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, list):
        return [normalize(item, field) for item in value]
    if isinstance(value, dict):
        return {name: normalize(item, field) for name, item in value.items()}
    return value


def check_value_size(value: JSONValue, field: str = "value") -> None:
    encoded = encode_value(value)
    if encoded is not None and len(encoded.encode("utf-8")) > MAX_VALUE_BYTES:
        raise InvalidArgument.field(
            field,
            f"is {len(encoded.encode('utf-8'))} bytes as JSON; at most {MAX_VALUE_BYTES} "
            "bytes are allowed",
        )


# --- types -----------------------------------------------------------------------------


def _is_number(value: JSONValue) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_problem(kind: ConfigType, value: JSONValue) -> str | None:
    """Why `value` is not of `kind`, or None when it is."""
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
    checks = {
        ConfigType.DATE: _date_problem,
        ConfigType.URL: _url_problem,
        ConfigType.EMAIL: _email_problem,
        ConfigType.DURATION: _duration_problem,
        ConfigType.CRON: _cron_problem,
    }
    return checks[kind](value)


def _date_problem(text: str) -> str | None:
    for parse in (date.fromisoformat, datetime.fromisoformat):
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
    parts = urlsplit(text)
    if parts.scheme not in _URL_SCHEMES or not parts.hostname or any(c.isspace() for c in text):
        return f"must be an absolute http(s) or grpc URL with a host; got {text!r}"
    return None


def _email_problem(text: str) -> str | None:
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        return f"must be an email address: {error}"
    return None


def _duration_problem(text: str) -> str | None:
    if _GO_DURATION.fullmatch(text) or _ISO_DURATION.fullmatch(text):
        return None
    return f"must be a duration such as 250ms, 1h30m or PT90S; got {text!r}"


def _cron_problem(text: str) -> str | None:
    if len(text.split()) == 5 and croniter.is_valid(text):
        return None
    return f"must be a five-field cron expression such as '*/5 * * * *'; got {text!r}"


def _describe(value: JSONValue) -> str:
    encoded = encode_value(value)
    shown = (
        encoded if encoded is not None and len(encoded) <= 40 else (encoded or "null")[:37] + "..."
    )
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
    """What min/max bound for this value, and how to say it."""
    if _is_number(value) and definition.type in (ConfigType.NUMBER, ConfigType.JSON):
        return float(value), "the value"  # type: ignore[arg-type]
    if isinstance(value, str):
        return float(len(value)), "its length"
    if isinstance(value, list):
        return float(len(value)), "its number of items"
    return None


def _format_bound(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _constraint_problems(definition: ConfigDefinition, value: JSONValue) -> list[str]:
    rules = definition.validation
    problems = []
    measured = _measure(definition, value)
    if measured is not None:
        amount, what = measured
        low, high = rules.min_value, rules.max_value
        if (low is not None and amount < low) or (high is not None and amount > high):
            if low is not None and high is not None:
                span = f"between {_format_bound(low)} and {_format_bound(high)}"
            elif low is not None:
                span = f"at least {_format_bound(low)}"
            else:
                span = f"at most {_format_bound(high)}"  # type: ignore[arg-type]
            problems.append(f"{what} must be {span}; got {_format_bound(amount)}")
    if rules.regex_pattern and isinstance(value, str):
        try:
            matched = re.fullmatch(rules.regex_pattern, value) is not None
        except re.error:
            matched = True  # a definition with a broken pattern is refused when saved
        if not matched:
            problems.append(f"must match the pattern {rules.regex_pattern!r}; got {value!r}")
    if rules.allowed_values:
        allowed = {encode_value(normalize(a)) for a in rules.allowed_values}
        if encode_value(value) not in allowed:
            shown = ", ".join(encode_value(a) or "null" for a in rules.allowed_values[:10])
            problems.append(f"must be one of {shown}; got {_describe(value)}")
    return problems


def check_value(definition: ConfigDefinition, value: JSONValue, field: str = "value") -> JSONValue:
    """Checks `value` against the key's type and constraints and returns it normalized.

    `None` (no value) passes unless the key `is_required`. Min/max bound numbers by value,
    strings by length and arrays by item count. Raises InvalidArgument listing every
    violation found."""
    value = normalize(value, field)
    if value is None:
        if definition.is_required:
            raise InvalidArgument.field(
                field, f"is required: config key {definition.key!r} cannot be cleared"
            )
        return None
    check_value_size(value, field)
    problem = _type_problem(definition.type, value)
    problems = [problem] if problem else _constraint_problems(definition, value)
    if problems:
        violations = [FieldViolation(field, p) for p in problems]
        raise InvalidArgument(f"{field}: " + "; ".join(problems), violations)
    return value


# --- definitions ----------------------------------------------------------------------------


def _length_problem(
    text: str | None, limit: int, field: str, *, required: bool = False
) -> FieldViolation | None:
    if not text:
        return FieldViolation(field, "is required") if required else None
    if len(text) > limit:
        return FieldViolation(field, f"must be at most {limit} characters")
    return None


def check_definition(definition: ConfigDefinition) -> ConfigDefinition:
    """Checks a definition as a whole and returns it with its values normalized.

    A required key must hold a base value or a default, so that reading it always answers.
    Raises InvalidArgument listing every violation, on paths such as
    `config.validation.min_value`."""
    violations: list[FieldViolation] = []
    try:
        check_key(definition.key, "config.key")
    except InvalidArgument as error:
        violations.extend(error.violations)
    for problem in (
        _length_problem(definition.category, 50, "config.category", required=True),
        _length_problem(definition.subcategory, 50, "config.subcategory"),
        _length_problem(definition.display_name, 255, "config.display_name"),
        _length_problem(definition.description, 1000, "config.description"),
        _length_problem(
            definition.validation.validation_rule, 500, "config.validation.validation_rule"
        ),
    ):
        if problem:
            violations.append(problem)
    if not 0 <= definition.cache_ttl_seconds <= MAX_CACHE_TTL_SECONDS:
        violations.append(
            FieldViolation(
                "config.cache_ttl_seconds", f"must be between 0 and {MAX_CACHE_TTL_SECONDS}"
            )
        )

    rules = definition.validation
    if rules.regex_pattern:
        if len(rules.regex_pattern) > MAX_REGEX_LENGTH:
            violations.append(
                FieldViolation(
                    "config.validation.regex_pattern",
                    f"must be at most {MAX_REGEX_LENGTH} characters",
                )
            )
        else:
            try:
                re.compile(rules.regex_pattern)
            except re.error as error:
                violations.append(
                    FieldViolation("config.validation.regex_pattern", f"does not compile: {error}")
                )
    for name in ("min_value", "max_value"):
        bound = getattr(rules, name)
        if bound is not None and not math.isfinite(bound):
            violations.append(FieldViolation(f"config.validation.{name}", "must be finite"))
    if (
        rules.min_value is not None
        and rules.max_value is not None
        and rules.min_value > rules.max_value
    ):
        violations.append(
            FieldViolation(
                "config.validation.min_value",
                f"must not exceed max_value ({_format_bound(rules.min_value)} > "
                f"{_format_bound(rules.max_value)})",
            )
        )
    if len(rules.allowed_values) > MAX_ALLOWED_VALUES:
        violations.append(
            FieldViolation(
                "config.validation.allowed_values", f"at most {MAX_ALLOWED_VALUES} values"
            )
        )
    allowed = []
    for index, raw in enumerate(rules.allowed_values):
        field = f"config.validation.allowed_values[{index}]"
        try:
            candidate = normalize(raw, field)
        except InvalidArgument as error:
            violations.extend(error.violations)
            continue
        type_problem = None if candidate is None else _type_problem(definition.type, candidate)
        if candidate is None or type_problem:
            violations.append(FieldViolation(field, type_problem or "must not be null"))
        allowed.append(candidate)
    for name in ("depends_on", "conflicts_with"):
        for index, other in enumerate(getattr(rules, name)):
            field = f"config.validation.{name}[{index}]"
            try:
                check_key(other, field)
            except InvalidArgument as error:
                violations.extend(error.violations)
                continue
            if other == definition.key:
                violations.append(FieldViolation(field, "a key cannot name itself"))
    both = set(rules.depends_on) & set(rules.conflicts_with)
    if both:
        violations.append(
            FieldViolation(
                "config.validation.conflicts_with",
                f"{', '.join(sorted(both))} cannot be both a dependency and a conflict",
            )
        )
    if violations:
        raise InvalidArgument(
            "; ".join(f"{v.field}: {v.description}" for v in violations), violations
        )

    definition = replace(definition, validation=replace(rules, allowed_values=tuple(allowed)))
    optional = replace(definition, is_required=False)
    try:
        default = check_value(optional, definition.default_value, "config.default_value")
    except InvalidArgument as error:
        violations.extend(error.violations)
        default = None
    try:
        base = check_value(optional, definition.value, "config.value")
    except InvalidArgument as error:
        violations.extend(error.violations)
        base = None
    if definition.is_required and definition.value is None and definition.default_value is None:
        violations.append(
            FieldViolation(
                "config.is_required", "a required key needs a base value or a default value"
            )
        )
    if violations:
        raise InvalidArgument(
            "; ".join(f"{v.field}: {v.description}" for v in violations), violations
        )
    return replace(definition, value=base, default_value=default)


# --- relations between keys ----------------------------------------------------------------


def is_truthy(value: JSONValue) -> bool:
    """Whether a value counts as "set" for `depends_on` and `conflicts_with`: null, false,
    "", [] and {} do not; every number does (0 is a deliberate setting, not an absence)."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def check_relations(
    definition: ConfigDefinition,
    value: JSONValue,
    related: Mapping[str, JSONValue | None],
    missing: Collection[str],
    environment: str | None,
) -> None:
    """When `value` is truthy, every `depends_on` key must be truthy and no
    `conflicts_with` key may be, in the same environment (`related` holds their effective
    values there; `missing` names keys that do not exist or are inactive)."""
    if not is_truthy(value):
        return
    where = f"in {environment}" if environment else "in the base values"
    violations = []
    for other in definition.validation.depends_on:
        if other in missing:
            violations.append(
                FieldViolation("value", f"depends on {other}, which does not exist or is inactive")
            )
        elif not is_truthy(related.get(other)):
            shown = encode_value(related.get(other)) or "not set"
            violations.append(
                FieldViolation("value", f"depends on {other}, which is {shown} {where}")
            )
    for other in definition.validation.conflicts_with:
        if other not in missing and is_truthy(related.get(other)):
            shown = encode_value(related.get(other)) or "set"
            violations.append(
                FieldViolation(
                    "value", f"conflicts with {other}, which is {shown} {where}; unset it first"
                )
            )
    if violations:
        raise InvalidArgument("; ".join(v.description for v in violations), violations)


__all__ = [
    "MAX_VALUE_BYTES",
    "check_definition",
    "check_relations",
    "check_value",
    "check_value_size",
    "decode_value",
    "encode_value",
    "is_truthy",
    "normalize",
]
