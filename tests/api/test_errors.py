"""The status a refusal becomes stays small enough for any client to receive (the
reasons are in api/errors.py): what is short goes whole, what is long is cut, and past
a number of violations the last one says how many more there were."""

from __future__ import annotations

from urllib.parse import quote

from google.rpc import error_details_pb2, status_pb2

from switchyard.api.errors import MESSAGE_BYTES, cut, to_status
from switchyard.domain.errors import FieldViolation, InvalidArgument, NotFound

SOFT_LIMIT = 8 * 1024
"""The trailer size past which a default gRPC client may refuse a status."""


def _trailer_bytes(status: object) -> int:
    metadata = dict(status.trailing_metadata)  # type: ignore[attr-defined]
    details = len(metadata["grpc-status-details-bin"]) * 4 // 3  # sent as base64
    message = len(quote(status.details.encode(), safe=""))  # type: ignore[attr-defined]
    return details + message


def _bad_request(status: object) -> error_details_pb2.BadRequest:
    metadata = dict(status.trailing_metadata)  # type: ignore[attr-defined]
    packed = status_pb2.Status.FromString(metadata["grpc-status-details-bin"])
    request = error_details_pb2.BadRequest()
    packed.details[0].Unpack(request)
    return request


def test_a_short_refusal_is_sent_whole() -> None:
    status = to_status(InvalidArgument.field("flag.owner_email", "must be an email address"))
    assert status.details == "flag.owner_email: must be an email address"
    violation = _bad_request(status).field_violations[0]
    assert (violation.field, violation.description) == (
        "flag.owner_email",
        "must be an email address",
    )
    assert to_status(NotFound("no key 'a'")).details == "no key 'a'"


def test_a_refusal_quoting_megabytes_is_cut() -> None:
    quoted = "\U0001f600" * 1_000_000
    status = to_status(InvalidArgument.field("flag.owner_email", f"got {quoted!r}"))
    assert status.details.startswith("flag.owner_email: got '\U0001f600")
    assert status.details.endswith("\u2026")
    assert len(status.details.encode()) <= MESSAGE_BYTES
    assert _trailer_bytes(status) < SOFT_LIMIT


def test_a_thousand_violations_end_with_how_many_more() -> None:
    violations = [FieldViolation(f"flag.rules[{n}]", "x" * 300) for n in range(1000)]
    status = to_status(InvalidArgument.of(violations))
    sent = _bad_request(status).field_violations
    assert sent[0].field == "flag.rules[0]"
    last = sent[-1]
    assert last.description == f"and {1000 - (len(sent) - 1)} more problems"
    assert _trailer_bytes(status) < SOFT_LIMIT


def test_cut_never_splits_a_character() -> None:
    assert cut("\u00e9" * 10, 7) == "\u00e9\u00e9\u2026"
    assert cut("abc", 3) == "abc"
