"""Rate limits: each with its numbers, its action and how often it has triggered, and
an edit form for the numbers and the action. A save is `UpsertRateLimit` of the limit as
read with the form's changes, at the version read (`expected_version`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from switchyard.client import all_pages, enum_name
from switchyard.console.formatting import moment
from switchyard.console.gateway import Api, Refusal, unless_gone
from switchyard.console.web import render, signed_in
from switchyard.gen.v1 import rate_limit_pb2 as rpb

ACTIONS = [
    (enum_name(rpb.LimitAction, number), number)
    for number in rpb.LimitAction.values()
    if number != rpb.LIMIT_ACTION_UNSPECIFIED
]
NUMBERS = ("max_requests", "time_window_seconds", "burst_size")
"""The whole-number fields the form edits."""


@dataclass
class LimitRow:
    limit: rpb.RateLimit
    editing: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    problem: str | None = None
    done: str | None = None

    @property
    def scope(self) -> str:
        return enum_name(rpb.ScopeType, self.limit.scope_type)

    @property
    def action(self) -> str:
        return enum_name(rpb.LimitAction, self.limit.action_on_limit)

    @property
    def active(self) -> bool:
        return not self.limit.HasField("is_active") or self.limit.is_active

    @property
    def last_triggered(self) -> object:
        return moment(self.limit.last_triggered)


async def limit_list(request: Request) -> Response:
    _, api = signed_in(request)
    limits, revision = await all_pages(
        lambda page: api(api.limits.ListRateLimits, page),
        rpb.ListRateLimitsRequest(include_inactive=True),
        "rate_limits",
    )
    return render(
        request,
        "limits.html",
        rows=[LimitRow(limit) for limit in limits],
        actions=ACTIONS,
        revision=revision,
        section="Limits",
    )


async def _get(api: Api, key: str) -> rpb.RateLimit:
    reply = await api(api.limits.GetRateLimit, rpb.GetRateLimitRequest(limit_key=key))
    limit: rpb.RateLimit = reply.rate_limit
    return limit


async def limit_row(request: Request) -> Response:
    """The row as it is now (`?edit=1`: as an edit form)."""
    _, api = signed_in(request)
    limit = await unless_gone(_get(api, request.path_params["key"]))
    if limit is None:
        return Response(status_code=200)  # deleted: the row goes
    row = LimitRow(limit, editing=request.query_params.get("edit") == "1")
    return render(request, "limit_row.html", row=row, actions=ACTIONS)


def _apply(limit: rpb.RateLimit, form: FormData, row: LimitRow) -> None:
    """Copies the form's fields onto `limit`, noting each that is not a whole number."""
    for name in NUMBERS:
        text = str(form.get(name) or "").strip()
        try:
            setattr(limit, name, int(text or "0"))
        except ValueError:
            row.errors[name] = "a whole number"
    action = str(form.get("action_on_limit") or "")
    numbers = dict(ACTIONS)
    if action in numbers:
        limit.action_on_limit = numbers[action]
    limit.is_active = form.get("is_active") == "1"


async def save_limit(request: Request) -> Response:
    _, api = signed_in(request)
    key = request.path_params["key"]
    form = await request.form()
    current = await _get(api, key)
    changed = rpb.RateLimit()
    changed.CopyFrom(current)
    row = LimitRow(changed, editing=True)
    _apply(changed, form, row)
    if row.errors:
        return render(request, "limit_row.html", row=row, actions=ACTIONS)
    try:
        version = int(str(form.get("version") or ""))
    except ValueError:
        version = current.version
    try:
        reply = await api(
            api.limits.UpsertRateLimit,
            rpb.UpsertRateLimitRequest(
                rate_limit=changed,
                expected_version=version,
                reason=str(form.get("reason") or "").strip(),
            ),
        )
    except Refusal as refusal:
        for name, description in refusal.fields.items():
            row.errors[name.rpartition(".")[2]] = description
        row.problem = (
            "Someone changed this limit since the page was read: cancel to see it as it "
            "is now, then edit again."
            if refusal.code == grpc.StatusCode.ABORTED
            else str(refusal)
        )
        return render(request, "limit_row.html", row=row, actions=ACTIONS)
    done = LimitRow(reply.rate_limit, done=f"Saved at revision {reply.revision}.")
    return render(request, "limit_row.html", row=done, actions=ACTIONS)


__all__ = ["ACTIONS", "LimitRow", "limit_list", "limit_row", "save_limit"]
