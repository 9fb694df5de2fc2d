"""Change requests: writes to protected environments waiting for a second person.

Each shows what it would write next to what is there now, and is approved
(`ApproveChange`, naming the content digest the reviewer saw, so an amendment made
meanwhile is not approved unseen) or rejected. Who may approve what is the API's
decision: a proposer approving their own request is told why not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format
from starlette.requests import Request
from starlette.responses import Response

from switchyard.client import enum_name
from switchyard.console.catalog import columns_of
from switchyard.console.formatting import DiffLine, diff_lines, moment, value_of
from switchyard.console.gateway import Api, Refusal
from switchyard.console.web import render, signed_in
from switchyard.gen.v1 import change_pb2 as cpb
from switchyard.gen.v1 import config_pb2 as pb

DECIDED_SHOWN = 20
"""Decided requests the page lists under the pending ones."""


@dataclass
class ChangeView:
    request: cpb.ChangeRequest
    status: str
    kind: str
    summary: str
    diff: list[DiffLine]
    details: str  # the whole write, as JSON, for writes that are not a value
    problem: str | None = None
    done: str | None = None

    @property
    def proposed_at(self) -> object:
        return moment(self.request.proposed_at)

    @property
    def decided_at(self) -> object:
        return moment(self.request.decided_at)


async def _view(api: Api, request: cpb.ChangeRequest) -> ChangeView:
    write = request.write
    which = write.WhichOneof("write") or "write"
    status = enum_name(cpb.ChangeRequestStatus, request.status)
    kind = enum_name(pb.ChangeKind, request.kind)
    details = json_format.MessageToJson(getattr(write, which), indent=2) if which else ""
    diff: list[DiffLine] = []
    summary = which.replace("_", " ")
    if which == "set_value":
        layer = write.set_value.environment or "base"
        summary = f"set {write.set_value.key} in {layer}"
        if status == "pending":
            now: Any = await _current(api, write.set_value)
            diff = diff_lines(now, value_of(write.set_value, "value"))
    return ChangeView(request, status, kind, summary, diff, details)


async def _current(api: Api, write: pb.SetValueRequest) -> Any:
    """The layer's value now, which the request would replace."""
    try:
        got = await api(api.config.GetConfig, pb.GetConfigRequest(key=write.key))
    except Refusal:
        return None
    if not write.environment:
        return value_of(got.config, "value")
    ranked = sorted(
        (o for o in got.overrides if o.environment == write.environment and o.is_active),
        key=lambda o: o.priority,
    )
    return value_of(ranked[-1], "value") if ranked else None


async def change_list(request: Request) -> Response:
    session, api = signed_in(request)
    _, revision = await columns_of(api)  # the lists carry no revision: read it first
    pending = await api(
        api.changes.ListChangeRequests,
        cpb.ListChangeRequestsRequest(status=cpb.CHANGE_REQUEST_STATUS_PENDING, page_size=100),
    )
    every = await api(api.changes.ListChangeRequests, cpb.ListChangeRequestsRequest(page_size=100))
    decided = [r for r in every.change_requests if r.status != cpb.CHANGE_REQUEST_STATUS_PENDING]
    decided.sort(key=lambda r: r.decided_at.ToDatetime(), reverse=True)
    views = [await _view(api, r) for r in pending.change_requests]
    past = [await _view(api, r) for r in decided[:DECIDED_SHOWN]]
    return render(
        request,
        "changes.html",
        pending=views,
        decided=past,
        me=session.user_id,
        revision=revision,
        section="Changes",
    )


async def _get(api: Api, request_id: str) -> cpb.ChangeRequest:
    reply = await api(
        api.changes.GetChangeRequest, cpb.GetChangeRequestRequest(request_id=request_id)
    )
    change: cpb.ChangeRequest = reply.change_request
    return change


async def decide(request: Request) -> Response:
    """Approves (`decision=approve`) or rejects a request; the card again, as it is."""
    session, api = signed_in(request)
    request_id = request.path_params["id"]
    form = await request.form()
    reason = str(form.get("reason") or "").strip()
    ticket = str(form.get("ticket") or "").strip()
    approving = form.get("decision") == "approve"
    try:
        if approving:
            await api(
                api.changes.ApproveChange,
                cpb.ApproveChangeRequest(
                    request_id=request_id,
                    content_digest=str(form.get("content_digest") or ""),
                    reason=reason,
                    ticket=ticket,
                ),
            )
        else:
            await api(
                api.changes.RejectChange,
                cpb.RejectChangeRequest(request_id=request_id, reason=reason, ticket=ticket),
            )
    except Refusal as refusal:
        view = await _view(api, await _get(api, request_id))
        view.problem = _why(refusal)
        return render(request, "change_card.html", change=view, me=session.user_id)
    view = await _view(api, await _get(api, request_id))
    view.done = "Approved and applied." if approving else "Rejected."
    if approving and view.request.applied_revision:
        view.done = f"Approved and applied at revision {view.request.applied_revision}."
    return render(request, "change_card.html", change=view, me=session.user_id)


async def change_card(request: Request) -> Response:
    """One request as it is now: what a live change of it refreshes."""
    session, api = signed_in(request)
    view = await _view(api, await _get(api, request.path_params["id"]))
    return render(request, "change_card.html", change=view, me=session.user_id)


def _why(refusal: Refusal) -> str:
    if refusal.code == grpc.StatusCode.PERMISSION_DENIED:
        return f"You may not decide this request: {refusal.message}"
    return str(refusal)


__all__ = ["ChangeView", "change_card", "change_list", "decide"]
