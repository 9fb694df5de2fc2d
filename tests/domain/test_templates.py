"""Templates are checked whole before they are saved: every problem at once, on its field."""

from __future__ import annotations

import pytest

from switchyard.domain.errors import InvalidArgument
from switchyard.domain.models import Template
from switchyard.domain.templates import MAX_TEMPLATE_KEYS, check_template
from switchyard.domain.values import MAX_VALUE_BYTES


def template(**fields: object) -> Template:
    values: dict[str, object] = {
        "name": "high-traffic",
        "template_type": "scale",
        "config_values": {"api.timeout": 10},
    }
    values.update(fields)
    return Template(**values)  # type: ignore[arg-type]


def violations(candidate: Template) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as refused:
        check_template(candidate)
    return {v.field: v.description for v in refused.value.violations}


def test_a_good_template_passes() -> None:
    check_template(
        template(
            description="d" * 1000,
            suitable_environments=("production",),
            version="1" * 20,
            author="a" * 100,
            team="t" * 100,
            suitable_scale="s" * 50,
        )
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "bad name!"}, "template.name"),
        ({"template_type": ""}, "template.template_type"),
        ({"template_type": "t" * 51}, "template.template_type"),
        ({"description": "d" * 1001}, "template.description"),
        ({"version": "v" * 21}, "template.version"),
        ({"author": "a" * 101}, "template.author"),
        ({"team": "t" * 101}, "template.team"),
        ({"suitable_scale": "s" * 51}, "template.suitable_scale"),
        ({"config_values": {}}, "template.config_values"),
        ({"config_values": {"BAD KEY": 1}}, "template.config_values.BAD KEY"),
        ({"config_values": {"big": "x" * MAX_VALUE_BYTES}}, "template.config_values.big"),
        ({"suitable_environments": ("Prod!",)}, "template.suitable_environments[0]"),
    ],
)
def test_each_problem_is_named_on_its_field(fields: dict[str, object], field: str) -> None:
    assert field in violations(template(**fields))


def test_too_many_keys_and_every_problem_at_once() -> None:
    found = violations(
        template(
            name="",
            template_type="",
            config_values={f"k{i}": i for i in range(MAX_TEMPLATE_KEYS + 1)},
        )
    )

    assert {"template.name", "template.template_type", "template.config_values"} <= set(found)
    assert "at most 1000 keys" in found["template.config_values"]
