"""The `switchyard` command: `serve` runs the server, `migrate` prepares a database,
`health` asks a running server whether it serves (for container health checks)."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from switchyard import __version__
from switchyard.settings import DEFAULT_LISTEN, Settings
from switchyard.startup import run_until_complete

# Listen addresses meaning "every interface", which a probe reaches on loopback.
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "[::]"})


@click.group()
@click.version_option(__version__, prog_name="switchyard")
def main() -> None:
    """Switchyard: configuration, feature flags and rate limits over gRPC."""


@main.command()
@click.option("--listen", envvar="SWITCHYARD_LISTEN", help="HOST:PORT to serve gRPC on.")
@click.option(
    "--database-url",
    envvar="SWITCHYARD_DATABASE_URL",
    help="sqlite:///path/to.db (embedded) or oracle://user:password@host:port/service.",
)
@click.option(
    "--redis-url",
    envvar="SWITCHYARD_REDIS_URL",
    help="Redis for the shared cache and change notices: redis://host:6379/0, "
    "redis+sentinel://host:26379/service or redis+cluster://host:7000.",
)
@click.option(
    "--log-format",
    envvar="SWITCHYARD_LOG_FORMAT",
    type=click.Choice(["console", "json"]),
    help="Log lines for people (console) or machines (json).",
)
@click.option("--log-level", envvar="SWITCHYARD_LOG_LEVEL", help="debug, info, warning or error.")
@click.option(
    "--seed-demo/--no-seed-demo",
    default=None,
    help="Create the demo keys in a new database (default: for SQLite only).",
)
@click.option(
    "--metrics-listen",
    envvar="SWITCHYARD_METRICS_LISTEN",
    help="HOST:PORT to serve Prometheus metrics on (/metrics); off when unset.",
)
@click.option(
    "--migrate/--no-migrate",
    default=None,
    help="Apply pending schema migrations at start-up (default: for SQLite only).",
)
def serve(
    listen: str | None,
    database_url: str | None,
    redis_url: str | None,
    log_format: str | None,
    log_level: str | None,
    seed_demo: bool | None,
    metrics_listen: str | None,
    migrate: bool | None,
) -> None:
    """Run the gRPC server (migrating an embedded database first)."""
    from switchyard import app, logs
    from switchyard.domain.errors import SwitchyardError

    settings = _settings(
        listen=listen,
        database_url=database_url,
        redis_url=redis_url,
        log_format=log_format,
        log_level=log_level,
        seed_demo=seed_demo,
        metrics_listen=metrics_listen,
        migrate=migrate,
    )
    logs.configure(settings.log_format, settings.log_level)
    try:
        run_until_complete(app.serve(settings))
    except (OSError, SwitchyardError) as error:
        raise click.ClickException(_explain(error)) from error


@main.command()
@click.option("--database-url", envvar="SWITCHYARD_DATABASE_URL", help="The database to migrate.")
def migrate(database_url: str | None) -> None:
    """Apply pending schema migrations and exit."""
    from switchyard.domain.errors import SwitchyardError
    from switchyard.store import migrate as apply
    from switchyard.store import open_store

    settings = _settings(database_url=database_url)

    async def run() -> list[int]:
        store = await open_store(settings.database_url)
        try:
            return await apply(store)
        finally:
            await store.close()

    try:
        applied = run_until_complete(run())
    except SwitchyardError as error:
        raise click.ClickException(_explain(error)) from error
    click.echo(f"applied migrations: {applied}" if applied else "database is up to date")


@main.command()
@click.option(
    "--address",
    envvar="SWITCHYARD_LISTEN",
    default=DEFAULT_LISTEN,
    show_default=True,
    help="HOST:PORT of the server (a wildcard listen address is probed on 127.0.0.1).",
)
@click.option(
    "--service",
    default="",
    show_default=True,
    help="A service name to ask about; empty asks about the whole server.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=3.0,
    show_default=True,
    help="Seconds to wait for the answer, connecting included.",
)
def health(address: str, service: str, timeout: float) -> None:
    """Ask a running server's gRPC health service; exit 0 when SERVING, else 1."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = probe_address(address)
    request = health_pb2.HealthCheckRequest(service=service)
    try:
        with grpc.insecure_channel(target) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(request, timeout=timeout)
    except grpc.RpcError as error:
        code = error.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            message = f"unreachable: {target}: {error.details()}"
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
            message = f"unreachable: {target}: no answer within {timeout:g}s"
        elif code == grpc.StatusCode.NOT_FOUND:
            message = f"SERVICE_UNKNOWN: {service!r}"
        else:
            message = f"error: {code.name}: {error.details()}"
        click.echo(message, err=True)
        raise SystemExit(1) from None
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    click.echo(status)
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        raise SystemExit(1)


def probe_address(listen: str) -> str:
    """Where a client on the same host reaches a server listening on `listen`:
    `0.0.0.0:P`, `[::]:P` and `:P` become `127.0.0.1:P`; anything else is used as it is."""
    host, sep, port = listen.rpartition(":")
    if sep and host in _WILDCARD_HOSTS:
        return f"127.0.0.1:{port}"
    return listen


def _explain(error: BaseException) -> str:
    """An error for a person at a terminal: the message and the driver's reason under it,
    which a gRPC caller is not shown."""
    cause = error.__cause__
    return f"{error}\n  caused by: {cause}" if cause is not None else str(error)


def _settings(**flags: Any) -> Settings:
    """Flags win over environment variables, which win over defaults."""
    base = Settings.from_env()
    given = {name: value for name, value in flags.items() if value is not None}
    return dataclasses.replace(base, **given)


__all__ = ["main"]
