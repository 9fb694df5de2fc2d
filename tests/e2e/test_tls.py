"""TLS and mutual TLS end to end: a real Switchyard serving with certificates made for
the test, reached by the Python client, by grpcurl and by `switchyard health`, and
refused to clients without the right certificate. Nothing is mocked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.client import Client, TlsOptions
from switchyard.domain.errors import Unauthenticated
from switchyard.domain.models import Grant
from switchyard.service.context import WriteContext

from ..certs import Certificates, make_certificates
from .conftest import serving
from .helpers import expect_status
from .processes import run_switchyard, start_server_process, stop_server_process
from .test_grpcurl import grpcurl


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def tls_settings(certificates: Certificates) -> dict[str, Any]:
    return {"tls_cert": str(certificates.server.cert), "tls_key": str(certificates.server.key)}


def mtls_settings(certificates: Certificates) -> dict[str, Any]:
    return {**tls_settings(certificates), "tls_client_ca": str(certificates.ca)}


@pytest.fixture
async def tls_address(tmp_path: Path, certificates: Certificates) -> AsyncIterator[str]:
    """A server that speaks TLS only, over a new database with the demo keys."""
    async with serving(tmp_path / "tls.db", **tls_settings(certificates)) as running:
        yield running.address


@pytest.fixture
async def mtls_address(tmp_path: Path, certificates: Certificates) -> AsyncIterator[str]:
    """A server that requires a client certificate its CA signed. Mutual TLS turns
    authentication on: alice may do everything; bob's certificate names nobody."""
    async with serving(tmp_path / "mtls.db", **mtls_settings(certificates)) as running:
        await running.application.access.set_user_grants(
            "alice", [Grant("site_admin")], WriteContext(actor=LOCAL_OPERATOR, reason="test")
        )
        yield running.address


# --- the Python client -----------------------------------------------------------------


async def test_a_client_trusting_the_ca_reads_writes_and_watches(
    tls_address: str, certificates: Certificates
) -> None:
    async with Client(tls_address, tls=TlsOptions(ca_path=certificates.ca)) as client:
        await client.set_value("api.timeout", 45, environment="staging", reason="over TLS")

        assert await client.get_value("api.timeout", "staging") == 45
        async with client.live(keys=["api.timeout"], environment="staging") as live:
            assert live.get("api.timeout") == 45


async def test_a_plaintext_client_cannot_reach_a_tls_server(tls_address: str) -> None:
    async with Client(tls_address) as client:
        await expect_status(client.get_value("api.timeout"), grpc.StatusCode.UNAVAILABLE)


async def test_a_client_trusting_another_ca_does_not_connect(
    tls_address: str, certificates: Certificates
) -> None:
    async with Client(tls_address, tls=TlsOptions(ca_path=certificates.other_ca)) as client:
        await expect_status(client.get_value("api.timeout"), grpc.StatusCode.UNAVAILABLE)


async def test_mutual_tls_admits_a_certificate_its_ca_signed(
    mtls_address: str, certificates: Certificates
) -> None:
    alice = TlsOptions(
        ca_path=certificates.ca,
        cert_path=certificates.alice.cert,
        key_path=certificates.alice.key,
    )

    async with Client(mtls_address, tls=alice) as client:
        assert await client.get_value("api.timeout", "production") == 60


async def test_mutual_tls_refuses_a_client_without_a_certificate(
    mtls_address: str, certificates: Certificates
) -> None:
    async with Client(mtls_address, tls=TlsOptions(ca_path=certificates.ca)) as client:
        await expect_status(client.get_value("api.timeout"), grpc.StatusCode.UNAVAILABLE)


async def test_mutual_tls_refuses_a_certificate_from_another_ca(
    mtls_address: str, certificates: Certificates
) -> None:
    # Named alice, but signed by a CA the server does not trust.
    stranger = TlsOptions(
        ca_path=certificates.ca,
        cert_pem=certificates.stranger.cert_pem,
        key_pem=certificates.stranger.key_pem,
    )

    async with Client(mtls_address, tls=stranger) as client:
        await expect_status(client.get_value("api.timeout"), grpc.StatusCode.UNAVAILABLE)


# --- grpcurl -------------------------------------------------------------------------


async def test_grpcurl_over_tls_lists_and_calls(
    tls_address: str, certificates: Certificates
) -> None:
    code, out, err = await grpcurl("-cacert", str(certificates.ca), tls_address, "list")

    assert code == 0, err
    assert "switchyard.v1.ConfigService" in out.split()
    plain_code, _, _ = await grpcurl("-plaintext", tls_address, "list")
    assert plain_code != 0


async def test_grpcurl_over_mutual_tls_as_in_the_readme(
    mtls_address: str, certificates: Certificates
) -> None:
    alice = ["-cacert", str(certificates.ca)]
    alice += ["-cert", str(certificates.alice.cert), "-key", str(certificates.alice.key)]

    list_code, listed, list_err = await grpcurl(*alice, mtls_address, "list")
    call_code, called, call_err = await grpcurl(
        *alice, "-d", "{}", mtls_address, "switchyard.v1.ConfigService/ListEnvironments"
    )
    anonymous_code, _, anonymous_err = await grpcurl(
        "-cacert", str(certificates.ca), mtls_address, "list"
    )

    assert list_code == 0, list_err
    assert {"switchyard.v1.ConfigService", "grpc.health.v1.Health"} <= set(listed.split())
    assert call_code == 0, call_err
    names = {environment["name"] for environment in json.loads(called)["environments"]}
    assert {"staging", "production"} <= names
    assert anonymous_code != 0, "a client without a certificate must be refused"
    assert anonymous_err


# --- switchyard serve and switchyard health, each in a process of its own ----------------


async def test_health_probes_a_tls_server_with_its_ca(
    tmp_path: Path, certificates: Certificates
) -> None:
    process, address = await start_server_process(
        tmp_path,
        SWITCHYARD_TLS_CERT=str(certificates.server.cert),
        SWITCHYARD_TLS_KEY=str(certificates.server.key),
    )
    ca = ("--address", address, "--tls-ca", str(certificates.ca))
    try:
        code, output = await _health(*ca)
        named_code, named_output = await _health(*ca, "--tls-server-name", "localhost")
        misnamed_code, misnamed_output = await _health(*ca, "--tls-server-name", "elsewhere")
        plain_code, plain_output = await _health("--address", address, "--timeout", "2")
    finally:
        log = await stop_server_process(process)

    assert (code, output.strip()) == (0, "SERVING")
    assert (named_code, named_output.strip()) == (0, "SERVING")
    assert misnamed_code == 1, misnamed_output
    assert plain_code == 1, plain_output
    assert "unreachable" in plain_output
    assert process.returncode == 0, log
    assert "transport=tls" in log


async def test_health_probes_a_mutual_tls_server_with_a_client_certificate(
    tmp_path: Path, certificates: Certificates
) -> None:
    process, address = await start_server_process(
        tmp_path,
        SWITCHYARD_TLS_CERT=str(certificates.server.cert),
        SWITCHYARD_TLS_KEY=str(certificates.server.key),
        SWITCHYARD_TLS_CLIENT_CA=str(certificates.ca),
    )
    ca = ("--address", address, "--tls-ca", str(certificates.ca))
    try:
        code, output = await _health(
            *ca, "--tls-cert", str(certificates.bob.cert), "--tls-key", str(certificates.bob.key)
        )
        anonymous_code, anonymous_output = await _health(*ca, "--timeout", "2")
    finally:
        log = await stop_server_process(process)

    assert (code, output.strip()) == (0, "SERVING")
    assert anonymous_code == 1, anonymous_output
    assert "unreachable" in anonymous_output
    assert process.returncode == 0, log
    assert "transport=mtls" in log


async def test_health_refuses_a_certificate_without_its_key(certificates: Certificates) -> None:
    code, output = await _health("--tls-cert", str(certificates.alice.cert))

    assert code == 2, output
    assert "give --tls-cert and --tls-key" in output


async def test_serve_refuses_a_certificate_without_its_key(
    tmp_path: Path, certificates: Certificates
) -> None:
    code, output = await _serve(tmp_path, "--tls-cert", str(certificates.server.cert))

    assert code == 2, output
    assert "needs its private key: give --tls-key / SWITCHYARD_TLS_KEY too" in output
    assert not (tmp_path / "never.db").exists(), "refused before the database is touched"


async def test_serve_refuses_a_client_ca_without_a_certificate(
    tmp_path: Path, certificates: Certificates
) -> None:
    code, output = await _serve(tmp_path, "--tls-client-ca", str(certificates.ca))

    assert code == 2, output
    assert "needs the server's own certificate and key" in output


async def test_serve_names_a_file_it_cannot_read(
    tmp_path: Path, certificates: Certificates
) -> None:
    missing = tmp_path / "missing.key"

    code, output = await _serve(
        tmp_path, "--tls-cert", str(certificates.server.cert), "--tls-key", str(missing)
    )

    assert code == 1, output
    assert f"cannot read the TLS private key {missing}" in output
    assert "Traceback" not in output
    assert not (tmp_path / "never.db").exists()


async def _health(*args: str) -> tuple[int, str]:
    drop = ("SWITCHYARD_LISTEN", "SWITCHYARD_TLS_CERT", "SWITCHYARD_TLS_KEY", "SWITCHYARD_TLS_CA")
    return await run_switchyard("health", *args, drop_env=drop)


async def _serve(workdir: Path, *args: str) -> tuple[int, str]:
    """`switchyard serve ARGS` that must refuse to start (and would otherwise run until
    the helper's timeout, over a database that must not appear)."""
    database = f"sqlite:///{workdir / 'never.db'}"
    return await run_switchyard(
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        database,
        *args,
        drop_env=("SWITCHYARD_TLS_CERT", "SWITCHYARD_TLS_KEY", "SWITCHYARD_TLS_CLIENT_CA"),
    )


async def test_a_client_certificate_names_the_user_the_history_records(
    tmp_path: Path, certificates: Certificates
) -> None:
    async with serving(tmp_path / "names.db", **mtls_settings(certificates)) as running:
        user, _ = await running.application.access.set_user_grants(
            "alice",
            [Grant("editor", environments=("staging",))],
            WriteContext(actor=LOCAL_OPERATOR, reason="alice edits staging"),
        )

        def options(who: str) -> TlsOptions:
            issued = getattr(certificates, who)
            return TlsOptions(ca_path=certificates.ca, cert_path=issued.cert, key_path=issued.key)

        async with Client(running.address, tls=options("alice")) as client:
            await client.set_value("api.timeout", 41, environment="staging", reason="mine")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.set_value("api.timeout", 42, environment="production")
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        async with running.application.store.read() as reader:
            latest = (await reader.history.history_after(0, 10_000))[-1]
        assert (latest.key, latest.changed_by, latest.changed_by_role) == (
            "api.timeout",
            user.id,
            "editor",
        )

        async with Client(running.address, tls=options("bob")) as client:
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await client.get_value("api.timeout", "staging")
        assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "switchyard user grant bob" in (unknown.value.details() or "")


async def test_a_certificate_signs_in_only_a_user_granted_for_it(
    tmp_path: Path, certificates: Certificates
) -> None:
    """The seeded users and a token's owner have a role but no certificate grants: a
    certificate naming them signs nobody in."""
    async with serving(tmp_path / "seeded.db", **mtls_settings(certificates)) as running:
        access = running.application.access
        await access.create_token(
            "carol", [Grant("reader")], WriteContext(actor=LOCAL_OPERATOR, reason="token")
        )
        for name in ("local-operator", "switchyard-scheduler", "carol"):  # none granted
            with pytest.raises(Unauthenticated, match="switchyard user grant"):
                access.authenticate_certificate(name, None)
        await access.set_user_grants(
            "carol", [Grant("editor")], WriteContext(actor=LOCAL_OPERATOR, reason="cert")
        )
        assert access.authenticate_certificate("carol", None).role == "editor"
