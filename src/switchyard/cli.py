"""The `switchyard` command: `serve` runs the server, `migrate` prepares a database."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import click

from switchyard import __version__
from switchyard.settings import Settings


def _run(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


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
    "--redis-url", envvar="SWITCHYARD_REDIS_URL", help="redis://host:port/db (shared cache)."
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
    help="Create the demo keys in a new database (default: yes).",
)
def serve(
    listen: str | None,
    database_url: str | None,
    redis_url: str | None,
    log_format: str | None,
    log_level: str | None,
    seed_demo: bool | None,
) -> None:
    """Run the gRPC server (migrating the database first)."""
    from switchyard import app, logs

    settings = _settings(
        listen=listen,
        database_url=database_url,
        redis_url=redis_url,
        log_format=log_format,
        log_level=log_level,
        seed_demo=seed_demo,
    )
    logs.configure(settings.log_format, settings.log_level)
    try:
        _run(app.serve(settings))
    except OSError as error:
        raise click.ClickException(str(error)) from error


@main.command()
@click.option("--database-url", envvar="SWITCHYARD_DATABASE_URL", help="The database to migrate.")
def migrate(database_url: str | None) -> None:
    """Apply pending schema migrations and exit."""
    from switchyard.store import migrate as apply
    from switchyard.store import open_store

    settings = _settings(database_url=database_url)

    async def run() -> list[int]:
        store = await open_store(settings.database_url)
        try:
            return await apply(store)
        finally:
            await store.close()

    applied = _run(run())
    click.echo(f"applied migrations: {applied}" if applied else "database is up to date")


def _settings(**flags: Any) -> Settings:
    """Flags win over environment variables, which win over defaults."""
    base = Settings.from_env()
    given = {name: value for name, value in flags.items() if value is not None}
    return dataclasses.replace(base, **given)


__all__ = ["main"]
