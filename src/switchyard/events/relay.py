"""Change notices between replicas on Redis pub/sub.

A notice carries only a revision number: it wakes the followers of the other replicas,
which then read the history themselves. Pub/sub delivers at most once, so a lost notice
costs only latency (the poll catches it), never a change. The listener reconnects by
itself when Redis comes back.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from redis.exceptions import RedisError

from switchyard.events.follower import HistoryFollower
from switchyard.metrics import RELAY_ERRORS
from switchyard.redis_client import RedisClient

log = structlog.get_logger(__name__)

CHANNEL = "switchyard:v1:revisions"
RECONNECT_SECONDS = 1.0


class RedisRelay:
    def __init__(
        self,
        client: RedisClient,
        follower: HistoryFollower,
        *,
        channel: str = CHANNEL,
        reconnect_delay: float = RECONNECT_SECONDS,
    ) -> None:
        self._client = client
        self._follower = follower
        self._channel = channel
        self._reconnect_delay = reconnect_delay
        self._listener: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        """Set while the listener is subscribed (tests wait on it)."""

    def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="switchyard-redis-relay")

    async def stop(self) -> None:
        tasks = [t for t in (self._listener, *self._sends) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def announce(self, revision: int) -> None:
        """Tells the other replicas that `revision` committed. Never waits and never
        fails the caller: a notice that cannot be sent is counted and logged."""
        task = asyncio.create_task(self._publish(revision))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _publish(self, revision: int) -> None:
        try:
            await self._client.publish(self._channel, str(revision))
        except (RedisError, OSError) as error:
            RELAY_ERRORS.labels("publish").inc()
            log.debug("cannot publish a change notice", revision=revision, error=str(error))

    async def _listen(self) -> None:
        outage = False
        while True:
            pubsub = self._client.pubsub()
            try:
                # Connects first (a cluster client learns its nodes on its first command,
                # and its pub/sub needs them).
                await self._client.ping()
                await pubsub.subscribe(self._channel)
                self.connected.set()
                if outage:
                    log.info("change notices resumed on Redis")
                    outage = False
                # Notices may have been missed while unsubscribed: catch up now.
                self._follower.kick("relay")
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30.0)
                    if message is not None and message.get("type") == "message":
                        self._follower.kick("relay")
            except (RedisError, OSError) as error:
                self.connected.clear()
                RELAY_ERRORS.labels("listen").inc()
                if not outage:
                    log.warning(
                        "change notices on Redis interrupted; polling the history meanwhile",
                        error=str(error),
                    )
                    outage = True
                await asyncio.sleep(self._reconnect_delay)
            finally:
                self.connected.clear()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]


__all__ = ["CHANNEL", "RedisRelay"]
