"""TlsOptions: what a client needs to reach a server over TLS or mutual TLS, as files or
as PEM bytes, turned into grpc channel credentials in one place (the client and the
`switchyard health` probe share it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import grpc

PathLike = str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS for a `Client`: `TlsOptions(ca_path="ca.pem")` trusts the server certificates
    that CA signed (the system's CAs when no CA is given); `cert_path` and `key_path` add
    a client certificate for a server that requires mutual TLS. Each file may be given
    as PEM bytes instead (`ca_pem`, `cert_pem`, `key_pem`), say from a secret store.

    Raises ValueError at construction for a certificate without its key (or the other
    way round), or a file given both ways; the files themselves are read when the
    client is created."""

    ca_path: PathLike | None = None
    cert_path: PathLike | None = None
    key_path: PathLike | None = None
    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None

    def __post_init__(self) -> None:
        for name in ("ca", "cert", "key"):
            given = (getattr(self, f"{name}_path"), getattr(self, f"{name}_pem"))
            if None not in given:
                raise ValueError(f"give {name}_path or {name}_pem, not both")
        has_cert = self.cert_path is not None or self.cert_pem is not None
        has_key = self.key_path is not None or self.key_pem is not None
        if has_cert != has_key:
            missing = "key_path (or key_pem)" if has_cert else "cert_path (or cert_pem)"
            raise ValueError(
                f"a client certificate and its private key go together: give {missing} too"
            )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """The credentials for `grpc.secure_channel` or `grpc.aio.secure_channel`. Raises
        OSError when a file cannot be read, ValueError when one holds no PEM block."""
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.ca_path, self.ca_pem, "CA certificate"),
            private_key=_pem(self.key_path, self.key_pem, "private key"),
            certificate_chain=_pem(self.cert_path, self.cert_pem, "certificate"),
        )


def _pem(path: PathLike | None, data: bytes | None, what: str) -> bytes | None:
    """The PEM bytes given or read from `path`. grpc takes anything and only fails the
    handshake later, as UNAVAILABLE with no word about which file was wrong: check here
    that there is at least a PEM block, and name the file when there is not. Empty bytes
    are refused too, not taken as "none": an empty secret must not quietly mean the
    system's CAs or no client certificate."""
    if path is not None:
        data = Path(path).read_bytes()
        source = str(path)
    elif data is None:
        return None
    else:
        source = f"the {what} given"
    if b"-----BEGIN " not in data:
        raise ValueError(f"{source} holds no PEM data (-----BEGIN ...): expected a {what}")
    return data


__all__ = ["TlsOptions"]
