"""Contexts: named servers (address, token, TLS files) in a small YAML file, so that an
operator switches between staging and production with `switchyard context use` instead
of retyping flags, and a token need not sit in the shell's history.

The file is `$SWITCHYARD_CONFIG`, else `$XDG_CONFIG_HOME/switchyard/config.yaml`, else
`~/.config/switchyard/config.yaml`:

    current-context: staging
    contexts:
      staging: {address: "staging.example:50051", token-file: ~/.switchyard/staging}

Relative paths in it are taken from the file's own folder. It may hold tokens, so it is
written readable by its owner only (0600).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

from switchyard.cli.exit_codes import ExitCode, Failure
from switchyard.cli.output import OutputFormat, emit, output_option, table

FIELDS = ("address", "token", "token-file", "tls-ca", "tls-cert", "tls-key")
"""What a context may set."""
PATH_FIELDS = frozenset({"token-file", "tls-ca", "tls-cert", "tls-key"})


@dataclass
class Contexts:
    """The contexts file as read: where it is, which context is current, and each
    context's settings by the names of FIELDS."""

    path: Path
    current: str | None = None
    contexts: dict[str, dict[str, str]] = field(default_factory=dict)

    def settings(self, name: str) -> dict[str, str]:
        """The settings of context `name`, paths made absolute. Raises click.BadParameter
        for a name the file does not hold."""
        if name not in self.contexts:
            known = ", ".join(sorted(self.contexts)) or "none yet"
            raise click.BadParameter(
                f"no context {name!r} in {self.path} (known: {known}; "
                "`switchyard context set NAME --address ...` adds one)",
                param_hint="context",
            )
        return {
            key: str(self.path.parent / Path(value).expanduser()) if key in PATH_FIELDS else value
            for key, value in self.contexts[name].items()
        }


def config_path() -> Path:
    """Where the contexts file is: $SWITCHYARD_CONFIG, else under $XDG_CONFIG_HOME (by
    default ~/.config)."""
    if explicit := os.environ.get("SWITCHYARD_CONFIG"):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "switchyard" / "config.yaml"


def load_contexts(path: Path | None = None) -> Contexts:
    """The contexts file at `path` (default `config_path()`); empty when there is none.
    Raises Failure (exit 4) for a file that is not the YAML described above."""
    path = path or config_path()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Contexts(path)
    except (OSError, yaml.YAMLError) as error:
        raise Failure(f"cannot read the contexts file {path}: {error}", ExitCode.INVALID) from None
    raw = raw or {}
    contexts = raw.get("contexts") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or not isinstance(contexts or {}, dict):
        raise Failure(
            f"{path}: expected `current-context:` and a `contexts:` mapping", ExitCode.INVALID
        )
    parsed: dict[str, dict[str, str]] = {}
    for name, settings in (contexts or {}).items():
        if not isinstance(settings, dict) or set(settings) - set(FIELDS):
            raise Failure(
                f"{path}: context {name!r} may set only {', '.join(FIELDS)}", ExitCode.INVALID
            )
        parsed[str(name)] = {key: str(value) for key, value in settings.items()}
    current = raw.get("current-context")
    return Contexts(path, str(current) if current else None, parsed)


def save_contexts(contexts: Contexts) -> None:
    """Writes the file whole (a new file moved over the old one, so a reader never sees
    half of it), readable by its owner only."""
    contexts.path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"contexts": contexts.contexts}
    if contexts.current:
        data["current-context"] = contexts.current
    handle, temporary = tempfile.mkstemp(dir=contexts.path.parent, prefix=".config-")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            yaml.safe_dump(data, out, sort_keys=True, default_flow_style=False)
        os.replace(temporary, contexts.path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@click.group("context")
def context() -> None:
    """Named servers to talk to, kept in the contexts file (see `context show`)."""


@context.command("list")
@output_option
def context_list(output: OutputFormat) -> None:
    """List the contexts; the current one is marked."""
    found = load_contexts()
    rows = [
        {"name": name, "current": name == found.current, "address": settings.get("address")}
        for name, settings in sorted(found.contexts.items())
    ]
    emit(
        {"contexts": rows, "current_context": found.current, "path": str(found.path)},
        output,
        lambda: table(
            ["", "NAME", "ADDRESS"],
            [["*" if r["current"] else "", r["name"], r["address"] or ""] for r in rows],
            title=str(found.path),
        ),
    )


@context.command("use")
@click.argument("name")
def context_use(name: str) -> None:
    """Make NAME the current context."""
    found = load_contexts()
    found.settings(name)
    found.current = name
    save_contexts(found)
    click.echo(f"current context: {name}")


@context.command("set")
@click.argument("name")
@click.option("--address", help="HOST:PORT of the server.")
@click.option("--token", help="The bearer token (kept in the file, which is mode 0600).")
@click.option("--token-file", metavar="PATH", help="A file holding the token instead.")
@click.option("--tls-ca", metavar="PATH", help="PEM CA certificates to verify the server.")
@click.option("--tls-cert", metavar="PATH", help="PEM client certificate, for mutual TLS.")
@click.option("--tls-key", metavar="PATH", help="PEM private key of --tls-cert.")
@click.option("--use", "make_current", is_flag=True, help="Make it the current context too.")
def context_set(name: str, make_current: bool, **settings: str | None) -> None:
    """Create context NAME or change the settings given (the others stay); the first
    context made becomes the current one."""
    found = load_contexts()
    merged = found.contexts.setdefault(name, {})
    for option, value in settings.items():
        if value is not None:
            merged[option.replace("_", "-")] = value
    if make_current or not found.current:
        found.current = name
    save_contexts(found)
    click.echo(f"context {name} saved in {found.path}")


@context.command("show")
@click.argument("name", required=False)
@output_option
def context_show(name: str | None, output: OutputFormat) -> None:
    """Show the settings of context NAME (default: the current one), the token masked."""
    found = load_contexts()
    name = name or found.current
    if name is None:
        raise Failure(
            f"no current context in {found.path}: `switchyard context set NAME --address ...`",
            ExitCode.NOT_FOUND,
        )
    settings = found.settings(name)
    if "token" in settings:
        settings["token"] = settings["token"][:8] + "…"
    shown = {key.replace("-", "_"): value for key, value in settings.items()}
    emit(
        {"name": name, "current": name == found.current, "path": str(found.path), **shown},
        output,
        lambda: table(["SETTING", "VALUE"], sorted(settings.items()), title=f"context {name}"),
    )


__all__ = ["FIELDS", "Contexts", "config_path", "context", "load_contexts", "save_contexts"]
