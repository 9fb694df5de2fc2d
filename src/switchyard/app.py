"""Wiring: the only place that builds concrete classes and starts the server."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from switchyard.api import config as config_api
from switchyard.api import envoy as envoy_api
from switchyard.api import flagd as flagd_api
from switchyard.api import flags as flags_api
from switchyard.api import limits as limits_api
from switchyard.api import reflection
from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.api.interceptor import SwitchyardInterceptor
from switchyard.cache.local import LocalCache
from switchyard.cache.shared import SharedCache
from switchyard.counters.local import LocalCounters
from switchyard.counters.redis import RedisCounters
from switchyard.domain.errors import FailedPrecondition
from switchyard.domain.models import HistoryEntry
from switchyard.events.bus import ChangeBus
from switchyard.events.follower import HistoryFollower
from switchyard.events.relay import RedisRelay
from switchyard.metrics import serve_metrics
from switchyard.redis_client import RedisClient
from switchyard.redis_client import connect as connect_redis
from switchyard.service.config import ConfigService
from switchyard.service.context import utc_now
from switchyard.service.flags import FlagService
from switchyard.service.limits import DefaultLimit, RateLimitService
from switchyard.service.ports import Store
from switchyard.service.scheduler import Scheduler
from switchyard.service.seed import seed_demo
from switchyard.service.watch import WatchService
from switchyard.settings import Settings
from switchyard.store import migrate, open_store, pending, redact

log = structlog.get_logger(__name__)

CONFIG_SERVICE = config_api.SERVICE_NAME
FLAG_SERVICE = flags_api.SERVICE_NAME
RATE_LIMIT_SERVICE = limits_api.SERVICE_NAME
SERVED = (CONFIG_SERVICE, FLAG_SERVICE, RATE_LIMIT_SERVICE)
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
    relay: RedisRelay | None = None
    redis: RedisClient | None = None

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
        await self.config.close()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        await self.store.close()


async def open_application(settings: Settings) -> Application:
    """Opens the database, applies pending migrations (see `Settings.migrate`), seeds a
    new database's demo keys, and starts what runs in the background: the history
    follower, the Redis relay (with a Redis URL) and the scheduler. Raises
    FailedPrecondition when the schema is behind and start-up is not to migrate it,
    Unavailable when the database cannot be reached."""
    default_limit = DefaultLimit.parse(settings.rate_limit_default)  # refused before I/O
    store = await open_store(settings.database_url)
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
        if settings.seeds_demo and await seed_demo(config, LOCAL_OPERATOR):
            log.info("seeded demo keys", revision=config.revision)
    except BaseException:
        for service in started:
            await service.close()
        await store.close()
        raise

    bus = ChangeBus()
    follower = HistoryFollower(config.history_after, bus, poll_interval=settings.poll_seconds)
    relay = RedisRelay(redis, follower) if redis is not None else None
    scheduler = Scheduler(config, clock=utc_now)

    def committed(revision: int, entries: Sequence[HistoryEntry]) -> None:
        follower.kick("local")
        if relay is not None:
            relay.announce(revision)

    config.add_listener(committed)
    flags.add_commit_listener(committed)
    limits.add_commit_listener(committed)
    bus.add_listener(lambda change: config.apply(change.revision, change.entries))
    bus.add_listener(lambda change: flags.apply(change.revision, change.entries))
    bus.add_listener(lambda change: limits.apply(change.revision, change.entries))
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
        relay=relay,
        redis=redis,
    )


async def start_server(
    application: Application,
    listen: str,
    *,
    extra_handlers: Sequence[grpc.GenericRpcHandler] = (),
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Builds and starts the gRPC server. Returns it, the bound port (useful with port 0)
    and its health servicer. `extra_handlers` are served by the same stack (interceptors
    included); the benchmarks add their null RPC this way."""
    server = grpc.aio.server(interceptors=[SwitchyardInterceptor()], options=SERVER_OPTIONS)
    config_api.register(server, application.config, application.watch)
    flags_api.register(server, application.flags)
    limits_api.register(server, application.limits)
    envoy_api.register(server, application.limits)
    flagd_api.register(server, application.flags, application.bus)
    if extra_handlers:
        server.add_generic_rpc_handlers(tuple(extra_handlers))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable(server, LISTED)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}: the address is in use or not available")
    await server.start()
    for name in ("", *SERVED):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


async def serve(settings: Settings) -> None:
    """Runs until SIGTERM or SIGINT, then drains in-flight calls and closes the store."""
    application = await open_application(settings)
    try:
        server, port, health_servicer = await start_server(application, settings.listen)
    except BaseException:
        await application.close()
        raise
    if settings.metrics_listen:
        serve_metrics(settings.metrics_listen)
        log.info("metrics", listen=settings.metrics_listen)
    host = settings.listen.rsplit(":", 1)[0]
    log.info(
        "serving", database=redact(settings.database_url), revision=application.config.revision
    )
    print(f"switchyard listening on {host}:{port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    log.info("shutting down", grace_seconds=settings.shutdown_grace_seconds)
    await health_servicer.enter_graceful_shutdown()
    application.stop_watchers()
    await server.stop(settings.shutdown_grace_seconds)
    await application.close()
    log.info("stopped")


__all__ = ["Application", "open_application", "serve", "start_server"]
