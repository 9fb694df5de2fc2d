"""The public API keeps its promises in every service, not only those served today:
every answer that reads state says which revision it reflects, every write takes a
reason and a ticket and answers with the new revision, and every file carries the
package options other languages' generators need."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import FieldDescriptor, FileDescriptor, MethodDescriptor

from switchyard.gen.v1 import config_pb2, flag_pb2, rate_limit_pb2

FILES: tuple[FileDescriptor, ...] = (
    config_pb2.DESCRIPTOR,
    flag_pb2.DESCRIPTOR,
    rate_limit_pb2.DESCRIPTOR,
)
METHODS: list[MethodDescriptor] = [
    method
    for file in FILES
    for service in file.services_by_name.values()
    for method in service.methods
]
WRITE_PREFIXES = ("Create", "Update", "Delete", "Set", "Upsert", "Apply", "Rollback")
# A report of what a client saw, not a change an operator makes.
NOT_WRITES = {"ReportFlagOutcome"}


def _ids(method: MethodDescriptor) -> str:
    return str(method.full_name)


@pytest.mark.parametrize("method", [m for m in METHODS if not m.server_streaming], ids=_ids)
def test_every_answer_carries_its_revision(method: MethodDescriptor) -> None:
    field = method.output_type.fields_by_name.get("revision")

    assert field is not None, f"{method.output_type.full_name} has no revision"
    assert field.type == FieldDescriptor.TYPE_INT64


def test_the_watch_stream_carries_revisions_in_events_and_progress() -> None:
    response = config_pb2.WatchConfigResponse.DESCRIPTOR
    for part in ("event", "progress"):
        message = response.fields_by_name[part].message_type
        assert message.fields_by_name["revision"].type == FieldDescriptor.TYPE_INT64
    request = config_pb2.WatchConfigRequest.DESCRIPTOR
    assert {"keys", "prefixes", "categories", "environment", "from_revision"} <= set(
        request.fields_by_name
    )


@pytest.mark.parametrize(
    "method",
    [m for m in METHODS if m.name.startswith(WRITE_PREFIXES) and m.name not in NOT_WRITES],
    ids=_ids,
)
def test_every_write_takes_a_reason_and_a_ticket(method: MethodDescriptor) -> None:
    fields = method.input_type.fields_by_name

    assert fields["reason"].type == FieldDescriptor.TYPE_STRING
    assert fields["ticket"].type == FieldDescriptor.TYPE_STRING


def test_the_writes_are_the_ones_the_api_names() -> None:
    writes = {m.name for m in METHODS if m.name.startswith(WRITE_PREFIXES)} - NOT_WRITES
    assert {
        "CreateConfig",
        "UpdateConfig",
        "DeleteConfig",
        "SetValue",
        "DeleteOverride",
        "Rollback",
        "UpsertTemplate",
        "ApplyTemplate",
        "UpsertFlag",
        "SetFlagEnabled",
        "DeleteFlag",
        "UpsertRateLimit",
        "DeleteRateLimit",
    } <= writes


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.name)
def test_every_file_sets_the_package_options_of_other_languages(file: FileDescriptor) -> None:
    options = file.GetOptions()

    assert file.package == "switchyard.v1"
    assert options.go_package.endswith(";switchyardv1")
    assert options.java_package == "io.switchyard.v1"
    assert options.java_multiple_files
    assert options.csharp_namespace == "Switchyard.V1"


def test_values_travel_as_google_protobuf_value() -> None:
    for message in (
        config_pb2.GetValueResponse,
        config_pb2.SetValueRequest,
        config_pb2.HistoryEntry,
        config_pb2.ChangeEvent,
    ):
        field = (
            message.DESCRIPTOR.fields_by_name.get("value")
            or message.DESCRIPTOR.fields_by_name["new_value"]
        )
        assert field.message_type.full_name == "google.protobuf.Value"
