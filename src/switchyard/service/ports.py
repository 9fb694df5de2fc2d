"""What the service layer needs of storage: one Protocol per aggregate.

`switchyard.store` implements these for SQLite and Oracle; the service layer never sees
SQL or a driver. Methods named `get_*` raise `NotFound`; `find_*` return None instead.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from switchyard.domain.flags import FeatureFlag, FlagQuery
from switchyard.domain.integrity import Spine, Violation
from switchyard.domain.limits import CountRequest, CountResult, RateLimit, RateLimitQuery
from switchyard.domain.models import (
    ApiToken,
    Change,
    ChangeKind,
    ChangeRequest,
    ChangeRequestStatus,
    ConfigDefinition,
    ConfigQuery,
    Environment,
    HistoryEntry,
    HistoryQuery,
    MaintenanceWindow,
    Override,
    Page,
    PageRequest,
    Template,
    User,
)


class ConfigRepository(Protocol):
    async def find_config(self, key: str) -> ConfigDefinition | None: ...

    async def get_config(self, key: str) -> ConfigDefinition:
        """Raises NotFound."""
        ...

    async def get_configs(self, keys: Sequence[str]) -> dict[str, ConfigDefinition]:
        """The definitions that exist among `keys`, by key (missing keys left out)."""
        ...

    async def list_configs(self, query: ConfigQuery, page: PageRequest) -> Page[ConfigDefinition]:
        """In key order. Raises InvalidArgument for a cursor it did not issue."""
        ...

    async def create_config(self, config: ConfigDefinition) -> None:
        """Inserts the row (`config.id` set by the caller). Raises AlreadyExists."""
        ...

    async def update_config(self, config: ConfigDefinition, *, expected_version: int) -> None:
        """Writes every column of `config` (including `version`) where the stored row is
        still at `expected_version`. Raises Conflict when it is not, NotFound when the
        key is gone."""
        ...

    async def delete_config(self, key: str) -> None:
        """Deletes the definition and every override of it. Raises NotFound."""
        ...


class OverrideRepository(Protocol):
    async def list_overrides(
        self, key: str, environments: Sequence[str] | None = None
    ) -> list[Override]:
        """Every override of `key` (active or not, expired or not), optionally only in
        `environments`; ordered by environment, then priority descending."""
        ...

    async def list_overrides_for_keys(
        self, keys: Sequence[str], environments: Sequence[str]
    ) -> list[Override]:
        """Every override of any of `keys` in any of `environments` (batch reads)."""
        ...

    async def all_overrides(self) -> list[Override]:
        """Every override of every key."""
        ...

    async def find_override(self, key: str, environment: str, priority: int) -> Override | None: ...

    async def upsert_override(self, override: Override) -> None:
        """Inserts or replaces the override at (environment, key, priority). `override.id`
        is kept on update and used on insert."""
        ...

    async def delete_override(self, override_id: str) -> None: ...

    async def due_overrides(self, now: datetime) -> list[Override]:
        """Scheduled overrides whose start has come (still inactive) and temporary ones
        whose end has come, by `now`."""
        ...

    async def next_scheduled_change(self, now: datetime) -> datetime | None:
        """The earliest moment after `now` at which an override starts or expires."""
        ...


class EnvironmentRepository(Protocol):
    async def list_environments(self) -> list[Environment]:
        """Ordered by name."""
        ...

    async def upsert_environment(
        self, environment: Environment, *, now: datetime | None = None
    ) -> None:
        """`now` stamps the row (the store's clock when None)."""
        ...


class HistoryRepository(Protocol):
    async def append(
        self, revision: int, changes: Sequence[Change], *, first_index: int = 0
    ) -> list[HistoryEntry]:
        """Records `changes` under `revision`, numbered 0.. in order (change_index)."""
        ...

    async def list_history(self, query: HistoryQuery, page: PageRequest) -> Page[HistoryEntry]:
        """Newest first (revision, then change_index, descending)."""
        ...

    async def layer_history(
        self, key: str, environment: str | None, *, offset: int, limit: int
    ) -> list[HistoryEntry]:
        """Value changes (change_kind 'config', `rollback_available` set) of one layer of
        one key (`environment` None: the base layer), newest first. For rollback."""
        ...

    async def history_after(
        self, after_revision: int, limit: int, *, after_index: int | None = None
    ) -> list[HistoryEntry]:
        """Rows after `after_revision`, oldest first (revision, then change_index), at
        most `limit`; with `after_index`, the rows of `after_revision` itself after that
        change_index too (reading on within a large revision)."""
        ...

    async def oldest_revision(self) -> int:
        """The lowest revision still held; 0 when the history is empty."""
        ...

    async def object_history(
        self, kind: ChangeKind, key: str, *, offset: int, limit: int
    ) -> list[HistoryEntry]:
        """Changes of one object (a flag, a rate limit) of `kind` named `key` made since
        it was last created (its `create` row included), newest first. For rollback."""
        ...


class TemplateRepository(Protocol):
    async def get_template(self, name: str) -> Template:
        """Raises NotFound."""
        ...

    async def list_templates(self, include_inactive: bool, page: PageRequest) -> Page[Template]:
        """In name order."""
        ...

    async def upsert_template(self, template: Template) -> bool:
        """Inserts or replaces by name; True when it was created."""
        ...

    async def increment_usage(self, name: str) -> None: ...


class WindowRepository(Protocol):
    async def find_window(self, name: str) -> MaintenanceWindow | None: ...

    async def get_window(self, name: str) -> MaintenanceWindow:
        """Raises NotFound."""
        ...

    async def list_windows(self) -> list[MaintenanceWindow]:
        """In name order."""
        ...

    async def upsert_window(self, window: MaintenanceWindow) -> bool:
        """Inserts or replaces by name; True when it was created."""
        ...

    async def delete_window(self, name: str) -> None:
        """Raises NotFound."""
        ...


class FlagRepository(Protocol):
    async def find_flag(self, key: str) -> FeatureFlag | None: ...

    async def get_flag(self, key: str) -> FeatureFlag:
        """Raises NotFound."""
        ...

    async def all_flags(self) -> list[FeatureFlag]:
        """Every flag, active or not, in key order: what evaluation holds in memory."""
        ...

    async def list_flags(self, query: FlagQuery, page: PageRequest) -> Page[FeatureFlag]:
        """In key order. Raises InvalidArgument for a cursor it did not issue."""
        ...

    async def create_flag(self, flag: FeatureFlag) -> None:
        """Inserts the row (`flag.id` set by the caller). Raises AlreadyExists."""
        ...

    async def update_flag(self, flag: FeatureFlag, *, expected_version: int) -> None:
        """Writes every definition column of `flag` (including `version`, not the
        evaluation counters) where the stored row is still at `expected_version`. Raises
        Conflict when it is not, NotFound when the key is gone."""
        ...

    async def delete_flag(self, key: str) -> None:
        """Raises NotFound."""
        ...

    async def record_evaluations(self, counts: Mapping[str, tuple[int, datetime]]) -> None:
        """Adds each flag's count of evaluations to `evaluation_count` and moves
        `last_evaluated` forward to the given time (never back). Flags that are gone are
        ignored. Changes neither `version` nor `updated_at`: counting is not a change."""
        ...


class RateLimitRepository(Protocol):
    async def find_limit(self, key: str) -> RateLimit | None: ...

    async def get_limit(self, key: str) -> RateLimit:
        """Raises NotFound."""
        ...

    async def all_limits(self) -> list[RateLimit]:
        """Every limit, active or not, in key order: what decisions hold in memory."""
        ...

    async def list_limits(self, query: RateLimitQuery, page: PageRequest) -> Page[RateLimit]:
        """In key order. Raises InvalidArgument for a cursor it did not issue."""
        ...

    async def create_limit(self, limit: RateLimit) -> None:
        """Inserts the row (`limit.id` set by the caller). Raises AlreadyExists."""
        ...

    async def update_limit(self, limit: RateLimit, *, expected_version: int) -> None:
        """Writes every definition column of `limit` (including `version`, not the trigger
        counters) where the stored row is still at `expected_version`. Raises Conflict
        when it is not, NotFound when the key is gone."""
        ...

    async def delete_limit(self, key: str) -> None:
        """Raises NotFound."""
        ...

    async def record_triggers(self, counts: Mapping[str, tuple[int, datetime]]) -> None:
        """Adds each limit's count of requests over it to `trigger_count` and moves
        `last_triggered` forward to the given time (never back). Limits that are gone are
        ignored; `version` and `updated_at` stay: counting is not a change."""
        ...


class Counters(Protocol):
    """Where rate-limit counters live: Redis, shared by every replica, or this process."""

    async def hit(self, request: CountRequest) -> CountResult:
        """Counts `request.hits` and decides, atomically: N replicas together admit exactly
        what one would. Raises Unavailable when the counters cannot be reached."""
        ...

    async def close(self) -> None: ...


class UserRepository(Protocol):
    async def find_user(self, user_id: str) -> User | None: ...

    async def find_user_by_name(self, username: str) -> User | None: ...

    async def all_users(self) -> list[User]: ...

    async def usernames(self, user_ids: Collection[str]) -> dict[str, str]:
        """The username of each of `user_ids` that names a user, by id."""
        ...

    async def upsert_user(self, user: User) -> None: ...


class TokenRepository(Protocol):
    async def all_tokens(self) -> list[ApiToken]:
        """Every token, revoked and expired ones too."""
        ...

    async def find_token(self, token_id: str) -> ApiToken | None: ...

    async def insert_token(self, token: ApiToken) -> None: ...

    async def revoke_token(self, token: ApiToken) -> bool:
        """Records `token.revoked_at/_by`; False when it was revoked already."""
        ...


class ChangeRequestRepository(Protocol):
    async def find_request(self, request_id: str) -> ChangeRequest | None: ...

    async def list_requests(
        self, status: ChangeRequestStatus | None, limit: int
    ) -> list[ChangeRequest]:
        """Newest first."""
        ...

    async def all_requests(self) -> list[ChangeRequest]:
        """Every request, decided ones too."""
        ...

    async def insert_request(self, request: ChangeRequest) -> None: ...

    async def update_request(self, request: ChangeRequest, *, expected: ChangeRequest) -> bool:
        """Writes `request` if the stored one is still `expected` (pending, same version
        and content); False otherwise."""
        ...

    async def target_revision(self, kind: ChangeKind, key: str, environment: str | None) -> int:
        """The revision of the latest change to this object in this environment or in
        the layer every environment reads; 0 if none."""
        ...


class IntegrityRepository(Protocol):
    """What `switchyard verify` reads besides the repositories' rows."""

    async def spine(self) -> Spine: ...

    async def sealed_rows(self) -> tuple[int, list[Violation]]:
        """How many rows are sealed, and a violation for each that does not open with
        the configured keys."""
        ...

    async def guards(self) -> list[Violation]:
        """A violation for each trigger guarding the history that is missing or off."""
        ...


class Reader(Protocol):
    """A consistent, read-only view of the store."""

    @property
    def configs(self) -> ConfigRepository: ...
    @property
    def overrides(self) -> OverrideRepository: ...
    @property
    def environments(self) -> EnvironmentRepository: ...
    @property
    def history(self) -> HistoryRepository: ...
    @property
    def templates(self) -> TemplateRepository: ...
    @property
    def users(self) -> UserRepository: ...
    @property
    def windows(self) -> WindowRepository: ...
    @property
    def flags(self) -> FlagRepository: ...
    @property
    def limits(self) -> RateLimitRepository: ...
    @property
    def tokens(self) -> TokenRepository: ...
    @property
    def change_requests(self) -> ChangeRequestRepository: ...
    @property
    def integrity(self) -> IntegrityRepository: ...

    async def current_revision(self) -> int:
        """The revision of the last committed change; 0 on a new database."""
        ...


class Transaction(Reader, Protocol):
    """A read-write unit of work: everything done through it commits or rolls back
    together when its context exits."""

    async def allocate_revision(self) -> int:
        """Takes the next global revision for this transaction (the same one on every call
        within it). Revision order is commit order: the counter row stays locked until the
        transaction ends."""
        ...

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Runs `callback` once the transaction has committed (never if it rolls back),
        even when the caller is cancelled after COMMIT was sent."""
        ...

    @property
    def recorded(self) -> list[HistoryEntry]:
        """The history rows written in this transaction so far, in order
        (`recorded.record_history` adds them)."""
        ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A block whose writes (rows, history rows, after-commit callbacks) are undone
        alone when it raises; the transaction goes on."""
        ...


class Store(Protocol):
    """The database: hands out snapshots to read and transactions to write."""

    def read(self) -> AbstractAsyncContextManager[Reader]: ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """Commits when the block exits normally, rolls back when it raises. Inside a
        `batch`, it is the batch's transaction instead."""
        ...

    def batch(self) -> AbstractAsyncContextManager[Transaction]:
        """A transaction that the transactions opened inside the block (by the same
        task) join: their writes commit together, under one revision, or not at all."""
        ...

    async def close(self) -> None: ...


__all__ = [
    "ChangeRequestRepository",
    "ConfigRepository",
    "Counters",
    "EnvironmentRepository",
    "FlagRepository",
    "HistoryRepository",
    "IntegrityRepository",
    "OverrideRepository",
    "RateLimitRepository",
    "Reader",
    "Store",
    "TemplateRepository",
    "TokenRepository",
    "Transaction",
    "UserRepository",
    "WindowRepository",
]
