"""The realistic side of the fuzzing: a world of real objects seeded on the server under
test (keys of every type, overrides, flags, limits, a template, windows, environments,
pending change requests, a token), valid requests that name them (skeletons, which the
strategies mutate), values for identifier fields (hints), (the hazards the issue
reproduced are in `hazards`).

`ensure_world` puts the seeded objects back as they were before each RPC's run (fuzzed
writes change and delete them) and writes only what differs, so most runs start with no
write at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from envoy.service.ratelimit.v3 import rls_pb2  # type: ignore[import-untyped]
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import strategies as st
from openfeature.schemas.protobuf.flagd.evaluation.v1 import evaluation_pb2 as flagd_v1
from openfeature.schemas.protobuf.flagd.evaluation.v2 import evaluation_pb2 as flagd_v2

from switchyard.gen.v1 import (
    access_pb2,
    batch_pb2,
    change_pb2,
    config_pb2,
    flag_pb2,
    rate_limit_pb2,
)

from .harness import Answer, Caller, methods_of
from .strategies import Hints, Skeletons

CATASTROPHIC = "(a+)+$"
BACKTRACKS = "a" * 24 + "!"
"""With CATASTROPHIC, about half a second of backtracking (each extra `a` doubles it)."""
IMPOSSIBLE_CRONS = ("0 0 31 2 *", "0 0 30 2 *")

_YEAR = timedelta(days=365)


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_LATER = datetime.now(UTC).replace(microsecond=0) + 2 * _YEAR


# --- what is seeded -----------------------------------------------------------------------------

CONFIGS: tuple[dict[str, Any], ...] = (
    {"key": "fuzz.text", "type": "CONFIG_TYPE_STRING", "value": "hello"},
    {
        "key": "fuzz.regex",
        "type": "CONFIG_TYPE_STRING",
        "value": "aaa",
        "validation": {"regex_pattern": CATASTROPHIC},
    },
    {
        "key": "fuzz.number",
        "type": "CONFIG_TYPE_NUMBER",
        "value": 5,
        "default_value": 1,
        "validation": {"min_value": 0, "max_value": 100},
    },
    {"key": "fuzz.json", "type": "CONFIG_TYPE_JSON", "value": {"a": [1, 2], "b": None}},
    {"key": "fuzz.bool", "type": "CONFIG_TYPE_BOOLEAN", "value": False},
    {"key": "fuzz.list", "type": "CONFIG_TYPE_ARRAY", "value": [1, "two"]},
    {"key": "fuzz.date", "type": "CONFIG_TYPE_DATE", "value": "2026-01-01"},
    {"key": "fuzz.url", "type": "CONFIG_TYPE_URL", "value": "https://example.com/a"},
    {"key": "fuzz.email", "type": "CONFIG_TYPE_EMAIL", "value": "ops@example.com"},
    {"key": "fuzz.duration", "type": "CONFIG_TYPE_DURATION", "value": "5m"},
    {"key": "fuzz.cron", "type": "CONFIG_TYPE_CRON", "value": "0 3 * * *"},
    {
        "key": "fuzz.choice",
        "type": "CONFIG_TYPE_STRING",
        "value": "red",
        "validation": {"allowed_values": ["red", "green"]},
    },
    {
        "key": "fuzz.secret",
        "type": "CONFIG_TYPE_STRING",
        "value": "s3cret-value",
        "is_sensitive": True,
        "is_encrypted": True,
    },
    {"key": "fuzz.readonly", "type": "CONFIG_TYPE_STRING", "value": "fixed", "is_editable": False},
    {"key": "fuzz.doomed", "type": "CONFIG_TYPE_STRING", "value": "bye", "is_deletable": True},
    {"key": "payments.timeout", "type": "CONFIG_TYPE_NUMBER", "value": 30},
)
"""Every key is active and editable unless it says otherwise; none may be deleted but
fuzz.doomed, so that the hazards always find fuzz.regex."""

OVERRIDES: tuple[dict[str, Any], ...] = (
    {"key": "fuzz.text", "environment": "staging", "value": "staged"},
    {"key": "fuzz.number", "environment": "production", "value": 7},
    {"key": "fuzz.number", "environment": "staging", "value": 6, "priority": 200},
)

ENVIRONMENTS: tuple[dict[str, Any], ...] = (
    {"name": "fuzz-env", "parent": "staging", "description": "fuzzing"},
)

FLAGS: tuple[dict[str, Any], ...] = (
    {
        "key": "fuzz-flag",
        "name": "Fuzz flag",
        "is_enabled": True,
        "rollout_percentage": 50,
        "rollout_strategy": "ROLLOUT_STRATEGY_PERCENTAGE",
        "enabled_for_users": ["u1"],
        "enabled_environments": ["staging", "production"],
        "targeting_rules": [
            {"id": "pro", "when": {"attribute": "plan", "op": "eq", "value": "pro"}}
        ],
        "variants": {"on": "blue", "off": "grey"},
    },
    {
        "key": "fuzz-regex-flag",
        "name": "Matches a costly pattern",
        "is_enabled": True,
        "targeting_rules": [
            {"id": "slow", "when": {"attribute": "name", "op": "matches", "value": CATASTROPHIC}}
        ],
    },
    {"key": "fuzz-plain-flag", "name": "Plain", "is_enabled": False},
    {"key": "fuzz-flag-doomed", "name": "Doomed", "is_enabled": True},
)

LIMITS: tuple[dict[str, Any], ...] = (
    {
        "key": "fuzz-limit",
        "name": "Per user",
        "max_requests": 1000,
        "time_window_seconds": 60,
        "scope_type": "SCOPE_TYPE_USER",
        "environment": "staging",
    },
    {
        "key": "fuzz-limit-global",
        "name": "Everyone",
        "max_requests": 100000,
        "time_window_seconds": 3600,
        "scope_type": "SCOPE_TYPE_GLOBAL",
    },
    {
        "key": "fuzz-limit-doomed",
        "name": "Doomed",
        "max_requests": 5,
        "time_window_seconds": 1,
        "scope_type": "SCOPE_TYPE_IP",
    },
)

TEMPLATES: tuple[dict[str, Any], ...] = (
    {
        "name": "fuzz-template",
        "template_type": "environment",
        "config_values": {"fuzz.text": "from a template", "fuzz.number": 9},
        "is_active": True,
    },
)

WINDOWS: tuple[dict[str, Any], ...] = (
    {
        "name": "fuzz-window",
        "environment": "staging",
        "config_values": {"fuzz.text": "in maintenance"},
        "starts_at": _at(_LATER),
        "ends_at": _at(_LATER + timedelta(hours=1)),
        "is_active": True,
    },
    {
        "name": "fuzz-window-nightly",
        "environment": "staging",
        "config_values": {"fuzz.number": 3},
        "schedule_cron": "0 4 * * *",
        "duration_seconds": 60,
        "is_active": True,
    },
    {
        "name": "fuzz-window-doomed",
        "environment": "development",
        "config_values": {"fuzz.text": "doomed"},
        "starts_at": _at(_LATER),
        "ends_at": _at(_LATER + timedelta(minutes=5)),
        "is_active": True,
    },
)

PROPOSAL: dict[str, Any] = {
    "write": {"set_value": {"key": "fuzz.text", "environment": "production", "value": "p"}},
    "reason": "fuzzing",
}
VICTIM = "fuzz-victim"
"""The owner of the tokens RevokeToken and SetUserGrants may have (never a caller's)."""


@dataclass
class World:
    """The seeded server's objects, as fuzzed requests name them."""

    keys: list[str] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    windows: list[str] = field(default_factory=list)
    change_requests: list[tuple[str, str]] = field(default_factory=list)
    """(id, content digest) of pending change requests."""
    tokens: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    revision: int = 0


Broken = Callable[[str, Answer, Mapping[str, Any]], None]
"""Told of a seeding call that answered INTERNAL or UNKNOWN, or of a read of what the
server stored that did not answer OK: findings too (what a server stores, it must be
able to read back)."""


class _Seeder:
    def __init__(self, caller: Caller, metadata: Sequence[tuple[str, str]], broken: Broken):
        self._caller = caller
        self._metadata = tuple(metadata)
        self._broken = broken
        self._methods = {m.descriptor.name: m for m in methods_of(_SERVICES)}
        self.revision = 0

    def call(self, name: str, body: Mapping[str, Any], *, read: bool = False) -> Message | None:
        """Sends one request; `read`: a read of stored state, which must answer OK."""
        answer, response = self._caller.call(self._methods[name], body, self._metadata)
        broken = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
        if answer.code in broken or (read and answer.code is not grpc.StatusCode.OK):
            self._broken(self._methods[name].short, answer, body)
        if response is not None and "revision" in response.DESCRIPTOR.fields_by_name:
            self.revision = max(self.revision, response.revision)  # type: ignore[attr-defined]
        return response

    def listed(self, name: str, body: Mapping[str, Any], items: str) -> list[dict[str, Any]]:
        """Every item of a list RPC, all pages, as JSON dictionaries."""
        found: list[dict[str, Any]] = []
        page = dict(body)
        for _ in range(100):
            response = self.call(name, page, read=True)
            if response is None:
                return found
            found.extend(
                json_format.MessageToDict(item, preserving_proto_field_name=True)
                for item in getattr(response, items)
            )
            token = getattr(response, "next_page_token", "")
            if not token:
                return found
            page = {**body, "page_token": token}
        return found


_SERVICES = (
    "switchyard.v1.ConfigService",
    "switchyard.v1.FlagService",
    "switchyard.v1.RateLimitService",
    "switchyard.v1.ChangeRequestService",
    "switchyard.v1.AccessService",
)


def _holds(seed: Any, listed: Any) -> bool:
    """Whether `listed` (JSON of a message, defaults left out) says what `seed` says."""
    if isinstance(seed, dict):
        listed = listed if isinstance(listed, dict) else {}
        return all(_holds(value, listed.get(name)) for name, value in seed.items())
    if listed is None:
        return seed in (False, 0, "", [], {}, None)
    if isinstance(seed, int | float) and not isinstance(seed, bool):
        try:  # JSON writes 64-bit integers as strings
            return float(seed) == float(listed)
        except (TypeError, ValueError):
            return False
    return bool(seed == listed)


def _by(items: Iterable[dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    return {item.get(name, ""): item for item in items}


def _definition(seed: Mapping[str, Any]) -> dict[str, Any]:
    definition = {
        "category": seed["key"].split(".")[0],
        "is_active": True,
        "is_editable": True,
        "is_deletable": False,
        **seed,
    }
    definition.pop("value")
    return definition


def ensure_world(caller: Caller, metadata: Sequence[tuple[str, str]], broken: Broken) -> World:
    """Puts every seeded object back as it was seeded (writing only what differs) and
    returns the world as the server now holds it."""
    seed = _Seeder(caller, metadata, broken)
    environments = _by(seed.listed("ListEnvironments", {}, "environments"), "name")
    for environment in ENVIRONMENTS:
        if not _holds(environment, environments.get(environment["name"])):
            seed.call("UpsertEnvironment", {"environment": environment, "reason": "seed"})
    configs = _by(
        seed.listed("ListConfigs", {"include_inactive": True, "page_size": 1000}, "configs"),
        "key",
    )
    for config in CONFIGS:
        definition = _definition(config)
        present = configs.get(config["key"])
        if present is None:
            seed.call("CreateConfig", {"config": {**definition, "value": config["value"]}})
        elif not _holds(definition, present):
            seed.call("UpdateConfig", {"config": definition, "reason": "seed"})
        if present is not None and not _holds(config["value"], present.get("value")):
            seed.call("SetValue", {"key": config["key"], "value": config["value"]})
    for override in OVERRIDES:
        seed.call("SetValue", {**override, "reason": "seed"})
    flags = _by(
        seed.listed("ListFlags", {"include_inactive": True, "page_size": 1000}, "flags"), "key"
    )
    for flag in FLAGS:
        wanted = {"is_active": True, **flag}
        if not _holds(wanted, flags.get(flag["key"])):
            seed.call("UpsertFlag", {"flag": wanted, "reason": "seed"})
    limits = _by(
        seed.listed("ListRateLimits", {"include_inactive": True, "page_size": 1000}, "rate_limits"),
        "key",
    )
    for limit in LIMITS:
        wanted = {"is_active": True, **limit}
        if not _holds(wanted, limits.get(limit["key"])):
            seed.call("UpsertRateLimit", {"rate_limit": wanted, "reason": "seed"})
    templates = _by(
        seed.listed("ListTemplates", {"include_inactive": True, "page_size": 1000}, "templates"),
        "name",
    )
    for template in TEMPLATES:
        if not _holds(template, templates.get(template["name"])):
            seed.call("UpsertTemplate", {"template": template, "reason": "seed"})
    windows = _by(seed.listed("ListMaintenanceWindows", {}, "windows"), "name")
    for window in WINDOWS:
        if not _holds(window, windows.get(window["name"])):
            seed.call("UpsertMaintenanceWindow", {"window": window, "reason": "seed"})
    pending = seed.listed(
        "ListChangeRequests", {"status": "CHANGE_REQUEST_STATUS_PENDING"}, "change_requests"
    )
    for _ in range(2 - len(pending)):
        seed.call("ProposeChange", PROPOSAL)
    pending = seed.listed(
        "ListChangeRequests", {"status": "CHANGE_REQUEST_STATUS_PENDING"}, "change_requests"
    )
    tokens = seed.listed("ListTokens", {}, "tokens")
    victims = [t for t in tokens if t.get("owner") == VICTIM and not t.get("revoked_at")]
    if not victims:
        seed.call(
            "CreateToken", {"owner": VICTIM, "grants": [{"role": "reader"}], "reason": "seed"}
        )
        tokens = seed.listed("ListTokens", {}, "tokens")
    configs = _by(
        seed.listed("ListConfigs", {"include_inactive": True, "page_size": 1000}, "configs"),
        "key",
    )
    seed.call("GetHistory", {"page_size": 200}, read=True)  # the newest changes
    return World(
        keys=sorted(configs) or [c["key"] for c in CONFIGS],
        environments=sorted({*environments, *(e["name"] for e in ENVIRONMENTS)}),
        flags=[f["key"] for f in FLAGS],
        limits=[limit["key"] for limit in LIMITS],
        templates=[t["name"] for t in TEMPLATES],
        windows=[w["name"] for w in WINDOWS],
        change_requests=[(c["id"], c.get("content_digest", "")) for c in pending if "id" in c],
        tokens=[t["id"] for t in tokens if t.get("owner") == VICTIM and "id" in t],
        users=sorted({VICTIM, "local-operator", *(t.get("owner", "") for t in tokens)} - {""}),
        revision=seed.revision,
    )


# --- skeletons and hints ------------------------------------------------------------------------


def _parse(cls: type[Message], body: Mapping[str, Any]) -> Message:
    return json_format.ParseDict(body, cls())


def skeletons(world: World) -> Skeletons:
    """Valid requests naming the world's objects, by message type."""
    request_ids = [r for r, _ in world.change_requests] or ["absent"]
    staging_set = {"key": "fuzz.text", "environment": "staging", "value": "v", "reason": "fuzz"}
    context = {
        "user_id": "u1",
        "roles": ["reader"],
        "environment": "staging",
        "attributes": {"plan": "pro", "name": "bob"},
    }
    flagd_context = {"targetingKey": "u1", "environment": "staging", "plan": "pro"}
    window = WINDOWS[0]
    c, f, r = config_pb2, flag_pb2, rate_limit_pb2
    bodies: dict[type[Message], list[dict[str, Any]]] = {
        c.GetValueRequest: [
            {"key": k, "environment": "staging"} for k in ("fuzz.text", "api.timeout")
        ],
        c.GetValuesRequest: [{"keys": ["fuzz.text", "fuzz.number"], "environment": "production"}],
        c.GetConfigRequest: [{"key": "fuzz.json"}],
        c.ListConfigsRequest: [{"key_prefix": "fuzz.", "page_size": 5}, {"category": "fuzz"}],
        c.CreateConfigRequest: [
            {
                "config": {
                    "key": "fuzz.created",
                    "type": "CONFIG_TYPE_STRING",
                    "category": "fuzz",
                    "value": "new",
                    "is_active": True,
                    "is_editable": True,
                    "validation": {"regex_pattern": "^[a-z]+$"},
                },
                "reason": "fuzz",
            }
        ],
        c.UpdateConfigRequest: [
            {"config": {"key": "fuzz.text", "description": "d"}, "update_mask": "description"},
            {
                "config": {"key": "fuzz.regex", "validation": {"regex_pattern": CATASTROPHIC}},
                "update_mask": "validation.regexPattern",
            },
        ],
        c.DeleteConfigRequest: [{"key": "fuzz.doomed", "reason": "fuzz"}],
        c.SetValueRequest: [
            staging_set,
            {"key": "fuzz.number", "value": 42},
            {"key": "fuzz.json", "environment": "fuzz-env", "value": {"x": [1]}, "priority": 5},
            {
                "key": "fuzz.text",
                "environment": "development",
                "value": "brief",
                "expires_at": _at(_LATER),
            },
        ],
        c.DeleteOverrideRequest: [{"key": "fuzz.text", "environment": "staging"}],
        c.RollbackRequest: [
            {"key": "fuzz.text", "environment": "staging", "steps": 1, "dry_run": True},
            {"key": "fuzz.number", "steps": 1},
        ],
        c.GetHistoryRequest: [{"key": "fuzz.text", "page_size": 5}, {"after_revision": 1}],
        c.UpsertEnvironmentRequest: [{"environment": ENVIRONMENTS[0], "reason": "fuzz"}],
        c.ListTemplatesRequest: [{"page_size": 5}],
        c.UpsertTemplateRequest: [{"template": TEMPLATES[0], "reason": "fuzz"}],
        c.ApplyTemplateRequest: [
            {"template_name": "fuzz-template", "environment": "staging", "dry_run": True},
            {"template_name": "fuzz-template", "environment": "development"},
        ],
        c.WatchConfigRequest: [
            {"keys": ["fuzz.text"], "from_revision": max(world.revision - 5, 0)},
            {"prefixes": ["fuzz."], "environment": "staging", "kinds": ["CHANGE_KIND_FLAG"]},
        ],
        c.UpsertMaintenanceWindowRequest: [{"window": window, "reason": "fuzz"}],
        c.DeleteMaintenanceWindowRequest: [{"name": "fuzz-window-doomed"}],
        f.EvaluateFlagRequest: [{"flag_key": k, "context": context} for k in world.flags[:2]],
        f.EvaluateFlagsRequest: [{"context": context}],
        f.GetFlagRequest: [{"flag_key": "fuzz-flag"}],
        f.ListFlagsRequest: [{"page_size": 5}],
        f.UpsertFlagRequest: [{"flag": {"is_active": True, **flag}} for flag in FLAGS[:3]],
        f.SetFlagEnabledRequest: [{"flag_key": "fuzz-plain-flag", "enabled": True}],
        f.DeleteFlagRequest: [{"flag_key": "fuzz-flag-doomed"}],
        f.ReportFlagOutcomeRequest: [
            {"flag_key": "fuzz-flag", "variant": "on", "successes": 3, "context": context}
        ],
        f.RollbackFlagRequest: [{"flag_key": "fuzz-flag", "steps": 1}],
        r.CheckRateLimitRequest: [
            {"user_id": "u1", "environment": "staging", "limit_key": "fuzz-limit", "hits": 1},
            {"ip": "10.0.0.1", "endpoint": "/a", "method": "GET"},
        ],
        r.GetRateLimitRequest: [{"limit_key": "fuzz-limit"}],
        r.ListRateLimitsRequest: [{"page_size": 5, "scope_type": "SCOPE_TYPE_USER"}],
        r.UpsertRateLimitRequest: [{"rate_limit": {"is_active": True, **LIMITS[0]}}],
        r.DeleteRateLimitRequest: [{"limit_key": "fuzz-limit-doomed"}],
        r.RollbackRateLimitRequest: [{"limit_key": "fuzz-limit", "steps": 1}],
        change_pb2.ProposeChangeRequest: [PROPOSAL],
        change_pb2.ProposedWrite: [{"set_value": staging_set}],
        change_pb2.ApproveChangeRequest: [
            {"request_id": i, "content_digest": d} for i, d in world.change_requests
        ]
        or [{"request_id": "absent", "content_digest": "x"}],
        change_pb2.RejectChangeRequest: [{"request_id": i} for i in request_ids],
        change_pb2.GetChangeRequestRequest: [{"request_id": i} for i in request_ids],
        change_pb2.ListChangeRequestsRequest: [{"status": "CHANGE_REQUEST_STATUS_PENDING"}],
        batch_pb2.ApplyWritesRequest: [
            {"writes": [{"set_value": staging_set}, {"set_value": {**staging_set, "value": "w"}}]},
            {"writes": [{"upsert_flag": {"flag": FLAGS[2]}}], "dry_run": True},
        ],
        access_pb2.CreateTokenRequest: [
            {"owner": VICTIM, "grants": [{"role": "reader"}], "reason": "fuzz"}
        ],
        access_pb2.RevokeTokenRequest: [{"token_id": t} for t in world.tokens[:3]]
        or [{"token_id": "absent"}],
        access_pb2.SetUserGrantsRequest: [
            {"username": VICTIM, "grants": [{"role": "editor", "environments": ["staging"]}]}
        ],
        flagd_v1.ResolveAllRequest: [{"context": flagd_context}],
        rls_pb2.RateLimitRequest: [
            {
                "domain": "staging",
                "descriptors": [
                    {"entries": [{"key": "generic_key", "value": "fuzz-limit"}]},
                    {
                        "entries": [
                            {"key": "user_id", "value": "u1"},
                            {"key": ":path", "value": "/a"},
                        ]
                    },
                ],
                "hits_addend": 1,
            }
        ],
    }
    for module in (flagd_v1, flagd_v2):
        for kind in ("Boolean", "String", "Float", "Int", "Object"):
            bodies[getattr(module, f"Resolve{kind}Request")] = [
                {"flag_key": key, "context": flagd_context} for key in world.flags[:2]
            ]
    return {
        cls.DESCRIPTOR.full_name: [_parse(cls, body) for body in found]
        for cls, found in bodies.items()
    }


def hints(world: World, served: Sequence[str]) -> Hints:
    """Realistic values for identifier fields, by field name (or message:field)."""
    keys = st.sampled_from(world.keys)
    environments = st.sampled_from(world.environments)
    flags = st.sampled_from(world.flags)
    limits = st.sampled_from(world.limits)
    revisions = st.sampled_from(sorted({0, 1, world.revision, world.revision + 1}))
    prefixes = st.sampled_from(["fuzz.", "api.", "payments.", "%", "_", "fuzz%", "f_zz.", "Fuzz."])
    regexes = st.sampled_from(
        [CATASTROPHIC, "(x+x+)+y", "^[a-z]+$", "[", "a{1000}", "(?i)abc", "(?=a)", "(a)\\1"]
    )
    crons = st.sampled_from(
        [*IMPOSSIBLE_CRONS, "* * * * *", "0 4 * * *", "*/5 * * * *", "0 0 29 2 *"]
    )
    request_ids = st.sampled_from([r for r, _ in world.change_requests] or ["absent"])
    digests = st.sampled_from([d for _, d in world.change_requests] or ["absent"])
    users = st.sampled_from(world.users)
    symbols = st.sampled_from(
        [*served, "switchyard.v1.SetValueRequest", "switchyard/v1/config.proto"]
    )
    fields = [f.name for f in config_pb2.ConfigDefinition.DESCRIPTOR.fields]
    fields += [f"validation.{f.name}" for f in config_pb2.Validation.DESCRIPTOR.fields]
    entry = "envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry"
    found: dict[str, st.SearchStrategy[Any]] = {
        "key": keys,
        "keys": keys,
        "depends_on": keys,
        "conflicts_with": keys,
        "switchyard.v1.FeatureFlag:conflicts_with": flags,
        "prerequisite_features": flags,
        "flag_key": flags,
        "switchyard.v1.FeatureFlag:key": flags,
        "limit_key": limits,
        "inherit_from": limits,
        "switchyard.v1.RateLimit:key": limits,
        "environment": environments,
        "environments": environments,
        "enabled_environments": environments,
        "suitable_environments": environments,
        "parent": environments,
        "switchyard.v1.Environment:name": environments,
        "template_name": st.sampled_from(world.templates),
        "switchyard.v1.Template:name": st.sampled_from(world.templates),
        "switchyard.v1.MaintenanceWindow:name": st.sampled_from(world.windows),
        "switchyard.v1.DeleteMaintenanceWindowRequest:name": st.sampled_from(world.windows),
        "request_id": request_ids,
        "content_digest": digests,
        "token_id": st.sampled_from(world.tokens or ["absent"]),
        "username": users,
        "owner": users,
        "role": st.sampled_from(["reader", "editor", "admin", "site_admin", "system"]),
        "category": st.sampled_from(["fuzz", "api", "payments"]),
        "categories": st.sampled_from(["fuzz", "api", "payments"]),
        "key_prefix": prefixes,
        "prefixes": prefixes,
        "regex_pattern": regexes,
        "schedule_cron": crons,
        "from_revision": revisions,
        "after_revision": revisions,
        "expected_revision": revisions,
        "expected_version": st.sampled_from([0, 1, 2, 2**63 - 1]),
        "to_version": st.sampled_from([0, 1, 2, 2**63 - 1]),
        "page_token": st.sampled_from(["", "0", "MTAw", "eyJhZnRlciI6InoifQ", "%%%", "=="]),
        "variant": st.sampled_from(["on", "off", "blue"]),
        "user_id": st.sampled_from(["u1", "user-1", BACKTRACKS]),
        "domain": st.one_of(environments, st.just("switchyard")),
        f"{entry}:key": st.sampled_from(
            ["generic_key", "user_id", ":path", "role", "remote_address"]
        ),
        f"{entry}:value": st.one_of(limits, st.sampled_from(["u1", "10.0.0.1", "/a?b=c", "a,b"])),
        "service": st.sampled_from(["", *served]),
        "file_containing_symbol": symbols,
        "file_by_filename": symbols,
        "list_services": st.just(""),
        "struct_key": st.sampled_from(["targetingKey", "environment", "name", "plan", "roles"]),
        "field_mask_path": st.sampled_from(fields),
    }
    return found


__all__ = [
    "BACKTRACKS",
    "CATASTROPHIC",
    "IMPOSSIBLE_CRONS",
    "VICTIM",
    "World",
    "ensure_world",
    "hints",
    "skeletons",
]
