"""Which layer answers a read: overrides along the environment chain, then the base value,
then the default."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from switchyard.domain.models import ConfigDefinition, Override, ResolvedValue, ValueSource


def resolve(
    definition: ConfigDefinition,
    overrides: Sequence[Override],
    chain: Sequence[str],
    now: datetime,
) -> ResolvedValue:
    """The effective value of a key in `chain[0]` (the base layer when `chain` is empty).

    In each environment of the chain, the applying override of the highest priority
    answers; an override holding no value falls through to the next layer."""
    for depth, environment in enumerate(chain):
        candidates = [
            o
            for o in overrides
            if o.environment == environment and o.value is not None and o.applies_at(now)
        ]
        if candidates:
            winner = max(candidates, key=lambda o: o.priority)
            return ResolvedValue(
                key=definition.key,
                value=winner.value,
                type=definition.type,
                source=ValueSource.OVERRIDE if depth == 0 else ValueSource.INHERITED_OVERRIDE,
                source_environment=environment,
                version=definition.version,
                requires_restart=definition.requires_restart,
                expires_at=winner.expires_at,
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
    )


def next_expiry(
    overrides: Sequence[Override], chain: Sequence[str], now: datetime
) -> datetime | None:
    """The earliest moment after `now` at which an override along `chain` stops applying:
    an answer cached now must not outlive it."""
    moments = [
        o.expires_at
        for o in overrides
        if o.expires_at is not None
        and o.is_active
        and o.environment in chain
        and o.expires_at > now
    ]
    return min(moments, default=None)


__all__ = ["next_expiry", "resolve"]
