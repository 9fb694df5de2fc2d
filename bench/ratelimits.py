"""The rate-limit benchmarks' limits and CheckRateLimit workloads (`checklimit`, `envoy`).

A limit that never denies during a run, so that every request takes the whole decision
path and none is cut short by a denial: found in memory, then counted with one Redis
round trip (the limits are `distributed`, the default), and admitted. Created at start
through the real gRPC `UpsertRateLimit`, as an operator's limit would be (validated,
stored, recorded, applied):

- `bench`: global, 1,000,000,000 per 60 s, `sliding_window: false`: a fixed window,
  one hash of two fields in Redis. (The default, a sliding window, keeps one log entry
  per admitted request: the benchmark's own load would grow it by millions.)
- `bench-bucket`: the same rate as a token bucket (`burst_size` 1,000,000,000).

The CheckRateLimit request names the limit (`limit_key`) and carries a realistic subject
(user, address, endpoint, method, environment), which the server parses and checks; a
global limit counts every subject under one counter.
"""

from __future__ import annotations

from functools import partial

import grpc

from bench.scriptrate import ScriptCall
from bench.workloads import PreflightError, Workload
from switchyard.api.limits import SERVICE_NAME, limit_from_proto
from switchyard.gen.v1 import rate_limit_pb2 as pb
from switchyard.gen.v1 import rate_limit_pb2_grpc

NEVER_DENIES = 1_000_000_000
"""Requests per window: a run of minutes at thousands per second uses a millionth."""
WINDOW_SECONDS = 60

FIXED_LIMIT = pb.RateLimit(
    key="bench",
    name="Bench, fixed window",
    description="The benchmarks' limit (bench/ratelimits.py): never denies",
    max_requests=NEVER_DENIES,
    time_window_seconds=WINDOW_SECONDS,
    scope_type=pb.SCOPE_TYPE_GLOBAL,
    sliding_window=False,
)
BUCKET_LIMIT = pb.RateLimit(
    key="bench-bucket",
    name="Bench, token bucket",
    description="The benchmarks' token bucket (bench/ratelimits.py): never denies",
    max_requests=NEVER_DENIES,
    time_window_seconds=WINDOW_SECONDS,
    burst_size=NEVER_DENIES,
    scope_type=pb.SCOPE_TYPE_GLOBAL,
)


def upsert_limit(address: str, limit: pb.RateLimit) -> None:
    """Creates (or replaces) `limit` through UpsertRateLimit, as an operator would."""
    request = pb.UpsertRateLimitRequest(rate_limit=limit, reason="bench: a limit that never denies")
    with grpc.insecure_channel(address) as channel:
        try:
            answer = rate_limit_pb2_grpc.RateLimitServiceStub(channel).UpsertRateLimit(
                request, timeout=10
            )
        except grpc.RpcError as error:
            raise PreflightError(f"UpsertRateLimit {limit.key} failed: {error}") from error
    stored = answer.rate_limit
    if stored.key != limit.key or stored.max_requests != limit.max_requests:
        raise PreflightError(f"UpsertRateLimit answered {answer!r}")
    if not stored.distributed:
        raise PreflightError(f"{limit.key} is not distributed: it would not count in Redis")


def _check(limit: pb.RateLimit, answer: bytes) -> None:
    """Allowed by the limit named, counted (remaining below the limit), and not
    degraded: a degraded answer means Redis was not reached and the fail mode answered,
    which costs no round trip and would time a shorter path."""
    response = pb.CheckRateLimitResponse.FromString(answer)
    if response.degraded:
        raise PreflightError(
            f"CheckRateLimit {limit.key} answered degraded: Redis was not reached ({response!r})"
        )
    if (
        not response.allowed
        or response.limit_key != limit.key
        or response.limit != limit.max_requests
        or response.default_applied
        or response.exempt
        or response.over_limit
        or not 0 < NEVER_DENIES - response.remaining < NEVER_DENIES
    ):
        raise PreflightError(
            f"CheckRateLimit answered {response!r}; expected allowed and counted by "
            f"{limit.key}, not degraded"
        )


def _floor(answer: bytes) -> int:
    """An answer's size without `reset_after`, whose nanoseconds make it vary by a few
    bytes from call to call; the other fields keep their size over a run (`remaining`
    stays a 5-byte varint above 2**28)."""
    response = pb.CheckRateLimitResponse.FromString(answer)
    response.ClearField("reset_after")
    return response.ByteSize()


def _workload(name: str, limit: pb.RateLimit) -> Workload:
    request = pb.CheckRateLimitRequest(
        limit_key=limit.key,
        user_id="user-4711",
        ip="203.0.113.7",
        endpoint="/api/orders",
        method="GET",
        environment="production",
    )
    return Workload(
        name=name,
        path=f"/{SERVICE_NAME}/CheckRateLimit",
        request=request.SerializeToString(),
        check=partial(_check, limit),
        prepare=partial(upsert_limit, limit=limit),
        floor=_floor,
    )


CHECK_FIXED = _workload("check_fixed", FIXED_LIMIT)
CHECK_BUCKET = _workload("check_bucket", BUCKET_LIMIT)

SCRIPT_CALLS = (
    ScriptCall.of(limit_from_proto(FIXED_LIMIT), CHECK_FIXED.name, "fixed window"),
    ScriptCall.of(limit_from_proto(BUCKET_LIMIT), CHECK_BUCKET.name, "token bucket"),
)
"""What each decision of the two workloads sends Redis (checked against the server's
own EVALSHA before the rounds)."""
