"""Wiring: the only place that builds concrete classes and starts the server."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import secrets
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from switchyard.api import access as access_api
from switchyard.api import batch as batch_api
from switchyard.api import changes as changes_api
from switchyard.api import config as config_api
from switchyard.api import envoy as envoy_api
from switchyard.api import flagd as flagd_api
from switchyard.api import flags as flags_api
from switchyard.api import health as health_api
from switchyard.api import limits as limits_api
from switchyard.api import reflection, tls
from switchyard.api.identity import (
    LOCAL_OPERATOR,
    CredentialAuthenticator,
    current_principal,
    local_operator,
)
from switchyard.api.interceptor import Gate, ManagementLimit, SwitchyardInterceptor
from switchyard.api.permissions import Rule
from switchyard.cache.local import LocalCache
from switchyard.cache.shared import SharedCache
from switchyard.console import RunningConsole, start_console
from switchyard.counters.local import LocalCounters
from switchyard.counters.redis import RedisCounters
from switchyard.domain.errors import FailedPrecondition
from switchyard.domain.models import HistoryEntry, Principal
from switchyard.events.bus import ChangeBus
from switchyard.events.follower import HistoryFollower
from switchyard.events.relay import RedisRelay
from switchyard.logs import WriteLog
from switchyard.metrics import serve_metrics, track_pool, untrack_pool
from switchyard.redis_client import RedisClient
from switchyard.redis_client import connect as connect_redis
from switchyard.service.access import AccessService
from switchyard.service.batch import BatchService
from switchyard.service.changes import ChangeRequestService
from switchyard.service.config import ConfigService
from switchyard.service.context import utc_now
from switchyard.service.flags import FlagService
from switchyard.service.limits import DefaultLimit, RateLimitService
from switchyard.service.ports import Store
from switchyard.service.scheduler import Scheduler
from switchyard.service.seed import seed_demo
from switchyard.service.watch import WatchService
from switchyard.settings import Settings
from switchyard.store import migrate, open_store, pending, redact, sqlite_path
from switchyard.store.keyring import KeySource, key_source
from switchyard.store.sealing import check_keys
from switchyard.telemetry import Tracing, start_tracing

log = structlog.get_logger(__name__)

CONFIG_SERVICE = config_api.SERVICE_NAME
FLAG_SERVICE = flags_api.SERVICE_NAME
RATE_LIMIT_SERVICE = limits_api.SERVICE_NAME
CHANGE_REQUEST_SERVICE = changes_api.SERVICE_NAME
ACCESS_SERVICE = access_api.SERVICE_NAME
BATCH_SERVICE = batch_api.SERVICE_NAME
SERVED = (
    CONFIG_SERVICE,
    FLAG_SERVICE,
    RATE_LIMIT_SERVICE,
    CHANGE_REQUEST_SERVICE,
    ACCESS_SERVICE,
    BATCH_SERVICE,
)
LISTED = (
    *SERVED,
    *flagd_api.SERVICE_NAMES,
    envoy_api.SERVICE_NAME,
    health.SERVICE_NAME,
    reflection.SERVICE_NAME,
)

SERVER_OPTIONS = (
    # A second server on the same port must fail to bind, not silently share it.
    ("grpc.so_reuseport", 0),
    # Watch streams live for days behind load balancers and NATs: ping idle connections
    # every 30 s so that neither drops them and a dead peer is noticed in 40 s, and
    # accept the pings clients send (as often as every 10 s, with or without a call).
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    # gRPC core cancels calls beyond this many that the server has not picked up yet
    # (1,000 by default): a replica's watchers all reconnecting at once to the others
    # would see a tenth of their streams end CANCELLED before any handler ran.
    ("grpc.server.max_pending_requests", 20_000),
)


@dataclass
class Application:
    """The parts of a running Switchyard, for the server and for tests."""

    store: Store
    config: ConfigService
    flags: FlagService
    limits: RateLimitService
    watch: WatchService
    bus: ChangeBus
    follower: HistoryFollower
    scheduler: Scheduler
    access: AccessService
    changes: ChangeRequestService
    gate: Gate
    settings: Settings
    relay: RedisRelay | None = None
    redis: RedisClient | None = None
    tracing: Tracing | None = None

    def stop_watchers(self) -> None:
        """Ends every watch stream with UNAVAILABLE (clients resume elsewhere)."""
        self.bus.shutdown()

    async def close(self) -> None:
        self.bus.shutdown()
        await self.scheduler.stop()
        if self.relay is not None:
            await self.relay.stop()
        await self.follower.stop()
        await self.flags.close()
        await self.limits.close()
        await self.access.close()
        await self.config.close()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        pool = getattr(self.store, "pool", None)
        if pool is not None:
            untrack_pool(pool)
        await self.store.close()
        if self.tracing is not None:
            self.tracing.shutdown()


def encryption_keys(settings: Settings) -> KeySource:
    """Where the master keys of encrypted values come from (see `Settings.encryption_keys`).
    Raises KeyringError (FailedPrecondition) for keys or a key file that cannot be used."""
    return key_source(
        keys=settings.encryption_keys,
        key_file=settings.encryption_key_file,
        sqlite_file=sqlite_path(settings.database_url) if settings.embedded else None,
    )


async def open_application(settings: Settings) -> Application:
    """Opens the database, applies pending migrations (see `Settings.migrate`), seeds a
    new database's demo keys, and starts what runs in the background: the history
    follower, the Redis relay (with a Redis URL) and the scheduler. Raises
    FailedPrecondition when the schema is behind and start-up is not to migrate it,
    Unavailable when the database cannot be reached."""
    default_limit = DefaultLimit.parse(settings.rate_limit_default)  # refused before I/O
    DefaultLimit.parse(
        settings.management_rate_limit, "SWITCHYARD_MANAGEMENT_RATE_LIMIT", sliding=True
    )
    store = await open_store(settings.database_url, keys=encryption_keys(settings))
    track_pool(store.pool)
    # Their background flushes start with them: stopped if start-up fails after.
    started: list[FlagService | RateLimitService] = []
    try:
        if settings.migrates:
            applied = await migrate(store)
            if applied:
                log.info("migrated", versions=applied)
        elif behind := await pending(store):
            raise FailedPrecondition(
                f"the database schema lacks migrations {behind}: run `switchyard migrate` "
                "(or start with --migrate / SWITCHYARD_MIGRATE=1)"
            )
        keys = await check_keys(store)  # a missing master key stops start-up, not a read
        if keys.behind:
            log.warning(
                "data keys are wrapped by an older master key: run `switchyard keys rotate`",
                behind=keys.behind,
                current=keys.current_id,
            )
        redis = connect_redis(settings.redis_url) if settings.redis_url else None
        config = ConfigService(
            store,
            cache=LocalCache(maxsize=settings.cache_size),
            shared=SharedCache(redis) if redis is not None else None,
        )
        await config.start()
        flags = FlagService(
            store,
            clock=utc_now,
            flush_seconds=settings.flag_flush_seconds,
            stale_after=timedelta(days=settings.flag_stale_days),
        )
        await flags.start()
        started.append(flags)
        limits = RateLimitService(
            store,
            local=LocalCounters(),
            shared=RedisCounters(redis) if redis is not None else None,
            default=default_limit,
            clock=utc_now,
            flush_seconds=settings.rate_limit_flush_seconds,
        )
        await limits.start()
        started.append(limits)
        access = AccessService(store, clock=utc_now)
        await access.start()
        changes = ChangeRequestService(store, clock=utc_now)
        if settings.seeds_demo and await seed_demo(config, LOCAL_OPERATOR):
            log.info("seeded demo keys", revision=config.revision)
    except BaseException:
        for service in started:
            await service.close()
        untrack_pool(store.pool)
        await store.close()
        raise

    bus = ChangeBus()

    async def newest_revision() -> int:
        async with store.read() as reader:
            return await reader.current_revision()

    follower = HistoryFollower(
        config.history_after,
        bus,
        poll_interval=settings.poll_seconds,
        newest=newest_revision,
    )
    relay = RedisRelay(redis, follower) if redis is not None else None
    scheduler = Scheduler(config, clock=utc_now)
    write_log = WriteLog(_caller)

    def committed(revision: int, entries: Sequence[HistoryEntry]) -> None:
        write_log(revision, entries)
        follower.kick("local")
        if relay is not None:
            relay.announce(revision)

    config.add_listener(committed)
    flags.add_commit_listener(committed)
    limits.add_commit_listener(committed)
    access.add_commit_listener(committed)
    changes.add_commit_listener(committed)
    bus.add_listener(lambda change: config.apply(change.revision, change.entries))
    bus.add_listener(lambda change: flags.apply(change.revision, change.entries))
    bus.add_listener(lambda change: limits.apply(change.revision, change.entries))
    bus.add_listener(lambda change: access.apply(change.revision, change.entries))
    bus.add_listener(lambda change: scheduler.kick())
    follower.start(config.revision)
    if relay is not None:
        relay.start()
    scheduler.start()
    watch = WatchService(
        store,
        bus,
        config,
        progress_interval=settings.watch_progress_seconds,
        queue_revisions=settings.watch_queue_revisions,
        stall_seconds=settings.stream_stall_seconds,
    )
    return Application(
        store=store,
        config=config,
        flags=flags,
        limits=limits,
        watch=watch,
        bus=bus,
        follower=follower,
        scheduler=scheduler,
        access=access,
        changes=changes,
        gate=build_gate(settings, access, limits),
        settings=settings,
        relay=relay,
        redis=redis,
        tracing=start_tracing(settings.otlp_endpoint),
    )


def _caller() -> Principal | None:
    """Who makes the call being served; None outside one (the scheduler's changes)."""
    try:
        return current_principal()
    except LookupError:
        return None


def build_gate(settings: Settings, access: AccessService, limits: RateLimitService) -> Gate:
    """What every call passes: authentication when it is on, the permission table, and
    the allowances against abuse. The allowances are per identity, so they apply with
    authentication on: without it every caller is the one local operator."""
    if not settings.authenticates:
        return Gate(local_operator, protected=lambda: access.protected_environments)
    management = DefaultLimit.parse(
        settings.management_rate_limit, "SWITCHYARD_MANAGEMENT_RATE_LIMIT", sliding=True
    )
    return Gate(
        CredentialAuthenticator(access),
        protected=lambda: access.protected_environments,
        management_limit=None
        if management is None
        else ManagementLimit(limits, management.max_requests, management.window_seconds),
        max_streams=settings.max_streams_per_identity,
    )


async def start_server(
    application: Application,
    listen: str,
    *,
    extra_handlers: Sequence[grpc.GenericRpcHandler] = (),
    extra_rules: Mapping[str, Rule] | None = None,
    credentials: grpc.ServerCredentials | None = None,
    private_socket: str | None = None,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Builds and starts the gRPC server. Returns it, the bound port (useful with port 0)
    and its health servicer. `extra_handlers` are served by the same stack (interceptors
    included, with their permission `extra_rules`); the benchmarks add their null RPC
    this way. With `credentials` (see `listen_credentials`) the port speaks TLS only, else
    plaintext only. `private_socket` is the path of a Unix socket the same stack serves in
    plaintext, for the web console in this process (its directory must be private: the
    callers on it authenticate as on any port, but it bypasses TLS). Raises OSError when
    an address cannot be listened on."""
    options = (
        *SERVER_OPTIONS,
        ("grpc.max_receive_message_length", application.settings.max_message_bytes),
    )
    interceptors: list[grpc.aio.ServerInterceptor] = [SwitchyardInterceptor(application.gate)]
    if application.tracing is not None:
        interceptors.insert(0, application.tracing.interceptor())  # its span covers ours
    server = grpc.aio.server(interceptors=interceptors, options=options)
    writers = {
        CONFIG_SERVICE: config_api.register(server, application.config, application.watch),
        FLAG_SERVICE: flags_api.register(server, application.flags),
        RATE_LIMIT_SERVICE: limits_api.register(server, application.limits),
    }
    changes_api.register(server, application.changes, writers, application.config.sensitive_keys)
    batch_api.register(
        server,
        BatchService(application.store),
        writers,
        application.gate,
    )
    access_api.register(server, application.access)
    envoy_api.register(server, application.limits)
    flagd_api.register(
        server,
        application.flags,
        application.bus,
        stall_seconds=application.settings.stream_stall_seconds,
    )
    if extra_handlers:
        server.add_generic_rpc_handlers(tuple(extra_handlers))
        application.gate.add_rules(extra_rules or {})
    health_servicer = health_api.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable(server, LISTED)
    refused = f"cannot listen on {listen}: the address is in use or not available"
    try:
        if credentials is None:
            port = server.add_insecure_port(listen)
        else:
            port = server.add_secure_port(listen, credentials)
    except RuntimeError as error:  # grpc 1.85 raises where older versions returned 0
        raise OSError(refused) from error
    if port == 0:
        raise OSError(refused)
    if private_socket is not None and not server.add_insecure_port(f"unix:{private_socket}"):
        raise OSError(f"cannot listen on the private socket {private_socket}")
    await server.start()
    for name in ("", *SERVED):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


def listen_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """The credentials `settings` say to listen with: None for plaintext. Raises
    ValueError for a half-given TLS configuration and tls.CertificateError (a ValueError
    too) for a certificate, key or client CA file that cannot be read or used."""
    settings.transport_security()  # refuses a half-given configuration
    if not (settings.tls_cert and settings.tls_key):
        return None
    return tls.server_credentials(settings.tls_cert, settings.tls_key, settings.tls_client_ca)


async def serve(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT, then drains in-flight calls and closes the store."""
    # Before the database: a bad certificate, or an open port nobody has to authenticate
    # to, stops start-up before anything is migrated.
    settings.check_exposure()
    credentials = listen_credentials(settings)
    security = settings.transport_security()
    application = await open_application(settings)
    with tempfile.TemporaryDirectory(prefix="switchyard-") as private:  # mode 0700
        socket_path = os.path.join(private, "api.sock") if settings.console_listen else None
        try:
            server, port, health_servicer = await start_server(
                application, settings.listen, credentials=credentials, private_socket=socket_path
            )
        except BaseException:
            await application.close()
            raise
        console = None
        if socket_path is not None:
            try:
                console = await serve_console(application, socket_path)
            except BaseException:
                await server.stop(None)
                await application.close()
                raise
        await _run(settings, application, server, port, health_servicer, security, console)


def settle() -> None:
    """Called once start-up is done, before serving. What start-up made (modules,
    descriptors, stubs, the application) lives as long as the process: it is left out
    of every later full garbage collection, whose pause holds the event loop for as long
    as walking every object takes. A batch of 5,000 writes brings on full collections;
    about half of each was spent walking these."""
    gc.freeze()


async def serve_console(application: Application, private_socket: str) -> RunningConsole:
    """Starts the web console on `settings.console_listen`, calling the API over the
    server's `private_socket` (see `start_server`), and has the server trust it to name
    the browsers' addresses. Raises OSError when it cannot listen there, ValueError for a
    bad session key."""
    settings = application.settings
    if not settings.console_listen:
        raise ValueError("the console is off (console_listen is unset)")
    relay_key = secrets.token_urlsafe(32)
    application.gate.trust_relay(relay_key)
    return await start_console(
        settings.console_listen,
        f"unix:{private_socket}",
        authenticates=settings.authenticates,
        session_key=settings.console_session_key,
        relay_key=relay_key,
        tls_cert=settings.tls_cert,
        tls_key=settings.tls_key,
    )


async def _run(
    settings: Settings,
    application: Application,
    server: grpc.aio.Server,
    port: int,
    health_servicer: health.aio.HealthServicer,
    security: str,
    console: RunningConsole | None,
) -> None:
    """Serves until SIGTERM or SIGINT, then stops in order: health first, watchers (and
    the console's live streams with them), the console, the gRPC server, the store."""
    if settings.metrics_listen:
        serve_metrics(settings.metrics_listen)
        log.info("metrics", listen=settings.metrics_listen)
    host = settings.listen.rsplit(":", 1)[0]
    log.info(
        "serving",
        database=redact(settings.database_url),
        revision=application.config.revision,
        transport=security,
        console=console.url if console else None,
    )
    settle()
    print(f"switchyard listening on {host}:{port} ({security})", flush=True)
    if console is not None:
        print(f"switchyard console on {console.url}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    log.info("shutting down", grace_seconds=settings.shutdown_grace_seconds)
    await health_servicer.enter_graceful_shutdown()
    application.stop_watchers()
    if console is not None:
        await console.stop()
    await server.stop(settings.shutdown_grace_seconds)
    await application.close()
    log.info("stopped")


__all__ = [
    "Application",
    "encryption_keys",
    "listen_credentials",
    "open_application",
    "serve",
    "serve_console",
    "settle",
    "start_server",
]
