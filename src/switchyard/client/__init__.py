"""The Python client of Switchyard: what application teams install.

    async with Client("switchyard:50051") as client:
        async with client.live(prefixes=["api."], environment="production") as live:
            timeout = live.get("api.timeout", 30)

`Client` holds the channel, the generated stubs (`config`, `flags`, `rate_limits`) and
plain-Python shortcuts; `LiveConfig` is an in-memory view kept current by WatchConfig.
`Client(address, tls=TlsOptions(ca_path=...), token=...)` reaches a server that requires
TLS (mutual TLS with `cert_path` and `key_path`) and a bearer token. Failed calls raise
`grpc.aio.AioRpcError`. This package imports only the generated stubs, grpcio,
grpcio-status, protobuf and the standard library, never the server's own packages.
"""

from switchyard.client._client import DEFAULT_CHANNEL_OPTIONS, ChannelOptions, Client
from switchyard.client._enums import enum_name
from switchyard.client._live import PROGRESS_TIMEOUT, ChangeCallback, LiveConfig
from switchyard.client._pages import all_pages
from switchyard.client._status import error_info, field_violations
from switchyard.client._tls import TlsOptions
from switchyard.client._values import from_value, to_value

__all__ = [
    "DEFAULT_CHANNEL_OPTIONS",
    "PROGRESS_TIMEOUT",
    "ChangeCallback",
    "ChannelOptions",
    "Client",
    "LiveConfig",
    "TlsOptions",
    "all_pages",
    "enum_name",
    "error_info",
    "field_violations",
    "from_value",
    "to_value",
]
