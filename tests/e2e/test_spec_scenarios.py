"""The specification's test scenarios, end to end over real gRPC on loopback."""

from __future__ import annotations

from switchyard.gen.v1 import config_pb2 as pb

from .conftest import Running
from .helpers import value


async def _create(running: Running, key: str, kind: int) -> None:
    await running.config.CreateConfig(
        pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key=key, type=kind, category="test", is_active=True, is_editable=True
            ),
            reason="test setup",
        )
    )


async def test_environment_override_beats_base(running: Running) -> None:
    await _create(running, "svc.timeout", pb.CONFIG_TYPE_NUMBER)
    await running.config.SetValue(pb.SetValueRequest(key="svc.timeout", value=value(30)))
    await running.config.SetValue(
        pb.SetValueRequest(key="svc.timeout", value=value(60), environment="production")
    )

    production = await running.config.GetValue(
        pb.GetValueRequest(key="svc.timeout", environment="production")
    )
    development = await running.config.GetValue(
        pb.GetValueRequest(key="svc.timeout", environment="development")
    )

    assert production.value.number_value == 60
    assert production.source == pb.VALUE_SOURCE_OVERRIDE
    assert development.value.number_value == 30
    assert development.source == pb.VALUE_SOURCE_BASE


async def test_rollback_two_steps_restores_first_value(running: Running) -> None:
    await _create(running, "setting", pb.CONFIG_TYPE_STRING)
    for text in ("value1", "value2", "value3"):
        await running.config.SetValue(pb.SetValueRequest(key="setting", value=value(text)))

    result = await running.config.Rollback(pb.RollbackRequest(key="setting", steps=2))

    current = await running.config.GetValue(pb.GetValueRequest(key="setting"))
    assert current.value.string_value == "value1"
    assert result.old_value.string_value == "value3"
    assert result.new_value.string_value == "value1"
    history = await running.config.GetHistory(pb.GetHistoryRequest(key="setting"))
    assert history.entries[0].action == pb.HISTORY_ACTION_ROLLBACK
    assert history.entries[0].revision == result.revision


async def test_demo_key_answers_like_the_readme_says(running: Running) -> None:
    answer = await running.config.GetValue(
        pb.GetValueRequest(key="api.timeout", environment="production")
    )

    assert answer.value.number_value == 60
    assert answer.source == pb.VALUE_SOURCE_OVERRIDE
    assert answer.revision > 0
