"""The requests the issue reproduced, and their kin, sent first (as explicit examples) on
every run: what broke once must be tried every time, whatever the random draws.

They name the seeded world (`realistic`): fuzz.regex validates with a catastrophic
pattern, fuzz-regex-flag matches one, fuzz.text takes any string.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

from envoy.service.ratelimit.v3 import rls_pb2  # type: ignore[import-untyped]
from google.protobuf import struct_pb2
from google.protobuf.message import Message
from openfeature.schemas.protobuf.flagd.evaluation.v1 import evaluation_pb2 as flagd_v1
from openfeature.schemas.protobuf.flagd.evaluation.v2 import evaluation_pb2 as flagd_v2

from switchyard.gen.v1 import access_pb2, batch_pb2, config_pb2, flag_pb2, rate_limit_pb2
from switchyard.service.batch import MAX_WRITES

from .realistic import BACKTRACKS, CATASTROPHIC, IMPOSSIBLE_CRONS, VICTIM
from .strategies import Case, case_of, deep_groups, to_struct, to_value

OUT_OF_RANGE_SECONDS = 253402300800
"""One second past 9999-12-31T23:59:59Z, the last a Timestamp may hold."""


def _value(python: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    to_value(value, python)
    return value


def _struct(python: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    to_struct(struct, python)
    return struct


@functools.cache
def hazards() -> dict[str, list[Case]]:
    """The requests the issue reproduced, and their kin, by method (`service/Method`):
    every run sends them first."""
    c, f = config_pb2, flag_pb2
    nan = math.nan
    found: dict[str, list[Case]] = {}

    def add(method: str, message: Message, note: str) -> None:
        found.setdefault(method, []).append(case_of("hazard", message, note))

    config = "switchyard.v1.ConfigService/"
    flag = "switchyard.v1.FlagService/"
    add(
        config + "SetValue",
        c.SetValueRequest(key="fuzz.regex", value=_value(BACKTRACKS)),
        "a value that backtracks on (a+)+$",
    )
    add(
        config + "SetValue",
        c.SetValueRequest(key="fuzz.text", value=_value("x"), reason="enc:v1:x"),
        "a reason that looks sealed",
    )
    add(
        config + "SetValue",
        c.SetValueRequest(key="fuzz.text", value=_value('{"sealed":"enc:v1:AAAA"}')),
        "a value that looks like a sealed envelope",
    )
    late = c.SetValueRequest(key="fuzz.text", environment="staging", value=_value("t"))
    late.expires_at.seconds = OUT_OF_RANGE_SECONDS
    add(config + "SetValue", late, "expires_at past year 9999")
    negative = c.SetValueRequest(key="fuzz.text", environment="staging", value=_value("t"))
    negative.starts_at.nanos = -1
    add(config + "SetValue", negative, "starts_at with nanos -1")
    add(
        config + "SetValue",
        c.SetValueRequest(key="fuzz.json", value=_value({"n": nan})),
        "NaN in a JSON value",
    )
    add(
        config + "ListConfigs",
        c.ListConfigsRequest(key_prefix="a" * 50_000),
        "a 50,000-character prefix",
    )
    add(config + "ListConfigs", c.ListConfigsRequest(key_prefix="%"), "a LIKE wildcard prefix")
    add(
        config + "ListConfigs",
        c.ListConfigsRequest(key_prefix="_", page_size=2**31 - 1),
        "_ and a huge page",
    )
    add(
        config + "CreateConfig",
        c.CreateConfigRequest(
            config=c.ConfigDefinition(
                key="fuzz.catastrophic",
                type=c.CONFIG_TYPE_STRING,
                category="fuzz",
                validation=c.Validation(regex_pattern=CATASTROPHIC),
                value=_value(BACKTRACKS),
            )
        ),
        "a new key whose first value backtracks",
    )
    for cron in IMPOSSIBLE_CRONS:
        window = c.MaintenanceWindow(
            name="fuzz-never",
            environment="staging",
            schedule_cron=cron,
            duration_seconds=60,
            is_active=True,
        )
        window.config_values.CopyFrom(_struct({"fuzz.text": "never"}))
        add(
            config + "UpsertMaintenanceWindow",
            c.UpsertMaintenanceWindowRequest(window=window),
            f"a window whose cron {cron!r} never fires",
        )
    window = c.MaintenanceWindow(name="fuzz-nan", environment="staging", is_active=True)
    window.config_values.CopyFrom(_struct({"fuzz.number": nan}))
    window.starts_at.seconds = OUT_OF_RANGE_SECONDS
    add(
        config + "UpsertMaintenanceWindow",
        c.UpsertMaintenanceWindowRequest(window=window),
        "NaN values and a start past year 9999",
    )
    for part in ("feature_flags", "rate_limits", "config_values"):
        template = c.Template(name="fuzz-nan", template_type="environment")
        getattr(template, part).CopyFrom(_struct({"x": nan, "y": {"z": math.inf}}))
        add(config + "UpsertTemplate", c.UpsertTemplateRequest(template=template), f"NaN in {part}")
    flag_nan = f.FeatureFlag(key="fuzz-nan", name="n")
    flag_nan.success_metrics.CopyFrom(_struct({"rate": nan}))
    add(flag + "UpsertFlag", f.UpsertFlagRequest(flag=flag_nan), "NaN in success_metrics")
    flag_late = f.FeatureFlag(key="fuzz-late", name="n")
    flag_late.start_date.seconds = OUT_OF_RANGE_SECONDS
    flag_late.deprecation_date.nanos = -1
    add(flag + "UpsertFlag", f.UpsertFlagRequest(flag=flag_late), "dates out of range")
    slow_rule = f.FeatureFlag(key="fuzz-slow", name="n", is_enabled=True)
    slow_rule.targeting_rules.CopyFrom(
        _value(
            [{"id": "r", "when": {"attribute": "name", "op": "matches", "value": CATASTROPHIC}}]
        ).list_value
    )
    add(flag + "UpsertFlag", f.UpsertFlagRequest(flag=slow_rule), "a rule with a costly pattern")
    context = f.EvaluationContext(user_id="u1", environment="staging")
    context.attributes.CopyFrom(_struct({"name": BACKTRACKS}))
    add(
        flag + "EvaluateFlag",
        f.EvaluateFlagRequest(flag_key="fuzz-regex-flag", context=context),
        "a context value that backtracks on the flag's rule",
    )
    add(flag + "EvaluateFlags", f.EvaluateFlagsRequest(context=context), "the same, for every flag")
    for module, version in ((flagd_v1, "v1"), (flagd_v2, "v2")):
        request = module.ResolveBooleanRequest(flag_key="fuzz-regex-flag")
        request.context.CopyFrom(_struct({"targetingKey": "u1", "name": BACKTRACKS}))
        add(
            f"flagd.evaluation.{version}.Service/ResolveBoolean",
            request,
            "a flagd context value that backtracks",
        )
    all_request = flagd_v1.ResolveAllRequest()
    all_request.context.CopyFrom(_struct({"targetingKey": "u1", "name": BACKTRACKS, "n": nan}))
    add("flagd.evaluation.v1.Service/ResolveAll", all_request, "backtracking and NaN in a context")
    token = access_pb2.CreateTokenRequest(owner=VICTIM, reason="fuzz")
    token.grants.add(role="reader")
    token.expires_at.seconds = OUT_OF_RANGE_SECONDS
    add("switchyard.v1.AccessService/CreateToken", token, "a token expiring past year 9999")
    add(
        "switchyard.v1.RateLimitService/CheckRateLimit",
        rate_limit_pb2.CheckRateLimitRequest(
            user_id="u1", hits=2**63 - 1, limit_key="fuzz-limit", environment="staging"
        ),
        "hits at int64 max",
    )
    envoy = rls_pb2.RateLimitRequest(domain="staging", hits_addend=2**32 - 1)
    envoy.descriptors.add().entries.add(key="generic_key", value="fuzz-limit")
    envoy.descriptors[0].hits_addend.value = 2**64 - 1
    add("envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit", envoy, "hits at uint64 max")
    # Found by `make fuzz`: each descriptor is decided in turn, and 20,000 of them (720 KB)
    # held the server for half a second.
    many = rls_pb2.RateLimitRequest(domain="staging")
    for _ in range(20_000):
        many.descriptors.add().entries.add(key="role", value="u1")
    add(
        "envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
        many,
        "20,000 descriptors in one request",
    )
    # Found by `make fuzz`: Python's glob translation is quadratic in runs of `[`, and a
    # megabyte of them was translated after being refused for its length.
    for field in ("applies_to", "scope_pattern"):
        globbing = rate_limit_pb2.UpsertRateLimitRequest()
        globbing.rate_limit.CopyFrom(
            rate_limit_pb2.RateLimit(
                key="fuzz-limit",
                name="glob",
                max_requests=10,
                time_window_seconds=60,
                scope_type=rate_limit_pb2.SCOPE_TYPE_USER,
            )
        )
        setattr(globbing.rate_limit, field, "[" * 1_000_000)
        add("switchyard.v1.RateLimitService/UpsertRateLimit", globbing, f"a megabyte {field}")
    # Each write changes the value the one before it wrote (so a second send changes all
    # of them again); 600 characters each keep the request under 4 MiB, while the answer,
    # which records every change, is past what a default client receives.
    batch = batch_pb2.ApplyWritesRequest(reason="fuzz")
    for n in range(MAX_WRITES):
        batch.writes.add().set_value.CopyFrom(
            c.SetValueRequest(
                key="fuzz.text", environment="development", value=_value(f"{n:05}" + "x" * 600)
            )
        )
    add(
        "switchyard.v1.BatchService/ApplyWrites",
        batch,
        f"{MAX_WRITES} writes that each change a value, with a large answer",
    )
    nan_batch = batch_pb2.ApplyWritesRequest(dry_run=True)
    nan_batch.writes.add().upsert_template.template.CopyFrom(
        c.Template(name="fuzz-nan", template_type="e")
    )
    nan_batch.writes[0].upsert_template.template.feature_flags.CopyFrom(_struct({"x": nan}))
    late_write = nan_batch.writes.add().set_value
    late_write.CopyFrom(
        c.SetValueRequest(key="fuzz.text", environment="staging", value=_value("x"))
    )
    late_write.expires_at.seconds = OUT_OF_RANGE_SECONDS
    add(
        "switchyard.v1.BatchService/ApplyWrites",
        nan_batch,
        "a dry run with NaN and a late timestamp",
    )
    add(
        config + "WatchConfig",
        c.WatchConfigRequest(from_revision=0, kinds=[1, 2, 3, 99]),
        "the whole history, with an unknown kind",
    )
    return found


def wire_hazards() -> list[Case]:
    """Malformed bytes every method gets: nesting past 100, a cut length, bad UTF-8 in
    field 1 (a string in most requests)."""
    return [
        Case("hazard", deep_groups(150), "unknown groups nested 150 deep"),
        Case("hazard", b"\x0a\x05ab", "a length past the end"),
        Case("hazard", b"\x0a\x02\xff\xfe", "bad UTF-8 in field 1"),
    ]


__all__ = ["OUT_OF_RANGE_SECONDS", "hazards", "wire_hazards"]
