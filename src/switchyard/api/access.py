"""gRPC servicer for `switchyard.v1.AccessService`: tokens and users' grants over the API,
as `switchyard token` and `switchyard user` manage them offline."""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from switchyard.api import mapping
from switchyard.api.identity import current_principal, write_context
from switchyard.domain.access import check_grants
from switchyard.domain.errors import InvalidArgument
from switchyard.domain.models import ApiToken, Grant
from switchyard.gen.v1 import access_pb2 as pb
from switchyard.gen.v1 import access_pb2_grpc
from switchyard.service.access import AccessService

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AccessService"].full_name


class AccessServicer(access_pb2_grpc.AccessServiceServicer):
    def __init__(self, service: AccessService) -> None:
        self._service = service

    async def WhoAmI(
        self, request: pb.WhoAmIRequest, context: grpc.aio.ServicerContext
    ) -> pb.WhoAmIResponse:
        caller = current_principal()
        return pb.WhoAmIResponse(
            user_id=caller.user_id,
            username=caller.username,
            role=caller.role,
            grants=[grant_to_proto(grant) for grant in caller.grants or ()],
            authenticated=caller.grants is not None,
        )

    async def CreateToken(
        self, request: pb.CreateTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTokenResponse:
        if not request.owner:
            raise InvalidArgument.field("owner", "name the user the token acts as")
        secret, token, revision = await self._service.create_token(
            request.owner,
            grants_from_proto(request.grants),
            write_context(request),
            expires_at=(
                mapping.from_timestamp(request.expires_at)
                if request.HasField("expires_at")
                else None
            ),
            description=request.description or None,
        )
        return pb.CreateTokenResponse(
            token=secret, api_token=token_to_proto(token), revision=revision
        )

    async def ListTokens(
        self, request: pb.ListTokensRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTokensResponse:
        tokens = await self._service.list_tokens()
        return pb.ListTokensResponse(tokens=[token_to_proto(token) for token in tokens])

    async def RevokeToken(
        self, request: pb.RevokeTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.RevokeTokenResponse:
        if not request.token_id:
            raise InvalidArgument.field("token_id", "name the token to revoke (ListTokens)")
        token, revision = await self._service.revoke_token(request.token_id, write_context(request))
        return pb.RevokeTokenResponse(api_token=token_to_proto(token), revision=revision)

    async def SetUserGrants(
        self, request: pb.SetUserGrantsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetUserGrantsResponse:
        user, revision = await self._service.set_user_grants(
            request.username, grants_from_proto(request.grants), write_context(request)
        )
        return pb.SetUserGrantsResponse(user_id=user.id, revision=revision)


def grants_from_proto(grants: Iterable[pb.Grant]) -> list[Grant]:
    """Grants from the request, checked (`domain.access.check_grants`): a problem is an
    InvalidArgument on its field."""
    parsed = [
        Grant(
            role=message.role,
            environments=tuple(message.environments),
            prefixes=tuple(message.prefixes),
        )
        for message in grants
    ]
    check_grants(parsed)
    return parsed


def grant_to_proto(grant: Grant) -> pb.Grant:
    return pb.Grant(
        role=grant.role, environments=list(grant.environments), prefixes=list(grant.prefixes)
    )


def token_to_proto(token: ApiToken) -> pb.ApiToken:
    return pb.ApiToken(
        id=token.id,
        token_hint=token.token_hint,
        owner=token.username,
        grants=[grant_to_proto(grant) for grant in token.grants],
        description=token.description or "",
        expires_at=mapping.to_timestamp(token.expires_at),
        revoked_at=mapping.to_timestamp(token.revoked_at),
        revoked_by=token.revoked_by or "",
        created_at=mapping.to_timestamp(token.created_at),
        created_by=token.created_by or "",
    )


def register(server: grpc.aio.Server, service: AccessService) -> AccessServicer:
    servicer = AccessServicer(service)
    access_pb2_grpc.add_AccessServiceServicer_to_server(servicer, server)
    return servicer


__all__ = ["SERVICE_NAME", "AccessServicer", "register"]
