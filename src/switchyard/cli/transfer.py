"""Configuration in and out: `switchyard export`, `apply -f`, `diff -f`, `import env`,
`import file` and `schema`.

Every change goes to the server in batches (BatchService): a dry run first, whose answer
is the plan shown (create, update, delete, unchanged, refused, each with the server's
own diff or refusal), then, when confirmed, the same writes for real. A plan of up to
--piece-size writes is one batch: one transaction, under one revision. A larger one is
cut into pieces of whole units (`transfer.plan`), and every piece, the dry run's and the
apply's, is sent with the revision it must find (`expected_revision`): the dry run's
pieces the revision the plan was read at, the first piece applied that one too, and each
later piece the revision the piece before it committed. So nothing can slip in between:
either every piece applies, and the server holds exactly what the plan showed, or the
apply stops at the first piece that finds the configuration changed, the pieces before
it stay applied (each whole), and the command says which were and which were not.
Applying the file again plans what is left.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc
from rich.progress import Progress
from rich.text import Text

from switchyard.cli.changes import patch_lines
from switchyard.cli.exit_codes import ExitCode, Failure
from switchyard.cli.options import (
    environment_option,
    piece_size_option,
    reason_option,
    ticket_option,
)
from switchyard.cli.output import console, emit, to_json
from switchyard.cli.plain import list_of, value_of
from switchyard.cli.remote import RemoteOptions, connect, long_remote_options, run
from switchyard.client import Client
from switchyard.gen.v1 import batch_pb2 as bpb
from switchyard.gen.v1 import batch_pb2_grpc
from switchyard.transfer.document import (
    DocumentError,
    State,
    dump_document,
    load_document,
    read_state,
    to_document,
)
from switchyard.transfer.importing import (
    Imported,
    from_environment,
    from_file,
    import_writes,
    read_dotenv,
)
from switchyard.transfer.plan import (
    ENVIRONMENTS,
    Step,
    Write,
    Writes,
    document_writes,
    pieces,
    plan_steps,
    summary,
)
from switchyard.transfer.schema import document_schema

F = TypeVar("F", bound=Callable[..., Any])

_STYLES = {
    "create": ("+", "green"),
    "update": ("~", "yellow"),
    "delete": ("-", "red"),
    "unchanged": ("=", "dim"),
    "refused": ("!", "bold red"),
}


@click.command("export")
@click.option("--prefix", default="", help="Only config keys starting with this.")
@click.option(
    "-f",
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the document here instead of to stdout.",
)
@long_remote_options
def export(prefix: str, path: Path | None, remote: RemoteOptions) -> None:
    """Write everything the server holds as one YAML document, in a stable order: the
    environments, the config definitions with their overrides, the flags, the rate
    limits and the templates. Values of sensitive and encrypted keys never appear."""

    async def call() -> State:
        async with connect(remote) as client:
            return await _read(client, prefix)

    text = dump_document(to_document(run(call(), remote)))
    if path is None:
        click.echo(text, nl=False)
    else:
        path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {path}", err=True)


async def _read(client: Client, prefix: str = "") -> State:
    """The server's state, with a progress bar on a terminal while overrides are read."""
    if not sys.stderr.isatty():
        return await read_state(client, key_prefix=prefix)
    with Progress(console=console(err=True), transient=True) as progress:
        task = progress.add_task("reading the configuration", total=None)
        return await read_state(
            client,
            key_prefix=prefix,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )


_FILE = click.option(
    "-f",
    "--filename",
    "filename",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The document (as `switchyard export` writes it).",
)
_PRUNE = click.option(
    "--prune",
    is_flag=True,
    help="Also delete the keys, overrides, flags and limits the document does not name.",
)


@click.command("apply")
@_FILE
@_PRUNE
@click.option("--yes", "-y", is_flag=True, help="Apply without asking.")
@piece_size_option
@reason_option
@ticket_option
@long_remote_options
def apply(
    filename: Path,
    prune: bool,
    yes: bool,
    piece_size: int,
    reason: str | None,
    ticket: str | None,
    remote: RemoteOptions,
) -> None:
    """Make the server hold what the document FILE says: show the plan, then apply it
    when confirmed (--yes, or a yes at the prompt). Applying the same file again changes
    nothing. Exit 4 when a write is refused (nothing is applied).

    A plan of up to --piece-size writes is applied in one transaction. A larger one is
    applied in pieces, in order, each a transaction of its own that applies only while
    the configuration is exactly what the plan and the pieces before it left: if anything
    else changed it meanwhile, the apply stops there, says which pieces were applied and
    which were not, and exits 5. Apply the file again to plan and apply the rest. A
    piece never splits a key (its definition, values, overrides and state), nor flags or
    limits that name each other."""
    document = _load(filename)

    async def planned(client: Client) -> Writes:
        return document_writes(document, await _read(client), prune=prune)

    _plan_then_apply(planned, remote, reason, ticket, piece_size=piece_size, yes=yes)


def file_plan(filename: Path, prune: bool, piece_size: int, remote: RemoteOptions) -> None:
    """`switchyard diff -f FILE`: the plan only. Exit 1 when it would change anything."""
    document = _load(filename)

    async def planned(client: Client) -> Writes:
        return document_writes(document, await _read(client), prune=prune)

    _plan_then_apply(planned, remote, None, None, piece_size=piece_size, plan_only=True)


def _load(filename: Path) -> dict[str, Any]:
    try:
        return load_document(filename.read_text(encoding="utf-8"))
    except DocumentError as error:
        lines = "\n".join(f"  {problem}" for problem in error.problems)
        raise Failure(
            f"error: {filename} is not a Switchyard document:\n{lines}\n"
            "  (`switchyard schema` prints the JSON Schema it must follow)",
            ExitCode.INVALID,
        ) from None


def _import_options(command: F) -> F:
    """What both imports take besides their source: where to, how to name new keys'
    category, whether to apply, and the audit and connection options."""
    for option in reversed(
        (
            environment_option(
                "Import into this environment (as overrides); the base values without."
            ),
            click.option(
                "--category", help="The category of new keys (default: their first segment)."
            ),
            click.option(
                "--apply", "apply_now", is_flag=True, help="Apply the plan (default: show it)."
            ),
            click.option("--skip-refused", is_flag=True, help="Apply what is not refused."),
            piece_size_option,
            reason_option,
            ticket_option,
            long_remote_options,
        )
    ):
        command = option(command)
    return command


@click.group("import")
def import_() -> None:
    """Bring existing configuration in: environment variables or files."""


@import_.command("env")
@click.option("--prefix", required=True, help="Only variables named with it, e.g. APP_.")
@click.option(
    "--from-file",
    "dotenv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A .env file to read instead of this process's environment.",
)
@click.option(
    "--separator",
    default="_",
    show_default=True,
    help="What becomes a dot in the key (`__` keeps single underscores).",
)
@_import_options
def import_env(
    prefix: str,
    dotenv: Path | None,
    separator: str,
    environment: str | None,
    category: str | None,
    apply_now: bool,
    skip_refused: bool,
    piece_size: int,
    reason: str | None,
    ticket: str | None,
    remote: RemoteOptions,
) -> None:
    """Import environment variables: APP_API_TIMEOUT=30 with --prefix APP_ becomes the
    number key api.timeout. Shows the plan (create, update, unchanged, refused); with
    --apply, applies it in one transaction. Values that look like credentials are
    refused by the server's secret guard."""
    variables = read_dotenv(dotenv) if dotenv else dict(os.environ)
    items = from_environment(variables, prefix, separator=separator)
    _import(
        items, environment, category, apply_now, skip_refused, piece_size, reason, ticket, remote
    )


@import_.command("file")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--prefix", default="", help="Put every key under this (e.g. billing).")
@_import_options
def import_file(
    path: Path,
    prefix: str,
    environment: str | None,
    category: str | None,
    apply_now: bool,
    skip_refused: bool,
    piece_size: int,
    reason: str | None,
    ticket: str | None,
    remote: RemoteOptions,
) -> None:
    """Import a YAML, JSON or TOML file, nested keys flattened with dots. Shows the plan;
    with --apply, applies it in one transaction."""
    try:
        items = from_file(path, prefix=prefix)
    except ValueError as error:
        raise Failure(f"error: {error}", ExitCode.INVALID) from None
    _import(
        items, environment, category, apply_now, skip_refused, piece_size, reason, ticket, remote
    )


def _import(
    items: list[Imported],
    environment: str | None,
    category: str | None,
    apply_now: bool,
    skip_refused: bool,
    piece_size: int,
    reason: str | None,
    ticket: str | None,
    remote: RemoteOptions,
) -> None:
    if not items:
        raise Failure("error: nothing to import: no variable or value matched", ExitCode.INVALID)

    async def planned(client: Client) -> Writes:
        state = await read_state(client, with_overrides=False)
        writes = import_writes(
            items, {c.key: c for c in state.configs}, environment, category=category
        )
        writes.revision = state.revision
        return writes

    _plan_then_apply(
        planned,
        remote,
        reason,
        ticket,
        piece_size=piece_size,
        yes=True,
        plan_only=not apply_now,
        skip_refused=skip_refused,
    )


_PLAN_ATTEMPTS = 3
"""How often a plan is worked out again when the configuration changes while it is."""


@dataclass
class _Plan:
    writes: Writes
    pieces: list[list[Write]]
    steps: list[Step]
    """One per write, in the order of the pieces."""


@dataclass
class _Applied:
    pieces: list[tuple[int, int]] = field(default_factory=list)
    """(writes, revision) of each piece applied, in order."""


def _plan_then_apply(
    planned: Callable[[Client], Awaitable[Writes]],
    remote: RemoteOptions,
    reason: str | None,
    ticket: str | None,
    *,
    piece_size: int,
    yes: bool = False,
    plan_only: bool = False,
    skip_refused: bool = False,
) -> None:
    """Works out the writes, asks the server for their dry run and shows the plan; then,
    unless `plan_only`, applies them once confirmed, piece by piece. Exits 1 for a
    plan-only run that would change something, 4 when a write is refused (unless
    `skip_refused`), and with the status's code when an apply stops part way."""

    async def dry_run() -> _Plan:
        async with connect(remote) as client:
            for attempt in range(1, _PLAN_ATTEMPTS + 1):
                writes = await planned(client)
                try:
                    return await _dry_run(client, writes, piece_size, reason, ticket)
                except grpc.aio.AioRpcError as error:
                    # Changed while it was read or planned: read it again.
                    if error.code() != grpc.StatusCode.ABORTED or attempt == _PLAN_ATTEMPTS:
                        raise
            raise AssertionError("unreachable")

    try:
        plan = run(dry_run(), remote)
    except DocumentError as error:  # an entry its API message does not take
        lines = "\n".join(f"  {problem}" for problem in error.problems)
        raise Failure(
            f"error: the document cannot be applied:\n{lines}", ExitCode.INVALID
        ) from None
    steps = plan.steps
    counts = summary(steps)
    changes = counts["create"] + counts["update"] + counts["delete"]
    _show(steps, plan.writes.notes, counts, plan.writes.revision, len(plan.pieces), remote)
    if counts["refused"] and not (skip_refused and not plan_only):
        raise Failure(
            f"error: {counts['refused']} write(s) refused (listed above): nothing "
            + ("would be" if plan_only else "was")
            + " applied; fix them"
            + ("" if plan_only else ", or pass --skip-refused to apply the rest"),
            ExitCode.INVALID,
        )
    if plan_only:
        if changes:
            sys.exit(ExitCode.DIFFERENCES)
        return
    if not changes:
        _note("No changes: the server already holds all of it.")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise Failure(
                "error: not applied: confirm with --yes (no terminal to ask at)", ExitCode.USAGE
            )
        click.confirm(f"Apply {changes} change(s)?", abort=True, err=True)
    chosen = _chosen(plan)
    if not any(chosen):
        _note("No changes left to apply.")
        return
    applied = _Applied()

    async def apply_for_real() -> None:
        async with connect(remote) as client:
            at = plan.writes.revision
            for piece in chosen:
                reply = await _batch(client, piece, False, reason, ticket, planned_at=at)
                applied.pieces.append((len(piece), reply.revision))
                at = reply.revision

    total = sum(len(piece) for piece in chosen)
    what = f"{total} write(s)" + (f" in {len(chosen)} pieces" if len(chosen) > 1 else "")
    try:
        with _working(f"applying {what}"):
            run(apply_for_real(), remote)
    except Failure as failure:
        if not applied.pieces:
            raise
        code = ExitCode(failure.exit_code)
        raise Failure(_stopped(failure, applied, chosen), code) from None
    first, last = applied.pieces[0][1], applied.pieces[-1][1]
    at = f"revision {first}" if first == last else f"revisions {first} to {last}"
    _note(f"Applied {what} at {at}.")


async def _dry_run(
    client: Client, writes: Writes, piece_size: int, reason: str | None, ticket: str | None
) -> _Plan:
    """The dry run of `writes`, piece by piece, each at the revision the writes were
    worked out from. A piece's dry run starts with the environments earlier pieces
    write (its overrides may be in them); their outcomes are the earlier piece's."""
    cut = pieces(writes.writes, size=piece_size)
    steps: list[Step] = []
    for index, piece in enumerate(cut):
        context = [w for earlier in cut[:index] for w in earlier if w.unit == ENVIRONMENTS]
        reply = await _batch(
            client, [*context, *piece], True, reason, ticket, planned_at=writes.revision
        )
        steps += plan_steps(piece, reply.outcomes[len(context) :])
    return _Plan(writes, cut, steps)


def _chosen(plan: _Plan) -> list[list[Write]]:
    """The writes to apply, piece by piece (pieces left with none left out): those
    that change something, less every unit with a refused write (--skip-refused): no
    definition without its value, no flag without its prerequisite."""
    refused = {step.unit for step in plan.steps if step.action == "refused"}
    chosen = []
    start = 0
    for piece in plan.pieces:
        steps = plan.steps[start : start + len(piece)]
        start += len(piece)
        kept = [
            write
            for write, step in zip(piece, steps, strict=True)
            if step.action not in ("unchanged", "refused") and write.unit not in refused
        ]
        if kept:
            chosen.append(kept)
    return chosen


def _stopped(failure: Failure, applied: _Applied, chosen: list[list[Write]]) -> str:
    """What a person reads when an apply stops part way: why, what was applied, what
    was not, and what to do."""
    done = len(applied.pieces)
    first, last = applied.pieces[0][1], applied.pieces[-1][1]
    left = [write for piece in chosen[done:] for write in piece]
    names = list(dict.fromkeys(f"{w.kind} {w.name.partition('@')[0]}" for w in left))
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    # A refusal (the configuration changed, a write refused) applied nothing of its
    # piece; a piece whose answer never came may have been applied all the same.
    unknown = failure.exit_code in (ExitCode.UNAVAILABLE, ExitCode.ERROR)
    not_applied = (
        f"Piece {done + 1} got no answer: it may have been applied, or not. Not applied: "
        f"piece {done + 2} and after"
        if unknown
        else f"Not applied: piece {done + 1} and after"
    )
    return (
        f"{failure.format_message()}\n"
        f"Applied {done} of {len(chosen)} pieces "
        f"({sum(n for n, _ in applied.pieces)} write(s)) at revisions {first} to {last}; "
        f"each was applied whole.\n"
        f"{not_applied} ({len(left)} write(s) from piece {done + 1} on): {shown}.\n"
        "Apply the file again: it plans what is left against what the server holds now "
        "(`switchyard diff -f` shows it)."
    )


async def _batch(
    client: Client,
    writes: Sequence[Write],
    dry_run: bool,
    reason: str | None,
    ticket: str | None,
    *,
    planned_at: int | None = None,
) -> bpb.ApplyWritesResponse:
    """Sends the writes as one batch; with `planned_at` (the revision the plan was made
    at) the server refuses them (ABORTED) if anything changed since."""
    stub = batch_pb2_grpc.BatchServiceStub(client.channel)
    request = bpb.ApplyWritesRequest(
        writes=[w.write for w in writes], dry_run=dry_run, reason=reason or "", ticket=ticket or ""
    )
    if planned_at is not None:
        request.expected_revision = planned_at
    reply: bpb.ApplyWritesResponse = await stub.ApplyWrites(request)
    return reply


def _show(
    steps: list[Step],
    notes: list[str],
    counts: dict[str, int],
    revision: int,
    piece_count: int,
    remote: RemoteOptions,
) -> None:
    data = {
        "revision": revision,
        "pieces": piece_count,
        "summary": counts,
        "steps": [_step_data(s) for s in steps if s.action != "unchanged"],
        "notes": notes,
    }

    def render() -> Text:
        text = Text()
        for step in steps:
            if step.action == "unchanged":
                continue
            mark, style = _STYLES[step.action]
            text.append(f"{mark} {step.action} {step.kind} {step.name}\n", style=style)
            if step.refusal is not None:
                text.append(f"    {step.refusal.message}\n", style="red")
                for problem in step.refusal.fields:
                    text.append(f"      {problem.field}: {problem.description}\n", style="red")
            for change in step.changes:
                old, new = value_of(change, "old_value"), value_of(change, "new_value")
                for line in patch_lines(old, new, list_of(change.diff)):
                    text.append("  ")
                    text.append_text(line)
                    text.append("\n")
            if step.details_left_out:
                text.append("    (its diff did not fit in the server's answer)\n", style="dim")
        for note in notes:
            text.append(f"note: {note}\n", style="yellow")
        text.append(
            "Plan: {create} to create, {update} to update, {delete} to delete, "
            "{unchanged} unchanged, {refused} refused.".format(**counts),
            style="bold",
        )
        if piece_count > 1:
            text.append(f" In {piece_count} pieces.", style="bold")
        return text

    emit(data, remote.output, render)


def _step_data(step: Step) -> dict[str, Any]:
    """A step as `-o json|yaml` shows it."""
    data: dict[str, Any] = {"kind": step.kind, "name": step.name, "action": step.action}
    diff = [op for change in step.changes for op in list_of(change.diff)]
    if diff:
        data["diff"] = diff
    if step.refusal is not None:
        data["refusal"] = {
            "message": step.refusal.message,
            "fields": {f.field: f.description for f in step.refusal.fields},
        }
    return data


def _working(message: str) -> contextlib.AbstractContextManager[object]:
    """A spinner on a terminal while one long call runs; nothing in a pipe."""
    if not sys.stderr.isatty():
        return contextlib.nullcontext()
    return console(err=True).status(message)


def _note(message: str) -> None:
    click.echo(message, err=True)


@click.command("schema")
def schema() -> None:
    """Print the JSON Schema of the configuration document (what `export` writes and
    `apply -f` reads), for editors to validate the file with."""
    click.echo(to_json(document_schema()))


__all__ = ["apply", "export", "file_plan", "import_", "schema"]
