"""Texts that look like Switchyard's own markers are only text. Whether a stored column is
sealed (encrypted) is known from the row itself, never from what a caller typed: a
reason, a ticket, a description, a token's owner, a change request's reason or a JSON
value that reads like sealed text commits, and afterwards the history still reads, a
watcher still hears later changes, and another replica still reloads its tokens.

Each case runs against real servers: two replicas (grpc.aio on port 0) over one SQLite
file, the second with authentication on, so that it learns of tokens only through the
history it follows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2, json_format

from switchyard.gen.v1 import access_pb2, access_pb2_grpc, change_pb2, change_pb2_grpc
from switchyard.gen.v1 import config_pb2 as pb

from .conftest import Running, serving
from .helpers import eventually, value
from .watching import watching

# What a caller might type. The first forms are the envelope and the JSON document the
# sealer writes; the last names a data key that looks real.
ENVELOPE = "enc:v1:x"
DOCUMENT = '{"sealed":"enc:v1:x"}'
LOOKS_REAL = "enc:v1:6f1c2b4e-0d5a-4c1e-9a57-0b3f1e2d4c6a:" + "A" * 40
FAST = {"poll_seconds": 0.2, "watch_progress_seconds": 0.3}
# Generous for a loaded 2-core machine: the follower polls every 0.2 s.
WITHIN = 15.0


@dataclass
class Replicas:
    first: Running
    second: Running


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[Replicas]:
    database = tmp_path / "markers.db"
    async with serving(database, **FAST) as first, serving(database, auth=True, **FAST) as second:
        yield Replicas(first, second)


async def _json_key(running: Running) -> str:
    await running.config.CreateConfig(
        pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key="app.document",
                type=pb.CONFIG_TYPE_JSON,
                category="test",
                is_active=True,
                is_editable=True,
                is_deletable=True,
            )
        )
    )
    return "app.document"


def _texts(document: object) -> set[str]:
    """Every string a JSON document holds, keys and values, however deep."""
    if isinstance(document, str):
        return {document}
    if isinstance(document, dict):
        return {*document, *(t for item in document.values() for t in _texts(item))}
    if isinstance(document, list):
        return {t for item in document for t in _texts(item)}
    return set()


Write = Callable[[Running, str], Awaitable[None]]


async def _reason(running: Running, text: str) -> None:
    await running.config.SetValue(
        pb.SetValueRequest(key="api.timeout", value=value(45), environment="staging", reason=text)
    )


async def _ticket(running: Running, text: str) -> None:
    await running.config.SetValue(
        pb.SetValueRequest(key="api.timeout", value=value(46), ticket=text)
    )


async def _string_value(running: Running, text: str) -> None:
    await running.config.CreateConfig(
        pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key="app.label",
                type=pb.CONFIG_TYPE_STRING,
                category="test",
                is_active=True,
                is_editable=True,
                is_deletable=True,
                value=value(text),
            )
        )
    )


async def _json_value(running: Running, text: str) -> None:
    key = await _json_key(running)
    await running.config.SetValue(pb.SetValueRequest(key=key, value=value({"sealed": text})))
    await running.config.SetValue(
        pb.SetValueRequest(key=key, value=value({"sealed": text}), environment="staging")
    )


async def _description(running: Running, text: str) -> None:
    await running.config.UpdateConfig(
        pb.UpdateConfigRequest(
            config=pb.ConfigDefinition(key="api.base_url", description=text, help_text=text),
            update_mask=field_mask_pb2.FieldMask(paths=["description", "help_text"]),
        )
    )


async def _token(running: Running, text: str) -> None:
    access = access_pb2_grpc.AccessServiceStub(running.channel)
    await access.CreateToken(
        access_pb2.CreateTokenRequest(
            owner=text,
            grants=[access_pb2.Grant(role="reader")],
            description=text,
            reason=text,
            ticket=text,
        )
    )


async def _change_request(running: Running, text: str) -> None:
    changes = change_pb2_grpc.ChangeRequestServiceStub(running.channel)
    await changes.ProposeChange(
        change_pb2.ProposeChangeRequest(
            write=change_pb2.ProposedWrite(
                set_value=pb.SetValueRequest(
                    key="api.timeout", value=value(90), environment="production", reason=text
                )
            ),
            reason=text,
            ticket=text,
        )
    )


WRITES: dict[str, Write] = {
    "set_value_reason": _reason,
    "set_value_ticket": _ticket,
    "string_value": _string_value,
    "json_value": _json_value,
    "description": _description,
    "token_owner_and_description": _token,
    "change_request_reason": _change_request,
}


@pytest.mark.parametrize("text", [ENVELOPE, DOCUMENT, LOOKS_REAL])
@pytest.mark.parametrize("where", sorted(WRITES))
async def test_a_text_that_looks_sealed_is_stored_and_read_as_typed(
    replicas: Replicas, where: str, text: str
) -> None:
    first, second = replicas.first, replicas.second
    start = (await first.config.ListEnvironments(pb.ListEnvironmentsRequest())).revision
    async with watching(
        first.config, pb.WatchConfigRequest(keys=["api.timeout"], from_revision=start)
    ) as watcher:
        await WRITES[where](first, text)

        # Every history page reads, and shows the text as it was typed.
        history = await first.config.GetHistory(pb.GetHistoryRequest(page_size=1000))
        assert text in _texts(json_format.MessageToDict(history)), where
        assert history.revision > start

        # A later change reaches a watcher that was listening before the text was written.
        later = await first.config.SetValue(pb.SetValueRequest(key="api.timeout", value=value(77)))
        await watcher.until(lambda w: later.revision in w.revisions(), within=WITHIN)

    # The other replica follows the history past the row, so it still learns of tokens.
    access = access_pb2_grpc.AccessServiceStub(first.channel)
    made = await access.CreateToken(
        access_pb2.CreateTokenRequest(
            owner="after-marker", grants=[access_pb2.Grant(role="reader")]
        )
    )
    who = access_pb2_grpc.AccessServiceStub(second.channel)

    async def accepted() -> bool:
        try:
            answer = await who.WhoAmI(
                access_pb2.WhoAmIRequest(),
                metadata=(("authorization", f"Bearer {made.token}"),),
            )
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()
            return False
        return answer.username == "after-marker"

    await eventually(accepted, within=WITHIN)
    assert second.application.follower.position >= made.revision
