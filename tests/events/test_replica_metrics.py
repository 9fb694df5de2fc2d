"""What the follower and the bus report: the replica lag a poll reads from the database,
the age of the newest applied revision, and the changes a cut-off watcher never got."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from switchyard.domain.models import HistoryEntry
from switchyard.events.bus import ChangeBus, Closed
from switchyard.events.follower import HistoryFollower
from switchyard.metrics import REPLICA_LAG, REVISION_AGE

from .test_bus import revision


def gauge(metric: object) -> float:
    return float(metric._value.get())  # type: ignore[attr-defined]


def age() -> float:
    (family,) = REVISION_AGE.collect()
    return float(family.samples[0].value)


async def test_a_poll_reads_the_lag_and_catching_up_clears_it() -> None:
    history: list[HistoryEntry] = []
    newest = 0
    failing = False

    async def history_after(after: int, limit: int) -> list[HistoryEntry]:
        if failing:
            raise RuntimeError("the history cannot be read")
        return [e for e in history if e.revision > after][:limit]

    async def newest_revision() -> int:
        return newest

    follower = HistoryFollower(history_after, ChangeBus(), poll_interval=0, newest=newest_revision)
    follower.position = 0
    committed = datetime.now(UTC) - timedelta(seconds=30)
    for number in (1, 2, 3):
        history.append(replace(revision(number).entries[0], changed_at=committed))
    newest = 3

    await follower._read_newest()
    assert gauge(REPLICA_LAG) == 3
    await follower.catch_up()
    assert gauge(REPLICA_LAG) == 0 and follower.position == 3
    assert 29 <= age() <= 60

    newest = 5  # two revisions this replica cannot read
    failing = True
    await follower._read_newest()
    assert gauge(REPLICA_LAG) == 2


def test_a_cut_off_subscriber_counts_what_it_never_got() -> None:
    bus = ChangeBus()
    slow = bus.subscribe(2)
    for number in (1, 2, 3):  # the third does not fit
        bus.publish(revision(number))
    assert slow.closed is Closed.OVERFLOW and slow.dropped == 3

    leaving = bus.subscribe(10)
    bus.publish(revision(4))
    bus.shutdown()
    assert leaving.closed is Closed.SHUTDOWN and leaving.dropped == 1
