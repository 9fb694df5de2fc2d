"""Authentication as an operator meets it: `switchyard token create|list|revoke` work
offline against the database, the server started with `--auth` accepts the token from
grpcurl and refuses everything else, a revoked token stops working on the running
server, and a server that would be reachable beyond loopback without authentication
refuses to start unless told `--insecure`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path

from switchyard.settings import is_loopback

from ..certs import make_certificates
from .helpers import eventually
from .processes import run_switchyard, start_server_process, stop_server_process
from .test_first_token import image_environment
from .test_first_token import switchyard as switchyard_in
from .test_grpcurl import grpcurl


async def _switchyard(database: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "SWITCHYARD_DATABASE_URL": f"sqlite:///{database}"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switchyard",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_token_made_offline_works_with_grpcurl_until_it_is_revoked(
    tmp_path: Path,
) -> None:
    database = tmp_path / "auth.db"
    code, _, err = await _switchyard(database, "migrate")
    assert code == 0, err
    code, out, err = await _switchyard(
        database, "token", "create", "--owner", "ops", "--grant", "reader", "--reason", "probe"
    )
    assert code == 0, err
    token = out.strip()
    assert token.startswith("swy_") and len(token) > 40
    assert "cannot be shown again" in err
    assert token not in database.read_bytes().decode("latin-1"), "only a hash is stored"

    code, listed, _ = await _switchyard(database, "token", "list")
    assert code == 0
    token_id, hint, owner, grant, state = listed.split()[:5]
    assert (hint, owner, grant, state) == (token[:8] + "…", "ops", "reader", "active")

    process, address = await start_server_process(
        tmp_path,
        SWITCHYARD_DATABASE_URL=f"sqlite:///{database}",
        SWITCHYARD_AUTH="1",
        SWITCHYARD_POLL_SECONDS="0.2",
    )
    try:
        method = "switchyard.v1.ConfigService/ListEnvironments"
        code, out, err = await grpcurl(
            "-plaintext", "-H", f"authorization: Bearer {token}", address, method
        )
        assert code == 0, err
        assert "production" in {e["name"] for e in json.loads(out)["environments"]}

        code, out, err = await grpcurl("-plaintext", address, method)
        assert code != 0 and "Unauthenticated" in err

        code, out, err = await grpcurl(
            "-plaintext",
            "-H",
            f"authorization: Bearer {token}",
            "-d",
            '{"key": "api.timeout", "environment": "staging", "value": 5}',
            address,
            "switchyard.v1.ConfigService/SetValue",
        )
        assert code != 0 and "PermissionDenied" in err and "'write'" in err

        code, _, err = await _switchyard(database, "token", "revoke", token_id)
        assert code == 0, err

        async def refused() -> bool:
            code, _, err = await grpcurl(
                "-plaintext", "-H", f"authorization: Bearer {token}", address, method
            )
            return code != 0 and "revoked" in err

        await eventually(refused, within=10)
    finally:
        await stop_server_process(process)


async def test_listening_beyond_loopback_without_authentication_is_refused(
    tmp_path: Path,
) -> None:
    database = tmp_path / "open.db"
    env_url = f"sqlite:///{database}"
    code, out = await run_switchyard(
        "serve", "--listen", "0.0.0.0:0", "--database-url", env_url, drop_env=("SWITCHYARD_AUTH",)
    )
    assert code != 0
    assert "refusing to listen on 0.0.0.0:0 without authentication" in out
    assert "--insecure" in out and "--auth" in out
    assert not database.exists(), "refused before anything was created"

    process, address = await start_server_process(
        tmp_path,
        SWITCHYARD_LISTEN="0.0.0.0:0",
        SWITCHYARD_INSECURE="1",
        SWITCHYARD_DATABASE_URL=env_url,
    )
    try:
        assert address.endswith(tuple("0123456789"))
    finally:
        await stop_server_process(process)


async def test_a_console_beyond_loopback_over_plain_http_with_authentication_is_refused(
    tmp_path: Path,
) -> None:
    """Signing in to the console sends a token: over plain HTTP beyond loopback it would
    cross the network in clear. Refused before anything is made, unless TLS is given or
    the operator says it is meant (a TLS-terminating proxy in front)."""
    database = tmp_path / "console.db"
    url = f"sqlite:///{database}"
    base = ("serve", "--auth", "--listen", "127.0.0.1:0", "--database-url", url)

    code, out = await run_switchyard(*base, "--console-listen", "0.0.0.0:0")

    assert code == 2, out
    assert "refusing to serve the web console on 0.0.0.0:0 over plain HTTP" in out
    assert "--tls-cert" in out and "--console-insecure-http" in out
    assert not database.exists(), "refused before anything was made"

    process, _ = await start_server_process(
        tmp_path,
        SWITCHYARD_DATABASE_URL=url,
        SWITCHYARD_AUTH="1",
        SWITCHYARD_CONSOLE_LISTEN="0.0.0.0:0",
        SWITCHYARD_CONSOLE_INSECURE_HTTP="1",
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert line.startswith("switchyard console on http://"), line
    finally:
        await stop_server_process(process)


async def test_a_console_beyond_loopback_with_tls_is_served_over_https(tmp_path: Path) -> None:
    certificates = make_certificates(tmp_path / "certs")
    process, _ = await start_server_process(
        tmp_path,
        SWITCHYARD_AUTH="1",
        SWITCHYARD_TLS_CERT=str(certificates.server.cert),
        SWITCHYARD_TLS_KEY=str(certificates.server.key),
        SWITCHYARD_CONSOLE_LISTEN="0.0.0.0:0",
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert line.startswith("switchyard console on https://"), line
    finally:
        await stop_server_process(process)


async def test_the_image_serves_no_console_unless_given_tls(tmp_path: Path) -> None:
    """The Dockerfile's environment: the server starts, and its console is off; turning
    the console on there without TLS is refused."""
    volume = tmp_path / "volume"
    volume.mkdir()
    env = {**image_environment(volume), "SWITCHYARD_LISTEN": "0.0.0.0:0"}
    assert env.get("SWITCHYARD_CONSOLE_LISTEN", "").lower() in {"off", ""} or not is_loopback(
        env["SWITCHYARD_CONSOLE_LISTEN"]
    )

    process, _ = await start_server_process(volume, **env)
    try:
        assert process.stdout is not None
        with contextlib.suppress(TimeoutError):
            line = await asyncio.wait_for(process.stdout.readline(), 3)
            assert b"console" not in line, line
    finally:
        await stop_server_process(process)

    exposed = {**env, "SWITCHYARD_CONSOLE_LISTEN": "0.0.0.0:8080"}
    code, _, err = await switchyard_in(volume, exposed, "serve")
    assert code == 2 and "over plain HTTP" in err, err
