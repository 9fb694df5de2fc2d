"""A token's and a user's grants, and a token's description, are bounded: every token is
listed whole by ListTokens (which has no pages) and its grants are read back whenever
tokens are reloaded. Found by the fuzz suite: a token made with 20,000 grants (1.1 MB)
was accepted, and from then on every ListTokens held the server for 0.3 s; a description
of a few megabytes would have made the list larger than a client receives."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from switchyard.gen.v1 import access_pb2 as pb
from switchyard.gen.v1 import access_pb2_grpc

from .conftest import serving

MAX_GRANTS = 100  # grants of a token or a user
MAX_GRANT_NAMES = 100  # environments, and prefixes, of one grant
MAX_TOKEN_DESCRIPTION_LENGTH = 500


def _token(**fields: object) -> pb.CreateTokenRequest:
    request = pb.CreateTokenRequest(owner="sized", reason="test", **fields)  # type: ignore[arg-type]
    if not request.grants:
        request.grants.add(role="reader")
    return request


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (_token(grants=[pb.Grant(role="reader")] * (MAX_GRANTS + 1)), "grants"),
        (
            _token(grants=[pb.Grant(role="reader", prefixes=["p."] * (MAX_GRANT_NAMES + 1))]),
            "grants[0]",
        ),
        (_token(grants=[pb.Grant(role="reader", environments=["e" * 101])]), "grants[0]"),
        (_token(description="d" * (MAX_TOKEN_DESCRIPTION_LENGTH + 1)), "description"),
    ],
    ids=["too many grants", "too many prefixes", "a long name", "a long description"],
)
async def test_a_token_too_large_to_list_is_refused(
    tmp_path: Path, request_: pb.CreateTokenRequest, field: str
) -> None:
    async with serving(tmp_path / "tokens.db") as running:
        access = access_pb2_grpc.AccessServiceStub(running.channel)
        revision = running.application.config.revision
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await access.CreateToken(request_)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (refused.value.details() or "").startswith(f"{field}")
        assert running.application.config.revision == revision
        at_most = _token(
            grants=[pb.Grant(role="reader", prefixes=["p."] * MAX_GRANT_NAMES)] * MAX_GRANTS,
            description="d" * MAX_TOKEN_DESCRIPTION_LENGTH,
        )
        await access.CreateToken(at_most)


async def test_a_users_grants_are_bounded_too(tmp_path: Path) -> None:
    async with serving(tmp_path / "users.db") as running:
        access = access_pb2_grpc.AccessServiceStub(running.channel)
        request = pb.SetUserGrantsRequest(
            username="cert-user", grants=[pb.Grant(role="reader")] * (MAX_GRANTS + 1)
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await access.SetUserGrants(request)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
