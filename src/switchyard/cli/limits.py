"""`switchyard limit ...`: ask whether a request may through (`check`, counting it as
a real request would) and list the limits."""

from __future__ import annotations

from typing import Any

import click

from switchyard.cli.options import environment_option
from switchyard.cli.output import emit, fields, table
from switchyard.cli.plain import enum_name, seconds
from switchyard.cli.remote import RemoteOptions, connect, remote_options, run
from switchyard.client import all_pages
from switchyard.gen.v1 import rate_limit_pb2 as rpb


@click.group()
def limit() -> None:
    """Rate limits: check a request against them, list them."""


@limit.command("check")
@click.argument("limit_key", required=False, default="")
@click.option("--user", default="", help="The user making the request.")
@click.option("--role", "roles", multiple=True, help="A role of the user (repeatable).")
@click.option("--ip", default="", help="The client's IP address.")
@click.option("--api-key", default="", help="The API key the request came with.")
@click.option("--endpoint", default="", help="The endpoint called, e.g. /api/orders.")
@click.option("--method", default="", help="The HTTP method, e.g. POST.")
@click.option("--service", default="", help="The service called.")
@click.option(
    "--hits", type=click.IntRange(min=1), default=1, show_default=True, help="Requests to count."
)
@environment_option("The environment whose limits apply.")
@remote_options
def limit_check(
    limit_key: str,
    user: str,
    roles: tuple[str, ...],
    ip: str,
    api_key: str,
    endpoint: str,
    method: str,
    service: str,
    hits: int,
    environment: str | None,
    remote: RemoteOptions,
) -> None:
    """Count HITS requests of the subject the options describe against the limits that
    match it (only LIMIT_KEY when given), and show the decision. This counts: it uses
    up the allowance as real requests would.

    JSON: allowed, over_limit, exempt, action, limit_key, limit, remaining,
    window_seconds, reset_after_seconds, retry_after_seconds, delay_seconds,
    default_applied, degraded, custom_error_message, revision."""
    request = rpb.CheckRateLimitRequest(
        limit_key=limit_key,
        user_id=user,
        roles=roles,
        ip=ip,
        api_key=api_key,
        endpoint=endpoint,
        method=method,
        service=service,
        hits=hits,
        environment=environment or "",
    )

    async def call() -> rpb.CheckRateLimitResponse:
        async with connect(remote) as client:
            reply: rpb.CheckRateLimitResponse = await client.rate_limits.CheckRateLimit(request)
            return reply

    reply = run(call(), remote)
    data = {
        "allowed": reply.allowed,
        "over_limit": reply.over_limit,
        "exempt": reply.exempt,
        "action": enum_name(rpb.LimitAction, reply.action),
        "limit_key": reply.limit_key or None,
        "limit": reply.limit,
        "remaining": reply.remaining,
        "window_seconds": reply.window_seconds,
        "reset_after_seconds": seconds(reply.reset_after),
        "retry_after_seconds": seconds(reply.retry_after),
        "delay_seconds": seconds(reply.delay),
        "default_applied": reply.default_applied,
        "degraded": reply.degraded,
        "custom_error_message": reply.custom_error_message or None,
        "revision": reply.revision,
    }
    verdict = "allowed" if reply.allowed else "denied"
    emit(data, remote.output, lambda: fields(data, title=verdict))


@limit.command("list")
@environment_option("Only limits of ENV.")
@click.option("--include-inactive", is_flag=True, help="Show inactive limits too.")
@remote_options
def limit_list(environment: str | None, include_inactive: bool, remote: RemoteOptions) -> None:
    """List the rate limits.

    JSON: {rate_limits: [{key, name, max_requests, time_window_seconds, burst_size,
    scope_type, scope_pattern, action_on_limit, environment, priority, is_active,
    version}], revision}."""
    request = rpb.ListRateLimitsRequest(
        environment=environment or "", include_inactive=include_inactive
    )

    async def call() -> tuple[list[rpb.RateLimit], int]:
        async with connect(remote) as client:
            return await all_pages(client.rate_limits.ListRateLimits, request, "rate_limits")

    limits, revision = run(call(), remote)
    rows = [_limit(item) for item in limits]
    emit(
        {"rate_limits": rows, "revision": revision},
        remote.output,
        lambda: table(
            ["KEY", "LIMIT", "SCOPE", "PATTERN", "ACTION", "ENV", "PRIORITY"],
            [
                [
                    r["key"],
                    f"{r['max_requests']}/{r['time_window_seconds']}s",
                    r["scope_type"],
                    r["scope_pattern"],
                    r["action_on_limit"],
                    r["environment"] or "",
                    r["priority"],
                ]
                for r in rows
            ],
            title=f"{len(rows)} limit(s) at revision {revision}",
        ),
    )


def _limit(item: rpb.RateLimit) -> dict[str, Any]:
    return {
        "key": item.key,
        "name": item.name,
        "max_requests": item.max_requests,
        "time_window_seconds": item.time_window_seconds,
        "burst_size": item.burst_size,
        "scope_type": enum_name(rpb.ScopeType, item.scope_type),
        "scope_pattern": item.scope_pattern,
        "action_on_limit": enum_name(rpb.LimitAction, item.action_on_limit),
        "environment": item.environment or None,
        "priority": item.priority if item.HasField("priority") else 100,
        "is_active": item.is_active if item.HasField("is_active") else True,
        "version": item.version,
    }


__all__ = ["limit", "limit_check", "limit_list"]
