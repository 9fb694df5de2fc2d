"""The benchmarked server, as its own process: `python -m bench.server`.

It is the production stack (`open_application` + `start_server`, both interceptors, uvloop
as `switchyard serve` runs it) on a fresh SQLite file seeded with the demo keys, plus one
extra method, `/switchyard.bench.v1.Bench/Null`. The null RPC takes and returns
`google.protobuf.Empty` and does nothing, so whatever GetValue costs beyond it is the cost
of Switchyard's own hot path. It runs in a separate process so that the load generator and
the runner never share its interpreter (or its GIL).

It prints `bench server listening on 127.0.0.1:PORT` once it serves (followed by
` console URL` with `--console`), and stops on SIGTERM or SIGINT. With `--cprofile PATH`
(the fallback profiler when py-spy is not installed) it starts a cProfile on SIGUSR1, so
that start-up, migrations and warm-up stay out of it, and dumps it there when it stops.

The other benchmarks add what they need, off by default so the GetValue/null server
stays exactly as it was: `--metrics-listen HOST:PORT` serves Prometheus metrics as
`switchyard serve --metrics-listen` does (the hit-rate benchmark reads the L1 counters
there), `--null-fanout` adds the fan-out baseline of `bench.nullfanout`, and
`--redis-url URL` connects Redis as `switchyard serve --redis-url` does (the rate-limit
benchmarks count in a throwaway redis-server, `bench.redisproc`), `--token-file PATH`
turns authentication on and writes a token there (a reader's, or `--token-role`'s), and
`--console` starts the web console as `switchyard serve` does: uvicorn in the same event
loop, on a free loopback port, calling the API over a private Unix socket the same gRPC
server also listens on (the console benchmark, `bench.console`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import signal
import tempfile
from pathlib import Path

import grpc
from google.protobuf import empty_pb2

from bench import nullfanout
from switchyard import logs
from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.api.permissions import Rule
from switchyard.app import open_application, serve_console, settle, start_server
from switchyard.domain.access import Permission
from switchyard.domain.models import Grant
from switchyard.metrics import serve_metrics
from switchyard.service.context import WriteContext
from switchyard.settings import Settings
from switchyard.startup import run_until_complete

NULL_SERVICE = "switchyard.bench.v1.Bench"
NULL_METHOD = "Null"
NULL_PATH = f"/{NULL_SERVICE}/{NULL_METHOD}"
READY_PREFIX = "bench server listening on "
CONSOLE_MARK = " console "
"""With `--console`, the ready line goes on with this and the console's URL."""

_EMPTY = empty_pb2.Empty()


async def _null(request: empty_pb2.Empty, context: grpc.aio.ServicerContext) -> empty_pb2.Empty:
    """No work at all. A coroutine function, as GetValue's is: grpc.aio would run a plain
    function in its thread pool, which would make the baseline slower, not faster."""
    return _EMPTY


def null_handler() -> grpc.GenericRpcHandler:
    """The null RPC with protobuf (de)serializers, so both sides parse protobuf as they do
    for GetValue and only the servicer's work differs."""
    return grpc.method_handlers_generic_handler(
        NULL_SERVICE,
        {
            NULL_METHOD: grpc.unary_unary_rpc_method_handler(
                _null,
                request_deserializer=empty_pb2.Empty.FromString,
                response_serializer=empty_pb2.Empty.SerializeToString,
            )
        },
    )


async def _serve(
    workdir: Path,
    profiler: cProfile.Profile | None,
    metrics_listen: str | None = None,
    null_fanout: bool = False,
    redis_url: str | None = None,
    token_file: Path | None = None,
    otlp_endpoint: str | None = None,
    token_role: str = "reader",
    console: bool = False,
) -> None:
    settings = Settings(
        listen="127.0.0.1:0",
        database_url=f"sqlite:///{workdir}/bench.db",
        redis_url=redis_url,
        metrics_listen=metrics_listen,
        auth=token_file is not None,
        otlp_endpoint=otlp_endpoint,
        # A free loopback port; default session key (a random one), no TLS.
        console_listen="127.0.0.1:0" if console else None,
    )
    application = await open_application(settings)
    try:
        if token_file is not None:
            # Authentication on: a reader's token (by default), for the load generator
            # to send; the console benchmark asks for a site_admin's, to seed its keys
            # (a base value reaches the protected production environment).
            secret, _, _ = await application.access.create_token(
                "bench", [Grant(token_role)], WriteContext(LOCAL_OPERATOR, reason="bench")
            )
            await asyncio.to_thread(token_file.write_text, secret)
        handlers = [null_handler()]
        if null_fanout:
            handlers.append(nullfanout.handler(nullfanout.Broadcaster()))
        # Read-level rules: the null RPC passes the same gate as GetValue does.
        rules = {
            path: Rule(Permission.READ)
            for path in (NULL_PATH, nullfanout.WATCH_PATH, nullfanout.PUBLISH_PATH)
        }
        # `workdir` is a TemporaryDirectory (mode 0700), private as `switchyard serve`'s.
        socket_path = str(workdir / "api.sock") if console else None
        server, port, _ = await start_server(
            application,
            settings.listen,
            extra_handlers=handlers,
            extra_rules=rules,
            private_socket=socket_path,
        )
        # As `switchyard serve`: the server trusts the console's relay key, and uvicorn
        # serves in this event loop, calling the API over the private socket.
        web = await serve_console(application, socket_path) if socket_path else None
        if settings.metrics_listen:
            serve_metrics(settings.metrics_listen)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if profiler is not None:
            loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
        settle()  # as `switchyard serve` does before it serves
        # Only now: the runner may signal as soon as it reads this line.
        shown = f"{CONSOLE_MARK}{web.url}" if web is not None else ""
        print(f"{READY_PREFIX}127.0.0.1:{port}{shown}", flush=True)
        await stop.wait()
        if profiler is not None:
            profiler.disable()
        if web is not None:
            # In `switchyard serve`'s order: the watchers (and the console's live
            # streams with them), the console, then the gRPC server.
            application.stop_watchers()
            await web.stop()
        await server.stop(1.0)
    finally:
        await application.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__)
    parser.add_argument("--cprofile", type=Path, help="dump a cProfile of the run here")
    parser.add_argument("--metrics-listen", help="serve Prometheus metrics on HOST:PORT")
    parser.add_argument(
        "--null-fanout", action="store_true", help="add the fan-out baseline (bench.nullfanout)"
    )
    parser.add_argument("--redis-url", help="connect Redis, as `switchyard serve --redis-url`")
    parser.add_argument(
        "--token-file", type=Path, help="authentication on: write a reader's token here"
    )
    parser.add_argument(
        "--token-role",
        default="reader",
        help="the role of the --token-file token (default reader)",
    )
    parser.add_argument("--otlp-endpoint", help="export traces over OTLP/gRPC to this URL")
    parser.add_argument(
        "--console",
        action="store_true",
        help="also serve the web console, as `switchyard serve` does, on a free port",
    )
    args = parser.parse_args(argv)
    # Warnings only: a log line per request would be part of what is measured.
    logs.configure("console", "warning")
    profiler = cProfile.Profile() if args.cprofile is not None else None
    with tempfile.TemporaryDirectory(prefix="switchyard-bench-") as workdir:
        run_until_complete(
            _serve(
                Path(workdir),
                profiler,
                args.metrics_listen,
                args.null_fanout,
                args.redis_url,
                args.token_file,
                args.otlp_endpoint,
                args.token_role,
                args.console,
            )
        )
    if profiler is not None:
        profiler.dump_stats(args.cprofile)


if __name__ == "__main__":
    main()
