"""Value objects of the configuration domain. Pure data: no I/O, no gRPC, no SQL."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeAlias, TypeVar

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None
"""A value as JSON sees it. `None` (JSON null) means "no value" in every layer."""

T = TypeVar("T")

DEFAULT_PRIORITY = 100
DEFAULT_CACHE_TTL_SECONDS = 300


class ConfigType(enum.StrEnum):
    """The type every value of a key must have (the spec's `config_type`)."""

    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    JSON = "json"
    ARRAY = "array"
    DATE = "date"
    URL = "url"
    EMAIL = "email"
    DURATION = "duration"
    CRON = "cron"


class ValueSource(enum.StrEnum):
    """Which layer answered a read."""

    OVERRIDE = "override"
    INHERITED_OVERRIDE = "inherited_override"
    BASE = "base"
    DEFAULT = "default"
    NONE = "none"


class HistoryAction(enum.StrEnum):
    """What a recorded change did (the spec's `chk_history_action`)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    ENABLE = "enable"
    DISABLE = "disable"
    ROLLBACK = "rollback"
    PROPOSE = "propose"
    APPROVE = "approve"
    REJECT = "reject"
    REVOKE = "revoke"


class ChangeKind(enum.StrEnum):
    """The kind of object a change touched; watchers filter on it."""

    CONFIG = "config"
    FLAG = "flag"
    RATE_LIMIT = "rate_limit"
    ENVIRONMENT = "environment"
    TEMPLATE = "template"
    MAINTENANCE_WINDOW = "maintenance_window"
    TOKEN = "token"
    USER = "user"
    CHANGE_REQUEST = "change_request"


@dataclass(frozen=True, slots=True)
class Validation:
    """Constraints on every value of a key."""

    min_value: float | None = None
    max_value: float | None = None
    regex_pattern: str | None = None
    allowed_values: tuple[JSONValue, ...] = ()
    depends_on: tuple[str, ...] = ()
    conflicts_with: tuple[str, ...] = ()
    validation_rule: str | None = None


@dataclass(frozen=True, slots=True)
class ConfigDefinition:
    """One key of `pf_system_config`: its type, constraints, metadata and base value."""

    key: str
    type: ConfigType
    category: str
    subcategory: str | None = None
    display_name: str | None = None
    description: str | None = None
    help_text: str | None = None
    value: JSONValue = None
    default_value: JSONValue = None
    validation: Validation = field(default_factory=Validation)
    is_required: bool = False
    is_sensitive: bool = False
    is_encrypted: bool = False
    is_active: bool = True
    is_editable: bool = True
    is_deletable: bool = True
    requires_restart: bool = False
    cache_ttl_seconds: int = DEFAULT_CACHE_TTL_SECONDS
    version: int = 1
    id: str = ""
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


@dataclass(frozen=True, slots=True)
class Override:
    """A value of a key in one environment (`pf_environment_config`).

    Several overrides of one key may exist in one environment at different priorities;
    the active, unexpired one of the highest priority applies.
    """

    key: str
    environment: str
    value: JSONValue
    priority: int = DEFAULT_PRIORITY
    is_active: bool = True
    expires_at: datetime | None = None
    reason: str | None = None
    id: str = ""
    base_config_id: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    starts_at: datetime | None = None
    """A scheduled override stays inactive until then; the scheduler activates it."""
    revert_to_value: JSONValue = None
    approved_by: str | None = None
    """Who approved the change request that wrote it (`override_approved_by`)."""
    """For a temporary override that replaced a standing one at the same priority: the
    value the row returns to when it expires (None: the row goes away)."""

    @property
    def is_temporary(self) -> bool:
        return self.expires_at is not None

    def applies_at(self, now: datetime) -> bool:
        """Active, started and not expired at `now`."""
        return (
            self.is_active
            and (self.starts_at is None or self.starts_at <= now)
            and (self.expires_at is None or self.expires_at > now)
        )


@dataclass(frozen=True, slots=True)
class Environment:
    """A named layer of overrides; `parent` is the environment it inherits from."""

    name: str
    parent: str | None = None
    description: str | None = None
    protected: bool | None = None
    """Whether a write reaching it needs a second person's approval; None in an upsert
    keeps what the environment had (a new one is not protected)."""


@dataclass(frozen=True, slots=True)
class Grant:
    """A role held within a scope: everywhere, or only in some environments and for keys
    starting with some prefixes (the way etcd grants a role a key range). Empty tuples
    mean no narrowing."""

    role: str
    environments: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a call: the identity every history row records, and what it may do."""

    user_id: str
    username: str
    role: str
    """The role history rows name (the strongest one the caller holds)."""
    address: str | None = None
    grants: tuple[Grant, ...] | None = None
    """What the caller may do; None for the trusted callers of an unauthenticated server
    and for Switchyard's own automatic changes, which may do everything."""


@dataclass(frozen=True, slots=True)
class User:
    """A row of `pf_users`."""

    id: str
    username: str
    role: str
    display_name: str | None = None
    email: str | None = None
    is_active: bool = True
    created_at: datetime | None = None
    grants: tuple[Grant, ...] | None = None
    """What the user may do when signing in with a client certificate; None (a token's
    owner, the seeded users) or none at all: it may not sign in that way."""


class ChangeRequestStatus(enum.StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A row of `pf_api_tokens`: what a bearer token lets its holder do. The token itself
    is never stored; `token_hash` is its SHA-256."""

    id: str
    token_hash: str
    token_hint: str
    user_id: str
    username: str
    grants: tuple[Grant, ...]
    description: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """A row of `pf_change_requests`: a write to a protected environment waiting for a
    second person. `request` is the write RPC's message as JSON (proto3 JSON mapping)."""

    id: str
    status: ChangeRequestStatus
    kind: ChangeKind
    key: str
    environment: str | None
    method: str
    request: dict[str, JSONValue]
    content_digest: str
    base_revision: int
    proposed_by: str
    proposed_at: datetime
    reason: str | None = None
    ticket: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    approval_ticket: str | None = None
    applied_revision: int | None = None
    version: int = 1


@dataclass(frozen=True, slots=True)
class Approval:
    """A change request being applied by someone other than its proposer: recorded on
    the rows of the change, and closing the request in the same transaction."""

    request: ChangeRequest
    approver: Principal
    at: datetime
    reason: str | None = None
    ticket: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """A change to record in the history, before it has a revision."""

    kind: ChangeKind
    table_name: str
    record_id: str
    key: str
    environment: str | None
    action: HistoryAction
    old_value: JSONValue
    new_value: JSONValue
    value_diff: list[dict[str, JSONValue]]
    reason: str | None
    ticket: str | None
    changed_by: str
    changed_by_role: str | None
    client_address: str | None
    version: int | None = None
    priority: int | None = None
    rollback_available: bool = True
    """False for rows that record a definition (create, update of metadata, delete) rather
    than a value: `Rollback` steps over value changes only."""
    approved_by: str | None = None
    approval_ticket: str | None = None
    rows_after: dict[str, JSONValue] | None = None
    """The rows the change wrote, as it left them, by table name (None for a row it
    removed), where `old_value`/`new_value` hold a value rather than the whole row: an
    override's schedule and expiry, every row's stamps. Replaying them rebuilds the
    tables; rows recorded before it existed have none."""


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A recorded change (`pf_config_history`). Rows of one transaction share a revision."""

    id: str
    revision: int
    change_index: int
    kind: ChangeKind
    table_name: str
    record_id: str
    key: str
    environment: str | None
    action: HistoryAction
    old_value: JSONValue
    new_value: JSONValue
    value_diff: list[dict[str, JSONValue]]
    reason: str | None
    ticket: str | None
    changed_by: str
    changed_by_role: str | None
    client_address: str | None
    changed_at: datetime
    version: int | None = None
    priority: int | None = None
    rollback_available: bool = True
    approved_by: str | None = None
    approval_ticket: str | None = None
    rows_after: dict[str, JSONValue] | None = None
    changed_by_username: str | None = None
    """The username of `changed_by`, where the read looked it up (GetHistory does)."""
    approved_by_username: str | None = None


@dataclass(frozen=True, slots=True)
class Template:
    """A named set of values applied together (`pf_config_templates`)."""

    name: str
    template_type: str
    config_values: dict[str, JSONValue]
    description: str | None = None
    feature_flags: dict[str, JSONValue] | None = None
    rate_limits: dict[str, JSONValue] | None = None
    suitable_environments: tuple[str, ...] = ()
    suitable_scale: str | None = None
    prerequisites: tuple[str, ...] = ()
    version: str | None = None
    is_default: bool = False
    is_active: bool = True
    usage_count: int = 0
    author: str | None = None
    team: str | None = None
    id: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ResolvedValue:
    """The effective value of a key in an environment, and where it came from."""

    key: str
    value: JSONValue
    type: ConfigType
    source: ValueSource
    source_environment: str | None
    version: int
    requires_restart: bool
    expires_at: datetime | None = None
    sensitive: bool = False
    """The key is marked sensitive: callers without the `reveal` permission see it masked."""


class WindowState(enum.StrEnum):
    """Whether a maintenance window's values are applied right now."""

    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """Values of several keys in one environment that apply together for a while: once
    (`starts_at` to `ends_at`) or whenever `schedule_cron` fires, for `duration_seconds`.

    `state` and `window_start` are the scheduler's record of what it has applied: open
    with the start of the window it opened, or closed."""

    name: str
    environment: str
    config_values: dict[str, JSONValue]
    description: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    schedule_cron: str | None = None
    duration_seconds: int | None = None
    is_active: bool = True
    state: WindowState = WindowState.CLOSED
    window_start: datetime | None = None
    version: int = 1
    id: str = ""
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None

    @property
    def is_recurring(self) -> bool:
        return self.schedule_cron is not None


# --- queries and pages --------------------------------------------------------------

BASE_LAYER = "-"
"""History filter naming the base layer (no environment)."""


@dataclass(frozen=True, slots=True)
class PageRequest:
    """`cursor` is opaque: whatever the repository put in `Page.next_cursor`."""

    size: int
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class ConfigQuery:
    category: str | None = None
    subcategory: str | None = None
    key_prefix: str | None = None
    include_inactive: bool = False


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """`environment`: None for every layer, BASE_LAYER for the base layer only."""

    key: str | None = None
    environment: str | None = None
    after_revision: int = 0
    kinds: tuple[ChangeKind, ...] = ()


__all__ = [
    "BASE_LAYER",
    "DEFAULT_CACHE_TTL_SECONDS",
    "DEFAULT_PRIORITY",
    "Change",
    "ChangeKind",
    "ConfigDefinition",
    "ConfigQuery",
    "ConfigType",
    "Environment",
    "HistoryAction",
    "HistoryEntry",
    "HistoryQuery",
    "JSONValue",
    "MaintenanceWindow",
    "Override",
    "Page",
    "PageRequest",
    "Principal",
    "ResolvedValue",
    "Template",
    "User",
    "Validation",
    "ValueSource",
    "WindowState",
]
