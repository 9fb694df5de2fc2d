"""Names: config keys, environments, templates and maintenance windows, as the columns that
hold them allow."""

from __future__ import annotations

import re

from switchyard.domain.errors import InvalidArgument

MAX_KEY_LENGTH = 100
MAX_ENVIRONMENT_LENGTH = 20
MAX_TEMPLATE_NAME_LENGTH = 100

# Unanchored on purpose: use them with `fullmatch` (a `$` anchor would let a trailing
# newline through).
KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]*")
ENVIRONMENT_PATTERN = re.compile(r"[a-z][a-z0-9_-]*")
TEMPLATE_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _too_long(limit: int, text: str) -> str:
    return f"must be at most {limit} characters; got {len(text)}"


def check_key(key: str, field: str = "key") -> None:
    """A dotted config key such as `api.timeout`: what `pf_system_config.config_key`
    (VARCHAR2(100)) holds, with no empty segment so keys group cleanly by prefix.
    Raises InvalidArgument on `field`."""
    if not key:
        raise InvalidArgument.field(field, "is required")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidArgument.field(field, _too_long(MAX_KEY_LENGTH, key))
    if not KEY_PATTERN.fullmatch(key) or ".." in key or key.endswith("."):
        raise InvalidArgument.field(
            field,
            f"{key!r} is not a key: use lower-case letters, digits, '_', '-' and single dots "
            "between words, starting with a letter or digit (for example api.timeout)",
        )


def check_key_prefix(prefix: str, field: str = "key_prefix") -> None:
    """A prefix to list keys by: any text, but no longer than a key can be (a longer one
    could match nothing, and would only cost the database). Raises InvalidArgument on
    `field`."""
    if len(prefix) > MAX_KEY_LENGTH:
        raise InvalidArgument.field(field, _too_long(MAX_KEY_LENGTH, prefix))


def prefix_range(prefix: str) -> tuple[str, str | None]:
    """The half-open range [low, high) of texts that start with `prefix`, in code point
    order (the order in which both databases compare keys: binary, UTF-8). `high` is
    None when no text above the range exists (a prefix of U+10FFFF alone). Comparing
    against a range is exact and case-sensitive everywhere, and uses the key's index,
    where a LIKE pattern depends on the database's collation and grows with the
    prefix."""
    chars = list(prefix)
    while chars:
        following = ord(chars.pop()) + 1
        if following <= 0x10FFFF:
            if 0xD800 <= following <= 0xDFFF:  # surrogates are no characters of UTF-8
                following = 0xE000
            return prefix, "".join(chars) + chr(following)
    return prefix, None


def check_environment_name(name: str, field: str = "environment") -> None:
    """An environment name such as `production` (VARCHAR2(20)). Raises InvalidArgument
    on `field`."""
    if not name:
        raise InvalidArgument.field(field, "is required")
    if len(name) > MAX_ENVIRONMENT_LENGTH:
        raise InvalidArgument.field(field, _too_long(MAX_ENVIRONMENT_LENGTH, name))
    if not ENVIRONMENT_PATTERN.fullmatch(name):
        raise InvalidArgument.field(
            field,
            f"{name!r} is not an environment name: up to {MAX_ENVIRONMENT_LENGTH} lower-case "
            "letters, digits, '_' or '-', starting with a letter",
        )


def _check_name(name: str, field: str, what: str) -> None:
    if not name:
        raise InvalidArgument.field(field, "is required")
    if len(name) > MAX_TEMPLATE_NAME_LENGTH:
        raise InvalidArgument.field(field, _too_long(MAX_TEMPLATE_NAME_LENGTH, name))
    if not TEMPLATE_NAME_PATTERN.fullmatch(name):
        raise InvalidArgument.field(
            field,
            f"{name!r} is not a {what} name: up to {MAX_TEMPLATE_NAME_LENGTH} letters, "
            "digits, '_', '.' or '-', starting with a letter or digit",
        )


def check_template_name(name: str, field: str = "template_name") -> None:
    """A template name such as `high-traffic` (VARCHAR2(100)). Raises InvalidArgument on
    `field`."""
    _check_name(name, field, "template")


def check_window_name(name: str, field: str = "name") -> None:
    """A maintenance window name such as `nightly-reindex`, by the rules of template
    names. Raises InvalidArgument on `field`."""
    _check_name(name, field, "maintenance window")


__all__ = [
    "ENVIRONMENT_PATTERN",
    "KEY_PATTERN",
    "MAX_ENVIRONMENT_LENGTH",
    "MAX_KEY_LENGTH",
    "MAX_TEMPLATE_NAME_LENGTH",
    "TEMPLATE_NAME_PATTERN",
    "check_environment_name",
    "check_key",
    "check_key_prefix",
    "check_template_name",
    "check_window_name",
    "prefix_range",
]
