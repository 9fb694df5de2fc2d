"""api.tls: the server's credentials refuse files that could not work, naming them, and
`client_certificate_name` reads the verified name off real TLS calls to a real grpc.aio
server on loopback."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from switchyard.api.tls import CertificateError, client_certificate_name, server_credentials

from ..certs import Certificates, Issued, make_certificates

_NONE = b"<none>"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


# --- refusing what cannot work -------------------------------------------------------


def test_an_unreadable_file_is_named(certificates: Certificates, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"

    with pytest.raises(CertificateError, match=re.escape(f"TLS certificate {missing}")):
        server_credentials(str(missing), str(certificates.server.key))
    with pytest.raises(CertificateError, match=re.escape(f"TLS private key {missing}")):
        server_credentials(str(certificates.server.cert), str(missing))
    with pytest.raises(CertificateError, match=re.escape(f"client CA certificate {missing}")):
        server_credentials(
            str(certificates.server.cert), str(certificates.server.key), str(missing)
        )


def test_a_file_without_pem_is_refused(certificates: Certificates, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")

    with pytest.raises(CertificateError, match=re.escape(f"{garbage} holds no PEM certificate")):
        server_credentials(str(garbage), str(certificates.server.key))
    with pytest.raises(CertificateError, match=re.escape(f"{garbage} holds no PEM private key")):
        server_credentials(str(certificates.server.cert), str(garbage))
    with pytest.raises(CertificateError, match=re.escape(f"{garbage} holds no PEM certificate")):
        server_credentials(
            str(certificates.server.cert), str(certificates.server.key), str(garbage)
        )


def test_a_key_of_another_certificate_is_refused(certificates: Certificates) -> None:
    with pytest.raises(CertificateError, match="does not belong to the certificate"):
        server_credentials(str(certificates.server.cert), str(certificates.alice.key))


def test_an_encrypted_key_is_refused(certificates: Certificates, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(certificates.server.key_pem, password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )

    with pytest.raises(CertificateError, match="is encrypted"):
        server_credentials(str(certificates.server.cert), str(encrypted))


# --- the client certificate's name, from a real handshake ----------------------------


@contextlib.asynccontextmanager
async def name_server(credentials: grpc.ServerCredentials | None) -> AsyncIterator[str]:
    """A grpc.aio server whose one method answers `client_certificate_name(context)`."""

    async def name(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        found = client_certificate_name(context)
        return _NONE if found is None else found.encode()

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Names", {"Name": grpc.unary_unary_rpc_method_handler(name)}
            ),
        )
    )
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def ask_name(address: str, credentials: grpc.ChannelCredentials | None) -> bytes:
    channel = (
        grpc.aio.insecure_channel(address)
        if credentials is None
        else grpc.aio.secure_channel(address, credentials)
    )
    async with channel:
        answer: bytes = await channel.unary_unary("/test.Names/Name")(b"", timeout=10)
        return answer


def _presenting(certificates: Certificates, client: Issued) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        certificates.ca.read_bytes(), client.key_pem, client.cert_pem
    )


async def test_the_name_is_the_verified_certificates_common_name(
    certificates: Certificates,
) -> None:
    mutual = server_credentials(
        str(certificates.server.cert), str(certificates.server.key), str(certificates.ca)
    )

    async with name_server(mutual) as address:
        assert await ask_name(address, _presenting(certificates, certificates.alice)) == b"alice"
        assert await ask_name(address, _presenting(certificates, certificates.bob)) == b"bob"


async def test_no_name_without_mutual_tls(certificates: Certificates) -> None:
    tls_only = server_credentials(str(certificates.server.cert), str(certificates.server.key))

    async with name_server(tls_only) as address:
        # The server did not ask for a certificate: alice's is not even sent.
        assert await ask_name(address, _presenting(certificates, certificates.alice)) == _NONE
    async with name_server(None) as address:
        assert await ask_name(address, None) == _NONE
