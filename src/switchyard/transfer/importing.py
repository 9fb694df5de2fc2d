"""Bringing existing configuration in: environment variables, `.env` files, and YAML,
JSON or TOML files, as Switchyard keys with types.

`APP_API_TIMEOUT=30` under the prefix `APP_` becomes the number key `api.timeout`; a
nested file's `{api: {timeout: 30}}` becomes the same. A key Switchyard already defines
takes its value in the definition's type; a new key gets the type its value reads as
(boolean, number, JSON, URL, email, duration, date, cron, else string), and a
definition with it. The writes go to the server as one batch, so the server's own
checks (the secret guard among them) decide what is refused.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values
from google.protobuf import json_format, struct_pb2

from switchyard.domain.models import ConfigType
from switchyard.domain.values import string_format_of
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.transfer.plan import Writes

_PROTO_TYPES = {kind: pb.ConfigType.Value(f"CONFIG_TYPE_{kind.name}") for kind in ConfigType}
_TYPES_BY_NUMBER = {number: kind for kind, number in _PROTO_TYPES.items()}
_TRUE, _FALSE = frozenset({"true"}), frozenset({"false"})


@dataclass(frozen=True)
class Imported:
    """One value to import: its key, and the value as the source gave it (a string from
    the environment, any JSON value from a file)."""

    key: str
    value: Any
    source: str
    """The variable or the file path it came from, for a person reading the plan."""


def from_environment(
    variables: Mapping[str, str | None], prefix: str, *, separator: str = "_"
) -> list[Imported]:
    """The variables named with `prefix` (case-sensitive), the prefix stripped: the rest,
    lower-cased, with each `separator` a dot, is the key. Variables without a value
    (`NAME` alone in a .env file) are left out."""
    found = []
    for name, value in sorted(variables.items()):
        if not name.startswith(prefix) or value is None or name == prefix:
            continue
        key = name[len(prefix) :].lower().replace(separator.lower(), ".")
        found.append(Imported(key.strip("."), value, name))
    return found


def read_dotenv(path: Path) -> dict[str, str | None]:
    """A `.env` file's variables, as python-dotenv reads them (quotes, `export`, comments),
    without interpolation: a value is imported as it is written."""
    return dict(dotenv_values(path, interpolate=False))


def from_file(path: Path, *, prefix: str = "") -> list[Imported]:
    """A YAML, JSON or TOML file's values, nested mappings flattened with dots (lists stay
    values: arrays), each key under `prefix` when given. Raises ValueError for a file
    that does not parse or whose top level is not a mapping."""
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise ValueError(f"{path}: not .yaml, .yml, .json or .toml: say which it is")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: does not parse: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the top level must be a mapping of names to values")
    base = prefix.strip(".")
    return [Imported(key, value, str(path)) for key, value in _flatten(data, base)]


def _flatten(data: Mapping[str, Any], base: str) -> Iterable[tuple[str, Any]]:
    for name, value in sorted(data.items()):
        key = f"{base}.{name}" if base else str(name)
        if isinstance(value, dict) and value:
            yield from _flatten(value, key)
        else:
            yield key.lower(), _plain(value)


def _plain(value: Any) -> Any:
    """TOML and YAML dates and times are text in Switchyard (ISO 8601)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def infer(value: Any) -> tuple[ConfigType, Any]:
    """The type a value reads as, and the value in that type. A string from the
    environment is read as a boolean (true/false), a number, JSON (an object or an
    array), then a string format (URL, email, duration, date, cron), else text."""
    if isinstance(value, bool):
        return ConfigType.BOOLEAN, value
    if isinstance(value, int | float):
        return ConfigType.NUMBER, value
    if isinstance(value, list):
        return ConfigType.ARRAY, value
    if isinstance(value, dict):
        return ConfigType.JSON, value
    if value is None:
        return ConfigType.STRING, None
    text = str(value)
    lowered = text.strip().lower()
    if lowered in _TRUE or lowered in _FALSE:
        return ConfigType.BOOLEAN, lowered in _TRUE
    number = _number(text)
    if number is not None:
        return ConfigType.NUMBER, number
    if text.lstrip().startswith(("{", "[")):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            pass
        else:
            return (ConfigType.ARRAY if isinstance(parsed, list) else ConfigType.JSON), parsed
    return string_format_of(text) or ConfigType.STRING, text


def _number(text: str) -> int | float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):  # nan, inf: text
        return None
    if text.strip().lstrip("+-").isdigit():
        return int(text)
    return number


def as_type(kind: ConfigType, value: Any) -> Any:
    """A source value in an existing key's type: text read as what the type needs
    (a number, a boolean, JSON); what does not read as it is left for the server to
    refuse, with its own message."""
    if not isinstance(value, str):
        return value
    inferred_kind, inferred = infer(value)
    if kind is ConfigType.NUMBER and inferred_kind is ConfigType.NUMBER:
        return inferred
    if kind is ConfigType.BOOLEAN and inferred_kind is ConfigType.BOOLEAN:
        return inferred
    if kind in (ConfigType.JSON, ConfigType.ARRAY) and inferred_kind in (
        ConfigType.JSON,
        ConfigType.ARRAY,
    ):
        return inferred
    return value


def import_writes(
    items: Iterable[Imported],
    existing: Mapping[str, pb.ConfigDefinition],
    environment: str | None,
    *,
    category: str | None = None,
) -> Writes:
    """The writes of an import into `environment` (the base values when None): a new key
    gets a definition (its value as the base value, or an override in the environment);
    an existing key a new value."""
    out = Writes()
    for item in items:
        unit = out.unit()  # a key's definition and value go together
        definition = existing.get(item.key)
        if definition is not None:
            value = as_type(_TYPES_BY_NUMBER[definition.type], item.value)
            _set(out, unit, item.key, value, environment)
            continue
        kind, value = infer(item.value)
        config = pb.ConfigDefinition(
            key=item.key,
            type=_PROTO_TYPES[kind],
            category=category or item.key.split(".", 1)[0],
            description=f"Imported from {item.source}",
            is_active=True,
            is_editable=True,
            is_deletable=True,
        )
        if environment is None and value is not None:
            config.value.CopyFrom(_value(value))
        out.add("config", item.key, unit, create_config=pb.CreateConfigRequest(config=config))
        if environment is not None and value is not None:
            _set(out, unit, item.key, value, environment)
    return out


def _set(out: Writes, unit: int, key: str, value: Any, environment: str | None) -> None:
    name = f"{key}@{environment}" if environment else key
    out.add(
        "override" if environment else "config",
        name,
        unit,
        set_value=pb.SetValueRequest(key=key, value=_value(value), environment=environment or ""),
    )


def _value(value: Any) -> struct_pb2.Value:
    return json_format.ParseDict(value, struct_pb2.Value())


__all__ = [
    "Imported",
    "as_type",
    "from_environment",
    "from_file",
    "import_writes",
    "infer",
    "read_dotenv",
]
