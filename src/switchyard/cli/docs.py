"""`switchyard docs`: writes the reference of every key, flag and limit (`keys.md`,
`keys.html`) from a running server, or with `--check` says whether the committed copy
is still what would be written (for a CI job), writing nothing.

Exit codes (`cli.exit_codes`): 0 written or up to date; 1 (DIFFERENCES) a file is out of
date under `--check`; 2 a usage error or a file that cannot be written; the status codes
of `cli.remote.run` when the server cannot be read.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import click

from switchyard.cli.exit_codes import ExitCode, Failure
from switchyard.cli.remote import RemoteOptions, connect, long_remote_options, run
from switchyard.keydocs import Catalog, render_html, render_markdown
from switchyard.transfer.document import read_state

DEFAULT_OUT_DIR = Path("docs/reference")
FILES: dict[str, tuple[str, Callable[[Catalog], str]]] = {
    "md": ("keys.md", render_markdown),
    "html": ("keys.html", render_html),
}
DIFF_EXCERPT_LINES = 40
"""Lines of unified diff `--check` prints per out-of-date file."""

"""Reads an exported document (a file `switchyard export` wrote) into a Catalog."""


@click.command("docs")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUT_DIR,
    show_default=True,
    help="Where keys.md and keys.html are written (or, with --check, read).",
)
@click.option(
    "--format",
    "formats",
    type=click.Choice(["md", "html", "both"]),
    default="both",
    show_default=True,
    help="Which files to write or check.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 naming each file that differs from what would be "
    "written (or is missing), with a diff excerpt.",
)
@click.option(
    "--from-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the catalog from an exported document instead of a server.",
)
@long_remote_options
def docs(
    out_dir: Path,
    formats: str,
    check: bool,
    from_file: Path | None,
    remote: RemoteOptions,
) -> None:
    """Generate the reference of every key, flag and rate limit.

    Reads the server (inactive keys, flags and limits included; values of sensitive
    keys never shown) and writes OUT_DIR/keys.md and OUT_DIR/keys.html. The output is
    deterministic, so a committed copy diffs cleanly: run with --check in CI to fail
    when it is out of date."""
    if from_file is not None:
        catalog = _catalog_from_document(from_file)
    else:

        async def call() -> Catalog:
            async with connect(remote) as client:
                return await read_state(client)

        catalog = run(call(), remote)
    wanted = ["md", "html"] if formats == "both" else [formats]
    generated = {out_dir / FILES[f][0]: FILES[f][1](catalog) for f in wanted}
    if check:
        _check(generated)
    else:
        for path, text in generated.items():
            click.echo(f"{'wrote' if _write(path, text) else 'unchanged'}: {path}")


def _check(generated: dict[Path, str]) -> None:
    """Raises Failure (exit 1) naming every file whose content differs from `generated`."""
    stale = []
    for path, text in generated.items():
        try:
            committed = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            click.echo(f"missing: {path}", err=True)
            stale.append(path)
            continue
        except OSError as error:
            raise Failure(f"error: cannot read {path}: {error.strerror}", ExitCode.USAGE) from None
        if committed == text:
            continue
        stale.append(path)
        click.echo(f"out of date: {path}", err=True)
        click.echo(_diff_excerpt(path, committed, text), err=True, nl=False)
    if stale:
        raise Failure(
            f"{len(stale)} file(s) out of date: run `switchyard docs` and commit the result",
            ExitCode.DIFFERENCES,
        )
    for path in generated:
        click.echo(f"up to date: {path}")


def _diff_excerpt(path: Path, committed: str, generated: str) -> str:
    """The first DIFF_EXCERPT_LINES lines of the unified diff from the committed file to
    the generated one, and how many more there are."""
    lines = list(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            generated.splitlines(keepends=True),
            fromfile=f"{path} (committed)",
            tofile=f"{path} (generated)",
            n=2,
        )
    )
    shown = "".join(
        line if line.endswith("\n") else line + "\n" for line in lines[:DIFF_EXCERPT_LINES]
    )
    rest = len(lines) - DIFF_EXCERPT_LINES
    return shown + (f"... ({rest} more diff lines)\n" if rest > 0 else "")


def _write(path: Path, text: str) -> bool:
    """Writes `text` to `path` (UTF-8, LF line ends) through a temporary file and a
    rename, so a reader never sees half a file; False when it already held `text`.
    Raises Failure (exit 2) when the directory or file cannot be written."""
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
                out.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise Failure(f"error: cannot write {path}: {error.strerror}", ExitCode.USAGE) from None
    return True


def _catalog_from_document(path: Path) -> Catalog:
    """The catalog of an exported document (`switchyard export`). Raises Failure (exit
    4) for a file that is not one."""
    from switchyard.transfer.document import DocumentError, load_document, state_from_document

    try:
        return state_from_document(load_document(path.read_text(encoding="utf-8")))
    except DocumentError as error:
        problems = "\n".join(f"  {problem}" for problem in error.problems)
        raise Failure(
            f"error: {path} is not a Switchyard document:\n{problems}", ExitCode.INVALID
        ) from None


__all__ = ["DEFAULT_OUT_DIR", "DIFF_EXCERPT_LINES", "docs"]
