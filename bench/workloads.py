"""The RPCs under load, as the exact bytes h2load sends, and the pre-flight check that
those bytes get a real, successful answer.

h2load counts any HTTP 200 as a success, yet gRPC reports its errors in the trailers of
a 200 response. So before any load, one call with a real gRPC client sends the very same
serialized request and checks the status and the answer: a benchmark of error responses
would look fast and mean nothing.

GetValue reads the demo data every bench server is seeded with. EvaluateFlag needs a
flag the demo data does not have: its workload creates it first, through the real gRPC
API (`prepare`), so the flag is stored, recorded and applied as any operator's would be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import empty_pb2

from bench.server import NULL_PATH
from switchyard.api.mapping import to_list_value, to_struct
from switchyard.domain.bucketing import DEFAULT_BUCKETING_VERSION, in_rollout
from switchyard.gen.v1 import config_pb2, flag_pb2, flag_pb2_grpc

_FRAME_HEADER = 5


class PreflightError(RuntimeError):
    """The server does not answer a workload's request as the benchmark needs."""


@dataclass(frozen=True, slots=True)
class Workload:
    """One RPC under load: where it goes, what it sends and what a good answer is.
    `prepare`, given the server's address, makes the server ready to answer it (before
    the pre-flight call, on every server the workload is bound to)."""

    name: str
    path: str
    request: bytes
    check: Callable[[bytes], None]
    prepare: Callable[[str], None] | None = None
    floor: Callable[[bytes], int] | None = None
    """For an answer whose size varies from call to call (a duration, a count), the
    fewest bytes a good answer can have, given the pre-flight answer; None: every answer
    is the pre-flight answer's size."""

    def frame(self) -> bytes:
        """The request as a gRPC length-prefixed message: flag 0 (uncompressed), a
        big-endian 4-byte length, the message. This is the whole HTTP/2 request body."""
        return b"\x00" + len(self.request).to_bytes(4, "big") + self.request

    def write_body(self, directory: Path) -> Path:
        path = directory / f"{self.name}.grpc"
        path.write_bytes(self.frame())
        return path


def _check_get_value(answer: bytes) -> None:
    response = config_pb2.GetValueResponse.FromString(answer)
    if response.key != "api.timeout" or response.value.number_value != 60:
        raise PreflightError(
            f"GetValue answered {response!r}; expected api.timeout = 60 (demo data)"
        )


def _check_null(answer: bytes) -> None:
    empty_pb2.Empty.FromString(answer)


GET_VALUE = Workload(
    name="get_value",
    path="/switchyard.v1.ConfigService/GetValue",
    request=config_pb2.GetValueRequest(
        key="api.timeout", environment="production"
    ).SerializeToString(),
    check=_check_get_value,
)
NULL = Workload(
    name="null",
    path=NULL_PATH,
    request=empty_pb2.Empty().SerializeToString(),
    check=_check_null,
)


# EvaluateFlag: a flag whose evaluation for the context below walks every step a
# realistic flag has (the kill switch, role targeting, two rules, the percentage bucket)
# and is decided by the last one. The role is not targeted ("viewer" is not "admin"),
# neither rule matches ("pro" is not "enterprise", 2.3.1 is below 3.0.0), so the user's
# bucket at 30% decides: ROLLOUT_IN or ROLLOUT_OUT, never RULE_MATCH or DEFAULT.
FLAG_KEY = "new_checkout"
FLAG_PERCENTAGE = 30
FLAG_USER = "user-4711"
FLAG = flag_pb2.FeatureFlag(
    key=FLAG_KEY,
    name="New checkout",
    description="The benchmark's flag (bench/workloads.py)",
    is_enabled=True,
    rollout_percentage=FLAG_PERCENTAGE,
    rollout_strategy=flag_pb2.ROLLOUT_STRATEGY_PERCENTAGE,
    enabled_for_roles=["admin"],
    targeting_rules=to_list_value(
        [
            {
                "id": "enterprise-plan",
                "when": {"attribute": "plan", "op": "eq", "value": "enterprise"},
                "variant": "on",
            },
            {
                "id": "app-3",
                "when": {"attribute": "app_version", "op": "semver_gte", "value": "3.0.0"},
                "variant": "on",
            },
        ]
    ),
)
FLAG_CONTEXT = flag_pb2.EvaluationContext(
    user_id=FLAG_USER,
    roles=["viewer"],
    environment="production",
    attributes=to_struct({"plan": "pro", "app_version": "2.3.1"}),
)
FLAG_BUCKETED_IN = in_rollout(FLAG_KEY, FLAG_USER, FLAG_PERCENTAGE, DEFAULT_BUCKETING_VERSION)
"""Whether the user's bucket is in: computed here, apart from the server, so that the
pre-flight check knows the one right answer."""


def create_flag(address: str) -> None:
    """Creates (or replaces) the flag through UpsertFlag, as an operator would."""
    request = flag_pb2.UpsertFlagRequest(flag=FLAG, reason="bench: the flag EvaluateFlag reads")
    with grpc.insecure_channel(address) as channel:
        try:
            answer = flag_pb2_grpc.FlagServiceStub(channel).UpsertFlag(request, timeout=10)
        except grpc.RpcError as error:
            raise PreflightError(f"UpsertFlag {FLAG_KEY} failed: {error}") from error
    if answer.flag.key != FLAG_KEY or not answer.flag.is_enabled:
        raise PreflightError(f"UpsertFlag answered {answer!r}")


def _check_evaluate_flag(answer: bytes) -> None:
    """The answer must be the bucket's decision: a NOT_FOUND (no flag), a DEFAULT or a
    RULE_MATCH (a flag other than the one designed) would measure a shorter path."""
    response = flag_pb2.EvaluateFlagResponse.FromString(answer)
    reason = (
        flag_pb2.EVALUATION_REASON_ROLLOUT_IN
        if FLAG_BUCKETED_IN
        else flag_pb2.EVALUATION_REASON_ROLLOUT_OUT
    )
    if (
        response.flag_key != FLAG_KEY
        or response.reason != reason
        or response.enabled != FLAG_BUCKETED_IN
        or response.variant != ("on" if FLAG_BUCKETED_IN else "off")
    ):
        expected = flag_pb2.EvaluationReason.Name(reason)
        raise PreflightError(
            f"EvaluateFlag answered {response!r}; expected {FLAG_KEY} decided by the "
            f"percentage bucket: {expected}"
        )


EVALUATE_FLAG = Workload(
    name="evaluate_flag",
    path="/switchyard.v1.FlagService/EvaluateFlag",
    request=flag_pb2.EvaluateFlagRequest(
        flag_key=FLAG_KEY, context=FLAG_CONTEXT
    ).SerializeToString(),
    check=_check_evaluate_flag,
    prepare=create_flag,
)


def preflight(address: str, workload: Workload, body: Path) -> int:
    """Sends the message framed in `body` (the file h2load will send) with a real gRPC
    client, checks status OK and the answer, and returns the response body's size on the
    wire (frame header included), which the load results are checked against."""
    framed = body.read_bytes()
    request = framed[_FRAME_HEADER:]
    if framed != workload.frame():
        raise PreflightError(f"{body} does not hold the framed {workload.name} request")
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(workload.path)  # bytes in, bytes out: no re-encoding
        try:
            answer, outcome = call.with_call(request, timeout=10)
        except grpc.RpcError as error:
            raise PreflightError(f"{workload.path} failed: {error}") from error
    if outcome.code() is not grpc.StatusCode.OK:
        raise PreflightError(f"{workload.path} answered {outcome.code()}")
    workload.check(answer)
    return _FRAME_HEADER + (len(answer) if workload.floor is None else workload.floor(answer))
