"""TLS and mutual TLS for the server: the credentials it listens with, and the name of
the client certificate a call came with.

The files are read and checked here, at start-up, with `cryptography`, because grpc
refuses a bad certificate or key only as "Failed to bind to address", and a key that
does not belong to its certificate not at all: every handshake would fail instead. A
server that starts is one whose certificate, key and client CA can work.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

_COMMON_NAME = "x509_common_name"


class CertificateError(ValueError):
    """A TLS file the server cannot use: unreadable, not PEM, an encrypted key, or a key
    that does not belong to the certificate. The message names the file."""


def server_credentials(
    cert_path: str, key_path: str, client_ca_path: str | None = None
) -> grpc.ServerCredentials:
    """Credentials for `server.add_secure_port`: TLS with the PEM certificate chain at
    `cert_path` (the server's own certificate first) and its private key at `key_path`.
    With `client_ca_path`, mutual TLS: every client must present a certificate that one
    of the PEM CA certificates there signed, or its handshake fails. Raises
    CertificateError when a file cannot be read or used."""
    chain = _read(cert_path, "TLS certificate")
    key = _read(key_path, "TLS private key")
    _check_pair(chain, cert_path, key, key_path)
    if client_ca_path is None:
        return grpc.ssl_server_credentials([(key, chain)])
    client_ca = _read(client_ca_path, "client CA certificate")
    _load_certificates(client_ca, client_ca_path)
    # With root certificates but without require_client_auth, grpc asks for a client
    # certificate and does not verify it: a name read from it could then be forged.
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=True
    )


def client_certificate_name(context: grpc.aio.ServicerContext) -> str | None:
    """The subject common name of the certificate the caller presented, which is the
    caller's username: None for a plaintext call, a TLS call without a client
    certificate, or a certificate with no (or more than one) common name.

    The name is only as trustworthy as the server's credentials: a server built with
    `server_credentials(..., client_ca_path)` has verified the certificate against that
    CA before the call arrives."""
    names = (context.auth_context() or {}).get(_COMMON_NAME) or []
    if len(names) != 1:
        return None
    name = names[0]
    text = name.decode("utf-8", errors="replace") if isinstance(name, bytes) else str(name)
    return text or None


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise CertificateError(f"cannot read the {what} {path}: {error.strerror}") from error


def _load_certificates(data: bytes, path: str) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise CertificateError(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return certificates


def _check_pair(chain: bytes, cert_path: str, key: bytes, key_path: str) -> None:
    """The key must be unencrypted (grpc cannot ask for a passphrase) and belong to the
    first certificate of the chain, the one the server presents."""
    certificate = _load_certificates(chain, cert_path)[0]
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except TypeError as error:  # what cryptography raises for an encrypted key
        raise CertificateError(
            f"the TLS private key {key_path} is encrypted: give an unencrypted one "
            "(readable by the server's user only)"
        ) from error
    except (ValueError, UnsupportedAlgorithm) as error:
        raise CertificateError(f"{key_path} holds no PEM private key it can use") from error
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if private_key.public_key().public_bytes(der, spki) != certificate.public_key().public_bytes(
        der, spki
    ):
        raise CertificateError(
            f"the TLS private key {key_path} does not belong to the certificate {cert_path}"
        )


__all__ = ["CertificateError", "client_certificate_name", "server_credentials"]
