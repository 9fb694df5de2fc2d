"""A client in a process of its own, for the faults that happen to clients: a test stops
it (SIGSTOP) or kills it (`kill -9`).

    python -m tests.faults.client_process write ADDRESS PREFIX TAG
        writes a burst (harness.burst) to the keys under PREFIX and prints each
        acknowledged write as a JSON line the moment it is acknowledged, until killed.
    python -m tests.faults.client_process watch ADDRESS PREFIX FROM_REVISION STREAMS
        holds STREAMS resuming watches of PREFIX on one channel; prints `ready` once each
        has heard from the server, then reads the revision to reach from stdin, and once
        every watch has reached it prints one JSON line: per stream, the revisions it
        received and how its streams were interrupted.

Run from the repository root (harness.client_process_command).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from switchyard.client import Client

from .harness import BurstKeys, ResumingWatch, burst


async def write(address: str, prefix: str, tag: str) -> None:
    def acknowledged(ack: dict[str, Any]) -> None:
        print(json.dumps(ack), flush=True)

    async with Client(address) as connected:
        await burst(connected, BurstKeys(prefix), tag, acknowledged)


async def watch(address: str, prefix: str, from_revision: int, streams: int) -> None:
    async with Client(address) as connected:
        watches = [
            ResumingWatch(connected.config, prefixes=[prefix], from_revision=from_revision)
            for _ in range(streams)
        ]
        for each in watches:
            each.start()
        for each in watches:
            await each.until(lambda w: w.progress > 0 or bool(w.deliveries), within=60)
        print("ready", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)
        target = int(line)
        for each in watches:
            await each.reaches(target, within=120)
        report = [
            {
                "revisions": each.revisions(),
                "interruptions": [
                    {"code": i.code.name, "reason": i.reason, "resume_from": i.resume_from}
                    for i in each.interruptions
                ],
            }
            for each in watches
        ]
        print(json.dumps(report), flush=True)
        for each in watches:
            await each.close()


def main(argv: list[str]) -> None:
    mode, address, *rest = argv
    if mode == "write":
        prefix, tag = rest
        asyncio.run(write(address, prefix, tag))
    elif mode == "watch":
        prefix, from_revision, streams = rest
        asyncio.run(watch(address, prefix, int(from_revision), int(streams)))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])


__all__ = ["main", "watch", "write"]
