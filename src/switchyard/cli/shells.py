"""`switchyard completion SHELL`: the shell completion script, made by Click's own
mechanism (`_SWITCHYARD_COMPLETE=SHELL_source switchyard`), so that it completes every
command and option as they are, with nothing to keep up to date by hand."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL. Load it from the shell's start-up file:
    `eval "$(switchyard completion bash)"` (or zsh); for fish,
    `switchyard completion fish > ~/.config/fish/completions/switchyard.fish`."""
    root = ctx.find_root()
    completer = get_completion_class(shell)
    assert completer is not None, "Click knows every shell in SHELLS"
    script = completer(root.command, {}, "switchyard", "_SWITCHYARD_COMPLETE").source()
    click.echo(script)


__all__ = ["SHELLS", "completion"]
