"""The flagd protocols over FlagService, so that an unmodified OpenFeature flagd provider
(any language) works against Switchyard's port:

- `flagd.evaluation.v1.Service` and `flagd.evaluation.v2.Service`: RPC mode. Each
  evaluation is Switchyard's own (`FlagService.evaluate`); `EventStream` tells providers
  when to drop what they cached.
- `flagd.sync.v1.FlagSyncService`: in-process mode. Providers sync the flagd document of
  `domain.flagd` and evaluate it themselves; flags it cannot say exactly are not in it.

The request `context` maps to a Switchyard context as `domain.flagd.openfeature_context`
says (targetingKey is the user id; roles, groups and environment are read from the
attributes of those names). Reasons are flagd's: DISABLED carries no value or variant (the
provider answers the caller's default), a targeted answer is TARGETING_MATCH, a rollout
SPLIT, and a flag everyone gets the same answer from is STATIC, which RPC providers cache
until a `configuration_change` names the flag, so only flags that are `static` (never a
time-dependent one) say it.

The streams live as long as clients keep them: each keeps the keys changed since it last
wrote (a set, so it never grows past the number of flags), re-reads time-dependent flags
every `refresh_seconds`, removes its flag listener when it ends, and ends with UNAVAILABLE
when the server shuts down (the change bus's shutdown, as WatchConfig's streams learn it),
so providers reconnect elsewhere. A stream whose client stops reading is cut off as
WatchConfig's are: when a flag changes after gRPC has held its last message for
`stall_seconds`, it ends with ABORTED SLOW_CONSUMER (a provider reconnects and reads
everything anew), counted in `switchyard_flagd_streams_ended_total`.

The server interceptor wraps these methods as it wraps Switchyard's own: identity, and
domain errors mapped to statuses in one place.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, cast

import grpc
import structlog
from google.protobuf import struct_pb2
from openfeature.schemas.protobuf.flagd.evaluation.v1 import evaluation_pb2 as v1
from openfeature.schemas.protobuf.flagd.evaluation.v1 import evaluation_pb2_grpc as v1_grpc
from openfeature.schemas.protobuf.flagd.evaluation.v2 import evaluation_pb2 as v2
from openfeature.schemas.protobuf.flagd.evaluation.v2 import evaluation_pb2_grpc as v2_grpc
from openfeature.schemas.protobuf.flagd.sync.v1 import sync_pb2, sync_pb2_grpc

from switchyard.api import delivery
from switchyard.api.mapping import from_struct, to_struct
from switchyard.domain.errors import InvalidArgument, NotFound, Overrun, Unavailable
from switchyard.domain.evaluation import FlagSet
from switchyard.domain.flagd import dependents, flagd_document, openfeature_context, time_states
from switchyard.domain.flags import Evaluation, Reason
from switchyard.domain.models import JSONValue
from switchyard.metrics import FLAGD_STREAMS_ENDED
from switchyard.service.flags import FlagService

log = structlog.get_logger(__name__)

EVALUATION_V1 = v1.DESCRIPTOR.services_by_name["Service"].full_name
EVALUATION_V2 = v2.DESCRIPTOR.services_by_name["Service"].full_name
SYNC_V1 = sync_pb2.DESCRIPTOR.services_by_name["FlagSyncService"].full_name
SERVICE_NAMES = (EVALUATION_V1, EVALUATION_V2, SYNC_V1)

KEEP_ALIVE_SECONDS = 30.0
"""How often EventStream sends `keep_alive`, as flagd does, so an idle provider knows the
stream is alive."""
REFRESH_SECONDS = 30.0
"""How often the streams re-read what time alone changes (schedules, dates, gradual and
ring rollouts): the longest an in-process provider serves a document time has outdated."""
STALL_SECONDS = 10.0
"""How long gRPC may hold a stream's message before the next flag change cuts it off."""

_FRESH = timedelta(seconds=1)
"""How long a document of time-dependent flags is reused: every stream woken by one
change asks for it, and one translation serves them all."""
_SHUTDOWN_QUEUE = 1024
_IDLE_WAIT = 3600.0
_INT64 = 2**63

_STATIC = "STATIC"
_DEFAULT = "DEFAULT"
_SPLIT = "SPLIT"
_TARGETING_MATCH = "TARGETING_MATCH"
_DISABLED = "DISABLED"
_REASONS = {
    Reason.DISABLED: _DISABLED,
    Reason.SCHEDULED_OFF: _TARGETING_MATCH,
    Reason.ENVIRONMENT_EXCLUDED: _TARGETING_MATCH,
    Reason.PREREQUISITE_FAILED: _TARGETING_MATCH,
    Reason.CONFLICT: _TARGETING_MATCH,
    Reason.USER_TARGETED: _TARGETING_MATCH,
    Reason.ROLE_TARGETED: _TARGETING_MATCH,
    Reason.GROUP_TARGETED: _TARGETING_MATCH,
    Reason.RULE_MATCH: _TARGETING_MATCH,
    Reason.ROLLOUT_IN: _SPLIT,
    Reason.ROLLOUT_OUT: _SPLIT,
}


# --- the change bus, as far as these streams need it --------------------------------------


class _Subscription(Protocol):
    @property
    def closed(self) -> object: ...

    async def next(self, within: float) -> object: ...

    def close(self) -> None: ...


class ShutdownBus(Protocol):
    """What the streams need of `events.bus.ChangeBus`: a subscription that ends when the
    server shuts down (`subscribe` refusing afterwards)."""

    def subscribe(self, size: int) -> _Subscription: ...


# --- streams ----------------------------------------------------------------------------------


class _Stream:
    """One open EventStream or SyncFlags call: the flag keys changed since it last looked,
    and the future that wakes it."""

    __slots__ = ("_cut_off", "_delivery", "_stall_seconds", "_waiter", "changed", "ended")

    def __init__(
        self,
        delivery: delivery.Delivery,
        stall_seconds: float,
        cut_off: Callable[[_Stream], None],
    ) -> None:
        self.changed: set[str] = set()
        self.ended = False
        self._delivery = delivery
        self._stall_seconds = stall_seconds
        self._cut_off = cut_off
        self._waiter: asyncio.Future[None] | None = None

    def flags_changed(self, revision: int, keys: frozenset[str]) -> None:
        if self._delivery.stalled(self._stall_seconds):
            FLAGD_STREAMS_ENDED.labels("slow_consumer").inc()
            self._cut_off(self)
            self._delivery.abandon(
                Overrun(
                    f"this stream's client took no message for {self._stall_seconds:g} s "
                    "while flags changed; reconnect to read the flags anew"
                )
            )
            return
        self.changed |= keys
        self._wake()

    def end(self) -> None:
        """The server is shutting down: the stream ends with UNAVAILABLE, at once if
        it is blocked in a write."""
        FLAGD_STREAMS_ENDED.labels("shutdown").inc()
        self.ended = True
        self._wake()
        if self._delivery.blocked:
            self._delivery.abandon(_shutting_down())

    def take(self) -> set[str]:
        """The keys changed since the last call. Raises Unavailable once the server is
        shutting down."""
        if self.ended:
            raise _shutting_down()
        changed, self.changed = self.changed, set()
        return changed

    async def wait(self, within: float) -> None:
        """Until a flag changes, the stream ends or `within` seconds pass."""
        if self.changed or self.ended:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(max(within, 0.0), _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def _shutting_down() -> Unavailable:
    return Unavailable("the server is shutting down; reconnect to another")


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass(frozen=True, slots=True)
class _Document:
    flags: FlagSet
    made_at: datetime
    timed: bool
    text: str


class _Streams:
    """What the three services share: the open streams, the one task that learns of
    shutdown while any is open, and the latest flagd document."""

    def __init__(self, service: FlagService, bus: ShutdownBus, stall_seconds: float) -> None:
        self._service = service
        self._bus = bus
        self._stall_seconds = stall_seconds
        self._open: set[_Stream] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._shut = False
        self._document: _Document | None = None

    def open(self) -> _Stream:
        """A new stream, told of every flag change until `close`. Raises Unavailable
        once the server is shutting down."""
        if self._watcher is None and not self._shut:
            try:
                subscription = self._bus.subscribe(_SHUTDOWN_QUEUE)
            except RuntimeError:
                self._shut = True
            else:
                self._watcher = asyncio.create_task(self._await_shutdown(subscription))
        if self._shut:
            raise _shutting_down()
        stream = _Stream(delivery.current(), self._stall_seconds, self.close)
        self._open.add(stream)
        self._service.add_flag_listener(stream.flags_changed)
        return stream

    def close(self, stream: _Stream) -> None:
        """Forgets `stream` (again, harmlessly, after a cut-off)."""
        self._service.remove_flag_listener(stream.flags_changed)
        self._open.discard(stream)
        if not self._open and self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    async def _await_shutdown(self, subscription: _Subscription) -> None:
        """Reads the bus only to learn that it shut down: its revisions are applied to
        FlagService by its listener, which tells the streams itself."""
        try:
            while True:
                await subscription.next(_IDLE_WAIT)
                if subscription.closed is None:
                    continue
                subscription.close()
                try:
                    # Closed for falling behind (this loop never does for long), or for
                    # shutdown, after which the bus refuses new subscriptions.
                    subscription = self._bus.subscribe(_SHUTDOWN_QUEUE)
                except RuntimeError:
                    break
        finally:
            subscription.close()
        self._shut = True
        self._watcher = None
        for stream in list(self._open):
            stream.end()

    def document(self) -> str:
        """The flagd document of the current flags, as JSON with sorted keys (so that two
        documents compare as text)."""
        flags = self._service.flag_set
        now = self._service.now()
        made = self._document
        if (
            made is not None
            and made.flags is flags
            and not (made.timed and now - made.made_at >= _FRESH)
        ):
            return made.text
        text = json.dumps(flagd_document(flags, now), sort_keys=True, separators=(",", ":"))
        timed = any(compiled.time_dependent for compiled in flags.flags.values())
        self._document = _Document(flags, now, timed, text)
        return text


def _changed_states(before: Mapping[str, Hashable], after: Mapping[str, Hashable]) -> set[str]:
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


# --- evaluation ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Resolved:
    """One answer in flagd's terms, but for the value. `variant` is None when DISABLED."""

    variant: str | None
    reason: str
    metadata: struct_pb2.Struct


class _Kind:
    """What a Resolve method accepts, and how it converts the value."""

    def __init__(self, name: str, accept: Callable[[JSONValue], Any | None]) -> None:
        self.name = name
        self.accept = accept


def _boolean(value: JSONValue) -> bool | None:
    return value if isinstance(value, bool) else None


def _string(value: JSONValue) -> str | None:
    return value if isinstance(value, str) else None


def _integer(value: JSONValue) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    whole = int(value)
    return whole if -_INT64 <= whole < _INT64 else None


def _float(value: JSONValue) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _object(value: JSONValue) -> struct_pb2.Struct | None:
    return to_struct(value) if isinstance(value, dict) else None


BOOLEAN = _Kind("boolean", _boolean)
STRING = _Kind("string", _string)
INTEGER = _Kind("integer", _integer)
FLOAT = _Kind("float", _float)
OBJECT = _Kind("object", _object)


def _describe(value: JSONValue) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def flagd_reason(evaluation: Evaluation, static: bool) -> str:
    """flagd's reason for a Switchyard answer. DEFAULT is STATIC only for a flag that
    answers everyone alike until it changes, which RPC providers cache."""
    if evaluation.reason is Reason.DEFAULT:
        return _STATIC if static else _DEFAULT
    return _REASONS[evaluation.reason]


class _Evaluator:
    """Resolves flags for both evaluation services."""

    def __init__(self, service: FlagService) -> None:
        self._service = service

    def resolve(self, key: str, context: struct_pb2.Struct, kind: _Kind) -> tuple[Any, _Resolved]:
        """The converted value (None when DISABLED) and the answer. Raises NotFound for an
        unknown flag, InvalidArgument for a bad context or a value of another type."""
        flags = self._service.flag_set  # what `evaluate` reads: nothing awaits in between
        evaluation, revision = self._service.evaluate(
            key, openfeature_context(from_struct(context))
        )
        if evaluation.reason is Reason.NOT_FOUND:
            raise NotFound(f"FLAG_NOT_FOUND: flag {key!r} not found")
        compiled = flags.get(key)
        reason = flagd_reason(evaluation, compiled is not None and compiled.static)
        metadata = _metadata(evaluation, revision)
        if evaluation.reason is Reason.DISABLED:
            return None, _Resolved(None, reason, metadata)
        converted = kind.accept(evaluation.value)
        if converted is None:
            raise InvalidArgument(
                f"TYPE_MISMATCH: flag {key!r} serves {_describe(evaluation.value)} values, "
                f"not {kind.name}" + (" (a whole number is needed)" if kind is INTEGER else "")
            )
        return converted, _Resolved(evaluation.variant, reason, metadata)

    def resolve_all(self, context: struct_pb2.Struct) -> v1.ResolveAllResponse:
        flags = self._service.flag_set
        evaluations, revision = self._service.evaluate_all(
            openfeature_context(from_struct(context))
        )
        answers: dict[str, v1.AnyFlag] = {}
        for evaluation in evaluations:
            if evaluation.reason is Reason.DISABLED:
                continue
            compiled = flags.get(evaluation.key)
            answer = v1.AnyFlag(
                reason=flagd_reason(evaluation, compiled is not None and compiled.static),
                variant=evaluation.variant,
                metadata=_metadata(evaluation, None),
            )
            value = evaluation.value
            if isinstance(value, bool):
                answer.bool_value = value
            elif isinstance(value, str):
                answer.string_value = value
            elif isinstance(value, int | float):
                answer.double_value = float(value)
            elif isinstance(value, dict):
                answer.object_value.CopyFrom(to_struct(value))
            else:
                continue  # a list: AnyFlag has no field for one
            answers[evaluation.key] = answer
        return v1.ResolveAllResponse(
            flags=answers, metadata=to_struct({"switchyardRevision": revision})
        )


def _metadata(evaluation: Evaluation, revision: int | None) -> struct_pb2.Struct:
    fields: dict[str, JSONValue] = {"switchyardReason": evaluation.reason.value}
    if revision is not None:
        fields["switchyardRevision"] = revision
    if evaluation.rule_id:
        fields["switchyardRuleId"] = evaluation.rule_id
    return to_struct(fields)


def _answer(converted: Any, resolved: _Resolved) -> dict[str, Any]:
    """Constructor arguments of a Resolve response; no value or variant when DISABLED."""
    fields: dict[str, Any] = {"reason": resolved.reason, "metadata": resolved.metadata}
    if resolved.variant is not None:
        fields["variant"] = resolved.variant
        fields["value"] = converted
    return fields


_Event = TypeVar("_Event")


async def _events(
    service: FlagService,
    streams: _Streams,
    keep_alive_seconds: float,
    refresh_seconds: float,
    make: Callable[..., _Event],
) -> AsyncIterator[_Event]:
    """EventStream, for either version: `provider_ready` at once, `configuration_change`
    naming the flags whose answers may have changed (those changed, those time changed,
    and those that follow them as prerequisites or conflicts), `keep_alive` regularly."""
    stream = streams.open()
    try:
        yield make(type="provider_ready")
        loop = asyncio.get_running_loop()
        states = time_states(service.flag_set, service.now())
        next_alive = loop.time() + keep_alive_seconds
        next_refresh = loop.time() + refresh_seconds
        while True:
            await stream.wait(min(next_alive, next_refresh) - loop.time())
            changed = stream.take()
            at = loop.time()
            if changed or at >= next_refresh:
                flags = service.flag_set
                fresh = time_states(flags, service.now())
                changed |= _changed_states(states, fresh)
                states = fresh
                if at >= next_refresh:
                    next_refresh = at + refresh_seconds
                if changed:
                    keys = sorted(dependents(flags, changed))
                    data = to_struct({"flags": {key: {} for key in keys}})
                    yield make(type="configuration_change", data=data)
            if at >= next_alive:
                yield make(type="keep_alive")
                next_alive = at + keep_alive_seconds
    finally:
        streams.close(stream)


class _ResolveRequest(Protocol):
    flag_key: str
    context: struct_pb2.Struct


class _EvaluationServicer:
    """What flagd.evaluation v1 and v2 share: the same methods over the same evaluator,
    answering with the messages of `messages`, the version's generated module (v2 differs
    on the wire only in that value and variant are optional)."""

    def __init__(
        self,
        messages: Any,
        service: FlagService,
        streams: _Streams,
        *,
        keep_alive_seconds: float = KEEP_ALIVE_SECONDS,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._messages = messages
        self._service = service
        self._evaluator = _Evaluator(service)
        self._streams = streams
        self._keep_alive = keep_alive_seconds
        self._refresh = refresh_seconds

    def _resolve(self, request: _ResolveRequest, kind: _Kind, response: str) -> Any:
        answer = _answer(*self._evaluator.resolve(request.flag_key, request.context, kind))
        return getattr(self._messages, response)(**answer)

    async def ResolveBoolean(self, request: _ResolveRequest, context: object) -> Any:
        return self._resolve(request, BOOLEAN, "ResolveBooleanResponse")

    async def ResolveString(self, request: _ResolveRequest, context: object) -> Any:
        return self._resolve(request, STRING, "ResolveStringResponse")

    async def ResolveInt(self, request: _ResolveRequest, context: object) -> Any:
        return self._resolve(request, INTEGER, "ResolveIntResponse")

    async def ResolveFloat(self, request: _ResolveRequest, context: object) -> Any:
        return self._resolve(request, FLOAT, "ResolveFloatResponse")

    async def ResolveObject(self, request: _ResolveRequest, context: object) -> Any:
        return self._resolve(request, OBJECT, "ResolveObjectResponse")

    async def EventStream(self, request: object, context: object) -> AsyncIterator[Any]:
        async for event in _events(
            self._service,
            self._streams,
            self._keep_alive,
            self._refresh,
            self._messages.EventStreamResponse,
        ):
            yield event


class EvaluationV1Servicer(_EvaluationServicer):
    """flagd.evaluation.v1.Service: the shared methods and ResolveAll."""

    def __init__(self, service: FlagService, streams: _Streams, **timing: float) -> None:
        super().__init__(v1, service, streams, **timing)

    async def ResolveAll(
        self, request: v1.ResolveAllRequest, context: grpc.aio.ServicerContext
    ) -> v1.ResolveAllResponse:
        return self._evaluator.resolve_all(request.context)


class EvaluationV2Servicer(_EvaluationServicer):
    """flagd.evaluation.v2.Service: the shared methods (no ResolveAll in v2)."""

    def __init__(self, service: FlagService, streams: _Streams, **timing: float) -> None:
        super().__init__(v2, service, streams, **timing)


class FlagSyncServicer(sync_pb2_grpc.FlagSyncServiceServicer):
    """flagd.sync.v1.FlagSyncService: the flagd document of every flag. Selectors and
    provider ids are accepted and ignored: every client gets every flag."""

    def __init__(
        self, service: FlagService, streams: _Streams, *, refresh_seconds: float = REFRESH_SECONDS
    ) -> None:
        self._service = service
        self._streams = streams
        self._refresh = refresh_seconds

    async def SyncFlags(
        self, request: sync_pb2.SyncFlagsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[sync_pb2.SyncFlagsResponse]:
        """The whole document at once, then again whenever it changes: on a flag change,
        or when time changes a translation (checked every `refresh_seconds`)."""
        stream = self._streams.open()
        try:
            sent = self._streams.document()
            yield sync_pb2.SyncFlagsResponse(flag_configuration=sent)
            loop = asyncio.get_running_loop()
            next_refresh = loop.time() + self._refresh
            while True:
                await stream.wait(next_refresh - loop.time())
                changed = stream.take()
                at = loop.time()
                if at >= next_refresh:
                    next_refresh = at + self._refresh
                elif not changed:
                    continue
                document = self._streams.document()
                if document != sent:
                    sent = document
                    yield sync_pb2.SyncFlagsResponse(flag_configuration=document)
        finally:
            self._streams.close(stream)

    async def FetchAllFlags(
        self, request: sync_pb2.FetchAllFlagsRequest, context: grpc.aio.ServicerContext
    ) -> sync_pb2.FetchAllFlagsResponse:
        return sync_pb2.FetchAllFlagsResponse(flag_configuration=self._streams.document())

    async def GetMetadata(
        self, request: sync_pb2.GetMetadataRequest, context: grpc.aio.ServicerContext
    ) -> sync_pb2.GetMetadataResponse:
        """Empty on purpose: providers merge this "static context" into every evaluation
        context, over the caller's own attributes, so any entry here could change answers
        in-process and not over RPC. What Switchyard has to say is in the document's
        metadata."""
        return sync_pb2.GetMetadataResponse(metadata=struct_pb2.Struct())


def register(
    server: grpc.aio.Server,
    service: FlagService,
    bus: ShutdownBus,
    *,
    keep_alive_seconds: float = KEEP_ALIVE_SECONDS,
    refresh_seconds: float = REFRESH_SECONDS,
    stall_seconds: float = STALL_SECONDS,
) -> None:
    """Serves the three flagd services on `server`. `bus` is how their streams learn that
    the server is shutting down; `stall_seconds` how long gRPC may hold a stream's
    message before a flag change cuts it off."""
    streams = _Streams(service, bus, stall_seconds)
    timing = {"keep_alive_seconds": keep_alive_seconds, "refresh_seconds": refresh_seconds}
    # The generated adders look methods up by name: the shared servicer has them all.
    v1_servicer = cast("v1_grpc.ServiceServicer", EvaluationV1Servicer(service, streams, **timing))
    v2_servicer = cast("v2_grpc.ServiceServicer", EvaluationV2Servicer(service, streams, **timing))
    v1_grpc.add_ServiceServicer_to_server(v1_servicer, server)
    v2_grpc.add_ServiceServicer_to_server(v2_servicer, server)
    sync_pb2_grpc.add_FlagSyncServiceServicer_to_server(
        FlagSyncServicer(service, streams, refresh_seconds=refresh_seconds), server
    )


__all__ = [
    "EVALUATION_V1",
    "EVALUATION_V2",
    "KEEP_ALIVE_SECONDS",
    "REFRESH_SECONDS",
    "SERVICE_NAMES",
    "STALL_SECONDS",
    "SYNC_V1",
    "EvaluationV1Servicer",
    "EvaluationV2Servicer",
    "FlagSyncServicer",
    "ShutdownBus",
    "flagd_reason",
    "register",
]
