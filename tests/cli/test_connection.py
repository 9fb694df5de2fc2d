"""Reaching the server: an unreachable one, tokens against a server with
authentication, and where the settings come from (flag > environment > context >
default), with the contexts file the `context` commands write."""

from __future__ import annotations

import asyncio
import socket
import stat
from pathlib import Path

import yaml

from switchyard.cli.exit_codes import ExitCode

from ..e2e.test_security import make_token
from .conftest import Running, serving, switchyard


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def free_address() -> str:
    """A loopback address nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


async def test_an_unreachable_server_exits_7_with_advice_and_no_traceback() -> None:
    address = free_address()
    shown = await switchyard("get", "api.timeout", address=address)
    assert shown.code == ExitCode.UNAVAILABLE
    assert "UNAVAILABLE" in shown.stderr
    assert f"is a server running at {address}?" in shown.stderr and "make run" in shown.stderr
    assert "Traceback" not in shown.stderr and shown.stdout == ""


async def test_a_server_with_auth_wants_a_valid_token(tmp_path: Path) -> None:
    async with serving(tmp_path / "auth.db", auth=True) as running:
        token = await make_token(running, "reader-user", "reader")
        missing = await switchyard("get", "api.timeout", address=running.address)
        assert missing.code == ExitCode.DENIED
        assert "UNAUTHENTICATED" in missing.stderr and "SWITCHYARD_TOKEN" in missing.stderr

        wrong = await switchyard(
            "get", "api.timeout", "--token", "swy_" + "x" * 40, address=running.address
        )
        assert wrong.code == ExitCode.DENIED

        good = await switchyard(
            "get", "api.timeout", "-o", "json", address=running.address, SWITCHYARD_TOKEN=token
        )
        assert good.code == 0, good.stderr
        assert good.json()["value"] == 30

        denied = await switchyard(
            "set", "api.timeout", "5", address=running.address, SWITCHYARD_TOKEN=token
        )
        assert denied.code == ExitCode.DENIED and "PERMISSION_DENIED" in denied.stderr


async def test_contexts_are_written_private_and_listed(isolated: Path) -> None:
    made = await switchyard("context", "set", "staging", "--address", "10.0.0.1:1", "--token", "t1")
    assert made.code == 0, made.stderr
    await switchyard("context", "set", "prod", "--address", "10.0.0.2:2")
    assert mode(isolated) == 0o600

    listed = (await switchyard("context", "list", "-o", "json")).json()
    assert listed["current_context"] == "staging", "the first context made is current"
    assert [c["name"] for c in listed["contexts"]] == ["prod", "staging"]

    assert (await switchyard("context", "use", "prod")).code == 0
    shown = (await switchyard("context", "show", "staging", "-o", "json")).json()
    assert shown["address"] == "10.0.0.1:1" and shown["token"] != "t1", "masked"
    assert yaml.safe_load(await asyncio.to_thread(isolated.read_text))["current-context"] == "prod"

    unknown = await switchyard("context", "use", "nope")
    assert unknown.code == ExitCode.USAGE and "staging" in unknown.stderr


async def test_settings_come_from_flag_then_environment_then_context(
    running: Running, isolated: Path
) -> None:
    nowhere = free_address()
    write(isolated.parent / "token", "swy_from_file\n")
    write(
        isolated,
        yaml.safe_dump(
            {
                "current-context": "good",
                "contexts": {
                    "good": {"address": running.address, "token-file": "token"},
                    "bad": {"address": nowhere},
                },
            }
        ),
    )
    by_context = await switchyard("get", "api.timeout", "-o", "json")
    assert by_context.code == 0, by_context.stderr

    other = await switchyard("get", "api.timeout", "--context", "bad")
    assert other.code == ExitCode.UNAVAILABLE and nowhere in other.stderr
    by_env = await switchyard("get", "api.timeout", SWITCHYARD_CONTEXT="bad")
    assert by_env.code == ExitCode.UNAVAILABLE

    env_beats_context = await switchyard("get", "api.timeout", SWITCHYARD_ADDRESS=nowhere)
    assert env_beats_context.code == ExitCode.UNAVAILABLE
    flag_beats_env = await switchyard(
        "get", "api.timeout", address=running.address, SWITCHYARD_ADDRESS=nowhere
    )
    assert flag_beats_env.code == 0

    missing = await switchyard("get", "api.timeout", "--context", "nope")
    assert missing.code == ExitCode.USAGE and "no context 'nope'" in missing.stderr


async def test_a_token_file_of_a_context_is_read(tmp_path: Path, isolated: Path) -> None:
    async with serving(tmp_path / "auth.db", auth=True) as running:
        token = await make_token(running, "reader-user", "reader")
        (tmp_path / "token").write_text(token + "\n")
        await switchyard(
            "context", "set", "secured", "--address", running.address,
            "--token-file", str(tmp_path / "token"),
        )  # fmt: skip
        read = await switchyard("get", "api.timeout", "-o", "json")
        assert read.code == 0, read.stderr


async def test_a_broken_contexts_file_is_reported(isolated: Path) -> None:
    write(isolated, "contexts: [1, 2]\n")
    shown = await switchyard("get", "api.timeout")
    assert shown.code == ExitCode.INVALID and str(isolated) in shown.stderr


async def test_a_certificate_without_its_key_is_a_usage_error(tmp_path: Path) -> None:
    shown = await switchyard("get", "k", "--tls-cert", str(tmp_path / "c.pem"))
    assert shown.code == ExitCode.USAGE and "private key" in shown.stderr
