"""Masking the values of sensitive keys for callers without the `reveal` permission.
A key marked is_encrypted is sensitive too: its values are secret enough to seal.

Done at the edge, on what a response carries, so that every path out (values,
definitions, overrides, history, rollbacks, template results, watch events) goes
through one of these functions. A masked value is the string `MASKED`: it keeps the
field present, and cannot be mistaken for a real value of any other type.
"""

from __future__ import annotations

from dataclasses import replace

from switchyard.domain.access import Permission, Target, holds
from switchyard.domain.models import (
    ConfigDefinition,
    HistoryEntry,
    JSONValue,
    Override,
    Principal,
    ResolvedValue,
)

MASKED = "********"


def reveals(principal: Principal, key: str, environment: str | None = None) -> bool:
    return holds(principal, Permission.REVEAL, Target(environment, key))


def masked(value: JSONValue) -> JSONValue:
    return None if value is None else MASKED


def resolved(principal: Principal, value: ResolvedValue) -> ResolvedValue:
    if not value.sensitive or reveals(principal, value.key, value.source_environment):
        return value
    return replace(value, value=masked(value.value))


def definition(principal: Principal, config: ConfigDefinition) -> ConfigDefinition:
    if not (config.is_sensitive or config.is_encrypted) or reveals(principal, config.key):
        return config
    return replace(config, value=masked(config.value), default_value=masked(config.default_value))


def override(principal: Principal, item: Override) -> Override:
    if reveals(principal, item.key, item.environment):
        return item
    return replace(item, value=masked(item.value), revert_to_value=masked(item.revert_to_value))


def history(principal: Principal, entry: HistoryEntry, sensitive: frozenset[str]) -> HistoryEntry:
    """A history row of a sensitive key loses its values and its diff (which would
    spell the values out)."""
    if entry.key not in sensitive or reveals(principal, entry.key, entry.environment):
        return entry
    return replace(
        entry,
        old_value=_masked_document(entry.old_value),
        new_value=_masked_document(entry.new_value),
        value_diff=[],
    )


def _masked_document(value: JSONValue) -> JSONValue:
    # A definition row records the whole definition: only its values are secret.
    if isinstance(value, dict):
        return {
            name: masked(item) if name in _VALUE_FIELDS else item for name, item in value.items()
        }
    return masked(value)


_VALUE_FIELDS = frozenset({"value", "default_value", "config_value", "revert_to_value"})

__all__ = ["MASKED", "definition", "history", "masked", "override", "resolved", "reveals"]
