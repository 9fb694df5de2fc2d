"""Client security options: `token` goes with every call, unary and streaming (the live
view's WatchConfig included), over plaintext and TLS alike; `TlsOptions` refuses what
cannot work before any connection is tried. Against a real grpc.aio server on loopback
that records what each call brought."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from switchyard.client import Client, TlsOptions
from switchyard.gen.v1 import config_pb2 as pb

from ..certs import Certificates, make_certificates
from .conftest import eventually

TOKEN = "s3cret-t0ken"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@dataclass
class Recorder:
    """What each call to the recording server brought as `authorization`, in order."""

    address: str = ""
    calls: list[tuple[str, str | None]] = field(default_factory=list)

    def record(self, method: str, context: grpc.aio.ServicerContext) -> None:
        found = dict(context.invocation_metadata() or ()).get("authorization")
        self.calls.append((method, None if found is None else str(found)))

    def methods(self) -> set[str]:
        return {method for method, _ in self.calls}


@contextlib.asynccontextmanager
async def recording_server(
    credentials: grpc.ServerCredentials | None = None,
) -> AsyncIterator[Recorder]:
    """Answers GetValue, GetValues and WatchConfig as an empty Switchyard at revision 1
    would (a watch sends one progress message and then stays open)."""
    recorder = Recorder()

    async def get_value(request: pb.GetValueRequest, context: grpc.aio.ServicerContext) -> None:
        recorder.record("GetValue", context)
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no key {request.key}")

    async def get_values(
        request: pb.GetValuesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetValuesResponse:
        recorder.record("GetValues", context)
        return pb.GetValuesResponse(missing_keys=request.keys, revision=1)

    async def watch(
        request: pb.WatchConfigRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchConfigResponse]:
        recorder.record("WatchConfig", context)
        yield pb.WatchConfigResponse(progress=pb.Progress(revision=1))
        await asyncio.Event().wait()  # open until the client cancels

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "switchyard.v1.ConfigService",
                {
                    "GetValue": grpc.unary_unary_rpc_method_handler(
                        get_value,
                        request_deserializer=pb.GetValueRequest.FromString,
                        response_serializer=pb.GetValueResponse.SerializeToString,
                    ),
                    "GetValues": grpc.unary_unary_rpc_method_handler(
                        get_values,
                        request_deserializer=pb.GetValuesRequest.FromString,
                        response_serializer=pb.GetValuesResponse.SerializeToString,
                    ),
                    "WatchConfig": grpc.unary_stream_rpc_method_handler(
                        watch,
                        request_deserializer=pb.WatchConfigRequest.FromString,
                        response_serializer=pb.WatchConfigResponse.SerializeToString,
                    ),
                },
            ),
        )
    )
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    recorder.address = f"127.0.0.1:{port}"
    try:
        yield recorder
    finally:
        await server.stop(None)


@pytest.mark.parametrize("transport", ["plaintext", "tls"])
async def test_the_token_goes_with_unary_and_streaming_calls(
    transport: str, certificates: Certificates
) -> None:
    server_credentials = None
    tls = None
    if transport == "tls":
        server_credentials = grpc.ssl_server_credentials(
            [(certificates.server.key_pem, certificates.server.cert_pem)]
        )
        tls = TlsOptions(ca_path=certificates.ca)

    async with (
        recording_server(server_credentials) as recorder,
        Client(recorder.address, tls=tls, token=TOKEN) as client,
    ):
        with pytest.raises(grpc.aio.AioRpcError):
            await client.get_value("api.timeout")
        async with client.live(keys=["api.timeout"]) as live:
            await eventually(lambda: "WatchConfig" in recorder.methods())
            assert live.revision == 1

    assert recorder.methods() == {"GetValue", "GetValues", "WatchConfig"}
    assert {token for _, token in recorder.calls} == {f"Bearer {TOKEN}"}


async def test_without_a_token_no_authorization_is_sent() -> None:
    async with recording_server() as recorder, Client(recorder.address) as client:
        await client.get_values(["api.timeout"])

    assert recorder.calls == [("GetValues", None)]


async def test_a_call_that_brings_its_own_authorization_keeps_it() -> None:
    async with recording_server() as recorder, Client(recorder.address, token=TOKEN) as client:
        await client.config.GetValues(
            pb.GetValuesRequest(keys=["api.timeout"]),
            metadata=(("authorization", "Bearer someone-else"),),
        )

    assert recorder.calls == [("GetValues", "Bearer someone-else")]


@pytest.mark.parametrize("token", ["", " ", "two words", "line\nbreak"])
async def test_a_token_that_cannot_be_sent_is_refused(token: str) -> None:
    with pytest.raises(ValueError, match="token"):
        Client("127.0.0.1:1", token=token)


async def test_tls_and_credentials_are_one_or_the_other(certificates: Certificates) -> None:
    with pytest.raises(ValueError, match="not both"):
        Client(
            "127.0.0.1:1",
            tls=TlsOptions(ca_path=certificates.ca),
            credentials=grpc.ssl_channel_credentials(),
        )


def test_a_certificate_without_its_key_is_refused(certificates: Certificates) -> None:
    with pytest.raises(ValueError, match=r"give key_path \(or key_pem\) too"):
        TlsOptions(ca_path=certificates.ca, cert_path=certificates.alice.cert)
    with pytest.raises(ValueError, match=r"give cert_path \(or cert_pem\) too"):
        TlsOptions(key_pem=certificates.alice.key_pem)
    with pytest.raises(ValueError, match="ca_path or ca_pem, not both"):
        TlsOptions(ca_path=certificates.ca, ca_pem=certificates.ca.read_bytes())


def test_files_are_read_and_checked_when_credentials_are_made(
    certificates: Certificates, tmp_path: Path
) -> None:
    not_pem = tmp_path / "ca.der"
    not_pem.write_bytes(b"\x30\x82")

    with pytest.raises(FileNotFoundError):
        TlsOptions(ca_path=tmp_path / "missing.pem").channel_credentials()
    with pytest.raises(ValueError, match=re.escape(f"{not_pem} holds no PEM data")):
        TlsOptions(ca_path=not_pem).channel_credentials()
    with pytest.raises(ValueError, match="the CA certificate given holds no PEM data"):
        TlsOptions(ca_pem=b"").channel_credentials()
    assert TlsOptions(
        ca_pem=certificates.ca.read_bytes(),
        cert_pem=certificates.alice.cert_pem,
        key_pem=certificates.alice.key_pem,
    ).channel_credentials()
