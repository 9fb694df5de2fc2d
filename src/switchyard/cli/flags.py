"""`switchyard flag ...`: evaluate a feature flag for someone, list the flags, and the
kill switch (`enable`, `disable`)."""

from __future__ import annotations

from typing import Any

import click
from google.protobuf import struct_pb2

from switchyard.cli.options import environment_option, reason_option, ticket_option
from switchyard.cli.output import emit, fields, table
from switchyard.cli.plain import enum_name, value_of
from switchyard.cli.remote import RemoteOptions, connect, remote_options, run
from switchyard.cli.values import parse_value
from switchyard.client import all_pages, to_value
from switchyard.gen.v1 import flag_pb2 as fpb


@click.group()
def flag() -> None:
    """Feature flags: evaluate, list, and turn on or off everywhere."""


def _attribute(
    ctx: click.Context, param: click.Parameter, given: tuple[str, ...]
) -> struct_pb2.Struct:
    """`--attr k=v` options as the evaluation context's attributes; values are JSON when
    they parse (plan=pro, age=42, beta=true)."""
    attributes = struct_pb2.Struct()
    for text in given:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{text!r} is not NAME=VALUE", ctx, param)
        attributes.fields[name].CopyFrom(to_value(parse_value(value)))
    return attributes


@flag.command("eval")
@click.argument("key")
@click.option("--user", default="", help="The user id to evaluate for.")
@click.option("--role", "roles", multiple=True, help="A role of the user (repeatable).")
@click.option("--group", "groups", multiple=True, help="A group of the user (repeatable).")
@environment_option("The environment to evaluate in.")
@click.option(
    "--attr",
    "attributes",
    multiple=True,
    metavar="NAME=VALUE",
    callback=_attribute,
    help="An attribute for targeting rules (repeatable); VALUE is JSON when it parses.",
)
@remote_options
def flag_eval(
    key: str,
    user: str,
    roles: tuple[str, ...],
    groups: tuple[str, ...],
    environment: str | None,
    attributes: struct_pb2.Struct,
    remote: RemoteOptions,
) -> None:
    """Decide flag KEY for a user, and say why.

    JSON: flag_key, enabled, reason, variant, value, rule_id, revision."""
    request = fpb.EvaluateFlagRequest(
        flag_key=key,
        context=fpb.EvaluationContext(
            user_id=user,
            roles=roles,
            groups=groups,
            environment=environment or "",
            attributes=attributes,
        ),
    )

    async def call() -> fpb.EvaluateFlagResponse:
        async with connect(remote) as client:
            reply: fpb.EvaluateFlagResponse = await client.flags.EvaluateFlag(request)
            return reply

    reply = run(call(), remote)
    data = {
        "flag_key": reply.flag_key,
        "enabled": reply.enabled,
        "reason": enum_name(fpb.EvaluationReason, reply.reason),
        "variant": reply.variant,
        "value": value_of(reply, "value"),
        "rule_id": reply.rule_id or None,
        "revision": reply.revision,
    }
    emit(data, remote.output, lambda: fields(data, title=f"flag {key}"))


@flag.command("list")
@click.option("--category", default="", help="Only flags of this category.")
@click.option("--team", default="", help="Only flags this team owns.")
@click.option("--include-inactive", is_flag=True, help="Show retired flags too.")
@remote_options
def flag_list(category: str, team: str, include_inactive: bool, remote: RemoteOptions) -> None:
    """List the flags.

    JSON: {flags: [{key, name, is_enabled, rollout_percentage, rollout_strategy,
    feature_category, owner_team, is_active, stale, version}], revision}."""
    request = fpb.ListFlagsRequest(
        feature_category=category, owner_team=team, include_inactive=include_inactive
    )

    async def call() -> tuple[list[fpb.FeatureFlag], int]:
        async with connect(remote) as client:
            return await all_pages(client.flags.ListFlags, request, "flags")

    flags, revision = run(call(), remote)
    rows = [_flag(item) for item in flags]
    emit(
        {"flags": rows, "revision": revision},
        remote.output,
        lambda: table(
            ["KEY", "ENABLED", "ROLLOUT", "STRATEGY", "CATEGORY", "TEAM", "VERSION"],
            [
                [
                    r["key"],
                    r["is_enabled"],
                    f"{r['rollout_percentage']}%",
                    r["rollout_strategy"],
                    r["feature_category"],
                    r["owner_team"],
                    r["version"],
                ]
                for r in rows
            ],
            title=f"{len(rows)} flag(s) at revision {revision}",
        ),
    )


def _flag(item: fpb.FeatureFlag) -> dict[str, Any]:
    return {
        "key": item.key,
        "name": item.name,
        "is_enabled": item.is_enabled,
        "rollout_percentage": item.rollout_percentage,
        "rollout_strategy": enum_name(fpb.RolloutStrategy, item.rollout_strategy),
        "feature_category": item.feature_category,
        "owner_team": item.owner_team,
        "is_active": item.is_active if item.HasField("is_active") else True,
        "stale": item.stale,
        "version": item.version,
    }


def _switch(enabled: bool) -> click.Command:
    """`flag enable` or `flag disable`: the same call, one way or the other."""
    verb = "enable" if enabled else "disable"
    summary = (
        f"Turn flag KEY {'on' if enabled else 'off'} everywhere (the kill switch).\n\n"
        "JSON: the flag as `flag list` shows it, and revision."
    )

    @flag.command(verb, help=summary)
    @click.argument("key")
    @reason_option
    @ticket_option
    @remote_options
    def switch(key: str, reason: str | None, ticket: str | None, remote: RemoteOptions) -> None:
        request = fpb.SetFlagEnabledRequest(
            flag_key=key, enabled=enabled, reason=reason or "", ticket=ticket or ""
        )

        async def call() -> fpb.SetFlagEnabledResponse:
            async with connect(remote) as client:
                reply: fpb.SetFlagEnabledResponse = await client.flags.SetFlagEnabled(request)
                return reply

        reply = run(call(), remote)
        data = {**_flag(reply.flag), "revision": reply.revision}
        emit(data, remote.output, lambda: fields(data, title=f"flag {key} {verb}d"))

    return switch


flag_enable = _switch(enabled=True)
flag_disable = _switch(enabled=False)

__all__ = ["flag", "flag_disable", "flag_enable", "flag_eval", "flag_list"]
