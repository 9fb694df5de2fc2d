"""`switchyard watch`: a live tail of WatchConfig, one line (or one JSON object) per
change, as long as it runs.

When the stream breaks (the server restarts, a proxy drops it, the server says the
watcher fell behind, or it goes silent past the progress timeout) the tail reconnects
with backoff, says so on stderr, and resumes from the last revision it printed; an event
already printed is not printed again. Only the first connection fails fast (exit 7): a
wrong address is a mistake to report, a restart later is something to ride out.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import click
import grpc
from rich.text import Text

from switchyard.cli.exit_codes import ExitCode, Failure
from switchyard.cli.options import environment_option
from switchyard.cli.output import OutputFormat, emit_line, quoted
from switchyard.cli.plain import enum_name, moment, value_of
from switchyard.cli.remote import RemoteOptions, connect, remote_options, run
from switchyard.client import PROGRESS_TIMEOUT, Client
from switchyard.gen.v1 import config_pb2 as pb

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 10.0
_RETRIED = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.ABORTED,  # fell behind: resume
        grpc.StatusCode.CANCELLED,  # by a peer or a proxy (ours arrive as CancelledError)
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)


@click.command()
@click.option("--prefix", "prefixes", multiple=True, help="Watch keys under this (repeatable).")
@click.option("--key", "keys", multiple=True, help="Watch this key (repeatable).")
@environment_option("Show effective values in ENV; base values without.")
@click.option(
    "--from-revision",
    type=click.IntRange(min=0),
    help="Replay the changes after this revision first (0: all kept); live ones only without.",
)
@click.option("--max-events", type=click.IntRange(min=1), help="Stop after N changes.")
@remote_options
def watch(
    prefixes: tuple[str, ...],
    keys: tuple[str, ...],
    environment: str | None,
    from_revision: int | None,
    max_events: int | None,
    remote: RemoteOptions,
) -> None:
    """Print each change to the keys named (every key without --prefix or --key) as it
    is committed, until Ctrl-C (exit 0) or --max-events.

    JSON: one object per line: revision, kind, key, environment, action, value, source,
    deleted, category, changed_at."""
    request = pb.WatchConfigRequest(
        keys=keys, prefixes=prefixes, environment=environment or "", from_revision=from_revision
    )
    try:
        run(_tail(remote, request, _Cursor(from_revision), max_events), remote)
    except KeyboardInterrupt:
        click.echo("watch: stopped", err=True)


@dataclass
class _Cursor:
    """How far the tail got: every change up to `revision` is printed (or was before
    the tail began), except that of `revision` itself only the events in `printed` may
    have been, when the stream broke in the middle of a change of several keys."""

    revision: int | None
    printed: set[tuple[int, str, str]] = field(default_factory=set)

    def resume_from(self) -> int | None:
        """The `from_revision` to reconnect with: before a change printed only in part."""
        if self.revision is not None and self.printed:
            return self.revision - 1
        return self.revision

    def fresh(self, event: pb.ChangeEvent) -> bool:
        """Whether `event` is new, noting it if so."""
        identity = (event.kind, event.key, event.environment)
        if self.revision is not None and event.revision < self.revision:
            return False
        if event.revision == self.revision:
            if identity in self.printed or not self.printed:
                return False
        else:
            self.revision, self.printed = event.revision, set()
        self.printed.add(identity)
        return True

    def caught_up(self, revision: int) -> None:
        """A progress message: everything up to `revision` has been sent."""
        if self.revision is None or revision >= self.revision:
            self.revision, self.printed = revision, set()


async def _tail(
    remote: RemoteOptions, request: pb.WatchConfigRequest, cursor: _Cursor, limit: int | None
) -> None:
    async with connect(remote, deadline=False) as client:
        try:
            await asyncio.wait_for(client.channel.channel_ready(), remote.timeout)
        except TimeoutError:
            raise Failure(
                f"error: cannot connect to {remote.address} within {remote.timeout:g}s\n"
                f"hint: is a server running at {remote.address}? (`make run`)",
                ExitCode.UNAVAILABLE,
            ) from None
        delay = BACKOFF_FIRST
        shown = 0
        while True:
            request.ClearField("from_revision")
            if (resume := cursor.resume_from()) is not None:
                request.from_revision = resume
            try:
                async for message in _messages(client, request):
                    delay = BACKOFF_FIRST
                    if message.WhichOneof("message") == "progress":
                        cursor.caught_up(message.progress.revision)
                    elif cursor.fresh(message.event):
                        _show(message.event, remote.output)
                        shown += 1
                        if limit is not None and shown >= limit:
                            return
                problem = "the stream ended"
            except grpc.aio.AioRpcError as error:
                if error.code() not in _RETRIED:
                    raise
                problem = f"{error.code().name}: {error.details()}"
            except TimeoutError:
                problem = f"no word from the server for {PROGRESS_TIMEOUT:g}s"
            where = cursor.resume_from()
            since = f"after revision {where}" if where is not None else "with the next change"
            click.echo(f"watch: {problem}; reconnecting in {delay:.1f}s, {since}", err=True)
            await asyncio.sleep(delay)
            delay = min(BACKOFF_MAX, delay * 2) * random.uniform(0.8, 1.2)


async def _messages(client: Client, request: pb.WatchConfigRequest) -> Any:
    """The stream's messages; TimeoutError after PROGRESS_TIMEOUT seconds of silence
    (the server sends progress on an idle stream, so silence means a dead one)."""
    call = client.config.WatchConfig(request)
    try:
        while True:
            async with asyncio.timeout(PROGRESS_TIMEOUT):
                message = await call.read()
            if message is grpc.aio.EOF:
                return
            yield message
    finally:
        call.cancel()


def event_data(event: pb.ChangeEvent) -> dict[str, Any]:
    """A change as `watch -o json` prints it."""
    return {
        "revision": event.revision,
        "kind": enum_name(pb.ChangeKind, event.kind),
        "key": event.key,
        "environment": event.environment or None,
        "action": enum_name(pb.HistoryAction, event.action),
        "value": value_of(event, "value"),
        "source": enum_name(pb.ValueSource, event.source),
        "deleted": event.deleted,
        "category": event.category or None,
        "changed_at": moment(event, "changed_at"),
    }


def _show(event: pb.ChangeEvent, output: OutputFormat) -> None:
    data = event_data(event)

    def line() -> Text:
        layer = f"@{data['environment']}" if data["environment"] else ""
        what = (
            Text("deleted", style="red")
            if data["deleted"]
            else Text(f"= {quoted(data['value'])}", style="green")
        )
        return Text.assemble(
            (f"{data['revision']:>6} ", "bold"),
            f"{data['changed_at'] or ''} {data['action']:<8} {data['key']}{layer} ",
            what,
            (f" ({data['source']})", "dim"),
        )

    emit_line(data, output, line)


__all__ = ["event_data", "watch"]
