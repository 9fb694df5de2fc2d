"""Demo keys for a new embedded database, written through the use cases so that they have
their history like any other change."""

from __future__ import annotations

from switchyard.domain.models import (
    ChangeKind,
    ConfigDefinition,
    ConfigType,
    HistoryQuery,
    PageRequest,
    Principal,
    Validation,
)
from switchyard.service.config import ConfigService
from switchyard.service.context import WriteContext

DEMO_KEYS: tuple[ConfigDefinition, ...] = (
    ConfigDefinition(
        key="api.timeout",
        type=ConfigType.NUMBER,
        category="api",
        display_name="API timeout (seconds)",
        description="How long a call to an upstream API may take before it is abandoned.",
        value=30,
        default_value=30,
        validation=Validation(min_value=1, max_value=300),
    ),
    ConfigDefinition(
        key="api.base_url",
        type=ConfigType.URL,
        category="api",
        description="Where the public API is served.",
        value="https://api.example.com",
    ),
    ConfigDefinition(
        key="features.maintenance_mode",
        type=ConfigType.BOOLEAN,
        category="operations",
        description="Serve a maintenance page instead of the application.",
        value=False,
        default_value=False,
    ),
    ConfigDefinition(
        key="cache.ttl",
        type=ConfigType.DURATION,
        category="cache",
        description="How long cached pages live.",
        value="5m",
    ),
    ConfigDefinition(
        key="jobs.cleanup_schedule",
        type=ConfigType.CRON,
        category="jobs",
        description="When the nightly clean-up job runs.",
        value="0 3 * * *",
        requires_restart=True,
    ),
    ConfigDefinition(
        key="support.email",
        type=ConfigType.EMAIL,
        category="support",
        description="Where users write for help.",
        value="support@example.com",
    ),
)

DEMO_OVERRIDES: tuple[tuple[str, str, int], ...] = (("api.timeout", "production", 60),)


ACCESS_KINDS = (ChangeKind.TOKEN, ChangeKind.USER)
"""Changes that are not configuration: who may call (the first token is made before the
first start, offline: `switchyard token create`)."""


async def seed_demo(service: ConfigService, actor: Principal) -> int:
    """Creates the demo keys when the database holds no configuration yet: its history
    records nothing but tokens and users. So the documented first steps give the same
    database in either order (the first token, then the first start; or the other way),
    and a database whose keys were all deleted does not get them back. Returns how many
    keys it created (0 on any later start)."""
    configuration = tuple(kind for kind in ChangeKind if kind not in ACCESS_KINDS)
    recorded, _ = await service.get_history(HistoryQuery(kinds=configuration), PageRequest(size=1))
    if recorded.items:
        return 0
    ctx = WriteContext(actor=actor, reason="demo data for a new embedded database")
    for definition in DEMO_KEYS:
        await service.create_config(definition, ctx)
    for key, environment, value in DEMO_OVERRIDES:
        await service.set_value(key, value, environment, ctx)
    return len(DEMO_KEYS)


__all__ = ["DEMO_KEYS", "seed_demo"]
