"""Which layer answers a read: overrides along the environment chain, then the base value,
then the default."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from switchyard.domain.models import ConfigDefinition, Override, ResolvedValue, ValueSource


def _rank(override: Override) -> tuple[int, float, str]:
    """Priority first; between equal priorities the most recently written wins, then the
    id, so two replicas reading the same rows always give the same answer."""
    written = override.updated_at or override.created_at
    return (override.priority, written.timestamp() if written else -math.inf, override.id)


def _winner(overrides: Sequence[Override], environment: str, now: datetime) -> Override | None:
    candidates = [
        o
        for o in overrides
        if o.environment == environment and o.value is not None and o.applies_at(now)
    ]
    return max(candidates, key=_rank, default=None)


def resolve(
    definition: ConfigDefinition,
    overrides: Sequence[Override],
    chain: Sequence[str],
    now: datetime,
) -> ResolvedValue:
    """The effective value of a key in `chain[0]` (the base layer when `chain` is empty).

    `chain` is `ancestry(...)` of the environment asked for. In each environment along
    it, the override of the highest priority that applies at `now` (active, not expired)
    answers: OVERRIDE in `chain[0]`, INHERITED_OVERRIDE further up. An override holding
    no value does not answer, so the read falls through to the next layer. Then the base
    value (BASE), then the default (DEFAULT), then nothing (NONE, value None).
    `overrides` may hold any key's overrides in any environment; only those of
    environments in `chain` count. Raises nothing."""
    for depth, environment in enumerate(chain):
        winner = _winner(overrides, environment, now)
        if winner is not None:
            return ResolvedValue(
                key=definition.key,
                value=winner.value,
                type=definition.type,
                source=ValueSource.OVERRIDE if depth == 0 else ValueSource.INHERITED_OVERRIDE,
                source_environment=environment,
                version=definition.version,
                requires_restart=definition.requires_restart,
                expires_at=winner.expires_at,
                sensitive=definition.is_sensitive or definition.is_encrypted,
            )
    if definition.value is not None:
        source, value = ValueSource.BASE, definition.value
    elif definition.default_value is not None:
        source, value = ValueSource.DEFAULT, definition.default_value
    else:
        source, value = ValueSource.NONE, None
    return ResolvedValue(
        key=definition.key,
        value=value,
        type=definition.type,
        source=source,
        source_environment=None,
        version=definition.version,
        requires_restart=definition.requires_restart,
        sensitive=definition.is_sensitive or definition.is_encrypted,
    )


def next_expiry(
    overrides: Sequence[Override], chain: Sequence[str], now: datetime
) -> datetime | None:
    """The earliest `expires_at` after `now` among active overrides of environments in
    `chain`, or None. When one expires the answer may change (to a lower priority, a
    parent's or the base value), so an answer cached now must not outlive it. Conservative:
    it counts overrides that do not answer at the moment too."""
    chain_set = set(chain)
    moments = [
        o.expires_at
        for o in overrides
        if o.expires_at is not None
        and o.is_active
        and o.environment in chain_set
        and o.expires_at > now
    ]
    return min(moments, default=None)


__all__ = ["next_expiry", "resolve"]
