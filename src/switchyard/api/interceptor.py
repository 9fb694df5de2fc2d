"""The one server interceptor. It wraps every handler the server finds, whatever its
service (Switchyard's own, the flagd protocols, Envoy's rate-limit protocol, health,
reflection, whatever else is registered) and whatever its shape (unary or streaming,
either way), so that nothing is served past it:

- its requests are decoded by `api.wire`: bytes that are not a message, and Timestamps,
  Durations and numbers outside their types' ranges, are INVALID_ARGUMENT before the
  handler runs (after the gate, which still checks who sent them);
- before the handler runs, its `Gate` authenticates the caller, checks the permission
  table (`api.permissions`) and the caller's allowances, and binds the caller's identity
  (`api.identity`). It fails closed: a method the table has no rule for is refused.
  Only the methods `permissions.OPEN` lists (health and reflection) skip the gate;
- what the handler raises becomes a gRPC status (`api.errors`): a domain error its code
  and details, cancellation passed through, anything else INTERNAL with the traceback in
  the log.

Every call is counted by method and final code (`switchyard_grpc_requests`) and timed
(`switchyard_grpc_request_duration_seconds`); a stream when it ends, over its lifetime.
Handlers are wrapped once per method and kept, with the method's metric children, so a
call costs one extra frame, a histogram observation and a counter increment. A name
nobody registered answers UNIMPLEMENTED and is not remembered.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
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
from switchyard.api.permissions import OPEN, RULES, Rule, authorize
from switchyard.api.wire import Refused, decoder
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

_INTERNAL = "internal error; see the server log"


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

    def identify(self, method: str, context: grpc.aio.ServicerContext) -> Principal:
        """Authenticates the caller of `method` and binds who they are, without looking at
        the request (for one that could not be read). Raises Unauthenticated."""
        try:
            principal = relayed(self._authenticate(context), context, self._relay_key)
        except SwitchyardError as error:
            _refused(method, error, context)
            raise
        bind(principal)
        return principal

    async def admit(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        """Raises unless the caller may make the call `method` with `request` (None for
        a call whose requests come as a stream) now; see the class."""
        try:  # `identify`, inlined: this runs on every call
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
_UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED


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


def _each_checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A request stream whose every message passed `api.wire`'s checks; one that did not
    ends the call with INVALID_ARGUMENT (raised into the handler's loop, which lets it
    out). A handler that reads with `context.read()` instead of iterating would bypass
    this: Switchyard's own take no request streams."""

    async def checked() -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, Refused):
                raise request.error
            yield request

    return checked()


class _Calls:
    """The four shapes of call, each wrapped the same way: admission (the gate, unless
    the method is open to everyone, then the request's shape, which `api.wire` checked
    as it decoded it), then the handler, with its errors turned into statuses and its
    outcome counted. Streams of responses hold one of the caller's stream slots while
    they run. A handler may be `async def` or plain, as grpc.aio allows."""

    def __init__(self, method: str, gate: Gate | None) -> None:
        self.method = method
        self.gate = gate
        self.measured = _Measured(method)

    async def admit(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Raises unless `request` may reach the handler. A request refused for its
        shape still meets the gate first (who sent it is checked before what), and one
        whose bytes could not be read is refused once the caller is known."""
        if isinstance(request, Refused):
            if self.gate is not None:
                if request.message is None:
                    self.gate.identify(self.method, context)
                else:
                    await self.gate.admit(self.method, request.message, context)
            raise request.error
        if self.gate is not None:
            await self.gate.admit(self.method, request, context)

    def unary(self, behavior: Callable[..., Any], streamed: bool) -> Callable[..., Any]:
        if not streamed and inspect.iscoroutinefunction(behavior):
            return self._unary_fast(behavior)

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = perf_counter()
            code = _OK
            try:
                request = await self._admitted(request, context, streamed)
                result = behavior(request, context)
                return await result if inspect.isawaitable(result) else result
            except BaseException as error:
                code, status = self._ending(error, context)
                if status is not None:
                    await _abort(context, status)
                raise
            finally:
                self.measured.record(code, started)

        return call

    def _unary_fast(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        """`unary` for an `async def` handler of one request: the hot path of every
        read and evaluation, so the admission is inlined."""
        gate, method, measured = self.gate, self.method, self.measured

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = perf_counter()
            code = _OK
            try:
                if isinstance(request, Refused):
                    await self.admit(request, context)  # raises
                if gate is not None:
                    await gate.admit(method, request, context)
                return await behavior(request, context)
            except BaseException as error:
                code, status = self._ending(error, context)
                if status is not None:
                    await _abort(context, status)
                raise
            finally:
                measured.record(code, started)

        return call

    def stream(self, behavior: Callable[..., Any], streamed: bool) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behavior):
            return self._generator(behavior, streamed)

        async def call(request: Any, context: grpc.aio.ServicerContext) -> None:
            # A handler that writes with `context.write` (grpc_health's Watch does).
            started = perf_counter()
            code = _CANCELLED
            try:
                request = await self._admitted(request, context, streamed)
                with self._slot():
                    result = behavior(request, context)
                    if inspect.isawaitable(result):
                        await result
                code = _OK
            except BaseException as error:
                code, status = self._ending(error, context)
                if status is not None:
                    await _abort(context, status)
                raise
            finally:
                self.measured.record(code, started)

        return call

    def _generator(self, behavior: Callable[..., Any], streamed: bool) -> Callable[..., Any]:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = perf_counter()
            code = _CANCELLED  # unless it ends otherwise: the client went away
            ending = _Ending(context)
            delivery = Delivery(ending)
            try:
                request = await self._admitted(request, context, streamed)
                delivery.bind()
                with self._slot():
                    # Closed here, not when collected: a stream abandoned in a write ends
                    # now (see `_Ending`).
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
            except BaseException as error:
                code, status = self._ending(error, context)
                if status is not None:
                    await _abort(context, status)
                raise
            finally:
                self.measured.record(delivery.code or code, started)

        return call

    async def _admitted(
        self, request: Any, context: grpc.aio.ServicerContext, streamed: bool
    ) -> Any:
        """`request` once admitted (`admit`); a stream of requests is admitted before its
        first request arrives, its rule checked with no request to read targets from, and
        each request is checked as it comes (`_each_checked`)."""
        if not streamed:
            await self.admit(request, context)
            return request
        if self.gate is not None:
            await self.gate.admit(self.method, None, context)
        return _each_checked(request)

    def _slot(self) -> contextlib.AbstractContextManager[None]:
        if self.gate is None:
            return contextlib.nullcontext()
        return self.gate.stream_slot(self.method)

    def _ending(
        self, error: BaseException, context: grpc.aio.ServicerContext
    ) -> tuple[grpc.StatusCode, grpc.Status | None]:
        """The code the call ends with after `error`, and the status to abort it with
        (None when it ends by itself: cancellation, an abort under way, generator exit)."""
        if isinstance(error, grpc.aio.AbortError):
            return _aborted(context), None
        if isinstance(error, SwitchyardError):
            status = to_status(error)
            return status.code, status
        if isinstance(error, NotImplementedError):
            # A generated servicer's method that nobody implemented (health's List).
            return _UNIMPLEMENTED, _Plain(_UNIMPLEMENTED, f"{self.method} is not implemented")
        if isinstance(error, Exception):
            log.exception("unhandled error", method=self.method)
            return _INTERNAL_CODE, _Plain(_INTERNAL_CODE, _INTERNAL)
        # CancelledError (let it propagate out of a handler: grpc issue 43360),
        # GeneratorExit and the like: the client went away or the server is stopping.
        return _CANCELLED, None


class _Plain(grpc.Status):  # type: ignore[misc]
    """A status with no details but its message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = ()


_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def wrap(handler: grpc.RpcMethodHandler, method: str, gate: Gate) -> grpc.RpcMethodHandler:
    """`handler`, whatever its shape, behind the gate (none for the methods of
    `permissions.OPEN`), its requests decoded by `api.wire`, its errors turned into
    statuses and its calls counted."""
    calls = _Calls(method, None if method in OPEN else gate)
    streamed = bool(handler.request_streaming)
    behavior = (
        handler.stream_stream or handler.stream_unary
        if streamed
        else handler.unary_stream or handler.unary_unary
    )
    responses = bool(handler.response_streaming)
    wrapped = calls.stream(behavior, streamed) if responses else calls.unary(behavior, streamed)
    factory = _FACTORIES[(streamed, responses)]
    return factory(
        wrapped,
        request_deserializer=decoder(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )


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
    """Wraps every handler the server finds (see `wrap`): a method is served through
    the gate unless `permissions.OPEN` lists it, and the gate refuses a method that has
    no rule, so a handler registered without one is refused rather than served."""

    def __init__(self, gate: Gate | None = None) -> None:
        self._gate = gate or Gate()
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(details)
        if handler is None:
            return None  # UNIMPLEMENTED; not remembered: a caller may name any method
        wrapped = self._wrapped[method] = wrap(handler, method, self._gate)
        return wrapped


__all__ = ["Gate", "ManagementLimit", "SwitchyardInterceptor", "wrap"]
