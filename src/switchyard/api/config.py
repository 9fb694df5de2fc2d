"""ConfigService over gRPC: each method checks the request's shape, maps it to the domain,
awaits one use case and maps the answer back. Errors are mapped by `api.errors`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc

from switchyard.api import delivery, mapping, masking
from switchyard.api.identity import current_principal, write_context
from switchyard.api.pages import fitted_page
from switchyard.domain.access import Permission, holds, may_see
from switchyard.domain.errors import InvalidArgument
from switchyard.domain.models import ChangeKind, ConfigQuery, HistoryQuery, JSONValue
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import config_pb2_grpc
from switchyard.service.config import ConfigService, TemplateOutcome
from switchyard.service.context import utc_now
from switchyard.service.watch import WatchEvent, WatchProgress, WatchService

_OUTCOMES = {
    TemplateOutcome.UNCHANGED: pb.TEMPLATE_ITEM_OUTCOME_UNCHANGED,
    TemplateOutcome.UPDATED: pb.TEMPLATE_ITEM_OUTCOME_UPDATED,
    TemplateOutcome.REFUSED: pb.TEMPLATE_ITEM_OUTCOME_REFUSED,
}


_RESPONSES_KEPT = 1024
_ADMINISTRATIVE = frozenset({ChangeKind.TOKEN, ChangeKind.USER})
"""Kinds of change only those who administer tokens and users are told of."""

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ConfigService"].full_name


def _require(present: bool, field: str, hint: str = "is required") -> None:
    if not present:
        raise InvalidArgument.field(field, hint)


class ConfigServicer(config_pb2_grpc.ConfigServiceServicer):
    def __init__(self, service: ConfigService, watch: WatchService) -> None:
        self._service = service
        self._watch = watch
        self._responses: OrderedDict[int, tuple[WatchEvent, pb.WatchConfigResponse]] = OrderedDict()

    async def GetValue(
        self, request: pb.GetValueRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetValueResponse:
        read = await self._service.get_value(request.key, request.environment or None)
        value = masking.resolved(current_principal(), read.value)
        return mapping.resolved_to_proto(value, read.revision, read.stale)

    async def GetValues(
        self, request: pb.GetValuesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetValuesResponse:
        reads = await self._service.get_values(list(request.keys), request.environment or None)
        principal = current_principal()
        return pb.GetValuesResponse(
            values=[
                mapping.resolved_to_proto(
                    masking.resolved(principal, v), reads.revision, reads.stale
                )
                for v in reads.values
            ],
            missing_keys=reads.missing,
            revision=reads.revision,
            stale=reads.stale,
        )

    async def GetConfig(
        self, request: pb.GetConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetConfigResponse:
        definition, overrides, revision = await self._service.get_config(request.key)
        principal = current_principal()
        if definition.is_sensitive or definition.is_encrypted:
            overrides = [masking.override(principal, o) for o in overrides]
        return pb.GetConfigResponse(
            config=mapping.definition_to_proto(masking.definition(principal, definition)),
            overrides=[mapping.override_to_proto(o) for o in overrides],
            revision=revision,
        )

    async def ListConfigs(
        self, request: pb.ListConfigsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListConfigsResponse:
        query = ConfigQuery(
            category=request.category or None,
            subcategory=request.subcategory or None,
            key_prefix=request.key_prefix or None,
            include_inactive=request.include_inactive,
        )
        page, revision = await self._service.list_configs(
            query, mapping.page_request(request.page_size, request.page_token)
        )
        principal = current_principal()
        configs, cursor = fitted_page(
            [
                (c.key, mapping.definition_to_proto(masking.definition(principal, c)))
                for c in page.items
                if may_see(principal, None, c.key)
            ],
            page.next_cursor,
        )
        return pb.ListConfigsResponse(
            configs=configs, next_page_token=mapping.page_token(cursor), revision=revision
        )

    async def CreateConfig(
        self, request: pb.CreateConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateConfigResponse:
        _require(request.HasField("config"), "config")
        definition, revision = await self._service.create_config(
            mapping.definition_from_proto(request.config, require_type=True),
            write_context(request),
        )
        return pb.CreateConfigResponse(
            config=mapping.definition_to_proto(definition), revision=revision
        )

    async def UpdateConfig(
        self, request: pb.UpdateConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateConfigResponse:
        _require(request.HasField("config"), "config")
        paths = list(request.update_mask.paths)
        definition, revision = await self._service.update_config(
            mapping.definition_from_proto(
                request.config, require_type=not paths or "type" in paths
            ),
            paths,
            request.expected_version if request.HasField("expected_version") else None,
            write_context(request),
        )
        return pb.UpdateConfigResponse(
            config=mapping.definition_to_proto(definition), revision=revision
        )

    async def DeleteConfig(
        self, request: pb.DeleteConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteConfigResponse:
        revision = await self._service.delete_config(
            request.key,
            request.expected_version if request.HasField("expected_version") else None,
            write_context(request),
        )
        return pb.DeleteConfigResponse(revision=revision)

    async def SetValue(
        self, request: pb.SetValueRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetValueResponse:
        _require(
            request.HasField("value"),
            "value",
            "is required (send null to clear the base value)",
        )
        result = await self._service.set_value(
            request.key,
            mapping.from_value(request.value),
            request.environment or None,
            write_context(request),
            expected_version=(
                request.expected_version if request.HasField("expected_version") else None
            ),
            priority=request.priority if request.HasField("priority") else None,
            expires_at=(
                mapping.from_timestamp(request.expires_at)
                if request.HasField("expires_at")
                else None
            ),
            starts_at=(
                mapping.from_timestamp(request.starts_at) if request.HasField("starts_at") else None
            ),
        )
        shown = await self._shown(result.key, result.environment, result.value)
        return pb.SetValueResponse(
            key=result.key,
            value=mapping.to_value(shown),
            environment=result.environment or "",
            version=result.version,
            revision=result.revision,
            requires_restart=result.requires_restart,
            changed=result.changed,
        )

    async def DeleteOverride(
        self, request: pb.DeleteOverrideRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteOverrideResponse:
        deleted, version, revision = await self._service.delete_override(
            request.key,
            request.environment,
            request.priority if request.HasField("priority") else None,
            request.expected_version if request.HasField("expected_version") else None,
            write_context(request),
        )
        return pb.DeleteOverrideResponse(deleted=deleted, version=version, revision=revision)

    async def Rollback(
        self, request: pb.RollbackRequest, context: grpc.aio.ServicerContext
    ) -> pb.RollbackResponse:
        if request.steps < 0:
            raise InvalidArgument.field("steps", "must be 1 or more")
        result = await self._service.rollback(
            request.key,
            request.environment or None,
            write_context(request),
            steps=request.steps or None,
            to_version=request.to_version if request.HasField("to_version") else None,
            dry_run=request.dry_run,
        )
        hide = await self._hides(result.key, result.environment)
        return pb.RollbackResponse(
            key=result.key,
            environment=result.environment or "",
            old_value=mapping.to_value(
                masking.masked(result.old_value) if hide else result.old_value
            ),
            new_value=mapping.to_value(
                masking.masked(result.new_value) if hide else result.new_value
            ),
            diff=mapping.to_list_value([] if hide else result.diff),
            restored_from_revision=result.restored_from_revision,
            dry_run=result.dry_run,
            version=result.version,
            revision=result.revision,
        )

    async def GetHistory(
        self, request: pb.GetHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetHistoryResponse:
        if request.after_revision < 0:
            raise InvalidArgument.field("after_revision", "must not be negative")
        query = HistoryQuery(
            key=request.key or None,
            environment=request.environment or None,
            after_revision=request.after_revision,
        )
        page, revision = await self._service.get_history(
            query, mapping.page_request(request.page_size, request.page_token)
        )
        principal = current_principal()
        visible = [e for e in page.items if may_see(principal, e.environment, e.key)]
        sensitive = await self._service.sensitive_keys(
            e.key for e in visible if e.kind is ChangeKind.CONFIG
        )
        entries, cursor = fitted_page(
            [
                (
                    f"{e.revision}:{e.change_index}",
                    mapping.history_to_proto(masking.history(principal, e, sensitive)),
                )
                for e in visible
            ],
            page.next_cursor,
        )
        return pb.GetHistoryResponse(
            entries=entries, next_page_token=mapping.page_token(cursor), revision=revision
        )

    async def ListEnvironments(
        self, request: pb.ListEnvironmentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListEnvironmentsResponse:
        environments, revision = await self._service.list_environments()
        return pb.ListEnvironmentsResponse(
            environments=[mapping.environment_to_proto(e) for e in environments],
            revision=revision,
        )

    async def UpsertEnvironment(
        self, request: pb.UpsertEnvironmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpsertEnvironmentResponse:
        _require(request.HasField("environment"), "environment")
        environment, revision = await self._service.upsert_environment(
            mapping.environment_from_proto(request.environment), write_context(request)
        )
        return pb.UpsertEnvironmentResponse(
            environment=mapping.environment_to_proto(environment), revision=revision
        )

    async def ListTemplates(
        self, request: pb.ListTemplatesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTemplatesResponse:
        page, revision = await self._service.list_templates(
            request.include_inactive, mapping.page_request(request.page_size, request.page_token)
        )
        templates, cursor = fitted_page(
            [(t.name, mapping.template_to_proto(t)) for t in page.items], page.next_cursor
        )
        return pb.ListTemplatesResponse(
            templates=templates, next_page_token=mapping.page_token(cursor), revision=revision
        )

    async def UpsertTemplate(
        self, request: pb.UpsertTemplateRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpsertTemplateResponse:
        _require(request.HasField("template"), "template")
        template, revision = await self._service.upsert_template(
            mapping.template_from_proto(request.template), write_context(request)
        )
        return pb.UpsertTemplateResponse(
            template=mapping.template_to_proto(template), revision=revision
        )

    async def ApplyTemplate(
        self, request: pb.ApplyTemplateRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyTemplateResponse:
        result = await self._service.apply_template(
            request.template_name,
            request.environment or None,
            write_context(request),
            dry_run=request.dry_run,
            best_effort=request.best_effort,
        )
        principal = current_principal()
        sensitive = await self._service.sensitive_keys(item.key for item in result.items)
        hidden = {
            key
            for key in sensitive
            if not masking.reveals(principal, key, request.environment or None)
        }
        return pb.ApplyTemplateResponse(
            results=[
                pb.TemplateItemResult(
                    key=item.key,
                    outcome=_OUTCOMES[item.outcome],
                    old_value=mapping.to_value(
                        masking.masked(item.old_value) if item.key in hidden else item.old_value
                    ),
                    new_value=mapping.to_value(
                        masking.masked(item.new_value) if item.key in hidden else item.new_value
                    ),
                    error=item.error or "",
                )
                for item in result.items
            ],
            dry_run=result.dry_run,
            applied=result.applied,
            revision=result.revision,
        )

    async def WatchConfig(
        self, request: pb.WatchConfigRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchConfigResponse]:
        principal = current_principal()
        async for item in self._watch.watch(mapping.watch_request(request), delivery.current()):
            if isinstance(item, WatchEvent):
                if not may_see(principal, item.environment, item.key) or (
                    item.kind in _ADMINISTRATIVE and not holds(principal, Permission.ADMIN)
                ):
                    continue  # the stream's progress messages still carry the revision
                if item.sensitive and not masking.reveals(principal, item.key, item.environment):
                    yield mapping.watch_response(replace(item, value=masking.masked(item.value)))
                    continue
            yield self._watch_response(item)

    async def _hides(self, key: str, environment: str | None) -> bool:
        """Whether the caller may not see the values of this key in this environment."""
        if masking.reveals(current_principal(), key, environment):
            return False
        return key in await self._service.sensitive_keys([key])

    async def _shown(self, key: str, environment: str | None, value: JSONValue) -> JSONValue:
        return masking.masked(value) if await self._hides(key, environment) else value

    def _watch_response(self, item: WatchEvent | WatchProgress) -> pb.WatchConfigResponse:
        """One message per event, whichever streams send it: the watch service hands
        every stream of an environment the same event object. Kept with the event, so
        an id is never reused while it stands for a message."""
        if isinstance(item, WatchProgress):
            return mapping.watch_response(item)
        made = self._responses.get(id(item))
        if made is not None and made[0] is item:
            return made[1]
        response = mapping.watch_response(item)
        self._responses[id(item)] = (item, response)
        while len(self._responses) > _RESPONSES_KEPT:
            self._responses.popitem(last=False)
        return response

    async def UpsertMaintenanceWindow(
        self, request: pb.UpsertMaintenanceWindowRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpsertMaintenanceWindowResponse:
        _require(request.HasField("window"), "window")
        window, created, revision = await self._service.upsert_window(
            mapping.window_from_proto(request.window), write_context(request)
        )
        return pb.UpsertMaintenanceWindowResponse(
            window=mapping.window_to_proto(window, utc_now()), created=created, revision=revision
        )

    async def ListMaintenanceWindows(
        self, request: pb.ListMaintenanceWindowsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMaintenanceWindowsResponse:
        windows, revision = await self._service.list_windows()
        now = utc_now()
        return pb.ListMaintenanceWindowsResponse(
            windows=[mapping.window_to_proto(w, now) for w in windows], revision=revision
        )

    async def DeleteMaintenanceWindow(
        self, request: pb.DeleteMaintenanceWindowRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteMaintenanceWindowResponse:
        revision = await self._service.delete_window(request.name, write_context(request))
        return pb.DeleteMaintenanceWindowResponse(revision=revision)


def register(
    server: grpc.aio.Server, service: ConfigService, watch: WatchService
) -> ConfigServicer:
    """Adds the servicer to `server` and returns it (change requests call its writes)."""
    servicer = ConfigServicer(service, watch)
    config_pb2_grpc.add_ConfigServiceServicer_to_server(servicer, server)
    return servicer


__all__ = ["SERVICE_NAME", "ConfigServicer", "register"]
