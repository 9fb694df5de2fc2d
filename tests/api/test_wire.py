"""api.wire's decoder on its own: every kind of field that can hold an out-of-range value
is found (maps, lists, oneofs, recursive types, float and double), named by its path,
and the byte scan that spares the walk never misses a non-finite number."""

from __future__ import annotations

import math
import struct
from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from google.rpc import error_details_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from switchyard.api.wire import Refused, decoder

F = descriptor_pb2.FieldDescriptorProto


def _field(name: str, number: int, kind: int, **options: Any) -> F:
    return F(name=name, number=number, type=kind, label=F.LABEL_OPTIONAL, **options)


def _types() -> dict[str, Any]:
    """Message types with the shapes the service's own requests lack: maps of times and
    doubles, a repeated float, a recursive type, a oneof of many members."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    entry = descriptor_pb2.MessageOptions(map_entry=True)
    message = descriptor_pb2.DescriptorProto
    stamp = ".google.protobuf.Timestamp"
    node = message(
        name="Node",
        field=[
            _field("child", 1, F.TYPE_MESSAGE, type_name=".wiretest.Node"),
            _field("at", 2, F.TYPE_MESSAGE, type_name=stamp),
        ],
    )
    shapes = message(
        name="Shapes",
        field=[
            F(
                name="when",
                number=1,
                type=F.TYPE_MESSAGE,
                label=F.LABEL_REPEATED,
                type_name=".wiretest.Shapes.WhenEntry",
            ),
            F(
                name="rates",
                number=2,
                type=F.TYPE_MESSAGE,
                label=F.LABEL_REPEATED,
                type_name=".wiretest.Shapes.RatesEntry",
            ),
            F(name="weights", number=3, type=F.TYPE_FLOAT, label=F.LABEL_REPEATED),
            _field("tree", 4, F.TYPE_MESSAGE, type_name=".wiretest.Node"),
            *(
                _field(f"pick{n}", 10 + n, F.TYPE_MESSAGE, type_name=stamp, oneof_index=0)
                for n in range(4)
            ),
            F(
                name="stamps",
                number=20,
                type=F.TYPE_MESSAGE,
                label=F.LABEL_REPEATED,
                type_name=stamp,
            ),
        ],
        nested_type=[
            message(
                name="WhenEntry",
                options=entry,
                field=[
                    _field("key", 1, F.TYPE_STRING),
                    _field("value", 2, F.TYPE_MESSAGE, type_name=stamp),
                ],
            ),
            message(
                name="RatesEntry",
                options=entry,
                field=[_field("key", 1, F.TYPE_STRING), _field("value", 2, F.TYPE_DOUBLE)],
            ),
        ],
        oneof_decl=[descriptor_pb2.OneofDescriptorProto(name="pick")],
    )
    pool.Add(
        descriptor_pb2.FileDescriptorProto(
            name="wiretest.proto",
            package="wiretest",
            syntax="proto3",
            dependency=["google/protobuf/timestamp.proto"],
            message_type=[node, shapes],
        )
    )
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"wiretest.{name}"))
        for name in ("Node", "Shapes")
    }


TYPES = _types()
Shapes = TYPES["Shapes"]
TOO_LATE = (253_402_300_800, 0)


def refusal(message: Any) -> dict[str, str]:
    """What the decoder says of `message`'s bytes: {} when it passes."""
    answer = decoder(type(message).FromString)(message.SerializeToString())  # type: ignore[misc]
    if not isinstance(answer, Refused):
        assert answer == message
        return {}
    assert answer.message == message
    return {v.field: v.description for v in answer.error.violations}


def test_a_map_of_timestamps_names_the_key() -> None:
    shapes = Shapes()
    shapes.when["a.b"].seconds, shapes.when["a.b"].nanos = TOO_LATE
    shapes.when["fine"].seconds = 1
    assert list(refusal(shapes)) == ['when["a.b"]']


def test_a_map_of_doubles_and_a_list_of_floats() -> None:
    shapes = Shapes()
    shapes.rates["x"] = math.nan
    shapes.weights.extend([1.5, math.inf])
    assert set(refusal(shapes)) == {'rates["x"]', "weights[1]"}


def test_a_recursive_type_is_walked_to_any_depth() -> None:
    shapes = Shapes()
    shapes.tree.child.child.at.nanos = -1
    shapes.tree.at.seconds = 5
    assert list(refusal(shapes)) == ["tree.child.child.at"]


def test_a_oneof_member_is_found() -> None:
    shapes = Shapes()
    shapes.pick2.seconds = -62_135_596_801
    assert list(refusal(shapes)) == ["pick2"]


def test_at_most_ten_are_named_and_the_message_says_more() -> None:
    shapes = Shapes()
    for _ in range(25):
        stamp = shapes.stamps.add()
        stamp.seconds, stamp.nanos = TOO_LATE
    answer = decoder(Shapes.FromString)(shapes.SerializeToString())
    assert isinstance(answer, Refused)
    assert [v.field for v in answer.error.violations] == [f"stamps[{n}]" for n in range(10)]
    assert "only the first 10" in answer.error.message


def test_a_long_struct_key_is_cut_in_the_path() -> None:
    request = struct_pb2.Struct()
    request.fields["k" * 10_000].number_value = math.nan
    answer = decoder(struct_pb2.Struct.FromString)(request.SerializeToString())
    assert isinstance(answer, Refused)
    (path,) = [v.field for v in answer.error.violations]
    assert path.startswith('request["kkk') and path.endswith('..."]') and len(path) < 100


def test_durations_outside_their_range_or_with_mixed_signs() -> None:
    decode = decoder(error_details_pb2.RetryInfo.FromString)
    for seconds, nanos in ((315_576_000_001, 0), (-315_576_000_001, 0), (1, -1), (-1, 1)):
        info = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=seconds, nanos=nanos)
        )
        answer = decode(info.SerializeToString())
        assert isinstance(answer, Refused), (seconds, nanos)
        assert "retry_delay" in answer.error.message and "±10,000 years" in answer.error.message
    for seconds, nanos in ((315_576_000_000, 999_999_999), (-315_576_000_000, -999_999_999)):
        info = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=seconds, nanos=nanos)
        )
        assert not isinstance(decode(info.SerializeToString()), Refused)


def test_bytes_that_are_no_message_are_refused_in_plain_words() -> None:
    answer = decoder(Shapes.FromString)(b"\x0a\x05ab")
    assert isinstance(answer, Refused) and answer.message is None
    assert answer.error.message == (
        "the request is not a valid wiretest.Shapes message: its bytes are not protobuf "
        "wire format (truncated or corrupt)"
    )


def test_raw_bytes_stay_raw() -> None:
    assert decoder(None) is None


def _bits(exponent_bits: int, mantissa_bits: int) -> st.SearchStrategy[int]:
    """IEEE 754 bit patterns, half of them with an all-ones exponent (infinities and
    NaNs with any payload, which random bits would almost never give)."""
    top = 2**exponent_bits - 1
    return st.builds(
        lambda sign, exponent, mantissa: (
            sign << (exponent_bits + mantissa_bits) | exponent << mantissa_bits | mantissa
        ),
        st.integers(0, 1),
        st.one_of(st.just(top), st.integers(0, top)),
        st.integers(0, 2**mantissa_bits - 1),
    )


def _double(bits: int) -> float:
    return float(struct.unpack("<d", bits.to_bytes(8, "little"))[0])


def _single(bits: int) -> float:
    return float(struct.unpack("<f", bits.to_bytes(4, "little"))[0])


@settings(deadline=None)  # a shared machine's pauses are not what is tested
@given(bits=_bits(11, 52))
def test_a_double_is_refused_exactly_when_it_is_not_finite(bits: int) -> None:
    """Every bit pattern, NaN payloads included: the byte scan never lets one through."""
    number = _double(bits)
    value = struct_pb2.Value(number_value=number)
    assert bool(refusal(value)) is not math.isfinite(number)
    wrapped = wrappers_pb2.DoubleValue(value=number)
    assert bool(refusal(wrapped)) is not math.isfinite(number)


@settings(deadline=None)
@given(bits=_bits(8, 23))
def test_a_float_is_refused_exactly_when_it_is_not_finite(bits: int) -> None:
    number = _single(bits)
    assert bool(refusal(wrappers_pb2.FloatValue(value=number))) is not math.isfinite(number)
    shapes = Shapes()
    shapes.weights.append(number)
    assert bool(refusal(shapes)) is not math.isfinite(number)


@settings(deadline=None)
@given(
    seconds=st.integers(-(2**63), 2**63 - 1),
    nanos=st.integers(-(2**31), 2**31 - 1),
)
def test_a_timestamp_is_refused_exactly_when_it_is_out_of_range(seconds: int, nanos: int) -> None:
    stamp = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    valid = -62_135_596_800 <= seconds <= 253_402_300_799 and 0 <= nanos <= 999_999_999
    assert bool(refusal(stamp)) is not valid
    shapes = Shapes()
    held = shapes.stamps.add()  # a Timestamp class of the test's own pool
    held.seconds, held.nanos = seconds, nanos
    assert bool(refusal(shapes)) is not valid
