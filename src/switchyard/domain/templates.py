"""Templates: named sets of values, checked before they are saved."""

from __future__ import annotations

from collections.abc import Callable

from switchyard.domain.errors import FieldViolation, InvalidArgument
from switchyard.domain.keys import check_environment_name, check_key, check_template_name
from switchyard.domain.models import Template
from switchyard.domain.values import check_value_size

MAX_TEMPLATE_KEYS = 1000
# What the columns of pf_config_templates hold, in characters.
_TEXT_LIMITS = {
    "template_type": 50,
    "description": 1000,
    "suitable_scale": 50,
    "version": 20,
    "author": 100,
    "team": 100,
}


def check_template(template: Template) -> None:
    """A template about to be saved: a valid name, a type, between 1 and 1000 valid keys
    whose values each fit the value size limit, valid environment names, and text that
    fits its column. Raises InvalidArgument listing every violation, on `template.*`."""
    violations: list[FieldViolation] = []

    def collect(check: Callable[..., object], *args: object) -> None:
        try:
            check(*args)
        except InvalidArgument as error:
            violations.extend(error.violations)

    collect(check_template_name, template.name, "template.name")
    if not template.template_type:
        violations.append(FieldViolation("template.template_type", "is required"))
    for name, limit in _TEXT_LIMITS.items():
        text = getattr(template, name)
        if text and len(text) > limit:
            violations.append(
                FieldViolation(
                    f"template.{name}", f"must be at most {limit} characters; got {len(text)}"
                )
            )
    if not template.config_values:
        violations.append(FieldViolation("template.config_values", "must set at least one key"))
    elif len(template.config_values) > MAX_TEMPLATE_KEYS:
        violations.append(
            FieldViolation(
                "template.config_values",
                f"may set at most {MAX_TEMPLATE_KEYS} keys; got {len(template.config_values)}",
            )
        )
    for key, value in template.config_values.items():
        collect(check_key, key, f"template.config_values.{key}")
        collect(check_value_size, value, f"template.config_values.{key}")
    for index, name in enumerate(template.suitable_environments):
        collect(check_environment_name, name, f"template.suitable_environments[{index}]")
    if violations:
        raise InvalidArgument(
            "; ".join(f"{v.field}: {v.description}" for v in violations), violations
        )


__all__ = ["MAX_TEMPLATE_KEYS", "check_template"]
