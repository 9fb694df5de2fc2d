"""Serving the console: uvicorn, in the server's own event loop, on a socket bound here
(so that port 0 works and the address in use is known before anything is printed)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn

from switchyard.console.app import build_app
from switchyard.console.gateway import Gateway
from switchyard.console.sessions import SessionSealer

SHUTDOWN_SECONDS = 5
"""How long open requests get to finish when the console stops."""
_WILDCARDS = {"", "0.0.0.0", "::"}
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the process's own (`switchyard serve`) stop
    the gRPC server and the console together, in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningConsole:
    url: str
    port: int
    _server: _Server
    _task: asyncio.Task[None]
    _gateway: Gateway

    async def stop(self) -> None:
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._gateway.close()


def _bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(128)
    except (OSError, ValueError) as error:
        sock.close()
        raise OSError(
            f"the console cannot listen on {listen} ({error}): pass --console-listen "
            "HOST:PORT (or SWITCHYARD_CONSOLE_LISTEN), or `off`"
        ) from error
    sock.setblocking(False)
    return sock


def allowed_hosts(listen: str) -> list[str]:
    """The Host names the console answers: loopback names for a console on loopback,
    the name it was given otherwise, any name on a wildcard address."""
    host = listen.rpartition(":")[0].strip("[]")
    if host in _WILDCARDS:
        return ["*"]
    if host in {"127.0.0.1", "localhost", "::1"} or host.startswith("127."):
        return [*_LOOPBACK_NAMES, host]
    return [host]


async def start_console(
    listen: str,
    api_target: str,
    *,
    authenticates: bool,
    session_key: str | None = None,
    relay_key: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> RunningConsole:
    """Starts the console on `listen` (HOST:PORT; port 0 picks one), calling the API at
    `api_target` (the server's private socket), which asks callers to authenticate or not
    (`authenticates`: the sign-in page asks for a token, or offers to go on as the local
    operator). `relay_key` is what the server trusts to
    name the browser's address (`Gate.trust_relay`). HTTPS with `tls_cert` and `tls_key`.
    Raises OSError when it cannot listen there, ValueError for a bad session key."""
    sealer = SessionSealer.from_setting(session_key)
    https = bool(tls_cert and tls_key)
    sock = _bind(listen)
    gateway = Gateway(api_target, relay_key)
    app = build_app(
        gateway,
        sealer,
        https=https,
        authenticates=authenticates,
        allowed_hosts=allowed_hosts(listen),
    )
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        ssl_certfile=tls_cert if https else None,
        ssl_keyfile=tls_key if https else None,
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise OSError(f"the console stopped while starting on {listen}")
        await asyncio.sleep(0.01)
    port = sock.getsockname()[1]
    host = listen.rpartition(":")[0] or "127.0.0.1"
    shown = "127.0.0.1" if host.strip("[]") in _WILDCARDS else host
    scheme = "https" if https else "http"
    return RunningConsole(f"{scheme}://{shown}:{port}", port, server, task, gateway)


__all__ = ["SHUTDOWN_SECONDS", "RunningConsole", "allowed_hosts", "start_console"]
