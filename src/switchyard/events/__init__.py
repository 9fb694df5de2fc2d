"""The change bus: every committed revision, in order, exactly once, to every part of
this process that cares (caches, watchers, the scheduler), whichever replica made it."""

from switchyard.events.bus import ChangeBus, Closed, Revision, Subscription
from switchyard.events.follower import HistoryFollower

__all__ = ["ChangeBus", "Closed", "HistoryFollower", "Revision", "Subscription"]
