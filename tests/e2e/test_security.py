"""Authentication and authorization through the real server: every RPC it answers (asked
of the server itself, not read from a list) against every role, and against missing,
unknown, expired and revoked tokens. A refused call gets its status and changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from prometheus_client import REGISTRY

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.api.permissions import OPEN, RULES
from switchyard.domain.access import parse_grant
from switchyard.service.context import WriteContext

from .conftest import Running, serving
from .methods import served_methods

# What the issue says each role may do, written out here rather than read from the
# server's table, so that the table is checked against it.
READS = {
    "ConfigService": "GetValue GetValues GetConfig ListConfigs GetHistory ListEnvironments "
    "ListTemplates ListMaintenanceWindows WatchConfig",
    "FlagService": "EvaluateFlag EvaluateFlags GetFlag ListFlags ReportFlagOutcome",
    "RateLimitService": "CheckRateLimit GetRateLimit ListRateLimits",
    "ChangeRequestService": "GetChangeRequest ListChangeRequests",
    "AccessService": "WhoAmI",
    "Service": "ResolveAll ResolveBoolean ResolveString ResolveFloat ResolveInt ResolveObject "
    "EventStream",
    "FlagSyncService": "SyncFlags FetchAllFlags GetMetadata",
    "ratelimit.v3.RateLimitService": "ShouldRateLimit",
}
# Writes that reach only staging (not protected): editors may make them.
STAGING_WRITES = {
    "ConfigService/SetValue",
    "ConfigService/DeleteOverride",
    "ConfigService/ApplyTemplate",
    "ConfigService/UpsertMaintenanceWindow",
    "RateLimitService/UpsertRateLimit",
    "BatchService/ApplyWrites",  # a batch of one staging write
}
# Writes that reach every environment, production among them: site_admin writes them,
# an admin must propose them, editors and readers may not.
GLOBAL_WRITES = {
    "ConfigService/CreateConfig",
    "ConfigService/UpdateConfig",
    "ConfigService/DeleteConfig",
    "ConfigService/UpsertTemplate",
    "ConfigService/DeleteMaintenanceWindow",
    "FlagService/UpsertFlag",
    "FlagService/SetFlagEnabled",
    "FlagService/DeleteFlag",
    "RateLimitService/DeleteRateLimit",
}
SITE_ADMIN_ONLY = {
    "ConfigService/Rollback",
    "FlagService/RollbackFlag",
    "RateLimitService/RollbackRateLimit",
    "ConfigService/UpsertEnvironment",
    "ChangeRequestService/ApproveChange",
    "AccessService/CreateToken",
    "AccessService/ListTokens",
    "AccessService/RevokeToken",
    "AccessService/SetUserGrants",
}
ADMIN_AND_UP = {"ChangeRequestService/ProposeChange", "ChangeRequestService/RejectChange"}

REQUESTS: dict[str, dict[str, Any]] = {
    "ConfigService/GetValue": {"key": "api.base_url", "environment": "staging"},
    "ConfigService/GetValues": {"keys": ["api.base_url"], "environment": "staging"},
    "ConfigService/GetConfig": {"key": "api.base_url"},
    "ConfigService/SetValue": {
        "key": "api.base_url",
        "environment": "staging",
        "value": "https://x.example.com",
    },
    "ConfigService/DeleteOverride": {"key": "api.base_url", "environment": "staging"},
    "ConfigService/CreateConfig": {
        "config": {"key": "matrix.created", "type": "CONFIG_TYPE_STRING", "category": "m"}
    },
    "ConfigService/UpdateConfig": {
        "config": {"key": "api.base_url", "description": "d"},
        "update_mask": "description",
    },
    "ConfigService/DeleteConfig": {"key": "matrix.absent"},
    "ConfigService/Rollback": {"key": "api.base_url", "steps": 1, "dry_run": True},
    "ConfigService/UpsertEnvironment": {"environment": {"name": "staging"}},
    "ConfigService/UpsertTemplate": {"template": {"name": "matrix", "config_values": {}}},
    "ConfigService/ApplyTemplate": {"template_name": "matrix", "environment": "staging"},
    "ConfigService/UpsertMaintenanceWindow": {
        "window": {"name": "matrix", "environment": "staging", "config_values": {}}
    },
    "ConfigService/DeleteMaintenanceWindow": {"name": "matrix-absent"},
    "FlagService/EvaluateFlag": {"flag_key": "matrix-flag"},
    "FlagService/GetFlag": {"flag_key": "matrix-flag"},
    "FlagService/UpsertFlag": {"flag": {"key": "matrix-flag", "name": "m"}},
    "FlagService/SetFlagEnabled": {"flag_key": "matrix-flag", "enabled": True},
    "FlagService/DeleteFlag": {"flag_key": "matrix-absent"},
    "FlagService/ReportFlagOutcome": {"flag_key": "matrix-flag", "successes": 1},
    "FlagService/RollbackFlag": {"flag_key": "matrix-flag", "steps": 1},
    "RateLimitService/CheckRateLimit": {"user_id": "u1", "environment": "staging"},
    "RateLimitService/GetRateLimit": {"limit_key": "matrix-limit"},
    "RateLimitService/UpsertRateLimit": {
        "rate_limit": {
            "key": "matrix-limit",
            "name": "m",
            "max_requests": 10,
            "time_window_seconds": 60,
            "scope_type": "SCOPE_TYPE_USER",
            "environment": "staging",
        }
    },
    "RateLimitService/DeleteRateLimit": {"limit_key": "matrix-absent"},
    "RateLimitService/RollbackRateLimit": {"limit_key": "matrix-limit", "steps": 1},
    "ChangeRequestService/ProposeChange": {
        "write": {
            "set_value": {
                "key": "api.base_url",
                "environment": "production",
                "value": "https://p.example.com",
            }
        }
    },
    "ChangeRequestService/ApproveChange": {"request_id": "absent", "content_digest": "x"},
    "BatchService/ApplyWrites": {
        "writes": [
            {
                "set_value": {
                    "key": "api.base_url",
                    "environment": "staging",
                    "value": "https://b.example.com",
                }
            }
        ]
    },
    "ChangeRequestService/RejectChange": {"request_id": "absent"},
    "ChangeRequestService/GetChangeRequest": {"request_id": "absent"},
    "AccessService/CreateToken": {"owner": "matrix", "grants": [{"role": "reader"}]},
    "AccessService/RevokeToken": {"token_id": "absent"},
    "AccessService/SetUserGrants": {"username": "matrix-cert", "grants": [{"role": "reader"}]},
}

ROLES = ("reader", "editor", "admin", "site_admin")


@dataclass
class Secured:
    running: Running
    tokens: dict[str, str]
    """Token by identity name: the four roles, and some narrowed grants."""
    gated: list[str]
    """The methods the server answers (asked of it: tests/e2e/methods.py), but for the
    open ones (health, reflection)."""


async def make_token(running: Running, owner: str, *grants: str, **options: Any) -> str:
    secret, _, _ = await running.application.access.create_token(
        owner,
        [parse_grant(text) for text in grants],
        WriteContext(actor=LOCAL_OPERATOR, reason="test"),
        **options,
    )
    return secret


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    async with serving(tmp_path / "secured.db", auth=True) as running:
        tokens = {role: await make_token(running, f"{role}-user", role) for role in ROLES}
        tokens["second_site_admin"] = await make_token(running, "second", "site_admin")
        tokens["payments_reader"] = await make_token(running, "narrow", "reader:payments.")
        served = await served_methods(running.channel)
        yield Secured(running, tokens, sorted(set(served) - OPEN))


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _method(path: str) -> Any:
    service_name, _, name = path.strip("/").partition("/")
    service = descriptor_pool.Default().FindServiceByName(service_name)
    return service.methods_by_name[name]


def _short(path: str) -> str:
    service_name, _, name = path.strip("/").partition("/")
    return f"{service_name.rsplit('.', 1)[-1]}/{name}"


def _request(path: str) -> Any:
    method = _method(path)
    message = message_factory.GetMessageClass(method.input_type)()
    return json_format.ParseDict(REQUESTS.get(_short(path), {}), message)


async def call(
    channel: grpc.aio.Channel, path: str, metadata: Sequence[tuple[str, str]]
) -> tuple[grpc.StatusCode, str]:
    """Calls any method by its path; a stream counts as served once it has sent a
    message or stayed open for half a second."""
    method = _method(path)
    response_class = message_factory.GetMessageClass(method.output_type)
    request = _request(path)
    kwargs: dict[str, Any] = {
        "request_serializer": type(request).SerializeToString,
        "response_deserializer": response_class.FromString,
    }
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path, **kwargs)(request, metadata=tuple(metadata))
            try:
                await asyncio.wait_for(stream.read(), 0.5)
            except TimeoutError:
                pass
            finally:
                stream.cancel()
        else:
            await channel.unary_unary(path, **kwargs)(request, metadata=tuple(metadata))
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def expected(role: str, path: str) -> str:
    """'allowed', 'denied' or 'propose' (refused: to be sent as a change request)."""
    short = _short(path)
    name = short.partition("/")[2]
    for reads_of, names in READS.items():
        if path.strip("/").split("/")[0].endswith(reads_of) and name in names.split():
            return "allowed"
    if short in STAGING_WRITES:
        return "allowed" if role != "reader" else "denied"
    if short in GLOBAL_WRITES:
        return {"site_admin": "allowed", "admin": "propose"}.get(role, "denied")
    if short in ADMIN_AND_UP:
        return "allowed" if role in ("admin", "site_admin") else "denied"
    if short in SITE_ADMIN_ONLY:
        return "allowed" if role == "site_admin" else "denied"
    raise AssertionError(f"the test has no expectation for {path}")


async def revision(running: Running) -> tuple[int, int]:
    """The revision and the number of history rows: what a refused call must not move."""
    async with running.application.store.read() as reader:
        current = await reader.current_revision()
        rows = await reader.history.history_after(0, 1_000_000)
    return current, len(rows)


async def test_every_rpc_answers_each_role_as_the_roles_say(secured: Secured) -> None:
    running = secured.running
    channel = running.channel
    assert set(secured.gated) == set(RULES), "every method served is in the table"
    assert set(secured.gated) >= {f"/switchyard.v1.{short}" for short in STAGING_WRITES}
    checked = 0
    for path in secured.gated:
        for role in ROLES:
            outcome = expected(role, path)
            before = await revision(running)
            code, details = await call(channel, path, bearer(secured.tokens[role]))
            checked += 1
            if outcome == "allowed":
                assert code not in (
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.INTERNAL,
                    grpc.StatusCode.UNKNOWN,
                ), f"{role} {path}: {code} {details}"
                assert "ProposeChange" not in details, f"{role} {path}: {details}"
                continue
            if outcome == "propose":
                assert code == grpc.StatusCode.FAILED_PRECONDITION, f"{role} {path}: {code}"
                assert "ProposeChange" in details
            else:
                assert code == grpc.StatusCode.PERMISSION_DENIED, f"{role} {path}: {code}"
                assert "permission" in details
            assert await revision(running) == before, f"{role} {path} changed something"
    assert checked == len(secured.gated) * len(ROLES)


@pytest.mark.parametrize("credential", ["none", "unknown", "malformed", "expired", "revoked"])
async def test_every_rpc_refuses_a_caller_without_valid_credentials(
    secured: Secured, credential: str
) -> None:
    running = secured.running
    if credential == "expired":
        token = await make_token(
            running, "brief", "site_admin", expires_at=datetime.now(UTC) + timedelta(seconds=0.3)
        )
        await asyncio.sleep(0.4)
        metadata = bearer(token)
    elif credential == "revoked":
        token = await make_token(running, "gone", "site_admin")
        listed = await running.application.access.list_tokens()
        revoked = next(t for t in listed if t.username == "gone")
        await running.application.access.revoke_token(
            revoked.id, WriteContext(actor=LOCAL_OPERATOR, reason="left")
        )
        metadata = bearer(token)
    elif credential == "unknown":
        metadata = bearer("swy_" + "A" * 43)
    elif credential == "malformed":
        metadata = (("authorization", "Basic dXNlcjpwYXNz"),)
    else:
        metadata = ()
    before = await revision(running)
    assert len(secured.gated) > 60
    for path in secured.gated:
        code, details = await call(running.channel, path, metadata)
        assert code == grpc.StatusCode.UNAUTHENTICATED, f"{credential} {path}: {code}"
        assert "token" in details or "authorization" in details or "authentication" in details
    assert await revision(running) == before
    denied = REGISTRY.get_sample_value(
        "switchyard_denied_calls_total",
        {"method": "/switchyard.v1.ConfigService/SetValue", "reason": "unauthenticated"},
    )
    assert denied is not None and denied >= 1


async def test_health_and_reflection_stay_open(secured: Secured) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    health = health_pb2_grpc.HealthStub(secured.running.channel)
    answer = await health.Check(health_pb2.HealthCheckRequest())
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(secured.running.channel)

    async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for response in reflection.ServerReflectionInfo(ask()):
        names = {s.name for s in response.list_services_response.service}
        assert "switchyard.v1.ConfigService" in names
        break


async def test_a_narrowed_grant_reads_only_its_keys(secured: Secured) -> None:
    from switchyard.gen.v1 import config_pb2 as pb

    running = secured.running
    admin = bearer(secured.tokens["site_admin"])
    for key in ("payments.timeout", "search.limit"):
        await running.config.CreateConfig(
            pb.CreateConfigRequest(
                config=pb.ConfigDefinition(
                    key=key,
                    type=pb.CONFIG_TYPE_NUMBER,
                    category="c",
                    value=_number(5),
                    is_active=True,
                )
            ),
            metadata=admin,
        )
    narrow = bearer(secured.tokens["payments_reader"])
    got = await running.config.GetValue(pb.GetValueRequest(key="payments.timeout"), metadata=narrow)
    assert got.value.number_value == 5
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await running.config.GetValue(pb.GetValueRequest(key="search.limit"), metadata=narrow)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = await running.config.ListConfigs(pb.ListConfigsRequest(), metadata=narrow)
    assert [c.key for c in listed.configs] == ["payments.timeout"]
    history = await running.config.GetHistory(pb.GetHistoryRequest(), metadata=narrow)
    assert {e.key for e in history.entries} == {"payments.timeout"}


def _number(value: float) -> Any:
    from google.protobuf import struct_pb2

    return struct_pb2.Value(number_value=value)


async def _create(running: Running, token: str, key: str, sensitive: bool = False) -> None:
    from switchyard.gen.v1 import config_pb2 as pb

    await running.config.CreateConfig(
        pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key=key,
                type=pb.CONFIG_TYPE_STRING,
                category="c",
                value=_text("plain-" + key),
                is_active=True,
                is_editable=True,
                is_sensitive=sensitive,
            )
        ),
        metadata=bearer(token),
    )


def _text(value: str) -> Any:
    from google.protobuf import struct_pb2

    return struct_pb2.Value(string_value=value)


async def test_sensitive_values_are_masked_for_callers_who_may_not_reveal_them(
    secured: Secured,
) -> None:
    from switchyard.api.masking import MASKED
    from switchyard.gen.v1 import config_pb2 as pb

    running = secured.running
    boss = secured.tokens["site_admin"]
    await _create(running, boss, "payments.webhook_host", sensitive=True)
    await running.config.SetValue(
        pb.SetValueRequest(
            key="payments.webhook_host", environment="staging", value=_text("staging-host")
        ),
        metadata=bearer(boss),
    )
    reader = bearer(secured.tokens["reader"])
    admin = bearer(secured.tokens["admin"])
    for who, shown in ((reader, MASKED), (admin, "staging-host")):
        got = await running.config.GetValue(
            pb.GetValueRequest(key="payments.webhook_host", environment="staging"), metadata=who
        )
        assert got.value.string_value == shown
        many = await running.config.GetValues(
            pb.GetValuesRequest(keys=["payments.webhook_host"], environment="staging"),
            metadata=who,
        )
        assert many.values[0].value.string_value == shown
    definition = await running.config.GetConfig(
        pb.GetConfigRequest(key="payments.webhook_host"), metadata=reader
    )
    assert definition.config.value.string_value == MASKED
    assert [o.value.string_value for o in definition.overrides] == [MASKED]
    history = await running.config.GetHistory(
        pb.GetHistoryRequest(key="payments.webhook_host"), metadata=reader
    )
    text = str(history)
    assert "staging-host" not in text and "plain-payments" not in text
    assert MASKED in text
    revealed = await running.config.GetHistory(
        pb.GetHistoryRequest(key="payments.webhook_host"), metadata=admin
    )
    assert "staging-host" in str(revealed)


async def test_a_watch_delivers_only_what_the_caller_may_read_and_masks_the_rest(
    secured: Secured,
) -> None:
    from switchyard.api.masking import MASKED
    from switchyard.gen.v1 import config_pb2 as pb

    running = secured.running
    boss = secured.tokens["site_admin"]
    await _create(running, boss, "payments.secret_host", sensitive=True)
    await _create(running, boss, "search.limit_text")
    start = (await running.application.config.get_value("search.limit_text", None)).revision
    narrow = running.config.WatchConfig(
        pb.WatchConfigRequest(environment="staging", from_revision=start),
        metadata=bearer(secured.tokens["payments_reader"]),
    )
    for key in ("search.limit_text", "payments.secret_host"):
        await running.config.SetValue(
            pb.SetValueRequest(key=key, environment="staging", value=_text("new-" + key)),
            metadata=bearer(boss),
        )
    seen = []
    while True:
        message = await asyncio.wait_for(narrow.read(), 5)
        if message.HasField("event"):
            seen.append((message.event.key, message.event.value.string_value))
            if message.event.key == "payments.secret_host":
                break
    narrow.cancel()
    assert seen == [("payments.secret_host", MASKED)]


async def test_token_changes_reach_only_watchers_who_administer_them(secured: Secured) -> None:
    from switchyard.gen.v1 import config_pb2 as pb

    running = secured.running
    start = running.application.config.revision
    request = pb.WatchConfigRequest(
        kinds=[pb.CHANGE_KIND_TOKEN, pb.CHANGE_KIND_CONFIG],
        environment="staging",
        from_revision=start,
    )
    watchers = {
        role: running.config.WatchConfig(request, metadata=bearer(secured.tokens[role]))
        for role in ("reader", "site_admin")
    }
    await make_token(running, "newcomer", "reader")
    await running.config.SetValue(
        pb.SetValueRequest(
            key="api.base_url", environment="staging", value=_text("https://w.example.com")
        ),
        metadata=bearer(secured.tokens["site_admin"]),
    )
    kinds: dict[str, list[int]] = {}
    for role, stream in watchers.items():
        kinds[role] = []
        while pb.CHANGE_KIND_CONFIG not in kinds[role]:
            message = await asyncio.wait_for(stream.read(), 5)
            if message.HasField("event"):
                kinds[role].append(message.event.kind)
        stream.cancel()
    assert pb.CHANGE_KIND_TOKEN in kinds["site_admin"]
    assert pb.CHANGE_KIND_TOKEN not in kinds["reader"]


async def test_site_admins_manage_tokens_over_the_api(secured: Secured) -> None:
    from switchyard.gen.v1 import access_pb2 as apb
    from switchyard.gen.v1 import access_pb2_grpc
    from switchyard.gen.v1 import config_pb2 as pb

    running = secured.running
    access = access_pb2_grpc.AccessServiceStub(running.channel)
    boss = bearer(secured.tokens["site_admin"])
    me = await access.WhoAmI(apb.WhoAmIRequest(), metadata=bearer(secured.tokens["reader"]))
    assert (me.username, me.role, me.authenticated) == ("reader-user", "reader", True)
    assert [g.role for g in me.grants] == ["reader"]

    made = await access.CreateToken(
        apb.CreateTokenRequest(
            owner="deployer",
            grants=[apb.Grant(role="editor", environments=["staging"])],
            reason="CI deploys staging",
            ticket="OPS-9",
        ),
        metadata=boss,
    )
    assert made.token.startswith("swy_") and made.api_token.owner == "deployer"
    deployer = bearer(made.token)
    await running.config.SetValue(
        pb.SetValueRequest(
            key="api.base_url", environment="staging", value=_text("https://d.example.com")
        ),
        metadata=deployer,
    )
    listed = await access.ListTokens(apb.ListTokensRequest(), metadata=boss)
    assert made.api_token.id in {t.id for t in listed.tokens}
    assert made.token not in str(listed), "the token itself is shown once only"

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await access.CreateToken(
            apb.CreateTokenRequest(owner="x", grants=[apb.Grant(role="owner")]), metadata=boss
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown role" in (bad.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as reserved:
        await access.CreateToken(
            apb.CreateTokenRequest(owner="local-operator", grants=[apb.Grant(role="reader")]),
            metadata=boss,
        )
    assert reserved.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    await access.RevokeToken(apb.RevokeTokenRequest(token_id=made.api_token.id), metadata=boss)
    with pytest.raises(grpc.aio.AioRpcError) as revoked:
        await access.WhoAmI(apb.WhoAmIRequest(), metadata=deployer)
    assert revoked.value.code() == grpc.StatusCode.UNAUTHENTICATED
