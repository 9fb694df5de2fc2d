"""The JSON Schema of the configuration document, worked out from the protos.

Each entry of the document is an API message in its JSON form, so its schema is that
message's descriptor read field by field: never written twice, never out of date with
the protos. Editors validate the file with it (`switchyard schema`, or the copy at
docs/switchyard.schema.json), and `load_document` checks every file with it before an
apply, so a typo is refused by name before anything reaches the server.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import flag_pb2 as fpb
from switchyard.gen.v1 import rate_limit_pb2 as rpb
from switchyard.transfer.document import BOOKKEEPING, FORMAT_VERSION, KEPT, DocumentError

SCHEMA_ID = "https://switchyard.dev/schemas/configuration-v1.json"

_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Value": {},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.ListValue": {"type": "array"},
}
_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_INT32: {"type": "integer"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "minimum": 0},
    # The JSON form of a 64-bit integer may be a string; the document writes numbers.
    FieldDescriptor.TYPE_INT64: {"type": ["integer", "string"], "pattern": r"^-?\d+$"},
    FieldDescriptor.TYPE_SINT64: {"type": ["integer", "string"], "pattern": r"^-?\d+$"},
    FieldDescriptor.TYPE_UINT64: {"type": ["integer", "string"], "pattern": r"^\d+$"},
}


def message_schema(
    descriptor: Descriptor, *, leave_out: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The schema of a message's JSON form (proto field names), less `leave_out`."""
    properties = {f.name: _field_schema(f) for f in descriptor.fields if f.name not in leave_out}
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _field_schema(field: Any) -> dict[str, Any]:
    single = _single_schema(field)
    if field.is_repeated:
        return {"type": "array", "items": single}
    return single


def _single_schema(field: Any) -> dict[str, Any]:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return {"enum": [value.name for value in field.enum_type.values]}
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        name = field.message_type.full_name
        if name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[name])
        return message_schema(field.message_type)
    return dict(_SCALARS.get(field.type, {}))


def _entry(descriptor: Descriptor, section: str, required: str) -> dict[str, Any]:
    schema = message_schema(descriptor, leave_out=BOOKKEEPING[section])
    schema["required"] = [required]
    return schema


def document_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a configuration document."""
    config = _entry(pb.ConfigDefinition.DESCRIPTOR, "configs", "key")
    override = _entry(pb.Override.DESCRIPTOR, "overrides", "environment")
    config["properties"]["overrides"] = {"type": "array", "items": override}
    config["properties"][KEPT] = {
        "enum": ["sensitive", "encrypted"],
        "description": "The key's values stay in Switchyard and out of this file; an "
        "apply leaves them as they are.",
    }

    def section(schema: dict[str, Any]) -> dict[str, Any]:
        return {"type": "array", "items": schema}

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Switchyard configuration",
        "description": "What `switchyard export` writes and `switchyard apply -f` reads. "
        "Each entry is the API message of its kind in its JSON form (see protos/).",
        "type": "object",
        "properties": {
            "version": {"enum": [1, FORMAT_VERSION]},
            "environments": section(_entry(pb.Environment.DESCRIPTOR, "environments", "name")),
            "configs": section(config),
            "flags": section(_entry(fpb.FeatureFlag.DESCRIPTOR, "flags", "key")),
            "rate_limits": section(_entry(rpb.RateLimit.DESCRIPTOR, "rate_limits", "key")),
            "templates": section(_entry(pb.Template.DESCRIPTOR, "templates", "name")),
        },
        "required": ["version"],
        "additionalProperties": False,
    }


def validate(document: Any) -> None:
    """Raises DocumentError listing every place `document` breaks the schema."""
    validator = jsonschema.Draft202012Validator(document_schema())
    problems = [
        f"{_path(error.absolute_path) or '(document)'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    ]
    if problems:
        raise DocumentError(problems)


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


__all__ = ["SCHEMA_ID", "document_schema", "message_schema", "validate"]
