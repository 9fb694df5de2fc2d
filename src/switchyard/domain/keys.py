"""Names: config keys, environments and templates, as the columns that hold them allow."""

from __future__ import annotations

import re

from switchyard.domain.errors import InvalidArgument

MAX_KEY_LENGTH = 100
MAX_ENVIRONMENT_LENGTH = 20
MAX_TEMPLATE_NAME_LENGTH = 100

KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]*")
ENVIRONMENT_PATTERN = re.compile(r"[a-z][a-z0-9_-]*")
TEMPLATE_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_key(key: str, field: str = "key") -> None:
    """A dotted config key such as `api.timeout`. Raises InvalidArgument."""
    if not key:
        raise InvalidArgument.field(field, "is required")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidArgument.field(field, f"must be at most {MAX_KEY_LENGTH} characters")
    if not KEY_PATTERN.fullmatch(key) or ".." in key or key.endswith("."):
        raise InvalidArgument.field(
            field,
            f"{key!r} is not a key: use lower-case letters, digits, '_', '-' and single dots "
            "between words, starting with a letter or digit (for example api.timeout)",
        )


def check_environment_name(name: str, field: str = "environment") -> None:
    """An environment name such as `production`. Raises InvalidArgument."""
    if not name:
        raise InvalidArgument.field(field, "is required")
    if len(name) > MAX_ENVIRONMENT_LENGTH or not ENVIRONMENT_PATTERN.fullmatch(name):
        raise InvalidArgument.field(
            field,
            f"{name!r} is not an environment name: up to {MAX_ENVIRONMENT_LENGTH} lower-case "
            "letters, digits, '_' or '-', starting with a letter",
        )


def check_template_name(name: str, field: str = "template_name") -> None:
    """A template name such as `high-traffic`. Raises InvalidArgument."""
    if not name:
        raise InvalidArgument.field(field, "is required")
    if len(name) > MAX_TEMPLATE_NAME_LENGTH or not TEMPLATE_NAME_PATTERN.fullmatch(name):
        raise InvalidArgument.field(
            field,
            f"{name!r} is not a template name: up to {MAX_TEMPLATE_NAME_LENGTH} letters, "
            "digits, '_', '.' or '-', starting with a letter or digit",
        )


__all__ = [
    "KEY_PATTERN",
    "MAX_KEY_LENGTH",
    "check_environment_name",
    "check_key",
    "check_template_name",
]
