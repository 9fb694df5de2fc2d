"""The one server interceptor. For every method Switchyard answers (its own services, the
flagd protocols and Envoy's rate-limit protocol) it binds the caller's identity
(`api.identity`) and turns what the handler raises into a gRPC status (`api.errors`): a
domain error into its code and details, cancellation passed through, anything else into
INTERNAL with the traceback in the log. Before the handler runs, its `Gate` authenticates
the caller, checks the permission table (`api.permissions`) and the caller's allowances.
Every call is counted by method and final code (`switchyard_grpc_requests`) and timed
(`switchyard_grpc_request_duration_seconds`); a stream when it ends, over its lifetime.

Handlers are wrapped once per method and kept, with the method's metric children, so a
call costs one extra frame, a histogram observation and a counter increment. Health and
reflection are left as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterator,
    Mapping,
)
from time import perf_counter
from typing import Any, cast

import grpc
import structlog

from switchyard.api.delivery import Delivery
from switchyard.api.errors import to_status
from switchyard.api.identity import (
    Authenticator,
    bind,
    current_principal,
    local_operator,
    relayed,
)
from switchyard.api.permissions import RULES, Rule, authorize
from switchyard.domain.access import Permission
from switchyard.domain.errors import (
    FailedPrecondition,
    PermissionDenied,
    ResourceExhausted,
    SwitchyardError,
    Unauthenticated,
)
from switchyard.domain.limits import RateLimit
from switchyard.domain.models import Principal
from switchyard.metrics import DENIED_CALLS, REQUEST_SECONDS, REQUESTS
from switchyard.service.limits import RateLimitService

log = structlog.get_logger(__name__)

_Unary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
_Stream = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]

_INTERNAL = "internal error; see the server log"
WRAPPED_PREFIXES = ("/switchyard.", "/flagd.", "/envoy.service.ratelimit.")
"""The services Switchyard answers itself: its own, the flagd protocols and Envoy's
rate-limit protocol."""


class Gate:
    """What every call passes before its handler runs: who the caller is, whether the
    permission table lets them make this call, and whether they are within their
    allowances (management calls per minute, open streams). A refusal is counted in
    `switchyard_denied_calls` and logged, and changes nothing."""

    def __init__(
        self,
        authenticate: Authenticator = local_operator,
        *,
        protected: Callable[[], Collection[str]] = frozenset,
        management_limit: ManagementLimit | None = None,
        max_streams: int | None = None,
    ) -> None:
        self._authenticate = authenticate
        self._protected = protected
        self._management = management_limit
        self._max_streams = max_streams
        self._streams: dict[str, int] = {}
        self._rules: dict[str, Rule] = dict(RULES)
        self._relay_key: str | None = None

    def trust_relay(self, key: str) -> None:
        """Calls carrying `key` (the web console in this process) may name the address of
        the browser they are made for; see `identity.relayed`."""
        self._relay_key = key

    def add_rules(self, rules: Mapping[str, Rule]) -> None:
        """Permission rules for methods served besides Switchyard's own (the benchmarks'
        null RPC, which must pass the same gate as a real one)."""
        self._rules.update(rules)

    async def admit(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        try:
            principal = relayed(self._authenticate(context), context, self._relay_key)
            bind(principal)
            authorize(principal, method, request, self._protected(), self._rules)
            if self._management is not None and _manages(self._rules.get(method)):
                await self._management.admit(principal)
        except SwitchyardError as error:
            _refused(method, error, context)
            raise

    def authorize(
        self, method: str, request: Any, context: grpc.aio.ServicerContext, *, within: str
    ) -> None:
        """Raises as `admit` would unless the bound caller may make the call `method`
        with `request`, which arrived `within` another call (a batch's write): a refusal
        is counted and logged under that call."""
        try:
            authorize(current_principal(), method, request, self._protected(), self._rules)
        except SwitchyardError as error:
            _refused(within, error, context)
            raise

    @contextlib.contextmanager
    def stream_slot(self, method: str) -> Iterator[None]:
        """Holds one of the caller's open streams for as long as the stream runs."""
        who = current_principal().username
        if self._max_streams is not None and self._streams.get(who, 0) >= self._max_streams:
            DENIED_CALLS.labels(method=method, reason="too_many_streams").inc()
            raise ResourceExhausted(
                f"{who} has {self._max_streams} streams open already, the most one identity "
                "may hold; close one (or share one stream across a process's watches)"
            )
        self._streams[who] = self._streams.get(who, 0) + 1
        try:
            yield
        finally:
            left = self._streams[who] - 1
            if left:
                self._streams[who] = left
            else:
                del self._streams[who]


class ManagementLimit:
    """The allowance of management calls (writes, rollbacks, approvals, administration)
    per identity, counted by Switchyard's own rate-limit engine: shared through Redis
    when there is one, so a caller cannot spread calls across replicas."""

    def __init__(self, limits: RateLimitService, max_calls: int, window_seconds: int) -> None:
        self._limits = limits
        self._limit = RateLimit(
            key="switchyard.management",
            name="management calls per identity",
            max_requests=max_calls,
            time_window_seconds=window_seconds,
            sliding_window=True,
        )

    async def admit(self, principal: Principal) -> None:
        decision = await self._limits.admit(self._limit, principal.user_id)
        if not decision.allowed:
            wait = decision.retry_after if decision.retry_after is not None else 1.0
            raise ResourceExhausted(
                f"{principal.username} made more than {self._limit.max_requests} management "
                f"calls in {self._limit.time_window_seconds} s; wait {wait:.0f} s and try "
                "again",
                retry_after_seconds=wait,
            )


def _refused(method: str, error: SwitchyardError, context: grpc.aio.ServicerContext) -> None:
    reason = _DENIAL_REASONS.get(type(error), "refused")
    DENIED_CALLS.labels(method=method, reason=reason).inc()
    log.info("call refused", method=method, reason=reason, peer=context.peer())


def _manages(rule: Rule | None) -> bool:
    return rule is not None and (rule.write or rule.permission in _MANAGING)


_MANAGING = frozenset(
    {Permission.PROPOSE, Permission.APPROVE, Permission.ROLLBACK, Permission.ADMIN}
)
_DENIAL_REASONS: dict[type[SwitchyardError], str] = {
    Unauthenticated: "unauthenticated",
    PermissionDenied: "permission_denied",
    FailedPrecondition: "needs_approval",
    ResourceExhausted: "rate_limited",
}


_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
_INTERNAL_CODE = grpc.StatusCode.INTERNAL


class _Measured:
    """One method's metric children, resolved when the method is first called: its
    latency histogram, and its request counter per status code (made on first use)."""

    __slots__ = ("_codes", "_method", "_seconds")

    def __init__(self, method: str) -> None:
        self._method = method
        self._seconds = REQUEST_SECONDS.labels(method)
        self._codes: dict[grpc.StatusCode, Any] = {}

    def record(self, code: grpc.StatusCode, started: float) -> None:
        self._seconds.observe(perf_counter() - started)
        counter = self._codes.get(code)
        if counter is None:
            counter = self._codes[code] = REQUESTS.labels(self._method, code.name)
        counter.inc()


async def _abort(context: grpc.aio.ServicerContext, status: grpc.Status) -> None:
    # set_code first: a tracing interceptor's context sees it (abort_with_status bypasses
    # it) and marks the span as failed.
    context.set_code(status.code)
    context.set_details(status.details)
    await context.abort_with_status(status)


def _aborted(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _unary(behavior: _Unary, method: str, gate: Gate) -> _Unary:
    measured = _Measured(method)

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = perf_counter()
        code = _OK
        try:
            await gate.admit(method, request, context)
            return await behavior(request, context)
        except SwitchyardError as error:
            status = to_status(error)
            code = status.code
            await _abort(context, status)
        except asyncio.CancelledError:
            code = _CANCELLED
            raise
        except grpc.aio.AbortError:
            code = _aborted(context)
            raise
        except Exception:
            code = _INTERNAL_CODE
            log.exception("unhandled error", method=method)
            await context.abort(_INTERNAL_CODE, _INTERNAL)
        finally:
            measured.record(code, started)
        raise AssertionError("unreachable: abort raises")

    return call


def _stream(behavior: _Stream, method: str, gate: Gate) -> _Stream:
    measured = _Measured(method)

    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        started = perf_counter()
        code = _CANCELLED  # unless it ends otherwise: the client went away
        ending = _Ending(context)
        delivery = Delivery(ending)
        try:
            await gate.admit(method, request, context)
            delivery.bind()
            with gate.stream_slot(method):
                # Closed here, not when collected: a stream abandoned in a write ends now.
                handler = cast("AsyncGenerator[Any, None]", behavior(request, context))
                ending.handler = handler
                async with contextlib.aclosing(handler) as responses:
                    async for response in responses:
                        delivery.sending()
                        yield response
                        delivery.sent()
                        if delivery.abandoned:
                            await ending.finished()
            code = _OK
        except SwitchyardError as error:
            status = to_status(error)
            code = status.code
            await _abort(context, status)
        except asyncio.CancelledError:
            # Let cancellation propagate out of a streaming handler (grpc issue 43360).
            raise
        except grpc.aio.AbortError:
            code = _aborted(context)
            raise
        except Exception:
            code = _INTERNAL_CODE
            log.exception("unhandled error", method=method)
            await context.abort(_INTERNAL_CODE, _INTERNAL)
        finally:
            measured.record(delivery.code or code, started)

    return call


class _Ending:
    """How a stream is ended while gRPC holds one of its messages (`Delivery.abandon`).
    The call's task is blocked in that write, so another task ends it: it closes the
    handler (its generator is suspended at that message, and whatever it holds is freed
    now rather than when the client reads again, which may be never), then sends the
    status, queued behind the stream's unsent data. Once the client reads again, the
    write returns and the wrapper waits for this instead of handing gRPC more."""

    __slots__ = ("_context", "_task", "handler")

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context
        self._task: asyncio.Task[None] | None = None
        self.handler: AsyncGenerator[Any, None] | None = None

    def __call__(self, error: SwitchyardError) -> grpc.StatusCode:
        status = to_status(error)
        self._task = asyncio.get_running_loop().create_task(self._end(status))
        self._task.add_done_callback(_ended)
        return status.code

    async def _end(self, status: grpc.Status) -> None:
        if self.handler is not None:
            try:
                await self.handler.aclose()
            except Exception:
                log.exception("closing an abandoned stream's handler failed")
        await _abort(self._context, status)

    async def finished(self) -> None:
        """Raises the AbortError of the status sent (grpc.aio expects that one), or
        CancelledError when the status could not be sent: the client went away."""
        assert self._task is not None
        try:
            await asyncio.shield(self._task)
        except grpc.aio.AbortError:
            raise
        except Exception:
            raise asyncio.CancelledError from None


def _ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and not isinstance(task.exception(), grpc.aio.AbortError):
        log.debug("an abandoned stream's status was not sent", error=repr(task.exception()))


class SwitchyardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, gate: Gate | None = None) -> None:
        self._gate = gate or Gate()
        self._wrapped: dict[str, grpc.RpcMethodHandler | None] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = details.method
        if method in self._wrapped:
            return self._wrapped[method]
        handler = await continuation(details)
        wrapped = handler
        if handler is not None and method.startswith(WRAPPED_PREFIXES):
            if handler.unary_unary is not None:
                wrapped = grpc.unary_unary_rpc_method_handler(
                    _unary(handler.unary_unary, method, self._gate),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
            elif handler.unary_stream is not None:
                wrapped = grpc.unary_stream_rpc_method_handler(
                    _stream(handler.unary_stream, method, self._gate),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        self._wrapped[method] = wrapped
        return wrapped


__all__ = ["Gate", "ManagementLimit", "SwitchyardInterceptor"]
