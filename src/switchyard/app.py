"""Wiring: the only place that builds concrete classes and starts the server."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from switchyard.api import config as config_api
from switchyard.api import reflection, unimplemented
from switchyard.api.errors import ErrorInterceptor
from switchyard.api.identity import LOCAL_OPERATOR, IdentityInterceptor
from switchyard.domain.errors import FailedPrecondition
from switchyard.service.config import ConfigService
from switchyard.service.ports import Store
from switchyard.service.seed import seed_demo
from switchyard.settings import Settings
from switchyard.store import migrate, open_store, pending

log = structlog.get_logger(__name__)

CONFIG_SERVICE = config_api.SERVICE_NAME
SERVED = (CONFIG_SERVICE,)
LISTED = (
    CONFIG_SERVICE,
    *(s.full_name for s in unimplemented.PENDING_SERVICES),
    health.SERVICE_NAME,
    reflection.SERVICE_NAME,
)

SERVER_OPTIONS = (
    # A second server on the same port must fail to bind, not silently share it.
    ("grpc.so_reuseport", 0),
    # Long-lived streams behind load balancers: ping idle connections, and accept the
    # pings clients send at that rate.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
)


@dataclass
class Application:
    """The parts of a running Switchyard, for the server and for tests."""

    store: Store
    config: ConfigService

    async def close(self) -> None:
        await self.store.close()


async def open_application(settings: Settings) -> Application:
    """Opens the database, applies pending migrations (see `Settings.migrate`) and, on a
    new database, the demo keys. Raises FailedPrecondition when the schema is behind and
    start-up is not to migrate it, Unavailable when the database cannot be reached."""
    store = await open_store(settings.database_url)
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
        config = ConfigService(store)
        await config.start()
        if settings.seeds_demo and await seed_demo(config, LOCAL_OPERATOR):
            log.info("seeded demo keys", revision=config.revision)
    except BaseException:
        await store.close()
        raise
    return Application(store=store, config=config)


async def start_server(
    application: Application,
    listen: str,
    *,
    extra_handlers: Sequence[grpc.GenericRpcHandler] = (),
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Builds and starts the gRPC server. Returns it, the bound port (useful with port 0)
    and its health servicer. `extra_handlers` are served by the same stack (interceptors
    included); the benchmarks add their null RPC this way."""
    server = grpc.aio.server(
        interceptors=[ErrorInterceptor(), IdentityInterceptor()], options=SERVER_OPTIONS
    )
    config_api.register(server, application.config)
    if extra_handlers:
        server.add_generic_rpc_handlers(tuple(extra_handlers))
    unimplemented.register(server)
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
    host = settings.listen.rsplit(":", 1)[0]
    log.info(
        "serving", database=_redact(settings.database_url), revision=application.config.revision
    )
    print(f"switchyard listening on {host}:{port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    log.info("shutting down", grace_seconds=settings.shutdown_grace_seconds)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(settings.shutdown_grace_seconds)
    await application.close()
    log.info("stopped")


def _redact(url: str) -> str:
    """A database URL fit for a log line: no password."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, location = rest.rpartition("@")
    user = credentials.split(":", 1)[0].split("/", 1)[0]
    return f"{scheme}://{user}:***@{location}"


__all__ = ["Application", "open_application", "serve", "start_server"]
