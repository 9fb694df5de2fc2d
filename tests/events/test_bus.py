"""The change bus: listeners before subscribers, each revision once and in order, a slow
subscriber loses its place instead of slowing the others, and shutdown ends them all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from switchyard.domain.models import ChangeKind, HistoryAction, HistoryEntry
from switchyard.events.bus import ChangeBus, Closed, Revision, Subscription


def revision(number: int, key: str = "k") -> Revision:
    entry = HistoryEntry(
        id=f"id-{number}",
        revision=number,
        change_index=0,
        kind=ChangeKind.CONFIG,
        table_name="pf_system_config",
        record_id="r",
        key=key,
        environment=None,
        action=HistoryAction.UPDATE,
        old_value=None,
        new_value=number,
        value_diff=[],
        reason=None,
        ticket=None,
        changed_by="u",
        changed_by_role=None,
        client_address=None,
        changed_at=datetime(2026, 11, 25, tzinfo=UTC),
    )
    return Revision(number, (entry,))


async def test_listeners_hear_each_revision_before_subscribers_and_once() -> None:
    bus = ChangeBus()
    order: list[str] = []
    bus.add_listener(lambda r: order.append(f"listener {r.revision}"))
    subscription = bus.subscribe(10)

    for number in (1, 2, 2, 1, 3):
        bus.publish(revision(number))
        received = await subscription.next(0.01)
        if received is not None:
            order.append(f"subscriber {received.revision}")

    assert order == [
        "listener 1",
        "subscriber 1",
        "listener 2",
        "subscriber 2",
        "listener 3",
        "subscriber 3",
    ]
    assert bus.revision == 3


async def test_a_subscription_starts_after_the_current_revision() -> None:
    bus = ChangeBus()
    bus.publish(revision(1))
    subscription = bus.subscribe(10)
    bus.publish(revision(2))

    assert subscription.start == 1
    received = await subscription.next(0.1)
    assert received is not None and received.revision == 2


async def test_a_failing_listener_does_not_stop_the_others() -> None:
    bus = ChangeBus()
    heard: list[int] = []

    def broken(_: Revision) -> None:
        raise RuntimeError("boom")

    bus.add_listener(broken)
    bus.add_listener(lambda r: heard.append(r.revision))
    bus.publish(revision(1))

    assert heard == [1]


async def test_a_slow_subscriber_is_closed_and_the_others_go_on() -> None:
    bus = ChangeBus()
    slow = bus.subscribe(2)
    fast = bus.subscribe(100)

    for number in range(1, 6):
        bus.publish(revision(number))

    assert slow.closed is Closed.OVERFLOW
    assert await slow.next(0.01) is None  # woken with nothing: it must resume elsewhere
    received = [await fast.next(0.01) for _ in range(5)]
    assert [r.revision for r in received if r is not None] == [1, 2, 3, 4, 5]
    assert fast.closed is None


async def test_shutdown_ends_every_subscription_and_refuses_new_ones() -> None:
    bus = ChangeBus()
    subscription = bus.subscribe(10)

    bus.shutdown()

    assert subscription.closed is Closed.SHUTDOWN
    assert await subscription.next(1.0) is None
    with pytest.raises(RuntimeError):
        bus.subscribe(10)


async def test_an_idle_subscription_times_out_with_nothing() -> None:
    bus = ChangeBus()
    subscription = bus.subscribe(10)

    assert await subscription.next(0.01) is None
    assert subscription.closed is None
    subscription.close()
    assert bus.subscribers == 0


async def test_a_stalled_subscriber_is_ended_as_a_revision_arrives_and_its_owner_told() -> None:
    bus = ChangeBus()
    held_up = [False]
    ended: list[Closed | None] = []
    stalled = bus.subscribe(
        100, stalled=lambda: held_up[0], on_end=lambda s: ended.append(s.closed)
    )
    other = bus.subscribe(100, stalled=lambda: False)

    bus.publish(revision(1))
    bus.publish(revision(2))  # its reader is busy, but not held up: both wait for it
    held_up[0] = True
    bus.publish(revision(3))

    assert stalled.closed is Closed.STALLED
    assert ended == [Closed.STALLED]  # told as it happened, not when its reader looks
    assert stalled.dropped == 3  # the two queued and the one that found it stalled
    assert bus.subscribers == 1  # it left the bus at once, queue and all
    bus.publish(revision(4))
    assert ended == [Closed.STALLED]
    received = [await other.next(0.01) for _ in range(4)]
    assert [r.revision for r in received if r is not None] == [1, 2, 3, 4]


async def test_a_reader_waiting_for_a_revision_is_never_asked_whether_it_stalled() -> None:
    bus = ChangeBus()
    asked: list[int] = []

    def stalled() -> bool:
        asked.append(bus.revision)
        return True

    subscription = bus.subscribe(100, stalled=stalled)
    waiting = asyncio.ensure_future(subscription.next(5.0))
    await asyncio.sleep(0)  # the reader now waits in next()
    bus.publish(revision(1))
    received = await waiting

    assert received is not None and received.revision == 1
    assert asked == []
    assert subscription.closed is None


async def test_an_owner_whose_end_handler_fails_does_not_stop_the_fan_out() -> None:
    bus = ChangeBus()

    def broken(_: Subscription) -> None:
        raise RuntimeError("boom")

    first = bus.subscribe(1, on_end=broken)
    second = bus.subscribe(100)
    bus.publish(revision(1))
    bus.publish(revision(2))  # overflows the first

    assert first.closed is Closed.OVERFLOW
    assert [r.revision for r in [await second.next(0.01), await second.next(0.01)] if r] == [1, 2]
