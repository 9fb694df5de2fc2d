"""Regular expressions that callers store and the server runs: a key's `regex_pattern`
(matched against every value written) and a flag rule's `matches` (searched in every
evaluation). They run in linear time, so no pattern stalls the server; patterns the
engine cannot run are refused when saved; patterns stored before that break nothing.
A real server over a real SQLite file; the stored rows are written into that file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import struct_pb2

from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import flag_pb2 as flag_pb
from switchyard.gen.v1 import flag_pb2_grpc

from .conftest import Running, serving
from .helpers import expect_status, field_violations, value
from .test_config_api import create, state

T = TypeVar("T")

CATASTROPHIC = "(a+)+$"
"""Exponential for a backtracking engine: each extra `a` doubles the work."""
ATTACK = "a" * 25 + "!"
"""Three seconds and more of backtracking on the machines this is built on."""
STALL_BOUND = 1.0
"""Seconds a probe may take while the costly call runs. A probe takes milliseconds; the
bound leaves room for a busy 2-core machine, and a backtracking engine takes 3 s and
more on ATTACK."""


async def slowest_probe(running: Running, call: Awaitable[T]) -> tuple[float, T | Exception]:
    """Runs `call` while GetValue probes go back to back, and returns the slowest probe's
    latency and what `call` answered. The server and this client share one event loop:
    a probe is in flight whenever the server runs a handler (between two probes there
    is no await), so a handler that holds the loop shows in that probe's latency."""

    async def answer() -> T | Exception:
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            return error

    slowest, probes = 0.0, 0
    task = asyncio.ensure_future(answer())
    while not task.done() or probes < 3:
        started = time.perf_counter()
        await running.config.GetValue(pb.GetValueRequest(key="api.timeout"))
        slowest = max(slowest, time.perf_counter() - started)
        probes += 1
    return slowest, task.result()


def flags(running: Running) -> flag_pb2_grpc.FlagServiceStub:
    return flag_pb2_grpc.FlagServiceStub(running.channel)


def flag(key: str, *rules: dict[str, Any]) -> flag_pb.FeatureFlag:
    listed = struct_pb2.ListValue()
    listed.extend(rules)
    return flag_pb.FeatureFlag(
        key=key,
        name=key,
        is_enabled=True,
        rollout_percentage=0,
        feature_category="beta",
        feature_type="release",
        targeting_rules=listed,
    )


def matches(rule_id: str, pattern: str, attribute: str = "email") -> dict[str, Any]:
    return {"id": rule_id, "when": {"attribute": attribute, "op": "matches", "value": pattern}}


def context(**attributes: Any) -> flag_pb.EvaluationContext:
    message = flag_pb.EvaluationContext(user_id="alice")
    message.attributes.update(attributes)
    return message


async def test_a_catastrophic_key_pattern_does_not_stall_other_calls(running: Running) -> None:
    await create(
        running,
        "costly.pattern",
        pb.CONFIG_TYPE_STRING,
        validation=pb.Validation(regex_pattern=CATASTROPHIC),
    )
    before = await state(running, "costly.pattern")

    slowest, answer = await slowest_probe(
        running,
        running.config.SetValue(pb.SetValueRequest(key="costly.pattern", value=value(ATTACK))),
    )

    assert slowest < STALL_BOUND, f"a probe waited {slowest:.2f} s"
    assert isinstance(answer, grpc.aio.AioRpcError), answer
    assert answer.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "must match the pattern" in field_violations(answer)["value"]
    assert await state(running, "costly.pattern") == before


async def test_a_catastrophic_rule_pattern_does_not_stall_other_calls(running: Running) -> None:
    stub = flags(running)
    await stub.UpsertFlag(
        flag_pb.UpsertFlagRequest(flag=flag("costly", matches("r", CATASTROPHIC)))
    )

    slowest, answer = await slowest_probe(
        running,
        stub.EvaluateFlag(
            flag_pb.EvaluateFlagRequest(flag_key="costly", context=context(email=ATTACK))
        ),
    )

    assert slowest < STALL_BOUND, f"a probe waited {slowest:.2f} s"
    assert isinstance(answer, flag_pb.EvaluateFlagResponse), answer
    assert answer.reason == flag_pb.EVALUATION_REASON_DEFAULT and not answer.enabled


async def test_patterns_the_engine_cannot_run_are_refused_with_its_reason(
    running: Running,
) -> None:
    before = await state(running)
    error = await expect_status(
        running.config.CreateConfig(
            pb.CreateConfigRequest(
                config=pb.ConfigDefinition(
                    key="twice.the.same",
                    type=pb.CONFIG_TYPE_STRING,
                    category="test",
                    is_active=True,
                    is_editable=True,
                    validation=pb.Validation(regex_pattern=r"(\w+)-\1"),
                )
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    described = field_violations(error)["config.validation.regex_pattern"]
    assert "backreference" in described.lower() or r"\1" in described, described

    error = await expect_status(
        flags(running).UpsertFlag(
            flag_pb.UpsertFlagRequest(flag=flag("looking.ahead", matches("r", "(?=beta)")))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    described = field_violations(error)["flag.targeting_rules[0].when.value"]
    assert "(?=" in described, described
    assert await state(running) == before


def _write(database: Path, statement: str, *binds: object) -> None:
    """Changes a stored row behind the server's back, as an older version (whose engine
    took other patterns) would have written it."""
    with sqlite3.connect(database) as raw:
        assert raw.execute(statement, binds).rowcount == 1


async def test_stored_rules_the_engine_cannot_run_never_match_and_break_nothing(
    tmp_path: Path,
) -> None:
    """A stored rule whose pattern cannot run never matches (the whole rule, so a `not`
    around it cannot turn it into "everyone"); the server starts, evaluates and lists."""
    database = tmp_path / "stored-rules.db"
    async with serving(database) as first:
        await flags(first).UpsertFlag(
            flag_pb.UpsertFlagRequest(flag=flag("stored", matches("plain", "^pro$", "plan")))
        )
    stored = [
        {"id": "lookahead", "when": {"not": matches("x", "(?=x)")["when"]}},
        {"id": "unbalanced", "when": matches("x", "(")["when"]},
        matches("plain", "^pro$", "plan"),
    ]
    _write(
        database,
        "UPDATE pf_feature_flags SET targeting_rules = ? WHERE feature_key = 'stored'",
        json.dumps(stored),
    )

    async with serving(database) as server:
        stub = flags(server)
        basic = await stub.EvaluateFlag(
            flag_pb.EvaluateFlagRequest(
                flag_key="stored", context=context(email="a@b.c", plan="basic")
            )
        )
        pro = await stub.EvaluateFlag(
            flag_pb.EvaluateFlagRequest(flag_key="stored", context=context(plan="pro"))
        )
        read = await stub.GetFlag(flag_pb.GetFlagRequest(flag_key="stored"))

    assert (basic.enabled, basic.reason) == (False, flag_pb.EVALUATION_REASON_DEFAULT)
    assert (pro.reason, pro.rule_id) == (flag_pb.EVALUATION_REASON_RULE_MATCH, "plain")
    assert [rule["id"] for rule in read.flag.targeting_rules] == [
        "lookahead",
        "unbalanced",
        "plain",
    ]


async def test_a_stored_key_pattern_the_engine_cannot_run_refuses_values_until_fixed(
    tmp_path: Path,
) -> None:
    """Reads go on; a value cannot be checked, so it is refused with what to fix; fixing
    the pattern makes the key writable again."""
    database = tmp_path / "stored-pattern.db"
    async with serving(database) as first:
        await create(
            first,
            "ticket.id",
            pb.CONFIG_TYPE_STRING,
            value=value("OPS-1"),
            validation=pb.Validation(regex_pattern="[A-Z]+-[0-9]+"),
        )
    _write(
        database,
        "UPDATE pf_system_config SET regex_pattern = ? WHERE config_key = 'ticket.id'",
        "(?=[A-Z])[A-Z]+-[0-9]+",
    )

    async with serving(database) as server:
        read = await server.config.GetValue(pb.GetValueRequest(key="ticket.id"))
        before = await state(server, "ticket.id")
        error = await expect_status(
            server.config.SetValue(pb.SetValueRequest(key="ticket.id", value=value("OPS-2"))),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        after = await state(server, "ticket.id")
        current = (await server.config.GetConfig(pb.GetConfigRequest(key="ticket.id"))).config
        current.validation.regex_pattern = "[A-Z]+-[0-9]+"
        await server.config.UpdateConfig(pb.UpdateConfigRequest(config=current))
        await server.config.SetValue(pb.SetValueRequest(key="ticket.id", value=value("OPS-3")))
        fixed = await server.config.GetValue(pb.GetValueRequest(key="ticket.id"))

    assert read.value.string_value == "OPS-1"
    assert "regex_pattern" in field_violations(error)["value"]
    assert after == before
    assert fixed.value.string_value == "OPS-3"


async def test_a_value_full_of_pem_headers_does_not_stall_other_calls(running: Running) -> None:
    """The secret guard's own expressions run on every value written: the one that left
    out public PEM blocks scanned to the end of the text from every BEGIN (10 s for a
    64 KiB value)."""
    await create(running, "notes.pem", pb.CONFIG_TYPE_STRING)
    text = "-----BEGIN CERTIFICATE-----" * 2400  # 64,800 characters

    slowest, answer = await slowest_probe(
        running,
        running.config.SetValue(pb.SetValueRequest(key="notes.pem", value=value(text))),
    )

    assert slowest < STALL_BOUND, f"a probe waited {slowest:.2f} s"
    assert isinstance(answer, pb.SetValueResponse), answer
