"""Templates: named sets of values, checked before they are saved."""

from __future__ import annotations

from switchyard.domain.errors import Violations
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
    found = Violations()
    found.check(check_template_name, template.name, "template.name")
    if not template.template_type:
        found.add("template.template_type", "is required")
    for name, limit in _TEXT_LIMITS.items():
        text = getattr(template, name)
        if text and len(text) > limit:
            found.add(f"template.{name}", f"must be at most {limit} characters; got {len(text)}")
    if not template.config_values:
        found.add("template.config_values", "must set at least one key")
    elif len(template.config_values) > MAX_TEMPLATE_KEYS:
        found.add(
            "template.config_values",
            f"may set at most {MAX_TEMPLATE_KEYS} keys; got {len(template.config_values)}",
        )
    for key, value in template.config_values.items():
        found.check(check_key, key, f"template.config_values.{key}")
        found.check(check_value_size, value, f"template.config_values.{key}")
    for index, name in enumerate(template.suitable_environments):
        found.check(check_environment_name, name, f"template.suitable_environments[{index}]")
    found.raise_any()


__all__ = ["MAX_TEMPLATE_KEYS", "check_template"]
