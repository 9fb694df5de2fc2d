"""OpenFeature's flagd provider, unmodified, against a real Switchyard: in RPC mode (each
evaluation asked over flagd.evaluation.v2), in in-process mode (the flagd document synced
over flagd.sync.v1 and evaluated by the provider itself), and the protocols underneath,
v1 included.

The provider is synchronous, with threads and a gRPC channel of its own: every call into
it runs in a worker thread, so that the server's event loop keeps serving it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.schemas.protobuf.flagd.evaluation.v1 import evaluation_pb2 as v1
from openfeature.schemas.protobuf.flagd.evaluation.v1 import evaluation_pb2_grpc as v1_grpc
from openfeature.schemas.protobuf.flagd.evaluation.v2 import evaluation_pb2 as v2
from openfeature.schemas.protobuf.flagd.evaluation.v2 import evaluation_pb2_grpc as v2_grpc
from openfeature.schemas.protobuf.flagd.sync.v1 import sync_pb2, sync_pb2_grpc

from switchyard.api import flagd as flagd_api
from switchyard.api import flags as flags_api
from switchyard.api.interceptor import SwitchyardInterceptor
from switchyard.app import LISTED, Application, open_application
from switchyard.gen.v1 import flag_pb2 as pb
from switchyard.gen.v1 import flag_pb2_grpc
from switchyard.settings import Settings

from .conftest import Running, serving
from .helpers import eventually, expect_status

USERS = 100


# --- helpers ------------------------------------------------------------------------------


def flag(key: str, **fields: Any) -> pb.FeatureFlag:
    values: dict[str, Any] = {"key": key, "name": key, "is_enabled": True, **fields}
    return pb.FeatureFlag(**values)


def struct(fields: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(fields)
    return out


def rules(*items: dict[str, Any]) -> struct_pb2.ListValue:
    out = struct_pb2.ListValue()
    out.extend(items)  # type: ignore[arg-type]  # the stub omits dicts, which extend accepts
    return out


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(moment)
    return out


async def upsert(stub: flag_pb2_grpc.FlagServiceStub, *flags: pb.FeatureFlag) -> int:
    revision = 0
    for each in flags:
        revision = (await stub.UpsertFlag(pb.UpsertFlagRequest(flag=each))).revision
    return revision


class Events:
    """Configuration changes a client heard, from the provider's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed: list[str] = []

    def __call__(self, details: EventDetails) -> None:
        with self._lock:
            self._changed.extend(details.flags_changed or ())

    def heard(self, key: str) -> bool:
        with self._lock:
            return key in self._changed


@contextlib.asynccontextmanager
async def provider(
    domain: str, port: int, resolver: ResolverType
) -> AsyncIterator[tuple[OpenFeatureClient, Events]]:
    """A client of a flagd provider connected to `port`, ready (synced, in-process), and
    what it hears of configuration changes; shut down afterwards."""
    made = FlagdProvider(
        resolver_type=resolver, host="127.0.0.1", port=port, tls=False, deadline_ms=5000
    )
    await asyncio.to_thread(api.set_provider_and_wait, made, domain)
    client = api.get_client(domain)
    events = Events()
    client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, events)
    try:
        yield client, events
    finally:
        await asyncio.to_thread(api.shutdown)


def port_of(running: Running) -> int:
    return int(running.address.rsplit(":", 1)[1])


@pytest.fixture
def flags(running: Running) -> flag_pb2_grpc.FlagServiceStub:
    return flag_pb2_grpc.FlagServiceStub(running.channel)


# --- RPC mode -------------------------------------------------------------------------------


async def test_rpc_mode_resolves_values_reasons_and_variants(
    running: Running, flags: flag_pb2_grpc.FlagServiceStub
) -> None:
    await upsert(
        flags,
        flag("checkout", rollout_percentage=100),
        flag(
            "banner",
            variants=struct({"on": "new", "off": "old"}),
            enabled_for_roles=["admin"],
        ),
        flag(
            "limits",
            variants=struct({"on": {"max": 10, "mode": "fast"}, "off": {"max": 1}}),
            targeting_rules=rules(
                {"id": "big", "when": {"attribute": "seats", "op": "gte", "value": 50}}
            ),
        ),
        flag("dark", is_enabled=False, rollout_percentage=100),
    )
    admin = EvaluationContext("u1", {"roles": ["admin"]})
    guest = EvaluationContext("u2", {"roles": ["guest"], "seats": 80})

    async with provider("rpc", port_of(running), ResolverType.RPC) as (client, _):

        def ask() -> dict[str, Any]:
            return {
                "checkout": client.get_boolean_details("checkout", False, guest),
                "banner-admin": client.get_string_details("banner", "?", admin),
                "banner-guest": client.get_string_details("banner", "?", guest),
                "limits": client.get_object_details("limits", {}, guest),
                "dark": client.get_boolean_details("dark", True, admin),
                "unknown": client.get_boolean_details("no-such-flag", True, admin),
                "mismatch": client.get_integer_details("banner", 7, admin),
            }

        got = await asyncio.to_thread(ask)

    checkout = got["checkout"]
    assert (checkout.value, checkout.variant, checkout.reason) == (True, "on", "STATIC")
    assert (got["banner-admin"].value, got["banner-admin"].reason) == ("new", "TARGETING_MATCH")
    assert got["banner-admin"].variant == "on"
    assert (got["banner-guest"].value, got["banner-guest"].reason) == ("old", "DEFAULT")
    assert got["limits"].value == {"max": 10, "mode": "fast"}
    assert got["limits"].reason == "TARGETING_MATCH"
    assert (got["dark"].value, got["dark"].reason, got["dark"].variant) == (True, "DISABLED", None)
    assert (got["unknown"].value, got["unknown"].error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
    assert (got["mismatch"].value, got["mismatch"].error_code) == (7, ErrorCode.TYPE_MISMATCH)


async def test_rpc_mode_hears_a_change_and_drops_what_it_cached(
    running: Running, flags: flag_pb2_grpc.FlagServiceStub
) -> None:
    await upsert(flags, flag("checkout", rollout_percentage=100))
    context = EvaluationContext("u1")
    async with provider("rpc-change", port_of(running), ResolverType.RPC) as (client, events):

        def checkout() -> tuple[bool, str | None]:
            details = client.get_boolean_details("checkout", False, context)
            return details.value, str(details.reason)

        assert await asyncio.to_thread(checkout) == (True, "STATIC")
        assert await asyncio.to_thread(checkout) == (True, "CACHED")  # STATIC is cached

        await upsert(flags, flag("checkout", rollout_percentage=0))

        async def heard() -> bool:
            return events.heard("checkout")

        await eventually(heard)
        assert await asyncio.to_thread(checkout) == (False, "STATIC")


# --- in-process mode ------------------------------------------------------------------------


def sample_contexts(seed: int = 11) -> list[EvaluationContext]:
    rng = random.Random(seed)
    made = []
    for index in range(USERS):
        attributes: dict[str, Any] = {
            "roles": rng.sample(["admin", "editor", "viewer"], rng.randint(0, 1)),
            "groups": rng.sample(["beta", "staff"], rng.randint(0, 1)),
            "environment": rng.choice(["prod", "staging", "dev"]),
        }
        if rng.random() < 0.8:
            attributes["app_version"] = rng.choice(["1.9.0", "2.0", "2.3.1", "v3"])
        made.append(EvaluationContext(f"user_{index}", attributes))
    return made


def switchyard_context(context: EvaluationContext) -> pb.EvaluationContext:
    attributes: dict[str, Any] = dict(context.attributes)
    return pb.EvaluationContext(
        user_id=context.targeting_key or "",
        roles=attributes.pop("roles", []),
        groups=attributes.pop("groups", []),
        environment=attributes.pop("environment", ""),
        attributes=struct(attributes),
    )


async def test_in_process_mode_agrees_with_evaluate_flag_user_by_user(
    running: Running, flags: flag_pb2_grpc.FlagServiceStub
) -> None:
    await upsert(
        flags,
        flag("rollout", rollout_percentage=40),
        flag(
            "targeted",
            variants=struct({"on": "blue", "off": "grey", "green": "green"}),
            enabled_environments=["prod", "staging"],
            enabled_for_users=["user_3", "user_4"],
            enabled_for_roles=["admin"],
            targeting_rules=rules(
                {
                    "id": "new-app",
                    "when": {"attribute": "app_version", "op": "semver_gte", "value": "2.0.0"},
                    "variant": "green",
                }
            ),
            rollout_percentage=25,
        ),
        flag("v1-split", rollout_percentage=50, bucketing_version=1),
    )
    contexts = sample_contexts()
    async with provider("local", port_of(running), ResolverType.IN_PROCESS) as (client, events):

        def ask() -> list[tuple[Any, ...]]:
            return [
                (
                    client.get_boolean_details("rollout", False, context),
                    client.get_string_details("targeted", "?", context),
                    client.get_boolean_details("v1-split", True, context),
                )
                for context in contexts
            ]

        answers = await asyncio.to_thread(ask)
        seen = set()
        for context, (rollout, targeted, v1_split) in zip(contexts, answers, strict=True):
            for key, details in (("rollout", rollout), ("targeted", targeted)):
                expected = await flags.EvaluateFlag(
                    pb.EvaluateFlagRequest(flag_key=key, context=switchyard_context(context))
                )
                assert details.error_code is None, (key, context, details)
                assert details.variant == expected.variant, (key, context)
                value = expected.value.WhichOneof("kind")
                assert details.value == getattr(expected.value, value), (key, context)
                seen.add((key, details.variant))
            # Bucketed as flagd did before fractional v3: left out, answered by the caller.
            assert (v1_split.value, v1_split.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
        # The sample exercises every branch it claims to.
        assert seen == {
            ("rollout", "on"),
            ("rollout", "off"),
            ("targeted", "on"),
            ("targeted", "off"),
            ("targeted", "green"),
        }

        # A change made through FlagService reaches the provider's own copy.
        user = EvaluationContext("user_77", {"environment": "prod"})
        before = await asyncio.to_thread(client.get_string_value, "targeted", "?", user)
        await upsert(
            flags,
            flag(
                "targeted",
                variants=struct({"on": "blue", "off": "grey", "green": "green"}),
                enabled_for_users=["user_77"],
            ),
        )

        async def applied() -> bool:
            value = await asyncio.to_thread(client.get_string_value, "targeted", "?", user)
            return value == "blue" and events.heard("targeted")

        await eventually(applied)
        assert before != "blue"


# --- the protocols, called directly ---------------------------------------------------------


async def test_evaluation_v1_and_v2_both_answer(
    running: Running, flags: flag_pb2_grpc.FlagServiceStub
) -> None:
    await upsert(
        flags,
        flag("limit", variants=struct({"on": 10, "off": 2}), rollout_percentage=100),
        flag("ratio", variants=struct({"on": 0.75, "off": 0}), enabled_for_users=["u1"]),
        flag("label", variants=struct({"on": "a", "off": "b"}), rollout_percentage=100),
        flag("listy", variants=struct({"on": [1], "off": [2]}), rollout_percentage=100),
        flag("dark", is_enabled=False, rollout_percentage=100),
    )
    first = v1_grpc.ServiceStub(running.channel)
    second = v2_grpc.ServiceStub(running.channel)
    context = struct({"targetingKey": "u1", "roles": ["admin"]})

    limit = await first.ResolveInt(v1.ResolveIntRequest(flag_key="limit", context=context))
    assert (limit.value, limit.variant, limit.reason) == (10, "on", "STATIC")
    assert limit.metadata["switchyardRevision"] >= 1
    assert limit.metadata["switchyardReason"] == "DEFAULT"
    ratio = await first.ResolveFloat(v1.ResolveFloatRequest(flag_key="ratio", context=context))
    assert (ratio.value, ratio.reason) == (0.75, "TARGETING_MATCH")
    everything = await first.ResolveAll(v1.ResolveAllRequest(context=context))
    assert everything.flags["limit"].double_value == 10
    assert everything.flags["label"].string_value == "a"
    assert everything.flags["ratio"].reason == "TARGETING_MATCH"
    assert "dark" not in everything.flags  # DISABLED flags are left out
    assert "listy" not in everything.flags  # AnyFlag cannot carry a list

    dark = await second.ResolveBoolean(v2.ResolveBooleanRequest(flag_key="dark", context=context))
    assert dark.reason == "DISABLED"
    assert not dark.HasField("value") and not dark.HasField("variant")
    label = await second.ResolveString(v2.ResolveStringRequest(flag_key="label", context=context))
    assert (label.value, label.variant) == ("a", "on")

    mismatch = await expect_status(
        second.ResolveInt(v2.ResolveIntRequest(flag_key="ratio", context=context)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert (mismatch.details() or "").startswith("TYPE_MISMATCH")
    await expect_status(
        first.ResolveObject(v1.ResolveObjectRequest(flag_key="listy", context=context)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await expect_status(
        second.ResolveBoolean(v2.ResolveBooleanRequest(flag_key="nope", context=context)),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_status(
        first.ResolveBoolean(
            v1.ResolveBooleanRequest(flag_key="label", context=struct({"targetingKey": 5}))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_sync_serves_the_document_and_no_static_context(
    running: Running, flags: flag_pb2_grpc.FlagServiceStub
) -> None:
    await upsert(flags, flag("checkout", rollout_percentage=100))
    sync = sync_pb2_grpc.FlagSyncServiceStub(running.channel)
    fetched = await sync.FetchAllFlags(sync_pb2.FetchAllFlagsRequest())
    document = json.loads(fetched.flag_configuration)
    assert document["flags"]["checkout"]["defaultVariant"] == "on"
    metadata = await sync.GetMetadata(sync_pb2.GetMetadataRequest())
    assert len(metadata.metadata) == 0
    assert set(flagd_api.SERVICE_NAMES) <= set(LISTED)


# --- streams, on a server with short intervals -----------------------------------------------


@contextlib.asynccontextmanager
async def quick_server(database: Path) -> AsyncIterator[tuple[Application, grpc.aio.Channel]]:
    """FlagService and the flagd services with sub-second keep-alive and refresh."""
    settings = Settings(
        listen="127.0.0.1:0", database_url=f"sqlite:///{database}", poll_seconds=0.2
    )
    application = await open_application(settings)
    server = grpc.aio.server(interceptors=[SwitchyardInterceptor()])
    flags_api.register(server, application.flags)
    flagd_api.register(
        server, application.flags, application.bus, keep_alive_seconds=0.2, refresh_seconds=0.2
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield application, channel
    finally:
        application.stop_watchers()
        await channel.close()
        await server.stop(None)
        await application.close()


async def next_of(call: Any, kind: Callable[[Any], bool], within: float = 5.0) -> Any:
    """The next message of a stream that `kind` accepts."""

    async def read() -> Any:
        while True:
            message = await call.read()
            assert message is not grpc.aio.EOF
            if kind(message):
                return message

    return await asyncio.wait_for(read(), within)


def changed_keys(message: Any) -> set[str]:
    return set(message.data["flags"].keys())


async def test_event_stream_announces_changes_time_and_keep_alive(tmp_path: Path) -> None:
    async with quick_server(tmp_path / "events.db") as (application, channel):
        flags = flag_pb2_grpc.FlagServiceStub(channel)
        soon = datetime.now(UTC) + timedelta(seconds=1.5)
        await upsert(
            flags,
            flag("base", enabled_for_roles=["admin"]),
            flag("follower", prerequisite_features=["base"], rollout_percentage=100),
            flag("ending", end_date=timestamp(soon), rollout_percentage=100),
        )
        listeners = application.flags.flag_listeners
        call = v2_grpc.ServiceStub(channel).EventStream(v2.EventStreamRequest())
        assert (await call.read()).type == "provider_ready"
        await next_of(call, lambda m: m.type == "keep_alive")

        await upsert(flags, flag("base", enabled_for_roles=["editor"]))
        heard: set[str] = set()
        while not heard >= {"base", "follower", "ending"}:
            change = await next_of(call, lambda m: m.type == "configuration_change")
            keys = changed_keys(change)
            # A change names the flags that follow the changed one; time names "ending"
            # once it has ended (in the same message, should both fall together).
            assert keys <= {"base", "follower", "ending"}
            assert "ending" not in keys or datetime.now(UTC) >= soon
            heard |= keys

        call.cancel()

        async def released() -> bool:
            return application.flags.flag_listeners == listeners

        await eventually(released)


async def test_sync_flags_sends_a_new_document_on_change_and_in_time(tmp_path: Path) -> None:
    async with quick_server(tmp_path / "sync.db") as (_, channel):
        flags = flag_pb2_grpc.FlagServiceStub(channel)
        soon = datetime.now(UTC) + timedelta(seconds=1.5)
        await upsert(flags, flag("ending", end_date=timestamp(soon), rollout_percentage=100))
        call = sync_pb2_grpc.FlagSyncServiceStub(channel).SyncFlags(sync_pb2.SyncFlagsRequest())

        def entry(message: Any, key: str) -> Any:
            return json.loads(message.flag_configuration)["flags"].get(key)

        latest = await call.read()
        assert entry(latest, "ending")["defaultVariant"] == "on"
        await upsert(flags, flag("added", rollout_percentage=100))
        # Each message is a whole document: the change, then the end of "ending" (or
        # both at once, should they fall together).
        while entry(latest, "added") is None or entry(latest, "ending")["defaultVariant"] == "on":
            previous, latest = latest, await next_of(call, lambda m: True)
            assert latest.flag_configuration != previous.flag_configuration
        assert entry(latest, "added")["defaultVariant"] == "on"
        assert datetime.now(UTC) >= soon
        call.cancel()


async def test_streams_end_unavailable_when_the_server_shuts_down(tmp_path: Path) -> None:
    async with quick_server(tmp_path / "stop.db") as (application, channel):
        events = v1_grpc.ServiceStub(channel).EventStream(v1.EventStreamRequest())
        sync = sync_pb2_grpc.FlagSyncServiceStub(channel).SyncFlags(sync_pb2.SyncFlagsRequest())
        assert (await events.read()).type == "provider_ready"
        await sync.read()

        application.stop_watchers()

        for call in (events, sync):
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await next_of(call, lambda m: False)
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        late = v2_grpc.ServiceStub(channel).EventStream(v2.EventStreamRequest())
        await expect_status(late.read(), grpc.StatusCode.UNAVAILABLE)
        assert application.flags.flag_listeners == 0


@pytest.mark.parametrize("resolver", [ResolverType.RPC, ResolverType.IN_PROCESS])
async def test_providers_authenticate_with_a_token_over_tls(
    tmp_path: Path, resolver: ResolverType
) -> None:
    """With authentication on, a flagd provider sends a token as gRPC call credentials
    over TLS (`channel_credentials`); a reader's grant evaluates and syncs."""
    from switchyard.api.identity import LOCAL_OPERATOR
    from switchyard.domain.access import parse_grant
    from switchyard.service.context import WriteContext

    from ..certs import make_certificates

    certificates = make_certificates(tmp_path / "certs")
    settings = {
        "tls_cert": str(certificates.server.cert),
        "tls_key": str(certificates.server.key),
        "auth": True,
    }
    ca = grpc.ssl_channel_credentials(certificates.ca.read_bytes())
    async with serving(tmp_path / "tls.db", channel_credentials=ca, **settings) as running:
        ctx = WriteContext(LOCAL_OPERATOR, reason="test")
        boss, _, _ = await running.application.access.create_token(
            "ops", [parse_grant("site_admin")], ctx
        )
        app_token, _, _ = await running.application.access.create_token(
            "checkout-service", [parse_grant("reader")], ctx
        )
        stub = flag_pb2_grpc.FlagServiceStub(running.channel)
        await stub.UpsertFlag(
            pb.UpsertFlagRequest(flag=flag("checkout", rollout_percentage=100)),
            metadata=(("authorization", f"Bearer {boss}"),),
        )
        made = FlagdProvider(
            resolver_type=resolver,
            host="localhost",
            port=port_of(running),
            deadline_ms=5000,
            channel_credentials=grpc.composite_channel_credentials(
                ca, grpc.access_token_call_credentials(app_token)
            ),
        )
        domain = f"tls-{resolver.value}"
        await asyncio.to_thread(api.set_provider_and_wait, made, domain)
        try:
            client = api.get_client(domain)
            details = await asyncio.to_thread(
                client.get_boolean_details, "checkout", False, EvaluationContext("u1")
            )
        finally:
            await asyncio.to_thread(api.shutdown)
    assert (details.value, details.error_code) == (True, None)
