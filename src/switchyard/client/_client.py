"""Client: one grpc.aio channel to a Switchyard server, its three services' stubs, and
plain-Python shortcuts for the calls applications make most.

Failed calls raise `grpc.aio.AioRpcError` as grpc does: `error.code()` is the status
(NOT_FOUND, INVALID_ARGUMENT, ABORTED for a stale `expected_version`, ...), and the
README's error table says what each means. There is no error hierarchy of the client's
own to learn, and the rich details (`google.rpc.BadRequest`, `ErrorInfo`) stay in the
trailing metadata where the standard tooling finds them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import grpc

from switchyard.client._live import LiveConfig
from switchyard.client._reads import read_values
from switchyard.client._tls import TlsOptions
from switchyard.client._token import token_interceptors
from switchyard.client._values import from_value, to_timestamp, to_value
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import config_pb2_grpc, flag_pb2_grpc, rate_limit_pb2_grpc

if TYPE_CHECKING:
    from switchyard.gen.v1.config_pb2_grpc import ConfigServiceAsyncStub
    from switchyard.gen.v1.flag_pb2_grpc import FlagServiceAsyncStub
    from switchyard.gen.v1.rate_limit_pb2_grpc import RateLimitServiceAsyncStub

ChannelOptions = Sequence[tuple[str, Any]]

DEFAULT_CHANNEL_OPTIONS: ChannelOptions = (
    # Watch streams stay open for days: ping the connection when it is idle so that a dead
    # server or a dropped NAT mapping is noticed (the server accepts a ping every 10 s).
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # Reconnect to a restarted server as LiveConfig's own backoff does (grpc's default
    # waits up to two minutes between attempts).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 10_000),
)
HISTORY_PAGE = 100


class Client:
    """A connection to a Switchyard server. Create it in async code (grpc.aio channels
    belong to an event loop) and close it, best with `async with Client(address) as c:`.

    `channel_options` are grpc channel arguments, applied over `DEFAULT_CHANNEL_OPTIONS`.
    `tls` (`TlsOptions(ca_path=...)`, with `cert_path` and `key_path` for mutual TLS)
    makes the channel a TLS one, as do grpc `credentials` built by hand; give one or the
    other. `token` goes with every call, streams included, as `authorization: Bearer
    <token>`; over plaintext too, which is for a server on loopback only.

    Raises ValueError for both `tls` and `credentials`, an empty token, or a TLS file
    that holds no PEM data, and OSError for one that cannot be read.
    """

    def __init__(
        self,
        address: str,
        *,
        channel_options: ChannelOptions | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        tls: TlsOptions | None = None,
        token: str | None = None,
    ) -> None:
        options = list({**dict(DEFAULT_CHANNEL_OPTIONS), **dict(channel_options or ())}.items())
        if tls is not None:
            if credentials is not None:
                raise ValueError("give tls or credentials, not both")
            credentials = tls.channel_credentials()
        interceptors = token_interceptors(token) if token is not None else None
        if credentials is None:
            self.channel: grpc.aio.Channel = grpc.aio.insecure_channel(
                address, options=options, interceptors=interceptors
            )
        else:
            self.channel = grpc.aio.secure_channel(
                address, credentials, options=options, interceptors=interceptors
            )
        # The stubs' overloads pick the async flavour for an aio channel, but grpcio has no
        # type information for mypy to see that with: say it.
        self.config = cast(
            "ConfigServiceAsyncStub", config_pb2_grpc.ConfigServiceStub(self.channel)
        )
        self.flags = cast("FlagServiceAsyncStub", flag_pb2_grpc.FlagServiceStub(self.channel))
        self.rate_limits = cast(
            "RateLimitServiceAsyncStub", rate_limit_pb2_grpc.RateLimitServiceStub(self.channel)
        )
        self._views: set[LiveConfig] = set()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the live views made from this client, then the channel."""
        for view in list(self._views):
            await view.close()
        await self.channel.close()

    # --- reads and writes as plain values ----------------------------------------------

    async def get_value(self, key: str, environment: str | None = None) -> Any:
        """The effective value of `key` in `environment` (the base value when None).
        Raises AioRpcError NOT_FOUND for an unknown or inactive key."""
        reply = await self.config.GetValue(
            pb.GetValueRequest(key=key, environment=environment or "")
        )
        return from_value(reply.value)

    async def get_values(
        self, keys: Iterable[str], environment: str | None = None
    ) -> dict[str, Any]:
        """The effective values of `keys`, 1000 to a call. Unknown or inactive keys are
        left out of the answer rather than failing it."""
        values, _ = await read_values(self.config, keys, environment)
        return values

    async def set_value(
        self,
        key: str,
        value: Any,
        *,
        environment: str | None = None,
        reason: str | None = None,
        ticket: str | None = None,
        expected_version: int | None = None,
        priority: int | None = None,
        expires_at: datetime | None = None,
        starts_at: datetime | None = None,
    ) -> int:
        """Sets the base value of `key` (no `environment`) or its override in
        `environment`, and returns the new revision (the current one when the value was
        already stored). `value` is any JSON-like value; None clears the base value.
        ABORTED when the key is not at `expected_version`, INVALID_ARGUMENT when the
        value does not fit the key."""
        request = pb.SetValueRequest(
            key=key,
            value=to_value(value),
            environment=environment or "",
            reason=reason or "",
            ticket=ticket or "",
        )
        if expected_version is not None:
            request.expected_version = expected_version
        if priority is not None:
            request.priority = priority
        if expires_at is not None:
            request.expires_at.CopyFrom(to_timestamp(expires_at))
        if starts_at is not None:
            request.starts_at.CopyFrom(to_timestamp(starts_at))
        reply = await self.config.SetValue(request)
        return int(reply.revision)

    async def history(
        self,
        key: str | None = None,
        *,
        environment: str | None = None,
        after_revision: int = 0,
    ) -> AsyncIterator[pb.HistoryEntry]:
        """The recorded changes (of one key, one environment, or after a revision),
        newest first, fetched a page at a time as they are iterated. `environment="-"`
        names the base layer only."""
        token = ""
        while True:
            page = await self.config.GetHistory(
                pb.GetHistoryRequest(
                    key=key or "",
                    environment=environment or "",
                    after_revision=after_revision,
                    page_size=HISTORY_PAGE,
                    page_token=token,
                )
            )
            for entry in page.entries:
                yield entry
            token = page.next_page_token
            if not token:
                return

    # --- live views --------------------------------------------------------------------

    def live(
        self,
        keys: Iterable[str] = (),
        prefixes: Iterable[str] = (),
        environment: str | None = None,
        *,
        progress_timeout: float | None = None,
    ) -> LiveConfig:
        """A view of `keys` and every key under `prefixes` in `environment` (every key
        when neither is given), kept current by WatchConfig: see LiveConfig. At most 1000
        keys and prefixes together (ValueError beyond: watch a prefix instead).

        `progress_timeout` is how long the stream may stay silent before the view
        reconnects, and how long each of its reads may take: 30 s by default, three of the
        server's default progress intervals; keep it above `watch_progress_seconds`."""
        view = LiveConfig(
            self.config,
            keys=keys,
            prefixes=prefixes,
            environment=environment,
            progress_timeout=progress_timeout,
            on_close=self._views.discard,
        )
        self._views.add(view)
        return view


__all__ = ["DEFAULT_CHANNEL_OPTIONS", "ChannelOptions", "Client"]
