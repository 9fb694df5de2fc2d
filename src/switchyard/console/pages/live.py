"""Live changes for the browser: `WatchConfig`, as the signed-in user, relayed as
server-sent events.

Every event carries an id the browser sends back as `Last-Event-ID` when it reconnects,
and the watch resumes after it, as any watcher resumes. A progress message's id is its
revision: everything up to it has arrived. A change's id is the revision before its
own, because one revision may change several things and the stream may drop between
them: resuming replays that revision whole, so nothing is missed (the page refreshes
what an event names, and doing it twice changes nothing). A revision the history no longer
holds (OUT_OF_RANGE) or a browser that fell too far behind (ABORTED) gets a `resync`
event: the page reads again what it shows.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from switchyard.client import enum_name
from switchyard.console.web import signed_in
from switchyard.gen.v1 import config_pb2 as pb

WATCHED = (
    pb.CHANGE_KIND_CONFIG,
    pb.CHANGE_KIND_FLAG,
    pb.CHANGE_KIND_RATE_LIMIT,
    pb.CHANGE_KIND_ENVIRONMENT,
    pb.CHANGE_KIND_CHANGE_REQUEST,
)
RETRY_MILLISECONDS = 1000
"""How soon a browser reconnects after the stream drops."""
PING_SECONDS = 15
"""A comment line this often keeps proxies from closing an idle stream."""


def _start(request: Request) -> int | None:
    """Where the watch resumes: after the browser's last event, else after the revision
    the page was read at, else from now."""
    for text in (request.headers.get("last-event-id"), request.query_params.get("from")):
        if text and text.isdigit():
            return int(text)
    return None


async def live(request: Request) -> Response:
    _, api = signed_in(request)
    start = _start(request)
    watch = pb.WatchConfigRequest(kinds=WATCHED, every_environment=True)
    if start is not None:
        watch.from_revision = start

    async def events() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(comment="watching", retry=RETRY_MILLISECONDS)
        try:
            async with api.stream(api.config.WatchConfig, watch) as stream:
                async for message in stream:
                    yield _event(message)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code in {grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.ABORTED}:
                yield ServerSentEvent(data=json.dumps({"reason": error.details()}), event="resync")
            elif code == grpc.StatusCode.UNAUTHENTICATED:
                yield ServerSentEvent(data="{}", event="signed-out")
            # Anything else (the server shutting down, say): the stream ends and the
            # browser reconnects after RETRY_MILLISECONDS, resuming where it was.

    return EventSourceResponse(
        events(),
        ping=PING_SECONDS,
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


def _event(message: pb.WatchConfigResponse) -> ServerSentEvent:
    if message.HasField("progress"):
        revision = message.progress.revision
        return ServerSentEvent(
            data=json.dumps({"revision": revision}), event="progress", id=str(revision)
        )
    event = message.event
    data: dict[str, Any] = {
        "revision": event.revision,
        "kind": enum_name(pb.ChangeKind, event.kind),
        "key": event.key,
        "environment": event.environment,
        "action": enum_name(pb.HistoryAction, event.action),
    }
    return ServerSentEvent(data=json.dumps(data), event="change", id=str(event.revision - 1))


__all__ = ["PING_SECONDS", "RETRY_MILLISECONDS", "WATCHED", "live"]
