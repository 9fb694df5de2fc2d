"""Whatever bytes and values a caller sends, every method answers with a status a person
can act on, never INTERNAL or UNKNOWN, and a refused request changes nothing:

- bytes that are not a message of the method's request type (truncated, corrupt, a
  string that is not UTF-8, nesting deeper than protobuf's limit) are INVALID_ARGUMENT
  with a plain message, for every method the server answers (health and reflection too);
- a Timestamp or Duration outside the range its type defines is INVALID_ARGUMENT naming
  the field by its path and the valid range, wherever it sits in any request;
- a number JSON cannot carry (NaN, Infinity) in any Struct, Value, ListValue or double
  field is INVALID_ARGUMENT naming the field.

The methods are those the running server answers (tests/e2e/methods.py), and the fields
are found by walking each request type's descriptor, so a new method or field is covered
without touching this file.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory, struct_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.rpc import error_details_pb2, status_pb2

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.domain.access import parse_grant
from switchyard.gen.v1 import (
    access_pb2,
    access_pb2_grpc,
    batch_pb2,
    batch_pb2_grpc,
    change_pb2,
    flag_pb2,
    flag_pb2_grpc,
)
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.service.context import WriteContext

from .conftest import Running, serving
from .methods import Answer, call_raw, served_methods

INVALID = grpc.StatusCode.INVALID_ARGUMENT
LEAKS = ("DecodeError", "<class", "Unexpected", "Traceback", "google.protobuf", "upb")
OPEN = {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}

TIMESTAMP_RANGE = ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z")
MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z
MIN_SECONDS = -62135596800  # 0001-01-01T00:00:00Z
BAD_TIMESTAMPS = {
    "one second past the year 9999": (MAX_SECONDS + 1, 0),
    "one second before the year 1": (MIN_SECONDS - 1, 0),
    "negative nanos": (1_700_000_000, -1),
    "a whole second of nanos": (1_700_000_000, 1_000_000_000),
}
STRUCTURED = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
WELL_KNOWN = {*STRUCTURED, "google.protobuf.Timestamp", "google.protobuf.Duration"}


@dataclass
class Secured:
    running: Running
    metadata: tuple[tuple[str, str], ...]
    served: dict[str, MethodDescriptor]


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    """A server with authentication on, a site_admin's credentials (who may call every
    method, so that what answers is the request's shape, not a refusal; with no
    allowance of management calls, which these tests make hundreds of), and the methods
    the server answers."""
    async with serving(tmp_path / "boundary.db", auth=True, management_rate_limit="off") as running:
        secret, _, _ = await running.application.access.create_token(
            "boundary-admin",
            [parse_grant("site_admin")],
            WriteContext(actor=LOCAL_OPERATOR, reason="test"),
        )
        served = await served_methods(running.channel)
        yield Secured(running, (("authorization", f"Bearer {secret}"),), served)


async def revision(running: Running) -> tuple[int, int]:
    async with running.application.store.read() as reader:
        current = await reader.current_revision()
        rows = await reader.history.history_after(0, 1_000_000)
    return current, len(rows)


def violations(answer: Answer) -> dict[str, str]:
    for key, raw in answer.trailers:
        if key == "grpc-status-details-bin":
            assert isinstance(raw, bytes)
            for detail in status_pb2.Status.FromString(raw).details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    return {v.field: v.description for v in bad.field_violations}
    raise AssertionError(f"no BadRequest detail in {answer}")


def assert_plain(answer: Answer, where: str) -> None:
    assert answer.code == INVALID, f"{where}: {answer.code} {answer.details}"
    assert answer.details, f"{where}: a refusal must say why"
    leaked = [word for word in LEAKS if word in answer.details]
    assert not leaked, f"{where}: the answer leaks {leaked}: {answer.details}"


# --- malformed bytes ---------------------------------------------------------------------


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _deep_value(levels: int) -> bytes:
    """A google.protobuf.Value holding a list holding a list ... `levels` deep."""
    value = b""
    for _ in range(levels):
        value = _field(6, _field(1, value))  # Value.list_value -> ListValue.values
    return value


def _wrap(route: list[int], payload: bytes) -> bytes:
    for number in reversed(route):
        payload = _field(number, payload)
    return payload


def _route_to(
    message: Descriptor, wanted: Any, seen: frozenset[str] = frozenset()
) -> tuple[list[int], FieldDescriptor] | None:
    """Field numbers through message fields down to the first field `wanted` accepts."""
    for field in message.fields:
        if wanted(field):
            return [], field
    for field in message.fields:
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        inner = field.message_type
        if inner.full_name in seen or inner.full_name in WELL_KNOWN:
            continue
        if inner.GetOptions().map_entry:
            continue
        found = _route_to(inner, wanted, seen | {message.full_name})
        if found is not None:
            return [field.number, *found[0]], found[1]
    return None


def malformed_payloads(method: MethodDescriptor) -> Iterator[tuple[str, bytes]]:
    """Bytes no parser may accept as the method's request, each a different way."""
    yield "truncated", b"\x0a\x05ab"  # field 1 says 5 bytes follow; 2 do
    yield "an eleven-byte varint", b"\x08" + b"\xff" * 11
    yield "an end-group tag with no group", b"\x0c"
    request = method.input_type
    text = _route_to(request, lambda f: f.type == FieldDescriptor.TYPE_STRING)
    if text is not None:
        route, field = text
        yield "a string that is not UTF-8", _wrap([*route, field.number], b"caf\xc3(\xff")
    nested = _route_to(
        request,
        lambda f: (
            f.type == FieldDescriptor.TYPE_MESSAGE
            and f.message_type.full_name in {"google.protobuf.Value", "google.protobuf.Struct"}
        ),
    )
    if nested is not None:
        route, field = nested
        inner = _deep_value(150)
        if field.message_type.full_name == "google.protobuf.Struct":
            inner = _field(1, _field(1, b"k") + _field(2, inner))  # Struct.fields entry
        yield "values nested 150 deep", _wrap([*route, field.number], inner)
    else:
        yield "groups nested 150 deep", b"\x0b" * 150 + b"\x0c" * 150


async def test_malformed_bytes_are_invalid_argument_for_every_method(secured: Secured) -> None:
    running = secured.running
    assert len(secured.served) > 60, "the probe found the server's methods"
    before = await revision(running)
    tried = 0
    for name, method in sorted(secured.served.items()):
        for what, payload in malformed_payloads(method):
            answer = await call_raw(running.channel, method, payload, secured.metadata)
            assert_plain(answer, f"{name} with {what}")
            assert method.input_type.full_name in answer.details, answer.details
            tried += 1
    assert tried >= 4 * len(secured.served)
    assert await revision(running) == before


async def test_malformed_bytes_from_a_caller_without_credentials_are_unauthenticated(
    secured: Secured,
) -> None:
    """The gate still comes first: who the caller is is checked before what they sent,
    except on health and reflection, which are open to everyone."""
    running = secured.running
    for name, method in sorted(secured.served.items()):
        answer = await call_raw(running.channel, method, b"\x0a\x05ab")
        if method.containing_service.full_name in OPEN:
            assert_plain(answer, name)
        else:
            assert answer.code == grpc.StatusCode.UNAUTHENTICATED, f"{name}: {answer}"


# --- the ranges of Timestamp and Duration ------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where a field sits in a request: the steps to it and its proto field path."""

    steps: tuple[FieldDescriptor, ...]
    path: str

    @property
    def field(self) -> FieldDescriptor:
        return self.steps[-1]


def places(
    message: Descriptor, accept: Any, prefix: tuple[FieldDescriptor, ...] = (), text: str = ""
) -> Iterator[Place]:
    """Every field `accept`s in `message` and the messages it holds (each message type
    once per path: recursive types are not unrolled)."""
    for field in message.fields:
        name = f"{text}.{field.name}" if text else field.name
        here = (*prefix, field)
        shown = f"{name}[0]" if field.is_repeated else name
        if accept(field):
            yield Place(here, shown)
            continue
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        inner = field.message_type
        if inner.GetOptions().map_entry or inner.full_name in WELL_KNOWN:
            continue
        if inner.full_name in {f.message_type.full_name for f in prefix} | {message.full_name}:
            continue
        yield from places(inner, accept, here, shown)


def request_with(method: MethodDescriptor, place: Place) -> tuple[Any, Any]:
    """A request of `method` with only the path to `place` set; returns it and the
    message (or container) holding the field at `place`."""
    request = message_factory.GetMessageClass(method.input_type)()
    holder = request
    for step in place.steps[:-1]:
        holder = getattr(holder, step.name)
        if step.is_repeated:
            holder = holder.add()
    return request, holder


def _is_type(*names: str) -> Any:
    return lambda f: f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.full_name in names


async def test_every_timestamp_field_refuses_values_outside_its_range(secured: Secured) -> None:
    running = secured.running
    before = await revision(running)
    checked = 0
    for name, method in sorted(secured.served.items()):
        for place in places(method.input_type, _is_type("google.protobuf.Timestamp")):
            for what, (seconds, nanos) in BAD_TIMESTAMPS.items():
                request, holder = request_with(method, place)
                field = place.field
                moment = getattr(holder, field.name)
                if field.is_repeated:
                    moment = moment.add()
                moment.seconds, moment.nanos = seconds, nanos
                answer = await call_raw(
                    running.channel, method, request.SerializeToString(), secured.metadata
                )
                where = f"{name} {place.path} {what}"
                assert_plain(answer, where)
                found = violations(answer)
                assert place.path in found, f"{where}: {found}"
                assert all(bound in found[place.path] for bound in TIMESTAMP_RANGE), found
                checked += 1
    assert checked >= 4 * 40, "the walk found the Timestamp fields of the requests"
    assert await revision(running) == before


NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _structured_or_double(field: FieldDescriptor) -> bool:
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return True
    return _is_type(*STRUCTURED)(field)  # type: ignore[no-any-return]


def _fill_non_finite(holder: Any, field: FieldDescriptor, number: float) -> str:
    """Puts `number` in `field` of `holder` (inside it, for Struct and ListValue);
    returns the suffix naming where, after the field's own path."""
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        if field.is_repeated:
            getattr(holder, field.name).append(number)
            return ""
        setattr(holder, field.name, number)
        return ""
    target = getattr(holder, field.name)
    if field.is_repeated:
        target = target.add()
    kind = field.message_type.full_name
    if kind == "google.protobuf.Value":
        target.number_value = number
        return ""
    if kind == "google.protobuf.ListValue":
        target.values.add().string_value = "fine"
        target.values.add().number_value = number
        return "[1]"
    target.fields["fine"].string_value = "fine"
    target.fields["rate"].number_value = number
    return '["rate"]'


async def test_every_structured_or_double_field_refuses_numbers_json_cannot_carry(
    secured: Secured,
) -> None:
    running = secured.running
    before = await revision(running)
    checked = 0
    for name, method in sorted(secured.served.items()):
        for place in places(method.input_type, _structured_or_double):
            for what, number in NON_FINITE.items():
                request, holder = request_with(method, place)
                suffix = _fill_non_finite(holder, place.field, number)
                answer = await call_raw(
                    running.channel, method, request.SerializeToString(), secured.metadata
                )
                where = f"{name} {place.path}{suffix} {what}"
                assert_plain(answer, where)
                found = violations(answer)
                assert place.path + suffix in found, f"{where}: {found}"
                assert "finite" in found[place.path + suffix], found
                assert what in found[place.path + suffix], found
                checked += 1
    assert checked >= 3 * 60, "the walk found the structured fields of the requests"
    assert await revision(running) == before


# --- the issue's reproductions, each on an otherwise valid request -----------------------


def _ts(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def _struct(**fields: Any) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(fields)
    return out


def _number(value: float) -> struct_pb2.Value:
    return struct_pb2.Value(number_value=value)


SOON = 2_000_000_000  # 2033


def _issue_requests(
    expires: timestamp_pb2.Timestamp, metrics: struct_pb2.Struct
) -> list[tuple[str, str, Any, str]]:
    """(service stub name, method, request, the field at fault) for the issue's cases."""
    set_value = pb.SetValueRequest(
        key="api.timeout", environment="staging", value=_number(45), expires_at=expires
    )
    return [
        ("config", "SetValue", set_value, "expires_at"),
        (
            "flags",
            "UpsertFlag",
            flag_pb2.UpsertFlagRequest(
                flag=flag_pb2.FeatureFlag(key="boundary-flag", name="b", start_date=expires)
            ),
            "flag.start_date",
        ),
        (
            "flags",
            "UpsertFlag",
            flag_pb2.UpsertFlagRequest(
                flag=flag_pb2.FeatureFlag(key="boundary-flag", name="b", success_metrics=metrics)
            ),
            "flag.success_metrics",
        ),
        (
            "config",
            "UpsertMaintenanceWindow",
            pb.UpsertMaintenanceWindowRequest(
                window=pb.MaintenanceWindow(
                    name="boundary-window",
                    environment="staging",
                    config_values=metrics,
                    starts_at=_ts(SOON),
                    ends_at=expires,
                )
            ),
            "window",
        ),
        (
            "config",
            "UpsertTemplate",
            pb.UpsertTemplateRequest(
                template=pb.Template(
                    name="boundary-template",
                    template_type="t",
                    config_values=_struct(**{"api.timeout": 5}),
                    feature_flags=metrics,
                    rate_limits=metrics,
                )
            ),
            "template",
        ),
        (
            "batch",
            "ApplyWrites",
            batch_pb2.ApplyWritesRequest(
                dry_run=True, writes=[change_pb2.ProposedWrite(set_value=set_value)]
            ),
            "writes[0].set_value.expires_at",
        ),
        (
            "access",
            "CreateToken",
            access_pb2.CreateTokenRequest(
                owner="boundary", grants=[access_pb2.Grant(role="reader")], expires_at=expires
            ),
            "expires_at",
        ),
    ]


async def _stubs(running: Running) -> dict[str, Any]:
    return {
        "config": running.config,
        "flags": flag_pb2_grpc.FlagServiceStub(running.channel),
        "batch": batch_pb2_grpc.BatchServiceStub(running.channel),
        "access": access_pb2_grpc.AccessServiceStub(running.channel),
    }


@pytest.mark.parametrize(
    ("seconds", "nanos"), [(MAX_SECONDS + 1, 0), (SOON, -1)], ids=["year-10000", "nanos=-1"]
)
async def test_the_issues_out_of_range_timestamps_are_invalid_argument(
    secured: Secured, seconds: int, nanos: int
) -> None:
    running = secured.running
    stubs = await _stubs(running)
    fine = _struct(rate=0.5)
    before = await revision(running)
    for stub, method, request, at in _issue_requests(_ts(seconds, nanos), fine):
        if at.endswith("success_metrics") or at in {"template"}:
            continue  # no Timestamp of the caller's in these
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await getattr(stubs[stub], method)(request, metadata=secured.metadata)
        error = refused.value
        assert error.code() == INVALID, f"{method}: {error.code()} {error.details()}"
        assert at in (error.details() or ""), error.details()
        assert "9999-12-31T23:59:59.999999999Z" in (error.details() or "")
    assert await revision(running) == before


async def test_the_issues_nan_in_structs_is_invalid_argument(secured: Secured) -> None:
    running = secured.running
    stubs = await _stubs(running)
    nan = struct_pb2.Struct()
    nan.fields["rate"].number_value = math.nan
    before = await revision(running)
    for stub, method, request, at in _issue_requests(_ts(SOON + 3600), nan):
        if at.endswith(("expires_at", "start_date")):
            continue  # no NaN in these
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await getattr(stubs[stub], method)(request, metadata=secured.metadata)
        error = refused.value
        assert error.code() == INVALID, f"{method}: {error.code()} {error.details()}"
        assert at in (error.details() or "") and "finite" in (error.details() or "")
    assert await revision(running) == before


async def test_nan_deep_inside_an_evaluation_context_names_its_place(secured: Secured) -> None:
    flags = flag_pb2_grpc.FlagServiceStub(secured.running.channel)
    context = flag_pb2.EvaluationContext(
        user_id="u", attributes=_struct(plan={"limits": [1, math.inf]})
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await flags.EvaluateFlag(
            flag_pb2.EvaluateFlagRequest(flag_key="new-checkout", context=context),
            metadata=secured.metadata,
        )
    assert refused.value.code() == INVALID
    assert 'context.attributes["plan"]["limits"][1]' in (refused.value.details() or "")


async def test_timestamps_at_the_edges_of_the_range_never_fail_inside(secured: Secured) -> None:
    """The first and last instants a Timestamp may hold reach the handlers: each answer
    is a success or a refusal a person can act on, never INTERNAL or UNKNOWN."""
    running = secured.running
    stubs = await _stubs(running)
    for seconds, nanos in ((MAX_SECONDS, 999_999_999), (MIN_SECONDS, 0)):
        edge = _ts(seconds, nanos)
        requests = _issue_requests(edge, _struct(rate=0.5))
        requests += [
            (
                "config",
                "SetValue",
                pb.SetValueRequest(
                    key="api.timeout", environment="staging", value=_number(46), starts_at=edge
                ),
                "starts_at",
            ),
            (
                "config",
                "UpsertMaintenanceWindow",
                pb.UpsertMaintenanceWindowRequest(
                    window=pb.MaintenanceWindow(
                        name="edge-window",
                        environment="staging",
                        config_values=_struct(**{"api.timeout": 5}),
                        starts_at=edge,
                        ends_at=_ts(MAX_SECONDS, 999_999_999),
                    )
                ),
                "window.starts_at",
            ),
        ]
        for field in ("end_date", "deprecation_date", "gradual_start", "gradual_end"):
            flag = flag_pb2.FeatureFlag(key=f"edge-{field.replace('_', '-')}", name="e")
            getattr(flag, field).CopyFrom(edge)
            if field.startswith("gradual"):
                flag.rollout_strategy = flag_pb2.ROLLOUT_STRATEGY_GRADUAL
                other = "gradual_end" if field == "gradual_start" else "gradual_start"
                getattr(flag, other).CopyFrom(_ts(SOON))
            requests.append(("flags", "UpsertFlag", flag_pb2.UpsertFlagRequest(flag=flag), field))
        ring = flag_pb2.FeatureFlag(
            key="edge-ring",
            name="e",
            rollout_strategy=flag_pb2.ROLLOUT_STRATEGY_RING,
            rings=[flag_pb2.Ring(name="r", groups=["g"], opens_at=edge)],
        )
        requests.append(("flags", "UpsertFlag", flag_pb2.UpsertFlagRequest(flag=ring), "rings"))
        for stub, method, request, at in requests:
            try:
                await getattr(stubs[stub], method)(request, metadata=secured.metadata)
            except grpc.aio.AioRpcError as error:
                assert error.code() not in (
                    grpc.StatusCode.INTERNAL,
                    grpc.StatusCode.UNKNOWN,
                ), f"{method} {at} at {seconds}: {error.code()} {error.details()}"
        # What was accepted reads back, and evaluates, without failing either.
        for key in ("edge-end-date", "edge-gradual-start", "edge-gradual-end", "edge-ring"):
            try:
                await stubs["flags"].EvaluateFlag(
                    flag_pb2.EvaluateFlagRequest(
                        flag_key=key, context=flag_pb2.EvaluationContext(user_id="u", groups=["g"])
                    ),
                    metadata=secured.metadata,
                )
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
        windows = await running.config.ListMaintenanceWindows(
            pb.ListMaintenanceWindowsRequest(), metadata=secured.metadata
        )
        assert windows.revision > 0
