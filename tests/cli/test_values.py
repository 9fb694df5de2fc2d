"""get, set, unset, list, history, rollback and diff against a real server, in table and
JSON output: what they print, what they change, and how they refuse."""

from __future__ import annotations

import yaml

from switchyard.cli.exit_codes import ExitCode
from switchyard.cli.values import parse_value

from .conftest import Running, switchyard


def test_values_parse_as_json_when_they_can() -> None:
    assert parse_value("45") == 45
    assert parse_value("true") is True
    assert parse_value('{"a":1}') == {"a": 1}
    assert parse_value('"45"') == "45"
    assert parse_value("hello world") == "hello world"
    assert parse_value("45", as_string=True) == "45"


async def test_get_shows_the_value_and_the_layer_that_answered(running: Running) -> None:
    shown = await switchyard("get", "api.timeout", "--env", "production", address=running.address)
    assert shown.code == 0, shown.stderr
    assert "override" in shown.stdout and "production" in shown.stdout and "60" in shown.stdout

    data = (
        await switchyard(
            "get", "api.timeout", "--env", "production", "-o", "json", address=running.address
        )
    ).json()
    assert data["value"] == 60
    assert (data["type"], data["source"], data["source_environment"]) == (
        "number",
        "override",
        "production",
    )
    assert data["revision"] >= data["version"] >= 1

    as_yaml = await switchyard("get", "api.timeout", "-o", "yaml", address=running.address)
    assert yaml.safe_load(as_yaml.stdout)["source"] == "base"


async def test_an_unknown_key_exits_3_with_a_hint(running: Running) -> None:
    shown = await switchyard("get", "api.nope", address=running.address)
    assert shown.code == ExitCode.NOT_FOUND
    assert "NOT_FOUND" in shown.stderr and "hint:" in shown.stderr
    assert "Traceback" not in shown.stderr + shown.stdout


async def test_set_writes_a_value_with_its_reason_and_history_shows_it(running: Running) -> None:
    written = await switchyard(
        "set",
        "api.timeout",
        "45",
        "--env",
        "staging",
        "--reason",
        "load test",
        "--ticket",
        "OPS-7",
        "-o",
        "json",
        address=running.address,
    )
    assert written.code == 0, written.stderr
    data = written.json()
    assert (data["value"], data["environment"], data["changed"]) == (45, "staging", True)

    again = await switchyard(
        "set", "api.timeout", "45", "--env", "staging", "-o", "json", address=running.address
    )
    assert again.json()["changed"] is False

    history = await switchyard(
        "history", "api.timeout", "--env", "staging", "-o", "json", address=running.address
    )
    newest = history.json()["entries"][0]
    assert (newest["reason"], newest["ticket"], newest["new_value"]) == ("load test", "OPS-7", 45)
    assert newest["revision"] == data["revision"] and newest["changed_by"]
    assert newest["changed_by_username"] == "local-operator"

    shown = await switchyard("history", "api.timeout", "--limit", "2", address=running.address)
    assert shown.code == 0
    assert "+ value: 45" in shown.stdout and "reason: load test" in shown.stdout
    assert shown.stdout.count("revision ") == 2


async def test_a_string_value_stays_a_string(running: Running) -> None:
    written = await switchyard(
        "set", "support.email", "ops@example.com", "-o", "json", address=running.address
    )
    assert written.json()["value"] == "ops@example.com"
    forced = await switchyard(
        "set", "api.base_url", "https://x.example", "--string", "-o", "json",
        address=running.address,
    )  # fmt: skip
    assert forced.json()["value"] == "https://x.example"


async def test_a_refused_value_exits_4_shows_the_field_and_changes_nothing(
    running: Running,
) -> None:
    before = (await switchyard("get", "api.timeout", "-o", "json", address=running.address)).json()
    refused = await switchyard("set", "api.timeout", "99999", address=running.address)
    assert refused.code == ExitCode.INVALID
    assert "INVALID_ARGUMENT" in refused.stderr
    assert any(line.startswith("  value: ") for line in refused.stderr.splitlines()) or (
        "value:" in refused.stderr
    )
    assert "Traceback" not in refused.stderr
    wrong_type = await switchyard("set", "api.timeout", "abc", address=running.address)
    assert wrong_type.code == ExitCode.INVALID and "number" in wrong_type.stderr
    after = (await switchyard("get", "api.timeout", "-o", "json", address=running.address)).json()
    assert after == before


async def test_a_stale_expected_version_exits_5(running: Running) -> None:
    stale = await switchyard(
        "set", "api.timeout", "40", "--expected-version", "1", address=running.address
    )
    assert stale.code == ExitCode.CONFLICT, stale.stderr
    assert "ABORTED" in stale.stderr and "current_version" in stale.stderr


async def test_unset_removes_an_override(running: Running) -> None:
    await switchyard("set", "api.timeout", "45", "--env", "staging", address=running.address)
    removed = await switchyard(
        "unset", "api.timeout", "--env", "staging", "-o", "json", address=running.address
    )
    assert removed.code == 0, removed.stderr
    assert removed.json()["deleted"] == 1
    read = await switchyard(
        "get", "api.timeout", "--env", "staging", "-o", "json", address=running.address
    )
    assert read.json()["source"] != "override"

    usage = await switchyard("unset", "api.timeout", address=running.address)
    assert usage.code == ExitCode.USAGE and "--env" in usage.stderr


async def test_list_shows_keys_and_with_env_their_effective_values(running: Running) -> None:
    table = await switchyard("list", "--prefix", "api.", address=running.address)
    assert table.code == 0
    assert "api.timeout" in table.stdout and "cache.ttl" not in table.stdout

    data = (
        await switchyard("list", "--env", "production", "-o", "json", address=running.address)
    ).json()
    by_key = {row["key"]: row for row in data["configs"]}
    assert by_key["api.timeout"]["value"] == 30
    assert by_key["api.timeout"]["effective"] == {
        "value": 60,
        "source": "override",
        "source_environment": "production",
    }
    assert data["environment"] == "production" and data["revision"] > 0


async def test_rollback_dry_run_changes_nothing_then_rollback_restores(
    running: Running,
) -> None:
    await switchyard("set", "api.timeout", "45", address=running.address)
    dry = await switchyard("rollback", "api.timeout", "--dry-run", address=running.address)
    assert dry.code == 0, dry.stderr
    assert "dry run" in dry.stdout and "- value: 45" in dry.stdout and "+ value: 30" in dry.stdout
    read = await switchyard("get", "api.timeout", "-o", "json", address=running.address)
    assert read.json()["value"] == 45

    done = await switchyard(
        "rollback", "api.timeout", "--reason", "too slow", "-o", "json", address=running.address
    )
    assert done.json()["new_value"] == 30 and done.json()["dry_run"] is False
    read = await switchyard("get", "api.timeout", "-o", "json", address=running.address)
    assert read.json()["value"] == 30

    both = await switchyard(
        "rollback", "api.timeout", "--steps", "1", "--to-version", "1", address=running.address
    )
    assert both.code == ExitCode.USAGE


async def test_diff_exits_1_on_differences_and_0_when_equal(running: Running) -> None:
    differs = await switchyard("diff", "staging", "production", address=running.address)
    assert differs.code == ExitCode.DIFFERENCES
    assert "api.timeout" in differs.stdout and "override@production" in differs.stdout

    data = (
        await switchyard("diff", "staging", "production", "-o", "json", address=running.address)
    ).json()
    (item,) = [k for k in data["keys"] if k["key"] == "api.timeout"]
    assert item["b"] == {"value": 60, "source": "override", "source_environment": "production"}
    assert item["same"] is False and data["differences"] == len(data["keys"])

    equal = await switchyard(
        "diff", "staging", "production", "--prefix", "cache.", "-o", "json",
        address=running.address,
    )  # fmt: skip
    assert equal.code == 0 and equal.json()["keys"] == []
    every = await switchyard(
        "diff", "staging", "production", "--prefix", "cache.", "--all", "-o", "json",
        address=running.address,
    )  # fmt: skip
    assert every.code == 0 and [k["key"] for k in every.json()["keys"]] == ["cache.ttl"]
