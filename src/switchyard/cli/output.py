"""The one place that prints results: a Rich table for a person (`-o table`), JSON or
YAML for a script (`-o json`, `-o yaml`).

Commands build plain data (dicts and lists of JSON values with snake_case keys, see
`cli.plain`) and a table from it; this module picks one. The JSON and YAML shapes are
part of the command line's interface (the README lists them): keys sorted, no markup,
the same whatever the terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

import click
import yaml
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

OutputFormat = Literal["table", "json", "yaml"]
FORMATS: tuple[OutputFormat, ...] = ("table", "json", "yaml")
F = TypeVar("F", bound=Callable[..., Any])

# Wide enough that a table piped to a file or a test is not wrapped at 80 columns.
_PIPE_WIDTH = 200


def output_option(command: F) -> F:
    """Adds `-o/--output table|json|yaml` (default table), passed as `output`."""
    option = click.option(
        "-o",
        "--output",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table for people; json or yaml (stable keys, sorted) for scripts.",
    )
    return option(command)


def console(*, err: bool = False) -> Console:
    """A Rich console on the current stdout (or stderr), made when needed so that it
    writes where Click's test runner or a redirection put the stream. Colour only on a
    terminal."""
    stream = sys.stderr if err else sys.stdout
    terminal = stream.isatty()
    return Console(
        file=stream,
        width=None if terminal else _PIPE_WIDTH,
        no_color=not terminal,
        highlight=False,
        soft_wrap=not terminal,
    )


def to_json(data: Any, *, compact: bool = False) -> str:
    """`data` as JSON with sorted keys: indented by 2, or on one line when `compact`."""
    if compact:
        return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(data, sort_keys=True, ensure_ascii=False, indent=2)


def to_yaml(data: Any, *, document: bool = False) -> str:
    """`data` as block-style YAML with sorted keys; `document` starts it with `---`, for a
    stream of documents."""
    text: str = yaml.safe_dump(
        data, sort_keys=True, allow_unicode=True, default_flow_style=False, explicit_start=document
    )
    return text


def emit(data: Any, output: OutputFormat, table: Callable[[], RenderableType]) -> None:
    """Prints a command's result: `data` as JSON or YAML, or what `table()` renders
    (called only for `-o table`, so that scripts do not pay for it)."""
    if output == "json":
        click.echo(to_json(data))
    elif output == "yaml":
        click.echo(to_yaml(data), nl=False)
    else:
        console().print(table())


def emit_line(data: Any, output: OutputFormat, line: Callable[[], RenderableType]) -> None:
    """Prints one item of a stream (a watched change): one JSON object per line, one YAML
    document, or one line for a person; flushed at once, so a pipe sees it."""
    if output == "json":
        click.echo(to_json(data, compact=True))
    elif output == "yaml":
        click.echo(to_yaml(data, document=True), nl=False)
    else:
        console().print(line())
    sys.stdout.flush()


def table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None
) -> Table:
    """A Rich table with `columns` and `rows`; each cell goes through `cell` unless it is
    already a Rich renderable (a coloured Text)."""
    out = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*(item if isinstance(item, Text) else cell(item) for item in row))
    return out


def fields(data: dict[str, Any], *, title: str | None = None) -> Table:
    """One record as a two-column table, a row per field in `data`'s order (empty for
    None)."""
    return table(
        ["FIELD", "VALUE"],
        [[name, "" if value is None else value] for name, value in data.items()],
        title=title,
    )


def cell(value: Any) -> str:
    """A JSON value as a person reads it in a table: strings bare, everything else as
    compact JSON (`null`, `true`, `{"a":1}`)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def quoted(value: Any) -> str:
    """A JSON value as JSON, strings quoted too: where a string and a number must not
    look alike (a value that changed from "5" to 5)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


__all__ = [
    "FORMATS",
    "OutputFormat",
    "cell",
    "console",
    "emit",
    "emit_line",
    "fields",
    "output_option",
    "quoted",
    "table",
    "to_json",
    "to_yaml",
]
