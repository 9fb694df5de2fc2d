"""The first token on a fresh installation, exactly as the README writes it: the token
commands work offline against the database "so the first site_admin exists before the
server runs". On a machine where nothing has run yet (no `data/` directory), and in a
new Docker volume (the image's environment, read from the Dockerfile), `switchyard token
create` makes the database, the server then started accepts the token, and the demo keys
are seeded as they would have been had the server started first.

Real processes throughout: `python -m switchyard` for each command, `switchyard serve`
as a server process, grpcurl as the client."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

from switchyard.service.seed import DEMO_KEYS

from .processes import start_server_process, stop_server_process
from .test_grpcurl import grpcurl

DOCKERFILE = Path(__file__).parents[2] / "Dockerfile"
VOLUME = "/var/lib/switchyard"


async def switchyard(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """`switchyard ARGS` in `cwd` with exactly the SWITCHYARD_* variables of `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switchyard",
        *args,
        cwd=cwd,
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def image_environment(volume: Path) -> dict[str, str]:
    """The SWITCHYARD_* variables the Dockerfile's ENV sets, with the volume's path
    standing for /var/lib/switchyard."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for name, value in re.findall(r"(\w+)=(\S+)", line):
                if name.startswith("SWITCHYARD_"):
                    env[name] = value.replace(VOLUME, str(volume))
    assert env["SWITCHYARD_DATABASE_URL"].startswith("sqlite:///"), env
    return env


async def _accepted(address: str, token: str) -> tuple[dict[str, object], set[str]]:
    """WhoAmI and the keys listed, asked with `token`."""
    bearer = ("-H", f"authorization: Bearer {token}")
    code, out, err = await grpcurl(
        "-plaintext", *bearer, address, "switchyard.v1.AccessService/WhoAmI"
    )
    assert code == 0, err
    who = json.loads(out)
    code, out, err = await grpcurl(
        "-plaintext", *bearer, "-d", '{"page_size": 100}', address,
        "switchyard.v1.ConfigService/ListConfigs",
    )  # fmt: skip
    assert code == 0, err
    return who, {c["key"] for c in json.loads(out).get("configs", [])}


async def test_the_first_token_before_the_first_start(tmp_path: Path) -> None:
    """README, Security: `switchyard token create ...` on a machine where nothing has
    run, then `switchyard serve --auth` (here through SWITCHYARD_AUTH)."""
    assert not (tmp_path / "data").exists()

    code, out, err = await switchyard(
        tmp_path, {}, "token", "create", "--owner", "first-admin", "--grant", "site_admin"
    )

    assert code == 0, err
    token = out.strip()
    assert token.startswith("swy_")
    assert (tmp_path / "data" / "switchyard.db").is_file()
    process, address = await start_server_process(tmp_path, SWITCHYARD_AUTH="1")
    try:
        who, keys = await _accepted(address, token)
    finally:
        await stop_server_process(process)
    assert who["username"] == "first-admin" and who["role"] == "site_admin"
    assert {key.key for key in DEMO_KEYS} <= keys, "the demo keys are seeded as on a new database"
    code, _, err = await switchyard(tmp_path, {}, "verify")
    assert code == 0, err


async def test_the_first_token_in_a_new_docker_volume(tmp_path: Path) -> None:
    """README, Docker: `docker run --rm -v DATA:/var/lib/switchyard IMAGE token create
    --owner NAME --grant site_admin`, then the image's own command (`serve`), both with
    the image's environment and working directory, over an empty volume."""
    volume = tmp_path / "volume"
    volume.mkdir()
    env = image_environment(volume)

    code, out, err = await switchyard(
        volume, env, "token", "create", "--owner", "NAME", "--grant", "site_admin"
    )

    assert code == 0, err
    token = out.strip()
    # The server as the image runs it, on a free port (several tests run at once).
    process, address = await start_server_process(
        volume, **{**env, "SWITCHYARD_LISTEN": "0.0.0.0:0"}
    )
    try:
        port = address.rpartition(":")[2]
        who, keys = await _accepted(f"127.0.0.1:{port}", token)
    finally:
        await stop_server_process(process)
    assert who["username"] == "NAME" and who["role"] == "site_admin"
    assert keys, "the server lists what the new database holds"


async def test_a_database_that_may_not_be_migrated_here_is_refused_and_not_made(
    tmp_path: Path,
) -> None:
    """Where migrating is left to an operator (SWITCHYARD_MIGRATE=0, as on Oracle by
    default), the token commands say what to run, and leave no file behind."""
    database = tmp_path / "later.db"
    env = {"SWITCHYARD_DATABASE_URL": f"sqlite:///{database}", "SWITCHYARD_MIGRATE": "0"}

    code, _, err = await switchyard(
        tmp_path, env, "token", "create", "--owner", "ops", "--grant", "reader"
    )

    assert code == 1
    assert "switchyard migrate" in err
    assert not database.exists()


async def test_migrate_then_token_then_serve_seeds_the_demo_keys(tmp_path: Path) -> None:
    """The documented steps in either order give the same database: a token is access,
    not configuration, so the demo keys still go into a database holding only tokens."""
    env = {"SWITCHYARD_DATABASE_URL": f"sqlite:///{tmp_path / 'prepared.db'}"}
    assert (await switchyard(tmp_path, env, "migrate"))[0] == 0
    code, out, err = await switchyard(
        tmp_path, env, "token", "create", "--owner", "ops", "--grant", "site_admin"
    )
    assert code == 0, err

    process, address = await start_server_process(tmp_path, SWITCHYARD_AUTH="1", **env)
    try:
        _, keys = await _accepted(address, out.strip())
    finally:
        await stop_server_process(process)

    assert {key.key for key in DEMO_KEYS} <= keys
