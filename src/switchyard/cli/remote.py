"""How a remote command reaches the server, and how its failures reach a person.

    @click.command()
    @remote_options
    def get(key: str, remote: RemoteOptions) -> None:
        async def call() -> None:
            async with connect(remote) as client:
                ...
        run(call(), remote)

`remote_options` adds the connection flags and resolves them, each from the first of:
the flag, its environment variable, the context (see `cli.contexts`), the default. A
client certificate is read from SWITCHYARD_CLIENT_TLS_CERT/KEY, not the server's own
SWITCHYARD_TLS_CERT/KEY, so that a shell that runs `serve` does not present the
server's certificate to another server by accident (`health` does that on purpose).

`run` turns every failed call into a message with advice and an exit code from
`cli.exit_codes`, never a traceback: the status, each field violation on its own line,
what ErrorInfo says, and a hint.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import click
import grpc

from switchyard.cli.contexts import load_contexts
from switchyard.cli.exit_codes import ExitCode, Failure, exit_code_for
from switchyard.cli.output import OutputFormat, output_option
from switchyard.client import Client, TlsOptions, error_info, field_violations
from switchyard.startup import run_until_complete

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_ADDRESS = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 10.0
LONG_TIMEOUT = 300.0

_HINTS: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAUTHENTICATED: (
        "give a token: --token, SWITCHYARD_TOKEN, or a context "
        "(`switchyard context set NAME --token-file PATH`)"
    ),
    grpc.StatusCode.PERMISSION_DENIED: (
        "the token's grants do not allow this: ask a site admin for one that does "
        "(`switchyard token create --grant ...`)"
    ),
    grpc.StatusCode.NOT_FOUND: (
        "check the name: `switchyard list`, `flag list` and `limit list` show what exists"
    ),
    grpc.StatusCode.ABORTED: "it changed meanwhile: read it again, then retry",
    grpc.StatusCode.INTERNAL: "the server's log has the details",
    grpc.StatusCode.UNKNOWN: "the server's log has the details",
}


@dataclass(frozen=True)
class RemoteOptions:
    """Where and how to reach the server, resolved, and how to print the result."""

    address: str
    token: str | None
    tls: TlsOptions | None
    timeout: float
    output: OutputFormat
    context: str | None
    """The context the settings came from, if any."""


def remote_options(command: F) -> F:
    """Adds --address, --context, --token, --tls-ca, --tls-cert, --tls-key, --timeout and
    -o/--output to a Click command, and passes them resolved as `remote: RemoteOptions`.
    Raises click.BadParameter (exit 2) for an unknown context, a certificate without its
    key, or an unreadable token file."""
    return _remote_options(command, DEFAULT_TIMEOUT)


def long_remote_options(command: F) -> F:
    """`remote_options` for a command that moves the whole configuration (export, apply,
    import, diff -f): --timeout defaults to LONG_TIMEOUT, since a batch of thousands of
    writes takes seconds to check and commit."""
    return _remote_options(command, LONG_TIMEOUT)


def _remote_options(command: F, timeout_default: float) -> F:

    @functools.wraps(command)
    def resolved(
        *args: Any,
        address: str | None,
        context: str | None,
        token: str | None,
        tls_ca: str | None,
        tls_cert: str | None,
        tls_key: str | None,
        timeout: float,
        output: OutputFormat,
        **kwargs: Any,
    ) -> Any:
        flags = {
            "address": address,
            "token": token,
            "tls-ca": tls_ca,
            "tls-cert": tls_cert,
            "tls-key": tls_key,
        }
        remote = resolve(flags, context, timeout, output)
        return command(*args, remote=remote, **kwargs)

    options = [
        click.option(
            "--address",
            envvar="SWITCHYARD_ADDRESS",
            metavar="HOST:PORT",
            help=f"The server [env SWITCHYARD_ADDRESS; else the context's; {DEFAULT_ADDRESS}].",
        ),
        click.option(
            "--context",
            envvar="SWITCHYARD_CONTEXT",
            metavar="NAME",
            help="A context of the contexts file [env SWITCHYARD_CONTEXT; else its current].",
        ),
        click.option(
            "--token",
            envvar="SWITCHYARD_TOKEN",
            help="Bearer token [env SWITCHYARD_TOKEN; else the context's token or token-file].",
        ),
        click.option(
            "--tls-ca",
            envvar="SWITCHYARD_TLS_CA",
            metavar="PATH",
            help="PEM CA certificates to verify a TLS server with [env SWITCHYARD_TLS_CA]. "
            "Any --tls-* option makes the connection TLS.",
        ),
        click.option(
            "--tls-cert",
            envvar="SWITCHYARD_CLIENT_TLS_CERT",
            metavar="PATH",
            help="PEM client certificate for mutual TLS [env SWITCHYARD_CLIENT_TLS_CERT].",
        ),
        click.option(
            "--tls-key",
            envvar="SWITCHYARD_CLIENT_TLS_KEY",
            metavar="PATH",
            help="PEM private key of --tls-cert [env SWITCHYARD_CLIENT_TLS_KEY].",
        ),
        click.option(
            "--timeout",
            envvar="SWITCHYARD_TIMEOUT",
            type=click.FloatRange(min=0, min_open=True),
            default=timeout_default,
            show_default=True,
            metavar="SECONDS",
            help="How long the command may wait for the server, in all.",
        ),
        output_option,
    ]
    decorated: Any = resolved
    for option in reversed(options):
        decorated = option(decorated)
    return cast(F, decorated)


def resolve(
    flags: dict[str, str | None], context: str | None, timeout: float, output: OutputFormat
) -> RemoteOptions:
    """RemoteOptions from what Click read (flag or environment, None when neither), the
    context named (else the file's current one) filling the gaps, then the defaults."""
    contexts = load_contexts()
    name = context or contexts.current
    settings = contexts.settings(name) if name else {}
    chosen = {key: value or settings.get(key) for key, value in flags.items()}
    token = chosen["token"]
    if token is None and "token-file" in settings:
        token = _read_token(Path(settings["token-file"]))
    tls = None
    if chosen["tls-ca"] or chosen["tls-cert"] or chosen["tls-key"]:
        try:
            tls = TlsOptions(
                ca_path=chosen["tls-ca"], cert_path=chosen["tls-cert"], key_path=chosen["tls-key"]
            )
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--tls-cert/--tls-key") from None
    return RemoteOptions(
        address=chosen["address"] or DEFAULT_ADDRESS,
        token=token,
        tls=tls,
        timeout=timeout,
        output=output,
        context=name,
    )


def _read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise click.BadParameter(
            f"cannot read the token file {path}: {error.strerror}", param_hint="token-file"
        ) from None


@asynccontextmanager
async def connect(options: RemoteOptions, *, deadline: bool = True) -> AsyncIterator[Client]:
    """A Client for the server `options` name, closed on leaving. The body may take
    `options.timeout` seconds in all, every call and page included (TimeoutError beyond,
    which `run` explains), unless `deadline` is False, for a stream that stays open.
    Raises Failure (exit 2) for a TLS file that cannot be read or holds no PEM data."""
    try:
        client = Client(options.address, token=options.token, tls=options.tls)
    except OSError as error:
        raise Failure(
            f"error: cannot read {error.filename}: {error.strerror}", ExitCode.USAGE
        ) from None
    except ValueError as error:
        raise Failure(f"error: {error}", ExitCode.USAGE) from None
    async with client:
        if not deadline:
            yield client
            return
        async with asyncio.timeout(options.timeout):
            yield client


def run(coroutine: Coroutine[Any, Any, T], options: RemoteOptions) -> T:
    """Runs a command's coroutine on a new event loop and returns its result. A failed
    call becomes a Failure: a message with advice on stderr and the exit code of its
    status (see `cli.exit_codes`); so does a command that outlives its --timeout."""
    try:
        return run_until_complete(coroutine)
    except grpc.aio.AioRpcError as error:
        raise Failure(explain(error, options), exit_code_for(error.code())) from None
    except TimeoutError:
        message = f"error: DEADLINE_EXCEEDED: no answer within {options.timeout:g}s"
        raise Failure(
            f"{message}\nhint: {_slow(options)}", exit_code_for(grpc.StatusCode.DEADLINE_EXCEEDED)
        ) from None


def _slow(options: RemoteOptions) -> str:
    return (
        f"is {options.address} the right address? a slow server or network needs a longer --timeout"
    )


def explain(error: grpc.aio.AioRpcError, options: RemoteOptions) -> str:
    """A failed call for a person: the status and message, each field violation on its
    own line (`  field: description`), what an ErrorInfo says, and a hint."""
    code = error.code()
    lines = [f"error: {code.name}: {error.details()}"]
    # A lone violation is often the message itself: say it once.
    lines.extend(line for line in _details(error) if line.strip() != error.details())
    if code == grpc.StatusCode.UNAVAILABLE:
        lines.append(
            f"hint: is a server running at {options.address}? (`make run` starts one on "
            f"{DEFAULT_ADDRESS}; a TLS server needs --tls-ca)"
        )
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        lines.append(f"hint: {_slow(options)}")
    elif code in _HINTS:
        lines.append(f"hint: {_HINTS[code]}")
    return "\n".join(lines)


def _details(error: grpc.aio.AioRpcError) -> list[str]:
    """The lines for the rich status details: BadRequest field violations and
    ErrorInfo metadata."""
    lines = [f"  {field}: {description}" for field, description in field_violations(error)]
    info = error_info(error)
    if info is not None:
        reason, metadata = info
        lines.append(f"  {reason}")
        lines.extend(f"  {key}: {value}" for key, value in sorted(metadata.items()))
    return lines


__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_TIMEOUT",
    "LONG_TIMEOUT",
    "RemoteOptions",
    "connect",
    "explain",
    "long_remote_options",
    "remote_options",
    "resolve",
    "run",
]
