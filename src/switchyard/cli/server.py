"""The server-side commands: `serve` runs the server, `migrate` prepares a database,
`verify` checks its invariants, `health` asks a running server whether it serves (for
container health checks), `keys` manages the master keys of encrypted values, `token`
and `user` manage who may call. They work on the database or the process itself, not
through the API (`cli.remote`)."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from switchyard.cli.options import reason_option, ticket_option
from switchyard.settings import DEFAULT_LISTEN, Settings
from switchyard.startup import run_until_complete

if TYPE_CHECKING:
    import grpc

T = TypeVar("T")

# Listen addresses meaning "every interface", which a probe reaches on loopback.
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "[::]"})


@click.command()
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
    "--console-listen",
    metavar="HOST:PORT",
    help="HOST:PORT to serve the web console on, or `off` (env SWITCHYARD_CONSOLE_LISTEN; "
    "default 127.0.0.1:8080).",
)
@click.option(
    "--otlp-endpoint",
    metavar="URL",
    help="Export traces over OTLP/gRPC to this collector (env SWITCHYARD_OTLP_ENDPOINT, "
    "else OTEL_EXPORTER_OTLP_ENDPOINT); off when unset.",
)
@click.option(
    "--migrate/--no-migrate",
    default=None,
    help="Apply pending schema migrations at start-up (default: for SQLite only).",
)
@click.option(
    "--tls-cert",
    envvar="SWITCHYARD_TLS_CERT",
    metavar="PATH",
    help="PEM certificate chain to serve TLS with (needs --tls-key); plaintext when unset.",
)
@click.option(
    "--tls-key", envvar="SWITCHYARD_TLS_KEY", metavar="PATH", help="PEM private key of --tls-cert."
)
@click.option(
    "--tls-client-ca",
    envvar="SWITCHYARD_TLS_CLIENT_CA",
    metavar="PATH",
    help="PEM CA certificates for mutual TLS: every client must present one they signed.",
)
@click.option(
    "--auth/--no-auth",
    default=None,
    help="Require every caller to authenticate with a bearer token or a client "
    "certificate (env SWITCHYARD_AUTH).",
)
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="Listen beyond loopback without authentication, knowingly (env SWITCHYARD_INSECURE).",
)
@click.option(
    "--console-insecure-http",
    is_flag=True,
    default=None,
    help="Serve the console beyond loopback over plain HTTP although callers sign in with "
    "tokens, knowingly: behind a proxy that terminates TLS (env "
    "SWITCHYARD_CONSOLE_INSECURE_HTTP).",
)
def serve(
    listen: str | None,
    database_url: str | None,
    redis_url: str | None,
    log_format: str | None,
    log_level: str | None,
    seed_demo: bool | None,
    metrics_listen: str | None,
    console_listen: str | None,
    otlp_endpoint: str | None,
    migrate: bool | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    auth: bool | None,
    insecure: bool | None,
    console_insecure_http: bool | None,
) -> None:
    """Run the gRPC server and the web console (migrating an embedded database first)."""
    from switchyard import app, logs
    from switchyard.api.tls import CertificateError
    from switchyard.console.sessions import SessionSealer
    from switchyard.domain.errors import SwitchyardError
    from switchyard.settings import console_listen as console_address

    settings = _settings(
        listen=listen,
        database_url=database_url,
        redis_url=redis_url,
        log_format=log_format,
        log_level=log_level,
        seed_demo=seed_demo,
        metrics_listen=metrics_listen,
        otlp_endpoint=otlp_endpoint,
        migrate=migrate,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        auth=auth,
        insecure=insecure,
        console_insecure_http=console_insecure_http,
    )
    if console_listen is not None:  # `off` is given as a flag too: None is "not given"
        settings = dataclasses.replace(settings, console_listen=console_address(console_listen))
    try:
        settings.transport_security()
        settings.check_exposure()
        if settings.console_listen:
            SessionSealer.from_setting(settings.console_session_key)  # before the database
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    logs.configure(settings.log_format, settings.log_level)
    try:
        run_until_complete(app.serve(settings))
    except (OSError, SwitchyardError, CertificateError) as error:
        raise click.ClickException(_explain(error)) from error


@click.command()
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


@click.group()
def keys() -> None:
    """Master keys of encrypted values: make one, see what each wraps, rotate."""


_KEYS_DATABASE = click.option(
    "--database-url", envvar="SWITCHYARD_DATABASE_URL", help="The database whose keys to use."
)
_KEY_FILE = click.option(
    "--key-file",
    envvar="SWITCHYARD_ENCRYPTION_KEY_FILE",
    metavar="PATH",
    help="The master keys, one KEY_ID:BASE64KEY a line, current first (else "
    "SWITCHYARD_ENCRYPTION_KEYS; keys are never taken on the command line).",
)


@keys.command("generate")
def keys_generate() -> None:
    """Print a new master key entry, KEY_ID:BASE64KEY, to put first in
    SWITCHYARD_ENCRYPTION_KEYS or the key file."""
    from switchyard.store.keyring import key_line, new_key

    click.echo(key_line(*new_key()))


@keys.command("status")
@_KEYS_DATABASE
@_KEY_FILE
def keys_status(database_url: str | None, key_file: str | None) -> None:
    """Show how many data keys each master key wraps (unwrapping every one); exit 1 when
    some are not under the current key yet."""
    from switchyard.store.sealing import check_keys

    status = _run_with_keys(database_url, key_file, check_keys)
    for key_id, count in sorted(status.data_keys.items()):
        mark = " (current)" if key_id == status.current_id else ""
        click.echo(f"{key_id}{mark}: {count} data key(s)")
    if not status.data_keys:
        click.echo("no encrypted values yet")
    if status.behind:
        click.echo(f"{status.behind} data key(s) to rotate: run `switchyard keys rotate`")
        raise SystemExit(1)


@keys.command("rotate")
@_KEYS_DATABASE
@_KEY_FILE
def keys_rotate(database_url: str | None, key_file: str | None) -> None:
    """Rewrap every data key under the current master key, in one transaction (all or
    nothing). The values themselves, the append-only history among them, do not change.
    Servers may keep running; give them the new key (second in their keyring) before, make
    it first everywhere, rotate, then drop the old key."""
    from switchyard.store.sealing import Rotation, rotate_keys

    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label="rewrapping data keys", file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        rotation: Rotation = _run_with_keys(
            database_url, key_file, lambda store: rotate_keys(store, progress=progress)
        )
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if not rotation.total:
        click.echo("no encrypted values yet: nothing to rotate")
        return
    click.echo(
        f"rewrapped {rotation.rewrapped} data key(s); all {rotation.total} are now under "
        f"{rotation.current_id}: older master keys may be removed from the keyring"
    )


def _run_with_keys(
    database_url: str | None, key_file: str | None, work: Callable[[Any], Awaitable[T]]
) -> T:
    """Runs `work(store)` against the database with the configured master keys."""
    from switchyard.app import encryption_keys
    from switchyard.domain.errors import FailedPrecondition, SwitchyardError
    from switchyard.store import open_store, pending

    settings = _settings(database_url=database_url, encryption_key_file=key_file)
    if key_file:
        settings = dataclasses.replace(settings, encryption_keys=None)

    async def run() -> T:
        store = await open_store(settings.database_url, keys=encryption_keys(settings))
        try:
            if behind := await pending(store):
                raise FailedPrecondition(
                    f"the database schema lacks migrations {behind}: run `switchyard migrate`"
                )
            return await work(store)
        finally:
            await store.close()

    try:
        return run_until_complete(run())
    except SwitchyardError as error:
        raise click.ClickException(_explain(error)) from error


@click.command()
@click.option("--database-url", envvar="SWITCHYARD_DATABASE_URL", help="The database to check.")
@_KEY_FILE
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report instead of lines.")
def verify(database_url: str | None, key_file: str | None, as_json: bool) -> None:
    """Check the database's invariants: the revision spine has no gap, the history
    agrees with the tables (replaying it rebuilds them), every sealed value opens with
    the configured keys, and the history's guards are in place. Exit 0 when they hold;
    1 when one does not (a line for each, naming its table, row and revision) or the
    database cannot be checked; 2 for a usage error. Reads one snapshot: servers may keep
    running."""
    from switchyard.service.integrity import verify as check
    from switchyard.store import ORACLE_PREFIX, SQLITE_PREFIX, sqlite_path

    url = _settings(database_url=database_url).database_url
    if url.startswith(SQLITE_PREFIX):
        if not sqlite_path(url).is_file():
            raise click.UsageError(
                f"no database at {sqlite_path(url)}", click.get_current_context()
            )
    elif not url.startswith(ORACLE_PREFIX):
        raise click.UsageError(
            "--database-url must be sqlite:///path/to.db or oracle://user:password@host/service"
        )
    try:
        report = _run_with_keys(database_url, key_file, check)
    except click.ClickException as error:
        if as_json:
            click.echo(json.dumps({"ok": False, "error": error.format_message()}))
        raise
    if as_json:
        click.echo(json.dumps(report.document(), indent=2))
    else:
        for violation in report.violations:
            click.echo(violation.line())
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        counts = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in report.checked.items())
        verdict = (
            "every invariant holds" if report.holds else f"{len(report.violations)} violation(s)"
        )
        click.echo(f"{verdict} ({counts})", err=True)
    if not report.holds:
        raise SystemExit(1)


@click.command()
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
@click.option(
    "--tls-ca",
    envvar="SWITCHYARD_TLS_CA",
    metavar="PATH",
    help="PEM CA certificates to verify a TLS server with (else the system's). The probe "
    "uses TLS when any --tls-* option is given.",
)
@click.option(
    "--tls-cert",
    envvar="SWITCHYARD_TLS_CERT",
    metavar="PATH",
    help="PEM client certificate for a server requiring mutual TLS (with --tls-key). "
    "Like --address, read from the server's own variable by default: a probe in the "
    "server's container presents the server's certificate.",
)
@click.option(
    "--tls-key", envvar="SWITCHYARD_TLS_KEY", metavar="PATH", help="PEM private key of --tls-cert."
)
@click.option(
    "--tls-server-name",
    envvar="SWITCHYARD_TLS_SERVER_NAME",
    metavar="NAME",
    help="The name to check the server's certificate against, when it names neither "
    "the address's host nor 127.0.0.1.",
)
def health(
    address: str,
    service: str,
    timeout: float,
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_server_name: str | None,
) -> None:
    """Ask a running server's gRPC health service; exit 0 when SERVING, else 1. Health
    needs no token, only the TLS the server requires."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = probe_address(address)
    request = health_pb2.HealthCheckRequest(service=service)
    credentials = _probe_credentials(tls_ca, tls_cert, tls_key, tls_server_name)
    options = [("grpc.ssl_target_name_override", tls_server_name)] if tls_server_name else []
    try:
        with (
            grpc.insecure_channel(target)
            if credentials is None
            else grpc.secure_channel(target, credentials, options=options)
        ) as channel:
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


def _probe_credentials(
    ca: str | None, cert: str | None, key: str | None, server_name: str | None
) -> grpc.ChannelCredentials | None:
    """The TLS credentials the health probe was given; None for plaintext."""
    from switchyard.client import TlsOptions

    if not (ca or cert or key or server_name):
        return None
    if bool(cert) != bool(key):
        raise click.UsageError(
            "a client certificate goes with its private key: give --tls-cert and --tls-key "
            "(SWITCHYARD_TLS_CERT and SWITCHYARD_TLS_KEY) together"
        )
    try:
        return TlsOptions(ca_path=ca, cert_path=cert, key_path=key).channel_credentials()
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    except OSError as error:
        raise click.ClickException(f"cannot read {error.filename}: {error.strerror}") from error


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


_DATABASE_OPTION = click.option(
    "--database-url", envvar="SWITCHYARD_DATABASE_URL", help="The database to work on."
)


@click.group()
def token() -> None:
    """API tokens, worked on offline against the database: the first one can be made
    before the server runs. Each change is recorded in the history."""


@token.command("create")
@click.option("--owner", required=True, help="The username the token acts as.")
@click.option(
    "--grant",
    "grants",
    multiple=True,
    required=True,
    help="ROLE[@ENV,...][:PREFIX,...], e.g. reader, editor@staging, admin:payments. "
    "Repeat for several. Roles: reader, editor, admin, site_admin.",
)
@click.option("--expires-in-days", type=click.FloatRange(min=0, min_open=True))
@click.option("--description")
@_DATABASE_OPTION
@reason_option
@ticket_option
def token_create(
    owner: str,
    grants: tuple[str, ...],
    expires_in_days: float | None,
    description: str | None,
    database_url: str | None,
    reason: str | None,
    ticket: str | None,
) -> None:
    """Create a token and print it: it is shown this once, and only its hash is kept."""
    from datetime import UTC, datetime, timedelta

    from switchyard.domain.access import parse_grant

    parsed = _parse_grants(grants, parse_grant)
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None

    async def run(access: Any, ctx: Any) -> tuple[str, Any, int]:
        result: tuple[str, Any, int] = await access.create_token(
            owner, parsed, ctx, expires_at=expires, description=description
        )
        return result

    secret, created, revision = _with_access(database_url, reason, ticket, run)
    click.echo(secret)
    click.echo(
        f"token {created.id} ({created.token_hint}…) for {owner}, revision {revision}; "
        "store it now: it cannot be shown again",
        err=True,
    )


@token.command("list")
@_DATABASE_OPTION
def token_list(database_url: str | None) -> None:
    """List tokens (never the tokens themselves: their first characters)."""
    from switchyard.domain.access import format_grant

    async def run(access: Any, ctx: Any) -> list[Any]:
        tokens: list[Any] = await access.list_tokens()
        return tokens

    for found in _with_access(database_url, None, None, run):
        state = "revoked" if found.revoked_at else "active"
        if found.expires_at and not found.revoked_at:
            state = f"expires {found.expires_at:%Y-%m-%d %H:%M}Z"
        grants = " ".join(format_grant(grant) for grant in found.grants)
        click.echo(f"{found.id}  {found.token_hint}…  {found.username}  {grants}  {state}")


@token.command("revoke")
@click.argument("token_id")
@_DATABASE_OPTION
@reason_option
@ticket_option
def token_revoke(
    token_id: str, database_url: str | None, reason: str | None, ticket: str | None
) -> None:
    """Revoke a token by its id: servers refuse it within their poll interval."""

    async def run(access: Any, ctx: Any) -> tuple[Any, int]:
        result: tuple[Any, int] = await access.revoke_token(token_id, ctx)
        return result

    _, revision = _with_access(database_url, reason, ticket, run)
    click.echo(f"revoked {token_id} at revision {revision}")


@click.group()
def user() -> None:
    """Users who sign in with a client certificate (its subject's common name)."""


@user.command("grant")
@click.argument("username")
@click.argument("grants", nargs=-1)
@_DATABASE_OPTION
@reason_option
@ticket_option
def user_grant(
    username: str,
    grants: tuple[str, ...],
    database_url: str | None,
    reason: str | None,
    ticket: str | None,
) -> None:
    """Set what USERNAME may do: GRANTS as for `token create --grant`; none disables."""
    from switchyard.domain.access import parse_grant

    parsed = _parse_grants(grants, parse_grant)

    async def run(access: Any, ctx: Any) -> tuple[Any, int]:
        result: tuple[Any, int] = await access.set_user_grants(username, parsed, ctx)
        return result

    _, revision = _with_access(database_url, reason, ticket, run)
    click.echo(f"{username}: {' '.join(grants) or 'disabled'} (revision {revision})")


def _parse_grants(texts: tuple[str, ...], parse: Any) -> list[Any]:
    from switchyard.domain.errors import InvalidArgument

    try:
        return [parse(text) for text in texts]
    except InvalidArgument as error:
        raise click.BadParameter(error.message, param_hint="grant") from error


def _with_access(
    database_url: str | None, reason: str | None, ticket: str | None, work: Any
) -> Any:
    """Runs `work(access_service, write_context)` against the database, offline, as
    the local operator at this terminal."""
    import getpass
    import socket

    from switchyard.api.identity import LOCAL_OPERATOR
    from switchyard.domain.errors import SwitchyardError
    from switchyard.service.access import AccessService
    from switchyard.service.context import WriteContext

    settings = _settings(database_url=database_url)
    actor = dataclasses.replace(
        LOCAL_OPERATOR, address=f"cli:{getpass.getuser()}@{socket.gethostname()}"
    )
    ctx = WriteContext(actor=actor, reason=reason, ticket=ticket)

    async def run() -> Any:
        store = await _prepared_store(settings)
        try:
            access = AccessService(store)
            await access.start()
            return await work(access, ctx)
        finally:
            await store.close()

    try:
        return run_until_complete(run())
    except SwitchyardError as error:
        raise click.ClickException(_explain(error)) from error


async def _prepared_store(settings: Settings) -> Any:
    """The database, its schema up to date, for work done offline before any server ran:
    a database the server would migrate at start-up (`Settings.migrates`: an embedded
    one, by default) is made and migrated here as the server would, so that the first
    token can exist before the first start. Any other must have been migrated by
    `switchyard migrate`: ClickException otherwise, and nothing is made."""
    from switchyard import logs
    from switchyard.store import migrate, open_store, pending, redact, sqlite_path

    url = settings.database_url
    if settings.embedded and not settings.migrates and not sqlite_path(url).exists():
        raise click.ClickException(
            f"there is no database at {sqlite_path(url)}: run `switchyard migrate` first"
        )
    # Log lines go to standard error: standard output carries the answer (a token).
    logs.configure(settings.log_format, "warning")
    store = await open_store(url)
    try:
        if settings.migrates:
            if applied := await migrate(store):
                click.echo(f"migrated the database {redact(url)}: {applied}", err=True)
        elif behind := await pending(store):
            raise click.ClickException(
                f"the database lacks migrations {behind}: run `switchyard migrate` first"
            )
    except BaseException:
        await store.close()
        raise
    return store


def _settings(**flags: Any) -> Settings:
    """Flags win over environment variables, which win over defaults."""
    base = Settings.from_env()
    given = {name: value for name, value in flags.items() if value is not None}
    return dataclasses.replace(base, **given)


__all__ = ["health", "keys", "migrate", "probe_address", "serve", "token", "user", "verify"]
