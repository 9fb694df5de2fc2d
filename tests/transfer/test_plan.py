"""The writes a plan is made of, worked out from a document and a server's state (no
server here: the e2e tests in tests/cli run the plans against real ones): nothing the
server already holds is written, a key's values come before the state that locks them,
related objects share a unit, and pieces never split a unit."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from switchyard.gen.v1 import config_pb2 as pb
from switchyard.transfer.document import DocumentError, State, load_document, state_from_document
from switchyard.transfer.plan import ENVIRONMENTS, Write, document_writes, pieces


def document(**sections: list[dict[str, Any]]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": 1,
        "environments": [],
        "configs": [],
        "flags": [],
        "rate_limits": [],
        "templates": [],
    }
    base.update(sections)
    return base


def key(name: str, value: float = 1, **fields: Any) -> dict[str, Any]:
    item = {"key": name, "type": "CONFIG_TYPE_NUMBER", "category": "x", "value": value}
    item.update(is_active=True, is_editable=True, is_deletable=True)
    item.update(fields)
    return item


RICH = document(
    environments=[{"name": "qa", "parent": "staging"}, {"name": "staging"}],
    configs=[
        key(
            "a.read_only",
            is_editable=False,
            overrides=[{"environment": "qa", "value": 2, "is_active": True}],
        ),
        key(
            "a.retired",
            is_active=False,
            overrides=[{"environment": "qa", "value": 3, "is_active": True}],
        ),
        key("b.dependent", validation={"depends_on": ["b.needed"]}),
        key("b.needed"),
    ],
    flags=[
        {"key": "new_ui", "name": "New", "prerequisite_features": ["base_ui"]},
        {"key": "base_ui", "name": "Base"},
    ],
    rate_limits=[
        {"key": "api.child", "name": "child", "inherit_from": "api.base"},
        {"key": "api.base", "name": "base", "max_requests": 10, "time_window_seconds": 60},
    ],
)


def plan(wanted: dict[str, Any], state: State, *, prune: bool = False) -> list[Write]:
    return document_writes(wanted, state, prune=prune).writes


def described(writes: list[Write]) -> list[tuple[str, str, str]]:
    return [(w.kind, w.name, str(w.write.WhichOneof("write"))) for w in writes]


def test_what_the_server_holds_as_the_document_says_is_not_written() -> None:
    assert plan(RICH, state_from_document(RICH), prune=True) == []


def test_an_empty_server_gets_parents_first_and_locks_after_values() -> None:
    writes = plan(RICH, State())
    assert [w.name for w in writes if w.kind == "environment"] == ["staging", "qa"]
    assert all(w.unit == ENVIRONMENTS for w in writes if w.kind == "environment")
    read_only = [
        (w.name, w.write.WhichOneof("write")) for w in writes if w.name.startswith("a.read_only")
    ]
    assert read_only == [
        ("a.read_only", "create_config"),  # editable while its values are written
        ("a.read_only@qa", "set_value"),
        ("a.read_only", "update_config"),  # then read-only, as the document says
    ]
    created = next(w.write.create_config.config for w in writes if w.name == "a.read_only")
    assert created.is_editable and created.is_active
    lock = [w.write.update_config for w in writes if w.write.HasField("update_config")]
    assert [(u.config.key, list(u.update_mask.paths)) for u in lock] == [
        ("a.read_only", ["is_active", "is_editable"]),
        ("a.retired", ["is_active", "is_editable"]),
    ]
    assert [w.name for w in writes if w.kind == "flag"] == ["base_ui", "new_ui"]
    assert [w.name for w in writes if w.kind == "rate_limit"] == ["api.base", "api.child"]


def test_a_key_locked_on_the_server_without_new_values_is_only_described() -> None:
    held = state_from_document(RICH)
    changed = document(configs=[dict(RICH["configs"][0], description="now documented")])
    (write,) = plan(changed, held)
    assert write.write.WhichOneof("write") == "update_config"
    assert write.write.update_config.config.description == "now documented"
    assert not write.write.update_config.config.is_editable  # no unlock: no values


def test_related_objects_share_a_unit_and_pieces_never_split_one() -> None:
    writes = plan(RICH, State())
    units: dict[str, int] = {w.name.partition("@")[0]: w.unit for w in writes}
    assert units["b.dependent"] == units["b.needed"]
    assert units["base_ui"] == units["new_ui"]
    assert units["api.base"] == units["api.child"]
    assert len({units["a.read_only"], units["a.retired"], units["b.needed"]}) == 3
    assert [w.name for w in writes if w.unit == units["b.needed"]] == ["b.needed", "b.dependent"]

    for size in (1, 2, 3, 5, 100):
        cut = pieces(writes, size=size)
        assert [w for piece in cut for w in piece] == writes
        for piece in cut:
            unit_sizes = {u: sum(1 for w in writes if w.unit == u) for u in {w.unit for w in piece}}
            assert len(piece) <= size or len(unit_sizes) == 1
        starts = [piece[0].unit for piece in cut]
        ends = [piece[-1].unit for piece in cut]
        assert all(end != start for end, start in zip(ends, starts[1:], strict=False))


def test_a_relation_held_only_by_the_server_still_joins_the_unit() -> None:
    held = State(
        configs=[
            pb.ConfigDefinition(key="c.one", type=pb.CONFIG_TYPE_NUMBER, category="c"),
            pb.ConfigDefinition(key="c.two", type=pb.CONFIG_TYPE_NUMBER, category="c"),
        ]
    )
    held.configs[0].validation.conflicts_with.append("c.two")
    writes = plan(document(configs=[key("c.one"), key("c.two")]), held)
    assert len({w.unit for w in writes}) == 1


def test_a_document_naming_an_object_twice_is_refused_naming_both() -> None:
    twice = yaml.safe_dump(document(configs=[key("a.one"), key("a.two"), key("a.one", 5)]))
    with pytest.raises(DocumentError) as refused:
        load_document(twice)
    assert refused.value.problems == [
        "configs[2].key: 'a.one' again (first in configs[0]): name each once"
    ]


def test_a_document_of_format_1_keeps_its_retired_and_read_only_keys_as_they_were() -> None:
    """Before the booleans that default to true were `optional`, an export left false
    out (proto3's JSON omits a default): in a format-1 document a missing `is_active`,
    `is_editable` or `is_deletable` is false. Sent unset, the server would read it as
    true, and applying an old export would bring its retired keys back."""
    old_export = """
version: 1
configs:
- key: a.retired
  type: CONFIG_TYPE_NUMBER
  category: x
  value: 1
  is_editable: true
  is_deletable: true
  overrides:
  - environment: qa
    value: 2
- key: a.read_only
  type: CONFIG_TYPE_STRING
  category: x
  is_active: true
templates:
- name: paused
  template_type: ops
"""
    state = state_from_document(load_document(old_export))
    retired, read_only = state.configs
    assert said(retired) == {"is_active": False, "is_editable": True, "is_deletable": True}
    assert said(read_only) == {"is_active": True, "is_editable": False, "is_deletable": False}
    (override,) = state.overrides["a.retired"]
    assert override.HasField("is_active") and not override.is_active
    (template,) = state.templates
    assert template.HasField("is_active") and not template.is_active


def test_a_document_of_the_current_format_leaves_a_missing_boolean_to_its_default() -> None:
    current = load_document(
        yaml.safe_dump(
            {"version": 2, "configs": [{"key": "a.plain", "type": "CONFIG_TYPE_NUMBER",
                                        "category": "x"}]}
        )
    )  # fmt: skip
    (plain,) = state_from_document(current).configs
    assert said(plain) == {}  # unset: the server reads each as true


def said(config: pb.ConfigDefinition) -> dict[str, bool]:
    """The state booleans a definition sets explicitly."""
    names = ("is_active", "is_editable", "is_deletable")
    return {name: getattr(config, name) for name in names if config.HasField(name)}
