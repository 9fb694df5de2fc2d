"""Reading and writing values on a running server: `get`, `set`, `unset`, `list` and
`diff` (two environments side by side)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from switchyard.cli.exit_codes import ExitCode
from switchyard.cli.options import (
    IsoTime,
    environment_option,
    piece_size_option,
    reason_option,
    ticket_option,
)
from switchyard.cli.output import emit, fields, table
from switchyard.cli.plain import enum_name, moment, value_of
from switchyard.cli.remote import (
    RemoteOptions,
    connect,
    long_remote_options,
    remote_options,
    run,
)
from switchyard.client import Client, all_pages, to_value
from switchyard.gen.v1 import config_pb2 as pb

PAGE = 1000
"""Keys to a ListConfigs page and to a GetValues call: the server's maximum for both."""


@click.command()
@click.argument("key")
@environment_option("The environment to resolve in; the base value (then default) without.")
@remote_options
def get(key: str, environment: str | None, remote: RemoteOptions) -> None:
    """Show the effective value of KEY and the layer that answered.

    JSON: key, value, type, source, source_environment, version, revision,
    requires_restart, expires_at, stale."""

    async def call() -> pb.GetValueResponse:
        async with connect(remote) as client:
            request = pb.GetValueRequest(key=key, environment=environment or "")
            reply: pb.GetValueResponse = await client.config.GetValue(request)
            return reply

    reply = run(call(), remote)
    data = {
        "key": reply.key,
        **resolved(reply),
        "type": enum_name(pb.ConfigType, reply.type),
        "version": reply.version,
        "revision": reply.revision,
        "requires_restart": reply.requires_restart,
        "expires_at": moment(reply, "expires_at"),
        "stale": reply.stale,
    }
    emit(data, remote.output, lambda: fields(data, title=key))


def parse_value(text: str, *, as_string: bool = False) -> Any:
    """VALUE as typed: JSON when it parses as JSON (45, true, {"a":1}, "\\"quoted\\""),
    else the text itself as a string; always the text with `as_string`."""
    if as_string:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


@click.command("set")
@click.argument("key")
@click.argument("value")
@environment_option("Set an override in ENV; the base value without.")
@click.option("--string", "as_string", is_flag=True, help="Take VALUE as a string, always.")
@click.option("--priority", type=int, help="Override priority: the highest wins (default 100).")
@click.option("--expires-at", type=IsoTime(), help="Make the override temporary until then.")
@click.option("--starts-at", type=IsoTime(), help="Write the override now, applying from then.")
@click.option("--expected-version", type=int, help="Refuse (exit 5) unless KEY is at this version.")
@reason_option
@ticket_option
@remote_options
def set_value(
    key: str,
    value: str,
    environment: str | None,
    as_string: bool,
    priority: int | None,
    expires_at: datetime | None,
    starts_at: datetime | None,
    expected_version: int | None,
    reason: str | None,
    ticket: str | None,
    remote: RemoteOptions,
) -> None:
    """Set KEY to VALUE: JSON when it parses as JSON (45, true, {"a":1}), else a string.

    JSON: key, environment, value, changed, version, revision, requires_restart."""
    request = pb.SetValueRequest(
        key=key,
        value=to_value(parse_value(value, as_string=as_string)),
        environment=environment or "",
        reason=reason or "",
        ticket=ticket or "",
        expected_version=expected_version,
        priority=priority,
    )
    if expires_at is not None:
        request.expires_at.FromDatetime(expires_at)
    if starts_at is not None:
        request.starts_at.FromDatetime(starts_at)

    async def call() -> pb.SetValueResponse:
        async with connect(remote) as client:
            reply: pb.SetValueResponse = await client.config.SetValue(request)
            return reply

    reply = run(call(), remote)
    data = {
        "key": reply.key,
        "environment": reply.environment or None,
        "value": value_of(reply, "value"),
        "changed": reply.changed,
        "version": reply.version,
        "revision": reply.revision,
        "requires_restart": reply.requires_restart,
    }
    emit(data, remote.output, lambda: fields(data, title=_outcome(reply.changed)))


def _outcome(changed: bool) -> str:
    return "set" if changed else "unchanged: the value was already stored"


@click.command()
@click.argument("key")
@environment_option("The environment whose override to remove.", required=True)
@click.option("--priority", type=int, help="Remove only the override at this priority.")
@reason_option
@ticket_option
@remote_options
def unset(
    key: str,
    environment: str,
    priority: int | None,
    reason: str | None,
    ticket: str | None,
    remote: RemoteOptions,
) -> None:
    """Remove KEY's override in ENV (all of them, or the one at --priority).

    JSON: key, environment, deleted (how many), version, revision."""
    request = pb.DeleteOverrideRequest(
        key=key,
        environment=environment,
        priority=priority,
        reason=reason or "",
        ticket=ticket or "",
    )

    async def call() -> pb.DeleteOverrideResponse:
        async with connect(remote) as client:
            reply: pb.DeleteOverrideResponse = await client.config.DeleteOverride(request)
            return reply

    reply = run(call(), remote)
    data = {
        "key": key,
        "environment": environment,
        "deleted": reply.deleted,
        "version": reply.version,
        "revision": reply.revision,
    }
    emit(data, remote.output, lambda: fields(data, title=f"{reply.deleted} override(s) removed"))


@click.command("list")
@click.option("--prefix", default="", help="Only keys starting with this.")
@click.option("--category", default="", help="Only keys of this category.")
@environment_option("Also show each key's effective value in ENV.")
@click.option("--include-inactive", is_flag=True, help="Show inactive keys too.")
@remote_options
def list_configs(
    prefix: str,
    category: str,
    environment: str | None,
    include_inactive: bool,
    remote: RemoteOptions,
) -> None:
    """List the keys, their types and base values; with --env, their effective values.

    JSON: {configs: [{key, type, category, description, value, default_value, version,
    is_active, effective}], environment, revision}; `effective` ({value, source,
    source_environment}) only with --env."""
    request = pb.ListConfigsRequest(
        key_prefix=prefix, category=category, include_inactive=include_inactive
    )

    async def call() -> tuple[list[pb.ConfigDefinition], int, dict[str, pb.GetValueResponse]]:
        async with connect(remote) as client:
            configs, revision = await list_all(client, request)
            found = {}
            if environment:
                found = await effective(client, [c.key for c in configs], environment)
            return configs, revision, found

    configs, revision, found = run(call(), remote)
    rows = []
    for config in configs:
        row: dict[str, Any] = {
            "key": config.key,
            "type": enum_name(pb.ConfigType, config.type),
            "category": config.category,
            "description": config.description,
            "value": value_of(config, "value"),
            "default_value": value_of(config, "default_value"),
            "version": config.version,
            "is_active": config.is_active,
        }
        if environment:
            row["effective"] = resolved(found[config.key]) if config.key in found else None
        rows.append(row)
    data = {"configs": rows, "environment": environment, "revision": revision}
    emit(data, remote.output, lambda: _configs_table(rows, environment, revision))


def _configs_table(rows: list[dict[str, Any]], environment: str | None, revision: int) -> Any:
    columns = ["KEY", "TYPE", "CATEGORY", "BASE VALUE", "VERSION"]
    if environment:
        columns += [f"IN {environment.upper()}", "FROM"]
    lines = []
    for row in rows:
        line = [row["key"], row["type"], row["category"], _unset(row["value"]), row["version"]]
        if environment:
            answer = row["effective"] or {"value": None, "source": "missing"}
            line += [_unset(answer["value"]), layer(answer)]
        lines.append(line)
    return table(columns, lines, title=f"{len(rows)} key(s) at revision {revision}")


def _unset(value: Any) -> Any:
    return Text("-", style="dim") if value is None else value


@click.command()
@click.argument("env_a", metavar="ENV_A", required=False)
@click.argument("env_b", metavar="ENV_B", required=False)
@click.option("--prefix", default="", help="Only keys starting with this.")
@click.option("--all", "show_all", is_flag=True, help="Show equal keys too.")
@click.option(
    "-f",
    "--filename",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Instead: the plan of `apply -f FILE`, what applying the document would change.",
)
@click.option("--prune", is_flag=True, help="With -f: the deletions of `apply --prune` too.")
@piece_size_option
@long_remote_options
def diff(
    env_a: str | None,
    env_b: str | None,
    prefix: str,
    show_all: bool,
    filename: Path | None,
    prune: bool,
    piece_size: int,
    remote: RemoteOptions,
) -> None:
    """Compare the effective values of every key in ENV_A and ENV_B, with the layer that
    answered each; or, with -f FILE, show what `apply -f FILE` would change. Exit 1 when
    there are differences, 0 when there are none (as diff does).

    JSON: {a, b, differences (a count), keys: [{key, same, a, b}]}, `a` and `b` of
    each key being {value, source, source_environment}; with -f, the plan (see apply)."""
    if filename is not None:
        if env_a or env_b:
            raise click.UsageError("give two environments, or -f FILE, not both")
        from switchyard.cli.transfer import file_plan

        file_plan(filename, prune, piece_size, remote)
        return
    if not (env_a and env_b):
        raise click.UsageError("name two environments to compare (or -f FILE)")
    request = pb.ListConfigsRequest(key_prefix=prefix)

    async def call() -> tuple[list[str], _Answers, _Answers]:
        async with connect(remote) as client:
            configs, _ = await list_all(client, request)
            keys = [c.key for c in configs]
            return keys, await effective(client, keys, env_a), await effective(client, keys, env_b)

    keys, left, right = run(call(), remote)
    compared = []
    for key in keys:
        a = resolved(left[key]) if key in left else None
        b = resolved(right[key]) if key in right else None
        same = _canonical(a and a["value"]) == _canonical(b and b["value"])
        if show_all or not same:
            compared.append({"key": key, "same": same, "a": a, "b": b})
    differences = sum(not item["same"] for item in compared)
    data = {"a": env_a, "b": env_b, "differences": differences, "keys": compared}
    emit(data, remote.output, lambda: _diff_table(data))
    if differences:
        raise SystemExit(int(ExitCode.DIFFERENCES))


_Answers = dict[str, "pb.GetValueResponse"]


def _diff_table(data: dict[str, Any]) -> Any:
    rows = []
    for item in data["keys"]:
        style = "" if item["same"] else "yellow"
        a, b = (item[side] or {"value": None, "source": "missing"} for side in ("a", "b"))
        rows.append(
            [
                Text(item["key"], style=style),
                _unset(a["value"]),
                layer(a),
                _unset(b["value"]),
                layer(b),
            ]
        )
    title = f"{data['differences']} difference(s) between {data['a']} and {data['b']}"
    return table(["KEY", data["a"], "FROM", data["b"], "FROM"], rows, title=title)


def _canonical(value: Any) -> str:
    """JSON text to compare values with: `true` and `1` differ, as they do in JSON."""
    return json.dumps(value, sort_keys=True)


def resolved(reply: pb.GetValueResponse) -> dict[str, Any]:
    """The answer of a read: value, source (the layer) and source_environment."""
    return {
        "value": value_of(reply, "value"),
        "source": enum_name(pb.ValueSource, reply.source),
        "source_environment": reply.source_environment or None,
    }


def layer(answer: dict[str, Any]) -> str:
    """The layer that answered, for a person: `override@staging`, `base`, `default`."""
    where = answer.get("source_environment")
    return f"{answer['source']}@{where}" if where else str(answer["source"])


async def list_all(
    client: Client, request: pb.ListConfigsRequest
) -> tuple[list[pb.ConfigDefinition], int]:
    """Every definition ListConfigs answers `request` with, and the revision of the
    first page."""
    return await all_pages(client.config.ListConfigs, request, "configs")


async def effective(
    client: Client, keys: Sequence[str], environment: str
) -> dict[str, pb.GetValueResponse]:
    """The answers of GetValues for `keys` in `environment`, by key, PAGE keys to a call;
    keys the server reports missing are left out."""
    found: dict[str, pb.GetValueResponse] = {}
    for chunk in _chunks(keys, PAGE):
        reply = await client.config.GetValues(
            pb.GetValuesRequest(keys=chunk, environment=environment)
        )
        found.update((answer.key, answer) for answer in reply.values)
    return found


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    return (items[start : start + size] for start in range(0, len(items), size))


__all__ = [
    "PAGE",
    "diff",
    "effective",
    "get",
    "layer",
    "list_all",
    "list_configs",
    "parse_value",
    "resolved",
    "set_value",
    "unset",
]
