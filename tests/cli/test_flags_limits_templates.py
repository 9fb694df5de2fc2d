"""flag, limit and template commands against a real server, in table and JSON output."""

from __future__ import annotations

from google.protobuf import struct_pb2

from switchyard.cli.exit_codes import ExitCode
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import flag_pb2, flag_pb2_grpc, rate_limit_pb2, rate_limit_pb2_grpc

from .conftest import Running, switchyard


async def _checkout_flag(running: Running) -> None:
    flags = flag_pb2_grpc.FlagServiceStub(running.channel)
    await flags.UpsertFlag(
        flag_pb2.UpsertFlagRequest(
            flag=flag_pb2.FeatureFlag(
                key="new_checkout",
                name="New checkout",
                is_enabled=True,
                rollout_percentage=0,
                enabled_for_roles=["beta"],
                feature_category="beta",
                feature_type="release",
            ),
            reason="launch",
        )
    )


async def test_flags_are_listed_evaluated_and_switched(running: Running) -> None:
    await _checkout_flag(running)
    listed = await switchyard("flag", "list", address=running.address)
    assert listed.code == 0 and "new_checkout" in listed.stdout
    rows = (await switchyard("flag", "list", "-o", "json", address=running.address)).json()
    assert [f["key"] for f in rows["flags"]] == ["new_checkout"]

    decided = await switchyard(
        "flag", "eval", "new_checkout", "--user", "alice", "--role", "beta",
        "--attr", "plan=pro", "-o", "json", address=running.address,
    )  # fmt: skip
    assert decided.code == 0, decided.stderr
    assert decided.json()["enabled"] is True and decided.json()["reason"] == "role_targeted"

    off = await switchyard(
        "flag", "disable", "new_checkout", "--reason", "incident", "-o", "json",
        address=running.address,
    )  # fmt: skip
    assert off.code == 0, off.stderr
    assert off.json()["is_enabled"] is False
    after = await switchyard(
        "flag", "eval", "new_checkout", "--role", "beta", "-o", "json", address=running.address
    )
    assert after.json()["reason"] == "disabled"
    on = await switchyard("flag", "enable", "new_checkout", address=running.address)
    assert on.code == 0 and "enabled" in on.stdout

    bad_attr = await switchyard(
        "flag", "eval", "new_checkout", "--attr", "plan", address=running.address
    )
    assert bad_attr.code == ExitCode.USAGE
    unknown = await switchyard("flag", "disable", "nope", address=running.address)
    assert unknown.code == ExitCode.NOT_FOUND


async def test_limits_are_listed_and_checked(running: Running) -> None:
    limits = rate_limit_pb2_grpc.RateLimitServiceStub(running.channel)
    await limits.UpsertRateLimit(
        rate_limit_pb2.UpsertRateLimitRequest(
            rate_limit=rate_limit_pb2.RateLimit(
                key="orders",
                name="Orders",
                max_requests=2,
                time_window_seconds=60,
                scope_type=rate_limit_pb2.SCOPE_TYPE_USER,
            )
        )
    )
    listed = await switchyard("limit", "list", address=running.address)
    assert listed.code == 0 and "orders" in listed.stdout and "2/60s" in listed.stdout
    rows = (await switchyard("limit", "list", "-o", "json", address=running.address)).json()
    assert rows["rate_limits"][0]["scope_type"] == "user"

    answers = [
        (
            await switchyard(
                "limit", "check", "orders", "--user", "bob", "-o", "json", address=running.address
            )
        ).json()
        for _ in range(3)
    ]
    assert [a["allowed"] for a in answers] == [True, True, False]
    assert answers[0]["limit_key"] == "orders" and answers[0]["remaining"] == 1
    assert answers[2]["retry_after_seconds"] > 0
    shown = await switchyard("limit", "check", "orders", "--user", "bob", address=running.address)
    assert shown.code == 0 and "denied" in shown.stdout


async def _template(running: Running, name: str, values: dict[str, int | str]) -> None:
    config_values = struct_pb2.Struct()
    config_values.update(values)
    await running.config.UpsertTemplate(
        pb.UpsertTemplateRequest(
            template=pb.Template(
                name=name, template_type="preset", config_values=config_values, is_active=True
            )
        )
    )


async def test_a_template_is_planned_then_applied(running: Running) -> None:
    await _template(running, "fast", {"api.timeout": 10, "cache.ttl": "5m"})
    await switchyard("set", "cache.ttl", "5m", "--env", "staging", address=running.address)
    plan = await switchyard(
        "template", "apply", "fast", "--env", "staging", "--dry-run", address=running.address
    )
    assert plan.code == 0, plan.stderr
    assert "dry run" in plan.stdout and "updated" in plan.stdout and "unchanged" in plan.stdout
    read = await switchyard(
        "get", "api.timeout", "--env", "staging", "-o", "json", address=running.address
    )
    assert read.json()["value"] == 30, "a dry run changes nothing"

    done = await switchyard(
        "template", "apply", "fast", "--env", "staging", "-o", "json", address=running.address
    )
    data = done.json()
    assert data["applied"] is True
    outcomes = {r["key"]: r["outcome"] for r in data["results"]}
    assert outcomes == {"api.timeout": "updated", "cache.ttl": "unchanged"}


async def test_a_refused_template_exits_4_listing_each_refusal(running: Running) -> None:
    await _template(running, "broken", {"api.timeout": 99999, "cache.ttl": "1m"})
    refused = await switchyard(
        "template", "apply", "broken", "--env", "staging", address=running.address
    )
    assert refused.code == ExitCode.INVALID
    assert "  config_values.api.timeout: " in refused.stderr
    read = await switchyard(
        "get", "cache.ttl", "--env", "staging", "-o", "json", address=running.address
    )
    assert read.json()["value"] == "5m", "all or nothing"

    missing = await switchyard("template", "apply", "nope", address=running.address)
    assert missing.code == ExitCode.NOT_FOUND
