"""Where a server-streaming call meets its client's flow control.

grpc.aio sends what a streaming handler yields and asks it for the next message only
once gRPC has taken the last one. gRPC takes a message when HTTP/2 flow control lets it
go out (or into gRPC's own write buffer, a few tens of kilobytes): a client that stops
reading stops the handler at its `yield`, for as long as it does not read, and the
handler cannot notice anything in the meantime. `Delivery`, one per streaming call,
made and bound by the interceptor's stream wrapper around each message it hands to
gRPC, is how code outside the blocked handler (the change bus as it fans out, the flag
listeners) sees that and acts on it:

- `stalled(seconds)`: gRPC has held the call's current message for at least `seconds`;
  its client has not read for that long and its window is full;
- `abandon(error)`: ends the call with `error`'s status at once, though the handler is
  blocked. The status is queued behind what gRPC already holds for the stream (HTTP/2
  sends trailers after the data of their stream), so a client that reads again gets
  every message it was sent, then the status; the wrapper hands gRPC nothing more.

A handler run without the interceptor (a test's own server) gets `DETACHED`, which never
reports a stall.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from time import monotonic

import grpc

from switchyard.domain.errors import SwitchyardError

Abandon = Callable[[SwitchyardError], grpc.StatusCode]
"""Starts ending a call with an error's status; returns the status code it ends with."""


class Delivery:
    """One streaming call's hand-over of messages to gRPC."""

    __slots__ = ("_abandon", "_held_since", "code")

    def __init__(self, abandon: Abandon | None = None) -> None:
        self._abandon = abandon
        self._held_since: float | None = None
        self.code: grpc.StatusCode | None = None
        """The status code the call was abandoned with; None while it was not."""

    @property
    def blocked(self) -> bool:
        """Whether gRPC holds a message of this call that it has not sent yet."""
        return self._held_since is not None

    @property
    def abandoned(self) -> bool:
        return self.code is not None

    def stalled(self, seconds: float) -> bool:
        """Whether gRPC has held the current message for at least `seconds`."""
        return self._held_since is not None and monotonic() - self._held_since >= seconds

    def sending(self) -> None:
        """Called by the stream wrapper as it hands a message to gRPC."""
        self._held_since = monotonic()

    def sent(self) -> None:
        """Called by the stream wrapper when gRPC asks for the next message."""
        self._held_since = None

    def abandon(self, error: SwitchyardError) -> None:
        """Ends the call with `error`'s status; the first error wins, and a call without
        the interceptor is left alone (its handler raises the error when it can)."""
        if self._abandon is not None and self.code is None:
            self.code = self._abandon(error)

    def bind(self) -> None:
        """Makes this the `current()` delivery of the call being served (its task's
        context: each call runs in a task of its own, as `identity.bind` relies on)."""
        _CURRENT.set(self)


DETACHED = Delivery()
_CURRENT: contextvars.ContextVar[Delivery] = contextvars.ContextVar("delivery", default=DETACHED)


def current() -> Delivery:
    """The delivery of the streaming call being handled (`DETACHED` outside one)."""
    return _CURRENT.get()


__all__ = ["DETACHED", "Abandon", "Delivery", "current"]
