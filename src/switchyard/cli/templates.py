"""`switchyard template apply`: set every value of a template in one environment, all
or nothing, and show what happened (or would happen) to each key."""

from __future__ import annotations

import click
from rich.text import Text

from switchyard.cli.options import environment_option, reason_option, ticket_option
from switchyard.cli.output import emit, quoted, table
from switchyard.cli.plain import enum_name, value_of
from switchyard.cli.remote import RemoteOptions, connect, remote_options, run
from switchyard.gen.v1 import config_pb2 as pb

_STYLES = {"updated": "green", "refused": "red", "unchanged": "dim"}


@click.group()
def template() -> None:
    """Configuration templates: named sets of values applied together."""


@template.command("apply")
@click.argument("name")
@environment_option("The environment to apply in; the base values without.")
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@click.option(
    "--best-effort", is_flag=True, help="Apply the values that validate; report the rest."
)
@reason_option
@ticket_option
@remote_options
def template_apply(
    name: str,
    environment: str | None,
    dry_run: bool,
    best_effort: bool,
    reason: str | None,
    ticket: str | None,
    remote: RemoteOptions,
) -> None:
    """Apply template NAME. Without --best-effort one refused value refuses them all
    (exit 4, each refusal listed).

    JSON: template, environment, dry_run, applied, revision, results: [{key, outcome
    (unchanged, updated, refused), old_value, new_value, error}]."""
    request = pb.ApplyTemplateRequest(
        template_name=name,
        environment=environment or "",
        dry_run=dry_run,
        best_effort=best_effort,
        reason=reason or "",
        ticket=ticket or "",
    )

    async def call() -> pb.ApplyTemplateResponse:
        async with connect(remote) as client:
            reply: pb.ApplyTemplateResponse = await client.config.ApplyTemplate(request)
            return reply

    reply = run(call(), remote)
    results = [
        {
            "key": item.key,
            "outcome": enum_name(pb.TemplateItemOutcome, item.outcome),
            "old_value": value_of(item, "old_value"),
            "new_value": value_of(item, "new_value"),
            "error": item.error or None,
        }
        for item in reply.results
    ]
    data = {
        "template": name,
        "environment": environment,
        "dry_run": reply.dry_run,
        "applied": reply.applied,
        "revision": reply.revision,
        "results": results,
    }
    state = "dry run" if reply.dry_run else ("applied" if reply.applied else "nothing to change")
    emit(
        data,
        remote.output,
        lambda: table(
            ["KEY", "OUTCOME", "OLD", "NEW", "ERROR"],
            [
                [
                    r["key"],
                    Text(r["outcome"], style=_STYLES.get(r["outcome"], "")),
                    quoted(r["old_value"]),
                    quoted(r["new_value"]),
                    r["error"] or "",
                ]
                for r in results
            ],
            title=f"template {name}: {state} (revision {reply.revision})",
        ),
    )


__all__ = ["template", "template_apply"]
