"""One key: its definition, its value in every layer, an edit form, its history as
diffs, and rollback with a preview.

Edits go to the API as they would from any client: `SetValue` (or `ProposeChange` for
an environment that needs a second person's approval), with the version the page was
read at as `expected_version`, so a change someone else made meanwhile is reported
rather than overwritten. Whatever the API refuses comes back at the field it names.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import grpc
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from switchyard.client import enum_name, from_value, to_value
from switchyard.console.catalog import Column, columns_of, resolve_one
from switchyard.console.formatting import (
    DiffLine,
    Layer,
    NotJson,
    diff_lines,
    display,
    editable,
    layer,
    moment,
    parse_input,
    value_of,
)
from switchyard.console.gateway import Api, Refusal
from switchyard.console.web import render, signed_in
from switchyard.gen.v1 import change_pb2 as cpb
from switchyard.gen.v1 import config_pb2 as pb

HISTORY_ROWS = 50
"""History entries the page shows, newest first."""


@dataclass(frozen=True)
class LayerView:
    """A key in one layer: what a read there answers, and the layer's own value."""

    column: Column
    effective: str
    layer: Layer
    has_own: bool  # whether the layer holds a value of its own
    own_value: Any  # the base value, or the environment's winning override
    priority: int | None

    @property
    def own(self) -> str | None:
        return display(self.own_value) if self.has_own else None


@dataclass(frozen=True)
class KeyView:
    definition: pb.ConfigDefinition
    type: str
    layers: tuple[LayerView, ...]
    revision: int

    @property
    def key(self) -> str:
        return self.definition.key

    @property
    def default(self) -> str | None:
        if not self.definition.HasField("default_value"):
            return None
        return display(value_of(self.definition, "default_value"))

    @property
    def allowed(self) -> list[str]:
        return [display(from_value(v)) for v in self.definition.validation.allowed_values]

    def layer(self, environment: str) -> LayerView | None:
        return next((v for v in self.layers if v.column.environment == environment), None)


@dataclass
class EditForm:
    """The edit form of one layer, as shown and as submitted."""

    key: str
    type: str
    environment: str
    text: str
    expected_version: int
    protected: bool
    reason: str = ""
    ticket: str = ""
    clear: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # what is wrong with the write as a whole
    propose: bool = False  # the write must be proposed: offer that
    done: str | None = None  # what happened, once it did

    @property
    def layer_title(self) -> str:
        return self.environment or "base"


@dataclass(frozen=True)
class HistoryView:
    revision: int
    action: str
    layer: str
    environment: str
    changed_by: str
    role: str
    approved_by: str
    when: Any
    reason: str
    ticket: str
    diff: list[DiffLine]
    version: int
    value_change: bool  # a layer's value, not the definition
    can_roll_back: bool


async def read_key(api: Api, key: str) -> KeyView:
    """Raises Refusal NOT_FOUND for an unknown key."""
    (columns, revision), got = await asyncio.gather(
        columns_of(api), api(api.config.GetConfig, pb.GetConfigRequest(key=key))
    )
    definition = got.config
    answers = await asyncio.gather(*(resolve_one(api, key, c.environment) for c in columns))
    own: dict[str, tuple[Any, int]] = {}
    for override in sorted(got.overrides, key=lambda o: o.priority):
        if override.is_active:
            own[override.environment] = (value_of(override, "value"), override.priority)
    layers = []
    for column, answer in zip(columns, answers, strict=True):
        if column.environment:
            value, priority = own.get(column.environment, (None, None))
            has_own = column.environment in own
        else:
            value, priority = value_of(definition, "value"), None
            has_own = definition.HasField("value")
        layers.append(
            LayerView(
                column=column,
                effective=display(value_of(answer, "value")) if answer else "",
                layer=layer(answer) if answer else Layer("—", "unset", "not readable"),
                has_own=has_own,
                own_value=value,
                priority=priority,
            )
        )
    return KeyView(definition, enum_name(pb.ConfigType, definition.type), tuple(layers), revision)


async def read_history(api: Api, key: str) -> list[HistoryView]:
    reply = await api(api.config.GetHistory, pb.GetHistoryRequest(key=key, page_size=HISTORY_ROWS))
    entries = []
    for entry in reply.entries:
        action = enum_name(pb.HistoryAction, entry.action)
        entries.append(
            HistoryView(
                revision=entry.revision,
                action=action,
                layer=entry.environment or "base",
                environment=entry.environment,
                changed_by=entry.changed_by_username or entry.changed_by,
                role=entry.changed_by_role,
                approved_by=entry.approved_by_username or entry.approved_by,
                when=moment(entry.changed_at),
                reason=entry.reason,
                ticket=entry.ticket,
                diff=diff_lines(value_of(entry, "old_value"), value_of(entry, "new_value")),
                version=entry.version,
                value_change=entry.value_change,
                can_roll_back=entry.value_change and entry.version > 1,
            )
        )
    return entries


def _form(view: KeyView, environment: str) -> EditForm:
    """The form of a layer, holding the layer's own value (empty when it has none)."""
    shown = view.layer(environment)
    return EditForm(
        key=view.definition.key,
        type=view.type,
        environment=environment,
        text=editable(shown.own_value, view.type) if shown and shown.has_own else "",
        expected_version=view.definition.version,
        protected=bool(shown and shown.column.protected),
    )


async def key_page(request: Request) -> Response:
    _, api = signed_in(request)
    key = request.path_params["key"]
    view, history = await asyncio.gather(read_key(api, key), read_history(api, key))
    environment = request.query_params.get("environment")
    form = _form(view, environment) if environment is not None and view.layer(environment) else None
    return render(
        request,
        "key.html",
        key=key,
        view=view,
        history=history,
        form=form,
        revision=view.revision,
        section="Keys",
    )


async def key_values(request: Request) -> Response:
    _, api = signed_in(request)
    view = await read_key(api, request.path_params["key"])
    return render(request, "key_values.html", view=view, revision=view.revision)


async def key_history(request: Request) -> Response:
    _, api = signed_in(request)
    key = request.path_params["key"]
    history = await read_history(api, key)
    return render(request, "key_history.html", key=key, history=history)


async def edit_form(request: Request) -> Response:
    _, api = signed_in(request)
    view = await read_key(api, request.path_params["key"])
    environment = request.query_params.get("environment", "")
    if view.layer(environment) is None:
        raise Refusal(grpc.StatusCode.NOT_FOUND, f"no environment {environment!r}")
    return render(request, "key_form.html", form=_form(view, environment))


def _submitted(form_data: FormData, key: str) -> EditForm:
    def text(name: str) -> str:
        return str(form_data.get(name) or "")

    try:
        expected = int(text("expected_version"))
    except ValueError:
        expected = 0
    return EditForm(
        key=key,
        type=text("type"),
        environment=text("environment"),
        text=text("value"),
        expected_version=expected,
        protected=text("protected") == "1",
        reason=text("reason").strip(),
        ticket=text("ticket").strip(),
        clear=text("clear") == "1",
    )


async def save_value(request: Request) -> Response:
    """SetValue, or ProposeChange when the form says so; the form again, with what the
    API said at its fields, or with what happened."""
    _, api = signed_in(request)
    key = request.path_params["key"]
    submitted = await request.form()
    form = _submitted(submitted, key)
    try:
        value = None if form.clear else parse_input(form.text, form.type)
    except NotJson as error:
        form.errors["value"] = str(error)
        return render(request, "key_form.html", form=form)
    write = pb.SetValueRequest(
        key=key,
        environment=form.environment,
        value=to_value(value),
        reason=form.reason,
        ticket=form.ticket,
        expected_version=form.expected_version,
    )
    try:
        if submitted.get("propose") == "1":
            proposed = await api(
                api.changes.ProposeChange,
                cpb.ProposeChangeRequest(
                    write=cpb.ProposedWrite(set_value=write),
                    reason=form.reason,
                    ticket=form.ticket,
                ),
            )
            form.done = (
                f"Proposed as change request {proposed.change_request.id[:8]}: it applies "
                "once someone else approves it."
            )
            return render(request, "key_form.html", form=form, proposed=proposed.change_request)
        reply = await api(api.config.SetValue, write)
    except Refusal as refusal:
        _explain(form, refusal)
        return render(request, "key_form.html", form=form)
    form.expected_version = int(reply.version)
    form.done = (
        f"Saved at revision {reply.revision}."
        if reply.changed
        else "Nothing changed: the layer already holds that value."
    )
    if reply.requires_restart:
        form.done += " Its readers must restart to see it."
    response = render(request, "key_form.html", form=form)
    response.headers["HX-Trigger"] = "key-changed"
    return response


def _explain(form: EditForm, refusal: Refusal) -> None:
    """Puts what the API said where the user looks for it: a field it names at that
    field, a write that needs approval as an offer to propose it, anything else above."""
    for name, description in refusal.fields.items():
        target = "value" if name == "value" or name.endswith(".value") else name
        if target in {"value", "reason", "ticket"}:
            form.errors[target] = description
    if refusal.code == grpc.StatusCode.FAILED_PRECONDITION and "ProposeChange" in refusal.message:
        form.propose = True
        form.problem = (
            f"{form.layer_title} is protected: this change needs a second person's approval. "
            "Propose it, and it applies once someone else approves it."
        )
    elif refusal.code == grpc.StatusCode.ABORTED:
        form.problem = (
            "Someone changed this key since the page was read: look at its values and "
            "history again, then save once more. " + refusal.message
        )
    elif not form.errors or refusal.code != grpc.StatusCode.INVALID_ARGUMENT:
        form.problem = str(refusal)


async def roll_back(request: Request) -> Response:
    """A preview (a dry run) unless the form confirms it; then the rollback itself."""
    _, api = signed_in(request)
    key = request.path_params["key"]
    form = await request.form()
    environment = str(form.get("environment") or "")
    try:
        to_version = int(str(form.get("to_version") or ""))
    except ValueError:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "to_version must be a number") from None
    confirmed = form.get("confirm") == "1"
    request_message = pb.RollbackRequest(
        key=key,
        environment=environment,
        to_version=to_version,
        dry_run=not confirmed,
        reason=str(form.get("reason") or "").strip(),
        ticket=str(form.get("ticket") or "").strip(),
    )
    context: dict[str, Any] = {
        "key": key,
        "environment": environment,
        "layer_title": environment or "base",
        "to_version": to_version,
        "reason": request_message.reason,
        "ticket": request_message.ticket,
    }
    try:
        reply = await api(api.config.Rollback, request_message)
    except Refusal as refusal:
        return render(request, "key_rollback.html", result=None, refusal=refusal, **context)
    response = render(
        request,
        "key_rollback.html",
        result=reply,
        refusal=None,
        diff_lines=diff_lines(value_of(reply, "old_value"), value_of(reply, "new_value")),
        **context,
    )
    if confirmed:
        response.headers["HX-Trigger"] = "key-changed"
    return response


__all__ = [
    "EditForm",
    "HistoryView",
    "KeyView",
    "LayerView",
    "edit_form",
    "key_history",
    "key_page",
    "key_values",
    "read_history",
    "read_key",
    "roll_back",
    "save_value",
]
