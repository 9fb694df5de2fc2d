"""What happened to a key and how to undo it: `history` and `rollback`. On a terminal
each change shows as a coloured diff (removed red, added green) from the JSON Patch the
server records with it."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Group, RenderableType
from rich.text import Text

from switchyard.cli.options import environment_option, reason_option, ticket_option
from switchyard.cli.output import emit, quoted
from switchyard.cli.plain import enum_name, list_of, moment, value_of
from switchyard.cli.remote import RemoteOptions, connect, remote_options, run
from switchyard.gen.v1 import config_pb2 as pb


@click.command()
@click.argument("key")
@environment_option("Only changes in ENV (`-` for the base value); every layer without.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Newest N changes."
)
@remote_options
def history(key: str, environment: str | None, limit: int, remote: RemoteOptions) -> None:
    """Show KEY's recorded changes, newest first: who, in which role, why, the ticket,
    the revision and time, and what changed.

    JSON: {key, entries: [{revision, version, action, environment, old_value, new_value,
    diff, changed_by, changed_by_username, changed_by_role, approved_by_username, reason,
    ticket, changed_at, client_address}]}."""

    async def call() -> list[pb.HistoryEntry]:
        entries: list[pb.HistoryEntry] = []
        async with connect(remote) as client:
            async for entry in client.history(key, environment=environment):
                entries.append(entry)
                if len(entries) == limit:
                    break
        return entries

    entries = [_entry(entry) for entry in run(call(), remote)]
    emit(
        {"key": key, "entries": entries},
        remote.output,
        lambda: Group(*(_entry_lines(entry) for entry in entries)) if entries else "no changes",
    )


def _entry(entry: pb.HistoryEntry) -> dict[str, Any]:
    return {
        "revision": entry.revision,
        "version": entry.version,
        "action": enum_name(pb.HistoryAction, entry.action),
        "environment": entry.environment or None,
        "old_value": value_of(entry, "old_value"),
        "new_value": value_of(entry, "new_value"),
        "diff": list_of(entry.diff),
        "changed_by": entry.changed_by,
        "changed_by_username": entry.changed_by_username or None,
        "changed_by_role": entry.changed_by_role,
        "approved_by_username": entry.approved_by_username or None,
        "reason": entry.reason or None,
        "ticket": entry.ticket or None,
        "changed_at": moment(entry, "changed_at"),
        "client_address": entry.client_address or None,
    }


def _entry_lines(entry: dict[str, Any]) -> RenderableType:
    """A heading (revision, time, action, layer, who) and the entry's diff under it."""
    layer = entry["environment"] or "base"
    heading = Text.assemble(
        (f"revision {entry['revision']}", "bold"),
        f"  {entry['changed_at'] or ''}  {entry['action']} {layer}"
        f"  by {entry['changed_by_username'] or entry['changed_by']}",
        f" ({entry['changed_by_role']})" if entry["changed_by_role"] else "",
        f", approved by {entry['approved_by_username']}" if entry["approved_by_username"] else "",
    )
    lines: list[RenderableType] = [heading]
    why = [f"{name}: {entry[name]}" for name in ("reason", "ticket") if entry[name]]
    if why:
        lines.append(Text("  " + "  ".join(why), style="dim"))
    lines.extend(patch_lines(entry["old_value"], entry["new_value"], entry["diff"]))
    return Group(*lines)


def patch_lines(old: Any, new: Any, patch: list[Any]) -> list[Text]:
    """The lines of a change, one or two per JSON Patch operation: `- path: old` in red
    for what went, `+ path: new` in green for what came. Without a patch (an entry that
    records none) the whole values are compared."""
    if not patch and old != new:
        patch = [{"op": "replace", "path": "", "value": new}]
    lines = []
    for op in patch:
        path = op.get("path", "") or "value"
        kind = op.get("op")
        if kind in ("remove", "replace"):
            lines.append(Text(f"  - {path}: {quoted(_at(old, op.get('path', '')))}", style="red"))
        if kind in ("add", "replace"):
            lines.append(Text(f"  + {path}: {quoted(op.get('value'))}", style="green"))
        if kind in ("move", "copy"):
            lines.append(Text(f"  ~ {kind} {op.get('from')} -> {path}", style="yellow"))
    return lines


def _at(document: Any, pointer: str) -> Any:
    """The part of `document` a JSON Pointer (RFC 6901) names; None when it names none."""
    for escaped in pointer.split("/")[1:]:
        token = escaped.replace("~1", "/").replace("~0", "~")
        if isinstance(document, dict):
            document = document.get(token)
        elif isinstance(document, list) and token.isdigit() and int(token) < len(document):
            document = document[int(token)]
        else:
            return None
    return document


@click.command()
@click.argument("key")
@environment_option("The layer to roll back: an override in ENV; the base value without.")
@click.option("--steps", type=click.IntRange(min=1), help="How many changes to undo (1).")
@click.option("--to-version", type=int, help="Restore the value KEY had at this version.")
@click.option("--dry-run", is_flag=True, help="Show old -> new without changing anything.")
@reason_option
@ticket_option
@remote_options
def rollback(
    key: str,
    environment: str | None,
    steps: int | None,
    to_version: int | None,
    dry_run: bool,
    reason: str | None,
    ticket: str | None,
    remote: RemoteOptions,
) -> None:
    """Restore the value KEY had some changes ago, as a new recorded change.

    JSON: key, environment, old_value, new_value, diff, dry_run,
    restored_from_revision, version, revision."""
    if steps is not None and to_version is not None:
        raise click.UsageError("give --steps or --to-version, not both")
    request = pb.RollbackRequest(
        key=key,
        environment=environment or "",
        steps=steps or 0,
        to_version=to_version,
        dry_run=dry_run,
        reason=reason or "",
        ticket=ticket or "",
    )

    async def call() -> pb.RollbackResponse:
        async with connect(remote) as client:
            reply: pb.RollbackResponse = await client.config.Rollback(request)
            return reply

    reply = run(call(), remote)
    data = {
        "key": reply.key,
        "environment": reply.environment or None,
        "old_value": value_of(reply, "old_value"),
        "new_value": value_of(reply, "new_value"),
        "diff": list_of(reply.diff),
        "dry_run": reply.dry_run,
        "restored_from_revision": reply.restored_from_revision,
        "version": reply.version,
        "revision": reply.revision,
    }
    layer = f"{key}@{reply.environment}" if reply.environment else key
    heading = (
        f"dry run: rolling back {layer} would change it"
        if reply.dry_run
        else f"rolled back {layer} at revision {reply.revision}"
    )
    emit(
        data,
        remote.output,
        lambda: Group(
            Text(heading),
            *patch_lines(data["old_value"], data["new_value"], data["diff"]),
        ),
    )


__all__ = ["history", "patch_lines", "rollback"]
