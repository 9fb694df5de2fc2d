"""Flags: each with its kill switch, its rollout percentage and how often it is
evaluated. The switch is `SetFlagEnabled`; the percentage is `UpsertFlag` of the flag as
read, at the version read (`expected_version`), so a concurrent change is not lost."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from starlette.requests import Request
from starlette.responses import Response

from switchyard.client import all_pages, enum_name
from switchyard.console.formatting import moment
from switchyard.console.gateway import Api, Refusal, unless_gone
from switchyard.console.web import render, signed_in
from switchyard.gen.v1 import flag_pb2 as fpb


@dataclass
class FlagRow:
    flag: fpb.FeatureFlag
    strategy: str
    problem: str | None = None
    done: str | None = None

    @property
    def last_evaluated(self) -> object:
        return moment(self.flag.last_evaluated)


def _row(flag: fpb.FeatureFlag) -> FlagRow:
    return FlagRow(flag, enum_name(fpb.RolloutStrategy, flag.rollout_strategy))


async def flag_list(request: Request) -> Response:
    _, api = signed_in(request)
    flags, revision = await all_pages(
        lambda page: api(api.flags.ListFlags, page), fpb.ListFlagsRequest(), "flags"
    )
    return render(
        request, "flags.html", rows=[_row(f) for f in flags], revision=revision, section="Flags"
    )


async def _get(api: Api, key: str) -> fpb.FeatureFlag:
    reply = await api(api.flags.GetFlag, fpb.GetFlagRequest(flag_key=key))
    flag: fpb.FeatureFlag = reply.flag
    return flag


async def flag_row(request: Request) -> Response:
    _, api = signed_in(request)
    flag = await unless_gone(_get(api, request.path_params["key"]))
    if flag is None:
        return Response(status_code=200)  # deleted: the row goes
    return render(request, "flag_row.html", row=_row(flag))


async def set_enabled(request: Request) -> Response:
    """The kill switch. The reason is what the browser's prompt asked for."""
    _, api = signed_in(request)
    key = request.path_params["key"]
    form = await request.form()
    enabled = form.get("enabled") == "1"
    reason = request.headers.get("hx-prompt") or str(form.get("reason") or "")
    try:
        reply = await api(
            api.flags.SetFlagEnabled,
            fpb.SetFlagEnabledRequest(flag_key=key, enabled=enabled, reason=reason.strip()),
        )
    except Refusal as refusal:
        row = _row(await _get(api, key))
        row.problem = str(refusal)
        return render(request, "flag_row.html", row=row)
    row = _row(reply.flag)
    row.done = f"{'On' if enabled else 'Off'} at revision {reply.revision}."
    return render(request, "flag_row.html", row=row)


async def set_rollout(request: Request) -> Response:
    _, api = signed_in(request)
    key = request.path_params["key"]
    form = await request.form()
    flag = await _get(api, key)
    row = _row(flag)
    try:
        percentage = int(str(form.get("rollout_percentage") or ""))
        version = int(str(form.get("version") or ""))
    except ValueError:
        row.problem = "The rollout is a whole number from 0 to 100."
        return render(request, "flag_row.html", row=row)
    changed = fpb.FeatureFlag()
    changed.CopyFrom(flag)
    changed.rollout_percentage = percentage
    try:
        reply = await api(
            api.flags.UpsertFlag,
            fpb.UpsertFlagRequest(
                flag=changed,
                expected_version=version,
                reason=str(form.get("reason") or "").strip(),
            ),
        )
    except Refusal as refusal:
        row.problem = (
            "Someone changed this flag since the page was read; this is how it is now."
            if refusal.code == grpc.StatusCode.ABORTED
            else str(refusal)
        )
        return render(request, "flag_row.html", row=row)
    row = _row(reply.flag)
    row.done = f"Rollout {percentage}% at revision {reply.revision}."
    return render(request, "flag_row.html", row=row)


__all__ = ["FlagRow", "flag_list", "flag_row", "set_enabled", "set_rollout"]
