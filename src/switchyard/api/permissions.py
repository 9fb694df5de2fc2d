"""The one table of what every RPC needs: for each method Switchyard answers (its own
services, the flagd protocols, Envoy's rate-limit protocol), the permission and what the
call touches. The interceptor checks it before the handler runs, so a refused call
changes nothing. A method not in the table is refused (fail closed), whatever its
service; a test asks the running server which methods it answers and fails on one that
has no rule here.

`OPEN` lists the methods every caller may use without a rule: health and reflection.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from switchyard.domain.access import (
    EVERYTHING,
    Permission,
    Target,
    holds_anywhere,
    require,
    require_write,
)
from switchyard.domain.errors import PermissionDenied
from switchyard.domain.models import Principal

Targets = Callable[[Any], Sequence[Target]]


@dataclass(frozen=True, slots=True)
class Rule:
    permission: Permission
    targets: Targets | None = None
    """What the call touches, from its request; None for calls that touch many things
    (lists, streams, approvals), which need the permission in some scope here and
    narrow what they return, or check the stored object, in the handler."""
    write: bool = False
    """A write: one reaching a protected environment needs approval."""


def _env(name: str) -> str | None:
    return name or None


def _everything(request: Any) -> Sequence[Target]:
    return (EVERYTHING,)


def _key_env(request: Any) -> Sequence[Target]:
    return (Target(_env(request.environment), request.key),)


def _keys_env(request: Any) -> Sequence[Target]:
    return tuple(Target(_env(request.environment), key) for key in request.keys) or (
        Target(_env(request.environment)),
    )


def _key(request: Any) -> Sequence[Target]:
    return (Target(None, request.key),)


def _config(request: Any) -> Sequence[Target]:
    return (Target(None, request.config.key),)


def _env_only(request: Any) -> Sequence[Target]:
    return (Target(_env(request.environment)),)


def _window(request: Any) -> Sequence[Target]:
    return (Target(_env(request.window.environment)),)


def _flag(request: Any) -> Sequence[Target]:
    return (Target(None, request.flag_key),)


def _upsert_flag(request: Any) -> Sequence[Target]:
    return (Target(None, request.flag.key),)


def _evaluation(request: Any) -> Sequence[Target]:
    return (Target(_env(request.context.environment), request.flag_key or None),)


def _flagd_evaluation(request: Any) -> Sequence[Target]:
    # flagd's context is a Struct: an `environment` attribute names the environment.
    field = request.context.fields.get("environment")
    environment = field.string_value if field is not None else ""
    return (Target(_env(environment), request.flag_key or None),)


def _limit_key(request: Any) -> Sequence[Target]:
    return (Target(None, request.limit_key),)


def _upsert_limit(request: Any) -> Sequence[Target]:
    return (Target(_env(request.rate_limit.environment), request.rate_limit.key),)


def _check(request: Any) -> Sequence[Target]:
    return (Target(_env(request.environment)),)


_CONFIG = "/switchyard.v1.ConfigService/"
_FLAG = "/switchyard.v1.FlagService/"
_LIMIT = "/switchyard.v1.RateLimitService/"
_CHANGE = "/switchyard.v1.ChangeRequestService/"
_ACCESS = "/switchyard.v1.AccessService/"
_BATCH = "/switchyard.v1.BatchService/"
_FLAGD_V1 = "/flagd.evaluation.v1.Service/"
_FLAGD_V2 = "/flagd.evaluation.v2.Service/"
_SYNC = "/flagd.sync.v1.FlagSyncService/"
_ENVOY = "/envoy.service.ratelimit.v3.RateLimitService/"

READ, EVALUATE, CHECK = Permission.READ, Permission.EVALUATE, Permission.CHECK
WRITE, ROLLBACK, ADMIN = Permission.WRITE, Permission.ROLLBACK, Permission.ADMIN

RULES: dict[str, Rule] = {
    # ConfigService
    _CONFIG + "GetValue": Rule(READ, _key_env),
    _CONFIG + "GetValues": Rule(READ, _keys_env),
    _CONFIG + "GetConfig": Rule(READ, _key),
    _CONFIG + "ListConfigs": Rule(READ),
    _CONFIG + "GetHistory": Rule(READ),
    _CONFIG + "ListEnvironments": Rule(READ),
    _CONFIG + "ListTemplates": Rule(READ),
    _CONFIG + "ListMaintenanceWindows": Rule(READ),
    _CONFIG + "WatchConfig": Rule(READ),
    _CONFIG + "CreateConfig": Rule(WRITE, _config, write=True),
    _CONFIG + "UpdateConfig": Rule(WRITE, _config, write=True),
    _CONFIG + "DeleteConfig": Rule(WRITE, _key, write=True),
    _CONFIG + "SetValue": Rule(WRITE, _key_env, write=True),
    _CONFIG + "DeleteOverride": Rule(WRITE, _key_env, write=True),
    _CONFIG + "UpsertTemplate": Rule(WRITE, _everything, write=True),
    _CONFIG + "ApplyTemplate": Rule(WRITE, _env_only, write=True),
    _CONFIG + "UpsertMaintenanceWindow": Rule(WRITE, _window, write=True),
    _CONFIG + "DeleteMaintenanceWindow": Rule(WRITE, _everything, write=True),
    _CONFIG + "Rollback": Rule(ROLLBACK, _key_env),
    _CONFIG + "UpsertEnvironment": Rule(ADMIN, _everything),
    # FlagService
    _FLAG + "EvaluateFlag": Rule(EVALUATE, _evaluation),
    _FLAG + "EvaluateFlags": Rule(EVALUATE),
    _FLAG + "ReportFlagOutcome": Rule(EVALUATE, _flag),
    _FLAG + "GetFlag": Rule(READ, _flag),
    _FLAG + "ListFlags": Rule(READ),
    _FLAG + "UpsertFlag": Rule(WRITE, _upsert_flag, write=True),
    _FLAG + "SetFlagEnabled": Rule(WRITE, _flag, write=True),
    _FLAG + "DeleteFlag": Rule(WRITE, _flag, write=True),
    _FLAG + "RollbackFlag": Rule(ROLLBACK, _flag),
    # RateLimitService
    _LIMIT + "CheckRateLimit": Rule(CHECK, _check),
    _LIMIT + "GetRateLimit": Rule(READ, _limit_key),
    _LIMIT + "ListRateLimits": Rule(READ),
    _LIMIT + "UpsertRateLimit": Rule(WRITE, _upsert_limit, write=True),
    _LIMIT + "DeleteRateLimit": Rule(WRITE, _limit_key, write=True),
    _LIMIT + "RollbackRateLimit": Rule(ROLLBACK, _limit_key),
    # ChangeRequestService: the proposed write's own scope is checked in the handler.
    _CHANGE + "ProposeChange": Rule(Permission.PROPOSE),
    _CHANGE + "ApproveChange": Rule(Permission.APPROVE),
    # Rejecting another's request needs 'approve'; a proposer may withdraw their own.
    _CHANGE + "RejectChange": Rule(Permission.PROPOSE),
    _CHANGE + "GetChangeRequest": Rule(READ),
    _CHANGE + "ListChangeRequests": Rule(READ),
    # BatchService: each write's own rule is checked in the handler, before any runs.
    _BATCH + "ApplyWrites": Rule(WRITE, write=True),
    # AccessService: who a caller is, for anyone; tokens and grants, for administrators.
    _ACCESS + "WhoAmI": Rule(READ),
    _ACCESS + "CreateToken": Rule(ADMIN, _everything),
    _ACCESS + "ListTokens": Rule(ADMIN, _everything),
    _ACCESS + "RevokeToken": Rule(ADMIN, _everything),
    _ACCESS + "SetUserGrants": Rule(ADMIN, _everything),
    # flagd: evaluation (OpenFeature providers in RPC mode) and sync (in-process ones,
    # which receive every flag's definition).
    **{
        prefix + name: Rule(EVALUATE, _flagd_evaluation)
        for prefix in (_FLAGD_V1, _FLAGD_V2)
        for name in (
            "ResolveBoolean",
            "ResolveString",
            "ResolveFloat",
            "ResolveInt",
            "ResolveObject",
        )
    },
    _FLAGD_V1 + "ResolveAll": Rule(EVALUATE),
    _FLAGD_V1 + "EventStream": Rule(EVALUATE),
    _FLAGD_V2 + "EventStream": Rule(EVALUATE),
    _SYNC + "SyncFlags": Rule(READ, _everything),
    _SYNC + "FetchAllFlags": Rule(READ, _everything),
    _SYNC + "GetMetadata": Rule(READ),
    # Envoy's global rate-limit filter
    _ENVOY + "ShouldRateLimit": Rule(CHECK, _everything),
}


OPEN: frozenset[str] = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/List",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    }
)
"""Methods open to every caller, with or without credentials: load balancers and
orchestrators probe health, and tools (grpcurl) read the schema by reflection. Nothing
else is: the interceptor puts every other method behind the gate."""


def write_rule(method: str) -> Rule:
    """The rule of a write method, for a change request carrying that write."""
    rule = RULES[method]
    assert rule.write, method
    return rule


def authorize(
    principal: Principal,
    method: str,
    request: Any,
    protected: Collection[str],
    rules: Mapping[str, Rule] = RULES,
) -> None:
    """Raises PermissionDenied (or FailedPrecondition: propose instead) unless the caller
    may make this call. `request` is None for a call whose requests come as a stream:
    a rule that reads its targets from the request cannot be checked then, and refuses."""
    rule = rules.get(method)
    if rule is None:
        raise PermissionDenied(f"{method} is not open to callers (it has no permission rule)")
    if request is None and rule.targets is not None:
        raise PermissionDenied(
            f"{method} takes a stream of requests, but its permission rule reads what the "
            "call touches from one request: it cannot be checked, so it is not open"
        )
    if principal.grants is None:
        return
    if rule.targets is not None:
        try:
            for target in rule.targets(request):
                if rule.write:
                    require_write(principal, target, protected)
                else:
                    require(principal, rule.permission, target)
            return
        except PermissionDenied:
            if holds_anywhere(principal, rule.permission):
                raise  # held, but not for this: the refusal names the scope
    if not holds_anywhere(principal, rule.permission):
        raise PermissionDenied(
            f"{principal.username} lacks the {rule.permission.value!r} permission that "
            f"{method.rsplit('/', 1)[-1]} needs; ask a site_admin for a grant that includes it"
        )


__all__ = ["OPEN", "RULES", "Rule", "authorize", "write_rule"]
