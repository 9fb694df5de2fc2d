"""Certificates made at test time with `cryptography`: a CA, a server certificate for
localhost and 127.0.0.1, client certificates for alice and bob, and one for a stranger
whose CA the server does not trust. Nothing is checked in, so nothing expires in the
repository and no private key is ever committed."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Backdated so that a clock a little behind the test's does not see them as not yet valid.
_NOT_BEFORE = datetime.timedelta(hours=1)
_LIFETIME = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both written as PEM files."""

    cert: Path
    key: Path

    @property
    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    @property
    def key_pem(self) -> bytes:
        return self.key.read_bytes()


@dataclass(frozen=True)
class Certificates:
    ca: Path
    """The CA that signed the server's, alice's and bob's certificates."""
    server: Issued
    """For `localhost` and `127.0.0.1`."""
    alice: Issued
    bob: Issued
    stranger: Issued
    """A client certificate (CN alice, even) from a CA the server does not trust."""
    other_ca: Path
    """The stranger's CA."""


@dataclass(frozen=True)
class _Authority:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def make_certificates(directory: Path) -> Certificates:
    """Writes a fresh set of certificates and keys under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    trusted = _authority("Switchyard Test CA")
    untrusted = _authority("Some Other CA")
    server = _issue(
        trusted,
        "localhost",
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    alice = _issue(trusted, "alice", ExtendedKeyUsageOID.CLIENT_AUTH)
    bob = _issue(trusted, "bob", ExtendedKeyUsageOID.CLIENT_AUTH)
    stranger = _issue(untrusted, "alice", ExtendedKeyUsageOID.CLIENT_AUTH)
    return Certificates(
        ca=_write_cert(directory / "ca.pem", trusted.cert),
        server=_write(directory, "server", *server),
        alice=_write(directory, "alice", *alice),
        bob=_write(directory, "bob", *bob),
        stranger=_write(directory, "stranger", *stranger),
        other_ca=_write_cert(directory / "other-ca.pem", untrusted.cert),
    )


def _authority(common_name: str) -> _Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _NOT_BEFORE)
        .not_valid_after(now + _LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Authority(name, key, cert)


def _issue(
    authority: _Authority,
    common_name: str,
    usage: x509.ObjectIdentifier,
    names: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(authority.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _NOT_BEFORE)
        .not_valid_after(now + _LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(authority.key, hashes.SHA256()), key


def _write(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Issued:
    key_path = directory / f"{name}.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return Issued(cert=_write_cert(directory / f"{name}.pem", cert), key=key_path)


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


__all__ = ["Certificates", "Issued", "make_certificates"]
