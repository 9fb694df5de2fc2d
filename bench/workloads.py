"""The two RPCs under load, as the exact bytes h2load sends, and the pre-flight check
that those bytes get a real, successful answer.

h2load counts any HTTP 200 as a success, yet gRPC reports its errors in the trailers of
a 200 response. So before any load, one call with a real gRPC client sends the very same
serialized request and checks the status and the answer: a benchmark of error responses
would look fast and mean nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import empty_pb2

from bench.server import NULL_PATH
from switchyard.gen.v1 import config_pb2

_FRAME_HEADER = 5


class PreflightError(RuntimeError):
    """The server does not answer a workload's request as the benchmark needs."""


@dataclass(frozen=True, slots=True)
class Workload:
    """One RPC under load: where it goes, what it sends and what a good answer is."""

    name: str
    path: str
    request: bytes
    check: Callable[[bytes], None]

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
    return _FRAME_HEADER + len(answer)
