"""The `switchyard` command.

Server-side commands (`serve`, `migrate`, `verify`, `health`, `keys`, `token`, `user`) work on the
process or the database: `cli.server`. Remote commands talk to a running server over
gRPC as an operator would: reading and writing values (`cli.values`, `cli.changes`,
`cli.templates`), `watch` (`cli.tail`), `flag`, `limit`; `context` names the servers to talk to.
Each module holds its commands; this one only gathers them.
"""

from __future__ import annotations

import click

from switchyard import __version__
from switchyard.cli import docs, server, transfer
from switchyard.cli.changes import history, rollback
from switchyard.cli.contexts import context
from switchyard.cli.flags import flag
from switchyard.cli.limits import limit
from switchyard.cli.server import probe_address
from switchyard.cli.shells import completion
from switchyard.cli.tail import watch
from switchyard.cli.templates import template
from switchyard.cli.values import diff, get, list_configs, set_value, unset


@click.group()
@click.version_option(__version__, prog_name="switchyard")
def main() -> None:
    """Switchyard: configuration, feature flags and rate limits over gRPC."""


main.add_command(server.serve)
main.add_command(server.migrate)
main.add_command(server.verify)
main.add_command(server.keys)
main.add_command(server.health)
main.add_command(server.token)
main.add_command(server.user)

main.add_command(context)
main.add_command(get)
main.add_command(set_value)
main.add_command(unset)
main.add_command(list_configs)
main.add_command(diff)
main.add_command(history)
main.add_command(rollback)
main.add_command(watch)
main.add_command(flag)
main.add_command(limit)
main.add_command(template)
main.add_command(completion)
main.add_command(transfer.export)
main.add_command(transfer.apply)
main.add_command(transfer.import_)
main.add_command(transfer.schema)
main.add_command(docs.docs)

__all__ = ["main", "probe_address"]
