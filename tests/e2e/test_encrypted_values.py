"""Values that need care, over real gRPC: the secret guard refuses credentials with
INVALID_ARGUMENT and changes nothing, ordinary values pass, an is_encrypted key takes a
secret and reads it back while the database file never holds it, and `switchyard keys
rotate` moves every data key to a new master key, after which the old one can go."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from switchyard.gen.v1 import config_pb2 as pb

from .conftest import Running, serving
from .helpers import expect_status, field_violations, value
from .processes import run_switchyard

INVALID = grpc.StatusCode.INVALID_ARGUMENT

# Made up, and assembled from parts so that no scanner mistakes this file for a leak.
CREDENTIALS = {
    "pem private key": "-----BEGIN " + "PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END "
    "PRIVATE KEY-----",
    "aws access key id": "AKIA" + "IOSFODNN7EXAMPLE",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "github token": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "slack token": "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "high-entropy token": "kR3vT9qLx2Wm8ZpY7sNc" + "4HbJf6GdUa1E",
    "basic auth url": "https://deploy:" + "Tr0ub4dor3@artifacts.example.com/releases",
}
ORDINARY = [
    "https://api.example.com/v2/orders?region=eu-west-1",
    "3f9a2b7c-1d2e-4f5a-9b8c-7d6e5f4a3b2c",
    "db-primary-01.eu-west-1.rds.amazonaws.com",
    "ops-team@example.com",
    "*/15 * * * *",
]


async def _create(running: Running, key: str, **fields: Any) -> None:
    await running.config.CreateConfig(
        pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key=key,
                type=pb.CONFIG_TYPE_STRING,
                category="test",
                is_active=True,
                is_editable=True,
                is_deletable=True,
                **fields,
            ),
            reason="test setup",
        )
    )


async def _state(running: Running, key: str) -> tuple[int, bytes, int]:
    """The revision, the key's whole stored state, and how many history rows it has."""
    config = await running.config.GetConfig(pb.GetConfigRequest(key=key))
    history = await running.config.GetHistory(pb.GetHistoryRequest(key=key, page_size=1000))
    return history.revision, config.SerializeToString(deterministic=True), len(history.entries)


def _key_file(path: Path, *entries: tuple[str, int]) -> Path:
    lines = [f"{kid}:{base64.b64encode(bytes([b]) * 32).decode()}" for kid, b in entries]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("name", sorted(CREDENTIALS))
async def test_set_value_refuses_a_credential_and_changes_nothing(
    running: Running, name: str
) -> None:
    await _create(running, "app.endpoint", value=value("https://example.com"))
    before = await _state(running, "app.endpoint")

    for environment in ("", "staging"):
        error = await expect_status(
            running.config.SetValue(
                pb.SetValueRequest(
                    key="app.endpoint", value=value(CREDENTIALS[name]), environment=environment
                )
            ),
            INVALID,
        )
        described = field_violations(error)["value"]
        assert described.startswith("looks like ")
        assert "Switchyard does not store secrets" in described
        assert "is_encrypted" in described
        assert CREDENTIALS[name] not in error.details()

    assert await _state(running, "app.endpoint") == before


async def test_create_config_refuses_a_credential_as_default_and_creates_nothing(
    running: Running,
) -> None:
    listing = await running.config.ListConfigs(pb.ListConfigsRequest(page_size=1000))

    error = await expect_status(
        running.config.CreateConfig(
            pb.CreateConfigRequest(
                config=pb.ConfigDefinition(
                    key="ci.token",
                    type=pb.CONFIG_TYPE_STRING,
                    category="test",
                    is_active=True,
                    is_editable=True,
                    default_value=value(CREDENTIALS["github token"]),
                )
            )
        ),
        INVALID,
    )

    assert field_violations(error)["config.default_value"].startswith("looks like a GitHub token")
    after = await running.config.ListConfigs(pb.ListConfigsRequest(page_size=1000))
    assert after == listing
    await expect_status(
        running.config.GetConfig(pb.GetConfigRequest(key="ci.token")), grpc.StatusCode.NOT_FOUND
    )


async def test_a_template_with_a_credential_is_refused(running: Running) -> None:
    config_values = struct_pb2.Struct()
    config_values.update({"app.endpoint": CREDENTIALS["slack token"]})
    await _create(running, "app.endpoint", value=value("https://example.com"))

    error = await expect_status(
        running.config.UpsertTemplate(
            pb.UpsertTemplateRequest(
                template=pb.Template(
                    name="leaky", template_type="test", config_values=config_values, is_active=True
                )
            )
        ),
        INVALID,
    )

    assert (
        "looks like a Slack token" in field_violations(error)["template.config_values.app.endpoint"]
    )
    templates = await running.config.ListTemplates(pb.ListTemplatesRequest())
    assert "leaky" not in {t.name for t in templates.templates}


@pytest.mark.parametrize("ordinary", ORDINARY)
async def test_ordinary_values_are_accepted(running: Running, ordinary: str) -> None:
    await _create(running, "app.endpoint", value=value("https://example.com"))

    await running.config.SetValue(pb.SetValueRequest(key="app.endpoint", value=value(ordinary)))

    read = await running.config.GetValue(pb.GetValueRequest(key="app.endpoint"))
    assert read.value.string_value == ordinary


async def test_an_encrypted_key_takes_a_secret_and_the_file_never_holds_it(
    tmp_path: Path,
) -> None:
    database = tmp_path / "e2e.db"
    secret = CREDENTIALS["jwt"]
    async with serving(database) as running:
        await _create(running, "auth.token", is_encrypted=True, value=value(secret))
        await running.config.SetValue(
            pb.SetValueRequest(
                key="auth.token", value=value(secret + "-staging"), environment="staging"
            )
        )

        base = await running.config.GetValue(pb.GetValueRequest(key="auth.token"))
        staging = await running.config.GetValue(
            pb.GetValueRequest(key="auth.token", environment="staging")
        )
        history = await running.config.GetHistory(pb.GetHistoryRequest(key="auth.token"))

        assert base.value.string_value == secret
        assert staging.value.string_value == secret + "-staging"
        assert history.entries[0].new_value.string_value == secret + "-staging"

    files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    on_disk = b"".join(p.read_bytes() for p in files if p.exists())
    assert len(on_disk) > 0
    for part in secret.split("."):  # nor any part of it
        assert part.encode() not in on_disk
    # The embedded default keeps its master key beside the database, readable by its owner.
    key_file = tmp_path / "e2e.db.keys"
    assert key_file.exists()
    assert key_file.stat().st_mode & 0o077 == 0


async def test_keys_rotate_moves_every_data_key_then_the_old_key_can_go(
    tmp_path: Path,
) -> None:
    database = tmp_path / "rotate.db"
    url = f"sqlite:///{database}"
    old = _key_file(tmp_path / "old.keys", ("k-old", 1))
    async with serving(database, encryption_key_file=str(old)) as running:
        await _create(running, "db.password", is_encrypted=True, value=value("first-password-1"))
        await _create(running, "smtp.password", is_encrypted=True, value=value("mail-password-2"))
        await running.config.SetValue(
            pb.SetValueRequest(
                key="db.password", value=value("prod-password-3"), environment="production"
            )
        )

    both = _key_file(tmp_path / "both.keys", ("k-new", 2), ("k-old", 1))
    env_keys = ("SWITCHYARD_ENCRYPTION_KEYS",)
    assert os.environ.get(env_keys[0]) is None  # the key file is what the commands use

    code, status = await run_switchyard(
        "keys", "status", "--database-url", url, "--key-file", str(both)
    )
    assert code == 1 and "k-old: 2 data key(s)" in status and "to rotate" in status

    code, rotated = await run_switchyard(
        "keys", "rotate", "--database-url", url, "--key-file", str(both)
    )
    assert code == 0, rotated
    assert "rewrapped 2 data key(s); all 2 are now under k-new" in rotated

    new_only = _key_file(tmp_path / "new.keys", ("k-new", 2))
    code, status = await run_switchyard(
        "keys", "status", "--database-url", url, "--key-file", str(new_only)
    )
    assert code == 0 and "k-new (current): 2 data key(s)" in status

    async with serving(database, encryption_key_file=str(new_only)) as running:
        base = await running.config.GetValue(pb.GetValueRequest(key="db.password"))
        production = await running.config.GetValue(
            pb.GetValueRequest(key="db.password", environment="production")
        )
        smtp = await running.config.GetValue(pb.GetValueRequest(key="smtp.password"))
        history = await running.config.GetHistory(pb.GetHistoryRequest(key="db.password"))

    assert base.value.string_value == "first-password-1"
    assert production.value.string_value == "prod-password-3"
    assert smtp.value.string_value == "mail-password-2"
    assert history.entries[0].new_value.string_value == "prod-password-3"


async def test_a_server_without_the_master_key_refuses_to_start(tmp_path: Path) -> None:
    from switchyard.domain.errors import FailedPrecondition

    database = tmp_path / "locked.db"
    first = _key_file(tmp_path / "first.keys", ("k-first", 1))
    async with serving(database, encryption_key_file=str(first)) as running:
        await _create(running, "db.password", is_encrypted=True, value=value("a-password"))

    other = _key_file(tmp_path / "other.keys", ("k-other", 2))
    with pytest.raises(FailedPrecondition, match="'k-first'"):
        async with serving(database, encryption_key_file=str(other)):
            pass
